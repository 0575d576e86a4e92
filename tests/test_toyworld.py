"""The toy world: captions, drawing, sounds and their pairing."""

from __future__ import annotations

import numpy as np
import pytest

from core import toyworld as W
from core.errors import ConfigError


def test_vocabulary_and_captions():
    assert len(W.COLOURS) == 10 and set(W.SHAPES) == {"circle", "square", "triangle", "stripes", "rings",
                                                       "checkerboard"}
    assert W.caption("red", "circle") == "a red circle"
    assert W.caption("blue", "stripes", "black") == "blue stripes on a black background"
    assert W.caption("green", "checkerboard") == "a green checkerboard"
    with pytest.raises(ConfigError, match="colours: red"):
        W.caption("mauve", "circle")
    assert len(W.all_prompts()) == 60


def test_draw_uses_exactly_the_two_colours(rng):
    for shape in W.SHAPES:
        scene = W.random_scene(rng, shape=shape)
        img = W.draw(scene, size=64, rng=rng)
        assert img.shape == (64, 64, 3) and img.dtype == np.uint8
        colours = {tuple(c) for c in img.reshape(-1, 3)}
        assert colours == {W.COLOURS[scene.colour], W.COLOURS[scene.background]}


def test_objects_are_the_smaller_part(rng):
    for _ in range(50):
        scene = W.random_scene(rng, shape=W.OBJECTS[int(rng.integers(3))])
        share = (W.draw(scene, size=64, rng=rng) == W.COLOURS[scene.colour]).all(axis=-1).mean()
        assert 0.05 < share < 0.45


def test_sounds_are_deterministic_and_distinct():
    a = W.render_sound("kick", sr=16000, rng=np.random.default_rng(3))
    b = W.render_sound("kick", sr=16000, rng=np.random.default_rng(3))
    assert np.array_equal(a, b) and a.dtype == np.float32 and a.size == 16000
    assert 0.3 < np.abs(a).max() <= 0.81
    # Spectral centroids order the classes as their names say: kick/bass low, hi-hat high.
    def centroid(kind):
        y = W.render_sound(kind, sr=16000, rng=np.random.default_rng(0), vary=False)
        mag = np.abs(np.fft.rfft(y))
        f = np.fft.rfftfreq(y.size, 1 / 16000)
        return float((mag * f).sum() / mag.sum())
    c = {k: centroid(k) for k in W.SOUNDS}
    assert c["kick"] < 300 and c["bass"] < 300 and c["hihat"] > 3000
    with pytest.raises(ConfigError, match="kick"):
        W.render_sound("tuba", sr=16000)


def test_pairing_gives_each_sound_its_own_colour():
    colours = [s.colour for s in W.SOUND_CONCEPTS.values()]
    assert len(set(colours)) == len(colours)
    text = W.describe()
    for kind, scene in W.SOUND_CONCEPTS.items():
        assert f"{kind}" in text and scene.caption() in text

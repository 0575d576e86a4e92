"""The judge reads toy pictures exactly, and holds under blur and noise; it has known failure answers too."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from core import judge, toyworld as W
from core.errors import ConfigError


def _degrade(img: np.ndarray, rng: np.random.Generator, *, blur: float = 1.2, noise: float = 12.0) -> np.ndarray:
    x = ndimage.gaussian_filter(img.astype(float), (blur, blur, 0)) + rng.normal(0, noise, img.shape)
    return np.clip(x, 0, 255).astype(np.uint8)


def test_reads_every_clean_scene_exactly(rng):
    for _ in range(300):
        scene = W.random_scene(rng)
        r = judge.read(W.draw(scene, size=64, rng=rng))
        assert r.shape == scene.shape, (scene, r.measures)
        assert set(r.top_colours(2)) == {scene.colour, scene.background}
        if scene.shape in W.OBJECTS:  # objects are the smaller part: foreground and background are known
            assert (r.colour, r.background) == (scene.colour, scene.background)


def test_holds_under_blur_and_noise(rng):
    shape_ok = colour_ok = 0
    n = 300
    for _ in range(n):
        scene = W.random_scene(rng)
        r = judge.read(_degrade(W.draw(scene, size=64, rng=rng), rng))
        shape_ok += r.shape == scene.shape
        colour_ok += scene.colour in r.top_colours(2)
    assert colour_ok / n >= 0.98
    assert shape_ok / n >= 0.93


def test_other_sizes(rng):
    for size in (96, 128):
        for shape in W.SHAPES:
            scene = W.random_scene(rng, shape=shape)
            assert judge.read(W.draw(scene, size=size, rng=rng)).shape == shape


def test_single_colour_and_noise_frames_match_nothing(rng):
    flat = np.full((64, 64, 3), W.COLOURS["blue"], np.uint8)
    r = judge.read(flat)
    assert r.background == "blue" and r.shape == "none"
    assert not judge.matches(flat, "a blue circle")
    assert judge.matches(flat, "a blue circle", shape=False)  # the colour is there, the shape is not
    noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    hits = sum(judge.matches(noise, s.caption(with_background=False)) for s in W.all_prompts())
    assert hits <= 3  # random pixels are no scene: at most a chance colour + shape reading


def test_matches_and_captions():
    img = W.draw(W.Scene("red", "circle", "black"), size=64, rng=np.random.default_rng(0))
    assert judge.matches(img, "a red circle")
    assert judge.matches(img, "a red circle on a black background")
    assert not judge.matches(img, "a blue circle")
    assert not judge.matches(img, "a red square")
    assert judge.parse_caption("blue stripes on a black background") == W.Scene("blue", "stripes", "black")
    with pytest.raises(ConfigError, match="not a toy-world caption"):
        judge.parse_caption("a neon city at night")


def test_reads_guided_frames_as_a_person_does(load_script):
    """240 guided frames of the toy set that two people labelled without seeing their prompts
    (tests/data/judge, scripts/judge_check.py -> results/judge_human_check.json).

    The people agree with each other on 219.  The judge before this one agreed with the first on 5:
    it read blotches as rings, triangles or circles.  This one agrees on 171 (42 of the 60 frames
    guided, labelled and read after its rules were fixed).
    """
    check = load_script("judge_check")
    agree = total = blotches = blotches_kept = 0
    for entry in check.load_sets().values():
        for frame, person, person2 in zip(entry["frames"], entry["person"], entry["person2"]):
            shape = judge.read(frame).shape
            agree += shape == person
            total += 1
            if person == person2 == "none":
                blotches += 1
                blotches_kept += shape == "none"
    assert total == 240
    assert agree / total >= 0.65, agree
    # Where both people name nothing, the judge names nothing in 98 of 120 frames: a blotch is not a shape.
    assert blotches_kept / blotches >= 0.75, (blotches_kept, blotches)

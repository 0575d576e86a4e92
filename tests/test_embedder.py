"""Embedder in process: which audio it encodes, and Eq. 2 between targets.

The encoders here record what they are given and return fixed vectors, so the
test sees the embedder's choices exactly (the real encoders have their own
tests in test_encoders.py).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from core.director import TargetSpec
from core.presets import GuidanceSection
from core.ringbuffer import RingBuffer
from live.embedder import Embedder

SR = 16_000


class RecordingEncoders:
    def __init__(self) -> None:
        self.models = SimpleNamespace(audio=object())
        self.windows: list[np.ndarray] = []
        self.cached: list[bool] = []
        self.texts = {"red": torch.tensor([1.0, 0.0, 0.0]), "blue": torch.tensor([0.0, 1.0, 0.0]),
                      "neon": torch.tensor([0.0, 0.0, 1.0])}

    def audio(self, y, *, sr, key=None, cache=True):
        self.windows.append(np.array(y, copy=True))
        self.cached.append(cache)
        return torch.tensor([float(np.mean(y)), 0.0, 0.0])

    def text(self, text):
        return self.texts[text]


@pytest.fixture
def ring():
    rb = RingBuffer(capacity=4 * SR, sr=SR)
    rb.write(np.full(SR, 0.25, np.float32))      # 0..1 s: the sound at the onset
    rb.write(np.full(2 * SR, -0.5, np.float32))  # 1..3 s: what came after
    return rb


def test_audio_target_encodes_the_window_ending_at_the_named_onset(ring):
    enc = RecordingEncoders()
    emb = Embedder(enc, ring, window_s=1.0, consistency="none")
    emb.build(TargetSpec(kind="audio", audio_end_s=1.0))
    assert np.all(enc.windows[-1] == 0.25)  # not the newest second (all -0.5)
    emb.build(TargetSpec(kind="audio", audio_end_s=1.5))
    assert np.mean(enc.windows[-1] == 0.25) == pytest.approx(0.5)  # half before, half after 1 s
    emb.build(TargetSpec(kind="audio", audio_end_s=None))
    assert np.all(enc.windows[-1] == -0.5)  # no onset named: the newest audio
    assert enc.cached == [False] * 3  # live windows never recur: caching them only grows memory


def test_eq2_averages_each_target_with_the_previous_and_a_reload_switches_it_off(ring):
    enc = RecordingEncoders()
    emb = Embedder(enc, ring, consistency="average", style_weight=0.5)
    first, _, l1 = emb.build(TargetSpec(kind="lyric", text="red", prompts=(("neon", 2.0),)))
    assert torch.equal(first.embeds[0], enc.texts["red"]) and not l1
    assert first.weights.tolist() == [1.0, 1.0]  # the style prompt at 2.0 x style_weight 0.5
    second, _, _ = emb.build(TargetSpec(kind="lyric", text="blue"))
    assert torch.allclose(second.embeds[0], (enc.texts["red"] + enc.texts["blue"]) / 2)
    emb.configure(GuidanceSection(consistency="l1", style_weight=0.3))
    third, _, l1 = emb.build(TargetSpec(kind="lyric", text="red"))
    assert torch.equal(third.embeds[0], enc.texts["red"]) and l1  # Eq. 1 instead: the optimizer's anchor


def test_a_target_built_on_the_side_stream_is_the_plain_build_on_cpu(ring):
    plain = Embedder(RecordingEncoders(), ring, consistency="none").build(TargetSpec(kind="lyric", text="red"))
    side = Embedder(RecordingEncoders(), ring, consistency="none")
    assert side._side.stream is None  # CPU: no stream, a plain block
    built = side.build_on_side_stream(TargetSpec(kind="lyric", text="red"))
    assert torch.equal(built[0].embeds, plain[0].embeds) and built[2] == plain[2]
    assert side.build_on_side_stream(TargetSpec(kind="lyric", text=None)) is None

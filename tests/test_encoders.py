"""Encoders with the tiny set: normalized, cached, resampled, and equal to the models' own outputs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.encoders import AUDIO_SR, Encoders
from core.errors import ConfigError, InputError
from core.models import load_models
from core.models.tiny import write_tiny_models


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return load_models(write_tiny_models(tmp_path_factory.mktemp("tiny")), device="cpu", offline=True)


@pytest.fixture
def enc(models):
    return Encoders(models)


def sine(freq_hz: float, *, sr: int, dur_s: float = 1.0) -> np.ndarray:
    t = np.arange(int(sr * dur_s)) / sr
    return (0.5 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def test_text_is_normalized_equals_clip_and_is_cached(models, enc):
    a = enc.text("a red circle")
    assert a.shape == (512,) and not a.requires_grad
    assert a.norm().item() == pytest.approx(1.0, abs=1e-5)
    with torch.no_grad():
        ref = F.normalize(models.clip.model.encode_text(models.clip.tokenize(["a red circle"])), dim=-1)[0]
    assert torch.allclose(a, ref, atol=1e-6)
    assert enc.text("a red circle") is a  # the cached tensor itself
    info = enc.cache_info()
    assert (info["text_hits"], info["text_misses"]) == (1, 1)
    assert not torch.allclose(a, enc.text("a blue square"))


def test_image_accepts_uint8_float_and_pil_alike(enc, rng):
    from PIL import Image

    img = (rng.random((48, 80, 3)) * 255).astype(np.uint8)
    e_u8 = enc.image(img)
    e_f = enc.image(img.astype(np.float32) / 255.0)
    e_pil = enc.image(Image.fromarray(img))
    assert e_u8.norm().item() == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(e_u8, e_f, atol=1e-5) and torch.allclose(e_u8, e_pil, atol=1e-5)
    # A different image gives a different embedding (the tiny CLIP sees colour).
    red = np.zeros((48, 80, 3), np.uint8)
    red[..., 0] = 255
    assert F.cosine_similarity(e_u8, enc.image(red), dim=0).item() < 0.99
    with pytest.raises(InputError, match="HWC"):
        enc.image(np.zeros((4, 4, 5), np.uint8))


def test_audio_resamples_to_16k(enc):
    # The same 440 Hz tone given at 44.1 kHz and at 16 kHz embeds (nearly) the same.
    e16 = enc.audio(sine(440, sr=AUDIO_SR), sr=AUDIO_SR)
    e44 = enc.audio(sine(440, sr=44_100), sr=44_100)
    other = enc.audio(sine(3_000, sr=AUDIO_SR), sr=AUDIO_SR)
    assert e16.shape == (512,) and e16.norm().item() == pytest.approx(1.0, abs=1e-5)
    same = F.cosine_similarity(e16, e44, dim=0).item()
    diff = F.cosine_similarity(e16, other, dim=0).item()
    assert same > 0.99 and same > diff


def test_audio_equals_wav2clip_and_is_cached_per_window(models, enc):
    wave = sine(220, sr=AUDIO_SR)
    a = enc.audio(wave, sr=AUDIO_SR, key=("song", 3))
    with torch.no_grad():
        ref = F.normalize(models.audio(torch.from_numpy(wave)[None]), dim=-1)[0]
    assert torch.allclose(a, ref, atol=1e-6)
    # Same key: the cached value, even for other samples (the key names the window).
    assert enc.audio(np.zeros_like(wave), sr=AUDIO_SR, key=("song", 3)) is a
    # No key: the samples' bytes are the key.
    b = enc.audio(wave, sr=AUDIO_SR)
    assert enc.audio(wave.copy(), sr=AUDIO_SR) is b
    info = enc.cache_info()
    assert (info["audio_hits"], info["audio_misses"]) == (2, 2)


def test_audio_stereo_is_mixed_to_mono_and_short_windows_work(enc):
    wave = sine(330, sr=AUDIO_SR, dur_s=0.5)
    stereo = np.stack([wave, wave], axis=1)
    assert torch.allclose(enc.audio(stereo, sr=AUDIO_SR), enc.audio(wave, sr=AUDIO_SR), atol=1e-6)
    assert enc.audio(wave[:100], sr=AUDIO_SR).shape == (512,)  # padded, not an error


def test_audio_errors_name_the_problem(models, enc):
    with pytest.raises(InputError, match="sr=0"):
        enc.audio(np.zeros(100, np.float32), sr=0)
    with pytest.raises(InputError, match="mono"):
        enc.audio(np.zeros((2, 2, 2), np.float32), sr=AUDIO_SR)
    no_audio = Encoders(dataclasses.replace(models, audio=None))
    with pytest.raises(ConfigError, match="no audio encoder"):
        no_audio.audio(np.zeros(100, np.float32), sr=AUDIO_SR)


def test_uncached_audio_leaves_the_cache_alone(models, enc):
    # Live windows never come back: caching them would only grow memory over a show.
    wave = sine(220, sr=AUDIO_SR)
    cached = enc.audio(wave, sr=AUDIO_SR, key=("song", 1))
    before = enc.cache_info()
    for i in range(3):
        fresh = enc.audio(wave, sr=AUDIO_SR, cache=False)
        assert fresh is not cached and torch.allclose(fresh, cached, atol=1e-6)
    assert enc.cache_info() == before

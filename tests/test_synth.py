"""Generators return onset times that match where the sound actually starts."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ConfigError
from core.synth import add_noise, generate_click_track, generate_demo_song, generate_drum_pattern, generate_soft_notes

SR = 48000


def _first_sound_after(y: np.ndarray, t_s: float, *, level: float = 1e-4) -> float:
    i0 = int(round(t_s * SR)) - 50
    idx = np.flatnonzero(np.abs(y[max(0, i0):]) > level)
    return (max(0, i0) + idx[0]) / SR


def test_click_track_grid_and_silence_between():
    y, onsets = generate_click_track(bpm=120, duration_s=5.0, sr=SR)
    assert y.dtype == np.float32 and y.shape == (5 * SR,)
    np.testing.assert_allclose(np.diff(onsets), 0.5, atol=1 / SR)
    for t in onsets:
        assert abs(_first_sound_after(y, t) - t) <= 2 / SR
    # halfway between clicks there is nothing
    assert np.abs(y[int(0.75 * SR) : int(0.95 * SR)]).max() == 0.0


def test_drum_pattern_eighths_and_level():
    y, onsets = generate_drum_pattern(bpm=100, duration_s=6.0, sr=SR)
    np.testing.assert_allclose(np.diff(onsets), 0.3, atol=1 / SR)
    assert 0.75 < np.abs(y).max() <= 0.8 + 1e-6
    assert abs(_first_sound_after(y, onsets[3]) - onsets[3]) <= 2 / SR


def test_soft_notes_rise_slowly():
    y, onsets = generate_soft_notes(duration_s=4.0, sr=SR, attack_s=0.03)
    t0 = int(onsets[1] * SR)
    early = np.abs(y[t0 : t0 + int(0.003 * SR)]).max()  # first 3 ms of a 30 ms attack
    later = np.abs(y[t0 + int(0.03 * SR) : t0 + int(0.06 * SR)]).max()
    assert early < 0.1 * later


def test_noise_snr_is_as_asked(rng):
    y, _ = generate_drum_pattern(bpm=120, duration_s=4.0, sr=SR)
    noisy = add_noise(y, snr_db=10.0, seed=3)
    noise = noisy.astype(np.float64) - y
    snr = 10 * np.log10(np.mean(y.astype(np.float64) ** 2) / np.mean(noise**2))
    assert snr == pytest.approx(10.0, abs=0.3)


def test_demo_song_has_a_quiet_middle():
    y, onsets = generate_demo_song(duration_s=9.0, sr=SR)
    rms = [np.sqrt(np.mean(y[i * 3 * SR : (i + 1) * 3 * SR] ** 2)) for i in range(3)]
    assert rms[1] < 0.5 * rms[0] and rms[1] < 0.5 * rms[2]
    assert len(onsets) > 30


def test_bad_parameters_are_config_errors():
    with pytest.raises(ConfigError, match="bpm=0"):
        generate_click_track(bpm=0, duration_s=1.0, sr=SR)

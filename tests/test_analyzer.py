"""Streaming analyzer: known onset times, tempo, and adaptive intensity behaviour."""

from __future__ import annotations

import numpy as np
import pytest

from core.analyzer import AdaptiveNormalizer, StreamingAnalyzer
from core.errors import ConfigError
from core.events import Beat, Intensity, Onset
from core.synth import add_noise, generate_click_track, generate_drum_pattern, generate_soft_notes


def _run(analyzer: StreamingAnalyzer, y: np.ndarray, block_sizes) -> list:
    events, pos, i = [], 0, 0
    while pos < y.size:
        n = block_sizes[i % len(block_sizes)]
        events += analyzer.process(y[pos : pos + n])
        pos, i = pos + n, i + 1
    return events


def _onsets(events) -> np.ndarray:
    return np.array([e.time_s for e in events if isinstance(e, Onset)])


def _recall(found: np.ndarray, truth: np.ndarray, window_s: float = 0.05) -> float:
    """The share of ``truth`` onsets with a found onset within ``window_s`` (0 when nothing was found)."""
    if not found.size:
        return 0.0
    return float(np.mean([np.min(np.abs(found - t)) <= window_s for t in truth]))


@pytest.mark.parametrize("sr,hop", [(48000, 256), (44100, 256), (48000, 512), (44100, 512)])
def test_click_onsets_at_known_times(sr, hop):
    y, truth = generate_click_track(bpm=120, duration_s=8.0, sr=sr)
    found = _onsets(_run(StreamingAnalyzer(sr=sr, hop=hop), y, [1024]))
    assert found.size == truth.size, (found, truth)
    # 10 ms (13 at hop 512, whose 11.6 ms grid bounds the stamp, and a click right at a hop boundary can
    # peak in the band flux's long window one frame early: 12.7 ms at 44.1 kHz): well inside a video frame.
    np.testing.assert_allclose(found, truth, atol=0.010 if hop == 256 else 0.013)


def test_block_size_does_not_change_results(rng):
    sr = 48000
    y, _ = generate_drum_pattern(bpm=110, duration_s=5.0, sr=sr)
    ref = _run(StreamingAnalyzer(sr=sr), y, [256])
    odd = _run(StreamingAnalyzer(sr=sr), y, list(rng.integers(1, 3000, size=50)))
    assert ref == odd  # re-blocking is exact: same events, same order


def test_drums_in_noise_found_with_tolerance():
    sr = 44100
    y, truth = generate_drum_pattern(bpm=128, duration_s=8.0, sr=sr)
    found = _onsets(_run(StreamingAnalyzer(sr=sr), add_noise(y, snr_db=10.0), [512]))
    found = found[found > 0.1]  # the stream start of noise is itself an onset
    # The default "flux" finds every hit; white noise at 10 dB (between the hits too) adds a few
    # false onsets (bench_audio: precision ~0.86 on this material), "energy" adds none here.
    assert _recall(found, truth) >= 0.95 and found.size <= 1.3 * truth.size
    energy = _onsets(_run(StreamingAnalyzer(sr=sr, onset_method="energy"), add_noise(y, snr_db=10.0), [512]))
    energy = energy[energy > 0.1]
    assert _recall(energy, truth) >= 0.95 and energy.size <= truth.size + 1


def test_events_come_out_within_latency():
    sr, hop = 48000, 256
    y, truth = generate_click_track(bpm=100, duration_s=6.0, sr=sr)
    analyzer = StreamingAnalyzer(sr=sr, hop=hop)
    emitted = []
    for start in range(0, y.size, hop):
        for e in analyzer.process(y[start : start + hop]):
            if isinstance(e, Onset):
                emitted.append((start + hop) / sr - e.time_s)
    assert len(emitted) == truth.size
    assert max(emitted) <= analyzer.latency_s + 1e-3
    assert 0.005 < analyzer.latency_s < 0.04  # about 4 hops at hop 256, 48 kHz


def test_tempo_of_120_bpm_clicks():
    sr = 44100
    y, truth = generate_click_track(bpm=120, duration_s=20.0, sr=sr)
    beats = [e for e in _run(StreamingAnalyzer(sr=sr), y, [1024]) if isinstance(e, Beat)]
    assert beats[-1].bpm == pytest.approx(120.0, abs=2.0)
    late = np.array([b.time_s for b in beats if 10.0 < b.time_s < truth[-1] + 0.1])
    assert late.size >= 15  # one per click once locked, not every few seconds
    assert max(np.min(np.abs(truth - t)) for t in late) < 0.03


def test_silence_gate_drops_onsets_in_near_silence():
    sr = 48000
    y, truth = generate_click_track(bpm=120, duration_s=4.0, sr=sr)
    assert _onsets(_run(StreamingAnalyzer(sr=sr, silence_db=-30.0), y * 1e-2, [1024])).size == 0
    assert _onsets(_run(StreamingAnalyzer(sr=sr, silence_db=-100.0), y * 1e-2, [1024])).size == truth.size
    # aubio's energy has no level floor of its own: the gate alone decides, down to -80 dBFS clicks.
    assert _onsets(_run(StreamingAnalyzer(sr=sr, onset_method="energy", silence_db=-60.0), y * 1e-4,
                        [1024])).size == 0
    assert _onsets(_run(StreamingAnalyzer(sr=sr, onset_method="energy", silence_db=-100.0), y * 1e-4,
                        [1024])).size == truth.size


def test_threshold_changes_sensitivity_live():
    sr = 48000
    y, _ = generate_soft_notes(duration_s=8.0, sr=sr, seed=2)
    y = add_noise(y, snr_db=6.0, seed=5)
    sensitive = StreamingAnalyzer(sr=sr)
    sensitive.set_threshold(0.02)
    n_sensitive = _onsets(_run(sensitive, y, [1024])).size
    n_default = _onsets(_run(StreamingAnalyzer(sr=sr), y, [1024])).size
    assert n_sensitive > n_default
    with pytest.raises(ConfigError, match="threshold=-1"):
        sensitive.set_threshold(-1)


def _intensity(events) -> tuple[np.ndarray, np.ndarray]:
    it = [e for e in events if isinstance(e, Intensity)]
    return np.array([e.time_s for e in it]), np.array([e.value for e in it])


def _noise_bursts(sr: int, levels_db: list[tuple[float, float]], rng) -> np.ndarray:
    """Pink-ish noise whose level follows (duration_s, dBFS) pieces; -inf = digital silence."""
    parts = []
    for dur, db in levels_db:
        n = int(dur * sr)
        parts.append(np.zeros(n) if db == -np.inf else rng.standard_normal(n) * 10 ** (db / 20))
    return np.concatenate(parts).astype(np.float32)


def test_intensity_silence_zero_loud_one_and_adapts(rng):
    sr = 48000
    # loud 6 s, silence 2 s, loud again 2 s, then 15 dB quieter for 12 s (window is 4 s)
    y = _noise_bursts(sr, [(6, -10), (2, -np.inf), (2, -10), (12, -25)], rng)
    analyzer = StreamingAnalyzer(sr=sr, intensity_window_s=4.0)
    t, v = _intensity(_run(analyzer, y, [1024]))
    assert np.all((v >= 0) & (v <= 1))
    assert t[0] == 0.0
    np.testing.assert_allclose(np.diff(t), 256 / sr)

    def at(a, b):
        return v[(t >= a) & (t < b)]

    assert at(5, 6).min() > 0.9  # steady loud: near the top
    assert at(7, 8).max() < 0.05  # silence: ~0
    assert at(11.0, 11.5).max() < 0.15  # after the 0.3 s release: the drop reads as quiet
    assert at(18, 22).min() > 0.85  # window full of the new level: top of the range again


def test_quiet_song_uses_the_range(rng):
    sr = 44100
    # a song at -40 dBFS with 12 dB of dynamics in 0.5 s phrases
    pieces = [(0.5, -40.0 + (12.0 if i % 2 else 0.0)) for i in range(40)]
    t, v = _intensity(_run(StreamingAnalyzer(sr=sr, intensity_window_s=5.0), _noise_bursts(sr, pieces, rng), [512]))
    late = v[t > 6]
    assert np.percentile(late, 95) > 0.9 and np.percentile(late, 5) < 0.35


def test_reset_restarts_stream_time_and_warmup_leaves_no_trace():
    sr = 48000
    y, truth = generate_click_track(bpm=120, duration_s=3.0, sr=sr)
    analyzer = StreamingAnalyzer(sr=sr)
    analyzer.warmup()
    first = _run(analyzer, y, [1000])
    analyzer.reset()
    again = _run(analyzer, y, [1000])
    assert first == again
    assert _onsets(first)[0] == pytest.approx(truth[0], abs=0.01)


def test_normalizer_alone_attack_faster_than_release():
    norm = AdaptiveNormalizer(rate_hz=100.0, window_s=10.0, attack_s=0.01, release_s=0.5, floor_db=-80.0)
    for _ in range(300):
        norm.update(-20.0 if _ % 2 else -35.0)
    rise = [norm.update(-20.0) for _ in range(5)]
    assert rise[-1] > 0.95  # attack: 5 frames of 10 ms are enough
    fall = [norm.update(-90.0) for _ in range(10)]  # below the floor: silence
    assert 0.6 < fall[-1] < 0.95  # release: 100 ms into a 0.5 s release
    assert [norm.update(-90.0) for _ in range(400)][-1] < 0.01


@pytest.mark.parametrize(
    "kwargs,match",
    [({"hop": 300}, "hop=300"), ({"onset_method": "magic"}, "onset_method='magic'"),
     ({"sr": 100}, "sr=100"), ({"intensity_window_s": 0}, "window_s=0")],
)
def test_bad_settings_name_the_value(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        StreamingAnalyzer(**{"sr": 48000, **kwargs})


def test_stereo_block_is_rejected():
    with pytest.raises(ConfigError, match="mono"):
        StreamingAnalyzer(sr=48000).process(np.zeros((512, 2), dtype=np.float32))


def test_skip_stamps_later_events_after_the_gap():
    sr = 48000
    y, truth = generate_click_track(bpm=120, duration_s=4.0, sr=sr)
    half = y.size // 2
    gap_s = 1.25
    analyzer = StreamingAnalyzer(sr=sr)
    first = _onsets(_run(analyzer, y[:half], [1024]))
    analyzer.skip(int(gap_s * sr))
    second = _onsets(_run(analyzer, y[half:], [1024]))
    found = np.concatenate([first, second - gap_s])
    matched = [np.min(np.abs(found - t)) < 0.012 for t in truth]
    assert all(matched) and found.size <= truth.size + 1
    analyzer.reset()  # a new stream starts at 0 again
    assert _onsets(_run(analyzer, y[:half], [1024]))[0] == pytest.approx(truth[0], abs=0.012)


# (aubio's specflux fires again and again on these noise-burst decays: see scripts/bench_audio.py.)
@pytest.mark.parametrize("method", ["flux", "energy", "hfc", "complex"])
def test_each_method_finds_clean_drums(method):
    sr = 44100
    y, truth = generate_drum_pattern(bpm=120, duration_s=6.0, sr=sr, seed=3)
    # aubio's own per-method settings (aubio.onset's defaults for each).
    kwargs = {"hfc": dict(onset_threshold=0.058, onset_compression=1.0),
              "complex": dict(onset_threshold=0.15, onset_whitening=True, onset_compression=1.0),
              "energy": dict(onset_threshold=0.3)}.get(method, {})
    found = _onsets(_run(StreamingAnalyzer(sr=sr, onset_method=method, **kwargs), y, [512]))
    assert _recall(found, truth) >= 0.9 and found.size <= 1.2 * truth.size


def test_whitening_and_compression_reach_aubio_and_change_live():
    a = StreamingAnalyzer(sr=44100, onset_method="specflux", onset_whitening=False, onset_compression=0.0)
    assert a._onset.get_awhitening() == 0 and a._onset.get_compression() == 0.0
    a.set_whitening(True, 10.0)
    assert a._onset.get_awhitening() == 1 and a._onset.get_compression() == 10.0
    with pytest.raises(ConfigError, match="compression=-1"):
        a.set_whitening(True, -1)


def test_flux_rarely_fires_on_steady_noise_and_a_steady_tone():
    sr = 44100
    rng = np.random.default_rng(0)
    t = np.arange(10 * sr) / sr
    y = (0.05 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    found = _onsets(_run(StreamingAnalyzer(sr=sr), y, [512]))
    # White noise at -26 dBFS has no onsets; its ripple crosses the threshold now and then
    # (scripts/bench_audio.py trades this against recall in noisy mixes).
    assert found.size <= 2


def _soft_hats_over_a_chord_in_noise(rng, *, sr: int, duration_s: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Soft hi-hat-like bursts (6-16 kHz noise, 15 ms decay) every 250 ms over a held low chord
    (three sines at -20 dBFS each) in white noise at -40 dBFS: the hats rise a few dB above the
    noise in the high bands only."""
    n = int(duration_s * sr)
    t = np.arange(n) / sr
    y = 0.01 * rng.standard_normal(n) + sum(0.1 * np.sin(2 * np.pi * f0 * t) for f0 in (110.0, 165.0, 220.0))
    times = np.arange(0.5, duration_s - 0.5, 0.25)
    burst_n = int(0.05 * sr)
    freqs = np.fft.rfftfreq(burst_n, 1 / sr)
    band = (freqs > 6000) & (freqs < 16000)
    env = np.exp(-np.arange(burst_n) / (0.015 * sr))
    for onset_s in times:
        spec = np.fft.rfft(rng.standard_normal(burst_n)) * band
        burst = np.fft.irfft(spec, burst_n)
        burst *= 0.013 / burst.std()
        i = int(onset_s * sr)
        y[i : i + burst_n] += burst * env
    return y.astype(np.float32), times


def test_soft_hats_in_noise_are_found_by_the_high_band_function(rng):
    sr = 44100
    y, truth = _soft_hats_over_a_chord_in_noise(rng, sr=sr)
    found = _onsets(_run(StreamingAnalyzer(sr=sr), y, [512]))
    # Precision ~0.9: the noise's ripple in the high bands crosses the threshold now and then.
    assert _recall(found, truth) >= 0.95 and found.size <= 1.15 * truth.size
    # The mean rise over all bands alone (the default before the high-band function) misses most of
    # them: the bins below 4.1 kHz hold only the chord and the noise, and dilute the hats' rise.
    all_bands = StreamingAnalyzer(sr=sr)
    all_bands._flux.high_margin_db = 1e3  # the high-band function never rises
    found = _onsets(_run(all_bands, y, [512]))
    assert _recall(found, truth) <= 0.5


def _legato_semitones(rng, *, sr: int, duration_s: float = 12.0, step_s: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """A bowed-like voice (6 harmonics, 5.5 Hz vibrato) stepping a semitone up or down every 0.5 s between
    G3 and G4, legato: each note rises over 30 ms while the previous one dies away over 80 ms, over two
    held low notes.  No attack stands out; the onset is the change of pitch (12-23 Hz, under one bin
    of a 23 ms window)."""
    n = int(duration_s * sr)
    t = np.arange(n) / sr
    vibrato = 0.003 * np.sin(2 * np.pi * 5.5 * t) * 2 * np.pi / 5.5  # +-0.3 % of the frequency, as phase per Hz

    def voice(f0: float, phase_t: np.ndarray, gain: float) -> np.ndarray:
        phase = 2 * np.pi * f0 * phase_t + vibrato * f0
        return sum(gain / h * np.sin(h * phase) for h in range(1, 7))

    y = voice(98.0, t, 0.08) + voice(146.8, t, 0.08)
    times = np.arange(0.5, duration_s - 0.5, step_s)
    midi = 61
    for onset_s in times:
        midi = int(np.clip(midi + rng.choice([-1, 1]), 55, 67))
        env = np.clip((t - onset_s) / 0.03, 0.0, 1.0)
        env *= np.where(t < onset_s + step_s, 1.0, np.exp(-(t - onset_s - step_s) / 0.08))
        y += env * voice(440.0 * 2 ** ((midi - 69) / 12), t - onset_s, 0.1)
    return (0.5 * y / np.abs(y).max()).astype(np.float32), times


def test_legato_semitone_steps_are_found_through_the_long_window(rng):
    from core.analyzer import BandFlux

    sr = 44100
    y, truth = _legato_semitones(rng, sr=sr)
    found = _onsets(_run(StreamingAnalyzer(sr=sr), y, [512]))
    # This seed's walk: all 22 found.  Other walks find 64-100 % (seeds 0-3): steps low in the range,
    # where a semitone is 12 Hz, are still missed at times; the short bins alone find 5-9 % of each.
    assert _recall(found, truth) >= 0.85 and found.size <= truth.size + 1
    # With the short window's bins alone (the default before the long window, which had no far-margin
    # function either) the steps are not rises: the new pitch sits within the max filter's reach of the old one.
    short = StreamingAnalyzer(sr=sr)
    short._flux = BandFlux(n_bins=short.n_fft // 2 + 1, bin_hz=sr / short.n_fft, min_ioi_frames=short._ioi_frames(),
                           far_margin_db=1e3)
    found = _onsets(_run(short, y, [512]))
    assert _recall(found, truth) <= 0.3


def _notes_in_noise(rng, *, sr: int, duration_s: float = 10.0, gain: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Piano-like notes (2 ms attack, 0.4 s decay, 5 harmonics at gain / h, a random pitch within an octave
    of A4) every 0.3 s in white noise at -34 dBFS: each note lifts a few bins 10-20 dB out of the noise."""
    n = int(duration_s * sr)
    t = np.arange(n) / sr
    y = 0.02 * rng.standard_normal(n)
    times = np.arange(0.5, duration_s - 0.5, 0.3)
    for onset_s in times:
        f0 = 440.0 * 2 ** (rng.integers(-12, 12) / 12)
        i = int(onset_s * sr)
        tt = t[i:] - onset_s
        env = np.minimum(tt / 0.002, 1.0) * np.exp(-tt / 0.4)
        y[i:] += env * sum(gain / h * np.sin(2 * np.pi * h * f0 * tt) for h in range(1, 6))
    return y.astype(np.float32), times


def test_sparse_notes_in_noise_are_found_by_the_far_margin_function(rng):
    sr = 44100
    y, truth = _notes_in_noise(rng, sr=sr)
    found = _onsets(_run(StreamingAnalyzer(sr=sr), y, [512]))
    # This seed: 26 of 30 found, one false (other seeds 0.80-1.00 of them).
    assert _recall(found, truth) >= 0.8 and found.size <= truth.size + 1
    # Without it (the default before) the few bins' rise is diluted by the noise of ~300 bands: 0.33 here,
    # 0.30-0.53 on other seeds.
    no_far = StreamingAnalyzer(sr=sr)
    no_far._flux.far_margin_db = 1e3  # the far-margin function never rises
    found = _onsets(_run(no_far, y, [512]))
    assert _recall(found, truth) <= 0.55

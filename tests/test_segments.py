"""Offline paper analysis: segments tile the song; rate mappings give the right frame counts."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ConfigError, InputError
from core.segments import SCRIPT_MIN_IPS, SCRIPT_SPAN_IPS, analyze_offline, iterations_for
from core.synth import generate_click_track, generate_drum_pattern

SR = 22050  # offline analysis runs at any rate; a low one keeps the tests quick


@pytest.fixture(scope="module")
def drums() -> tuple[np.ndarray, np.ndarray]:
    y, onsets = generate_drum_pattern(bpm=120, duration_s=12.0, sr=SR)
    # second half 20 dB quieter: intensity must follow
    y[y.size // 2 :] *= 0.1
    return y, onsets


def _assert_tiles(analysis, duration_s: float) -> None:
    segs = analysis.segments
    assert segs[0].start_s == 0.0
    assert segs[-1].end_s == pytest.approx(duration_s)
    for a, b in zip(segs[:-1], segs[1:]):
        assert a.end_s == b.start_s  # no gap, no overlap
    assert all(s.end_s > s.start_s and s.iterations >= 1 for s in segs)
    assert all(0.0 <= s.intensity_mean <= s.intensity_max <= 1.0 for s in segs)


@pytest.mark.parametrize("mode", ["beats", "onsets"])
def test_segments_tile_the_file(drums, mode):
    y, _ = drums
    a = analyze_offline(y, SR, segments=mode)
    _assert_tiles(a, y.size / SR)
    assert a.duration_s == pytest.approx(12.0)


def test_beat_segments_follow_the_beat(drums):
    y, onsets = drums
    a = analyze_offline(y, SR, segments="beats")
    assert a.tempo_bpm == pytest.approx(120.0, abs=2.0)
    inner = [s.duration_s for s in a.segments[1:-1]]
    assert np.median(inner) == pytest.approx(0.5, abs=0.03)  # one beat at 120 BPM
    # every beat while the drums play lies on a drum hit, the quiet half included
    playing = a.beats[(a.beats > onsets[0] - 0.1) & (a.beats < onsets[-1] + 0.1)]
    assert playing.max() > 11.0
    assert max(np.min(np.abs(onsets - b)) for b in playing) < 0.05


def test_onset_segments_cut_at_hits(drums):
    y, onsets = drums
    a = analyze_offline(y, SR, segments="onsets")
    cuts = np.array([s.start_s for s in a.segments[1:]])
    loud_hits = onsets[(onsets > 0.4) & (onsets < 5.9)]
    assert all(np.min(np.abs(cuts - t)) < 0.02 for t in loud_hits)


def test_intensity_is_song_global_and_follows_level(drums):
    y, _ = drums
    a = analyze_offline(y, SR)
    assert a.intensity.max() == pytest.approx(1.0) and a.intensity.min() == pytest.approx(0.0)
    first = [s.intensity_mean for s in a.segments if 1.0 < s.start_s and s.end_s < 5.5]
    second = [s.intensity_mean for s in a.segments if s.start_s > 6.5 and s.end_s < 11.5]
    assert min(first) > max(second)


def test_paper_and_script_rates(drums):
    y, _ = drums
    paper = analyze_offline(y, SR, rate="paper", min_ips=5.0, max_ips=50.0)
    script = analyze_offline(y, SR, rate="script")
    expect_paper = sum((5.0 + 45.0 * s.intensity_mean) * s.duration_s for s in paper.segments)
    expect_script = sum((SCRIPT_MIN_IPS + SCRIPT_SPAN_IPS * s.intensity_max) * s.duration_s for s in script.segments)
    assert paper.total_iterations == pytest.approx(expect_paper, abs=1.0)
    assert script.total_iterations == pytest.approx(expect_script, abs=1.0)


def test_iterations_round_on_running_total_and_never_zero():
    durations = np.full(100, 0.0213)  # 100 short segments of 1.28 frames each at 60 it/s
    iters = iterations_for(durations_s=durations, intensity_mean=np.full(100, 0.5),
                           intensity_max=np.ones(100), rate="paper", min_ips=10.0, max_ips=110.0)
    assert iters.min() >= 1
    assert iters.sum() == pytest.approx(60.0 * 2.13, abs=1.0)  # 128, not 100 x round(1.28)
    tiny = iterations_for(durations_s=np.full(10, 0.001), intensity_mean=np.zeros(10),
                          intensity_max=np.zeros(10), rate="paper")
    assert list(tiny) == [1] * 10  # every segment gets at least one frame
    assert list(iterations_for(durations_s=np.array([2.0]), intensity_mean=np.zeros(1),
                               intensity_max=np.ones(1), rate="script")) == [240]  # (10 + 110) * 2 s


def test_silence_is_one_segment_with_zero_intensity():
    a = analyze_offline(np.zeros(SR * 3, dtype=np.float32), SR)
    assert len(a.segments) == 1
    assert a.segments[0].intensity_max == 0.0 and a.segments[0].iterations == 30  # 10 it/s * 3 s


def test_given_onsets_are_used():
    y, truth = generate_click_track(bpm=60, duration_s=5.0, sr=SR)
    a = analyze_offline(y, SR, segments="onsets", onset_times_s=np.array([1.0, 2.5]))
    assert [s.start_s for s in a.segments] == [0.0, 1.0, 2.5]


def test_bad_options():
    y = np.zeros(SR, dtype=np.float32)
    with pytest.raises(ConfigError, match="segments='bars'"):
        analyze_offline(y, SR, segments="bars")
    with pytest.raises(ConfigError, match="rate='fast'"):
        analyze_offline(y, SR, rate="fast")
    with pytest.raises(ConfigError, match="min_ips=50"):
        analyze_offline(y, SR, min_ips=50.0, max_ips=10.0)
    with pytest.raises(InputError, match="samples long"):
        analyze_offline(y[:10], SR)

"""Tempo sources and the beat grid: known tempos in, the right BPM and beat times out."""

from __future__ import annotations

import numpy as np
import pytest

from core.events import Beat
from core.tempo import AudioBeats, BeatGrid, MidiClock, TapTempo, fit_period


def test_tap_tempo_from_jittered_taps_gives_the_bpm(rng):
    # 128 BPM tapped by a human: +-20 ms of jitter on each tap.
    period = 60.0 / 128
    taps = 10.0 + np.arange(8) * period + rng.uniform(-0.02, 0.02, 8)
    tt = TapTempo()
    for t in taps:
        tt.tap(float(t))
    tempo = tt.tempo(taps[-1] + 0.1)
    assert tempo.bpm == pytest.approx(128.0, abs=1.5)
    assert tempo.anchor_s == pytest.approx(10.0 + 7 * period, abs=0.02)


def test_tap_tempo_needs_three_taps_and_forgets_after_a_pause():
    tt = TapTempo(reset_s=2.0)
    tt.tap(0.0)
    tt.tap(0.5)
    assert tt.tempo(0.6) is None  # one interval is not a tempo
    tt.tap(1.0)
    assert tt.tempo(1.1).bpm == pytest.approx(120.0)
    for t in (5.0, 5.4, 5.8):  # a pause: a new count at 150 BPM, the old taps are gone
        tt.tap(t)
    assert tt.tempo(6.0).bpm == pytest.approx(150.0)


def test_a_missed_tap_keeps_its_place():
    # Taps at beats 0, 1, 3, 4 (beat 2 missed): still 100 BPM, not slower.
    p = 0.6
    assert fit_period([0.0, p, 3 * p, 4 * p])[0] == pytest.approx(p)


def test_midi_clock_bpm_and_beat_anchor_from_ticks(rng):
    clock = MidiClock()
    tick = 60.0 / (120 * 24)
    clock.start(0.99)
    times = 1.0 + np.arange(96) * tick + rng.uniform(0, 0.005, 96)  # a driver delivering in 5 ms periods
    for t in times:
        clock.tick(float(t))
    tempo = clock.tempo(times[-1])
    assert tempo.bpm == pytest.approx(120.0, abs=0.5)
    # The first tick after Start is a beat: beats at 1.0, 1.5, 2.0, ...
    assert (tempo.anchor_s - 1.0) / 0.5 == pytest.approx(round((tempo.anchor_s - 1.0) / 0.5), abs=0.02)


def test_midi_clock_bpm_survives_dropped_ticks_and_bursts(rng):
    # 120 BPM; a loaded driver drops 8 of 96 ticks and delivers others late, in bursts.
    tick = 60.0 / (120 * 24)
    times = list(1.0 + np.arange(96) * tick + rng.uniform(0, 0.005, 96))
    for k in (70, 60, 41, 40, 30, 22, 11, 5):
        del times[k]
    times[50] += 0.9 * tick  # late: the next one follows at once
    times[51] = times[50] + 0.001
    times[80] += 0.6 * tick
    clock = MidiClock()
    for t in times:
        clock.tick(float(t))
    assert clock.tempo(times[-1]).bpm == pytest.approx(120.0, abs=0.5)


def test_midi_clock_stop_makes_it_absent_and_start_resets_the_count():
    clock = MidiClock()
    for k in range(30):
        clock.tick(k * 0.02)
    assert clock.tempo(0.6) is not None  # ticks without transport: a clock-only device
    clock.stop(0.6)
    clock.tick(0.62)
    assert clock.tempo(0.62) is None
    clock.start(1.0)
    for k in range(30):
        clock.tick(1.0 + k * 0.02)
    assert clock.tempo(1.6).bpm == pytest.approx(125.0)
    assert clock.tempo(3.0) is None  # no tick for more than timeout_s


def test_the_grid_takes_the_best_source_present():
    clock, taps, audio = MidiClock(), TapTempo(), AudioBeats(latency_s=0.1)
    grid = BeatGrid([clock, taps, audio])
    audio.on_beat(Beat(time_s=10.0, bpm=100.0))
    assert grid.beats(10.05) == [Beat(time_s=pytest.approx(9.9), bpm=100.0)]  # 100 ms earlier
    assert (grid.source, grid.bpm) == ("audio", 100.0)
    for t in (10.2, 10.7, 11.2):
        taps.tap(t)
    assert grid.beats(11.3) == [Beat(time_s=pytest.approx(11.2), bpm=pytest.approx(120.0), index=2)]
    assert grid.source == "taps"
    assert grid.beats(11.4) == []  # no beat due, and none repeated
    assert grid.beats(11.7)[0].time_s == pytest.approx(11.7)
    for k in range(30):
        clock.tick(11.7 + k * 60 / (140 * 24))
    assert grid.beats(12.0) == []  # the clock's beat at 11.7 was given already (by the taps)
    assert grid.source == "clock" and grid.bpm == pytest.approx(140.0)
    clock.stop(12.0)
    grid.beats(12.1)
    assert grid.source == "taps"


def test_nothing_present_gives_no_grid():
    grid = BeatGrid([MidiClock(), TapTempo(), AudioBeats()])
    assert grid.beats(5.0) == [] and grid.source is None and grid.bpm is None


def test_quantized_cues_land_on_the_tapped_grid():
    from core import events as ev
    from core.director import Director

    taps = TapTempo()
    grid = BeatGrid([MidiClock(), taps, AudioBeats()])
    d = Director(refractory_s=0.0, min_scene_s=0.0, quantize="beat")
    for t in (10.0, 10.4, 10.8, 11.2):  # 150 BPM
        taps.tap(t)
    applied_at, cued = None, False
    for frame in range(120):  # two seconds of display frames from 11.2 s
        t = 11.2 + frame / 60
        for beat in grid.beats(t):
            d.on_audio(beat)
        if not cued and t >= 11.3:
            d.on_cue(ev.LyricCue("a red sky"), now_s=t)
            cued = True
        swaps = d.tick(t)
        if swaps and applied_at is None:
            applied_at = swaps[0].time_s
    assert applied_at == pytest.approx(11.6)  # the next tapped beat after the cue


def test_bar_quantized_cue_lands_on_the_dj_clocks_downbeat_not_the_fourth_beat_seen():
    # m2v joins a MIDI clock that started 5 beats ago: the next downbeat is the clock's beat 8,
    # three beats on, not the fourth beat m2v happens to see.
    from core import events as ev
    from core.director import Director

    clock = MidiClock()
    grid = BeatGrid([clock, TapTempo(), AudioBeats()])
    d = Director(refractory_s=0.0, min_scene_s=0.0, quantize="bar", beats_per_bar=4)
    tick = 60.0 / (120 * 24)
    clock.start(0.0)
    seen, applied_at, cued = [], None, False
    for k in range(24 * 12):  # 6 s of a 120 BPM clock; beat n at n / 2 s
        t = k * tick
        clock.tick(t)
        if t < 2.5:
            continue  # m2v is not listening yet (beats 0..4 pass unseen)
        for beat in grid.beats(t):
            seen.append(beat.index)
            d.on_audio(beat)
        if not cued and t >= 2.6:
            d.on_cue(ev.Freeze(True), now_s=t)
            cued = True
        d.tick(t)
        if d.frozen and applied_at is None:
            applied_at = t
    assert seen[:3] == [5, 6, 7]
    assert applied_at == pytest.approx(4.0, abs=0.02)  # beat 8, the clock's downbeat


def test_taps_number_beats_from_the_first_tap_and_a_clock_without_start_does_not():
    taps = TapTempo()
    for t in (10.0, 10.5, 11.0, 11.5):
        taps.tap(t)
    assert taps.tempo(11.5).anchor_beat == 3
    assert BeatGrid([taps]).beats(12.6)[0].index == 5  # the beat at 12.5 s
    clock = MidiClock()
    for k in range(48):
        clock.tick(k * 60.0 / (120 * 24))
    assert clock.tempo(0.98).anchor_beat is None  # no Start seen: the bars are unknown

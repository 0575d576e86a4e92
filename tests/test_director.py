"""The director, driven by synthetic event streams with known answers."""

import pytest

from core import events as ev
from core.director import Director, TargetSpec
from core.errors import ConfigError


def onsets(d, times):
    for t in times:
        d.on_audio(ev.Onset(time_s=t, strength=1.0))


def beats(d, t0, n, bpm=120.0):
    period = 60.0 / bpm
    for i in range(n):
        d.on_audio(ev.Beat(time_s=t0 + i * period, bpm=bpm))


def test_click_train_swaps_on_every_onset_when_spaced_enough():
    d = Director(refractory_s=0.25, min_scene_s=0.5)
    times = [0.5 * k for k in range(1, 9)]  # a click every 0.5 s
    onsets(d, times)
    swaps = d.tick(5.0)
    assert [s.time_s for s in swaps] == times
    assert all(s.kind == "audio" and s.audio_end_s == s.time_s for s in swaps)
    assert d.current.audio_end_s == times[-1]
    assert d.tick(5.1) == []  # each swap is returned once


def test_refractory_drops_double_triggers():
    d = Director(refractory_s=0.25, min_scene_s=0.0)
    onsets(d, [1.0, 1.1, 1.2, 1.3, 2.0])
    # 1.1 and 1.2 are within 0.25 s of 1.0; 1.3 is 0.3 s after the accepted 1.0.
    assert [s.time_s for s in d.tick(3.0)] == [1.0, 1.3, 2.0]
    assert d.counters["onsets_refractory"] == 2


def test_min_scene_length_limits_swap_rate():
    d = Director(refractory_s=0.0, min_scene_s=0.5)
    onsets(d, [1.0, 1.2, 1.4, 1.6, 1.8, 2.0])
    assert [s.time_s for s in d.tick(3.0)] == [1.0, 1.6]
    assert d.counters["onsets_min_scene"] == 4


def test_quantize_values_are_checked():
    with pytest.raises(ConfigError, match="quantize='half'"):
        Director(quantize="half")


def test_lyric_overrides_audio_until_it_expires():
    d = Director(refractory_s=0.0, min_scene_s=0.0)
    onsets(d, [1.0])
    d.on_cue(ev.LyricCue("a red sky", duration_s=2.0), now_s=1.5)
    onsets(d, [2.0, 3.0])  # held: no audio swaps
    swaps = d.tick(3.0)
    assert [(s.time_s, s.kind, s.text) for s in swaps] == [(1.0, "audio", None), (1.5, "lyric", "a red sky")]
    assert d.current.text == "a red sky" and d.held == "lyric"
    # expiry at 3.5 goes back to audio (window ending at the expiry), then onsets swap again
    swaps = d.tick(3.6)
    assert [(s.time_s, s.kind, s.audio_end_s) for s in swaps] == [(3.5, "audio", 3.5)]
    onsets(d, [4.0])
    assert [s.time_s for s in d.tick(4.0)] == [4.0]
    assert d.counters["onsets_held"] == 2


def test_onset_after_expiry_but_before_tick_is_not_held():
    d = Director(min_scene_s=0.0)
    d.on_cue(ev.LyricCue("x", duration_s=1.0), now_s=0.0)
    onsets(d, [1.2])  # the lyric expired at 1.0; the onset comes before any tick
    assert [(s.time_s, s.kind) for s in d.tick(1.3)] == [(0.0, "lyric"), (1.0, "audio"), (1.2, "audio")]


def test_lyric_replaced_cleared_and_renewed():
    d = Director(min_scene_s=0.0)
    d.on_cue(ev.LyricCue("one"), now_s=1.0)
    d.on_cue(ev.LyricCue("two"), now_s=2.0)
    d.on_cue(ev.LyricCue("two", duration_s=1.0), now_s=2.5)  # same text: renew, no swap
    assert [(s.kind, s.text) for s in d.tick(2.6)] == [("lyric", "one"), ("lyric", "two")]
    assert [(s.time_s, s.kind) for s in d.tick(3.6)] == [(3.5, "audio")]
    d.on_cue(ev.LyricCue("three"), now_s=4.0)  # no duration: held until cleared
    assert d.tick(100.0)[0].text == "three" and d.held == "lyric"
    d.on_cue(ev.ClearLyric(), now_s=101.0)
    assert [(s.time_s, s.kind, s.audio_end_s) for s in d.tick(101.0)] == [(101.0, "audio", 101.0)]
    d.on_cue(ev.ClearLyric(), now_s=102.0)  # nothing held: no swap
    assert d.tick(102.0) == []
    assert d.swaps[-1] == {"time": 101.0, "kind": "audio", "text": None}


def test_lyric_cue_ignores_min_scene_length():
    d = Director(min_scene_s=2.0)
    onsets(d, [1.0])
    d.on_cue(ev.LyricCue("now"), now_s=1.1)
    assert [s.kind for s in d.tick(1.1)] == ["audio", "lyric"]


def test_bank_select_holds_prompt_target_with_its_weight():
    d = Director(min_scene_s=0.0, bank=[("neon city", 0.8), ("deep forest", 1.0)])
    d.on_cue(ev.BankSelect(2), now_s=1.0)
    onsets(d, [2.0])
    (s,) = d.tick(2.0)
    assert (s.kind, s.text, s.weight) == ("prompt", "deep forest", 1.0)
    d.on_cue(ev.BankSelect(1), now_s=3.0)
    assert d.current == TargetSpec(kind="prompt", text="neon city", weight=0.8)
    d.on_cue(ev.BankSelect(7), now_s=4.0)  # no such entry: ignored, counted
    assert d.current.text == "neon city" and d.counters["rejected"] == 1
    d.on_cue(ev.LyricCue("words"), now_s=5.0)  # a lyric replaces the bank prompt
    d.on_cue(ev.ClearLyric(), now_s=6.0)
    assert [s.kind for s in d.tick(6.0)] == ["prompt", "lyric", "audio"]


def test_style_prompts_mix_into_every_target_without_a_swap():
    d = Director(min_scene_s=0.0, style_prompts=[("oil painting", 0.5)])
    v0 = d.version
    d.on_cue(ev.PromptCue("35mm film", weight=0.3), now_s=0.5)
    d.on_cue(ev.PromptCue("oil painting", weight=0.7), now_s=0.6)  # replace weight
    assert d.tick(0.6) == [] and d.version > v0
    onsets(d, [1.0])
    (s,) = d.tick(1.0)
    assert s.prompts == (("35mm film", 0.3), ("oil painting", 0.7))
    assert d.current.prompts == s.prompts
    d.on_cue(ev.PromptCue("35mm film", weight=0.0), now_s=1.1)  # weight 0 removes
    assert d.current.prompts == (("oil painting", 0.7),)
    d.on_cue(ev.ClearPrompts(), now_s=1.2)
    assert d.current.prompts == () and d.current.audio_end_s == 1.0


def test_quantize_beat_applies_cue_on_next_reported_beat():
    d = Director(quantize="beat")
    beats(d, 0.0, 2)  # beats at 0.0, 0.5 (120 bpm)
    d.on_cue(ev.LyricCue("on the beat"), now_s=0.62)
    assert d.tick(0.9) == [] and d.pending_cues == 1  # the beat at 1.0 has not come
    d.on_audio(ev.Beat(time_s=0.98, bpm=120.0))  # the tracker reports it a little early
    (s,) = d.tick(1.0)
    assert (s.time_s, s.kind, s.text) == (0.98, "lyric", "on the beat")


def test_quantize_bar_waits_for_the_downbeat():
    d = Director(quantize="bar", beats_per_bar=4)
    beats(d, 0.0, 2)  # beat 0 (downbeat) at 0.0, beat 1 at 0.5
    d.on_cue(ev.Freeze(True), now_s=0.6)
    beats(d, 1.0, 2)  # beats 2, 3
    assert not d.frozen
    d.on_audio(ev.Beat(time_s=2.0, bpm=120.0))  # beat 4: the next downbeat
    assert d.frozen


def test_quantize_falls_back_to_predicted_beat_when_tracker_misses_it():
    d = Director(quantize="beat")
    beats(d, 0.0, 1)  # one beat at 0.0, 120 bpm: grid at 0.5, 1.0, ...
    d.on_cue(ev.LyricCue("late"), now_s=0.7)
    assert d.tick(1.1) == []  # 1.0 predicted; within half a beat of grace
    (s,) = d.tick(1.25)
    assert s.time_s == pytest.approx(1.0)


def test_quantize_without_any_beat_applies_at_once_and_off_flushes():
    d = Director(quantize="bar")
    d.on_cue(ev.LyricCue("no grid"), now_s=1.0)
    assert [s.time_s for s in d.tick(1.0)] == [1.0]
    beats(d, 2.0, 1)
    d.on_cue(ev.LyricCue("waiting"), now_s=2.1)
    d.on_cue(ev.Quantize("off"), now_s=2.2)
    assert [(s.time_s, s.text) for s in d.tick(2.2)] == [(2.2, "waiting")]


def test_show_controls_act_at_once_even_when_quantized():
    d = Director(quantize="bar")
    beats(d, 0.0, 1)
    d.on_cue(ev.Record(True), now_s=0.1)
    d.on_cue(ev.IntensityOverride(0.7), now_s=0.1)
    d.on_cue(ev.Sensitivity(0.4), now_s=0.1)
    d.on_cue(ev.RateRange(2.0, 12.0), now_s=0.1)
    d.on_cue(ev.Blackout(True), now_s=0.1)  # visual: waits for the bar
    assert d.recording and d.intensity_override == 0.7 and d.effective_intensity == 0.7
    assert d.onset_threshold == 0.4 and d.rate_range == (2.0, 12.0)
    assert not d.blackout
    d.on_cue(ev.IntensityOverride(-1.0), now_s=0.2)  # negative: back to the audio
    d.on_audio(ev.Intensity(time_s=0.2, value=0.3))
    assert d.intensity_override is None and d.effective_intensity == 0.3
    d.on_cue(ev.RateRange(5.0, 1.0), now_s=0.3)
    assert d.rate_range == (2.0, 12.0) and d.counters["rejected"] == 1


def test_preset_and_song_requests_go_to_the_app():
    d = Director()
    d.on_cue(ev.PresetSwitch("club"), now_s=0.0)
    d.on_cue(ev.SongSelect(3), now_s=0.0)
    assert d.take_app_requests() == [ev.PresetSwitch("club"), ev.SongSelect(3)]
    assert d.take_app_requests() == []


def test_empty_lyric_clears():
    d = Director()
    d.on_cue(ev.LyricCue("x"), now_s=0.0)
    d.on_cue(ev.LyricCue("  "), now_s=1.0)
    assert [s.kind for s in d.tick(1.0)] == ["lyric", "audio"] and d.held is None


def test_max_scene_renews_a_sustained_audio_scene_but_not_a_held_lyric():
    d = Director(refractory_s=0.0, min_scene_s=0.5, max_scene_s=4.0)
    swaps = []
    for k in range(1, 161):  # a frame tick every 0.1 s for 16 s; onsets at 1 s and 2 s only
        t = round(0.1 * k, 1)
        if t in (1.0, 2.0):
            onsets(d, [t])
        if t == 7.0:
            d.on_cue(ev.LyricCue("a red circle", duration_s=4.0), now_s=t)
        swaps += d.tick(t)
    # before the first onset, 4 s of stream start the audio guidance; then 2 -> 6 renewed; the lyric
    # holds 7..11, its expiry swaps back to audio at 11, renewed 4 s later at 15
    assert [(s.time_s, s.kind) for s in swaps] == [
        (1.0, "audio"), (2.0, "audio"), (6.0, "audio"), (7.0, "lyric"), (11.0, "audio"), (15.0, "audio")]
    renewed = [s for s in swaps if s.time_s in (6.0, 15.0)]
    assert all(s.audio_end_s == s.time_s for s in renewed)  # the window ending at the renewal
    assert d.counters["scene_renewed"] == 2
    off = Director(max_scene_s=0.0)
    onsets(off, [1.0])
    assert [s.time_s for s in off.tick(30.0)] == [1.0]  # 0: onsets only
    with pytest.raises(ConfigError, match="max_scene_s"):
        Director(max_scene_s=-1.0)

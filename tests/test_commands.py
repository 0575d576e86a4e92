"""The pure per-frame step from the director's state to the stages' commands."""

from __future__ import annotations

import pytest

from core import events as ev
from core.commands import Seen, frame_commands
from core.director import Director
from core.presets import RateSection

RATE = RateSection(min_steps_per_s=2.0, max_steps_per_s=10.0, curve_gamma=2.0)


def test_a_new_target_threshold_or_recording_is_commanded_once():
    d = Director(refractory_s=0.0, min_scene_s=0.0, onset_threshold=0.3)
    cmds, seen = frame_commands(d, RATE, Seen(threshold=0.3))
    assert cmds.target is not None and cmds.threshold is None and cmds.record is None  # the first target
    cmds, seen = frame_commands(d, RATE, seen)
    assert cmds.target is None  # nothing changed: nothing to send
    d.on_audio(ev.Onset(time_s=1.0, strength=1.0))
    d.on_cue(ev.Record(True), now_s=1.0)
    d.on_cue(ev.Sensitivity(0.5), now_s=1.0)
    cmds, seen = frame_commands(d, RATE, seen)
    assert cmds.target == d.current and cmds.target.audio_end_s == 1.0
    assert cmds.record is True and cmds.threshold == 0.5
    cmds, seen = frame_commands(d, RATE, seen)
    assert (cmds.target, cmds.record, cmds.threshold) == (None, None, None)
    d.on_cue(ev.Record(False), now_s=2.0)
    assert frame_commands(d, RATE, seen)[0].record is False


def test_rate_follows_intensity_through_the_presets_curve_and_the_live_range():
    d = Director()
    d.on_audio(ev.Intensity(time_s=0.0, value=0.5))
    cmds, _ = frame_commands(d, RATE, Seen())
    assert cmds.rate_hz == pytest.approx(2.0 + 8.0 * 0.25) and cmds.intensity == 0.5
    d.rate_range = (1.0, 5.0)  # /m2v/rate moved it
    assert frame_commands(d, RATE, Seen())[0].rate_hz == pytest.approx(1.0 + 4.0 * 0.25)
    d.on_cue(ev.Freeze(True), now_s=0.0)
    d.on_cue(ev.Blackout(True), now_s=0.0)
    cmds, _ = frame_commands(d, RATE, Seen())
    assert cmds.paused and cmds.blackout

"""Hot reload of the active preset: real files, a real polling thread."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.errors import ConfigError
from live.preset_watcher import PresetUpdate, PresetWatcher

TIMEOUT_S = 5.0


def edit(path: Path, text: str) -> None:
    time.sleep(0.01)  # a human edit never lands in the same clock tick as the previous one
    path.write_text(text)


def next_update(watcher: PresetWatcher, version: int) -> tuple[PresetUpdate, int]:
    update, new_version = watcher.updates.wait_newer(version, TIMEOUT_S)
    assert new_version != version, "no update published"
    assert update is not None
    return update, new_version


def next_error(watcher: PresetWatcher, version: int) -> tuple[str | None, int]:
    text, new_version = watcher.errors.wait_newer(version, TIMEOUT_S)
    assert new_version != version, "no error state published"
    return text, new_version


@pytest.fixture
def user_presets(m2v_home):
    d = m2v_home / "presets"
    d.mkdir()
    (d / "base.toml").write_text('description = "base"\n[rate]\nmax_steps_per_s = 20.0\n')
    (d / "gig.toml").write_text('extends = "base"\n[effects]\npulse = 0.5\n')
    return d


def test_hot_reload_applies_valid_edits_and_rejects_invalid(user_presets):
    callbacks: list[PresetUpdate] = []
    hud: list[str] = []
    watcher = PresetWatcher("gig", poll_s=0.02, on_update=callbacks.append, on_error=hud.append)
    start, version = watcher.updates.get()
    assert start is not None and start.reason == "start" and start.preset.effects.pulse == 0.5
    _, err_version = watcher.errors.get()
    watcher.start()
    try:
        # a live field in the preset's own file
        edit(user_presets / "gig.toml", 'extends = "base"\n[effects]\npulse = 0.9\n')
        update, version = next_update(watcher, version)
        assert update.reason == "edit" and update.preset.effects.pulse == 0.9
        assert update.live_fields == ("effects.pulse",) and update.reload_fields == ()

        # a model field in the parent: applied, and reported as needing a reload
        edit(user_presets / "base.toml", '[rate]\nmax_steps_per_s = 20.0\n[models]\nsize = 128\n')
        update, version = next_update(watcher, version)
        assert update.reload_fields == ("models.size",) and update.preset.models.size == 128

        # an invalid edit: error published for the HUD, last good preset kept, thread alive
        edit(user_presets / "gig.toml", 'extends = "base"\n[effects]\npulse = 0.9\n[guidance]\ncutouts = 0\n')
        text, err_version = next_error(watcher, err_version)
        assert text is not None and "guidance.cutouts" in text and "got 0" in text
        assert hud == [text]
        assert watcher.alive and watcher.current.guidance.cutouts != 0
        assert watcher.updates.get()[1] == version  # nothing published
        assert watcher.counters["errors"] == 1

        # broken TOML also only reports
        edit(user_presets / "gig.toml", "[effects\n")
        text, err_version = next_error(watcher, err_version)
        assert text is not None and "not valid TOML" in text and watcher.alive

        # fixing it applies the edit and clears the error
        edit(user_presets / "gig.toml", 'extends = "base"\n[effects]\npulse = 0.2\n')
        update, version = next_update(watcher, version)
        assert update.preset.effects.pulse == 0.2 and update.live_fields == ("effects.pulse",)
        assert watcher.errors.get()[0] is None
        assert [u.preset.effects.pulse for u in callbacks] == [0.5, 0.9, 0.9, 0.2]
    finally:
        watcher.stop()
    assert not watcher.alive and watcher.error is None
    assert watcher.counters["reloads"] == 3


def test_switch_and_failed_switch(user_presets):
    watcher = PresetWatcher("gig", poll_s=0.02)
    _, version = watcher.updates.get()
    _, err_version = watcher.errors.get()
    watcher.start()
    try:
        watcher.switch("tiny", overrides={"effects": {"flash": 1.0}})
        update, version = next_update(watcher, version)
        assert update.reason == "switch" and update.preset.name == "tiny"
        assert update.preset.effects.flash == 1.0
        assert "models.set" in update.reload_fields and "effects.flash" in update.live_fields

        watcher.switch("nope")
        text, err_version = next_error(watcher, err_version)
        assert text is not None and "unknown preset 'nope'" in text and "tiny" in text
        assert watcher.current.name == "tiny" and watcher.alive
    finally:
        watcher.stop()


def test_user_file_shadowing_the_active_shipped_preset_is_picked_up(m2v_home):
    watcher = PresetWatcher("club", poll_s=0.02)
    _, version = watcher.updates.get()
    watcher.start()
    try:
        (m2v_home / "presets").mkdir()
        edit(m2v_home / "presets" / "club.toml", 'extends = "club"\n[effects]\npulse = 0.01\n')
        update, _ = next_update(watcher, version)
        assert update.preset.effects.pulse == 0.01 and update.live_fields == ("effects.pulse",)
    finally:
        watcher.stop()


def test_invalid_start_is_raised(m2v_home):
    with pytest.raises(ConfigError, match="unknown preset"):
        PresetWatcher("nope")

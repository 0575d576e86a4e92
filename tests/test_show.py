"""Show files: loading, validation, song switching and cue timing."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from core.events import LyricCue
from core.presets import load_preset
from core.show import Cue, ShowState, load_show, parse_time_s

SHOW = """
name = "friday"
preset = "club"

[[songs]]
title = "Opening"
preset = "ambient"
prompt_bank = [{ text = "a slow ocean at dawn" }, { text = "neon rain", weight = 0.5 }]
cues = [{ time_s = "0:12.5", text = "second" }, { time_s = 2.0, text = "first", duration_s = 4.0 }]

[[songs]]
title = "Banger"
cues = [{ time_s = 0, text = "drop" }]

[songs.overrides]
rate = { max_steps_per_s = 12.0 }
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def show(tmp_path, m2v_home):
    return load_show(write(tmp_path / "friday.toml", SHOW))


def test_song_switch_sets_preset_and_cues(show):
    state = ShowState(show)
    assert state.due_cues(100.0) == []  # no song selected yet
    song = state.select("opening", now_s=100.0)
    ambient = load_preset("ambient")
    assert song.index == 1 and song.preset.rate == ambient.rate
    assert [(p.text, p.weight) for p in song.preset.guidance.prompt_bank] == [
        ("a slow ocean at dawn", 1.0), ("neon rain", 0.5)]
    assert [c.text for c in song.cues] == ["first", "second"]  # sorted by time

    # cues are timed from the song's start and come out once each
    assert state.due_cues(101.9) == []
    assert state.due_cues(102.0) == [Cue(2.0, "first", 4.0)]
    assert state.due_cues(105.0) == []
    assert [c.text for c in state.due_cues(200.0)] == ["second"]
    assert state.due_cues(300.0) == []

    song = state.select(2, now_s=300.0)
    club = load_preset("club")
    assert song.title == "Banger"
    assert song.preset.rate.max_steps_per_s == 12.0  # the song's override
    assert song.preset.rate.min_steps_per_s == club.rate.min_steps_per_s  # the show's preset
    assert song.preset.guidance.prompt_bank == club.guidance.prompt_bank
    assert [c.event() for c in state.due_cues(300.0)] == [LyricCue("drop", None)]
    assert state.song_time_s(310.0) == 10.0

    # selecting the first song again restarts its cues
    state.select(1, now_s=400.0)
    assert [c.text for c in state.due_cues(500.0)] == ["first", "second"]


def test_select_by_digit_string_next_and_errors(show):
    state = ShowState(show)
    assert state.select_next(now_s=0.0).title == "Opening"
    assert state.select_next(now_s=1.0).title == "Banger"
    assert state.select_next(now_s=2.0).title == "Banger"  # clamped at the end
    assert state.select_next(now_s=3.0, step=-1).title == "Opening"
    assert state.select("2", now_s=0.0).title == "Banger"
    with pytest.raises(ConfigError, match=r"allowed: 1\.\.2"):
        state.select(3, now_s=0.0)
    with pytest.raises(ConfigError, match="'Opening'"):
        state.select("Encore", now_s=0.0)


def test_show_errors_reported_together(tmp_path, m2v_home):
    path = write(tmp_path / "bad.toml", """
[[songs]]
title = "A"
preset = "clubb"
[[songs]]
title = "a"
preset = "paper"
[songs.overrides]
rate = { curve_gamma = 0 }
[[songs]]
title = "C"
""")
    with pytest.raises(ConfigError) as info:
        load_show(path)
    text = str(info.value)
    assert "4 error(s)" in text  # bad preset, repeated title, bad override, no preset
    assert "songs[0]" in text and "unknown preset 'clubb'" in text and "paper" in text
    assert "songs[1]" in text and "rate.curve_gamma" in text and "title repeats song 1" in text
    assert "songs[2]" in text and "none given" in text
    # with a default preset the third song is fine
    with pytest.raises(ConfigError) as info:
        load_show(path, default_preset="cpu")
    assert "songs[2]" not in str(info.value)


def test_schema_errors_name_the_field(tmp_path, m2v_home):
    path = write(tmp_path / "bad.toml", """
[[songs]]
title = "A"
preset = "paper"
cues = [{ time_s = "soon", text = "x" }, { time_s = 1, txt = "y" }]
""")
    with pytest.raises(ConfigError) as info:
        load_show(path)
    text = str(info.value)
    assert "songs[0].cues[0].time_s" in text and "'soon'" in text
    assert "songs[0].cues[1].txt" in text


def test_preset_path_relative_to_show(tmp_path, m2v_home):
    (tmp_path / "looks").mkdir()
    write(tmp_path / "looks" / "mine.toml", 'extends = "tiny"\n[effects]\nflash = 0.7\n')
    show = load_show(write(tmp_path / "s.toml", '[[songs]]\ntitle = "x"\npreset = "looks/mine.toml"\n'))
    assert show.songs[0].preset.effects.flash == 0.7
    assert show.songs[0].preset.models.set == "tiny"


def test_a_songs_lyrics_file_is_read_by_the_real_lrc_parser(tmp_path, m2v_home):
    (tmp_path / "words").mkdir()
    write(tmp_path / "words" / "song.lrc", "[ar:Someone]\n[00:03.00]from file\n[00:01.50][00:04.25]twice\n")
    show = load_show(write(tmp_path / "s.toml", """
[[songs]]
title = "x"
preset = "tiny"
lyrics = "words/song.lrc"
cues = [{ time_s = 2, text = "inline" }]
"""))
    assert [(c.time_s, c.text) for c in show.songs[0].cues] == [
        (1.5, "twice"), (2.0, "inline"), (3.0, "from file"), (4.25, "twice")]


def test_parse_time():
    assert parse_time_s("1:02.5") == 62.5
    assert parse_time_s("1:00:00") == 3600.0
    assert parse_time_s(4) == 4.0
    with pytest.raises(ValueError):
        parse_time_s("-1")

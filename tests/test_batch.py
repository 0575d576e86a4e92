"""Finding a batch's songs and their lyrics (the renders themselves: tests/test_cluster.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.batch import Song, find_songs
from core.errors import ConfigError, InputError


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_a_folder_gives_its_audio_files_by_name_with_the_lrc_beside_each(tmp_path):
    b, a = _touch(tmp_path / "b.flac"), _touch(tmp_path / "a.wav")
    lrc = _touch(tmp_path / "b.lrc")
    _touch(tmp_path / "notes.txt")
    _touch(tmp_path / "c.lrc")  # lyrics without a song
    assert find_songs(tmp_path) == [Song(a, None), Song(b, lrc)]


def test_a_playlist_gives_its_entries_in_order_relative_to_its_folder(tmp_path):
    one, two = _touch(tmp_path / "music" / "one.mp3"), _touch(tmp_path / "two.ogg")
    lrc = _touch(tmp_path / "music" / "one.lrc")
    playlist = tmp_path / "set.m3u"
    playlist.write_text("#EXTM3U\n# the opener\ntwo.ogg\n\nmusic/one.mp3\n")
    assert find_songs(playlist) == [Song(two, None), Song(one, lrc)]
    assert Song(one, lrc).out(tmp_path / "videos") == tmp_path / "videos" / "one.mp4"
    assert Song(one, lrc).out(None) == tmp_path / "music" / "one.mp4"


def test_a_playlist_entry_that_is_missing_names_its_line(tmp_path):
    playlist = tmp_path / "set.txt"
    playlist.write_text("# songs\nnot-there.wav\n")
    with pytest.raises(InputError, match=r"set.txt:2: no audio file 'not-there.wav'"):
        find_songs(playlist)


def test_songs_with_the_same_name_would_overwrite_each_other(tmp_path):
    _touch(tmp_path / "x" / "song.wav")
    _touch(tmp_path / "y" / "song.wav")
    playlist = tmp_path / "p.m3u8"
    playlist.write_text("x/song.wav\ny/song.wav\n")
    with pytest.raises(InputError, match="rename"):
        find_songs(playlist)


def test_neither_folder_nor_playlist_names_the_forms(tmp_path):
    with pytest.raises(ConfigError, match="folder of audio files or a playlist"):
        find_songs(tmp_path / "song.wav")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no audio files"):
        find_songs(tmp_path / "empty")

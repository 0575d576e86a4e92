"""Lyric/cue files: every format parses to sorted cues; every malformed line names its line."""

from __future__ import annotations

import pytest

from core.errors import InputError
from core.lyrics import Cue, parse_lyrics, parse_lyrics_text

LRC = """\
[ti:Test Song]
[ar:Nobody]
[length: 03:20]

[00:12.00][01:15.50]chorus <00:12.40>line
[00:05.1] first verse
[00:20]
[02:01:25] centiseconds after a colon
"""


def test_lrc_multiple_tags_metadata_and_sorting():
    cues = parse_lyrics_text(LRC, fmt="lrc")
    assert cues == [
        Cue(5.1, "first verse"),
        Cue(12.0, "chorus line"),
        Cue(20.0, ""),  # an empty lyric: clears the text at 20 s
        Cue(75.5, "chorus line"),
        Cue(121.25, "centiseconds after a colon"),
    ]


@pytest.mark.parametrize("offset,first", [("+500", 4.6), ("-250", 5.35), ("+9000", 0.0)])
def test_lrc_offset_shifts_every_cue(offset, first):
    cues = parse_lyrics_text(f"[offset:{offset}]\n[00:05.10]a\n[00:10.00]b\n")
    shift = first - 5.1 if first else 0.0
    assert cues[0].time_s == pytest.approx(first)
    if first:
        assert cues[1].time_s == pytest.approx(10.0 + shift)


def test_paper_csv_with_header_and_commas_in_text(tmp_path):
    path = tmp_path / "lyrics.csv"
    path.write_text('timestamp,text\n00:31,"Hello, darkness"\n00:05,intro words\n1:02.5,more, unquoted\n\n')
    assert parse_lyrics(path) == [Cue(5.0, "intro words"), Cue(31.0, "Hello, darkness"), Cue(62.5, "more, unquoted")]


def test_csv_without_header_detected_from_content():
    assert parse_lyrics_text("00:01,a\n00:02,b\n") == [Cue(1.0, "a"), Cue(2.0, "b")]


def test_plain_lines(tmp_path):
    path = tmp_path / "cues.txt"
    path.write_text("# show cues\n00:03 sunrise over the sea\n\n10:00.5 finale\n00:01 start\n")
    assert parse_lyrics(path) == [Cue(1.0, "start"), Cue(3.0, "sunrise over the sea"), Cue(600.5, "finale")]


def test_utf8_bom_and_non_ascii(tmp_path):
    path = tmp_path / "bom.lrc"
    path.write_bytes("\ufeff[00:01.00]Ça va, 東京\n".encode("utf-8"))
    assert parse_lyrics(path) == [Cue(1.0, "Ça va, 東京")]


@pytest.mark.parametrize(
    "name,text,line,expected",
    [
        ("bad.lrc", "[00:01.00]ok\njust words\n", 2, r"\[mm:ss.xx\] text"),
        ("bad.lrc", "[ar:x]\n\n[00:0a.00]typo\n", 3, r"\[mm:ss.xx\] text"),
        ("bad.lrc", "[00:01.00][chorus]oops\n", 1, "time tags"),
        ("bad.lrc", "[offset:soon]\n", 1, "offset"),
        ("bad.lrc", "[00:01]ok\n[ti:unclosed\n", 2, r"\[mm:ss.xx\] text"),
        ("bad.csv", "timestamp,text\n00:01,a\nlater,b\n", 3, "MM:SS,text"),
        ("bad.csv", "00:01,a\n00:02\n", 2, "comma after the time"),
        ("bad.txt", "00:01 fine\n1:2:3:4 what\n", 2, "MM:SS text"),
        ("bad.txt", "00:01 fine\n00:99 no such second\n", 2, "MM:SS text"),
    ],
)
def test_malformed_lines_give_file_and_line(tmp_path, name, text, line, expected):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError, match=rf"{name} line {line}: expected .*{expected}.*got "):
        parse_lyrics(path)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(InputError, match="not found.*nope.lrc"):
        parse_lyrics(tmp_path / "nope.lrc")
    blob = tmp_path / "x.lrc"
    blob.write_bytes(b"\xff\xfe\x00\x00garbage")
    with pytest.raises(InputError, match="not UTF-8"):
        parse_lyrics(blob)


def test_cue_is_frozen():
    with pytest.raises(AttributeError):
        Cue(1.0, "a").text = "b"

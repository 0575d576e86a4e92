"""Timed lyrics and cues from files: LRC, the paper's CSV, and plain ``MM:SS text``.

All three become a sorted list of :class:`Cue`.  The format is chosen by the file
extension (``.lrc``, ``.csv``) or else by the first meaningful line.  A line that
does not fit raises :class:`~core.errors.InputError` with the file, the line number,
what was expected and what was found.

- LRC: ``[mm:ss.xx] text``; several time tags on one line give the same text at
  each time; ``[offset:+/-ms]`` shifts every cue (positive = earlier, as in the LRC
  convention); ``[ar:]``, ``[ti:]`` and other ``[tag:value]`` lines are ignored;
  enhanced-LRC word times ``<mm:ss.xx>`` are removed from the text.
- CSV (the Music2Video paper's lyric files): ``timestamp,text`` per row with
  ``MM:SS`` (or ``MM:SS.xx``) times, an optional header row, quoted text allowed.
- Plain: ``MM:SS text`` (or ``MM:SS.xx text``) per line.

Blank lines and lines starting with ``#`` are skipped in CSV and plain files.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.errors import InputError

__all__ = ["Cue", "parse_lyrics", "parse_lyrics_text", "LYRIC_FORMATS"]

LyricFormat = Literal["lrc", "csv", "plain"]
LYRIC_FORMATS = ("lrc", "csv", "plain")


@dataclass(frozen=True, slots=True)
class Cue:
    time_s: float
    text: str


# mm:ss, mm:ss.xx or mm:ss:xx (some editors write centiseconds after a colon); minutes may exceed 59.
_TIME = r"(\d{1,3}):([0-5]?\d)(?:[.:](\d{1,3}))?"
_TIME_RE = re.compile(rf"^{_TIME}$")
_LRC_TIME_TAG = re.compile(rf"\[{_TIME}\]")
_LRC_LEADING_TAGS = re.compile(r"^(\s*\[[^\]]*\])+")
_LRC_META = re.compile(r"^\[([A-Za-z#]+)\s*:(.*)\]$")
_LRC_WORD_TIME = re.compile(rf"<{_TIME}>")
_PLAIN_RE = re.compile(rf"^\s*({_TIME})(?:\s+(.*))?$")


def _seconds(minutes: str, seconds: str, fraction: str | None) -> float:
    frac = int(fraction) / 10 ** len(fraction) if fraction else 0.0
    return int(minutes) * 60 + int(seconds) + frac


def _parse_time(value: str) -> float | None:
    m = _TIME_RE.match(value.strip())
    return _seconds(*m.groups()) if m else None


def _error(source: str, line_no: int, expected: str, line: str) -> InputError:
    shown = line if len(line) <= 60 else line[:57] + "..."
    return InputError(f"{source} line {line_no}: expected {expected}, got {shown!r}")


def _parse_lrc(lines: list[str], source: str) -> list[Cue]:
    cues: list[tuple[float, str]] = []
    offset_s = 0.0
    expected = "'[mm:ss.xx] text' (e.g. '[01:02.50] hello') or a '[tag:value]' line"
    for n, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        lead = _LRC_LEADING_TAGS.match(line)
        if not lead:
            raise _error(source, n, expected, line)
        tags = lead.group(0)
        text = line[lead.end() :]
        times = _LRC_TIME_TAG.findall(tags)
        if times:
            # Every leading tag must be a time tag: '[01:02][xx]' is a typo, not a lyric.
            if len(times) != len(re.findall(r"\[", tags)):
                raise _error(source, n, "time tags '[mm:ss.xx]' before the text", line)
            text = _LRC_WORD_TIME.sub("", text).strip()
            cues.extend((_seconds(*t), text) for t in times)
            continue
        meta = _LRC_META.match(line)
        if not meta:
            raise _error(source, n, expected, line)
        key, value = meta.group(1).lower(), meta.group(2).strip()
        if key == "offset":
            try:
                offset_s = int(value) / 1000.0
            except ValueError:
                raise _error(source, n, "'[offset:+/-milliseconds]' (e.g. '[offset:-250]')", line) from None
        # other tags (ar, ti, al, by, length, re, ve, #...) carry no timing: ignored
    # LRC convention: a positive offset makes lyrics come sooner.
    return [Cue(time_s=max(0.0, t - offset_s), text=s) for t, s in cues]


def _parse_csv(lines: list[str], source: str) -> list[Cue]:
    cues = []
    expected = "'MM:SS,text' (e.g. '01:02,hello')"
    seen_row = False
    reader = csv.reader(lines)
    for row in reader:
        n = reader.line_num  # physical line, also after a quoted multi-line field
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        t = _parse_time(row[0])
        if t is None:
            if not seen_row and not any(_parse_time(c) is not None for c in row):
                seen_row = True  # header row such as 'timestamp,text'
                continue
            raise _error(source, n, expected, lines[n - 1].rstrip("\r\n"))
        if len(row) < 2:
            raise _error(source, n, expected + " with a comma after the time", lines[n - 1].rstrip("\r\n"))
        seen_row = True
        cues.append(Cue(time_s=t, text=",".join(row[1:]).strip()))
    return cues


def _parse_plain(lines: list[str], source: str) -> list[Cue]:
    cues = []
    for n, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _PLAIN_RE.match(line)
        if not m:
            raise _error(source, n, "'MM:SS text' (e.g. '01:02 hello')", line)
        cues.append(Cue(time_s=_seconds(m.group(2), m.group(3), m.group(4)), text=(m.group(5) or "").strip()))
    return cues


def _detect(lines: list[str], suffix: str) -> LyricFormat:
    if suffix == ".lrc":
        return "lrc"
    if suffix == ".csv":
        return "csv"
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            return "lrc"
        if _PLAIN_RE.match(line) and not re.match(rf"^{_TIME}\s*,", line):
            return "plain"
        return "csv" if "," in line else "plain"
    return "plain"


_PARSERS = {"lrc": _parse_lrc, "csv": _parse_csv, "plain": _parse_plain}


def parse_lyrics_text(text: str, *, source: str = "<string>", fmt: LyricFormat | None = None) -> list[Cue]:
    """Parse lyrics given as a string; ``fmt`` forces a format, else it is detected."""
    if text.startswith("\ufeff"):
        text = text[1:]  # UTF-8 BOM, common in files from Windows editors
    lines = text.splitlines()
    suffix = Path(source).suffix.lower() if not source.startswith("<") else ""
    chosen = fmt or _detect(lines, suffix)
    if chosen not in _PARSERS:
        raise InputError(f"lyrics format {chosen!r}: expected one of {', '.join(LYRIC_FORMATS)}")
    cues = _PARSERS[chosen](lines, source)
    return sorted(cues, key=lambda c: c.time_s)  # stable: same-time cues keep file order


def parse_lyrics(path: str | Path, *, fmt: LyricFormat | None = None) -> list[Cue]:
    """Read a lyrics/cue file (LRC, CSV or plain ``MM:SS text``) into sorted cues."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"lyrics file not found: {str(p)!r}; check the path") from None
    except IsADirectoryError:
        raise InputError(f"{str(p)!r} is a folder; give a lyrics file (.lrc, .csv or .txt)") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"lyrics file {str(p)!r} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                         "save it as UTF-8") from None
    return parse_lyrics_text(text, source=str(p), fmt=fmt)

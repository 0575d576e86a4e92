"""Show files: the setlist of a gig, each song with its preset, prompts and lyric cues.

A show file is TOML::

    name = "Friday at the Roxy"
    preset = "club"                      # songs without their own preset use this

    [[songs]]
    title = "Opening"
    preset = "ambient"                   # a preset name, or a path relative to this file
    prompt_bank = [{ text = "a slow ocean at dawn", weight = 1.0 }]
    lyrics = "opening.lrc"               # any format core.lyrics reads; relative to this file
    cues = [{ time_s = 12.0, text = "hello" }, { time_s = "1:02.5", text = "goodbye" }]

    [songs.overrides]                    # any preset fields, just for this song
    rate = { max_steps_per_s = 10 }

Cue times are seconds from the song's start (a number, or "m:ss.s").  Everything is
validated when the file loads -- schema, every song's preset, lyric files -- and all
errors are reported at once, like presets.  :class:`ShowState` is the pure state
machine the live app drives: select a song (OSC ``/m2v/song i|s`` or a key), then ask
for the cues that are due.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import Any, Mapping, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import ConfigError, InputError
from core.events import LyricCue
from core.presets import Preset, WeightedPrompt, apply_overrides, load_preset

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - python 3.10
    import tomli as tomllib


def parse_time_s(value: float | int | str) -> float:
    """Seconds from a number or a 'm:ss(.s)' / 'h:mm:ss(.s)' string."""
    if isinstance(value, bool):
        raise ValueError("time must be seconds or 'm:ss.s'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = re.fullmatch(r"\s*(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)\s*", value)
        if m:
            h, mm, ss = m.groups()
            seconds = int(h or 0) * 3600 + int(mm) * 60 + float(ss)
        else:
            try:
                seconds = float(value)
            except ValueError:
                raise ValueError(f"time must be seconds or 'm:ss.s'; got {value!r}") from None
    if not seconds >= 0:
        raise ValueError(f"time must be >= 0 s; got {value!r}")
    return seconds


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CueSpec(_Spec):
    time_s: Union[float, str] = Field(description="seconds from the song's start, or 'm:ss.s'")
    text: str = Field(min_length=1, description="lyric text shown / used as the CLIP target")
    duration_s: float | None = Field(None, gt=0, description="how long the cue holds (none: until the next)")

    @field_validator("time_s")
    @classmethod
    def _time(cls, value: float | str) -> float:
        return parse_time_s(value)


class SongSpec(_Spec):
    title: str = Field(min_length=1, description="song title, used by /m2v/song s")
    preset: str | None = Field(None, description="preset name or path (default: the show's preset)")
    prompt_bank: list[WeightedPrompt] | None = Field(None, description="replaces the preset's prompt bank")
    lyrics: str | None = Field(None, min_length=1, description="lyric file, relative to the show file")
    cues: list[CueSpec] = Field(default_factory=list, description="inline lyric cues")
    overrides: dict[str, Any] = Field(default_factory=dict, description="preset fields for this song only")


class ShowSpec(_Spec):
    name: str = Field("", description="show name (default: the file name)")
    description: str = Field("", description="one line about the show")
    preset: str | None = Field(None, description="preset for songs that name none")
    songs: list[SongSpec] = Field(min_length=1, description="the setlist, in order")


@dataclasses.dataclass(frozen=True)
class Cue:
    """A lyric cue, ``time_s`` seconds after its song starts."""

    time_s: float
    text: str
    duration_s: float | None = None

    def event(self) -> LyricCue:
        """The typed event the director consumes."""
        return LyricCue(text=self.text, duration_s=self.duration_s)


@dataclasses.dataclass(frozen=True)
class Song:
    """One resolved song: its preset (with the song's prompt bank and overrides applied) and cues."""

    index: int  # 1-based
    title: str
    preset: Preset
    cues: tuple[Cue, ...]
    preset_ref: str | Path  # what to load again on hot reload
    overrides: Mapping[str, Any]  # applied on top of preset_ref (prompt bank included)


@dataclasses.dataclass(frozen=True)
class Show:
    name: str
    description: str
    path: Path
    songs: tuple[Song, ...]

    def titles(self) -> list[str]:
        return [s.title for s in self.songs]


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def _coerce_cue(item: Any) -> Cue:
    """Accept what a lyric parser may return: objects with time_s/text, dicts, or (time, text) pairs."""
    if isinstance(item, Cue):
        return item
    if isinstance(item, Mapping):
        get = item.get
    elif isinstance(item, (tuple, list)) and len(item) >= 2:
        return Cue(parse_time_s(item[0]), str(item[1]))
    else:
        def get(key: str, default: Any = None) -> Any:
            return getattr(item, key, default)
    time = get("time_s", None)
    if time is None:
        time = get("time", None)
    text = get("text", None)
    if time is None or text is None:
        raise InputError(f"lyric entry {item!r} has no time_s/text")
    return Cue(parse_time_s(time), str(text), get("duration_s", None))


def _read_lyrics(path: Path) -> list[Cue]:
    try:
        from core.lyrics import parse_lyrics
    except ImportError as exc:
        raise ConfigError(f"lyric files need core.lyrics, which is not available ({exc}); "
                          "use inline cues = [{ time_s = ..., text = ... }] instead") from None
    return [_coerce_cue(item) for item in parse_lyrics(path)]


def load_show(path: str | Path, *, user_dir: Path | str | None = None,
              default_preset: str | None = None) -> Show:
    """Load and fully validate a show file; ConfigError lists every problem with its song.

    ``default_preset`` is used for songs when neither the song nor the show names a preset
    (the live app passes :func:`core.presets.default_preset_name`).
    """
    path = Path(path).expanduser()
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: show file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        spec = ShowSpec.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}: {_loc(tuple(e['loc']))}: {e['msg'].removeprefix('Value error, ')} "
                 f"(got {e['input']!r})" for e in exc.errors()]
        raise ConfigError(f"show {path} has {len(lines)} error(s):\n  " + "\n  ".join(lines)) from None

    errors: list[str] = []
    seen: dict[str, int] = {}
    songs: list[Song] = []
    base = path.parent
    for i, song in enumerate(spec.songs):
        where = f"{path}: songs[{i}] ({song.title!r})"
        key = song.title.casefold()
        if key in seen:
            errors.append(f"{where}: title repeats song {seen[key]}; titles must be unique")
        seen[key] = i + 1
        ref_name = song.preset or spec.preset or default_preset
        if ref_name is None:
            errors.append(f"{where}: preset: none given; set preset for the song or the show")
            continue
        ref: str | Path = ref_name
        if "/" in ref_name or ref_name.endswith(".toml"):
            ref = (base / ref_name).resolve()
        overrides = dict(song.overrides)
        if song.prompt_bank is not None:
            guidance = dict(overrides.get("guidance", {}))
            guidance["prompt_bank"] = [p.model_dump() for p in song.prompt_bank]
            overrides["guidance"] = guidance
        try:
            preset = load_preset(ref, user_dir=user_dir)
            if overrides:
                preset = apply_overrides(preset, overrides, origin=f"{path} songs[{i}].overrides")
        except ConfigError as exc:
            errors.append(f"{where}: preset: {exc}")
            continue
        cues = [Cue(c.time_s, c.text, c.duration_s) for c in song.cues]  # type: ignore[arg-type]
        if song.lyrics is not None:
            try:
                cues += _read_lyrics((base / song.lyrics).resolve())
            except (ConfigError, InputError) as exc:
                errors.append(f"{where}: lyrics: {exc}")
                continue
        cues.sort(key=lambda c: c.time_s)
        songs.append(Song(i + 1, song.title, preset, tuple(cues), ref, overrides))
    if errors:
        raise ConfigError(f"show {path} has {len(errors)} error(s):\n  " + "\n  ".join(errors))
    return Show(spec.name or path.stem, spec.description, path, tuple(songs))


class ShowState:
    """Which song is playing and which of its cues are due; pure (times in, cues out).

    ``now_s`` is stream time in seconds; a song's cues are timed from the ``now_s`` at
    which it was selected.
    """

    def __init__(self, show: Show) -> None:
        self.show = show
        self.current: Song | None = None
        self.start_s = 0.0
        self._next = 0  # index of the next cue of the current song

    def find(self, song: int | str) -> Song:
        """A song by 1-based index or by title (case-insensitive; a digit string is an index)."""
        songs = self.show.songs
        if isinstance(song, str):
            for s in songs:
                if s.title.casefold() == song.strip().casefold():
                    return s
            if not song.strip().isdigit():
                raise ConfigError(f"no song titled {song!r}; songs: "
                                  + ", ".join(f"{s.index} {s.title!r}" for s in songs))
            song = int(song)
        if not 1 <= song <= len(songs):
            raise ConfigError(f"song {song} out of range; allowed: 1..{len(songs)}")
        return songs[song - 1]

    def select(self, song: int | str, *, now_s: float) -> Song:
        """Start ``song`` at stream time ``now_s``; returns it (its ``preset`` and ``cues``)."""
        self.current = self.find(song)
        self.start_s = float(now_s)
        self._next = 0
        return self.current

    def select_next(self, *, now_s: float, step: int = 1) -> Song:
        """The next (or with ``step=-1`` previous) song, clamped to the setlist."""
        index = 0 if self.current is None else self.current.index - 1 + step
        index = min(max(index, 0), len(self.show.songs) - 1)
        return self.select(index + 1, now_s=now_s)

    def song_time_s(self, now_s: float) -> float:
        """Seconds since the current song started."""
        return float(now_s) - self.start_s

    def due_cues(self, now_s: float) -> list[Cue]:
        """Cues of the current song whose time has come since the last call, each once, in order."""
        if self.current is None:
            return []
        t = self.song_time_s(now_s)
        cues = self.current.cues
        start = self._next
        while self._next < len(cues) and cues[self._next].time_s <= t:
            self._next += 1
        return list(cues[start:self._next])

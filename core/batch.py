"""``m2v render --batch``: many songs, each rendered whole by one task (on Ray) or one after another.

Songs come from a folder (its audio files, by name) or a playlist (``.m3u``, ``.m3u8`` or
``.txt``: one path a line, relative to the playlist, ``#`` lines skipped).  A song's
lyrics are the ``.lrc`` file with the same name beside it, when there is one.  Each
song's output is ``OUT_DIR/NAME.mp4`` with its sidecar ``NAME.json`` (beside the song
without ``--out``); with ``--resume`` a song whose video and sidecar exist is kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from core.errors import ConfigError, InputError

__all__ = ["Song", "find_songs", "render_batch", "BatchResult", "AUDIO_SUFFIXES", "PLAYLIST_SUFFIXES"]

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
PLAYLIST_SUFFIXES = (".m3u", ".m3u8", ".txt")


@dataclass(frozen=True)
class Song:
    audio: Path
    lyrics: Path | None = None

    def out(self, out_dir: Path | None) -> Path:
        return (out_dir or self.audio.parent) / (self.audio.stem + ".mp4")


def _lyrics_beside(audio: Path) -> Path | None:
    lrc = audio.with_suffix(".lrc")
    return lrc if lrc.is_file() else None


def _playlist(path: Path) -> list[Path]:
    entries = []
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        audio = (path.parent / line).expanduser()
        if not audio.is_file():
            raise InputError(f"{path}:{n}: no audio file {line!r} (paths are relative to the playlist's folder)")
        entries.append(audio)
    return entries


def find_songs(source: str | Path) -> list[Song]:
    """The songs of a folder or playlist, each with its ``.lrc`` lyrics when one lies beside it."""
    source = Path(source).expanduser()
    if source.is_dir():
        audio = sorted(p for p in source.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
    elif source.is_file() and source.suffix.lower() in PLAYLIST_SUFFIXES:
        audio = _playlist(source)
    else:
        raise ConfigError(f"--batch {source}: give a folder of audio files or a playlist "
                          f"({', '.join(PLAYLIST_SUFFIXES)})")
    if not audio:
        raise InputError(f"--batch {source}: no audio files ({', '.join(AUDIO_SUFFIXES)}) found")
    stems = [a.stem for a in audio]
    twins = sorted({s for s in stems if stems.count(s) > 1})
    if twins:
        raise InputError(f"--batch {source}: several songs named {twins}; their videos would overwrite each "
                         "other in one --out folder: rename them")
    return [Song(a, _lyrics_beside(a)) for a in audio]


@dataclass
class BatchResult:
    #: per song: audio, out, status ('rendered' or 'kept'), and on Ray the worker
    songs: list[dict]
    workers: list[dict] = field(default_factory=list)
    wall_s: float = 0.0


def _is_done(song: Song, out_dir: Path | None) -> bool:
    out = song.out(out_dir)
    return out.is_file() and out.with_suffix(".json").is_file()


def render_batch(songs: Sequence[Song], out_dir: Path | None, *, settings, models=None, recipe=None,
                 ray_address: str | None = None, resume: bool = False, progress: bool = True,
                 cpus_per_task: int = 1) -> BatchResult:
    """Render every song: on Ray (``ray_address`` and a ``recipe``) one task per song, else here with ``models``."""
    from core.lyrics import parse_lyrics
    from core.video import check_writable

    if out_dir is not None and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir}: with --batch it is a folder, and it does not exist; create it first")
    work = []
    rows = []
    for song in songs:
        out = song.out(out_dir)
        if resume and _is_done(song, out_dir):
            rows.append({"audio": str(song.audio), "out": str(out), "status": "kept"})
            continue
        check_writable(out)
        work.append((song, out, parse_lyrics(song.lyrics) if song.lyrics else []))  # bad lyrics fail before work
    if ray_address is None:
        return BatchResult(rows + _render_here(work, settings=settings, models=models, resume=resume,
                                               progress=progress))
    done, workers, wall_s = _render_on_ray(work, settings=settings, recipe=recipe, address=ray_address,
                                           progress=progress, cpus_per_task=cpus_per_task, kept=len(rows))
    return BatchResult(rows + done, workers, wall_s)


def _render_here(work, *, settings, models, resume, progress) -> list[dict]:
    from core.render import render

    rows = []
    for song, out, cues in work:
        render(song.audio, out, settings=settings, models=models, cues=cues, resume=resume, progress=progress)
        rows.append({"audio": str(song.audio), "out": str(out), "status": "rendered"})
    return rows


def _render_on_ray(work, *, settings, recipe, address, progress, cpus_per_task, kept):
    from core.cluster import _bar, _remote, connect, run_tasks, task_resources, worker_summary

    connect(address)
    actor = _remote("progress").remote()
    opts = task_resources(recipe, cpus_per_task=cpus_per_task)
    submit = {_remote("song").options(**opts).remote(recipe, song.audio.name, song.audio.read_bytes(), cues,
                                                      settings, actor): (song, out)
              for song, out, cues in work}
    results, rows = [], []

    def land(key, result):
        song, out = key
        out.write_bytes(result["video"])
        sidecar = {**result["sidecar"], "audio": str(song.audio), "worker": result["worker"]}
        out.with_suffix(".json").write_text(json.dumps(sidecar, indent=2))
        results.append(result)
        rows.append({"audio": str(song.audio), "out": str(out), "status": "rendered", "worker": result["worker"]})

    bar = _bar(len(work) + kept, kept, "batch (ray)", progress)
    bar.unit = "song"
    try:
        wall_s = run_tasks(submit, progress_actor=actor, bar=bar, done_count=kept, n_total=len(work) + kept,
                           on_result=land, bar_start=kept, what="songs")
    finally:
        bar.close()
    return rows, worker_summary(results, wall_s=wall_s), wall_s

"""Splitting one song's render into chunks that separate workers render (pure: no models, no Ray).

A render's unit of work is the segment (:func:`core.render.plan_segments`): one guidance
for all its iterations.  A *chunk* is a run of whole segments, so every cut falls on a
scene boundary (a beat or lyric segment), where the picture changes anyway.

A chunk after the first cannot have the latent the single-machine render would reach
after everything before it, without rendering everything before it.  It approximates
that state with a *warm-up*: the segments of the ``warmup_s`` seconds before its start
run through the same per-segment loop (targets, crossfade, Eq. 1 anchor), writing no
frames.  What is left of the seam is then spread out: each chunk but the last runs on
into the next chunk's first segments for ``fade_frames`` frames (its *tail*), and the
next chunk's first frames crossfade from that tail into its own
(:func:`core.chunked.crossfade_seams`), as two takes of one shot are dissolved.  The
seams are measured by :func:`seam_stats`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from core.errors import ConfigError

__all__ = ["ChunkPlan", "plan_chunks", "frame_change", "seam_stats", "SEAM_TARGET_RATIO"]

#: the issue's target: the change across a seam at most 1.5x the mean change inside chunks
SEAM_TARGET_RATIO = 1.5


@dataclass(frozen=True)
class ChunkPlan:
    """Segments ``first..last`` (inclusive) rendered by one task, after running ``warmup`` unwritten."""

    index: int
    first: int
    last: int
    start_s: float
    end_s: float
    frames: int
    iterations: int
    #: segment indices run before the chunk without writing frames (empty for the first chunk)
    warmup: tuple[int, ...] = ()
    #: the next chunk's first segments, run after this chunk to render ``fade_frames`` tail frames
    tail: tuple[int, ...] = ()
    fade_frames: int = 0
    tail_iterations: int = 0

    @property
    def segments(self) -> range:
        return range(self.first, self.last + 1)

    def describe(self) -> dict:
        return {"index": self.index, "first_segment": self.first, "last_segment": self.last,
                "start": self.start_s, "end": self.end_s, "frames": self.frames, "iterations": self.iterations,
                "warmup_segments": list(self.warmup), "tail_segments": list(self.tail),
                "fade_frames": self.fade_frames, "tail_iterations": self.tail_iterations}


def _cut_points(plans: Sequence, min_chunk_s: float) -> list[int]:
    """Indices of the first segment of each chunk: a cut after the running length reaches the minimum;
    a tail shorter than the minimum joins the chunk before it."""
    starts = [0]
    for i in range(1, len(plans)):
        if plans[i].start_s - plans[starts[-1]].start_s >= min_chunk_s:
            starts.append(i)
    if len(starts) > 1 and plans[-1].end_s - plans[starts[-1]].start_s < min_chunk_s:
        starts.pop()
    return starts


def _warmup(plans: Sequence, first: int, warmup_s: float) -> tuple[int, ...]:
    """The segments that end within ``warmup_s`` before segment ``first`` starts (at least the one just
    before it when ``warmup_s`` > 0: its end is the chunk's start)."""
    if first == 0 or warmup_s <= 0:
        return ()
    since = plans[first].start_s - warmup_s
    j = first - 1
    while j > 0 and plans[j - 1].end_s > since:
        j -= 1
    return tuple(range(j, first))


def _tail(plans: Sequence, first: int, frames: int) -> tuple[tuple[int, ...], int, int]:
    """The segments from ``first`` on that hold the next ``frames`` output frames, how many there are
    (fewer when the song ends first) and the iterations that make them (the last segment is cut
    after the iteration of the last frame it lends)."""
    seg, n, its = [], 0, 0
    for p in plans[first:]:
        if n >= frames:
            break
        seg.append(p.index)
        take = min(len(p.frames), frames - n)
        its += p.frame_iteration[take - 1] + 1 if take < len(p.frames) else p.iterations
        n += take
    return tuple(seg), n, its


def plan_chunks(plans: Sequence, *, min_chunk_s: float, warmup_s: float = 0.0,
                fade_frames: int = 0) -> list[ChunkPlan]:
    """Cut a segment plan into chunks of at least ``min_chunk_s`` seconds (the last may be longer).

    Every segment belongs to exactly one chunk, in order; a song shorter than twice
    the minimum is one chunk.  ``warmup_s`` picks each later chunk's warm-up segments;
    ``fade_frames`` (> 0) gives each chunk but the last the tail it renders for the crossfade.
    """
    if not plans:
        raise ConfigError("nothing to split: the song has no segments")
    if min_chunk_s <= 0:
        raise ConfigError(f"chunk_min_s={min_chunk_s!r}: must be > 0 seconds (e.g. 30)")
    if warmup_s < 0:
        raise ConfigError(f"warmup_s={warmup_s!r}: must be >= 0 seconds (0: chunks start cold)")
    if fade_frames < 0:
        raise ConfigError(f"fade_frames={fade_frames!r}: must be >= 0 (0: hard cuts between chunks)")
    starts = _cut_points(plans, min_chunk_s)
    chunks = []
    for k, first in enumerate(starts):
        last = (starts[k + 1] if k + 1 < len(starts) else len(plans)) - 1
        segs = plans[first:last + 1]
        tail, fade, tail_its = _tail(plans, last + 1, fade_frames) if k + 1 < len(starts) and fade_frames \
            else ((), 0, 0)
        chunks.append(ChunkPlan(
            index=k, first=first, last=last, start_s=plans[first].start_s, end_s=plans[last].end_s,
            frames=sum(len(p.frames) for p in segs), iterations=sum(p.iterations for p in segs),
            warmup=_warmup(plans, first, warmup_s), tail=tail, fade_frames=fade, tail_iterations=tail_its))
    return chunks


def frame_change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute change between two RGB uint8 frames, in 0..255 grey levels."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def seam_stats(chunks: Sequence[dict], *, faded: Sequence[Sequence[float]] | None = None) -> dict:
    """Frame-to-frame change across the seams against inside the chunks.

    Each entry of ``chunks`` (in song order) holds ``first_frame``, ``last_frame`` (uint8 arrays),
    ``change_sum`` and ``change_pairs`` (the sum and count of :func:`frame_change` over its own
    consecutive written frames) and ``moving_pairs`` (those pairs whose change is not zero: a frame
    repeated because the segment has fewer iterations than frames does not move).

    ``faded``: per seam, the frame changes across its crossfade (from the chunk's last frame into
    the faded frames and out of them); a seam's figure is then their mean, the change per frame
    across the seam as a viewer sees it (the largest would count a scene change of the music that
    falls inside the fade, which the single-machine render has too), and the hard cut it replaced is
    kept as ``boundaries_raw``.
    """
    raw = [frame_change(a["last_frame"], b["first_frame"]) for a, b in zip(chunks, chunks[1:])]
    boundary = [float(np.mean(w)) if w else r for w, r in zip(faded, raw)] if faded is not None else raw
    pairs = sum(c["change_pairs"] for c in chunks)
    moving = sum(c["moving_pairs"] for c in chunks)
    total = sum(c["change_sum"] for c in chunks)
    within = total / pairs if pairs else float("nan")
    within_moving = total / moving if moving else float("nan")
    mean_boundary = float(np.mean(boundary)) if boundary else float("nan")
    ratio = mean_boundary / within if boundary and within > 0 else float("nan")
    return {
        "boundary_mean": mean_boundary, "within_mean": within, "within_moving_mean": within_moving,
        "ratio": ratio,
        "ratio_moving": mean_boundary / within_moving if boundary and within_moving > 0 else float("nan"),
        "target_ratio": SEAM_TARGET_RATIO, "met": bool(boundary) and ratio <= SEAM_TARGET_RATIO,
        "boundaries": boundary, "boundaries_raw": raw, "faded": faded is not None,
        "fade_steps": [list(map(float, w)) for w in faded] if faded is not None else [],
        "unit": "mean |difference| per pixel and channel, 0..255",
    }

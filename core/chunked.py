"""Rendering one chunk of a song (a run of whole segments) on whichever worker gets it.

A worker receives a :class:`ChunkJob` (settings, the song's segment plan, the audio
samples, which chunk) and returns a plain dict: the chunk's H.264 segment files as
bytes (so workers need no shared file system), the per-segment records of the
single-machine sidecar, and what :func:`core.chunks.seam_stats` needs.

The chunk starts where the single-machine render starts (``[guidance] init``, the same
seed), then runs its warm-up segments through :func:`core.render.run_segment` without writing
frames: the latent, Adam's moments and Eq. 1's anchor come out as the single-machine
render would set them after those segments, had it started there.  Then its own
segments run and are written, and then its tail: the next chunk's first segments, whose
first ``fade_frames`` frames come back raw for :func:`crossfade_seams`.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from core.chunks import ChunkPlan, frame_change

log = logging.getLogger(__name__)

__all__ = ["ChunkJob", "crossfade_seams", "faded_file", "render_chunk", "segment_file"]


def segment_file(index: int) -> str:
    """Name of a segment's H.264 file in a render's work folder (the same as the single-machine render's)."""
    return f"seg{index:05d}.mp4"


def faded_file(index: int) -> str:
    """Name of a segment's file after the crossfade into its chunk rewrote its first frames."""
    return f"seg{index:05d}.faded.mp4"


@dataclass(frozen=True)
class ChunkJob:
    """Everything a worker needs for one chunk (picklable; the models come from the worker's cache)."""

    settings: Any  # core.render.RenderSettings
    plans: Sequence  # the whole song's core.render.SegmentPlan list
    chunk: ChunkPlan
    y: np.ndarray
    sr: int
    #: tests: a marker file; the first attempt (marker absent) writes its pid there and exits the worker
    #: process after the chunk's first segment, as a killed machine would
    crash_marker: str | None = None


def _targets(enc, job: ChunkJob, models, indices: Sequence[int]) -> tuple[dict, list]:
    """Eq. 2 targets for ``indices`` (exact: each from its own and the previous segment's guidance) and the
    style prompts."""
    from core.render import raw_guidance
    from core.targets import eq2

    g = job.settings.preset.guidance
    lo = max(0, indices[0] - 2)  # a crossfade needs the target before the first, which needs the raw before it
    span = list(range(lo, indices[-1] + 1))
    raw = dict(zip(span, raw_guidance(enc, [job.plans[i] for i in span], y=job.y, sr=job.sr, models=models)))
    targets = {i: eq2(raw.get(i - 1) if i else None, raw[i], g.consistency) for i in span if i == 0 or i - 1 in raw}
    styles = [(enc.text(p.text), p.weight * g.style_weight) for p in g.style_prompts]
    return targets, styles


def _maybe_crash(marker: str | None) -> None:
    """Test fault: the first attempt leaves its pid in the marker and dies like a killed machine."""
    if marker and not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        log.warning("crash_marker %s: exiting worker %d mid-chunk (test fault)", marker, os.getpid())
        os._exit(1)


def render_chunk(job: ChunkJob, models, *, on_iteration: Callable[[], None] | None = None) -> dict:
    """Warm up, render the chunk's segments and return their files (bytes) and records (see the module doc)."""
    from core.encoders import Encoders
    from core.optimizer import LatentOptimizer, start_from_init
    from core.render import run_segment, segment_targets
    from core.video import ChunkWriter

    t0 = time.perf_counter()
    settings, chunk = job.settings, job.chunk
    g, rs = settings.preset.guidance, settings.preset.render
    width, height = settings.size
    run = list(chunk.warmup) + list(chunk.segments) + list(chunk.tail)
    targets, styles = _targets(Encoders(models), job, models, run)
    opt = LatentOptimizer.from_config(models, g, size=(width, height))
    start_from_init(opt, g.init)

    for i in chunk.warmup:
        target, fade = segment_targets(targets, styles, i, g.crossfade_steps)
        if g.consistency == "l1":
            opt.set_anchor()
        run_segment(opt, job.plans[i], target=target, fade=fade, blend=settings.blend_frames,
                    on_iteration=on_iteration)
    t_warm = time.perf_counter()

    records, files = [], {}
    stats = {"first_frame": None, "last_frame": None, "change_sum": 0.0, "change_pairs": 0, "moving_pairs": 0}

    def take(frame: np.ndarray) -> None:
        if stats["last_frame"] is None:
            stats["first_frame"] = frame.copy()
        else:
            d = frame_change(stats["last_frame"], frame)
            stats["change_sum"] += d
            stats["change_pairs"] += 1
            stats["moving_pairs"] += d > 0
        stats["last_frame"] = frame.copy()

    with tempfile.TemporaryDirectory(prefix=f"m2v-chunk{chunk.index}-") as tmp:
        for n, i in enumerate(chunk.segments):
            p = job.plans[i]
            target, fade = segment_targets(targets, styles, i, g.crossfade_steps)
            if g.consistency == "l1":
                opt.set_anchor()
            path = Path(tmp) / segment_file(i)
            # a segment shorter than one frame period is run (it moves the latent) but writes no file
            writer = ChunkWriter(path, fps=rs.fps, width=width, height=height,
                                 crf=settings.preset.record.crf) if p.frames else None

            def write(frame, writer=writer):
                writer.write(frame)
                take(frame)

            loss_first, loss_last = run_segment(opt, p, target=target, fade=fade, blend=settings.blend_frames,
                                                on_frame=write if writer else None, on_iteration=on_iteration)
            if writer is not None:
                writer.close()
                files[path.name] = path.read_bytes()
            records.append({"start": p.start_s, "end": p.end_s, "guidance": p.guidance, "text": p.text,
                            "iterations": p.iterations, "frames": len(p.frames),
                            "loss_first": loss_first, "loss_last": loss_last})
            if n == 0:
                _maybe_crash(job.crash_marker)
    # The tail: on into the next chunk's first segments, for the frames the next chunk fades in from.
    tail: list[np.ndarray] = []
    for i in chunk.tail:
        target, fade = segment_targets(targets, styles, i, g.crossfade_steps)
        if g.consistency == "l1":
            opt.set_anchor()
        p, need = job.plans[i], chunk.fade_frames - len(tail)
        if need < len(p.frames):  # stop after the iteration of the last frame the fade needs
            p = replace(p, iterations=p.frame_iteration[need - 1] + 1, frames=p.frames[:need],
                        frame_iteration=p.frame_iteration[:need])
        run_segment(opt, p, target=target, fade=fade, blend=settings.blend_frames,
                    on_frame=tail.append, on_iteration=on_iteration)
    tail_frames = np.stack(tail[:chunk.fade_frames]) if chunk.fade_frames and tail else \
        np.zeros((0, height, width, 3), np.uint8)
    t_end = time.perf_counter()
    return {"index": chunk.index, "segments": records, "files": files, **stats, "tail_frames": tail_frames,
            "warmup_iterations": sum(job.plans[i].iterations for i in chunk.warmup),
            "tail_iterations": chunk.tail_iterations,
            "warmup_s": t_warm - t0, "render_s": t_end - t_warm}


def _decode(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as src:
        return [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]


def crossfade_seams(results: Sequence[dict], chunks: Sequence[ChunkPlan], plans: Sequence, folder: Path, *,
                    fps: int, crf: int) -> list[list[float]]:
    """Dissolve each chunk's first frames from the previous chunk's tail into its own; returns, per seam,
    the frame changes across it (for :func:`core.chunks.seam_stats`).

    Frame ``j`` of the ``n`` faded frames is ``(1 - w) * tail[j] + w * own[j]`` with ``w = (j + 1) / (n + 1)``.
    The segment files holding them are decoded from ``folder`` and written again as
    :func:`faded_file` beside the originals, which stay as they were: running it twice (a resumed
    render) gives the same files.
    """
    from core.video import ChunkWriter

    seams = []
    for prev, res, chunk in zip(results, results[1:], chunks[1:]):
        tail = prev.get("tail_frames")
        n = 0 if tail is None else len(tail)
        if not n:
            seams.append([])
            continue
        changes, last, k = [], prev["last_frame"], 0
        for i in chunk.segments:
            if not plans[i].frames:
                continue
            frames = _decode(folder / segment_file(i))
            if k >= n:  # the fade ended with the segment before: only measure the step out of it
                changes.append(frame_change(last, frames[0]))
                break
            height, width = frames[0].shape[:2]
            writer = ChunkWriter(folder / faded_file(i), fps=fps, width=width, height=height, crf=crf)
            try:
                for own in frames:
                    if k < n:
                        w = (k + 1) / (n + 1)
                        own = np.rint((1 - w) * tail[k].astype(np.float32) + w * own).astype(np.uint8)
                        k += 1
                        changes.append(frame_change(last, own))
                    elif len(changes) == k:  # the step out of the fade into the chunk's own frames
                        changes.append(frame_change(last, own))
                    writer.write(own)
                    last = own
            finally:
                writer.close()
        seams.append(changes)
    return seams

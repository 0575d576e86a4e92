"""``m2v render --ray``: one song's render split into chunks, or many songs, on a Ray cluster.

Ray (an optional extra: ``pip install 'm2v[ray]'``) does the distribution: scheduling by
resources (a GPU per task when the models run on CUDA, else CPUs), retries of tasks
whose worker died (``max_retries``), and moving data between machines (the audio goes
out through the object store, the encoded segment files come back as bytes, so the
workers need no shared file system).  m2v adds only what is its own:

- the split (:mod:`core.chunks`) and the chunk render (:mod:`core.chunked`);
- a per-process model cache, so a worker loads the models once, not once per task;
- the work folder beside the output (the single-machine render's ``OUT.mp4.m2v-work``):
  each finished chunk's segment files and a record, so ``--resume`` runs only what is missing;
- one progress bar for the cluster (a small actor the tasks report to) and a summary
  of how busy each worker was.

The final MP4 is muxed from the segment files exactly as a single-machine render's,
and the sidecar has the same fields plus ``cluster`` (chunks, workers, seams).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from core.errors import ConfigError, M2VError

log = logging.getLogger(__name__)

__all__ = ["ModelRecipe", "require_ray", "connect", "render_on_ray", "ClusterRender"]

RAY_INSTALL = "pip install 'm2v[ray]' (or: pip install ray)"
#: a task whose worker process died is run again this many times (Ray's max_retries)
TASK_RETRIES = 3
_PROBE_TIMEOUT_S = 3.0  # a cluster address that does not answer a TCP connect in 3 s is not there
_PROGRESS_EVERY_S = 0.5


def require_ray():
    """The ``ray`` module, or a :class:`ConfigError` naming the install command."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--ray needs Ray, which is not installed: {RAY_INSTALL}") from None
    return ray


@dataclass(frozen=True)
class ModelRecipe:
    """How a worker loads the models (names and paths travel; loaded models do not)."""

    spec: Any  # a model-set name, path or core.models.registry.ModelSetSpec
    device: str = "auto"
    offline: bool = False

    def key(self) -> str:
        return repr((self.spec, self.device, self.offline))


# -- connecting ---------------------------------------------------------------------------------


def _host_port(address: str) -> tuple[str, int]:
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--ray {address!r}: expected 'auto', HOST:PORT (e.g. 10.0.0.5:6379) or "
                          "ray://HOST:PORT (e.g. ray://10.0.0.5:10001)")
    return host, int(port)


def _probe(address: str) -> None:
    """Fail in seconds, not after Ray's long connect retries, when nothing listens at the address."""
    host, port = _host_port(address)
    try:
        with socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S):
            return
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
    raise ConfigError(
        f"no Ray cluster at {address} ({reason}); start one there with 'ray start --head' "
        f"(it prints the address to join), check the host and port, or use --ray auto for a local Ray")


def _worker_env() -> dict:
    """Workers import the same m2v as this process (a source checkout, not another installed copy)."""
    root = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    # M2V_HOME / M2V_OFFLINE: the workers read the same model cache, as offline as this process
    env = {k: v for k, v in os.environ.items() if k.startswith("M2V_")}
    return {"env_vars": {**env, "PYTHONPATH": root + (os.pathsep + path if path else "")}}


def connect(address: str = "auto", *, num_cpus: int | None = None) -> str:
    """Join the cluster at ``address`` or, with ``auto``, the local one (started if none runs).

    Returns what was joined.  When Ray is already initialised in this process it is used as is.
    """
    ray = require_ray()
    if ray.is_initialized():
        return "already connected"
    if address == "auto":
        ray.init(num_cpus=num_cpus, runtime_env=_worker_env(), log_to_driver=False)
        return "local"
    _probe(address)
    ray.init(address=address, runtime_env=_worker_env(), log_to_driver=False)
    return address


# -- the worker side ----------------------------------------------------------------------------

_MODELS: dict[str, Any] = {}  # per worker process: recipe key -> loaded models


def worker_models(recipe: ModelRecipe) -> tuple[Any, float]:
    """The recipe's models, loaded once per process; returns them and the seconds this call spent loading."""
    key = recipe.key()
    if key in _MODELS:
        return _MODELS[key], 0.0
    from core.models import load_models

    t0 = time.perf_counter()
    _MODELS[key] = load_models(recipe.spec, device=recipe.device, offline=recipe.offline, progress=False)
    return _MODELS[key], time.perf_counter() - t0


def _where() -> dict:
    import ray

    return {"node": ray.util.get_node_ip_address(), "pid": os.getpid()}


class _Reporter:
    """Sends a chunk's iteration count to the progress actor at most every 0.5 s (absolute, so a retry
    overwrites rather than adds)."""

    def __init__(self, progress, key) -> None:
        self.progress, self.key, self.count, self.sent_at = progress, key, 0, 0.0

    def __call__(self) -> None:
        self.count += 1
        now = time.monotonic()
        if self.progress is not None and now - self.sent_at >= _PROGRESS_EVERY_S:
            self.progress.set.remote(self.key, self.count)
            self.sent_at = now


def _chunk_task(recipe: ModelRecipe, job, y: np.ndarray, progress) -> dict:
    """One chunk; ``y`` comes as its own argument so Ray fetches it from the object store."""
    from dataclasses import replace

    from core.chunked import render_chunk

    started = time.time()
    models, load_s = worker_models(recipe)
    result = render_chunk(replace(job, y=y), models, on_iteration=_Reporter(progress, job.chunk.index))
    return {**result, "worker": _where(), "model_load_s": load_s, "started": started, "ended": time.time()}


def _song_task(recipe: ModelRecipe, name: str, audio: bytes, cues: list, settings, progress) -> dict:
    """A whole song on one worker (``--batch``): the single-machine render, in a scratch folder."""
    import tempfile

    from core.render import render

    started = time.time()
    models, load_s = worker_models(recipe)
    with tempfile.TemporaryDirectory(prefix="m2v-song-") as tmp:
        src, out = Path(tmp) / name, Path(tmp) / "out.mp4"
        src.write_bytes(audio)
        render(src, out, settings=settings, models=models, cues=cues, progress=False)
        video, sidecar = out.read_bytes(), json.loads(out.with_suffix(".json").read_text())
    if progress is not None:
        progress.set.remote(name, 1)
    return {"video": video, "sidecar": sidecar, "worker": _where(), "model_load_s": load_s,
            "started": started, "ended": time.time()}


class _Progress:
    """Counts per key (chunk or song), for the driver's one progress bar."""

    def __init__(self) -> None:
        self.counts: dict = {}

    def set(self, key, n: int) -> None:
        self.counts[key] = n

    def total(self) -> int:
        return sum(self.counts.values())


_REMOTES: dict[str, Any] = {}


def _remote(name: str):
    """The Ray-wrapped task or actor class (made on first use: importing this module needs no Ray)."""
    if name not in _REMOTES:
        ray = require_ray()
        fn = {"chunk": _chunk_task, "song": _song_task}.get(name)
        # max_retries: Ray re-runs a task whose worker process died; a Python error is not retried
        # (it is a bad setting or input, which a rerun would only repeat).
        _REMOTES[name] = (ray.remote(max_retries=TASK_RETRIES, retry_exceptions=False)(fn) if fn
                          else ray.remote(num_cpus=0)(_Progress))
    return _REMOTES[name]


def task_resources(recipe: ModelRecipe, *, cpus_per_task: int = 1) -> dict:
    """A GPU per task when the models run on CUDA (``auto`` counts as CUDA when the cluster has GPUs), else CPUs."""
    import ray

    device = str(recipe.device)
    gpus = ray.cluster_resources().get("GPU", 0) if device == "auto" else 0
    if device.startswith("cuda") or gpus > 0:
        return {"num_gpus": 1, "num_cpus": 1}
    return {"num_cpus": cpus_per_task}


# -- the driver side ----------------------------------------------------------------------------


def _unwrap(exc: BaseException) -> BaseException:
    """A task's own m2v error (bad input, missing weights) rather than Ray's wrapper around it."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, M2VError) else exc


def _bar(total: int, initial: int, desc: str, progress: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="it", desc=desc, disable=not progress, dynamic_ncols=True)


def run_tasks(submit: dict, *, progress_actor, bar, done_count: int, n_total: int, on_result,
              bar_start: int = 0, what: str = "chunks") -> float:
    """Wait for ``submit`` (ObjectRef -> key), calling ``on_result(key, result)`` as each lands and moving
    the bar from the progress actor (``bar_start``: its count before these tasks).  Returns the wall seconds."""
    import ray

    t0 = time.perf_counter()
    pending = dict(submit)
    finished = done_count
    bar.set_postfix_str(f"{what} {finished}/{n_total}")
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=_PROGRESS_EVERY_S)
            for ref in ready:
                key = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    raise _unwrap(exc) from None
                on_result(key, result)
                finished += 1
                bar.set_postfix_str(f"{what} {finished}/{n_total}")
            now = ray.get(progress_actor.total.remote())
            bar.update(max(0, now + bar_start - bar.n))
    finally:
        for ref in pending:  # an error or Ctrl-C here: the finished work is kept, the rest is stopped
            ray.cancel(ref)
    return time.perf_counter() - t0


def worker_summary(results: Sequence[dict], *, wall_s: float) -> list[dict]:
    """Per worker process: tasks, busy seconds, model loads, and busy share of the wall time."""
    workers: dict[str, dict] = {}
    for r in results:
        key = f"{r['worker']['node']}:{r['worker']['pid']}"
        w = workers.setdefault(key, {"worker": key, "tasks": 0, "busy_s": 0.0, "model_loads": 0, "model_load_s": 0.0})
        w["tasks"] += 1
        w["busy_s"] += r["ended"] - r["started"]
        w["model_loads"] += r["model_load_s"] > 0
        w["model_load_s"] += r["model_load_s"]
    for w in workers.values():
        w["utilisation"] = w["busy_s"] / wall_s if wall_s > 0 else float("nan")
    return sorted(workers.values(), key=lambda w: w["worker"])


def format_summary(workers: Sequence[dict], *, wall_s: float) -> str:
    lines = [f"{len(workers)} worker(s), {wall_s:.1f} s wall:"]
    for w in workers:
        lines.append(f"  {w['worker']}: {w['tasks']} task(s), busy {w['busy_s']:.1f} s "
                     f"({100 * w['utilisation']:.0f} %), models loaded {w['model_loads']}x ({w['model_load_s']:.1f} s)")
    return "\n".join(lines)


@dataclass
class ClusterRender:
    out_path: Path
    sidecar_path: Path
    plans: list
    chunks: list
    frames: int
    resumed_chunks: int
    workers: list
    seams: dict
    wall_s: float


class _WorkFolder:
    """The render's work folder: a manifest with the fingerprint, and per finished chunk its segment files,
    ``chunkNNNNN.json`` (records) and ``chunkNNNNN.npz`` (first and last frame), written last."""

    def __init__(self, path: Path, fingerprint: str, chunks: Sequence) -> None:
        self.path, self.fingerprint, self.chunks = path, fingerprint, chunks

    def open(self, *, resume: bool) -> dict[int, dict]:
        """Finished chunks' results (with ``resume``), else an empty, fresh folder."""
        manifest = self.path / "cluster.json"
        if resume and (self.path / "progress.json").is_file():
            raise ConfigError(f"{self.path} holds a single-machine render; resume it without --ray "
                              f"(or delete {self.path} to start over on the cluster)")
        if resume and manifest.is_file():
            if json.loads(manifest.read_text()).get("fingerprint") != self.fingerprint:
                raise ConfigError(f"{self.path} holds a render with other settings or input; run without "
                                  f"--resume (or delete {self.path}) to start over")
            return {c.index: r for c in self.chunks if (r := self._load(c.index)) is not None}
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True)
        manifest.write_text(json.dumps({"fingerprint": self.fingerprint,
                                        "chunks": [c.describe() for c in self.chunks]}))
        return {}

    def _load(self, index: int) -> dict | None:
        rec = self.path / f"chunk{index:05d}.json"
        if not rec.is_file():
            return None
        result = json.loads(rec.read_text())
        with np.load(self.path / f"chunk{index:05d}.npz") as f:
            result["first_frame"], result["last_frame"] = f["first_frame"], f["last_frame"]
            result["tail_frames"] = f["tail_frames"]
        return result

    def save(self, result: dict) -> dict:
        """Write a chunk's files, then its record; returns the result without the file bytes."""
        for name, data in result.pop("files").items():
            (self.path / name).write_bytes(data)
        i = result["index"]
        np.savez(self.path / f"chunk{i:05d}.npz", first_frame=result["first_frame"], last_frame=result["last_frame"],
                 tail_frames=result["tail_frames"])
        record = {k: v for k, v in result.items() if k not in ("first_frame", "last_frame", "tail_frames")}
        tmp = self.path / f"chunk{i:05d}.json.tmp"
        tmp.write_text(json.dumps(record))
        tmp.replace(self.path / f"chunk{i:05d}.json")
        return result


def render_on_ray(audio_path: str | Path, out_path: str | Path, *, settings, recipe: ModelRecipe,
                  cues: Sequence = (), resume: bool = False, progress: bool = True, address: str = "auto",
                  cpus_per_task: int = 1, crash_marker: str | None = None,
                  stop_after_chunks: int | None = None) -> ClusterRender:
    """Render one song split into chunks (``[render] chunk_min_s``, ``warmup_s``) across a Ray cluster.

    Tests: ``crash_marker`` makes chunk 0's first attempt kill its worker mid-chunk;
    ``stop_after_chunks`` interrupts the render (KeyboardInterrupt) once that many chunks are saved.
    """
    from core.audio_io import load_audio
    from core.chunked import ChunkJob, crossfade_seams, faded_file, segment_file
    from core.chunks import plan_chunks, seam_stats
    from core.render import _sha_file, song_plan, work_dir_for
    from core.video import check_writable, mux

    ray = require_ray()
    audio_path, out_path = Path(audio_path), Path(out_path)
    check_writable(out_path)
    joined = connect(address)  # first: a wrong address fails in seconds, before the analysis
    rs, g = settings.preset.render, settings.preset.guidance
    y, sr = load_audio(audio_path)
    analysis, plans, late = song_plan(y, sr, settings=settings, cues=cues)
    chunks = plan_chunks(plans, min_chunk_s=rs.chunk_min_s, warmup_s=rs.warmup_s,
                         fade_frames=int(round(rs.seam_fade_s * rs.fps)))
    name = recipe.spec if isinstance(recipe.spec, str) else recipe.spec.name
    fp = settings.fingerprint(audio_sha=_sha_file(audio_path), models=name, cues=cues)
    work = _WorkFolder(work_dir_for(out_path), fp, chunks)
    done = work.open(resume=resume)
    if done:
        log.info("resuming %s: %d of %d chunks finished", out_path, len(done), len(chunks))

    todo = [c for c in chunks if c.index not in done]
    y_ref = ray.put(y)
    actor = _remote("progress").remote()
    opts = task_resources(recipe, cpus_per_task=cpus_per_task)
    submit = {
        _remote("chunk").options(**opts).remote(
            recipe, ChunkJob(settings=settings, plans=plans, chunk=c, y=None, sr=sr,
                             crash_marker=crash_marker if c.index == 0 else None), y_ref, actor): c.index
        for c in todo
    }
    # the bar counts every iteration a worker runs, warm-ups included
    its = {c.index: c.iterations + c.tail_iterations + sum(plans[i].iterations for i in c.warmup) for c in chunks}
    bar_start = sum(its[i] for i in done)
    bar = _bar(sum(its.values()), bar_start, "render (ray)", progress)
    fresh: list[dict] = []

    def land(_index, result):
        fresh.append(work.save(result))
        if stop_after_chunks is not None and len(fresh) >= stop_after_chunks:
            raise KeyboardInterrupt
    try:
        wall_s = run_tasks(submit, progress_actor=actor, bar=bar, done_count=len(done), n_total=len(chunks),
                           on_result=land, bar_start=bar_start)
    finally:
        bar.close()
    results = sorted([*done.values(), *fresh], key=lambda r: r["index"])

    faded = crossfade_seams(results, chunks, plans, work.path, fps=rs.fps, crf=settings.preset.record.crf)
    files = [work.path / (faded_file(p.index) if (work.path / faded_file(p.index)).is_file() else segment_file(p.index))
             for p in plans if p.frames]
    frames = mux(files, out_path, audio=y, sr=sr)
    workers = worker_summary(fresh, wall_s=wall_s)
    seams = seam_stats(results, faded=faded)
    chunk_rows = [{**c.describe(), "warmup_iterations": r["warmup_iterations"],
                   "tail_iterations": r.get("tail_iterations", 0), "worker": r.get("worker"),
                   "resumed": c.index in done, "warmup_seconds": r["warmup_s"], "render_seconds": r["render_s"]}
                  for c, r in zip(chunks, results)]
    sidecar = out_path.with_suffix(".json")
    sidecar.write_text(json.dumps({
        "audio": str(audio_path), "duration_s": y.size / sr, "models": name,
        "settings": settings.describe(), "seed": g.seed, "tempo_bpm": analysis.tempo_bpm,
        "frames": frames, "segments": [s for r in results for s in r["segments"]],
        "lyrics_after_end": [{"time": c.time_s, "text": c.text} for c in late],
        "cluster": {"address": address, "joined": joined, "chunks": chunk_rows, "workers": workers,
                    "wall_s": wall_s, "seams": seams},
    }, indent=2))
    shutil.rmtree(work.path, ignore_errors=True)
    return ClusterRender(out_path, sidecar, plans, chunks, frames, resumed_chunks=len(done), workers=workers,
                         seams=seams, wall_s=wall_s)

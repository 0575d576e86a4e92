"""Step benchmark: how fast this machine runs the optimizer step (decode -> cutouts -> CLIP -> loss
-> backward -> Adam -> the frame on the host), for ``m2v bench`` and ``scripts/bench_step.py``.

Registry sets (``default``, ...) are built with random weights (:mod:`core.models.random_init`): a
step costs the same whatever the weights are, so a machine without the downloads can be measured.
``tiny`` and ``toy`` load their own (small) weights.  Each timed step reads its frame, as a display
does, so a step's time includes the copy a live show needs and the device work is finished.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from core.errors import ConfigError

log = logging.getLogger(__name__)

#: ``--models`` of the benchmark: sets with their own small weights, then registry architectures.
OWN_WEIGHTS = ("tiny", "toy")
RANDOM_WEIGHTS = ("default", "imagenet1024", "vitb16-text")
BENCH_MODELS = OWN_WEIGHTS + RANDOM_WEIGHTS


def bench_models(name: str, device: str | torch.device):
    """The model set ``name`` for timing: tiny/toy as shipped, registry sets with random weights."""
    if name in OWN_WEIGHTS:
        from core.models import load_models

        return load_models(name, device=device, offline=True, progress=False)
    if name not in RANDOM_WEIGHTS:
        raise ConfigError(f"bench --models {name!r}: choose one of {', '.join(BENCH_MODELS)} "
                          "(registry sets are timed with random weights: same cost, no download)")
    from core.models.random_init import build_random_models

    return build_random_models(name, device=device, audio=False)


@dataclass(frozen=True)
class BenchPoint:
    """One setting to time: what a preset's ``[models] size`` and ``[guidance]`` give the step."""

    size: tuple[int, int]
    cutouts: int
    augment: bool | tuple[str, ...] = True
    label: str = ""


def _percentile(xs: Sequence[float], q: float) -> float:
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(q / 100.0 * (len(xs) - 1))))
    return xs[k]


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    """(peak MB, what it measures): CUDA's max allocated since the last reset, else the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (2**20 if sys.platform == "darwin" else 2**10), "peak_rss"


def count_host_syncs(opt: Any, target: Any) -> int | None:
    """Host syncs of one step, its frame read included: what ``torch.cuda.set_sync_debug_mode`` reports
    inside the step, plus the frame's event wait (which the debug mode does not see).  None off CUDA."""
    if opt.device.type != "cuda":
        return None
    torch.cuda.synchronize(opt.device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            res = opt.step(target)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    res.frame  # noqa: B018 - the one wait by design
    inside = sum("synchroniz" in str(w.message).lower() for w in caught)
    return inside + 1


def _random_target(models: Any, device: torch.device, seed: int):
    from core.targets import Target

    gen = torch.Generator().manual_seed(seed)
    proj = getattr(models.clip.model, "text_projection", None)
    dim = proj.shape[1] if proj is not None else 512
    return Target.single(torch.nn.functional.normalize(torch.randn(dim, generator=gen), dim=0).to(device))


def _flops_per_step(opt: Any, target: Any) -> float:
    """FLOPs of one eager step (the counter only observes dispatch; a warm-up step, also for compile)."""
    from torch.utils.flop_counter import FlopCounterMode

    profile, opt.profile = opt.profile, True  # profile steps run the eager forward
    try:
        with FlopCounterMode(display=False) as counter:
            opt.step(target).frame  # noqa: B018
    finally:
        opt.profile = profile
    return float(counter.get_total_flops())


def bench_point(models: Any, point: BenchPoint, *, steps: int = 20, warmup: int = 2, min_steps: int = 2,
                budget_s: float | None = None, precision: str = "auto", compile: bool | str = "off",
                seed: int = 0) -> dict:
    """Time one setting; returns the JSON row (the keys of ``scripts/bench_step.py``'s rows and more)."""
    from core.optimizer import LatentOptimizer

    device = torch.device(models.device)
    cuda = device.type == "cuda"
    target = _random_target(models, device, seed)
    opt = LatentOptimizer(models, size=point.size, cutouts=point.cutouts, augment=point.augment, seed=seed,
                          device=device, precision=precision, compile=compile, profile=False)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    flops = _flops_per_step(opt, target)
    t0 = time.perf_counter()
    for _ in range(max(1, warmup)):  # compiles here when compile is on
        opt.step(target).frame  # noqa: B018
    warmup_s = time.perf_counter() - t0
    times, losses = [], []
    started = time.perf_counter()
    while len(times) < steps:
        if budget_s is not None and len(times) >= min_steps and time.perf_counter() - started > budget_s:
            break
        t = time.perf_counter()
        r = opt.step(target)
        r.frame  # noqa: B018 - a display reads every frame: the step's one host sync
        times.append(time.perf_counter() - t)
        losses.append(r.loss_t)
    syncs = count_host_syncs(opt, target)
    decode_ms, clip_ms = _breakdown(opt, target)
    step_ms = statistics.median(times) * 1e3
    mem_mb, mem_kind = peak_memory_mb(device)
    w, h = point.size
    return {
        "device": f"cuda:{torch.cuda.get_device_name(device)}" if cuda else str(device),
        "models": models.name, "preset": point.label or None, "size": w if w == h else f"{w}x{h}",
        "cutouts": point.cutouts, "precision": opt.precision_used, "compile": opt.compile_mode or "off",
        "threads": torch.get_num_threads(), "steps": len(times), "warmup_s": warmup_s,
        "steps_per_s": 1e3 / step_ms,
        "step_ms": {"median": step_ms, "p95": _percentile(times, 95) * 1e3},
        "decode_ms": decode_ms, "clip_ms": clip_ms,
        "gflop_per_step": flops / 1e9, "tflops": flops / 1e12 / (step_ms / 1e3),
        "peak_mem_mb": mem_mb, "peak_mem_kind": mem_kind,
        "host_syncs_per_step": syncs,
        "losses": [float(x) for x in losses],  # read once, after the timing
    }


def _breakdown(opt: Any, target: Any, steps: int = 3) -> tuple[float, float]:
    """Median decode and CLIP forward ms over a few profiled (synchronizing, eager) steps."""
    opt.profile = True
    try:
        rows = [opt.step(target, frame=False).timings_ms for _ in range(steps)]
    finally:
        opt.profile = False
    return (statistics.median(r["decode"] for r in rows), statistics.median(r["clip"] for r in rows))


def environment(device: torch.device) -> dict:
    """What the figures were measured on."""
    cuda = device.type == "cuda"
    return {"torch": torch.__version__, "cuda": torch.version.cuda if cuda else None,
            "gpu_name": torch.cuda.get_device_name(device) if cuda else None, "cpu_count": os.cpu_count(),
            "threads": torch.get_num_threads()}


def verdict(row: dict, max_steps_per_s: float) -> str:
    """Whether ``row``'s setting keeps up with a preset's full rate (``[rate] max_steps_per_s``)."""
    share = row["steps_per_s"] / max_steps_per_s
    setting = f"{row['models']}, {row['size']} px, {row['cutouts']} cutouts"
    name = f"preset {row['preset']} ({setting})" if row.get("preset") else setting
    if share >= 1.0:
        return f"{name}: sustains its full rate ({row['steps_per_s']:.1f} >= {max_steps_per_s:g} steps/s)"
    return (f"{name}: {share:.0%} of its full rate ({row['steps_per_s']:.2f} of {max_steps_per_s:g} steps/s); "
            "lower [models] size or [guidance] cutouts, or [rate] max_steps_per_s")


TABLE_HEAD = (f"{'preset':>8} {'size':>7} {'cuts':>4} {'steps':>5} {'steps/s':>8} {'step ms':>8} {'p95 ms':>8} "
              f"{'decode':>7} {'clip':>7} {'GFLOP':>7} {'TFLOP/s':>8} {'mem MB':>7} {'syncs':>5}")


def table_row(r: dict) -> str:
    syncs = "-" if r.get("host_syncs_per_step") is None else str(r["host_syncs_per_step"])
    return (f"{(r.get('preset') or '-'):>8} {r['size']!s:>7} {r['cutouts']:>4} {r['steps']:>5} "
            f"{r['steps_per_s']:8.2f} {r['step_ms']['median']:8.1f} {r['step_ms']['p95']:8.1f} "
            f"{r['decode_ms']:7.1f} {r['clip_ms']:7.1f} {r['gflop_per_step']:7.1f} {r['tflops']:8.3f} "
            f"{r['peak_mem_mb']:7.0f} {syncs:>5}")

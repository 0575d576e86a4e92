#!/usr/bin/env python
"""Time optimizer steps (decode -> cutouts -> CLIP -> loss -> backward -> Adam).

One setting::

    python scripts/bench_step.py --models default --size 256 --cutouts 16 --steps 20 --json out.json

A grid of sizes x cutouts (prints a table, writes results/bench_step.json)::

    python scripts/bench_step.py --models default --grid
    python scripts/bench_step.py --models default --grid --grid-sizes 128 --grid-cutouts 1,2,4 \
        --precision bf16-decode

``default`` is built with random weights (core.models.random_init): a step costs
the same whatever the weights are.  ``tiny`` is the seeded tiny set.  On CPU
each grid point runs at most ``--budget-s`` seconds of timed steps (at least
``--min-steps``), so the whole grid stays affordable on a laptop.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

log = logging.getLogger("bench_step")


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def build_models(name: str, device: str):
    if name == "tiny":
        from core.models import load_models

        return load_models("tiny", device=device, offline=True, progress=False)
    from core.models.random_init import build_random_models

    return build_random_models(name, device=device, audio=False)


def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(q / 100.0 * (len(xs) - 1))))
    return xs[k]


def bench_one(models, *, size: int, cutouts: int, steps: int, warmup: int, min_steps: int, budget_s: float | None,
              precision: str, compile: bool, seed: int) -> dict:
    """Time one (size, cutouts) setting; returns the JSON row."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from core.optimizer import LatentOptimizer
    from core.targets import Target

    device = models.device
    cuda = device.type == "cuda"
    gen = torch.Generator().manual_seed(seed)
    dim = models.clip.model.text_projection.shape[1] if hasattr(models.clip.model, "text_projection") else 512
    target = Target.single(torch.nn.functional.normalize(torch.randn(dim, generator=gen), dim=0).to(device))
    opt = LatentOptimizer(models, size=(size, size), cutouts=cutouts, seed=seed, device=device,
                          precision=precision, compile=compile, profile=not cuda)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    # The first warm-up step also counts FLOPs (the counter only observes dispatch).
    with FlopCounterMode(display=False) as counter:
        opt.step(target)
    flops = counter.get_total_flops()
    for _ in range(max(0, warmup - 1)):
        opt.step(target)
    times, losses, decode, clip = [], [], [], []
    started = time.perf_counter()
    while len(times) < steps:
        if budget_s is not None and len(times) >= min_steps and time.perf_counter() - started > budget_s:
            break
        t = time.perf_counter()
        r = opt.step(target)  # returns the uint8 frame on the CPU: includes the copy a display needs
        times.append(time.perf_counter() - t)
        losses.append(r.loss)
        decode.append(r.timings_ms.get("decode", float("nan")))
        clip.append(r.timings_ms.get("clip", float("nan")))
    n = len(times)
    if cuda:  # the breakdown needs synchronizing, so it is taken on separate steps
        opt.profile = True
        for _ in range(3):
            r = opt.step(target)
            decode.append(r.timings_ms["decode"])
            clip.append(r.timings_ms["clip"])
        opt.profile = False
    step_ms = statistics.median(times) * 1e3
    row = {
        "device": str(device) if not cuda else f"cuda:{torch.cuda.get_device_name(device)}",
        "models": models.name, "size": size, "cutouts": cutouts, "precision": precision, "compile": compile,
        "threads": torch.get_num_threads(), "steps": n,
        "steps_per_s": 1e3 / step_ms,
        "step_ms": {"median": step_ms, "p95": _percentile(times, 95) * 1e3},
        "decode_ms": statistics.median([d for d in decode if d == d] or [float("nan")]),
        "clip_ms": statistics.median([c for c in clip if c == c] or [float("nan")]),
        "gflop_per_step": flops / 1e9,
        "tflops": flops / 1e12 / (step_ms / 1e3),
        "losses": losses,
    }
    if cuda:
        row["peak_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return row


TABLE_HEAD = f"{'size':>5} {'cuts':>4} {'steps':>5} {'steps/s':>8} {'step ms':>8} {'p95 ms':>8} " \
             f"{'decode':>7} {'clip':>7} {'GFLOP':>7} {'TFLOP/s':>8} {'mem MB':>7}"


def table_row(r: dict) -> str:
    mem = f"{r['peak_mem_mb']:7.0f}" if "peak_mem_mb" in r else f"{'-':>7}"
    return (f"{r['size']:>5} {r['cutouts']:>4} {r['steps']:>5} {r['steps_per_s']:8.2f} {r['step_ms']['median']:8.1f} "
            f"{r['step_ms']['p95']:8.1f} {r['decode_ms']:7.1f} {r['clip_ms']:7.1f} {r['gflop_per_step']:7.1f} "
            f"{r['tflops']:8.3f} {mem}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", choices=("tiny", "default", "imagenet1024", "vitb16-text"), default="tiny")
    p.add_argument("--size", type=int, default=256, help="square frame side in pixels (multiple of 16)")
    p.add_argument("--cutouts", type=int, default=16)
    p.add_argument("--steps", type=int, default=20, help="timed steps (grid on CPU: at most this many)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (compile, allocator, caches)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--precision", default="auto",
                   help="auto | fp32 | bf16 | fp16 | bf16-decode (see core.optimizer.PRECISIONS)")
    p.add_argument("--compile", action="store_true", help="torch.compile the forward pass")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--grid", action="store_true", help="run a grid of sizes x cutouts and print a table")
    p.add_argument("--grid-sizes", type=_ints, default=[128, 256, 512])
    p.add_argument("--grid-cutouts", type=_ints, default=[8, 16, 32])
    p.add_argument("--budget-s", type=float, default=None,
                   help="seconds of timed steps per grid point (default: 20 on CPU, unlimited on CUDA)")
    p.add_argument("--min-steps", type=int, default=2)
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")

    import torch

    from core.errors import M2VError

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        from core.models import resolve_device

        device = resolve_device(args.device)
        models = build_models(args.models, str(device))
        budget = args.budget_s if args.budget_s is not None else (20.0 if device.type == "cpu" else None)
        points = ([(s, c) for s in args.grid_sizes for c in args.grid_cutouts] if args.grid
                  else [(args.size, args.cutouts)])
        rows = []
        print(f"models={models.name} device={device} precision={args.precision} compile={args.compile} "
              f"threads={torch.get_num_threads()}")
        print(TABLE_HEAD, flush=True)
        for size, cutouts in points:
            row = bench_one(models, size=size, cutouts=cutouts, steps=args.steps, warmup=args.warmup,
                            min_steps=args.min_steps, budget_s=budget if args.grid else None,
                            precision=args.precision, compile=args.compile, seed=args.seed)
            rows.append(row)
            print(table_row(row), flush=True)
    except M2VError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_code
    out = args.json or (REPO / "results" / "bench_step.json" if args.grid else None)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = rows[0] if not args.grid else {
            "models": models.name, "device": rows[0]["device"], "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "grid": rows,
        }
        out.write_text(json.dumps(payload, indent=2))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

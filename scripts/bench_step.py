#!/usr/bin/env python
"""Time optimizer steps (decode -> cutouts -> CLIP -> loss -> backward -> Adam -> frame on the host).

One setting::

    python scripts/bench_step.py --models default --size 256 --cutouts 16 --steps 20 --json out.json

A grid of sizes x cutouts (prints a table, writes results/bench_step.json)::

    python scripts/bench_step.py --models default --grid
    python scripts/bench_step.py --models default --grid --grid-sizes 128 --grid-cutouts 1,2,4 \
        --precision bf16-decode

The engine is :mod:`core.bench` (shared with ``m2v bench``, which times presets).  ``default``
is built with random weights (core.models.random_init): a step costs the same whatever the
weights are.  ``tiny`` and ``toy`` are the shipped small sets.  On CPU each grid point runs at
most ``--budget-s`` seconds of timed steps (at least ``--min-steps``), so the whole grid stays
affordable on a laptop.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.presets import COMPILE_MODES  # noqa: E402 - after the path insert (no torch import)

log = logging.getLogger("bench_step")


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    from core.bench import BENCH_MODELS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", choices=BENCH_MODELS, default="tiny")
    p.add_argument("--size", type=int, default=256, help="square frame side in pixels (multiple of 16)")
    p.add_argument("--cutouts", type=int, default=16)
    p.add_argument("--steps", type=int, default=20, help="timed steps (grid on CPU: at most this many)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (compile, allocator, caches)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--precision", default="auto",
                   help="auto | fp32 | bf16 | fp16 | bf16-decode (see core.accel.PRECISIONS)")
    p.add_argument("--compile", nargs="?", const="default", default="off", choices=COMPILE_MODES,
                   help="torch.compile the step (bare --compile: 'default')")
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

    from core.bench import TABLE_HEAD, BenchPoint, bench_models, bench_point, environment, table_row
    from core.errors import M2VError

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        from core.models import resolve_device

        device = resolve_device(args.device)
        models = bench_models(args.models, str(device))
        budget = args.budget_s if args.budget_s is not None else (20.0 if device.type == "cpu" else None)
        points = ([(s, c) for s in args.grid_sizes for c in args.grid_cutouts] if args.grid
                  else [(args.size, args.cutouts)])
        env = environment(device)
        rows = []
        print(f"models={models.name} device={device} precision={args.precision} compile={args.compile} "
              f"threads={torch.get_num_threads()}")
        print(TABLE_HEAD, flush=True)
        for size, cutouts in points:
            row = bench_point(models, BenchPoint(size=(size, size), cutouts=cutouts), steps=args.steps,
                              warmup=args.warmup, min_steps=args.min_steps, budget_s=budget if args.grid else None,
                              precision=args.precision, compile=args.compile, seed=args.seed)
            rows.append({**row, **env})
            print(table_row(row), flush=True)
    except M2VError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_code
    out = args.json or (REPO / "results" / "bench_step.json" if args.grid else None)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = rows[0] if not args.grid else {"models": models.name, "device": rows[0]["device"], **env,
                                                 "grid": rows}
        out.write_text(json.dumps(payload, indent=2))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``m2v bench``: time the optimizer step on this machine for a preset (or every shipped preset),
and say which presets it sustains at their full rate (``[rate] max_steps_per_s``)."""

from __future__ import annotations

import argparse

from live.cli import add_common_arguments, size_arg

HELP = "time the optimizer step on this machine for a preset (or all) and say which run at full rate"

_CPU_BUDGET_S = 20.0  # timed seconds per preset on a CPU, where one default-set step can take seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from core.presets import COMPILE_MODES, PRECISIONS

    parser.add_argument("--preset", default=None,
                        help="preset name or .toml path (default: club with a GPU, cpu without)")
    parser.add_argument("--all-presets", action="store_true", help="time every shipped and user preset")
    add_common_arguments(parser)
    parser.add_argument("--size", type=size_arg, default=None, help="image size S or WxH (default from the preset)")
    parser.add_argument("--cutouts", type=int, default=None, help="CLIP cutouts per step (default from the preset)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="autocast precision (auto: bf16 where the GPU has it, else fp16; fp32 on CPU)")
    parser.add_argument("--compile", default=None, choices=COMPILE_MODES,
                        help="torch.compile the step (default: the preset's [guidance] compile)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per preset (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first: compile, allocator, caches")
    parser.add_argument("--budget-s", type=float, default=None,
                        help=f"at most this many timed seconds per preset (default {_CPU_BUDGET_S:g} on CPU, "
                        "none on a GPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", default=None, metavar="FILE", help="write the figures as JSON")


def _check(args: argparse.Namespace) -> None:
    from core.errors import ConfigError

    for flag, value, low in (("--steps", args.steps, 1), ("--warmup", args.warmup, 0), ("--cutouts", args.cutouts, 1)):
        if value is not None and value < low:
            raise ConfigError(f"{flag} {value}: must be >= {low}")
    if args.all_presets and args.preset:
        raise ConfigError("--preset and --all-presets: give one (--all-presets times every preset)")


def _presets(args: argparse.Namespace, *, cuda: bool) -> list:
    from core.errors import ConfigError
    from core.presets import apply_overrides, default_preset_name, list_presets, load_preset

    if args.all_presets:
        names = [i.name for i in list_presets() if i.error is None]
    else:
        names = [args.preset or default_preset_name(command="live", cuda=cuda)]
    overrides = {k: v for k, v in {"models.set": args.models, "models.size": args.size,
                                   "guidance.cutouts": args.cutouts, "guidance.compile": args.compile}.items()
                 if v is not None}
    out = []
    for name in names:
        try:
            out.append(apply_overrides(load_preset(name), overrides, origin="command line"))
        except ConfigError:  # --all-presets: a broken user preset is listed by `m2v presets list`
            if not args.all_presets:
                raise
    return out


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from core.bench import TABLE_HEAD, BenchPoint, bench_models, bench_point, environment, table_row, verdict
    from core.models import resolve_device

    _check(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = resolve_device(args.device or "auto").type == "cuda"
    presets = _presets(args, cuda=cuda)
    models_cache: dict[tuple[str, str], object] = {}
    rows, verdicts = [], []
    print(TABLE_HEAD, flush=True)
    for preset in presets:
        device = resolve_device(args.device or preset.models.device)
        key = (preset.models.set, str(device))
        if key not in models_cache:
            models_cache[key] = bench_models(preset.models.set, device)
        budget = args.budget_s if args.budget_s is not None else (_CPU_BUDGET_S if device.type == "cpu" else None)
        g = preset.guidance
        point = BenchPoint(size=preset.models.size_wh, cutouts=g.cutouts, augment=g.augmentations(), label=preset.name)
        torch.manual_seed(g.seed)
        row = bench_point(models_cache[key], point, steps=args.steps, warmup=args.warmup, budget_s=budget,
                          precision=args.precision, compile=g.compile, seed=g.seed if args.seed is None else args.seed)
        row = {**row, **environment(device), "max_steps_per_s": preset.rate.max_steps_per_s}
        row["sustains_full_rate"] = row["steps_per_s"] >= preset.rate.max_steps_per_s
        rows.append(row)
        verdicts.append(verdict(row, preset.rate.max_steps_per_s))
        print(table_row(row), flush=True)
    env = rows[0]
    where = env["gpu_name"] or f"CPU, {env['threads']} threads"
    print(f"\ntorch {env['torch']}, {where}, precision {env['precision']}, compile {env['compile']}")
    for line in verdicts:
        print(line)
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"rows": rows, "verdicts": verdicts}, indent=2))
        print(f"wrote {out}")
    return 0

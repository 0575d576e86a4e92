"""The ``m2v`` command: one parser, one module per subcommand.

Each subcommand lives in ``live/cli/<name>.py`` and exposes::

    HELP: str                              # one line for ``m2v --help``
    def add_arguments(parser) -> None      # flags only; no heavy imports here
    def run(args) -> int                   # does the work; imports torch etc. lazily

so ``m2v --help`` stays fast and a broken optional stage cannot break the others.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Sequence

from core.errors import M2VError

# Order shown in --help: the main job first, then tools.
SUBCOMMANDS = ("live", "render", "analyze", "bench", "devices", "outputs", "presets", "weights", "osc", "midi")


def add_common_arguments(parser: argparse.ArgumentParser, *, models: bool = True) -> None:
    """Flags that mean the same in every subcommand that takes them."""
    if models:
        parser.add_argument(
            "--models",
            default=None,
            help="model set: tiny | default | a registry name | PATH to a folder with a "
            "m2v-models.json manifest (default: from the preset, else 'default')",
        )
        parser.add_argument(
            "--device", default=None, choices=("auto", "cpu", "cuda", "mps"),
            help="compute device (default: the preset's models.device, 'auto': cuda, else mps, else cpu)",
        )
        parser.add_argument(
            "--offline", action="store_true", default=os.environ.get("M2V_OFFLINE") == "1",
            help="never touch the network; missing weights are an error (also M2V_OFFLINE=1)",
        )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: preset's, else 0)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")


def size_arg(text: str) -> int | str:
    """``--size`` type: ``S`` or ``WxH``, checked by the presets' one size parser, in its stored form."""
    from core.presets import normalize_size

    try:
        return normalize_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def report_errors(errors: list[str], n_files: int) -> int:
    """``validate`` subcommands: every error on stderr and exit 1, or 'ok' and exit 0."""
    for line in errors:
        print(line, file=sys.stderr)
    if errors:
        print(f"{len(errors)} error(s) in {n_files} file(s)", file=sys.stderr)
        return 1
    print(f"ok: {n_files} file(s) valid")
    return 0


def _load(name: str):
    return importlib.import_module(f"live.cli.{name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="m2v",
        description="Live audio-reactive CLIP-guided VQGAN visuals, and the Music2Video renderer.",
    )
    from core import __version__

    parser.add_argument("--version", action="version", version=f"m2v {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            mod = _load(name)
        except ModuleNotFoundError as exc:
            if exc.name == f"live.cli.{name}":
                continue  # subcommand not built yet
            raise
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    _setup_logging(getattr(args, "verbose", 0))
    try:
        return int(args._run(args) or 0)
    except M2VError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # python -m live.cli
    sys.exit(main())

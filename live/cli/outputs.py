"""``m2v outputs``: which video outputs this machine can run, and why the others cannot."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

HELP = "list video output kinds (NDI, v4l2loopback, Spout, Syphon, preview) usable here, and why not the others"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")


def format_table(rows) -> str:
    width = max(len(r.kind) for r in rows)
    lines = []
    for r in rows:
        mark = "yes" if r.usable else "no "
        lines.append(f"{r.kind:<{width}}  {mark}  {r.why}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from live.outputs import availability

    rows = availability()
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return 0
    print(format_table(rows))
    usable = [r.example for r in rows if r.usable and r.kind != "preview"]
    hint = f"m2v live --output {usable[0]}" if usable else "m2v live --preview-port 8090"
    print(f"\nUse: {hint}   (--output is repeatable; [outputs] in a preset does the same)")
    return 0

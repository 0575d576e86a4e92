"""``m2v presets``: list, show, validate and document presets."""

from __future__ import annotations

import argparse

HELP = "list, show (fully resolved) and validate presets; print the schema"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="name, description and source file of every preset")
    show = sub.add_parser("show", help="a preset fully resolved (extends and user overrides applied)")
    show.add_argument("name", metavar="NAME", help="preset name or path to a .toml file")
    show.add_argument("--format", choices=("toml", "json"), default="toml", help="output format")
    val = sub.add_parser("validate", help="check preset (or show) files; every error, then exit non-zero")
    val.add_argument("files", metavar="FILE", nargs="+",
                     help="preset .toml files; a file with [[songs]] is checked as a show file")
    sub.add_parser("schema", help="every field with default, allowed values and description (Markdown)")


def run(args: argparse.Namespace) -> int:
    from core import presets

    if args.action == "list":
        infos = presets.list_presets()
        width = max((len(i.name) for i in infos), default=4)
        for info in infos:
            desc = f"INVALID: {info.error}" if info.error else info.description
            print(f"{info.name:<{width}}  {desc}  [{info.source}]")
        return 0
    if args.action == "show":
        preset = presets.load_preset(args.name)
        print(presets.to_json(preset) if args.format == "json" else presets.to_toml(preset), end="")
        return 0
    if args.action == "validate":
        from live.cli import report_errors

        errors = []
        for path in args.files:
            errors += _validate_show(path) if _is_show(path) else presets.validate_files([path])
        return report_errors(errors, len(args.files))
    if args.action == "schema":
        print(presets.schema_markdown(), end="")
        return 0
    raise AssertionError(args.action)  # argparse restricts the choices


def _is_show(path: str) -> bool:
    """A show file has a [[songs]] array; anything unreadable is left to the preset validator."""
    from core.presets import tomllib

    try:
        with open(path, "rb") as fh:
            return "songs" in tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return False


def _validate_show(path: str) -> list[str]:
    from core.errors import ConfigError
    from core.show import load_show

    try:
        load_show(path, default_preset="paper")
    except ConfigError as exc:
        lines = str(exc).splitlines()
        return [line.strip() for line in lines[1:]] if len(lines) > 1 else lines
    return []

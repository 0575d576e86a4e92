"""The ``m2v`` parser: shared flags, and messages that name only flags it has."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import pytest

from live.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
FLAG_RE = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
# Flags of other programs that messages quote, with a word that must stand beside them.
FOREIGN = {"--no-deps": "pip install", "--head": "ray start"}  # other programs' flags, named with them


def _parser_flags(parser: argparse.ArgumentParser) -> set[str]:
    flags = set()
    for action in parser._actions:
        flags.update(s for s in action.option_strings if s.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                flags |= _parser_flags(sub)
    return flags


def _flags_in_strings() -> dict[str, list[str]]:
    """Every ``--flag`` in a string literal (messages, help, docstrings) of core/ and live/, with where."""
    found: dict[str, list[str]] = {}
    for path in sorted([*ROOT.glob("core/**/*.py"), *ROOT.glob("live/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for flag in FLAG_RE.findall(node.value):
                    foreign = FOREIGN.get(flag)
                    if foreign is None or foreign not in node.value:
                        found.setdefault(flag, []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_flag_named_in_the_source_exists():
    flags = _parser_flags(build_parser())
    assert {"--size", "--models", "--block", "--verify", "--osc-port"} <= flags  # the walk reaches subcommands
    found = _flags_in_strings()
    assert "--size" in found and "--block" in found  # the scan sees messages
    unknown = {flag: where for flag, where in found.items() if flag not in flags}
    assert unknown == {}, f"strings name flags no m2v command has: {unknown}"


@pytest.mark.parametrize("command", ["live", "render"])
@pytest.mark.parametrize("text, stored", [("64", 64), ("96x64", "96x64"), (" 640 X 360 ", "640x360"), ("64x64", 64)])
def test_size_flag_takes_s_and_wxh(command, text, stored):
    extra = ["song.wav"] if command == "render" else []
    args = build_parser().parse_args([command, *extra, "--size", text])
    assert args.size == stored


@pytest.mark.parametrize("text", ["64y", "x64", "8", "4096x64", "-64", ""])
def test_bad_size_flag_names_the_forms(text, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["live", "--size", text])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --size: size {text!r}: expected S or 'WxH' with each side 16..2048" in err

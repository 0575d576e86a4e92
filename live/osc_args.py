"""OSC argument coercion: desks send on/off as i, f, s, T or F, numbers as strings; all are accepted.

Each function returns a clean Python value or raises :class:`Rejected` naming the
counter the message goes to (``wrong_type``, ``wrong_value``, ``too_long``).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

_TRUE_WORDS = {"1", "true", "t", "on", "yes", "y"}
_FALSE_WORDS = {"0", "false", "f", "off", "no", "n"}


class Rejected(Exception):
    """A message that cannot become a cue; ``kind`` is the counter it goes to."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


# Desks disagree on types: a toggle may come as i 1, f 1.0, s "1" or T.


def as_bool(value: Any) -> bool:
    """i: non-zero; f: >= 0.5 (a button sends 1.0, a fader past half way); s: 1/0,
    true/false, on/off, yes/no or a number; T/F."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, float) and math.isfinite(value):
        return value >= 0.5
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        try:
            return as_bool(float(word))
        except ValueError:
            pass
    raise Rejected("wrong_type", f"{value!r} is not a toggle (send i 0/1, f 0.0/1.0, s on/off, T/F)")


def as_float(value: Any) -> float:
    """i, f, d, a numeric string, or T/F as 1.0/0.0; finite only."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        out = float(value)
    elif isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            raise Rejected("wrong_type", f"{value!r} is not a number") from None
    else:
        raise Rejected("wrong_type", f"{value!r} is not a number")
    if not math.isfinite(out):
        raise Rejected("wrong_type", f"{value!r} is not a finite number")
    return out


def as_int(value: Any) -> int:
    """i, a whole f (3.0), or a numeric string; T/F are refused (no index 0/1 by accident)."""
    if isinstance(value, bool):
        raise Rejected("wrong_type", f"{value!r} is not an integer")
    out = as_float(value)
    if abs(out - round(out)) > 1e-6:
        raise Rejected("wrong_type", f"{value!r} is not a whole number")
    return int(round(out))


def as_str(value: Any, *, max_len: int) -> str:
    """s as is (trimmed); i/f as their decimal text; refuses T/F/N/blobs and long strings."""
    if isinstance(value, str):
        out = value.strip()
    elif isinstance(value, bool) or value is None:
        raise Rejected("wrong_type", f"{value!r} is not text")
    elif isinstance(value, int):
        out = str(value)
    elif isinstance(value, float) and math.isfinite(value):
        out = f"{value:g}"
    else:
        raise Rejected("wrong_type", f"{value!r} is not text")
    if len(out) > max_len:
        raise Rejected("string_too_long", f"{len(out)} characters (limit {max_len})")
    return out


def _arg(args: Sequence[Any], i: int, name: str) -> Any:
    if i >= len(args):
        raise Rejected("wrong_type", f"missing argument {i + 1} ({name})")
    return args[i]



"""The OSC address map: each address (after the prefix) to a handler that turns its arguments into a
:mod:`core.events` cue, and ETC Eos's active-cue output to the key of a cue->lyric table.

Address map (after the prefix, default ``/m2v``; see the README for types)::

    /lyric s [f]   /clear   /prompt s [f]   /prompt/clear   /bank i   /preset s
    /song i|s      /freeze i   /blackout i   /record i   /intensity f
    /sensitivity f   /rate f f   /quantize s   /tap   /midi/learn s

The same addresses (without the leading slash) are the actions of MIDI maps (:mod:`live.midi_map`).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

from core import events as ev
from core.errors import ConfigError
from core.events import QUANTIZE_MODES
from live.osc_args import Rejected, _arg, as_bool, as_float, as_int, as_str

DEFAULT_PREFIX = "/m2v"
_WILDCARDS = frozenset("*?[]{}")
EOS_PREFIX = "/eos/out/active/cue/"


def _check_prefix(prefix: str, what: str) -> str:
    prefix = prefix.rstrip("/")
    if prefix and (not prefix.startswith("/") or any(c in _WILDCARDS or c.isspace() for c in prefix)):
        raise ConfigError(f"OSC {what} {prefix!r} must start with '/' and hold no spaces or wildcards, "
                          "e.g. /m2v")
    return prefix


def build_handlers(*, max_string_len: int = 256) -> dict[str, Callable[..., ev.CueEvent]]:
    """Address (after the prefix) → handler(address, *args) returning a cue event."""

    def text(args: Sequence[Any], i: int, name: str) -> str:
        return as_str(_arg(args, i, name), max_len=max_string_len)

    def lyric(_addr: str, *args: Any) -> ev.CueEvent:
        duration = as_float(args[1]) if len(args) > 1 else 0.0
        return ev.LyricCue(text(args, 0, "text"), duration_s=duration if duration > 0 else None)

    def prompt(_addr: str, *args: Any) -> ev.CueEvent:
        weight = as_float(args[1]) if len(args) > 1 else 1.0
        return ev.PromptCue(text(args, 0, "text"), weight=weight)

    def preset(_addr: str, *args: Any) -> ev.CueEvent:
        name = text(args, 0, "preset name")
        if not name:
            raise Rejected("wrong_value", "empty preset name")
        return ev.PresetSwitch(name)

    def song(_addr: str, *args: Any) -> ev.CueEvent:
        value = _arg(args, 0, "song")
        if isinstance(value, str) and not value.strip().isdigit():
            return ev.SongSelect(as_str(value, max_len=max_string_len))
        return ev.SongSelect(as_int(value))

    def bank(_addr: str, *args: Any) -> ev.CueEvent:
        index = as_int(_arg(args, 0, "index"))
        if index < 1:
            raise Rejected("wrong_value", f"bank index {index}: entries count from 1")
        return ev.BankSelect(index)

    def intensity(_addr: str, *args: Any) -> ev.CueEvent:
        value = as_float(_arg(args, 0, "intensity"))
        return ev.IntensityOverride(None if value < 0 else min(1.0, value))

    def rate(_addr: str, *args: Any) -> ev.CueEvent:
        lo, hi = as_float(_arg(args, 0, "min steps/s")), as_float(_arg(args, 1, "max steps/s"))
        if not 0 <= lo <= hi:
            raise Rejected("wrong_value", f"rate {lo} {hi}: need 0 <= min <= max steps/s")
        return ev.RateRange(lo, hi)

    def quantize(_addr: str, *args: Any) -> ev.CueEvent:
        mode = text(args, 0, "mode").lower()
        if mode not in QUANTIZE_MODES:
            raise Rejected("wrong_value", f"quantize {mode!r}: use off, beat or bar")
        return ev.Quantize(mode)  # type: ignore[arg-type]

    def toggle(cls: type) -> Callable[..., ev.CueEvent]:
        return lambda _addr, *args: cls(as_bool(_arg(args, 0, "on/off")))

    return {
        "/lyric": lyric,
        "/clear": lambda _addr, *args: ev.ClearLyric(),
        "/prompt": prompt,
        "/prompt/clear": lambda _addr, *args: ev.ClearPrompts(),
        "/bank": bank,
        "/preset": preset,
        "/song": song,
        "/freeze": toggle(ev.Freeze),
        "/blackout": toggle(ev.Blackout),
        "/record": toggle(ev.Record),
        "/intensity": intensity,
        "/sensitivity": lambda _addr, *args: ev.Sensitivity(as_float(_arg(args, 0, "threshold"))),
        "/rate": rate,
        "/quantize": quantize,
        "/tap": lambda _addr, *args: ev.Tap(),
        "/midi/learn": lambda _addr, *args: ev.MidiLearn(text(args, 0, "action")),
    }




def eos_keys(address: str, args: Sequence[Any], *, max_len: int) -> tuple[str, list[str]] | None:
    """Eos active-cue output -> (the cue's key, the table keys to try in order), or None if not a cue.

    ``/eos/out/active/cue/text "1/5 Chorus 3.0 100%"`` tries "1/5", then the label "Chorus", ...;
    ``/eos/out/active/cue/1/5`` tries "1/5".
    """
    tail = address[len(EOS_PREFIX):]
    if tail == "text":
        text = as_str(_arg(args, 0, "cue text"), max_len=max_len)
        # "<list>/<cue> <label> <time> <percent>", e.g. "1/5 Chorus 3.0 100%"
        key, _, rest = text.partition(" ")
        no_percent = re.sub(r"\s+[\d.]+%$", "", rest).strip()
        label = re.sub(r"(\s+[\d.:]+)+$", "", no_percent).strip()
        return key, [key, label, no_percent, rest.strip(), text]
    parts = tail.split("/")
    if len(parts) != 2 or not all(parts):
        return None
    return tail, [tail]

"""MIDI maps: TOML files binding a controller's notes and CCs to the actions of the OSC address map.

A map (shipped in ``presets/midi/``, or the user's in ``$M2V_HOME/midi/``, which
shadow shipped ones of the same name)::

    description = "Akai APC mini"
    ports = ["APC MINI"]          # port-name words: the map is used for ports whose name has them

    [[control]]
    cc = 48                       # or note = 56; channel = 1..16 (leave out: any channel)
    action = "intensity"          # an OSC address after the prefix, without the slash
    range = [0.0, 1.0]            # knobs: the value at 0 and at 127 ...
    curve = "linear"              # ... and the curve between: linear | exp | log

    [[control]]
    note = 82
    action = "blackout"
    mode = "momentary"            # buttons on toggles: latch (press flips) | momentary (held = on)
    led = { on = 3, off = 0 }     # LED feedback: the velocity sent back for on and off

The action runs through the OSC handler of the same address
(:func:`live.osc_map.build_handlers`), so a MIDI control and an OSC message do the
same thing.  ``args`` are the address's fixed arguments (``bank`` ``args = [3]``);
a knob's scaled value is appended to them.  Validation reports every mistake at
once as ``file:LINE: field: problem (got X); allowed: ...``, the presets' shape.

The user map ``$M2V_HOME/midi/learned.toml`` holds what learn mode bound; it is
read on top of every other map, its entries limited to the port they were learned on.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any, Literal, Sequence, Union

from pydantic import ValidationError, field_validator, model_validator

from core.errors import ConfigError
from core.paths import m2v_home, shipped_presets_dir
from core.presets import _f, _format_error, _read_toml, _Section, _Source, _toml_value
from live.osc_args import Rejected
from live.osc_map import build_handlers

HANDLERS = {address[1:]: handler for address, handler in build_handlers().items()}
ACTIONS = tuple(HANDLERS)
TOGGLES = ("freeze", "blackout", "record")  # buttons: latch or momentary
#: Actions a knob drives: the scaled value is their last argument; the default range.
VALUES: dict[str, tuple[float, float]] = {"intensity": (0.0, 1.0), "sensitivity": (0.0, 1.0), "rate": (1.0, 60.0)}
CURVES = ("linear", "exp", "log")
LEARNED = "learned"  # the user map learn mode writes


def shipped_midi_dir() -> Path:
    """The MIDI maps shipped with the package: ``presets/midi``."""
    return shipped_presets_dir() / "midi"


def user_midi_dir() -> Path:
    """``$M2V_HOME/midi``: user maps, and ``learned.toml``."""
    return m2v_home() / "midi"


class Led(_Section):
    on: int = _f("velocity (note) or value (CC) sent when the state is on", 127, ge=0, le=127)
    off: int = _f("velocity or value sent when the state is off", 0, ge=0, le=127)


class Control(_Section):
    name: str = _f("a label for people (shown by learn mode and `m2v midi monitor`)", "")
    channel: Union[int, None] = _f("MIDI channel 1..16; leave out for any channel", None, ge=1, le=16)
    note: Union[int, None] = _f("note number 0..127 (buttons, pads); give note or cc", None, ge=0, le=127)
    cc: Union[int, None] = _f("controller number 0..127 (knobs, faders, CC buttons); give note or cc",
                              None, ge=0, le=127)
    action: str = _f("the OSC address after the prefix, without the slash", "", allowed=", ".join(ACTIONS))
    args: list[Union[int, float, str]] = _f("the address's fixed arguments (bank: [3]); a knob's value "
                                            "comes after them", factory=list, max_length=4)
    mode: Literal["latch", "momentary", "trigger"] = _f(
        "buttons on freeze/blackout/record: latch = a press flips it, momentary = on while held, "
        "trigger = a press sets it on; other actions act on the press", "latch")
    range: Union[tuple[float, float], None] = _f(
        "knobs on intensity/sensitivity/rate: the value at 0 and at 127 (default: intensity and "
        "sensitivity 0..1, rate 1..60 steps/s)", None)
    curve: Literal[CURVES] = _f("knobs: linear, exp (fine control low) or log (fine control high)",  # type: ignore[valid-type]
                                "linear")
    led: Union[Led, None] = _f("LED feedback for bank and toggle states: {on = V, off = V}", None)
    port: str = _f("only from ports whose name has these words ('' = any port)", "")

    @field_validator("action")
    @classmethod
    def _check_action(cls, value: str) -> str:
        if value not in HANDLERS:
            raise ValueError("not an m2v OSC address (after the prefix, without the slash)")
        return value

    @model_validator(mode="after")
    def _check(self) -> "Control":
        if (self.note is None) == (self.cc is None):
            raise ValueError("give exactly one of note = N or cc = N (0..127)")
        if self.action in VALUES:  # both ends of the knob must be values the address takes
            samples = [[*self.args, v] for v in (self.range or VALUES[self.action])]
        else:
            samples = [[*self.args, True] if self.action in TOGGLES else list(self.args)]
        try:
            for sample in samples:
                HANDLERS[self.action]("/" + self.action, *sample)
        except Rejected as exc:
            raise ValueError(f"action {self.action!r} with args {list(self.args)}: {exc}") from None
        return self

    @property
    def kind(self) -> str:
        return "note" if self.note is not None else "cc"

    @property
    def number(self) -> int:
        return self.note if self.note is not None else self.cc  # type: ignore[return-value]

    def matches(self, port: str, kind: str, channel: int, number: int) -> bool:
        """Does a message (``channel`` 0..15 as on the wire) from ``port`` move this control?"""
        return (self.kind == kind and self.number == number
                and (self.channel is None or self.channel == channel + 1)
                and port_matches(self.port, port))


class MidiMap(_Section):
    description: str = _f("one line shown by `m2v midi maps`", "")
    ports: list[str] = _f("port-name words of the controllers this map is for (e.g. 'APC MINI')",
                          factory=list)
    control: list[Control] = _f("the bindings, one [[control]] table each", factory=list, max_length=1024)

    _path: Path | None = None

    @property
    def path(self) -> Path | None:
        return self._path

    def lookup(self, port: str, kind: str, channel: int, number: int) -> Control | None:
        return next((c for c in self.control if c.matches(port, kind, channel, number)), None)


def port_matches(words: str, port: str) -> bool:
    """Every word of ``words`` occurs in ``port`` (case-insensitive); empty words match every port."""
    name = port.lower()
    return all(w in name for w in words.lower().split())


# --- values -------------------------------------------------------------------------------------


def scale(control: Control, raw: int) -> float:
    """A knob's 0..127 through its curve into its range."""
    x = min(max(raw, 0), 127) / 127.0
    if control.curve == "exp":
        x = (2.0 ** (6.0 * x) - 1.0) / 63.0  # fine steps at the low end
    elif control.curve == "log":
        x = math.log2(1.0 + 63.0 * x) / 6.0  # fine steps at the high end
    lo, hi = control.range or VALUES.get(control.action, (0.0, 1.0))
    return lo + (hi - lo) * x


def action_args(control: Control, *, raw: int, pressed: bool | None, state: bool) -> list[Any] | None:
    """The OSC arguments a control's move sends, or None when it sends nothing.

    ``pressed``: True on a press (note on, CC >= 64 after < 64), False on a release,
    None for a move of a knob that is neither.  ``state``: the toggle's current state (latch).
    """
    if control.action in VALUES:
        return [*control.args, scale(control, raw)]
    if control.action in TOGGLES:
        if control.mode == "momentary" and pressed is not None:
            return [*control.args, pressed]
        if pressed:
            return [*control.args, True if control.mode == "trigger" else not state]
        return None
    return list(control.args) if pressed else None


def parse_learn(text: str) -> tuple[str, list[Any]]:
    """``"bank 3"`` -> ("bank", [3]): an action and its arguments as learn mode takes them."""
    action, *words = text.split()
    args: list[Any] = []
    for w in words:
        try:
            args.append(int(w))
        except ValueError:
            try:
                args.append(float(w))
            except ValueError:
                args.append(w)
    return action.lstrip("/"), args


# --- files --------------------------------------------------------------------------------------


def _line_of(text: str, loc: Sequence[Any]) -> int | None:
    """The line (1-based) where ``loc`` is set in a map file: the field's line in the n-th [[control]]."""
    lines = text.splitlines()
    headers = [i for i, s in enumerate(lines) if re.match(r"\s*\[", s) and not re.match(r"\s*\w+\s*=", s)]
    start, end = 0, headers[0] if headers else len(lines)
    fields = [p for p in loc if isinstance(p, str)]
    if len(loc) >= 2 and loc[0] == "control" and isinstance(loc[1], int):
        blocks = [i for i in headers if re.match(r"\s*\[\[\s*control\s*\]\]", lines[i])]
        if loc[1] >= len(blocks):
            return None
        start = blocks[loc[1]]
        end = next((h for h in headers if h > start), len(lines))
        fields = [p for p in loc[2:] if isinstance(p, str)]
        if not fields:
            return start + 1
    for i in range(start, end):
        if fields and re.match(rf"\s*\"?{re.escape(fields[0])}\"?\s*=", lines[i]):
            return i + 1
    return start + 1 if start else None


def _check(path: Path) -> tuple[MidiMap | None, list[str]]:
    try:
        data = _read_toml(path)
    except ConfigError as exc:
        return None, [str(exc)]
    try:
        m = MidiMap.model_validate(data)
    except ValidationError as exc:
        text = path.read_text(encoding="utf-8", errors="replace")
        out = []
        for err in exc.errors():
            line = _format_error(err, [_Source(path, data)], MidiMap)
            n = _line_of(text, tuple(err["loc"]))
            out.append((n or 0, line.replace(f"{path}: ", f"{path}:{n}: ", 1) if n else line))
        return None, [line for _, line in sorted(out, key=lambda x: x[0])]
    m._path = path
    return m, []


def validate_map_files(paths: Sequence[str | Path]) -> list[str]:
    """Every error in every map file, as ``file:LINE: field: problem`` lines."""
    return [e for p in paths for e in _check(Path(p))[1]]


def available_maps() -> dict[str, Path]:
    """Map name -> file: the user's first, then the shipped ones (a user file shadows a shipped one)."""
    found: dict[str, Path] = {}
    for d in (user_midi_dir(), shipped_midi_dir()):
        if d.is_dir():
            for p in sorted(d.glob("*.toml")):
                found.setdefault(p.stem, p)
    return dict(sorted(found.items()))


def load_map(name_or_path: str | Path) -> MidiMap:
    """A map by name (user folder first, then shipped) or by path; ConfigError lists every mistake."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or "/" in text or text.endswith(".toml"):
        path = Path(text).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: MIDI map file not found")
    else:
        maps = available_maps()
        if text not in maps:
            raise ConfigError(f"unknown MIDI map {text!r}; available: {', '.join(maps) or '(none)'}. "
                              f"Add your own as {user_midi_dir() / (text + '.toml')}, or pass a path")
        path = maps[text]
    m, errors = _check(path)
    if m is None:
        raise ConfigError(errors[0] if len(errors) == 1 else
                          f"MIDI map {path} has {len(errors)} errors:\n  " + "\n  ".join(errors))
    return m


def map_for_port(port: str, *, name: str | None = None) -> MidiMap | None:
    """The map a port uses: ``name`` when given, else the first map whose ``ports`` words the port has."""
    if name:
        return load_map(name)
    for map_name, path in available_maps().items():
        if map_name == LEARNED:
            continue
        m, _ = _check(path)
        if m is not None and any(port_matches(words, port) for words in m.ports):
            return m
    return None


def learned_path() -> Path:
    return user_midi_dir() / f"{LEARNED}.toml"


def load_learned() -> MidiMap:
    """The learned map (empty when nothing was learned yet)."""
    path = learned_path()
    return load_map(path) if path.is_file() else MidiMap()


def save_learned(m: MidiMap, path: Path | None = None) -> Path:
    """Write the learned map as TOML (written whole to a temporary file, then renamed)."""
    path = path or learned_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ['description = "bound by learn mode (L key or /m2v/midi/learn)"', ""]
    for c in m.control:
        lines.append("[[control]]")
        for key, value in c.model_dump(exclude_none=True, exclude_defaults=True).items():
            lines.append(f"{key} = {_toml_value(list(value) if isinstance(value, tuple) else value)}")
        lines.append("")
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    tmp.replace(path)
    return path


def bind(m: MidiMap, control: Control) -> MidiMap:
    """``m`` with ``control`` added, replacing any binding of the same control on the same port."""
    keep = [c for c in m.control if not (c.kind == control.kind and c.number == control.number
                                        and c.channel == control.channel and c.port == control.port)]
    out = m.model_copy(update={"control": [*keep, control]})
    out._path = m.path
    return out


@dataclasses.dataclass(frozen=True)
class MapInfo:
    name: str
    path: Path
    description: str
    error: str | None = None


def list_maps() -> list[MapInfo]:
    """Every map visible by name, with its description or its first error."""
    out = []
    for name, path in available_maps().items():
        m, errors = _check(path)
        out.append(MapInfo(name, path, m.description if m else "", errors[0] if errors else None))
    return out


__all__ = ["ACTIONS", "Control", "MidiMap", "action_args", "load_map", "map_for_port", "validate_map_files",
           "scale", "Field"]

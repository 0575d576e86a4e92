"""MIDI input stage: controllers -> the OSC address map's actions, MIDI clock -> the tempo grid.

Transport and routing are apart, as in :mod:`live.osc`.  python-rtmidi owns the
ports (ALSA sequencer or JACK, ``api``); each message arrives on rtmidi's thread,
is parsed by mido, and goes to :meth:`MidiInput.handle`:

* notes and CCs are looked up in the learned map, then the port's map
  (:mod:`live.midi_map`), and run through the same handler an OSC message to
  that address runs through; the cue goes to the :class:`~live.cues.CueInput`;
* clock, Start, Stop and Continue go to a :class:`~core.tempo.MidiClock`;
* anything malformed or unmapped is counted (and shown on the HUD), never raised.

The stage's own thread polls the port list every ``poll_s``: a controller
that disappears is reported and closed, and reopened when its name comes back.
Learn mode (:meth:`learn`) binds the next control moved to an action and saves
it to ``$M2V_HOME/midi/learned.toml``.  :meth:`update_leds` sends the bank and
toggle states to the LEDs of controls whose map entry has ``led``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from pydantic import ValidationError

from core.errors import ConfigError, DeviceError
from core.tempo import MidiClock
from live.cues import CueInput
from live.midi_map import (HANDLERS, Control, MidiMap, action_args, bind, load_learned, map_for_port,
                           parse_learn, save_learned)
from live.osc_args import Rejected
from live.stage import Stage

log = logging.getLogger(__name__)

APIS = ("auto", "alsa", "jack")
CLIENT = "m2v"
_RECENT_S = 5.0  # a learn result or an input problem stays on the HUD this long


def rtmidi_module():
    """python-rtmidi, or a ConfigError naming the extra that installs it."""
    try:
        import mido  # noqa: F401 - parsing; checked here so the message names both
        import rtmidi
    except ImportError as exc:
        raise ConfigError(f"MIDI needs mido and python-rtmidi ({exc.name} is missing): "
                          "pip install 'm2v[midi]'") from None
    return rtmidi


def api_id(name: str) -> int:
    """An rtmidi API constant for 'alsa', 'jack' or 'auto' (ALSA when its sequencer exists, else JACK)."""
    rtmidi = rtmidi_module()
    if name not in APIS:
        raise ConfigError(f"MIDI API {name!r} is not one of {', '.join(APIS)}; use e.g. --midi-api jack")
    if name == "auto":
        name = "alsa" if os.path.exists("/dev/snd/seq") else "jack"
    api = {"alsa": rtmidi.API_LINUX_ALSA, "jack": rtmidi.API_UNIX_JACK}[name]
    if api not in rtmidi.get_compiled_api():
        raise ConfigError(f"this python-rtmidi was built without {name} support; use --midi-api "
                          + ("jack" if name == "alsa" else "alsa"))
    return api


def _open_client(kind: str, api: int, name: str):
    rtmidi = rtmidi_module()
    cls = rtmidi.MidiIn if kind == "in" else rtmidi.MidiOut
    try:
        return cls(api, name=name)
    except (rtmidi.SystemError, RuntimeError) as exc:  # no JACK server, no ALSA sequencer
        which = rtmidi.get_api_name(api)
        fix = ("start a JACK server (e.g. jackd -d dummy) or use --midi-api alsa" if which == "jack"
               else "load the ALSA sequencer (modprobe snd-seq) or use --midi-api jack")
        raise DeviceError(f"cannot open MIDI ({which}): {exc}; {fix}") from None


def list_ports(api: str = "auto") -> tuple[list[str], list[str]]:
    """(input port names, output port names) of the chosen API, m2v's own ports left out."""
    a = api_id(api)
    ins = _open_client("in", a, f"{CLIENT}-list")
    outs = _open_client("out", a, f"{CLIENT}-list")
    try:
        return _foreign(ins.get_ports()), _foreign(outs.get_ports())
    finally:
        ins.delete()
        outs.delete()


def _foreign(names: Sequence[str]) -> list[str]:
    return [n for n in names if not re.match(rf"{CLIENT}(-[\w]+)?(-\d+)?:", n)]


def device_key(port: str) -> str:
    """A port's device: the client name without JACK's '-01' renames or ALSA's 'client:port' numbers."""
    client = port.split(":")[0] if ":" in port else port
    client = re.sub(r"\s*\((capture|playback)\)", "", client)
    return re.sub(r"-\d+$", "", client).strip().lower()


def select_ports(wanted: Sequence[str], names: Sequence[str]) -> list[str]:
    """The port names that ``wanted`` (``all``, or name words each) picks out of ``names``."""
    from live.midi_map import port_matches

    if any(w.strip().lower() == "all" for w in wanted):
        return list(names)
    return [n for n in names if any(port_matches(w, n) for w in wanted)]


@dataclass
class _Port:
    name: str
    client: Any  # rtmidi.MidiIn
    map: MidiMap | None
    out: Any = None  # rtmidi.MidiOut to the same device, for LEDs
    out_name: str | None = None
    cc_last: dict[tuple[int, int], int] = field(default_factory=dict)


class MidiInput(Stage):
    """Opens the ``ports`` (``["all"]`` or name words) and keeps them open; see the module docstring.

    ``state(action)`` tells the current on/off of a toggle action (latch buttons flip it).
    ``clock`` stamps messages (the app's stream clock).  ``map_name`` forces one map on
    every port; by default each port gets the first map whose ``ports`` words its name has.
    """

    name = "midi"

    def __init__(self, *, cues: CueInput, ports: Sequence[str], api: str = "auto", map_name: str | None = None,
                 tempo: MidiClock | None = None, clock: Callable[[], float] = time.monotonic,
                 state: Callable[[str], bool] = lambda action: False, poll_s: float = 0.5,
                 client_name: str = CLIENT) -> None:
        super().__init__()
        self.cues = cues
        self.wanted = [p for p in ports if p.strip()]
        self.api = api_id(api)
        self.map_name = map_name
        self.tempo = tempo if tempo is not None else MidiClock()
        self.clock = clock
        self.state = state
        self.poll_s = float(poll_s)
        self.client_name = client_name
        self.learned = load_learned()
        self.ports: dict[str, _Port] = {}
        self.missing: set[str] = set()  # opened once, gone now
        self.learning: tuple[str, list[Any]] | None = None
        self.note: str | None = None  # the last learn result or port change, for the HUD
        self.note_at = float("-inf")
        self.last_error: str | None = None
        self.last_error_at = float("-inf")
        self._lock = threading.Lock()
        self._leds: dict[tuple[str, str, int, int], int] = {}
        self._logged: set[str] = set()
        if map_name:
            map_for_port("", name=map_name)  # a bad --midi-map is a startup error
        self._lister = _open_client("in", self.api, f"{client_name}-scan")

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self.scan()
        if not self.ports:
            log.warning("no MIDI input matches %s (inputs: %s); waiting for it to appear",
                        ", ".join(self.wanted), ", ".join(self._names()) or "none")
        super().start()

    def run(self) -> None:
        while not self.stopping.wait(self.poll_s):
            self.scan()

    def stop(self, timeout_s: float = 5.0) -> None:
        super().stop(timeout_s)
        with self._lock:
            for port in list(self.ports.values()):
                self._close(port)
            self.ports.clear()
        self._lister.delete()

    # --- ports -----------------------------------------------------------------------------------

    def _names(self) -> list[str]:
        return [n for n in _foreign(self._lister.get_ports()) if not n.startswith(f"{self.client_name}")]

    def scan(self) -> None:
        """Open wanted ports that appeared, close (and report) opened ones that vanished."""
        self.counters["scans"] += 1
        names = self._names()
        with self._lock:
            for name in [n for n in self.ports if n not in names]:
                self._close(self.ports.pop(name))
                self.missing.add(name)
                self.counters["unplugged"] += 1  # on the HUD while missing (problem())
                log.warning("MIDI input %s unplugged; it is reopened when it comes back", name)
            for name in select_ports(self.wanted, names):
                if name not in self.ports:
                    self._open(name, names)

    def _open(self, name: str, names: Sequence[str]) -> None:
        try:
            port_map = map_for_port(name, name=self.map_name)
        except ConfigError as exc:
            port_map = None
            self._problem("bad_map", str(exc))
        client = _open_client("in", self.api, self.client_name)
        client.ignore_types(sysex=True, timing=False, active_sense=True)
        try:
            client.open_port(client.get_ports().index(name), "in")
        except Exception as exc:  # noqa: BLE001 - gone between the scan and the open (ValueError, rtmidi's errors)
            client.delete()
            self._problem("open_failed", f"cannot open {name}: {exc}")
            return
        port = _Port(name, client, port_map)
        client.set_callback(lambda event, _data, port=port: self._on_message(port, event[0]))
        self._open_feedback(port)
        self.ports[name] = port
        again = name in self.missing
        self.missing.discard(name)
        self.counters["reopened" if again else "opened"] += 1
        self._tell(f"MIDI {'reopened' if again else 'opened'} {name}"
                   + (f" with map {port_map.path.stem}" if port_map and port_map.path else " (no map)"))

    def _open_feedback(self, port: _Port) -> None:
        """The output port of the same device, when its map has LEDs to light."""
        maps = [m for m in (port.map, self.learned) if m is not None]
        if not any(c.led for m in maps for c in m.control):
            return
        out = _open_client("out", self.api, self.client_name)
        names = out.get_ports()
        match = next((i for i, n in enumerate(names) if n == port.name), None)
        if match is None:
            match = next((i for i, n in enumerate(names) if device_key(n) == device_key(port.name)), None)
        if match is None:
            out.delete()
            return
        out.open_port(match, "out")
        port.out, port.out_name = out, names[match]

    def _close(self, port: _Port) -> None:
        for client in (port.client, port.out):
            if client is not None:
                client.close_port()
                client.delete()
        self._leds = {k: v for k, v in self._leds.items() if k[0] != port.name}

    # --- messages ----------------------------------------------------------------------------------

    def _on_message(self, port: _Port, data: list[int]) -> None:
        try:
            self.handle(port.name, data, self.clock())
        except Exception as exc:  # noqa: BLE001 - never into rtmidi's thread
            self._problem("handler_error", f"{type(exc).__name__}: {exc}")

    def handle(self, port_name: str, data: Sequence[int], t_s: float) -> None:
        """One raw message from ``port_name`` at stream time ``t_s`` (rtmidi's thread, or a test)."""
        self.counters["messages"] += 1
        try:
            self._handle(port_name, data, t_s)
        finally:
            self.counters["handled"] += 1  # after the cue is queued (tests wait on it)

    def _handle(self, port_name: str, data: Sequence[int], t_s: float) -> None:
        import mido

        try:
            msg = mido.Message.from_bytes(list(data))
        except (ValueError, TypeError) as exc:
            self._problem("malformed", f"{port_name}: {list(data)[:8]} ({exc})")
            return
        kind = msg.type
        if kind == "clock":
            self.tempo.tick(t_s)
        elif kind in ("start", "stop", "continue"):
            getattr(self.tempo, "continue_" if kind == "continue" else kind)(t_s)
            self.counters[f"clock_{kind}"] += 1
        elif kind in ("note_on", "note_off", "control_change"):
            self._control(port_name, msg)
        else:
            self._problem("unmapped", f"{port_name}: {msg}")

    def _control(self, port_name: str, msg) -> None:
        port = self.ports.get(port_name)
        if msg.type == "control_change":
            kind, number, value = "cc", msg.control, msg.value
            last = port.cc_last.get((msg.channel, number), 0) if port else 0
            if port:
                port.cc_last[(msg.channel, number)] = value
            pressed = True if value >= 64 > last else False if value < 64 <= last else None
        else:
            kind, number = "note", msg.note
            value = msg.velocity if msg.type == "note_on" else 0
            pressed = value > 0
        if self.learning is not None and pressed is not False:
            self._bind(port_name, kind, msg.channel, number)
            return
        control = self.learned.lookup(port_name, kind, msg.channel, number)
        if control is None and port is not None and port.map is not None:
            control = port.map.lookup(port_name, kind, msg.channel, number)
        if control is None:
            if pressed is not False:  # a release of an unmapped button is not a second complaint
                self._problem("unmapped", f"{port_name}: {kind} {number} on channel {msg.channel + 1}")
            return
        args = action_args(control, raw=value, pressed=pressed, state=self.state(control.action))
        if args is None:
            return
        try:
            cue = HANDLERS[control.action]("/" + control.action, *args)
        except Rejected as exc:
            self._problem(exc.kind, f"{control.action} {args}: {exc}")
            return
        self.cues.push(cue, source="midi")
        self.counters["cues"] += 1

    # --- learn mode ----------------------------------------------------------------------------------

    def learn(self, text: str) -> None:
        """Bind the next control moved to ``text`` (``"blackout"``, ``"bank 3"``); bad text goes to the HUD."""
        action, args = parse_learn(text) if text.strip() else ("", [])
        try:
            Control(note=0, action=action, args=args)
        except ValidationError as exc:
            self._problem("learn_refused", f"learn {text!r}: {exc.errors()[0]['msg']}")
            return
        self.learning = (action, args)
        self._tell(f"MIDI learn: move a control for {' '.join([action, *map(str, args)])}")

    def cancel_learn(self) -> None:
        self.learning = None

    def _bind(self, port_name: str, kind: str, channel: int, number: int) -> None:
        learning, self.learning = self.learning, None
        if learning is None:
            return
        action, args = learning
        control = Control(channel=channel + 1, action=action, args=args, port=port_name,
                          **{kind: number}, mode="latch")
        self.learned = bind(self.learned, control)
        try:
            path = save_learned(self.learned)
        except OSError as exc:
            self._problem("learn_not_saved", f"learned but not saved ({exc}); check $M2V_HOME")
            return
        self.counters["learned"] += 1
        self._tell(f"MIDI learned {kind} {number} ch {channel + 1} -> {' '.join([action, *map(str, args)])} "
                   f"(saved to {path})")

    # --- LED feedback -----------------------------------------------------------------------------

    def update_leds(self, *, toggles: Mapping[str, bool], bank: int | None) -> int:
        """Send each LED whose state changed (toggles by action name, the active bank entry); returns the count."""
        sent = 0
        with self._lock:
            for port in self.ports.values():
                if port.out is None:
                    continue
                controls = [c for c in self.learned.control if c.port and c.port == port.name]
                controls += port.map.control if port.map is not None else []
                for c in controls:
                    on = _led_state(c, toggles, bank)
                    if on is None:
                        continue
                    value = c.led.on if on else c.led.off  # type: ignore[union-attr]
                    key = (port.name, c.kind, (c.channel or 1) - 1, c.number)
                    if self._leds.get(key) == value:
                        continue
                    status = (0x90 if c.kind == "note" else 0xB0) | key[2]
                    port.out.send_message([status, c.number, value])
                    self._leds[key] = value
                    sent += 1
        self.counters["leds"] += sent
        return sent

    # --- reporting ----------------------------------------------------------------------------------

    def _tell(self, text: str) -> None:
        self.note, self.note_at = text, time.monotonic()
        log.info("%s", text)

    def _problem(self, kind: str, detail: str) -> None:
        self.counters[kind] += 1
        self.last_error, self.last_error_at = f"{kind.replace('_', ' ')}: {detail}", time.monotonic()
        if kind not in self._logged:  # once per kind: a flood must not flood the log too
            self._logged.add(kind)
            log.warning("MIDI %s (%s); further ones are counted, not logged", kind.replace("_", " "), detail)

    def hud_line(self) -> str | None:
        """Learn mode, the latest port change or learn result, and the problem counts, for the HUD."""
        now = time.monotonic()
        parts = []
        if self.learning is not None:
            parts.append(f"MIDI learn: move a control for {' '.join([self.learning[0], *map(str, self.learning[1])])}")
        elif self.note and now - self.note_at < _RECENT_S:
            parts.append(self.note)
        bad = {k: self.counters[k] for k in ("unmapped", "malformed") if self.counters.get(k)}
        if bad:
            parts.append("midi " + ", ".join(f"{v} {k}" for k, v in bad.items()))
        return "   ".join(parts) or None

    def problem(self) -> str | None:
        """A port that is gone, or the last recent problem, for the HUD's error line."""
        if self.missing:
            return f"midi: {', '.join(sorted(self.missing))} unplugged; reopened when it comes back"
        if self.last_error and time.monotonic() - self.last_error_at < _RECENT_S \
                and not self.last_error.startswith(("unmapped", "malformed")):
            return f"midi: {self.last_error}"
        return None


def _led_state(c: Control, toggles: Mapping[str, bool], bank: int | None) -> bool | None:
    if c.led is None:
        return None
    if c.action in toggles:
        return bool(toggles[c.action])
    if c.action == "bank" and c.args:
        return bank == c.args[0]
    return None

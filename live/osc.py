"""OSC listener stage (desk → cue events) and the state feedback sender.

Transport and routing are apart.  :class:`OscListener` owns the UDP socket: it
checks the sender against the allow-list and the rate limit, parses with
python-osc (messages, and bundles when sent), and strips prefixes.  A python-osc
``Dispatcher`` maps each address to a small handler that only coerces arguments
(i/f/s/T/F, as desks send them) and returns a typed :mod:`core.events` cue; the
listener pushes it into the :class:`~live.cues.CueInput`.

Nothing a sender does can stop the show: malformed packets, unknown addresses,
wrong types, long strings, floods and refused senders are counted per kind and
logged once per kind.  Strings are only ever stored, never evaluated.

Address map (after the prefix, default ``/m2v``; see the README for types)::

    /lyric s [f]   /clear   /prompt s [f]   /prompt/clear   /bank i   /preset s
    /song i|s      /freeze i   /blackout i   /record i   /intensity f
    /sensitivity f   /rate f f   /quantize s

ETC Eos cue output (``/eos/out/active/cue/text`` and
``/eos/out/active/cue/<list>/<cue>``) becomes a lyric cue through a cue→lyric
table (``eos_cues``), keyed ``"<list>/<cue>"`` or by the cue's label.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import socket
import struct
import time
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from core import events as ev
from core.errors import ConfigError
from live.cues import CueInput
from live.stage import Stage

log = logging.getLogger(__name__)

DEFAULT_PORT = 9000
DEFAULT_PREFIX = "/m2v"
DEFAULT_EXTRA_PREFIXES = ("/gma3",)  # grandMA3 prepends its OSC prefix to every address
MAX_DATAGRAM = 65535
_BUNDLE_TAG = b"#bundle\x00"
_MAX_BUNDLE_DEPTH = 4
# Type tags python-osc parses; anything else is refused before parsing, so a
# hostile packet cannot flood the log through python-osc's own warnings.
_KNOWN_TAGS = frozenset("ihfdsbrmtTFN[]")
_WILDCARDS = frozenset("*?[]{}")

_TRUE_WORDS = {"1", "true", "t", "on", "yes", "y"}
_FALSE_WORDS = {"0", "false", "f", "off", "no", "n"}


class Rejected(Exception):
    """A message that cannot become a cue; ``kind`` is the counter it goes to."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


# --- argument coercion ----------------------------------------------------------
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


# --- address handlers: OSC args in, a cue event out --------------------------------


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
        if mode not in ("off", "beat", "bar"):
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
    }


# --- configuration helpers (flags, presets) -----------------------------------------


def parse_allow_list(text: str | Iterable[str] | None) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None:
    """``"192.168.1.0/24,10.0.0.5"`` → networks; empty or None → None (no filter)."""
    if text is None:
        return None
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    items = [s for s in items if s]
    if not items:
        return None
    nets = []
    for item in items:
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                f"OSC allow-list entry {item!r} is not an IP address or CIDR network; "
                "write e.g. --osc-allow 192.168.1.0/24,10.0.0.5") from None
    return nets


def parse_host_port(text: str, *, default_port: int | None = None) -> tuple[str, int]:
    """``"HOST:PORT"`` (or ``"[v6]:PORT"``, or ``HOST`` with a default port) → (host, port)."""
    m = re.fullmatch(r"\[(?P<h6>[^\]]+)\](?::(?P<p6>\d+))?|(?P<h>[^:\[\]]+)(?::(?P<p>\d+))?", text.strip())
    host = m and (m.group("h6") or m.group("h"))
    port_text = m and (m.group("p6") or m.group("p"))
    port = int(port_text) if port_text else default_port
    if not host or port is None or not 0 < port < 65536:
        raise ConfigError(f"{text!r} is not HOST:PORT with a port 1..65535; write e.g. 192.168.1.20:9001")
    return host, port


def _check_prefix(prefix: str, what: str) -> str:
    prefix = prefix.rstrip("/")
    if prefix and (not prefix.startswith("/") or any(c in _WILDCARDS or c.isspace() for c in prefix)):
        raise ConfigError(f"OSC {what} {prefix!r} must start with '/' and hold no spaces or wildcards, "
                          "e.g. /m2v")
    return prefix


# --- packet parsing ------------------------------------------------------------------


def _message_tags_ok(dgram: bytes) -> bool:
    """The type tag string uses only tags python-osc parses (checked before parsing)."""
    end = dgram.find(b"\x00")
    if end < 0:
        return False
    start = (end + 4) & ~3  # the address is padded to 4 bytes
    if start >= len(dgram):
        return True  # no type tags: a message without arguments
    tag_end = dgram.find(b"\x00", start)
    if tag_end < 0 or dgram[start:start + 1] != b",":
        return False
    try:
        return all(c in _KNOWN_TAGS for c in dgram[start + 1:tag_end].decode("ascii"))
    except UnicodeDecodeError:
        return False


def iter_messages(dgram: bytes, *, depth: int = 0) -> Iterator[OscMessage]:
    """Messages in a datagram (a message, or a bundle of messages and bundles).

    Bundle time tags are ignored: cues act on arrival (desks send no bundles;
    a scheduled cue would be a surprise in a show).  Raises ValueError or
    python-osc's ParseError on a malformed packet.
    """
    if dgram.startswith(_BUNDLE_TAG):
        if depth >= _MAX_BUNDLE_DEPTH:
            raise ValueError("bundles nested too deep")
        i = len(_BUNDLE_TAG) + 8  # the 8-byte time tag
        if len(dgram) < i:
            raise ValueError("truncated bundle")
        while i < len(dgram):
            if i + 4 > len(dgram):
                raise ValueError("truncated bundle element size")
            (size,) = struct.unpack(">i", dgram[i:i + 4])
            i += 4
            if size <= 0 or size % 4 or i + size > len(dgram):
                raise ValueError(f"bad bundle element size {size}")
            yield from iter_messages(dgram[i:i + size], depth=depth + 1)
            i += size
    elif dgram.startswith(b"/") and len(dgram) % 4 == 0:
        if not _message_tags_ok(dgram):
            raise ValueError("bad or unsupported type tags")
        yield OscMessage(dgram)
    else:
        raise ValueError("not an OSC message or bundle")


# --- the listener ---------------------------------------------------------------------


class OscListener(Stage):
    """UDP OSC server thread that turns desk messages into cues on ``cues``.

    ``port=None`` binds an ephemeral port (tests); ``port=0`` disables the listener
    (``start`` does nothing), as ``--osc-port 0`` does.  The socket is bound here,
    so a busy port is a :class:`~core.errors.ConfigError` before the show starts;
    :attr:`port` is the bound port.
    """

    name = "osc"

    def __init__(
        self,
        *,
        cues: CueInput,
        host: str = "127.0.0.1",
        port: int | None = DEFAULT_PORT,
        prefix: str = DEFAULT_PREFIX,
        extra_prefixes: Sequence[str] = DEFAULT_EXTRA_PREFIXES,
        allow: str | Iterable[str] | None = None,
        eos_cues: Mapping[str, str] | None = None,
        max_string_len: int = 256,
        max_rate_hz: float = 1000.0,
        burst: int = 1000,
        poll_s: float = 0.05,
    ) -> None:
        super().__init__()
        self.cues = cues
        self.prefix = _check_prefix(prefix, "prefix")
        self.extra_prefixes = tuple(_check_prefix(p, "extra prefix") for p in extra_prefixes)
        self.allow = parse_allow_list(allow)
        self.eos_cues = {str(k).strip(): str(v) for k, v in (eos_cues or {}).items()}
        self.max_string_len = int(max_string_len)
        self.max_rate_hz = float(max_rate_hz)
        self.burst = float(burst)
        self.poll_s = float(poll_s)
        self._tokens = self.burst
        self._tokens_at = time.monotonic()
        self._logged: set[str] = set()
        self._eos_active: str | None = None
        self.last_error: str | None = None
        self.last_error_at = float("-inf")  # time.monotonic() of last_error

        self.dispatcher = Dispatcher()
        for address, handler in build_handlers(max_string_len=self.max_string_len).items():
            self.dispatcher.map(self.prefix + address, handler)
        self.dispatcher.map("/eos/out/active/cue/*", self._eos)

        self.enabled = port != 0
        self.host = host
        self.port = 0
        self._sock: socket.socket | None = None
        if self.enabled:
            self._sock = self._bind(host, port or 0)
            self.port = self._sock.getsockname()[1]
            if self.allow is None and not ipaddress.ip_address(self._sock.getsockname()[0]).is_loopback:
                log.warning("OSC listens on %s:%d and accepts every sender; "
                            "limit it with --osc-allow 192.168.1.0/24", host, self.port)

    @staticmethod
    def _bind(host: str, port: int) -> socket.socket:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
            family, _, _, _, addr = infos[0]
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # ride out bursts
            sock.bind(addr)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen for OSC on {host}:{port} ({exc.strerror or exc}); choose another "
                "--osc-port, stop the program using it, or --osc-port 0 to run without OSC") from None
        return sock

    # --- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        if not self.enabled:
            log.info("OSC disabled (port 0)")
            return
        log.info("OSC listening on %s:%d, prefix %s", self.host, self.port, self.prefix)
        super().start()

    def run(self) -> None:
        assert self._sock is not None
        self._sock.settimeout(self.poll_s)
        while not self.stopping.is_set():
            try:
                data, sender = self._sock.recvfrom(MAX_DATAGRAM)
            except socket.timeout:
                continue
            except OSError:
                if self.stopping.is_set():
                    break
                self._drop("socket_error", "receive failed")
                continue
            self.handle_datagram(data, sender)

    def stop(self, timeout_s: float = 5.0) -> None:
        super().stop(timeout_s)
        if self._sock is not None:
            self._sock.close()

    # --- packets --------------------------------------------------------------------

    def handle_datagram(self, data: bytes, sender: tuple[Any, ...]) -> int:
        """Route one datagram from ``sender``; returns how many cues it produced.

        Never raises: whatever goes wrong is counted and logged once per kind.
        """
        self.counters["packets"] += 1
        try:
            return self._handle(data, sender)
        finally:
            self.counters["handled"] += 1  # after the cues are queued (tests wait on it)

    def _handle(self, data: bytes, sender: tuple[Any, ...]) -> int:
        if self.allow is not None and not self._allowed(sender[0]):
            self._drop("not_allowed", f"sender {sender[0]} is not in the allow-list")
            return 0
        if not self._take_token():
            self._drop("rate_limited", f"more than {self.max_rate_hz:g} messages/s")
            return 0
        produced = 0
        try:
            messages = list(iter_messages(data))
        except Exception as exc:  # noqa: BLE001 - any parse failure is a bad packet, not a crash
            self._drop("malformed", f"{type(exc).__name__}: {exc}")
            return 0
        for message in messages:
            self.counters["messages"] += 1
            try:
                cue = self._route(message, sender)
            except Rejected as exc:
                self._drop(exc.kind, f"{message.address}: {exc}")
                continue
            except Exception as exc:  # noqa: BLE001 - a handler bug must not stop the listener
                self._drop("handler_error", f"{message.address}: {type(exc).__name__}: {exc}")
                continue
            if cue is not None:
                self.cues.push(cue, source="osc")
                self.counters["cues"] += 1
                produced += 1
        return produced

    def _route(self, message: OscMessage, sender: tuple[Any, ...]) -> ev.CueEvent | None:
        address = message.address
        if len(address) > self.max_string_len:
            raise Rejected("malformed", f"address of {len(address)} characters")
        if any(c in _WILDCARDS for c in address):
            # One '/m2v/*' would fire blackout, record, freeze... at once: refused.
            raise Rejected("pattern_refused", "address patterns (wildcards) are not accepted")
        for extra in self.extra_prefixes:
            if extra and address.startswith(extra + "/"):
                address = address[len(extra):]
                break
        handlers = list(self.dispatcher.handlers_for_address(address))
        if not handlers:
            if address.startswith("/eos/"):
                self.counters["eos_ignored"] += 1  # Eos sends much more than cues
                return None
            raise Rejected("unknown_address", f"not an m2v address (prefix {self.prefix})")
        args = list(message.params)
        return handlers[0].callback(address, *args)

    def _eos(self, address: str, *args: Any) -> ev.CueEvent | None:
        """Eos active-cue output → a lyric cue from the table, once per cue change."""
        tail = address[len("/eos/out/active/cue/"):]
        if tail == "text":
            text = as_str(_arg(args, 0, "cue text"), max_len=self.max_string_len)
            # "<list>/<cue> <label> <time> <percent>", e.g. "1/5 Chorus 3.0 100%"
            key, _, rest = text.partition(" ")
            no_percent = re.sub(r"\s+[\d.]+%$", "", rest).strip()
            label = re.sub(r"(\s+[\d.:]+)+$", "", no_percent).strip()
            candidates = [key, label, no_percent, rest.strip(), text]
        else:
            parts = tail.split("/")
            if len(parts) != 2 or not all(parts):
                self.counters["eos_ignored"] += 1
                return None
            key = tail
            candidates = [key]
        if key == self._eos_active:
            return None  # progress updates of the cue already active
        self._eos_active = key
        for candidate in candidates:
            if candidate and candidate in self.eos_cues:
                lyric = self.eos_cues[candidate]
                self.counters["eos_cues"] += 1
                return ev.LyricCue(lyric) if lyric.strip() else ev.ClearLyric()
        self.counters["eos_unmapped"] += 1
        return None

    def _allowed(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.allow or ())

    def _take_token(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._tokens_at) * self.max_rate_hz)
        self._tokens_at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _drop(self, kind: str, detail: str) -> None:
        self.counters[kind] += 1
        self.last_error, self.last_error_at = f"{kind}: {detail}", time.monotonic()
        if kind not in self._logged:  # once per kind: a flood must not flood the log too
            self._logged.add(kind)
            log.warning("OSC %s (%s); further ones are counted, not logged", kind.replace("_", " "), detail)


# --- feedback ---------------------------------------------------------------------------


class OscFeedback:
    """Sends ``<prefix>/state/...`` messages to a desk or TouchDesigner.

    Call :meth:`send_state` as often as convenient (10-30 Hz is plenty); only
    values that changed since the last send go out.  Send failures (host
    unreachable) are counted and logged once, never raised.
    """

    def __init__(self, *, host: str, port: int, prefix: str = DEFAULT_PREFIX,
                 float_tolerance: float = 1e-3) -> None:
        self.host, self.port = host, int(port)
        self.prefix = _check_prefix(prefix, "prefix")
        self.float_tolerance = float(float_tolerance)
        try:
            family, _, _, _, self._addr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        except OSError as exc:
            raise ConfigError(f"OSC feedback host {host!r} cannot be resolved ({exc}); "
                              "give an IP address, e.g. --osc-feedback 192.168.1.20:9001") from None
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._last: dict[str, Any] = {}
        self._error_logged = False
        self.counters: dict[str, int] = {"sent": 0, "errors": 0}

    def send_state(
        self,
        *,
        guidance: str | None = None,
        kind: str | None = None,
        intensity: float | None = None,
        onset: float | None = None,
        steps_per_s: float | None = None,
        recording: bool | None = None,
        frozen: bool | None = None,
        blackout: bool | None = None,
        force: bool = False,
    ) -> int:
        """Send the given fields that changed (all given ones with ``force``); returns the count.

        ``/state/guidance s`` (lyric or prompt text, "" under audio guidance),
        ``/state/kind s`` (audio|lyric|prompt), ``/state/intensity f`` (0..1),
        ``/state/onset f`` (onset pulse 0..1), ``/state/steps f`` (steps/s),
        ``/state/recording i``, ``/state/frozen i``, ``/state/blackout i``.
        """
        fields: dict[str, Any] = {
            "guidance": guidance, "kind": kind, "intensity": intensity, "onset": onset,
            "steps": steps_per_s, "recording": recording, "frozen": frozen, "blackout": blackout,
        }
        sent = 0
        for name, value in fields.items():
            if value is None:
                continue
            if isinstance(value, bool):
                value = int(value)
            elif isinstance(value, float):
                value = float(value)
            old = self._last.get(name)
            if not force and old is not None and (
                    abs(old - value) <= self.float_tolerance if isinstance(value, float) else old == value):
                continue
            builder = OscMessageBuilder(address=f"{self.prefix}/state/{name}")
            builder.add_arg(value)
            if self._send(builder.build().dgram):
                self._last[name] = value
                sent += 1
        return sent

    def _send(self, dgram: bytes) -> bool:
        try:
            self._sock.sendto(dgram, self._addr)
        except OSError as exc:
            self.counters["errors"] += 1
            if not self._error_logged:
                self._error_logged = True
                log.warning("OSC feedback to %s:%d failed (%s); further failures are counted",
                            self.host, self.port, exc)
            return False
        self.counters["sent"] += 1
        return True

    def close(self) -> None:
        self._sock.close()

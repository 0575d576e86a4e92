"""OSC listener stage: desk → cue events.

Transport and routing are apart.  :class:`OscListener` owns the UDP socket: it
checks the sender against the allow-list and the rate limit, parses with
python-osc (messages, and bundles when sent), and strips prefixes.  A python-osc
``Dispatcher`` maps each address to a small handler that only coerces arguments
(i/f/s/T/F, as desks send them) and returns a typed :mod:`core.events` cue; the
listener pushes it into the :class:`~live.cues.CueInput`.

Nothing a sender does can stop the show: malformed packets, unknown addresses,
wrong types, long strings, floods and refused senders are counted per kind and
logged once per kind.  Strings are only ever stored, never evaluated.

The address map lives in :mod:`live.osc_map`, argument coercion in
:mod:`live.osc_args`, the state feedback sender in :mod:`live.osc_feedback`
(re-exported here).

ETC Eos cue output (``/eos/out/active/cue/text`` and
``/eos/out/active/cue/<list>/<cue>``) becomes a lyric cue through a cue→lyric
table (``eos_cues``), keyed ``"<list>/<cue>"`` or by the cue's label.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import struct
import time
from typing import Any, Iterable, Iterator, Mapping, Sequence

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_message import OscMessage

from core import events as ev
from core.errors import ConfigError
from live.cues import CueInput
from live.osc_args import Rejected, as_bool, as_float, as_int, as_str  # noqa: F401 - re-exported
from live.osc_feedback import OscFeedback  # noqa: F401 - re-exported
from live.osc_map import _WILDCARDS, DEFAULT_PREFIX, _check_prefix, build_handlers, eos_keys
from live.stage import Stage

log = logging.getLogger(__name__)

DEFAULT_PORT = 9000
DEFAULT_EXTRA_PREFIXES = ("/gma3",)  # grandMA3 prepends its OSC prefix to every address
MAX_DATAGRAM = 65535
_BUNDLE_TAG = b"#bundle\x00"
_MAX_BUNDLE_DEPTH = 4
# Type tags python-osc parses; anything else is refused before parsing, so a
# hostile packet cannot flood the log through python-osc's own warnings.
_KNOWN_TAGS = frozenset("ihfdsbrmtTFN[]")



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
        found = eos_keys(address, args, max_len=self.max_string_len)
        if found is None:
            self.counters["eos_ignored"] += 1
            return None
        key, candidates = found
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



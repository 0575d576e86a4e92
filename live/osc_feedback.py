"""OSC state feedback: m2v's state sent to a desk or TouchDesigner as ``<prefix>/state/...`` messages."""

from __future__ import annotations

import logging
import socket
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder

from core.errors import ConfigError
from live.osc_map import DEFAULT_PREFIX, _check_prefix

log = logging.getLogger(__name__)


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

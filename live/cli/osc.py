"""``m2v osc``: send a cue or watch OSC traffic, to test a rig without a desk.

    m2v osc send /m2v/lyric "a red sky" 4.0          # s f, typed automatically
    m2v osc send /m2v/freeze T
    m2v osc send /m2v/bank 3 --port 9000
    m2v osc send /m2v/lyric 1999 --types s           # force the text "1999"
    m2v osc monitor --port 9001                      # print what arrives (e.g. feedback)
"""

from __future__ import annotations

import argparse
import re

HELP = "send an OSC message to m2v (test a rig without a desk), or print OSC that arrives"

_INT = re.compile(r"[+-]?\d+")
_TYPES = "ifsTF"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="osc_command", metavar="ACTION", required=True)
    send = sub.add_parser("send", help="send one message", description="Send one OSC message over UDP. "
                          "ARGS are typed automatically: T/F booleans, integers, floats, else strings.")
    send.add_argument("address", metavar="ADDRESS", help="OSC address, e.g. /m2v/lyric")
    send.add_argument("args", metavar="ARGS", nargs="*", help="arguments, e.g. 'a red sky' 4.0")
    send.add_argument("--host", default="127.0.0.1", help="where m2v listens (default 127.0.0.1)")
    send.add_argument("--port", type=int, default=9000, help="m2v's --osc-port (default 9000)")
    send.add_argument("--types", default=None,
                      help=f"explicit type tags, one per ARG from {_TYPES!r}, e.g. 'sf' (default: guess)")
    mon = sub.add_parser("monitor", help="print OSC messages that arrive on a port",
                         description="Listen on HOST:PORT and print each OSC message that arrives "
                         "(for instance m2v's --osc-feedback).")
    mon.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    mon.add_argument("--port", type=int, default=9001, help="port to listen on (default 9001)")
    mon.add_argument("--count", type=int, default=0, help="stop after this many messages (default: never)")
    mon.add_argument("--timeout", type=float, default=0.0,
                     help="stop after this many seconds (default: never; Ctrl-C stops)")


def typed_args(args: list[str], types: str | None = None) -> list[tuple[str, object]]:
    """(type tag, value) per argument; guessed from the text unless ``types`` is given."""
    from core.errors import ConfigError

    if types is not None:
        if len(types) != len(args) or any(t not in _TYPES for t in types):
            raise ConfigError(f"--types {types!r} must have one of {_TYPES!r} per argument "
                              f"({len(args)} given), e.g. --types sf for a text and a number")
    out: list[tuple[str, object]] = []
    for i, text in enumerate(args):
        tag = types[i] if types else _guess(text)
        try:
            value = {"i": int, "f": float, "s": str}[tag](text) if tag in "ifs" else tag == "T"
        except ValueError:
            raise ConfigError(f"argument {text!r} is not of type {tag!r}; fix --types") from None
        out.append((tag, value))
    return out


def _guess(text: str) -> str:
    if text in ("T", "F"):
        return text
    if _INT.fullmatch(text):
        return "i"
    try:
        float(text)
    except ValueError:
        return "s"
    return "f" if text.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity") else "s"


def run(args: argparse.Namespace) -> int:
    if args.osc_command == "send":
        return _send(args)
    return _monitor(args)


def _port(port: int) -> int:
    from core.errors import ConfigError

    if not 0 < port < 65536:
        raise ConfigError(f"--port {port}: give a UDP port 1..65535")
    return port


def _send(args: argparse.Namespace) -> int:
    import socket

    from pythonosc.osc_message_builder import OscMessageBuilder

    from core.errors import ConfigError

    if not args.address.startswith("/") or any(c.isspace() for c in args.address):
        raise ConfigError(f"address {args.address!r} must start with '/' and hold no spaces, e.g. /m2v/lyric")
    builder = OscMessageBuilder(address=args.address)
    values = typed_args(args.args, args.types)
    for tag, value in values:
        builder.add_arg(value, tag)
    port = _port(args.port)
    try:
        family, _, _, _, addr = socket.getaddrinfo(args.host, port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.sendto(builder.build().dgram, addr)
    except OSError as exc:
        raise ConfigError(f"cannot send to {args.host}:{port} ({exc}); check --host and --port") from None
    shown = " ".join(f"{t}:{v!r}" for t, v in values)
    print(f"sent {args.address} {shown} to {args.host}:{port}".rstrip())
    return 0


def _monitor(args: argparse.Namespace) -> int:
    import socket
    import sys
    import time

    from core.errors import ConfigError
    from live.osc import iter_messages

    port = _port(args.port)
    try:
        family, _, _, _, addr = socket.getaddrinfo(args.host, port, type=socket.SOCK_DGRAM)[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind(addr)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{port} ({exc}); choose another --port") from None
    print(f"listening on {args.host}:{port}", file=sys.stderr, flush=True)
    deadline = time.monotonic() + args.timeout if args.timeout > 0 else None
    seen = 0
    with sock:
        while deadline is None or time.monotonic() < deadline:
            sock.settimeout(0.2 if deadline is None else max(0.01, min(0.2, deadline - time.monotonic())))
            try:
                data, sender = sock.recvfrom(65535)
            except socket.timeout:
                continue
            try:
                messages = list(iter_messages(data))
            except Exception as exc:  # noqa: BLE001 - show bad packets, keep listening
                print(f"{sender[0]}:{sender[1]} malformed packet ({exc})", flush=True)
                continue
            for m in messages:
                shown = " ".join(repr(p) for p in m.params)
                print(f"{m.address} {shown}".rstrip(), flush=True)
                seen += 1
                if args.count and seen >= args.count:
                    return 0
    return 0 if not args.count else 1

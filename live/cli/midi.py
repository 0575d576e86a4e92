"""``m2v midi``: list ports, watch messages, validate and list maps.

    m2v midi list [--api jack]             # input and output ports
    m2v midi monitor [PORT ...] [--count N] [--timeout S]   # print what arrives, and what it is mapped to
    m2v midi maps                          # shipped and user maps
    m2v midi validate FILE ...             # every error, with line numbers
"""

from __future__ import annotations

import argparse

HELP = "MIDI controllers: list ports, watch messages, list and validate maps"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    lst = sub.add_parser("list", help="MIDI input and output ports")
    mon = sub.add_parser("monitor", help="print each message that arrives, and the action its map binds it to")
    mon.add_argument("ports", metavar="PORT", nargs="*", default=["all"],
                     help="port name words (default: all inputs)")
    mon.add_argument("--map", default=None, help="map name or path for every port (default: chosen by port name)")
    mon.add_argument("--count", type=int, default=0, help="stop after this many messages (default: never)")
    mon.add_argument("--timeout", type=float, default=0.0, help="stop after this many seconds (default: never)")
    for p in (lst, mon):
        p.add_argument("--api", default="auto", choices=("auto", "alsa", "jack"),
                       help="MIDI system: alsa (sequencer), jack, or auto (ALSA when present)")
    sub.add_parser("maps", help="shipped and user maps ($M2V_HOME/midi), with their descriptions")
    val = sub.add_parser("validate", help="check map files; every error with its line, then exit non-zero")
    val.add_argument("files", metavar="FILE", nargs="+", help="map .toml files")


def run(args: argparse.Namespace) -> int:
    return {"list": _list, "monitor": _monitor, "maps": _maps, "validate": _validate}[args.action](args)


def _list(args: argparse.Namespace) -> int:
    from live.midi import list_ports

    ins, outs = list_ports(args.api)
    print("inputs:" if ins else "inputs: none (plug in a controller, or start its JACK/a2j bridge)")
    for name in ins:
        print(f"  {name}")
    print("outputs:" if outs else "outputs: none")
    for name in outs:
        print(f"  {name}")
    return 0


def _maps(args: argparse.Namespace) -> int:  # noqa: ARG001
    from live.midi_map import list_maps

    infos = list_maps()
    width = max((len(i.name) for i in infos), default=4)
    for info in infos:
        print(f"{info.name:<{width}}  {('INVALID: ' + info.error) if info.error else info.description}  [{info.path}]")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from live.cli import report_errors
    from live.midi_map import validate_map_files

    return report_errors(validate_map_files(args.files), len(args.files))


def _monitor(args: argparse.Namespace) -> int:
    import sys
    import threading
    import time

    import mido

    from live.cues import CueInput
    from live.midi import MidiInput

    seen = threading.Semaphore(0)
    lines: list[str] = []

    class Monitor(MidiInput):
        def handle(self, port_name, data, t_s):  # print, then map as m2v live would
            try:
                shown = str(mido.Message.from_bytes(list(data)))
            except (ValueError, TypeError):
                shown = f"malformed {list(data)}"
            before = self.cues.counters["pushed"]
            super().handle(port_name, data, t_s)
            after = [e for e in self.cues.drain()]
            mapped = f" -> {after[-1]}" if self.cues.counters["pushed"] > before and after else ""
            lines.append(f"{port_name}: {shown}{mapped}")
            print(lines[-1], flush=True)
            seen.release()

    mon = Monitor(cues=CueInput(), ports=args.ports, api=args.api, map_name=args.map)
    mon.start()
    print("listening on " + (", ".join(mon.ports) or f"nothing yet ({' '.join(args.ports)})"), file=sys.stderr,
          flush=True)
    deadline = time.monotonic() + args.timeout if args.timeout > 0 else None
    try:
        n = 0
        while (not args.count or n < args.count) and (deadline is None or time.monotonic() < deadline):
            if seen.acquire(timeout=0.2):
                n += 1
    finally:
        mon.stop()
    return 0 if not args.count or n >= args.count else 1

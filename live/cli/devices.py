"""``m2v devices``: list the audio inputs PortAudio can open."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

HELP = "list audio input devices (index, name, host API, channels, default rate)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")


def run(args: argparse.Namespace) -> int:
    from live.devices import format_device_table, host_api_names, list_input_devices, no_devices_message

    devices = list_input_devices()
    if args.json:
        print(json.dumps([asdict(d) for d in devices], indent=2))
        return 0 if devices else 1
    if not devices:
        print(no_devices_message(host_api_names()), file=sys.stderr)
        return 1
    print(format_device_table(devices))
    print("\n* default input.  Use: m2v live --input INDEX | --input 'NAME words'")
    return 0

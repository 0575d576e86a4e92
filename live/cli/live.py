"""``m2v live``: the real-time instrument."""

from __future__ import annotations

import argparse

from live.audio_input import DEFAULT_BLOCK
from live.cli import add_common_arguments, size_arg

HELP = "run live: audio in -> onsets/intensity -> CLIP-guided VQGAN -> fullscreen (and a recording)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", default=None,
                        help="audio input: a device index or name (see `m2v devices`), an audio file played in "
                        "real time, 'demo' (built-in beat) or 'sections' (built-in toy-world sound sections, for "
                        "--models toy). Default: the default input device")
    parser.add_argument("--preset", default=None, help="preset name or .toml path (default: club with a GPU, cpu without)")
    parser.add_argument("--show", default=None, help="show file (setlist) with per-song presets and lyric cues")
    add_common_arguments(parser)
    parser.add_argument("--size", type=size_arg, default=None,
                        help="image size S or WxH (multiples of 16; default from the preset)")
    parser.add_argument("--display", type=int, default=0, help="display (screen) index for fullscreen")
    parser.add_argument("--windowed", action="store_true", help="a window instead of fullscreen")
    parser.add_argument("--headless", action="store_true", help="no window (servers, tests)")
    parser.add_argument("--record", default=None, metavar="OUT.mp4",
                        help="record the shown frames and the input audio (H.264 + AAC) from the start")
    parser.add_argument("--duration", type=float, default=None, metavar="SECONDS", help="stop after this long")
    parser.add_argument("--stats", default=None, metavar="OUT.json", help="write run statistics at exit")
    parser.add_argument("--osc-port", type=int, default=None, help="OSC UDP port (default 9000; 0 disables OSC)")
    parser.add_argument("--osc-host", default=None, help="OSC listen address (default 127.0.0.1; 0.0.0.0 for a desk on the network)")
    parser.add_argument("--osc-allow", default=None, metavar="CIDR[,CIDR...]", help="accept OSC only from these senders")
    parser.add_argument("--osc-feedback", default=None, metavar="HOST:PORT", help="send /m2v/state/... feedback here")
    parser.add_argument("--output", action="append", default=None, metavar="KIND[:NAME]",
                        help="send the shown picture (post effects, no HUD) to the rig; repeatable; replaces the "
                        "preset's [outputs] targets: ndi:NAME, v4l2:/dev/videoN, spout:NAME (Windows), "
                        "syphon:NAME (macOS). See `m2v outputs`")
    parser.add_argument("--preview-port", type=int, default=None, metavar="PORT",
                        help="serve an MJPEG preview over HTTP on this port (at most 10 fps; 0: off)")
    parser.add_argument("--preview-host", default=None,
                        help="preview listen address (default 127.0.0.1; 0.0.0.0 to watch from the network)")
    parser.add_argument("--preview-allow", default=None, metavar="CIDR[,CIDR...]",
                        help="accept preview clients only from these addresses")
    parser.add_argument("--block", type=int, default=DEFAULT_BLOCK, help="audio block size in samples (raise on input overflows)")
    parser.add_argument("--play", default=None, metavar="DEVICE",
                        help="with a file or demo input: also play it on this output device")
    parser.add_argument("--loop", action="store_true", help="with a file input: loop it")
    parser.add_argument("--midi", action="append", default=[], metavar="PORT",
                        help="a MIDI input to open: port-name words (see `m2v midi list`), or 'all'; repeatable")
    parser.add_argument("--midi-api", default=None, choices=("auto", "alsa", "jack"),
                        help="MIDI system (default: the preset's midi.api, auto = ALSA when present, else JACK)")
    parser.add_argument("--midi-map", default=None, metavar="NAME|PATH",
                        help="MIDI map for every port (default: chosen by port name; see `m2v midi maps`)")
    parser.add_argument("--link", action="store_true",
                        help="join an Ableton Link session for the beat grid (GPL extra: pip install 'm2v[link]')")
    parser.add_argument("--latency-ms", type=float, default=None, metavar="MS",
                        help="how late the audio input is behind the room; audio beats move this much earlier")


def run(args: argparse.Namespace) -> int:
    import json

    from live.app import LiveApp, LiveOptions

    opts = LiveOptions(
        input=args.input, preset=args.preset, show=args.show, models=args.models, size=args.size,
        device=args.device, seed=args.seed, offline=args.offline, display=args.display,
        windowed=args.windowed, headless=args.headless, record=args.record, duration_s=args.duration,
        stats=args.stats, osc_port=args.osc_port, osc_host=args.osc_host, osc_allow=args.osc_allow,
        osc_feedback=args.osc_feedback, block=args.block, play=args.play, loop=args.loop,
        outputs=args.output, preview_port=args.preview_port, preview_host=args.preview_host,
        preview_allow=args.preview_allow,
        midi=tuple(args.midi), midi_api=args.midi_api, midi_map=args.midi_map, link=args.link,
        latency_ms=args.latency_ms,
    )
    stats = LiveApp(opts).run()
    summary = {k: stats[k] for k in ("run_s", "steps", "steps_per_s", "audio_dropped", "display_fps", "latency_ms")}
    print(json.dumps(summary))
    return 0

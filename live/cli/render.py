"""``m2v render``: the Music2Video paper's offline music video."""

from __future__ import annotations

import argparse

from live.cli import add_common_arguments, size_arg

HELP = "render the Music2Video music video offline: audio file (+ timed lyrics) in, MP4 out"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", metavar="AUDIO", help="audio file (wav, flac, ogg, mp3)")
    parser.add_argument("--lyrics", default=None, metavar="FILE", help="timed lyrics: LRC, the paper's CSV, or 'MM:SS text' lines")
    parser.add_argument("--prompt", action="append", default=[], metavar="TEXT",
                        help="global style prompt mixed into every segment's target (repeatable)")
    parser.add_argument("--preset", default="paper", help="preset name or path (default: paper)")
    add_common_arguments(parser)
    parser.add_argument("--size", type=size_arg, default=None, help="image size S or WxH (default from the preset)")
    parser.add_argument("--fps", type=int, default=None, help="output frame rate (default from the preset, 30)")
    parser.add_argument("--out", default=None, metavar="OUT.mp4", help="output video (default: AUDIO name + .mp4)")
    parser.add_argument("--segments", choices=("beats", "onsets"), default=None, help="scene segmentation")
    parser.add_argument("--rate", choices=("paper", "script"), default=None,
                        help="iterations per segment: paper (intensity sets iterations/s) or script (10 + 110 * max)")
    parser.add_argument("--min-ips", type=float, default=None, help="paper rate: iterations/s at intensity 0")
    parser.add_argument("--max-ips", type=float, default=None, help="paper rate: iterations/s at intensity 1")
    parser.add_argument("--consistency", choices=("average", "l1", "none"), default=None,
                        help="temporal consistency: average = paper Eq. 2 (default), l1 = Eq. 1, none")
    parser.add_argument("--cutouts", type=int, default=None, help="CLIP cutouts per iteration")
    parser.add_argument("--blend", action="store_true", help="blend repeated frames when a segment has few images")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted render from its last finished segment")
    parser.add_argument("--preview", action="store_true", help="small and fast (64 px, few iterations) to check timing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def overrides_from_args(args: argparse.Namespace, preset) -> dict:
    """The render flags as dotted preset overrides: the same path ``m2v live``'s flags take."""
    flags = {"models.size": args.size, "render.fps": args.fps, "render.segments": args.segments,
             "render.rate": args.rate, "render.min_ips": args.min_ips, "render.max_ips": args.max_ips,
             "guidance.consistency": args.consistency, "guidance.cutouts": args.cutouts, "guidance.seed": args.seed}
    out = {k: v for k, v in flags.items() if v is not None}
    if args.prompt:  # --prompt adds global style prompts in front of the preset's
        out["guidance.style_prompts"] = [{"text": p, "weight": 1.0} for p in args.prompt] + \
            [p.model_dump() for p in preset.guidance.style_prompts]
    if args.preview:  # small and fast, to check timing
        r, g = preset.render, preset.guidance
        out.update({"models.size": 64, "guidance.cutouts": min(out.get("guidance.cutouts", g.cutouts), 4),
                    "render.min_ips": min(out.get("render.min_ips", r.min_ips), 2.0),
                    "render.max_ips": min(out.get("render.max_ips", r.max_ips), 6.0),
                    "render.fps": min(out.get("render.fps", r.fps), 15)})
        out["render.min_ips"] = min(out["render.min_ips"], out["render.max_ips"])
    return out


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from core.lyrics import parse_lyrics
    from core.models import load_models
    from core.presets import load_preset
    from core.render import RenderSettings, render
    from core.video import check_writable

    preset = load_preset(args.preset)
    out = Path(args.out) if args.out else Path(args.audio).with_suffix(".mp4")
    check_writable(out)  # before loading models or analysing anything
    cues = parse_lyrics(args.lyrics) if args.lyrics else []
    settings = RenderSettings.of(preset, overrides_from_args(args, preset), blend_frames=args.blend)
    models = load_models(args.models or preset.models.set, device=args.device or preset.models.device,
                         offline=args.offline)
    result = render(args.audio, out, settings=settings, models=models, cues=cues, resume=args.resume,
                    progress=not args.no_progress)
    print(f"wrote {result.out_path} ({result.frames} frames) and {result.sidecar_path}")
    return 0

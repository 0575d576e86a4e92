"""``m2v render``: the Music2Video paper's offline music video."""

from __future__ import annotations

import argparse

from live.cli import add_common_arguments, size_arg

HELP = "render the Music2Video music video offline: audio file (+ timed lyrics) in, MP4 out"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", metavar="AUDIO", nargs="?", default=None,
                        help="audio file (wav, flac, ogg, mp3); or give --batch")
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
    cluster = parser.add_argument_group("many machines (Ray; pip install 'm2v[ray]')")
    cluster.add_argument("--ray", nargs="?", const="auto", default=None, metavar="ADDRESS",
                         help="render on Ray: 'auto' (default) starts or joins a local Ray; HOST:6379 or "
                              "ray://HOST:10001 joins a cluster started with 'ray start --head'")
    cluster.add_argument("--batch", default=None, metavar="FOLDER_OR_PLAYLIST",
                         help="render every song of a folder or playlist (.m3u/.m3u8/.txt), one task each; "
                              "lyrics: SONG.lrc beside SONG; --out is then a folder")
    cluster.add_argument("--chunk-min-s", type=float, default=None,
                         help="--ray: shortest chunk of a song per task, in seconds (preset [render] chunk_min_s)")
    cluster.add_argument("--warmup-s", type=float, default=None,
                         help="--ray: seconds of segments each chunk runs unwritten before its start "
                              "(preset [render] warmup_s)")
    cluster.add_argument("--seam-fade-s", type=float, default=None,
                         help="--ray: seconds over which each chunk dissolves in from the previous chunk's "
                              "tail (preset [render] seam_fade_s; 0: hard cut)")
    cluster.add_argument("--cpus-per-task", type=int, default=1,
                         help="--ray with models on the CPU: CPUs each task asks for (default 1)")


def overrides_from_args(args: argparse.Namespace, preset) -> dict:
    """The render flags as dotted preset overrides: the same path ``m2v live``'s flags take."""
    flags = {"models.size": args.size, "render.fps": args.fps, "render.segments": args.segments,
             "render.rate": args.rate, "render.min_ips": args.min_ips, "render.max_ips": args.max_ips,
             "guidance.consistency": args.consistency, "guidance.cutouts": args.cutouts, "guidance.seed": args.seed,
             "render.chunk_min_s": args.chunk_min_s, "render.warmup_s": args.warmup_s,
             "render.seam_fade_s": args.seam_fade_s}
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

    from core.errors import ConfigError
    from core.presets import load_preset
    from core.render import RenderSettings
    from core.video import check_writable

    if (args.audio is None) == (args.batch is None):
        raise ConfigError("give one AUDIO file, or --batch FOLDER_OR_PLAYLIST for many songs")
    if args.cpus_per_task < 1:
        raise ConfigError(f"--cpus-per-task {args.cpus_per_task}: must be >= 1")
    if args.ray is not None:
        from core.cluster import require_ray

        require_ray()  # before any work: without Ray, say how to install it
    preset = load_preset(args.preset)
    settings = RenderSettings.of(preset, overrides_from_args(args, preset), blend_frames=args.blend)
    if args.batch is not None:
        return _run_batch(args, preset, settings)
    out = Path(args.out) if args.out else Path(args.audio).with_suffix(".mp4")
    check_writable(out)  # before loading models or analysing anything
    cues = _cues(args.lyrics)
    if args.ray is not None:
        return _run_ray(args, preset, settings, out, cues)
    from core.render import render

    result = render(args.audio, out, settings=settings, models=_models(args, preset), cues=cues,
                    resume=args.resume, progress=not args.no_progress)
    print(f"wrote {result.out_path} ({result.frames} frames) and {result.sidecar_path}")
    return 0


def _cues(lyrics):
    from core.lyrics import parse_lyrics

    return parse_lyrics(lyrics) if lyrics else []


def _models(args, preset):
    from core.models import load_models

    return load_models(args.models or preset.models.set, device=args.device or preset.models.device,
                       offline=args.offline)


def _recipe(args, preset):
    """What each Ray worker loads; the name is checked here, so a typo fails before the cluster starts."""
    from core.cluster import ModelRecipe
    from core.models import resolve_spec

    name = args.models or preset.models.set
    resolve_spec(name)
    return ModelRecipe(name, device=args.device or preset.models.device, offline=args.offline)


def _run_ray(args, preset, settings, out, cues) -> int:
    from core.cluster import format_summary, render_on_ray

    result = render_on_ray(args.audio, out, settings=settings, recipe=_recipe(args, preset), cues=cues,
                           resume=args.resume, progress=not args.no_progress, address=args.ray,
                           cpus_per_task=args.cpus_per_task)
    s = result.seams
    print(f"wrote {result.out_path} ({result.frames} frames, {len(result.chunks)} chunks, "
          f"{result.resumed_chunks} resumed) and {result.sidecar_path}")
    if s["boundaries"]:
        faded = s.get("faded") and any(s["fade_steps"])
        how = (f"per frame across the crossfades (hard cuts: {sum(s['boundaries_raw']) / len(s['boundaries_raw']):.2f})"
               if faded else "across chunk boundaries")
        print(f"seams: change {how} {s['boundary_mean']:.2f} vs {s['within_mean']:.2f} inside "
              f"chunks ({s['ratio']:.2f}x; target <= {s['target_ratio']}x)")
    print(format_summary(result.workers, wall_s=result.wall_s))
    return 0


def _run_batch(args, preset, settings) -> int:
    from pathlib import Path

    from core.batch import find_songs, render_batch
    from core.cluster import format_summary

    songs = find_songs(args.batch)
    out_dir = Path(args.out) if args.out else None
    if args.ray is not None:
        result = render_batch(songs, out_dir, settings=settings, recipe=_recipe(args, preset), ray_address=args.ray,
                              resume=args.resume, progress=not args.no_progress, cpus_per_task=args.cpus_per_task)
    else:
        result = render_batch(songs, out_dir, settings=settings, models=_models(args, preset),
                              resume=args.resume, progress=not args.no_progress)
    for song in result.songs:
        print(f"{song['status']:>8}  {song['out']}")
    if result.workers:
        print(format_summary(result.workers, wall_s=result.wall_s))
    return 0

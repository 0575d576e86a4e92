#!/usr/bin/env python
"""Seams of a split render against the warm-up length, without Ray (chunks rendered one after another here).

    python scripts/bench_seams.py [--seconds 15] [--models toy] [--chunk-min-s 5] [--warmups 0 4 12]
                                  [--json OUT.json]                   # default: results/bench_seams.json

The song is pygame's house loop (as in ``scripts/bench_render.py``).  For each warm-up
length every chunk is rendered by :func:`core.chunked.render_chunk` (what a Ray task
runs), and :func:`core.chunks.seam_stats` compares the change across chunk boundaries
with the change inside chunks (raw frames, before H.264).  Each seam is crossfaded as
``m2v render --ray`` does (:func:`core.chunked.crossfade_seams`; its steps are measured on the
decoded frames) and its hard cut is kept as ``boundaries_raw``.  The single-machine render's
change at the same frames is the reference: a seam that falls on a scene change changes
the picture in one render as in the other.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--models", default="toy")
    ap.add_argument("--preset", default="toy")
    ap.add_argument("--chunk-min-s", type=float, default=5.0)
    ap.add_argument("--warmups", type=float, nargs="+", default=[0.0, 4.0, 12.0])
    ap.add_argument("--seam-fade-s", type=float, default=None,
                    help="crossfade length (default: the preset's [render] seam_fade_s); the hard cut is "
                         "reported beside it as boundaries_raw")
    ap.add_argument("--json", type=Path, default=REPO / "results" / "bench_seams.json")
    args = ap.parse_args()

    from bench_cluster import seams_in_video
    from bench_render import write_song
    from core.audio_io import load_audio
    from core.chunked import ChunkJob, crossfade_seams, render_chunk
    from core.chunks import plan_chunks, seam_stats
    from core.lyrics import parse_lyrics
    from core.models import load_models
    from core.render import RenderSettings, render, song_plan

    settings = RenderSettings.of(args.preset)
    rs = settings.preset.render
    fade_s = rs.seam_fade_s if args.seam_fade_s is None else args.seam_fade_s
    fade_frames = int(round(fade_s * rs.fps))
    models = load_models(args.models, device="cpu")
    report: dict = {"seconds": args.seconds, "models": args.models, "preset": args.preset,
                    "chunk_min_s": args.chunk_min_s, "seam_fade_s": fade_s, "fade_frames": fade_frames,
                    "warmups": {}}
    with tempfile.TemporaryDirectory(prefix="m2v-bench-seams-") as tmp:
        wav, lrc = Path(tmp) / "house.wav", Path(tmp) / "house.lrc"
        write_song(wav, lrc, seconds=args.seconds)
        cues = parse_lyrics(lrc)
        y, sr = load_audio(wav)
        _, plans, _ = song_plan(y, sr, settings=settings, cues=cues)
        t0 = time.perf_counter()
        one = render(wav, Path(tmp) / "one.mp4", settings=settings, models=models, cues=cues, progress=False)
        chunks = plan_chunks(plans, min_chunk_s=args.chunk_min_s, fade_frames=fade_frames)
        starts = [sum(c.frames for c in chunks[:k]) for k in range(1, len(chunks))]
        report["chunks"] = [c.describe() for c in chunks]
        report["single_machine"] = {"wall_s": time.perf_counter() - t0,
                                    "seams_at_chunk_starts_decoded": seams_in_video(one.out_path, starts)}
        print(json.dumps(report["single_machine"]), flush=True)
        for w in args.warmups:
            t0 = time.perf_counter()
            split = plan_chunks(plans, min_chunk_s=args.chunk_min_s, warmup_s=w, fade_frames=fade_frames)
            results = [render_chunk(ChunkJob(settings, plans, c, y, sr), models) for c in split]
            folder = Path(tmp) / f"warmup{w}"
            folder.mkdir()
            for r in results:
                for name, data in r.pop("files").items():
                    (folder / name).write_bytes(data)
            faded = crossfade_seams(results, split, plans, folder, fps=rs.fps, crf=settings.preset.record.crf)
            s = seam_stats(results, faded=faded)
            s["wall_s"] = time.perf_counter() - t0
            s["warmup_iterations"] = sum(r["warmup_iterations"] for r in results)
            s["tail_iterations"] = sum(r["tail_iterations"] for r in results)
            s["iterations"] = sum(c.iterations for c in split)
            report["warmups"][str(w)] = s
            print(w, json.dumps({k: s[k] for k in ("boundary_mean", "within_mean", "ratio", "boundaries",
                                                   "boundaries_raw",
                                                   "warmup_iterations", "wall_s")}), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

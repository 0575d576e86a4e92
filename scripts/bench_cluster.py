#!/usr/bin/env python
"""Speed-up and seams of ``m2v render --ray``: one machine vs 1 and 2 local Ray workers, toy models.

    python scripts/bench_cluster.py [--seconds 30] [--models toy] [--chunk-min-s 7.5] [--warmup-s 4]
                                    [--max-ips 60] [--workers 1 2] [--json OUT.json]
                                                                      # default: results/bench_cluster.json

The song is pygame's house loop repeated to ``--seconds`` with three lyrics (as in
``scripts/bench_render.py``).  It is rendered by the single-machine ``render()`` and by
``render_on_ray`` on a local Ray with 1 and with 2 CPUs (one worker each).  From the
decoded videos, at the chunk boundaries of the split plan: the mean frame-to-frame
change across each boundary and the mean change inside chunks, for the split renders
and, as the reference, for the single-machine video at the same frames.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))


def video_frames(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def seams_in_video(path: Path, starts: list[int]) -> dict:
    """Change across the frames ``starts`` (each chunk's first frame) against the mean of all other pairs."""
    from core.chunks import frame_change

    frames = video_frames(path)
    changes = np.array([frame_change(a, b) for a, b in zip(frames[:-1], frames[1:])])
    at = np.array(starts) - 1  # pair (f-1, f)
    inside = np.delete(changes, at)
    boundary = float(changes[at].mean())
    within = float(inside.mean())
    moving = float(inside[inside > 0].mean())
    return {"boundary_mean": boundary, "within_mean": within, "within_moving_mean": moving,
            "ratio": boundary / within, "ratio_moving": boundary / moving,
            "boundaries": [float(c) for c in changes[at]]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--models", default="toy")
    ap.add_argument("--preset", default="toy")
    ap.add_argument("--chunk-min-s", type=float, default=7.5)
    ap.add_argument("--warmup-s", type=float, default=4.0)
    ap.add_argument("--max-ips", type=float, default=None, help="lower the preset's max iterations/s (faster run)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", type=Path, default=REPO / "results" / "bench_cluster.json")
    args = ap.parse_args()

    import ray

    from bench_render import write_song
    from core.chunks import plan_chunks
    from core.cluster import ModelRecipe, _worker_env, render_on_ray
    from core.lyrics import parse_lyrics
    from core.models import load_models
    from core.render import RenderSettings, render

    overrides = {"render.chunk_min_s": args.chunk_min_s, "render.warmup_s": args.warmup_s}
    if args.max_ips is not None:
        overrides.update({"render.max_ips": args.max_ips, "render.min_ips": min(args.max_ips, 20.0)})
    settings = RenderSettings.of(args.preset, overrides)
    report: dict = {"seconds": args.seconds, "models": args.models, "preset": args.preset, "overrides": overrides,
                    "runs": {}}
    with tempfile.TemporaryDirectory(prefix="m2v-bench-cluster-") as tmp:
        wav, lrc = Path(tmp) / "house.wav", Path(tmp) / "house.lrc"
        write_song(wav, lrc, seconds=args.seconds)
        cues = parse_lyrics(lrc)

        t0 = time.perf_counter()
        one = render(wav, Path(tmp) / "one.mp4", settings=settings, models=load_models(args.models, device="cpu"),
                     cues=cues, progress=False)
        report["runs"]["single_machine"] = {"wall_s": time.perf_counter() - t0, "frames": one.frames}
        rs = settings.preset.render
        chunks = plan_chunks(one.plans, min_chunk_s=args.chunk_min_s, warmup_s=args.warmup_s,
                             fade_frames=int(round(rs.seam_fade_s * rs.fps)))
        starts = [sum(c.frames for c in chunks[:k]) for k in range(1, len(chunks))]
        report["chunks"] = [c.describe() for c in chunks]
        report["runs"]["single_machine"]["seams_at_chunk_starts"] = seams_in_video(one.out_path, starts)
        print(json.dumps(report["runs"]["single_machine"], indent=1), flush=True)

        for n in args.workers:
            ray.init(num_cpus=n, runtime_env=_worker_env(), include_dashboard=False, log_to_driver=False)
            try:
                res = render_on_ray(wav, Path(tmp) / f"ray{n}.mp4", settings=settings,
                                    recipe=ModelRecipe(args.models, "cpu"), cues=cues, progress=False)
            finally:
                ray.shutdown()
            run = {"wall_s": res.wall_s, "frames": res.frames, "workers": res.workers,
                   "seams_raw_frames": res.seams, "seams_decoded": seams_in_video(res.out_path, starts)}
            report["runs"][f"ray_{n}_workers"] = run
            print(n, json.dumps({k: run[k] for k in ("wall_s", "seams_decoded")}, indent=1), flush=True)
    runs = report["runs"]
    if "ray_1_workers" in runs and "ray_2_workers" in runs:
        report["speedup_2_vs_1"] = runs["ray_1_workers"]["wall_s"] / runs["ray_2_workers"]["wall_s"]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

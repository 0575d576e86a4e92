"""Cost of the live I/O hot paths on this machine: a table on stdout and JSON to a file.

    python scripts/bench_liveio.py [--out OUT.json] [--seconds 1.0]   # default: results/bench_liveio.json

Measures: the ring buffer write (the audio callback's whole job), the fast-path
effects at several frame sizes, presenting a frame scaled to 1920x1080 through
pygame (SDL's dummy driver unless DISPLAY/SDL_VIDEODRIVER say otherwise), and
the recorder's encode rate at 512x512.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from core.effects import EffectAmounts, Effects  # noqa: E402
from core.ringbuffer import RingBuffer  # noqa: E402


def per_call_ms(fn, *, seconds: float) -> dict[str, float]:
    fn()  # warm up
    times = []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    ms = np.asarray(times) * 1e3
    return {"median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)), "calls": len(ms)}


def bench_ring(seconds: float) -> dict:
    rb = RingBuffer(capacity=48000 * 8, sr=48000)
    block = np.random.default_rng(0).standard_normal(512).astype(np.float32)
    return per_call_ms(lambda: rb.write(block), seconds=seconds)


def bench_effects(seconds: float) -> dict:
    rng = np.random.default_rng(0)
    out = {}
    for name, (h, w) in {"256x256": (256, 256), "512x512": (512, 512), "1280x720": (720, 1280),
                         "1920x1080": (1080, 1920)}.items():
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        for fb in (0.0, 0.5):
            fx = Effects(EffectAmounts(feedback=fb))
            k = [0]

            def step():
                k[0] += 1
                fx.apply(frame, pulse=0.5 + 0.5 * np.sin(k[0]), intensity=0.6, t_s=k[0] / 60)

            out[f"{name}{' +feedback' if fb else ''}"] = per_call_ms(step, seconds=seconds)
    return out


def bench_display(seconds: float) -> dict:
    from live.display import PygameDisplay

    d = PygameDisplay(fullscreen=False, size=(1920, 1080), vsync=False, fps_limit=None)
    rng = np.random.default_rng(0)
    hud = {"steps_per_s": 10.0, "intensity": 0.5, "onset": 0.3, "guidance": "a neon city"}
    out = {"driver": __import__("pygame").display.get_driver()}
    for name, (h, w) in {"256x256": (256, 256), "512x512": (512, 512), "640x360": (360, 640)}.items():
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        out[f"{name} -> 1920x1080"] = per_call_ms(lambda: d.show(frame, None), seconds=seconds)
        out[f"{name} -> 1920x1080 +HUD"] = per_call_ms(lambda: d.show(frame, hud), seconds=seconds)
    d.close()
    return out


def bench_recorder(seconds: float) -> dict:
    from live.recorder import Recorder

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
    n = max(30, int(seconds * 60))
    with tempfile.TemporaryDirectory() as tmp:
        rec = Recorder(Path(tmp) / "bench.mp4", fps=30, sr=48000, queue_s=n / 30 + 1)
        rec.start()
        t0 = time.perf_counter()
        for i in range(n):
            rec.write_frame(np.roll(base, i, axis=1), t_s=i / 30)
            rec.write_audio(np.zeros(1600, np.float32), t_s=i / 30)
        queued = time.perf_counter() - t0
        rec.stop()
        total = time.perf_counter() - t0
    return {"frames": rec.frames, "encode_fps_512x512": rec.frames / total,
            "write_frame_ms": queued / n * 1e3, "dropped": rec.dropped}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "results" / "bench_liveio.json",
                    help="write the results here (default: results/bench_liveio.json)")
    ap.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = ap.parse_args()
    results = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "numpy": np.__version__},
        "ring_write_512": bench_ring(args.seconds),
        "effects": bench_effects(args.seconds),
        "display": bench_display(args.seconds),
        "recorder": bench_recorder(args.seconds),
    }
    print(f"{'what':44s} {'median ms':>10s} {'p95 ms':>8s}")
    print(f"{'ring write (512 samples)':44s} {results['ring_write_512']['median_ms']:10.4f} "
          f"{results['ring_write_512']['p95_ms']:8.4f}")
    for k, v in results["effects"].items():
        print(f"{'effects ' + k:44s} {v['median_ms']:10.2f} {v['p95_ms']:8.2f}")
    for k, v in results["display"].items():
        if isinstance(v, dict):
            print(f"{'show ' + k:44s} {v['median_ms']:10.2f} {v['p95_ms']:8.2f}")
    r = results["recorder"]
    print(f"recorder: {r['encode_fps_512x512']:.0f} fps encode at 512x512 (H.264 veryfast + AAC), "
          f"write_frame {r['write_frame_ms']:.2f} ms, dropped {r['dropped']}")
    print(f"display driver: {results['display']['driver']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

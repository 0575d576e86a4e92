"""Cost of the video outputs on this machine: a table on stdout and JSON to a file.

    python scripts/bench_outputs.py [--out OUT.json] [--seconds 3]   # default: results/bench_outputs.json

Measures, for each output this machine can run (the preview always; NDI with
cyndilib; v4l2's frame path up to pyvirtualcam, whose device needs a kernel
module):

* ``per_frame``: one frame through the output's thread work (fit to its size,
  convert, hand to the library), at 512x512 and 1920x1080, median and p95 ms;
* ``preview_cpu``: the MJPEG preview's CPU, % of one core, at 512x512 and 10 fps
  with a client reading the stream from another process;
* ``display_fps``: how fast a headless display loop (effects at 512x512, then
  offer to the outputs) runs unpaced with no output, each output, and all,
  i.e. what an output takes from the display on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.effects import EffectAmounts, Effects  # noqa: E402
from live.outputs import OutputSet, availability  # noqa: E402
from live.outputs.base import fit_frame  # noqa: E402
from live.outputs.preview import MjpegPreview  # noqa: E402
from live.outputs.v4l2 import V4l2Output  # noqa: E402

SIZES = {"512x512": (512, 512), "1920x1080": (1920, 1080)}

VIEWER = r"""
import http.client, sys, time
end = time.monotonic() + float(sys.argv[2])
n = 0
try:
    conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=2)
    conn.request("GET", "/stream.mjpg")
    resp = conn.getresponse()
    while time.monotonic() < end:
        chunk = resp.fp.read1(65536)
        if not chunk:
            break
        n += len(chunk)
except OSError:
    pass  # the preview stopped first
print(n)
"""


def picture(w: int, h: int) -> np.ndarray:
    """Something like a generated frame: smooth colour fields, edges and fine texture (noise is the worst case)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([128 + 100 * np.sin(x / 37.0 + y / 53.0), 128 + 100 * np.sin(y / 29.0),
                    128 + 100 * np.cos((x + y) / 41.0)], axis=-1)
    img += np.random.default_rng(0).normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def per_call_ms(fn, *, seconds: float) -> dict[str, float]:
    fn()  # warm up
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    ms = np.asarray(times) * 1e3
    return {"median_ms": round(float(np.median(ms)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3),
            "calls": len(ms)}


class _NullCamera:
    def __init__(self, **kwargs):
        pass

    def send(self, frame):
        pass

    def close(self):
        pass


def make_outputs(kind: str, size_wh: tuple[int, int]):
    """Fresh outputs of ``kind`` sending at ``size_wh`` (not started)."""
    if kind == "preview":
        return [MjpegPreview(port=0)]
    if kind == "v4l2-path":
        return [V4l2Output("/dev/null-camera", size_wh=size_wh, camera_factory=_NullCamera)]
    if kind == "ndi":
        from live.outputs.ndi import NdiOutput

        return [NdiOutput(f"m2v-bench-{os.getpid()}", size_wh=size_wh)]
    raise ValueError(kind)


def bench_per_frame(kinds: list[str], seconds: float) -> dict:
    """A 512x512 shown frame (the club preset's picture) sent at each output size; the preview takes a frame
    of that size and scales it to 512 itself."""
    shown = picture(512, 512)
    out: dict = {}
    for kind in kinds:
        for label, wh in SIZES.items():
            (o,) = make_outputs(kind, wh)
            if kind == "preview":
                o._clients = 1  # encode as if a client watched
                big = picture(*wh)
                fn = lambda o=o, f=big: o.send(f)  # noqa: E731
            else:
                o.open(wh)
                fn = lambda o=o, wh=wh: o.send(fit_frame(shown, wh))  # noqa: E731
            out[f"{kind} {label}"] = per_call_ms(fn, seconds=seconds)
            o.close()
    return out


def _wait_for_viewer(preview: MjpegPreview, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while preview.clients == 0:
        if time.monotonic() > deadline:
            raise RuntimeError("the viewer never connected to the preview")
        time.sleep(0.01)


def bench_preview_cpu(seconds: float) -> dict:
    """Process CPU with the preview serving a client, minus the same without it (feeder only)."""
    frame = picture(512, 512)

    def run(with_preview: bool) -> dict:
        preview = MjpegPreview(port=0, fps=10) if with_preview else None
        if preview:
            preview.start()
        stop = threading.Event()
        feeder_cpu = [0.0]

        def feed():  # the display: offers at 60 Hz
            t0 = time.thread_time()
            while not stop.wait(1 / 60):
                if preview:
                    preview.offer(frame)
            feeder_cpu[0] = time.thread_time() - t0

        th = threading.Thread(target=feed)
        th.start()
        viewer = None
        if preview:
            viewer = subprocess.Popen([sys.executable, "-c", VIEWER, str(preview.port), str(seconds + 1)],
                                      stdout=subprocess.PIPE, text=True)
            _wait_for_viewer(preview)
        sent0 = preview.counters["sent"] if preview else 0
        cpu0, t0 = time.process_time(), time.perf_counter()
        time.sleep(seconds)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        sent = (preview.counters["sent"] - sent0) if preview else 0
        stop.set()
        th.join()
        if viewer:
            viewer.wait(30)
        if preview:
            preview.stop()
        return {"cpu_s": cpu, "wall_s": wall, "feeder_cpu_s": feeder_cpu[0], "sent": sent}

    base, with_p = run(False), run(True)
    extra = with_p["cpu_s"] - base["cpu_s"] * with_p["wall_s"] / base["wall_s"]
    return {"size": "512x512", "fps_limit": 10, "frames_sent": with_p["sent"],
            "fps": round(with_p["sent"] / with_p["wall_s"], 2),
            "cpu_pct_of_one_core": round(100 * extra / with_p["wall_s"], 2),
            "method": "process CPU time with the preview serving a client in another process, minus the "
                      "same run without the preview"}


def _display_once(kinds: list[str], wh: tuple[int, int], frame: np.ndarray, seconds: float) -> dict:
    outputs = OutputSet([o for k in kinds for o in make_outputs(k, wh)])
    viewer = None
    outputs.start()
    if outputs.preview is not None:
        viewer = subprocess.Popen([sys.executable, "-c", VIEWER, str(outputs.preview.port), str(seconds + 1)],
                                  stdout=subprocess.PIPE, text=True)
        _wait_for_viewer(outputs.preview)
    fx = Effects(EffectAmounts())
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        shown = fx.apply(frame, pulse=0.5, intensity=0.5, t_s=time.perf_counter())
        outputs.offer(shown)
        n += 1
    fps = n / (time.perf_counter() - t0)
    stats = outputs.stats()
    outputs.stop()
    if viewer:
        viewer.wait(30)
    return {"display_fps": fps,
            "outputs": {k: {f: v[f] for f in ("sent", "dropped", "errors")} for k, v in stats.items()}}


def bench_display(kinds: list[str], seconds: float, repeats: int) -> dict:
    """An unpaced headless display loop: effects on a 512x512 frame, then offer to the outputs.

    Cases run interleaved ``repeats`` times and the median is kept: other work on a shared machine
    moves single runs by tens of percent.
    """
    frame = picture(512, 512)
    cases = {"none": ([], (512, 512))}
    for k in kinds + (["all"] if len(kinds) > 1 else []):
        for label, wh in SIZES.items():
            cases[f"{k} at {label}"] = (kinds if k == "all" else [k], wh)
    runs: dict[str, list[dict]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, (ks, wh) in cases.items():
            runs[name].append(_display_once(ks, wh, frame, seconds))
    out = {}
    for name, rs in runs.items():
        fps = sorted(r["display_fps"] for r in rs)
        out[name] = {"display_fps_median": round(float(np.median(fps)), 1), "display_fps_runs": [round(f, 1) for f in fps],
                     "outputs_last_run": rs[-1]["outputs"]}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "results" / "bench_outputs.json", help="JSON results file")
    ap.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs of each display case (median kept)")
    args = ap.parse_args()
    usable = {a.kind for a in availability() if a.usable}
    kinds = ["preview", "v4l2-path"] + (["ndi"] if "ndi" in usable else [])
    results = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "load_avg_1min": round(os.getloadavg()[0], 2)},
        "kinds": kinds,
        "notes": "v4l2-path: the frame path up to pyvirtualcam (fit and copy), no device; "
                 "ndi: cyndilib sender, no receiver connected (NDI still encodes each frame); "
                 "display_fps: unpaced loop, so it shows what the outputs' threads take from the display "
                 "thread (CPU and the GIL) on this machine",
        "per_frame": bench_per_frame(kinds, args.seconds),
        "preview_cpu": bench_preview_cpu(args.seconds),
        "display_fps": bench_display(kinds, args.seconds, args.repeats),
    }
    for key, row in results["per_frame"].items():
        print(f"{key:<22} {row['median_ms']:8.2f} ms median  {row['p95_ms']:8.2f} ms p95")
    pc = results["preview_cpu"]
    print(f"preview 512x512 at {pc['fps']} fps: {pc['cpu_pct_of_one_core']} % of one core")
    for key, row in results["display_fps"].items():
        print(f"display with {key:<22} {row['display_fps_median']:7.1f} fps (median of {args.repeats})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

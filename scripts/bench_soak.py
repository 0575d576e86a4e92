#!/usr/bin/env python
"""Soak the live instrument: a generated song through ``m2v live``, headless, with its memory sampled.

    python scripts/bench_soak.py [--duration 180] [--preset tiny] [--json OUT.json]   # default: results/bench_soak.json

Writes a drum + soft-notes song (``core.synth.generate_demo_song``, 48 kHz) of
``--duration`` seconds, plays it into::

    m2v live --preset tiny --input song.wav --headless --duration D+10 --record soak.mp4 --stats stats.json

and samples the process's resident memory (``VmRSS``) every ``--rss-every-s``
seconds.  Growth is read from the first sample after ``--settle-s`` (models
loaded, every stage running) to the last.  ``m2v live``'s own memory samples
(``--stats`` ``memory``: RSS and glibc's heap in use / free but kept) tell a
leak (in use grows) from the allocator keeping freed memory (free grows).  The JSON holds the command, ``m2v
live``'s ``--stats`` and the RSS samples; the table shows what the README
quotes.  The recording is deleted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SR = 48_000
CAP_S = 10.0  # --duration is only a cap: a file input ends the run when the file ends


def rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` in MB, or None once it has exited (Linux /proc)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024  # the file gives kB
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def heap_growth(memory: dict, *, settle_s: float) -> dict | None:
    """First and last settled C-heap figures from ``m2v live``'s own memory samples (``--stats`` memory).

    "used" growing is memory held (a leak or a filling cache); "free" growing is
    the allocator keeping freed memory, which RSS counts but nothing holds.
    """
    rows = [r for r in memory.get("samples", []) if r[0] >= settle_s and r[2] is not None]
    if len(rows) < 2:
        return None
    return {"used_first": rows[0][2], "used_last": rows[-1][2], "free_first": rows[0][3], "free_last": rows[-1][3]}


def write_song(path: Path, *, duration_s: float) -> None:
    import soundfile as sf

    from core.synth import generate_demo_song

    y, _ = generate_demo_song(duration_s=duration_s, sr=SR)
    sf.write(path, y, SR, subtype="PCM_16")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=180.0, help="song length in seconds (the run is 10 s longer)")
    p.add_argument("--preset", default="tiny", help="m2v live --preset (default: tiny)")
    p.add_argument("--rss-every-s", type=float, default=10.0, help="seconds between memory samples")
    p.add_argument("--settle-s", type=float, default=30.0,
                   help="memory growth is measured from the first sample after this many seconds")
    p.add_argument("--json", type=Path, default=REPO / "results" / "bench_soak.json",
                   help="write the results here (default: results/bench_soak.json)")
    args = p.parse_args(argv)

    run_s = args.duration + CAP_S
    with tempfile.TemporaryDirectory(prefix="m2v-soak-") as tmp:
        song, stats_path = Path(tmp) / "song.wav", Path(tmp) / "stats.json"
        write_song(song, duration_s=args.duration)
        cmd = ["m2v", "live", "--preset", args.preset, "--input", str(song), "--headless",
               "--duration", f"{run_s:g}", "--record", str(Path(tmp) / "soak.mp4"), "--stats", str(stats_path),
               "--osc-port", "0"]
        env = {**os.environ, "SDL_VIDEODRIVER": os.environ.get("SDL_VIDEODRIVER", "dummy")}
        print(" ".join(cmd), flush=True)
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "live.cli", *cmd[1:]], cwd=REPO, env=env)
        samples = []
        while True:
            try:
                proc.wait(timeout=args.rss_every_s)
                break
            except subprocess.TimeoutExpired:
                mb = rss_mb(proc.pid)
                if mb is not None:
                    samples.append([round(time.monotonic() - t0, 1), round(mb, 1)])
        wall_s = time.monotonic() - t0
        if proc.returncode != 0:
            print(f"m2v live exited with {proc.returncode}", file=sys.stderr)
            return proc.returncode
        stats = json.loads(stats_path.read_text())

    settled = [mb for t, mb in samples if t >= args.settle_s] or [mb for _, mb in samples[-1:]]
    heap = heap_growth(stats.get("memory", {}), settle_s=args.settle_s)
    result = {"command": " ".join(cmd), "song_s": args.duration, "wall_s": round(wall_s, 1),
              "cpu_count": os.cpu_count(), "rss_every_s": args.rss_every_s, "settle_s": args.settle_s,
              "rss_settled_first_mb": settled[0] if settled else None,
              "rss_last_mb": settled[-1] if settled else None,
              "rss_max_mb": max((mb for _, mb in samples), default=None), "rss_mb": samples,
              "heap_mb": heap, "stats": stats}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")

    fps, lat = stats["display_fps"], stats["latency_ms"]
    rss = f"{settled[0]:.0f} -> {settled[-1]:.0f} MB" if settled else "-"
    print(f"{'run s':>6} {'blocks':>7} {'dropped':>7} {'fps mean/p5':>12} {'onset->shown p95 (median)':>26} "
          f"{'steps/s':>7} {'rec frames/dropped':>18} {'RSS settled -> last':>19}")
    print(f"{stats['run_s']:6.0f} {stats['audio_blocks']:7d} {stats['audio_dropped']:7d} "
          f"{fps['mean']:5.1f} / {fps['p5']:4.1f} {lat['p95']:14.1f} ms ({lat['median']:.1f}) "
          f"{stats['steps_per_s']:7.1f} {stats['recorder_frames']:>11d} / {stats['recorder_dropped']:<4d} {rss:>19}")
    if heap:
        print(f"C heap in use {heap['used_first']:.1f} -> {heap['used_last']:.1f} MB, "
              f"free but kept {heap['free_first']:.1f} -> {heap['free_last']:.1f} MB (m2v's own mallinfo2 samples)")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

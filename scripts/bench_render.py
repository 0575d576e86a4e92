#!/usr/bin/env python
"""Time ``m2v render`` on a real recording: pygame's bundled house loop with three timed lyrics.

    python scripts/bench_render.py [--seconds 29.9] [--models tiny] [--size 128] [--cutouts 8] [--preview]
                                   [--json OUT.json]                  # default: results/bench_render.json

Loops pygame's ``examples/data/house_lo.ogg`` (a real 7-s house loop) to
``--seconds`` as ``house30.wav``, writes ``house30.lrc`` with three lyrics at
1/5, 1/2 and 4/5 of it, and runs::

    m2v render house30.wav --lyrics house30.lrc --models tiny --size 128 --cutouts 8

in a temporary folder.  The JSON holds the wall time, the peak resident memory
of the render process, its sidecar (segments with their iterations and
guidance) and whether each lyric landed in the segment containing its timestamp.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LYRICS = ("a neon city at night", "a red sky over the sea", "a forest of glass")
LYRIC_AT = (0.2, 0.5, 0.8)  # fractions of the song: away from its ends, several segments apart


def write_song(wav: Path, lrc: Path, *, seconds: float) -> list[float]:
    """``wav``: the house loop repeated to ``seconds``; ``lrc``: the three lyrics.  Returns their times."""
    import numpy as np
    import pygame
    import soundfile as sf

    loop, sr = sf.read(Path(pygame.__file__).parent / "examples" / "data" / "house_lo.ogg", dtype="float32")
    n = int(round(seconds * sr))
    sf.write(wav, np.resize(loop, (n, *loop.shape[1:])), sr, subtype="PCM_16")
    times = [round(f * seconds, 2) for f in LYRIC_AT]
    lrc.write_text("".join(f"[{int(t // 60):02d}:{t % 60:05.2f}] {text}\n" for t, text in zip(times, LYRICS)))
    return times


def lyric_placement(segments: list[dict], times: list[float]) -> list[dict]:
    """Per lyric: the segment containing its timestamp, and whether that segment is the one guided by it."""
    out = []
    for t, text in zip(times, LYRICS):
        seg = next((s for s in segments if s["start"] <= t < s["end"]), None)
        out.append({"time_s": t, "text": text, "segment": None if seg is None else [seg["start"], seg["end"]],
                    "in_containing_segment": seg is not None and seg["guidance"] == "lyric" and seg["text"] == text})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=29.9, help="length of the looped recording")
    p.add_argument("--models", default="tiny", help="m2v render --models (default: tiny)")
    p.add_argument("--size", default="128", help="m2v render --size")
    p.add_argument("--cutouts", type=int, default=8, help="m2v render --cutouts")
    p.add_argument("--preview", action="store_true", help="pass --preview (64 px, few iterations: a smoke run)")
    p.add_argument("--json", type=Path, default=REPO / "results" / "bench_render.json",
                   help="write the results here (default: results/bench_render.json)")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="m2v-render-") as tmp:
        wav, lrc = Path(tmp) / "house30.wav", Path(tmp) / "house30.lrc"
        times = write_song(wav, lrc, seconds=args.seconds)
        cmd = ["m2v", "render", wav.name, "--lyrics", lrc.name, "--models", args.models, "--size", args.size,
               "--cutouts", str(args.cutouts), "--no-progress"] + (["--preview"] if args.preview else [])
        print(" ".join(cmd), flush=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        t0 = time.monotonic()
        rc = subprocess.run([sys.executable, "-m", "live.cli", *cmd[1:]], cwd=tmp, env=env).returncode
        wall_s = time.monotonic() - t0
        if rc != 0:
            print(f"m2v render exited with {rc}", file=sys.stderr)
            return rc
        peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux gives kB
        sidecar = json.loads(wav.with_suffix(".json").read_text())

    segments = sidecar["segments"]
    placement = lyric_placement(segments, times)
    result = {"command": " ".join(cmd), "audio": "pygame examples/data/house_lo.ogg, looped",
              "seconds": args.seconds, "wall_s": round(wall_s, 1), "peak_rss_mb": round(peak_rss_mb),
              "cpu_count": os.cpu_count(), "segments": len(segments),
              "iterations": sum(s["iterations"] for s in segments), "frames": sidecar["frames"],
              "fps": sidecar["settings"]["render"]["fps"], "lyrics": placement,
              "lyric_segments": sum(s["guidance"] == "lyric" for s in segments), "sidecar": sidecar}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    minutes, secs = divmod(wall_s, 60)
    print(f"{len(segments)} segments, {result['iterations']} iterations, {sidecar['frames']} frames at "
          f"{result['fps']} fps; wall {int(minutes)} min {secs:.0f} s, peak RSS {peak_rss_mb:.0f} MB; "
          f"lyrics in their segments: {sum(x['in_containing_segment'] for x in placement)}/{len(placement)} "
          f"({result['lyric_segments']} lyric segments)")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

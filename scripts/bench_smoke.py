#!/usr/bin/env python
"""The README's smoke run, judged: does the recorded picture follow the sections, then the cue?

    python scripts/bench_smoke.py                       # -> results/smoke_toy.json
    python scripts/bench_smoke.py --duration 30 --cue-at 20 --keep DIR

Runs the README's command as a user does, in a subprocess::

    m2v live --preset toy --input sections --headless --duration D --record smoke.mp4 --stats smoke.json

sends ``m2v osc send /m2v/lyric CUE 8`` at ``--cue-at`` seconds (0: no cue), then
decodes the recording and reads a frame every ``--every`` seconds with
:mod:`core.judge` (colour, shape, background).  The ``sections`` input plays
6-s sections of kick, chord, bass and hi-hat, in that order, looped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SECTION_S = 6.0
ORDER = ("kick", "chord", "bass", "hihat")


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="toy")
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--cue", default="a green triangle")
    p.add_argument("--cue-at", type=float, default=20.0, help="seconds into the run (0: no cue)")
    p.add_argument("--every", type=float, default=2.0, help="judge a frame every so many seconds")
    p.add_argument("--keep", type=Path, default=None, help="keep smoke.mp4 and smoke.json here")
    p.add_argument("--json", type=Path, default=REPO / "results/smoke_toy.json")
    p.add_argument("--note", default="", help="recorded in the JSON (e.g. what else ran on the machine)")
    args = p.parse_args(argv)

    import av

    from core import judge
    from core import toyworld as W

    work = args.keep or Path(tempfile.mkdtemp(prefix="m2v-smoke-"))
    work.mkdir(parents=True, exist_ok=True)
    video, stats_path = work / "smoke.mp4", work / "smoke.json"
    port = _free_udp_port()
    cmd = ["m2v", "live", "--preset", args.preset, "--input", "sections", "--headless", "--duration", f"{args.duration:g}",
           "--record", str(video), "--stats", str(stats_path), "--osc-port", str(port)]
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "live.cli", "live", "-v", *cmd[2:], "--offline"], cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # The run's clock starts when the audio does; -v logs "recording to" at that moment.
    t_start = None
    log_lines = []
    for line in proc.stdout:
        log_lines.append(line)
        if "recording to" in line:
            t_start = time.monotonic()
            break
    if t_start is None:
        raise SystemExit("m2v live did not start:\n" + "".join(log_lines)[-3000:])
    if args.cue_at > 0:
        time.sleep(max(0.0, args.cue_at - (time.monotonic() - t_start)))
        subprocess.run([sys.executable, "-m", "live.cli", "osc", "send", "--port", str(port), "/m2v/lyric",
                        args.cue, "8"], check=True, capture_output=True)
    rest = proc.communicate(timeout=args.duration + 120)[0]
    if proc.returncode != 0:
        raise SystemExit(f"m2v live exited {proc.returncode}:\n" + ("".join(log_lines) + rest)[-3000:])

    stats = json.loads(stats_path.read_text())
    frames = []
    with av.open(str(video)) as f:
        for fr in f.decode(video=0):
            frames.append((float(fr.time), fr))
    judged, next_t = [], 1.0
    for t, fr in frames:
        if t + 1e-6 >= next_t:
            r = judge.read(fr.to_ndarray(format="rgb24"))
            sec = ORDER[int(t // SECTION_S) % len(ORDER)]
            want = W.SOUND_CONCEPTS[sec]
            judged.append({"t_s": round(t, 2), "section": sec, "colour": r.colour, "shape": r.shape,
                           "background": r.background, "top_colours": r.top_colours(2),
                           "section_colour_shown": want.colour in r.top_colours(2)})
            next_t += args.every
    result = {"command": " ".join(cmd[:-2]).replace(str(work) + "/", ""),
              "cue": None if args.cue_at <= 0 else {"text": args.cue, "at_s": args.cue_at, "hold_s": 8},
              "sections": {k: W.SOUND_CONCEPTS[k].caption() for k in ORDER},
              "section_s": SECTION_S, "judged_frames": judged,
              "stats": {k: stats.get(k) for k in ("run_s", "steps", "steps_per_s", "target_swaps", "recorder_frames",
                                                  "recorder_dropped", "cue_latency_ms", "cue_visible_ms", "onsets")},
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "note": args.note}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    for j in judged:
        print(f"{j['t_s']:6.1f} s  {j['section']:6s} -> {j['colour']} {j['shape']} on {j['background']}"
              f"{'' if j['section_colour_shown'] else '   (section colour not shown)'}")
    print(f"steps/s {stats.get('steps_per_s', 0):.2f}; cue_visible_ms {stats.get('cue_visible_ms')}")
    print(f"wrote {args.json}")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

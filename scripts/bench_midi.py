"""Benchmark the MIDI control path: a CC sent on a real port -> cue queued -> action applied.

Starts a private JACK dummy server (jackd; no sound card needed), a controller
client sending on a JACK MIDI port, and m2v's :class:`live.midi.MidiInput` with a
map binding CC 48 to ``intensity``.  Per message it measures, on one clock
(``time.perf_counter``):

* ``queued_ms``: from just before the send to the moment the cue was queued;
* ``applied_ms``: to the moment the director applied it (a consumer waiting on
  the cue queue, as the app's loop does; the app drains once per display frame,
  so add up to one frame, 16.7 ms at 60 Hz).

JACK MIDI moves events once per period: with the default 256 frames at 48 kHz,
5.3 ms, so about half a period is part of every figure.

    python scripts/bench_midi.py [--messages 500] [--period 256] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

MAP = 'ports = ["bench"]\n[[control]]\ncc = 48\naction = "intensity"\n'


def _wait(pred, timeout_s: float = 10.0) -> bool:
    end = time.monotonic() + timeout_s
    while not pred() and time.monotonic() < end:
        time.sleep(0.0002)
    return pred()


def _jackd(period: int) -> subprocess.Popen:
    if shutil.which("jackd") is None:
        sys.exit("bench_midi: jackd is not installed (Debian: apt-get install jackd2)")
    name = f"m2v-bench-{os.getpid()}"
    os.environ["JACK_DEFAULT_SERVER"] = name
    os.environ["JACK_NO_AUDIO_RESERVATION"] = "1"
    return subprocess.Popen(["jackd", "--no-realtime", "-n", name, "-d", "dummy", "-r", "48000", "-p", str(period)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _summary(values_ms: list[float]) -> dict:
    a = np.asarray(values_ms)
    return {"n": int(a.size), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "max": float(a.max()), "mean": float(a.mean())}


def measure(n: int) -> dict:
    import rtmidi

    from core.director import Director
    from live.cues import CueInput
    from live.midi import MidiInput

    def up():
        try:
            rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="m2v-probe").delete()
            return True
        except Exception:  # noqa: BLE001 - not up yet
            return False

    if not _wait(up, 10.0):
        sys.exit("bench_midi: the JACK dummy server did not come up")
    ctl = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="bench")
    ctl.open_virtual_port("out")
    cues = CueInput(clock=time.perf_counter, maxlen=n + 10)
    midi = MidiInput(cues=cues, ports=["bench"], api="jack", clock=time.perf_counter, poll_s=0.2)
    midi.start()
    director = Director()
    queued, applied = [], []
    try:
        if not _wait(lambda: "bench:out" in midi.ports):
            sys.exit("bench_midi: m2v did not open the bench port")
        for i in range(n):
            value = 1 + i % 126
            t0 = time.perf_counter()
            ctl.send_message([0xB0, 48, value])
            got = cues.drain_timed(timeout_s=1.0)
            if not got:
                continue
            t_queued, cue = got[-1]
            director.on_cue(cue, now_s=t_queued)
            t_applied = time.perf_counter()
            assert director.intensity_override == value / 127, (director.intensity_override, value)
            queued.append((t_queued - t0) * 1e3)
            applied.append((t_applied - t0) * 1e3)
            time.sleep(0.002 + 0.003 * (i % 3) / 2)  # spread the sends over the JACK period
    finally:
        midi.stop()
        ctl.delete()
    return {"queued_ms": _summary(queued), "applied_ms": _summary(applied), "lost": n - len(applied),
            "counters": {k: v for k, v in midi.counters.items() if k in ("messages", "cues", "malformed", "unmapped")}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=500, help="CCs to send (default 500)")
    ap.add_argument("--period", type=int, default=256, help="JACK period in frames at 48 kHz (default 256)")
    ap.add_argument("--json", default=str(REPO / "results" / "bench_midi.json"), help="where to write the JSON")
    args = ap.parse_args()
    home = tempfile.mkdtemp(prefix="m2v-bench-midi-")
    os.environ["M2V_HOME"] = home
    Path(home, "midi").mkdir()
    Path(home, "midi", "bench.toml").write_text(MAP)
    server = _jackd(args.period)
    try:
        res = measure(args.messages)
    finally:
        server.terminate()
        server.wait(5)
        shutil.rmtree(home, ignore_errors=True)
    res.update(messages=args.messages, jack_period_frames=args.period, jack_rate_hz=48000,
               command=" ".join(["python", "scripts/bench_midi.py", *sys.argv[1:]]))
    for key in ("queued_ms", "applied_ms"):
        s = res[key]
        print(f"{key:11s} p50 {s['p50']:6.2f}  p95 {s['p95']:6.2f}  max {s['max']:6.2f}  (n={s['n']})")
    print(f"lost {res['lost']}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark the OSC control path: UDP send → cue queued → director swap.

Prints a table and writes JSON (default: results/bench_osc.json).  Latency is
measured per cue from just before ``sendto`` to the moment the listener queued it
(the app then applies queued cues on its next frame, so arrival → swap is this
plus at most one frame).  Per-packet cost is the listener's routing work on valid
and on random packets; the flood sends random datagrams over UDP and checks a cue
still lands afterwards.

    python scripts/bench_osc.py [--cues 2000] [--flood 20000] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from pythonosc.osc_message_builder import OscMessageBuilder  # noqa: E402

from core.director import Director  # noqa: E402
from live.cues import CueInput  # noqa: E402
from live.osc import OscListener  # noqa: E402


def _dgram(address: str, *args) -> bytes:
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def _wait(pred, timeout_s: float = 10.0) -> None:
    end = time.monotonic() + timeout_s
    while not pred() and time.monotonic() < end:
        time.sleep(0.0005)


def latency(n: int) -> dict:
    cues = CueInput(clock=time.perf_counter, maxlen=n + 10)
    listener = OscListener(cues=cues, port=None)
    listener.start()
    director = Director()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    lat_ms, swap_us = [], []
    try:
        for i in range(n):
            t0 = time.perf_counter()
            sock.sendto(_dgram("/m2v/lyric", f"line {i}"), ("127.0.0.1", listener.port))
            _wait(lambda: len(cues) > 0)
            (t_arrival, cue), = cues.drain_timed()
            lat_ms.append((t_arrival - t0) * 1e3)
            t1 = time.perf_counter()
            director.on_cue(cue, now_s=t_arrival)
            swaps = director.tick(t_arrival)
            swap_us.append((time.perf_counter() - t1) * 1e6)
            assert swaps and swaps[-1].text == f"line {i}"
            time.sleep(0.001)  # a desk does not send back to back
    finally:
        listener.stop()
        sock.close()
    q = np.percentile(lat_ms, [50, 95, 99])
    return {"cues": n, "send_to_queue_ms": {"median": q[0], "p95": q[1], "p99": q[2], "max": max(lat_ms)},
            "director_apply_us": {"median": statistics.median(swap_us), "max": max(swap_us)}}


def per_packet_cost(n: int, *, malformed: bool) -> dict:
    """CPU cost of routing one packet, without the socket (the listener thread's work)."""
    cues = CueInput(maxlen=16)
    listener = OscListener(cues=cues, port=0, max_rate_hz=1e9, burst=1e9)
    rng = np.random.default_rng(0)
    packets = [rng.bytes(int(rng.integers(8, 120))) if malformed else _dgram("/m2v/lyric", f"line {i}", 2.0)
               for i in range(n)]
    t0 = time.perf_counter()
    for p in packets:
        listener.handle_datagram(p, ("127.0.0.1", 9))
    elapsed = time.perf_counter() - t0
    return {"packets": n, "us_per_packet": elapsed / n * 1e6, "packets_per_s": n / elapsed}


def flood(n: int) -> dict:
    """A burst of random datagrams over UDP: the listener survives and a cue still lands."""
    cues = CueInput(maxlen=n + 10)
    listener = OscListener(cues=cues, port=None, max_rate_hz=1e9, burst=1e9)
    listener.start()
    rng = np.random.default_rng(0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _ in range(n):
            sock.sendto(rng.bytes(int(rng.integers(8, 120))), ("127.0.0.1", listener.port))
        last = -1
        while listener.counters["handled"] != last:
            last = listener.counters["handled"]
            time.sleep(0.1)
        handled = listener.counters["handled"]
        sock.sendto(_dgram("/m2v/lyric", "still here"), ("127.0.0.1", listener.port))
        _wait(lambda: listener.counters["cues"] > 0, 2.0)
        ok = [c for c in cues.drain() if getattr(c, "text", None) == "still here"] != []
    finally:
        listener.stop()
        sock.close()
    return {"sent": n, "handled": handled, "malformed": listener.counters["malformed"],
            "listener_alive_and_cue_landed": ok and listener.error is None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cues", type=int, default=2000)
    ap.add_argument("--flood", type=int, default=20000)
    ap.add_argument("--json", type=Path, default=REPO / "results" / "bench_osc.json",
                    help="write the results here (default: results/bench_osc.json)")
    args = ap.parse_args()
    res = {"latency": latency(args.cues),
           "cost_valid": per_packet_cost(args.flood, malformed=False),
           "cost_malformed": per_packet_cost(args.flood, malformed=True),
           "flood": flood(args.flood)}
    lat = res["latency"]["send_to_queue_ms"]
    print(f"{'measure':40s} {'value':>12s}")
    print(f"{'UDP send -> cue queued, median (ms)':40s} {lat['median']:12.3f}")
    print(f"{'UDP send -> cue queued, p95 (ms)':40s} {lat['p95']:12.3f}")
    print(f"{'UDP send -> cue queued, p99 (ms)':40s} {lat['p99']:12.3f}")
    print(f"{'UDP send -> cue queued, max (ms)':40s} {lat['max']:12.3f}")
    print(f"{'director on_cue+tick, median (us)':40s} {res['latency']['director_apply_us']['median']:12.1f}")
    for key in ("cost_valid", "cost_malformed"):
        print(f"{key + ' (us/packet)':40s} {res[key]['us_per_packet']:12.1f}")
    f = res["flood"]
    print(f"{'UDP flood: handled / sent (kernel drops)':40s} {f['handled']:>6d}/{f['sent']:<5d}")
    print(f"{'UDP flood: alive, next cue landed':40s} {str(f['listener_alive_and_cue_landed']):>12s}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

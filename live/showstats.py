"""What a show measures about itself, in bounded memory: frame times, latencies, problems.

``m2v live`` runs for hours, so nothing here grows with the show: each series
keeps a running count and maximum over the whole run and its newest values in a
fixed window (percentiles are over that window, which :data:`WINDOW` sizes to
about ten minutes of display frames).  The windows are :class:`FloatRing`
arrays allocated whole at the start, so a soak's memory curve is flat from the
first minute instead of rising while they fill.  Usage::

    stats = ShowStats()
    stats.presented(time.perf_counter())          # every shown frame
    stats.onset_latency.add(ms)                   # onset -> first frame shown after it
    stats.problems.note("audio: no input for 3 s")
    hud_fps = stats.fps_now()
    stats.memory.maybe_sample(time.monotonic())   # every frame; samples every 30 s
    summary = stats.summary(run_s)                # the --stats fields
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import os
import time

import numpy as np

#: values kept per series for percentiles: ten minutes of frames at 60 fps
WINDOW = 36_000


class FloatRing:
    """The newest ``size`` floats, in an array allocated once (8 bytes each, none added as it fills).

    ``ring[-1]`` is the newest value, ``ring.values()`` all of them oldest first.
    """

    def __init__(self, size: int) -> None:
        self._a = np.zeros(int(size), dtype=np.float64)
        self._n = 0  # values ever appended

    def append(self, value: float) -> None:
        self._a[self._n % self._a.size] = value
        self._n += 1

    def extend(self, values) -> None:
        for v in values:
            self.append(v)

    def __len__(self) -> int:
        return min(self._n, self._a.size)

    def __bool__(self) -> bool:
        return self._n > 0

    def __getitem__(self, i: int) -> float:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of a ring holding {n}")
        return float(self._a[(self._n - n + i % n) % self._a.size])

    def __iter__(self):
        return iter(self.values().tolist())

    def values(self) -> np.ndarray:
        """A copy, oldest first."""
        n, size = len(self), self._a.size
        start = (self._n - n) % size
        return np.concatenate([self._a[start:start + n], self._a[:max(0, start + n - size)]])


class Series:
    """A running count and max over everything added, percentiles over the newest ``window``."""

    def __init__(self, window: int = WINDOW) -> None:
        self.count = 0
        self.max = 0.0
        self.recent = FloatRing(window)

    def add(self, value: float) -> None:
        self.count += 1
        self.max = max(self.max, float(value))
        self.recent.append(float(value))

    def percentile(self, q: float, default: float = 0.0) -> float:
        return float(np.percentile(self.recent.values(), q)) if self.recent else default

    def summary(self) -> dict[str, float]:
        return {"count": self.count, "median": self.percentile(50), "p95": self.percentile(95), "max": self.max}


class Problems:
    """Distinct problem lines seen during the show (the first ``limit``), with how often each was seen."""

    def __init__(self, limit: int = 100) -> None:
        self.limit = limit
        self.counts: dict[str, int] = {}
        self.dropped = 0

    def note(self, line: str | None) -> None:
        if not line:
            return
        if line in self.counts:
            self.counts[line] += 1
        elif len(self.counts) < self.limit:
            self.counts[line] = 1
        else:
            self.dropped += 1

    def lines(self) -> list[str]:
        return list(self.counts)


class _MallInfo2(ctypes.Structure):
    # glibc's struct mallinfo2 (glibc >= 2.33): every field a size_t, in this order
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _mallinfo2():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.mallinfo2
    except (OSError, AttributeError):  # not glibc, or glibc < 2.33
        return None
    fn.restype = _MallInfo2
    return fn


_MALLINFO2 = _mallinfo2()


def rss_mb() -> float | None:
    """This process's resident memory in MB (Linux ``/proc``), or None elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def heap_mb() -> tuple[float, float] | None:
    """The C heap as (in use, free but kept by the allocator) in MB, from glibc's ``mallinfo2``.

    Growth in "in use" is memory something holds on to (a leak, or a cache
    filling); growth in "free" is the allocator keeping freed memory
    (fragmentation), which RSS shows too but is not a leak.  None without glibc.
    """
    if _MALLINFO2 is None:
        return None
    m = _MALLINFO2()
    return (m.uordblks + m.hblkhd) / 2**20, m.fordblks / 2**20


class MemoryLog:
    """RSS and C-heap samples every ``every_s`` seconds, the newest ``keep`` of them (12 h at 30 s)."""

    def __init__(self, every_s: float = 30.0, keep: int = 1440) -> None:
        self.every_s = every_s
        self.samples: collections.deque[list[float | None]] = collections.deque(maxlen=keep)
        self._t0: float | None = None
        self._next = 0.0

    def maybe_sample(self, t_s: float) -> None:
        if self._t0 is None:
            self._t0 = self._next = t_s
        if t_s < self._next:
            return
        self._next += self.every_s * (1 + (t_s - self._next) // self.every_s)
        rss, heap = rss_mb(), heap_mb()
        used, free = heap if heap is not None else (None, None)
        self.samples.append([round(t_s - self._t0, 1), *(None if v is None else round(v, 2)
                                                         for v in (rss, used, free))])

    def summary(self) -> dict:
        return {"every_s": self.every_s, "columns": ["t_s", "rss_mb", "heap_used_mb", "heap_free_mb"],
                "samples": list(self.samples)}


class ShowStats:
    def __init__(self, window: int = WINDOW) -> None:
        self.frames = 0
        self.present_times = FloatRing(window)
        self.onset_latency = Series(window)  # onset -> the first frame presented after it (ms)
        self.cue_latency = Series(window)  # cue arrival -> the first frame presented after it (ms)
        self.cue_visible = Series(window)  # cue arrival -> the first frame the judge accepts (ms, toy set)
        self.problems = Problems()
        self.memory = MemoryLog()

    def presented(self, t_s: float) -> None:
        self.frames += 1
        self.present_times.append(t_s)

    def fps_now(self, frames: int = 30) -> float:
        t = self.present_times
        if len(t) <= frames:
            return 0.0
        return frames / max(t[-1] - t[-1 - frames], 1e-9)

    def display_fps(self, run_s: float) -> dict[str, float]:
        """``mean`` over the run; ``p5``: the rate the slowest 5 % of recent frames ran at."""
        t = self.present_times.values()
        dt = np.diff(t) if t.size > 1 else np.array([])
        dt = dt[dt > 0]
        return {"mean": self.frames / run_s if run_s > 0 else 0.0,
                "p5": float(np.percentile(1.0 / dt, 5)) if dt.size else 0.0}

"""What a show measures about itself, in bounded memory: frame times, latencies, problems.

``m2v live`` runs for hours, so nothing here grows with the show: each series
keeps a running count and maximum over the whole run and its newest values in a
fixed window (percentiles are over that window, which :data:`WINDOW` sizes to
about ten minutes of display frames).  Usage::

    stats = ShowStats()
    stats.presented(time.perf_counter())          # every shown frame
    stats.onset_latency.add(ms)                   # onset -> first frame shown after it
    stats.problems.note("audio: no input for 3 s")
    hud_fps = stats.fps_now()
    summary = stats.summary(run_s)                # the --stats fields
"""

from __future__ import annotations

import collections

import numpy as np

#: values kept per series for percentiles: ten minutes of frames at 60 fps
WINDOW = 36_000


class Series:
    """A running count and max over everything added, percentiles over the newest ``window``."""

    def __init__(self, window: int = WINDOW) -> None:
        self.count = 0
        self.max = 0.0
        self.recent: collections.deque[float] = collections.deque(maxlen=window)

    def add(self, value: float) -> None:
        self.count += 1
        self.max = max(self.max, float(value))
        self.recent.append(float(value))

    def percentile(self, q: float, default: float = 0.0) -> float:
        return float(np.percentile(self.recent, q)) if self.recent else default

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


class ShowStats:
    def __init__(self, window: int = WINDOW) -> None:
        self.frames = 0
        self.present_times: collections.deque[float] = collections.deque(maxlen=window)
        self.onset_latency = Series(window)  # onset -> the first frame presented after it (ms)
        self.cue_latency = Series(window)  # cue arrival -> the first frame presented after it (ms)
        self.cue_visible = Series(window)  # cue arrival -> the first frame the judge accepts (ms, toy set)
        self.problems = Problems()

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
        t = np.asarray(self.present_times, dtype=np.float64)
        dt = np.diff(t) if t.size > 1 else np.array([])
        dt = dt[dt > 0]
        return {"mean": self.frames / run_s if run_s > 0 else 0.0,
                "p5": float(np.percentile(1.0 / dt, 5)) if dt.size else 0.0}

"""Tempo sources and the beat grid they feed (pure: times in, beats out).

Four sources can say where the beats are, best first: Ableton Link, MIDI clock,
tap tempo, and the audio beat tracker.  :class:`BeatGrid` asks each, in that
order, for its :class:`Tempo` (a BPM and the stream time of one beat) and
turns the first one present into :class:`~core.events.Beat` events, which the
director's ``quantize`` (and anything else that follows the grid) reads.  The
HUD shows :attr:`BeatGrid.source` and :attr:`BeatGrid.bpm`.

All times are stream seconds (the app's audio clock).  ``latency_s`` is how
late the audio input is behind the room (a front-of-house feed): beats found
in that audio are moved this much earlier.  Link, MIDI clock and taps follow
the room already and are not moved.
"""

from __future__ import annotations

import math
import statistics
import threading
from dataclasses import dataclass
from typing import Protocol, Sequence

from core.events import Beat

SOURCES = ("link", "clock", "taps", "audio")  # best first
CLOCK_PPQN = 24  # MIDI clock: 24 ticks per quarter note
BPM_MIN, BPM_MAX = 20.0, 400.0


@dataclass(frozen=True, slots=True)
class Tempo:
    """A source's grid: ``bpm``, the stream time ``anchor_s`` of one of its beats and, when the source
    knows where bars start, that beat's number ``anchor_beat`` counted from a downbeat."""

    bpm: float
    anchor_s: float
    anchor_beat: int | None = None

    @property
    def period_s(self) -> float:
        return 60.0 / self.bpm


class TempoSource(Protocol):
    name: str

    def tempo(self, now_s: float) -> Tempo | None:
        """The grid now, or None when this source is absent (stopped, silent, never set)."""


def fit_period(times_s: Sequence[float]) -> tuple[float, float] | None:
    """(period_s, anchor_s) of evenly spaced events: a least-squares line through (index, time).

    Indices come from the intervals in units of their median, so a missed event
    (a tap not tapped, a clock tick a driver dropped: an interval near twice the
    median) keeps its place; a late event followed by a burst (intervals near
    two, then near zero) is one slot each, not a gap.  ``anchor_s`` is the fitted
    time of the last event.
    """
    if len(times_s) < 2:
        return None
    gaps = [b - a for a, b in zip(times_s, times_s[1:])]
    med = statistics.median(gaps)
    if med <= 0:
        return None
    # An interval counts as k slots from k - 1/4 up: a missed event leaves ~2 medians, while an event
    # delivered up to 3/4 of a period late (a loaded driver) still counts as the next one.
    steps = [math.floor(g / med + 0.25) for g in gaps]
    big, spare = -1, 0  # the last interval that counted extra slots, and how many
    for i, k in enumerate(steps):
        if k >= 2:
            big, spare = i, k - 1
        elif k == 0 and spare > 0:  # held back, then delivered in a burst: give back a slot
            steps[big] -= 1
            steps[i], spare = 1, spare - 1
        elif k == 1:
            spare = 0
    idx = [0]
    for k in steps:
        idx.append(idx[-1] + max(1, k))
    # A line robust to bursts (events held back by a stalled driver, then delivered at once, lie late
    # off the line): the median slope between each event and the one half the window later, then a
    # least-squares fit through the events within a quarter period of that line.
    half = len(idx) // 2
    slopes = sorted((times_s[i + half] - times_s[i]) / (idx[i + half] - idx[i]) for i in range(len(idx) - half))
    period = slopes[len(slopes) // 2]
    offset = statistics.median(t - period * i for i, t in zip(idx, times_s))
    keep = [(i, t) for i, t in zip(idx, times_s) if abs(t - offset - period * i) <= 0.25 * period]
    if len(keep) >= max(2, len(idx) // 2):
        n = len(keep)
        mx, my = sum(i for i, _ in keep) / n, sum(t for _, t in keep) / n
        sxx = sum((i - mx) ** 2 for i, _ in keep)
        if sxx > 0:
            period = sum((i - mx) * (t - my) for i, t in keep) / sxx
            offset = my - mx * period
    if period <= 0:
        return None
    return period, offset + idx[-1] * period


class TapTempo:
    """Tap tempo: the BPM of the last taps, forgotten after a pause.

    A tap more than ``reset_s`` after the previous one starts a new count (the
    old taps belonged to another song); the last ``max_taps`` taps are fitted
    with :func:`fit_period`, so jitter in single taps averages out.
    """

    name = "taps"

    def __init__(self, *, reset_s: float = 2.0, max_taps: int = 8, hold_s: float = 120.0) -> None:
        self.reset_s = float(reset_s)
        self.max_taps = int(max_taps)
        self.hold_s = float(hold_s)  # a tapped tempo counts as present this long after the last tap
        self.taps: list[float] = []
        self._first_s = 0.0  # the count's first tap: a VJ counts in from a downbeat

    def tap(self, t_s: float) -> None:
        if self.taps and not 0 <= t_s - self.taps[-1] <= self.reset_s:
            self.taps.clear()
        if not self.taps:
            self._first_s = float(t_s)
        self.taps.append(float(t_s))
        del self.taps[:-self.max_taps]

    def tempo(self, now_s: float) -> Tempo | None:
        if len(self.taps) < 3 or now_s - self.taps[-1] > self.hold_s:
            return None  # two taps are one interval: too easy to get wrong
        fit = fit_period(self.taps)
        if fit is None or not BPM_MIN <= 60.0 / fit[0] <= BPM_MAX:
            return None
        return Tempo(60.0 / fit[0], fit[1], anchor_beat=round((fit[1] - self._first_s) / fit[0]))


class MidiClock:
    """MIDI clock in: 24 ticks per quarter note, Start / Stop / Continue.

    :meth:`tick` and the transport methods are called from the MIDI thread with
    stream times; :meth:`tempo` from the main thread (a lock guards the ticks).
    The BPM is a line fitted through the last ``window`` ticks (four beats by
    default), which averages out the delivery jitter of the MIDI driver.  The
    clock is present while running: after Start or Continue, or when ticks come
    without any transport message (a clock-only device); Stop, or no tick for
    ``timeout_s``, makes it absent.
    """

    name = "clock"

    def __init__(self, *, window: int = 4 * CLOCK_PPQN, timeout_s: float = 0.5) -> None:
        self.window = int(window)
        self.timeout_s = float(timeout_s)
        self._lock = threading.Lock()
        self._ticks: list[float] = []
        self._count = 0  # ticks since Start (a beat every 24)
        self._running: bool | None = None  # None: no transport message seen
        self._started = False  # a Start was seen: tick counts give the bar position
        self._fitted: tuple[tuple[int, float] | None, tuple[float, float] | None] = (None, None)

    def tick(self, t_s: float) -> None:
        with self._lock:
            if self._running is False:
                return
            self._ticks.append(float(t_s))
            del self._ticks[:-self.window]
            self._count += 1

    def start(self, t_s: float) -> None:  # noqa: ARG002 - same signature as the others
        with self._lock:
            self._running, self._count, self._ticks, self._started = True, 0, [], True

    def continue_(self, t_s: float) -> None:  # noqa: ARG002
        with self._lock:
            self._running = True

    def stop(self, t_s: float) -> None:  # noqa: ARG002
        with self._lock:
            self._running = False

    @property
    def running(self) -> bool:
        return self._running is not False

    def tempo(self, now_s: float) -> Tempo | None:
        with self._lock:
            ticks, count, running, started = list(self._ticks), self._count, self._running, self._started
        if running is False or len(ticks) < CLOCK_PPQN // 2 or now_s - ticks[-1] > self.timeout_s:
            return None
        if self._fitted[0] != (count, ticks[-1]):  # asked every display frame: fit only on new ticks
            self._fitted = ((count, ticks[-1]), fit_period(ticks))
        fit = self._fitted[1]
        if fit is None:
            return None
        tick_s, last_s = fit
        bpm = 60.0 / (tick_s * CLOCK_PPQN)
        if not BPM_MIN <= bpm <= BPM_MAX:
            return None
        # The first tick after Start is beat 0, a downbeat; tick k (1-based) lies (k - 1) % 24 ticks after a
        # beat, beat (k - 1) // 24.  Without a Start (a clock-only device, or Continue) the bars are unknown.
        return Tempo(bpm, last_s - ((count - 1) % CLOCK_PPQN) * tick_s,
                     anchor_beat=(count - 1) // CLOCK_PPQN if started else None)


class AudioBeats:
    """The audio beat tracker's beats as a source, moved earlier by ``latency_s``."""

    name = "audio"

    def __init__(self, *, latency_s: float = 0.0, timeout_beats: float = 4.0) -> None:
        self.latency_s = float(latency_s)
        self.timeout_beats = float(timeout_beats)
        self._last: Beat | None = None

    def on_beat(self, beat: Beat) -> None:
        if beat.bpm > 0 and math.isfinite(beat.bpm):
            self._last = beat

    def tempo(self, now_s: float) -> Tempo | None:
        b = self._last
        if b is None or now_s - b.time_s > self.timeout_beats * 60.0 / b.bpm:
            return None
        return Tempo(b.bpm, b.time_s - self.latency_s)


class BeatGrid:
    """The beat grid from the best tempo source present; see the module docstring.

    ``sources`` are tried in order (best first).  :meth:`beats` returns the grid's
    beats up to ``now_s`` not returned before, from whichever source is best at
    that moment; a change of source never repeats a beat nor adds one closer than
    half a beat to the last.
    """

    def __init__(self, sources: Sequence[TempoSource]) -> None:
        self.sources = list(sources)
        self.source: str | None = None
        self.bpm: float | None = None
        self._last_beat_s: float | None = None
        self.switches = 0

    def current(self, now_s: float) -> tuple[TempoSource, Tempo] | None:
        for src in self.sources:
            tempo = src.tempo(now_s)
            if tempo is not None:
                return src, tempo
        return None

    def beats(self, now_s: float) -> list[Beat]:
        found = self.current(now_s)
        name = found[0].name if found else None
        if name != self.source:
            self.switches += 1
            self.source = name
        if found is None:
            self.bpm = None
            return []
        tempo = found[1]
        self.bpm = tempo.bpm
        period = tempo.period_s
        last = self._last_beat_s
        # The grid's latest beat at or before now, if it is at least half a beat after the last one
        # given (called once a frame, so at most one beat is due; after a gap only the latest counts).
        k = math.floor((now_s - tempo.anchor_s) / period + 1e-9)
        t = tempo.anchor_s + k * period
        if last is not None and t < last + 0.5 * period:
            return []
        self._last_beat_s = t
        index = None if tempo.anchor_beat is None else tempo.anchor_beat + k
        return [Beat(time_s=t, bpm=tempo.bpm, index=index)]

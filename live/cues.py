"""Cue input: the one thread-safe door for cues into the live system.

The OSC listener, the window's keys, show files and tests all call
:meth:`CueInput.push`; the app drains the queue once per frame and hands each cue
to the director with the stream time it arrived at.  ``push`` never blocks: if
the app stalls, the oldest cues go (and are counted) rather than the listener.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Callable

from core.events import CueEvent
from live.stage import DropOldestQueue


class CueInput:
    """A bounded drop-oldest queue of cue events, stamped with their arrival time.

    ``clock`` gives the arrival stamp; the app passes its stream clock (seconds
    since the first input sample) so stamps and audio events share one timeline.
    """

    def __init__(self, *, maxlen: int = 256, clock: Callable[[], float] = time.monotonic) -> None:
        self._queue: DropOldestQueue[tuple[float, CueEvent, str]] = DropOldestQueue(maxlen)
        self._clock = clock
        self._lock = threading.Lock()
        self.counters: dict[str, int] = collections.defaultdict(int)

    def push(self, event: CueEvent, *, source: str = "api") -> None:
        """Queue a cue (from any thread); ``source`` names the sender for the counters."""
        self._queue.put((self._clock(), event, source))
        with self._lock:
            self.counters["pushed"] += 1
            self.counters[f"from_{source}"] += 1
            self.counters[type(event).__name__] += 1

    def drain_timed(self, timeout_s: float = 0.0) -> list[tuple[float, CueEvent]]:
        """All queued cues with their arrival times, oldest first."""
        return [(t, e) for t, e, _ in self._queue.get_all(timeout_s)]

    def drain(self, timeout_s: float = 0.0) -> list[CueEvent]:
        """All queued cues, oldest first; waits up to ``timeout_s`` when empty."""
        return [e for _, e, _ in self._queue.get_all(timeout_s)]

    @property
    def dropped(self) -> int:
        """Cues lost because nobody drained the queue in time."""
        return self._queue.dropped

    def __len__(self) -> int:
        return len(self._queue)

"""Feature worker stage: ring buffer -> streaming analyzer -> onset / beat / intensity events.

Drains everything the audio source has written (it is the ring's only reader),
runs :class:`core.analyzer.StreamingAnalyzer` on it, and publishes the events on
a drop-oldest queue for the app's frame loop.  The drained audio is also handed
to listeners (the recorder), so the recording carries exactly what was analysed.

Blocks are stamped with the ring's read position, not with a count of samples
read: when the ring overflows (this thread fell more than the ring's length
behind) the lost samples still take their time, the analyzer is told about the
gap (:meth:`StreamingAnalyzer.skip`) and the recorder sees it in the block's
start time, so onsets, the recording and the latency figures stay on the input's
clock.  ``counters["samples_lost"]`` counts what was skipped.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np

from core.events import Intensity, Onset
from live.showstats import FloatRing
from live.stage import DropOldestQueue, LatestSlot, Stage

log = logging.getLogger(__name__)


class FeatureWorker(Stage):
    name = "features"

    def __init__(self, source, analyzer, *, poll_s: float = 0.002, max_events: int = 4096) -> None:
        super().__init__()
        self.source = source
        self.analyzer = analyzer
        self.events: DropOldestQueue = DropOldestQueue(max_events)
        self.poll_s = poll_s
        # Who else gets each block (the recorder): an immutable tuple swapped in whole, so adding or
        # removing one from the app's thread never races this thread's loop over them.
        self._sinks: LatestSlot[tuple[Callable[[np.ndarray, float], None], ...]] = LatestSlot(())
        self.latest_intensity = 0.0
        self.onset_times = FloatRing(10_000)  # the newest; counters count all
        self._threshold: LatestSlot = LatestSlot()  # onset threshold from OSC / keys
        self._threshold_seen = 0
        self._config: LatestSlot = LatestSlot()  # (onsets, intensity) preset sections
        self._config_seen = 0
        self._next_start = 0  # ring index where the next block should start if nothing is lost

    def set_threshold(self, threshold: float) -> None:
        """Change onset sensitivity; applied on the worker's thread before the next block."""
        self._threshold.put(float(threshold))

    def add_audio_sink(self, sink: Callable[[np.ndarray, float], None]) -> None:
        """Also hand every analysed block to ``sink(block, start_time_s)`` (from the next block on)."""
        sinks, _ = self._sinks.get()
        self._sinks.put((*sinks, sink))

    def remove_audio_sink(self, sink: Callable[[np.ndarray, float], None]) -> None:
        sinks, _ = self._sinks.get()
        self._sinks.put(tuple(s for s in sinks if s is not sink))

    def configure(self, onsets, intensity) -> None:
        """New ``[onsets]`` / ``[intensity]`` settings (hot reload); applied on the worker's thread."""
        self._config.put((onsets, intensity))

    def drain(self) -> int:
        """Analyse everything unread in the ring now (on the worker's thread); the samples taken."""
        ring = self.source.ring
        block = ring.read_available()
        if block.size:
            # The single reader: the block starts block.size before the read position.
            self._process(block, start=ring.read_position - block.size)
        return block.size

    def run(self) -> None:
        while True:
            stopping = self.stopping.is_set()
            if not self.drain():
                if stopping:
                    break  # drained
                self.stopping.wait(self.poll_s)

    def _process(self, block: np.ndarray, *, start: int) -> None:
        config, v = self._config.get()
        if v != self._config_seen:
            self._config_seen = v
            try:
                self.analyzer.configure(onsets=config[0], intensity=config[1])
            except Exception as exc:  # noqa: BLE001 - a bad reload must not stop the show
                log.warning("analysis settings refused: %s", exc)
        threshold, v = self._threshold.get()
        if v != self._threshold_seen:
            self._threshold_seen = v
            try:
                self.analyzer.set_threshold(threshold)
            except Exception as exc:  # noqa: BLE001 - a bad OSC value must not stop the show
                log.warning("onset threshold %r refused: %s", threshold, exc)
        gap = start - self._next_start
        if gap > 0:  # lost in a ring overflow
            self.analyzer.skip(gap)
            self.counters["samples_lost"] += gap
        self._next_start = start + block.size
        t_s = start / self.source.sr
        sinks, _ = self._sinks.get()
        for sink in sinks:
            sink(block, t_s)
        self.counters["samples"] += block.size
        for ev in self.analyzer.process(block):
            if isinstance(ev, Intensity):
                self.latest_intensity = ev.value
            elif isinstance(ev, Onset):
                self.onset_times.append(ev.time_s)
                self.counters["onsets"] += 1
            self.events.put(ev)

"""A preallocated single-producer / single-consumer ring buffer for mono audio.

The producer is an audio callback (PortAudio's thread, or a file pacer): it may
only copy, never allocate an array or wait on a lock.  The consumer is one
worker thread (the feature worker).  Positions are absolute sample counts that
only grow, so the stream time of any sample is ``index / sr``.

When the consumer falls more than ``capacity`` samples behind, the producer
keeps writing over the oldest samples (so :meth:`RingBuffer.latest` always
holds the most recent audio) and the consumer skips what was lost; the lost
samples are counted in :attr:`RingBuffer.overflow_samples`.

Lock freedom relies on CPython: a plain int assignment is atomic, and the
writer publishes ``_reserved`` (the end of the region it is about to overwrite)
before copying and ``_written`` after.  A reader validates its copy against
``_reserved`` afterwards, seqlock style, and discards anything that may have
been overwritten while it copied.
"""

from __future__ import annotations

import time

import numpy as np


class RingBuffer:
    """Mono float32 ring buffer with stream-time bookkeeping.

    Args:
        capacity: samples held (e.g. ``sr * 4`` for four seconds).
        sr: sample rate in Hz of the samples written, used for times.
    """

    def __init__(self, *, capacity: int, sr: int) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0 samples, got {capacity}")
        if sr <= 0:
            raise ValueError(f"sr must be > 0 Hz, got {sr}")
        self.capacity = int(capacity)
        self.sr = int(sr)
        self._buf = np.zeros(self.capacity, dtype=np.float32)
        self._reserved = 0  # absolute end of the region being written
        self._written = 0  # absolute count of samples fully written
        self._read = 0  # absolute count of samples consumed (or skipped)
        self._skipped = 0  # samples the consumer lost because it was too slow
        self._last_write_perf_s: float | None = None
        self.blocks_written = 0

    # --- producer (audio callback) -------------------------------------------

    def write(self, block: np.ndarray, *, perf_s: float | None = None) -> None:
        """Copy a 1-D float32 block in.  Allocation-free; never blocks.

        ``perf_s`` is the ``time.perf_counter()`` time of the block's last
        sample (default: now); it maps stream time to wall time for latency.
        """
        n = block.shape[0]
        if n == 0:
            return
        cap = self.capacity
        start = self._written
        if n > cap:  # only the newest capacity samples can be kept
            block = block[n - cap:]
            start += n - cap
            n = cap
        self._reserved = start + n
        i = start % cap
        first = min(n, cap - i)
        self._buf[i:i + first] = block[:first]
        if first < n:
            self._buf[:n - first] = block[first:]
        self._written = start + n
        self._last_write_perf_s = time.perf_counter() if perf_s is None else perf_s
        self.blocks_written += 1

    # --- consumer -------------------------------------------------------------

    def available(self) -> int:
        """Unread samples (at most ``capacity``; older ones were overwritten)."""
        return min(self._written - self._read, self.capacity)

    def read(self, n: int, *, out: np.ndarray | None = None) -> np.ndarray | None:
        """The ``n`` oldest unread samples, or None (nothing consumed) if fewer are ready.

        Pass ``out`` (float32, length >= n) to read without allocating.
        """
        if n > self.capacity:
            raise ValueError(f"cannot read {n} samples from a ring of capacity {self.capacity}")
        while True:
            self._skip_lost()
            if self._written - self._read < n:
                return None
            start = self._read
            dst = out[:n] if out is not None else np.empty(n, dtype=np.float32)
            self._copy(start, n, dst)
            if self._reserved - self.capacity <= start:
                self._read = start + n
                return dst
            # The writer lapped us while we copied: account for it and retry.

    def read_available(self, *, max_n: int | None = None) -> np.ndarray:
        """Every unread sample (up to ``max_n``), possibly an empty array."""
        self._skip_lost()
        n = self.available() if max_n is None else min(self.available(), max_n)
        got = self.read(n)
        return got if got is not None else np.empty(0, dtype=np.float32)

    @property
    def read_position(self) -> int:
        """Absolute index of the next sample :meth:`read` returns."""
        return self._read

    def _skip_lost(self) -> None:
        oldest_safe = self._reserved - self.capacity
        if self._read < oldest_safe:
            self._skipped += oldest_safe - self._read
            self._read = oldest_safe

    def _copy(self, start: int, n: int, dst: np.ndarray) -> None:
        cap = self.capacity
        i = start % cap
        first = min(n, cap - i)
        dst[:first] = self._buf[i:i + first]
        if first < n:
            dst[first:n] = self._buf[:n - first]

    # --- any thread -----------------------------------------------------------

    def latest(self, n: int, *, out: np.ndarray | None = None) -> np.ndarray:
        """The most recent ``n`` samples, oldest first; zeros before the stream began.

        Does not consume.  Samples overwritten during the copy are re-read, so
        the result is always a contiguous stretch of the stream.
        """
        return self.window(None, n, out=out)

    def window(self, end: int | None, n: int, *, out: np.ndarray | None = None) -> np.ndarray:
        """The ``n`` samples before absolute sample index ``end`` (None: the newest), oldest first.

        An ``end`` beyond what was written is clipped to the newest sample; zeros stand
        for samples before the stream began or already overwritten (``end`` too old).
        Does not consume.
        """
        if n > self.capacity:
            raise ValueError(f"window of {n} samples exceeds the ring capacity {self.capacity}; make the ring larger")
        dst = out[:n] if out is not None else np.empty(n, dtype=np.float32)
        while True:
            written = self._written
            stop = written if end is None else min(max(int(end), 0), written)
            have = min(n, stop)
            oldest = max(0, self._reserved - self.capacity)  # older samples are gone (or being overwritten)
            lost = min(have, max(0, oldest - (stop - have)))
            dst[:n - have + lost] = 0.0
            self._copy(stop - have + lost, have - lost, dst[n - have + lost:])
            # Valid if nothing copied was overwritten meanwhile.
            if have == lost or self._reserved - self.capacity <= stop - have + lost:
                return dst

    @property
    def samples_written(self) -> int:
        """Total samples ever written: the stream position of the producer."""
        return self._written

    @property
    def overflow_samples(self) -> int:
        """Samples lost because the consumer fell more than ``capacity`` behind."""
        return self._skipped + max(0, self._reserved - self.capacity - self._read)

    def stream_time_s(self) -> float:
        """Stream time in seconds of the end of the newest sample written."""
        return self._written / self.sr

    def time_of(self, index: int) -> float:
        """Stream time in seconds of absolute sample ``index``."""
        return index / self.sr

    @property
    def last_write_perf_s(self) -> float | None:
        """``time.perf_counter()`` time of the newest block's last sample (None before the first write)."""
        return self._last_write_perf_s

    def perf_time_of(self, stream_time_s: float) -> float | None:
        """Estimated ``time.perf_counter()`` at which stream time ``stream_time_s`` was captured.

        Based on the wall time of the newest write; None before the first write.
        """
        last = self._last_write_perf_s
        if last is None:
            return None
        return last - (self._written / self.sr - stream_time_s)

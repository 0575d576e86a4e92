import threading
import tracemalloc

import numpy as np
import pytest

from core.ringbuffer import RingBuffer


def ramp(start, n):
    return np.arange(start, start + n, dtype=np.float32)


def test_read_returns_samples_in_order_across_the_wrap():
    rb = RingBuffer(capacity=10, sr=10)
    rb.write(ramp(0, 7))
    assert np.array_equal(rb.read(5), ramp(0, 5))
    rb.write(ramp(7, 6))  # wraps around the end of the storage
    assert rb.available() == 8
    assert rb.read(9) is None  # not enough yet, nothing consumed
    assert np.array_equal(rb.read(8), ramp(5, 8))
    assert rb.available() == 0
    assert rb.overflow_samples == 0


def test_read_available_and_out_buffer():
    rb = RingBuffer(capacity=16, sr=8)
    rb.write(ramp(0, 5))
    assert np.array_equal(rb.read_available(max_n=3), ramp(0, 3))
    out = np.full(8, -1, dtype=np.float32)
    got = rb.read(2, out=out)
    assert got.base is out or got is out
    assert np.array_equal(out[:2], ramp(3, 2))
    assert rb.read_available().size == 0


def test_slow_consumer_loses_oldest_and_counts_them():
    rb = RingBuffer(capacity=8, sr=8)
    rb.write(ramp(0, 5))
    rb.write(ramp(5, 7))  # 12 written, capacity 8: samples 0..3 are gone
    assert rb.overflow_samples == 4
    assert np.array_equal(rb.read_available(), ramp(4, 8))
    assert rb.overflow_samples == 4  # counted once, not again on read
    assert rb.read_position == 12


def test_block_larger_than_capacity_keeps_newest():
    rb = RingBuffer(capacity=4, sr=4)
    rb.write(ramp(0, 10))
    assert rb.samples_written == 10
    assert np.array_equal(rb.latest(4), ramp(6, 4))
    assert rb.overflow_samples == 6


def test_latest_pads_with_zeros_before_stream_start_and_does_not_consume():
    rb = RingBuffer(capacity=8, sr=8)
    rb.write(ramp(1, 3))
    assert np.array_equal(rb.latest(5), np.array([0, 0, 1, 2, 3], dtype=np.float32))
    assert rb.available() == 3
    with pytest.raises(ValueError, match="capacity"):
        rb.latest(9)


def test_stream_time_bookkeeping():
    rb = RingBuffer(capacity=48000, sr=48000)
    rb.write(np.zeros(24000, np.float32), perf_s=100.0)
    assert rb.stream_time_s() == pytest.approx(0.5)
    assert rb.time_of(12000) == pytest.approx(0.25)
    # The sample at stream time 0.25 s was captured 0.25 s before the newest one.
    assert rb.perf_time_of(0.25) == pytest.approx(99.75)


def test_write_does_not_allocate():
    rb = RingBuffer(capacity=4096, sr=48000)
    block = np.ones(256, np.float32)
    rb.write(block)  # warm up
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(1000):
        rb.write(block, perf_s=1.0)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename") if s.size_diff > 0)
    # A per-block array (1 KiB) would show as ~1 MB here; allow interpreter noise.
    assert grown < 16_000


def test_concurrent_producer_consumer_sees_a_gapless_stream():
    """Producer writes a ramp as fast as it can; the consumer's view must be contiguous
    apart from counted losses."""
    rb = RingBuffer(capacity=4096, sr=48000)
    total = 256 * 1500
    done = threading.Event()

    def produce():
        for start in range(0, total, 256):
            rb.write(ramp(start, 256))
        done.set()

    t = threading.Thread(target=produce)
    t.start()
    got = []
    while not (done.is_set() and rb.available() == 0):
        chunk = rb.read_available(max_n=1000)
        if chunk.size:
            got.append((rb.read_position - chunk.size, chunk))
    t.join()
    seen = 0
    for start, chunk in got:
        # float32 represents these integers exactly up to 2**24.
        assert np.array_equal(chunk, ramp(start, chunk.size)), "torn or out-of-order read"
        seen += chunk.size
    assert seen + rb.overflow_samples == total


def test_window_reads_the_samples_before_a_given_index():
    from core.ringbuffer import RingBuffer

    rb = RingBuffer(capacity=100, sr=10)
    rb.write(np.arange(1, 61, dtype=np.float32))  # samples 0..59 hold 1..60
    np.testing.assert_array_equal(rb.window(30, 5), [26, 27, 28, 29, 30])
    np.testing.assert_array_equal(rb.window(3, 5), [0, 0, 1, 2, 3])  # before the stream: zeros
    np.testing.assert_array_equal(rb.window(500, 3), [58, 59, 60])  # past the newest: clipped to it
    np.testing.assert_array_equal(rb.window(None, 3), rb.latest(3))
    rb.write(np.arange(61, 161, dtype=np.float32))  # 160 written: samples 0..59 are overwritten
    np.testing.assert_array_equal(rb.window(62, 4), [0, 0, 61, 62])  # overwritten ones read as zeros
    np.testing.assert_array_equal(rb.window(20, 4), [0, 0, 0, 0])
    assert rb.available() == 100  # reading a window consumes nothing

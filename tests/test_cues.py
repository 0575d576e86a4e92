"""CueInput: thread-safe push, ordered drain, drop-oldest, arrival stamps."""

import threading

from core import events as ev
from live.cues import CueInput


def test_push_from_threads_drains_everything_in_order_per_thread():
    cues = CueInput(maxlen=10_000)

    def sender(k):
        for i in range(500):
            cues.push(ev.BankSelect(k * 1000 + i), source=f"t{k}")

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = cues.drain()
    assert len(got) == 2000 and cues.drain() == []
    for k in range(4):
        mine = [e.index for e in got if e.index // 1000 == k]
        assert mine == [k * 1000 + i for i in range(500)]
    assert cues.counters["pushed"] == 2000 and cues.counters["from_t2"] == 500


def test_full_queue_drops_oldest_and_counts():
    cues = CueInput(maxlen=3)
    for i in range(1, 6):
        cues.push(ev.BankSelect(i))
    assert cues.dropped == 2
    assert cues.drain() == [ev.BankSelect(3), ev.BankSelect(4), ev.BankSelect(5)]


def test_arrival_time_comes_from_the_given_clock():
    now = [10.0]
    cues = CueInput(clock=lambda: now[0])
    cues.push(ev.LyricCue("a"))
    now[0] = 10.5
    cues.push(ev.ClearLyric())
    assert cues.drain_timed() == [(10.0, ev.LyricCue("a")), (10.5, ev.ClearLyric())]


def test_drain_waits_for_a_cue_from_another_thread():
    cues = CueInput()
    timer = threading.Timer(0.05, lambda: cues.push(ev.Freeze(True)))
    timer.start()
    assert cues.drain(timeout_s=2.0) == [ev.Freeze(True)]
    timer.join()

import threading
import time

from live.stage import DropOldestQueue, LatestSlot, Stage


class Counter(Stage):
    name = "counter"

    def run(self):
        while not self.stopping.wait(0.001):
            self.counters["ticks"] += 1


def test_stage_starts_counts_and_stops():
    s = Counter()
    s.start()
    time.sleep(0.05)
    s.stop()
    assert not s.alive
    assert s.counters["ticks"] > 0
    assert threading.current_thread().name != "m2v-counter"


def test_stage_records_error_instead_of_raising():
    class Boom(Stage):
        name = "boom"

        def run(self):
            raise ValueError("x")

    b = Boom()
    b.start()
    b.stop()
    assert isinstance(b.error, ValueError)


def test_drop_oldest_queue_keeps_newest_and_counts_drops():
    q = DropOldestQueue(3)
    for i in range(5):
        q.put(i)
    assert q.get_all() == [2, 3, 4]
    assert q.dropped == 2
    assert q.get_all(timeout_s=0.01) == []


def test_latest_slot_versions_and_wait():
    slot = LatestSlot()
    assert slot.get() == (None, 0)
    threading.Timer(0.02, slot.put, args=("frame",)).start()
    value, version = slot.wait_newer(0, timeout_s=2.0)
    assert (value, version) == ("frame", 1)

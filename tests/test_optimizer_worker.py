"""OptimizerWorker in process: when it steps, towards what, and how fast it reacts.

The optimizer here is a stand-in that records each step's time and target, so
the test measures the worker's scheduling alone (the real optimizer's steps are
tested in test_optimizer.py and, end to end, in test_live_app.py).
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from live.optimizer_worker import OptimizerWorker
from live.stage import LatestSlot


class RecordingOptimizer:
    def __init__(self, step_s: float = 0.0) -> None:
        self.step_s = step_s
        self.steps: list[tuple[float, object]] = []
        self.anchors = 0
        self._lock = threading.Lock()

    def frame(self):
        return np.zeros((8, 8, 3), np.uint8)

    def set_anchor(self):
        self.anchors += 1

    def step(self, target):
        if self.step_s:
            time.sleep(self.step_s)
        with self._lock:
            self.steps.append((time.perf_counter(), target))
        return SimpleNamespace(loss=1.0, frame=self.frame())

    def steps_towards(self, target) -> list[float]:
        with self._lock:
            return [t for t, tg in self.steps if tg is target]


def _wait_for(cond, timeout_s: float = 5.0) -> bool:
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if cond():
            return True
        time.sleep(0.002)
    return False


@pytest.fixture
def rig():
    targets = LatestSlot()
    opt = RecordingOptimizer()
    worker = OptimizerWorker(opt, targets, rate_hz=0.25)  # a 4-s step budget: the cpu preset's slow end
    worker.start()
    yield SimpleNamespace(targets=targets, opt=opt, worker=worker)
    worker.stop()
    assert worker.error is None


def test_a_new_target_is_stepped_towards_at_once_not_after_the_step_budget(rig):
    a, b = object(), object()
    rig.targets.put((a, None, False))
    assert _wait_for(lambda: rig.opt.steps_towards(a)), "no step towards the first target"
    t_put = time.perf_counter()
    rig.targets.put((b, None, True))  # True: an l1 anchor is set on the swap
    assert _wait_for(lambda: rig.opt.steps_towards(b), timeout_s=3.0), "the new target waited for the budget"
    # Sleeping through the budget would take 4 s; waking on the slot takes milliseconds (a loaded
    # 2-core machine gets a wide margin).
    assert rig.opt.steps_towards(b)[0] - t_put < 1.0
    assert rig.opt.anchors == 1
    assert rig.worker.counters["target_changes"] == 2


def test_the_rate_paces_steps_and_a_faster_rate_acts_before_the_wait_ends(rig):
    a = object()
    rig.targets.put((a, None, False))
    assert _wait_for(lambda: rig.opt.steps_towards(a))
    time.sleep(0.5)
    assert len(rig.opt.steps_towards(a)) == 1  # 0.25 steps/s: the next one is 4 s away
    t_fast = time.perf_counter()
    rig.worker.set_rate(50.0)
    assert _wait_for(lambda: len(rig.opt.steps_towards(a)) >= 10, timeout_s=3.0)
    assert rig.opt.steps_towards(a)[1] - t_fast < 1.0


def test_paused_stops_stepping_and_resumes_at_once(rig):
    a = object()
    rig.worker.set_rate(100.0)
    rig.targets.put((a, None, False))
    assert _wait_for(lambda: len(rig.opt.steps_towards(a)) >= 3)
    rig.worker.set_paused(True)
    time.sleep(0.05)  # a step under way when the freeze came may still finish
    n = len(rig.opt.steps_towards(a))
    time.sleep(0.5)
    assert len(rig.opt.steps_towards(a)) == n, "steps ran while frozen"
    assert rig.worker.paused
    rig.worker.set_paused(False)
    t_go = time.perf_counter()
    assert _wait_for(lambda: len(rig.opt.steps_towards(a)) > n, timeout_s=3.0)
    assert rig.opt.steps_towards(a)[n] - t_go < 1.0


def test_flat_out_says_when_the_hardware_is_slower_than_the_asked_rate():
    targets = LatestSlot()
    opt = RecordingOptimizer(step_s=0.05)  # 20 steps/s at most
    worker = OptimizerWorker(opt, targets, rate_hz=100.0)
    worker.start()
    try:
        targets.put((object(), None, False))
        assert _wait_for(lambda: len(opt.steps) >= 5)
        assert worker.flat_out
        assert 5.0 < worker.steps_per_s < 25.0
        worker.set_rate(2.0)
        n = len(opt.steps)
        assert _wait_for(lambda: len(opt.steps) >= n + 2, timeout_s=3.0)
        assert not worker.flat_out
    finally:
        worker.stop()


def test_stop_ends_a_long_wait_at_once(rig):
    rig.targets.put((object(), None, False))
    assert _wait_for(lambda: rig.opt.steps)
    t0 = time.perf_counter()
    rig.worker.stop()
    assert time.perf_counter() - t0 < 1.0
    assert not rig.worker.alive


def test_crossfade_blends_the_new_target_in_over_its_steps():
    import torch

    from core.targets import Target

    a = Target.single(torch.tensor([1.0, 0.0]), label="a")
    b = Target.single(torch.tensor([0.0, 1.0]), label="b")
    targets = LatestSlot()
    opt = RecordingOptimizer()
    worker = OptimizerWorker(opt, targets, rate_hz=200.0, crossfade_steps=4)
    worker.start()
    try:
        targets.put((a, None, False))
        assert _wait_for(lambda: len(opt.steps) >= 2)
        worker.set_paused(True)
        time.sleep(0.05)
        n = len(opt.steps)
        targets.put((b, None, False))
        worker.set_paused(False)
        assert _wait_for(lambda: len(opt.steps) >= n + 6)
    finally:
        worker.stop()
    assert all(t is a for _, t in opt.steps[:n])  # the first target: no fade from nothing
    fade = [t for _, t in opt.steps[n:n + 6]]
    share_b = [float(t.weights[t.labels.index("b")]) if "b" in t.labels else 0.0 for t in fade]
    assert 0.0 < share_b[0] < share_b[1] < share_b[2] < 1.0  # eased in over 4 steps
    assert fade[3] is b and fade[4] is b


def test_guidance_settings_reach_the_optimizer_between_steps(rig):
    from core.presets import GuidanceSection

    rig.opt.configure = lambda g: setattr(rig.opt, "configured", g)
    g = GuidanceSection(cutouts=3, crossfade_steps=7)
    rig.worker.configure(g)
    assert _wait_for(lambda: getattr(rig.opt, "configured", None) is g)
    assert rig.worker.crossfade_steps == 7


def test_an_injected_out_of_memory_halves_the_cutouts_and_the_loop_goes_on(tmp_path, monkeypatch):
    """The real optimizer (tiny set), its step made to run out of memory once: the worker recovers."""
    import torch

    from core.models import load_models
    from core.models.tiny import write_tiny_models
    from core.optimizer import LatentOptimizer
    from core.targets import Target

    models = load_models(write_tiny_models(tmp_path / "tiny"), device="cpu", offline=True)
    opt = LatentOptimizer(models, size=(64, 64), cutouts=8, seed=0)
    real_update, failures = opt._update, []

    def update_once_out_of_memory(target):
        if not failures:
            failures.append(opt.cutouts)
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return real_update(target)

    monkeypatch.setattr(opt, "_update", update_once_out_of_memory)
    targets = LatestSlot()
    worker = OptimizerWorker(opt, targets, rate_hz=50.0)
    worker.start()
    try:
        targets.put((Target.single(opt.frame_embedding()), None, False))
        assert _wait_for(lambda: worker.counters["steps"] >= 3, timeout_s=20.0)
    finally:
        worker.stop()
    assert worker.error is None and failures == [8]
    assert opt.cutouts == 4 and worker.counters["oom"] == 1
    assert worker.degraded == "out of GPU memory: cutouts lowered to 4"
    assert np.isfinite(worker.last_loss) and worker.frames.get()[0][1] >= 3

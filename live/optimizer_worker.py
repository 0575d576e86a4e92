"""Optimizer worker stage: the one thread that waits on the GPU.

Takes the newest target from the embedder, runs latent optimization steps at a
rate set by the music's intensity (``rate_hz``, updated by the app every frame),
and publishes each new frame to a latest-value slot.  Where the hardware is
slower than the asked rate it runs flat out and says so (``flat_out``).  On an
accelerator out-of-memory it halves the cutouts, then the size, and goes on.
"""

from __future__ import annotations

import logging
import time

from core.errors import OutOfMemoryError
from live.stage import LatestSlot, Stage

log = logging.getLogger(__name__)


class OptimizerWorker(Stage):
    name = "optimizer"

    def __init__(self, optimizer, targets: LatestSlot, *, rate_hz: float = 10.0) -> None:
        super().__init__()
        self.optimizer = optimizer
        self.targets = targets
        self.frames: LatestSlot = LatestSlot()  # (frame uint8 HWC, step number)
        self.rate_hz = rate_hz
        self.paused = False
        self.flat_out = False
        self.steps_per_s = 0.0
        self.last_loss = float("nan")
        self.degraded: str | None = None
        self._step_times: list[float] = []

    def run(self) -> None:
        self.frames.put((self.optimizer.frame(), 0))
        version, target = 0, None
        while not self.stopping.is_set():
            got, v = self.targets.get()
            if v != version:
                version = v
                if got is not None and got[0] is not None:
                    target, _spec, l1_anchor = got
                    if l1_anchor:
                        self.optimizer.set_anchor()
                    self.counters["target_changes"] += 1
            if target is None or self.paused or self.rate_hz <= 0:
                self.stopping.wait(0.01)
                continue
            t0 = time.perf_counter()
            try:
                res = self.optimizer.step(target)
            except OutOfMemoryError as exc:
                self._shrink(exc)
                continue
            self.counters["steps"] += 1
            self.last_loss = res.loss
            self.frames.put((res.frame, self.counters["steps"]))
            now = time.perf_counter()
            self._step_times.append(now)
            self._step_times = [t for t in self._step_times if now - t < 2.0]
            if len(self._step_times) > 1:
                self.steps_per_s = (len(self._step_times) - 1) / (self._step_times[-1] - self._step_times[0])
            budget = 1.0 / self.rate_hz - (now - t0)
            self.flat_out = budget < 0
            if budget > 0:
                self.stopping.wait(budget)

    def _shrink(self, exc: Exception) -> None:
        opt = self.optimizer
        if opt.cutouts > 2:
            opt.set_cutouts(max(2, opt.cutouts // 2))
            self.degraded = f"out of GPU memory: cutouts lowered to {opt.cutouts}"
        else:
            w, h = opt.size
            if min(w, h) <= 64:
                raise exc
            opt.resize((max(64, w // 2 // 16 * 16), max(64, h // 2 // 16 * 16)))
            self.degraded = f"out of GPU memory: size lowered to {opt.size[0]}x{opt.size[1]}"
        log.warning(self.degraded)
        self.counters["oom"] += 1

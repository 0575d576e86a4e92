"""Optimizer worker stage: the one thread that waits on the GPU.

Takes the newest target from the embedder, runs latent optimization steps at a
rate set by the music's intensity (:meth:`OptimizerWorker.set_rate`, called by
the app every display frame), and publishes each new frame to a latest-value
slot.  Between steps it waits on one Event that a new target, a freeze or
unfreeze (:meth:`OptimizerWorker.set_paused`), a faster rate and ``stop`` all
set: a cue or a freeze acts at once, not after the rest of a slow rate's step
budget.  Where the hardware is slower than the asked rate it runs flat out and
says so (``flat_out``).  On an accelerator out-of-memory it halves the cutouts,
then the size, and goes on.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time

from core.errors import OutOfMemoryError
from live.stage import LatestSlot, Stage

log = logging.getLogger(__name__)

_IDLE_WAIT_S = 0.25  # with no target or paused: a wake-up also comes from every put and setter


class OptimizerWorker(Stage):
    name = "optimizer"

    def __init__(self, optimizer, targets: LatestSlot, *, rate_hz: float = 10.0, crossfade_steps: int = 0) -> None:
        super().__init__()
        #: steps over which a new target is blended in from the one being stepped towards (0: a cut);
        #: read at each new target, so a hot reload acts on the next one
        self.crossfade_steps = int(crossfade_steps)
        self._config: LatestSlot = LatestSlot()  # a preset's [guidance] section, applied between steps
        self._config_seen = 0
        self.optimizer = optimizer
        self.targets = targets
        self.frames: LatestSlot = LatestSlot()  # (frame uint8 HWC, step number)
        # (rate_hz, paused): set by the app every frame, read here between steps
        self._control: LatestSlot[tuple[float, bool]] = LatestSlot((float(rate_hz), False))
        self._wake = threading.Event()
        targets.add_waker(self._wake)
        self.flat_out = False
        self.steps_per_s = 0.0
        self._last_result = None  # the newest step's result; its loss is read only when asked for
        self.degraded: str | None = None
        self._step_times: collections.deque[float] = collections.deque(maxlen=512)

    # --- control (any thread) -----------------------------------------------------------

    @property
    def last_loss(self) -> float:
        """The newest step's loss (nan before the first).  Reading it waits for that step on the device,
        so the HUD and stats read it now and then, never the loop every step."""
        res = self._last_result
        return float("nan") if res is None else float(res.loss)

    @property
    def rate_hz(self) -> float:
        return self._control.get()[0][0]

    @property
    def paused(self) -> bool:
        return self._control.get()[0][1]

    def set_rate(self, hz: float) -> None:
        """Steps per second to aim for; a faster rate takes effect before the current wait ends."""
        (old, paused), _ = self._control.get()
        if float(hz) != old:
            self._control.put((float(hz), paused))
            if hz > old:
                self._wake.set()

    def set_paused(self, paused: bool) -> None:
        """Freeze (no steps; the last frame stays) or go on, at once."""
        (rate, old), _ = self._control.get()
        if bool(paused) != old:
            self._control.put((rate, bool(paused)))
            self._wake.set()

    def configure(self, guidance) -> None:
        """New ``[guidance]`` settings (hot reload), applied on this thread before the next step."""
        self._config.put(guidance)
        self._wake.set()

    def on_stop(self) -> None:
        self._wake.set()

    # --- the loop -----------------------------------------------------------------------

    def run(self) -> None:
        self.frames.put((self.optimizer.frame(), 0))
        from core.targets import Crossfade

        version, target, fade, fade_k = 0, None, None, 0
        last_start = -math.inf
        while not self.stopping.is_set():
            self._wake.clear()  # before reading the state: a change after this wakes the wait below
            config, v = self._config.get()
            if v != self._config_seen:
                self._config_seen = v
                try:
                    self.optimizer.configure(config)
                    self.crossfade_steps = int(config.crossfade_steps)
                except Exception as exc:  # noqa: BLE001 - a bad reload must not stop the show
                    log.warning("guidance settings refused: %s", exc)
            got, v = self.targets.get()
            if v != version:
                version = v
                if got is not None and got[0] is not None:
                    new, _spec, l1_anchor = got
                    # Fade from what the steps were going towards (mid-fade included) to the new target.
                    start = fade.at(fade_k) if fade is not None else target
                    if self.crossfade_steps > 0 and start is not None:
                        fade, fade_k = Crossfade(start, new, steps=self.crossfade_steps), 0
                    else:
                        fade = None
                    target = new
                    if l1_anchor:
                        self.optimizer.set_anchor()
                    self.counters["target_changes"] += 1
                    last_start = -math.inf  # a new target is stepped towards at once
            (rate, paused), _ = self._control.get()
            if target is None or paused or rate <= 0:
                self._wake.wait(_IDLE_WAIT_S)
                continue
            t0 = time.perf_counter()
            due = last_start + 1.0 / rate
            if t0 < due:
                self._wake.wait(due - t0)
                continue
            last_start = t0
            step_target = target
            if fade is not None:
                fade_k += 1
                step_target = fade.at(fade_k)
                if fade.done(fade_k):
                    fade = None
            try:
                res = self.optimizer.step(step_target)
            except OutOfMemoryError as exc:
                self._shrink(exc)
                continue
            self.counters["steps"] += 1
            self._last_result = res
            self.frames.put((res.frame, self.counters["steps"]))
            now = time.perf_counter()
            self.flat_out = now - t0 > 1.0 / rate
            self._step_times.append(now)
            while now - self._step_times[0] > 2.0:
                self._step_times.popleft()
            if len(self._step_times) > 1:
                self.steps_per_s = (len(self._step_times) - 1) / (self._step_times[-1] - self._step_times[0])

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

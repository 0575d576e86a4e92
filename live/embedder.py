"""Embedder stage: turns the director's target choices into CLIP-space targets.

Runs beside the optimizer so that encoding (Wav2CLIP on the recent audio
window, CLIP on lyric and prompt text) never stalls an optimization step.  The
optimizer worker just picks up the newest finished :class:`core.targets.Target`.

Audio targets encode the window that ends at the onset the director named
(``audio_end_s``): the paper's segment audio, not whatever arrived since.
Consistency (the paper's Eq. 2, :func:`core.targets.eq2`): with ``average`` the
new target is the mean of the previous and the current guidance embeddings.

On CUDA the encoders run on a stream of their own (:class:`core.accel.SideStream`),
so their kernels interleave with the optimizer's instead of queueing behind or in
front of them; a target is published only once its tensors are finished, and the
allocator is told the optimizer's stream uses them.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from live.stage import LatestSlot, Stage

log = logging.getLogger(__name__)


class Embedder(Stage):
    name = "embedder"

    def __init__(self, encoders, ring, *, window_s: float = 1.0, consistency: str = "average",
                 style_weight: float = 0.3) -> None:
        super().__init__()
        self.encoders = encoders
        self.ring = ring
        self.window_s = window_s
        self.consistency = consistency
        self.style_weight = style_weight
        self.requests: LatestSlot = LatestSlot()  # core.director.TargetSpec
        self.targets: LatestSlot = LatestSlot()  # (core.targets.Target, spec, l1_anchor: bool)
        self._previous = None  # the previous guidance embedding (Eq. 2)
        self.last_error: str | None = None
        self.last_error_at = float("-inf")  # time.monotonic() of last_error
        self._config: LatestSlot = LatestSlot()  # a preset's [guidance] section (hot reload)
        self._config_seen = 0
        self._window = np.zeros(int(window_s * ring.sr), dtype=np.float32)
        from core.accel import SideStream

        self._side = SideStream(getattr(encoders, "device", "cpu"))

    def configure(self, guidance) -> None:
        """New consistency mode and style weight (hot reload); the next target built uses them."""
        self._config.put(guidance)

    def on_stop(self) -> None:
        self.requests.put(None)  # wake the loop

    def run(self) -> None:
        version = 0
        while not self.stopping.is_set():
            spec, new_version = self.requests.wait_newer(version, timeout_s=0.1)
            if new_version == version or spec is None:
                continue
            version = new_version
            try:
                self.targets.put(self.build_on_side_stream(spec))
                self.counters["targets"] += 1
            except Exception as exc:  # noqa: BLE001 - a failed embedding keeps the old target
                self.counters["errors"] += 1
                self.last_error, self.last_error_at = f"embedder: {exc}", time.monotonic()
                log.warning("could not build target for %s: %s", spec, exc)

    def build_on_side_stream(self, spec):
        """:meth:`build` with the encoders' work on the side stream, handed over finished."""
        with self._side.run():
            built = self.build(spec)
        if built is not None and built[0] is not None:
            self._side.hand_over([built[0].embeds, built[0].weights])
        return built

    def build(self, spec):
        from core.targets import Target, eq2

        config, v = self._config.get()
        if v != self._config_seen:
            self._config_seen = v
            self.consistency, self.style_weight = config.consistency, float(config.style_weight)

        if spec.kind == "audio":
            if self.encoders.models.audio is None:
                return None
            end = None if spec.audio_end_s is None else int(round(spec.audio_end_s * self.ring.sr))
            self.ring.window(end, self._window.size, out=self._window)
            main = self.encoders.audio(self._window, sr=self.ring.sr, cache=False)
        elif spec.text:
            main = self.encoders.text(spec.text)
        else:
            return None
        guidance = eq2(self._previous, main, self.consistency)
        self._previous = main
        items = [(guidance, float(getattr(spec, "weight", 1.0) or 1.0), spec.text or spec.kind)]
        for text, weight in getattr(spec, "prompts", ()) or ():
            items.append((self.encoders.text(text), weight * self.style_weight, text))
        return Target.of(items), spec, self.consistency == "l1"

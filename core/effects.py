"""The fast path: cheap per-frame effects that make every onset visible at display rate.

The optimizer changes *what* is on screen slowly; these effects change *how* the
newest frame is shown, within one display frame of an onset.  They run on the
small generated frame (before it is scaled to the screen) in pure numpy:
nearest-neighbour zoom/shift by two index gathers, brightness through a
256-entry lookup table, optional feedback by an integer blend.  Typical cost on
a 2-core CPU (``scripts/bench_effects.py``): about 1-2 ms at 512x512.

Usage::

    pulse = Pulse(decay_s=0.15)
    fx = Effects(EffectAmounts())
    pulse.trigger(onset.strength, t_s=now)          # on each onset event
    shown = fx.apply(frame, pulse=pulse.value(now), intensity=0.6, t_s=now)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


class Pulse:
    """An envelope that jumps to a strength on trigger and decays exponentially.

    ``value(t)`` = ``level * exp(-(t - t_trigger) / decay_s)``; a trigger never lowers
    the current value (a weak onset right after a strong one does not cut it).
    """

    def __init__(self, *, decay_s: float = 0.15) -> None:
        if decay_s <= 0:
            raise ValueError(f"decay_s must be > 0 seconds, got {decay_s}")
        self.decay_s = decay_s
        self._level = 0.0
        self._t_s = 0.0

    def trigger(self, strength: float, t_s: float) -> None:
        strength = min(max(float(strength), 0.0), 1.0)
        self._level = max(self.value(t_s), strength)
        self._t_s = t_s

    def value(self, t_s: float) -> float:
        dt = t_s - self._t_s
        if dt <= 0:
            return self._level
        return self._level * math.exp(-dt / self.decay_s)


@dataclass
class EffectAmounts:
    """How strongly onsets and intensity move the picture (0 disables each)."""

    zoom: float = 0.06  # extra zoom at a full pulse (0.06 = 6 % closer)
    brightness: float = 0.5  # extra gain at a full pulse (0.5 = 50 % brighter, plus a small lift)
    intensity_zoom: float = 0.04  # slow zoom that follows intensity
    shift: float = 0.015  # drift radius as a fraction of the frame, scaled by intensity
    shift_rate_hz: float = 0.1  # drift circles per second
    feedback: float = 0.0  # 0..1: mix of the previous shown frame (trails)
    flash: float = 0.0  # 0..1: towards white at a full pulse; pulse**2 keeps weak onsets from flashing

    @classmethod
    def from_config(cls, fx) -> "EffectAmounts":
        """A preset's ``[effects]`` section (0..1 amounts) on the fast path's scales."""
        return cls(zoom=0.12 * fx.pulse + 0.02, brightness=fx.pulse, intensity_zoom=0.2 * fx.zoom,
                   shift=0.1 * fx.shift, feedback=fx.feedback, flash=fx.flash)


class Effects:
    """Applies :class:`EffectAmounts` to frames; keeps buffers (and the previous frame) between calls.

    The returned array is an internal buffer reused by the next call: copy it if you keep it.
    """

    def __init__(self, amounts: EffectAmounts | None = None) -> None:
        self.amounts = amounts or EffectAmounts()
        self._shape: tuple[int, ...] | None = None
        self._ramp = np.arange(256, dtype=np.float32)
        self._prev: np.ndarray | None = None

    def _ensure(self, shape: tuple[int, ...]) -> None:
        if shape != self._shape:
            h, w = shape[:2]
            self._shape = shape
            self._rows = np.empty(h, dtype=np.intp)
            self._cols = np.empty(w, dtype=np.intp)
            self._yc = np.arange(h, dtype=np.float32) + 0.5 - h / 2
            self._xc = np.arange(w, dtype=np.float32) + 0.5 - w / 2
            self._a = np.empty(shape, dtype=np.uint8)
            self._b = np.empty(shape, dtype=np.uint8)
            self._c = np.empty(shape, dtype=np.uint8)
            self._prev = None

    def apply(self, frame: np.ndarray, *, pulse: float, intensity: float, t_s: float) -> np.ndarray:
        """The frame to show: ``frame`` (HxWx3 uint8) zoomed, shifted, brightened.

        Args:
            pulse: onset envelope 0..1 (:meth:`Pulse.value`).
            intensity: adaptive intensity 0..1.
            t_s: time in seconds (drives the slow drift).
        """
        if frame.dtype != np.uint8 or frame.ndim != 3:
            raise ValueError(f"frame must be HxWxC uint8, got {frame.dtype} with shape {frame.shape}")
        a = self.amounts
        pulse = min(max(pulse, 0.0), 1.0)
        intensity = min(max(intensity, 0.0), 1.0)
        self._ensure(frame.shape)
        h, w = frame.shape[:2]

        zoom = 1.0 + a.zoom * pulse + a.intensity_zoom * intensity
        phase = 2 * math.pi * a.shift_rate_hz * t_s
        dy = a.shift * intensity * h * math.sin(phase)
        dx = a.shift * intensity * w * math.cos(phase)
        out = frame
        if zoom != 1.0 or abs(dx) >= 0.5 or abs(dy) >= 0.5:
            # Sample the source at (centre + offset/zoom + shift): a crop of the centre, enlarged.
            # (Index vectors are H and W long: allocating them is negligible.)
            self._rows[:] = np.clip(self._yc / zoom + (h / 2 + dy), 0, h - 1)
            self._cols[:] = np.clip(self._xc / zoom + (w / 2 + dx), 0, w - 1)
            np.take(frame, self._rows, axis=0, out=self._a)
            np.take(self._a, self._cols, axis=1, out=self._b)
            out = self._b

        gain = 1.0 + a.brightness * pulse
        white = a.flash * pulse * pulse  # strong onsets flash, weak ones hardly
        if gain != 1.0 or white > 0.0:
            lift = 24.0 * a.brightness * pulse  # so dark frames visibly flash too
            lut = np.clip(self._ramp * gain + lift, 0, 255)
            lut += (255.0 - lut) * white
            np.take(lut.astype(np.uint8), out, out=self._c)
            out = self._c

        if a.feedback > 0 and self._prev is not None:
            k = int(round(min(a.feedback, 0.95) * 256))
            mixed = (out.astype(np.uint16) * (256 - k) + self._prev.astype(np.uint16) * k) >> 8
            out = self._a
            np.copyto(out, mixed, casting="unsafe")
        if a.feedback > 0:
            if self._prev is None:
                self._prev = np.empty_like(out)
            np.copyto(self._prev, out)
        return out

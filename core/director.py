"""The director: a pure scheduler that decides what guides the image, and when.

Events and times go in (audio onsets, beats and intensity from the analyzer; cues
from OSC, keys and show files); the current target comes out.  No threads,
clocks or models: the caller passes stream time (seconds since the first input
sample) and the director only *names* targets.  It says "the audio window that
ends at 12.48 s" or "the text 'a red sky'"; embeddings are computed elsewhere.

Rules, after the Music2Video paper and the live design:

- An onset swaps to an audio target (the window ending at the onset), unless it
  comes within ``refractory_s`` of the previous accepted onset (a detector
  double-trigger), or within ``min_scene_s`` of the last swap (scenes too short
  to show), or a lyric/prompt target is held.
- With ``max_scene_s`` > 0, an audio scene that no accepted onset has renewed for
  that long is renewed at the tick (the window ending then): sustained sound
  (a pad, a drone) without attacks still moves the picture along.
- The director only names targets; blending a new one with the previous (the
  paper's Eq. 2, :func:`core.targets.eq2`) is the embedder's job, on embeddings.
- A lyric cue overrides audio targets until it expires (``duration_s``), is
  replaced, or is cleared.  A prompt-bank entry is held the same way, without
  expiry.  Style prompts are mixed into every target.
- With quantize ``beat`` or ``bar``, visual cues wait for the next beat (or
  downbeat) of the analyzer's beat grid; show controls act at once.
"""

from __future__ import annotations

import logging
import collections
import math
from dataclasses import dataclass, replace
from typing import Any, Literal, Sequence

from core import events as ev
from core.errors import ConfigError
from core.events import CONSISTENCY_MODES, QUANTIZE_MODES

log = logging.getLogger(__name__)

TargetKind = Literal["audio", "lyric", "prompt"]
SWAP_LOG = 1_000  # swaps kept for --stats (about 400 bytes each; swap_count counts all)

# Cues that change what is on screen wait for the beat grid when quantizing;
# the rest (record, rates, thresholds, presets) are show controls and act at once.
_QUANTIZED_CUES = (ev.LyricCue, ev.ClearLyric, ev.BankSelect, ev.PromptCue, ev.ClearPrompts,
                   ev.Freeze, ev.Blackout)
# A predicted beat counts as missed by the tracker once it is this late (in
# beat periods): the analyzer reports beats with some latency, so wait a little.
_MISSED_BEAT_GRACE = 0.5


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """What guides the image: one main target plus weighted style prompts.

    ``kind == "audio"``: the audio window ending at ``audio_end_s`` (``None`` before
    the first onset: no audio target yet).  ``"lyric"``/``"prompt"``: ``text``.
    ``weight`` is the main target's weight relative to the style prompts.
    """

    kind: TargetKind = "audio"
    text: str | None = None
    audio_end_s: float | None = None
    weight: float = 1.0
    prompts: tuple[tuple[str, float], ...] = ()

    @property
    def empty(self) -> bool:
        """True before anything was chosen (no audio window, no text)."""
        return self.text is None and self.audio_end_s is None


@dataclass(frozen=True, slots=True)
class TargetSwap:
    """A change of the main target at stream time ``time_s`` (what :meth:`Director.tick` reports).

    ``prompts`` and ``weight`` are as in :class:`TargetSpec`.
    """

    time_s: float
    kind: TargetKind
    text: str | None
    audio_end_s: float | None
    weight: float = 1.0
    prompts: tuple[tuple[str, float], ...] = ()

    @property
    def target(self) -> TargetSpec:
        return TargetSpec(kind=self.kind, text=self.text, audio_end_s=self.audio_end_s,
                          weight=self.weight, prompts=self.prompts)


@dataclass(slots=True)
class _Hold:
    """A lyric or prompt target that overrides audio targets."""

    kind: TargetKind
    text: str
    until_s: float | None  # None: until replaced or cleared


@dataclass(slots=True)
class _Pending:
    cue: Any
    time_s: float  # when the cue arrived


@dataclass(slots=True)
class _Grid:
    """The analyzer's beat grid: the latest beat and its index since the first."""

    time_s: float
    index: int
    period_s: float


class Director:
    """Pure scheduler state machine; see the module docstring for the rules.

    Feed it with :meth:`on_audio` and :meth:`on_cue`, call :meth:`tick` once per
    frame (or more often) and hand the returned swaps to the engine.  Read
    :attr:`current` for the whole target (main + style prompts); :attr:`version`
    changes whenever :attr:`current` does, including style-prompt changes, which
    are not swaps.  Show-control fields (``frozen``, ``blackout``, ``recording``,
    ``intensity_override``, ``onset_threshold``, ``rate_range``, ``quantize``) are
    plain attributes read by the other stages.
    """

    def __init__(
        self,
        *,
        refractory_s: float = 0.25,
        min_scene_s: float = 0.5,
        max_scene_s: float = 0.0,
        quantize: ev.QuantizeMode = "off",
        beats_per_bar: int = 4,
        bank: Sequence[tuple[str, float]] = (),
        style_prompts: Sequence[tuple[str, float]] = (),
        onset_threshold: float | None = None,
        rate_range: tuple[float, float] | None = None,
    ) -> None:
        if refractory_s < 0 or min_scene_s < 0 or max_scene_s < 0:
            raise ConfigError(
                f"refractory_s={refractory_s!r}, min_scene_s={min_scene_s!r}, max_scene_s={max_scene_s!r}: "
                "each must be >= 0 seconds; use 0 to disable")
        if quantize not in QUANTIZE_MODES:
            raise ConfigError(f"quantize={quantize!r} is not one of {QUANTIZE_MODES}")
        if beats_per_bar < 1:
            raise ConfigError(f"beats_per_bar={beats_per_bar!r} must be an integer >= 1")
        self.refractory_s = float(refractory_s)
        self.min_scene_s = float(min_scene_s)
        self.max_scene_s = float(max_scene_s)
        self.beats_per_bar = int(beats_per_bar)
        self.bank: list[tuple[str, float]] = [(str(t), float(w)) for t, w in bank]

        # show controls, read by other stages
        self.quantize: ev.QuantizeMode = quantize
        self.frozen = False
        self.blackout = False
        self.recording = False
        self.intensity_override: float | None = None
        self.onset_threshold = onset_threshold
        self.rate_range = rate_range
        self.intensity = 0.0  # the audio's latest adaptive intensity, 0..1
        self.pending_app_requests: list[ev.PresetSwitch | ev.SongSelect] = []

        # outputs
        self.current = TargetSpec(prompts=tuple((str(t), float(w)) for t, w in style_prompts))
        self.version = 0
        #: the newest swaps as {time, kind, text} for --stats (bounded: a show runs for hours); swap_count counts all
        self.swaps: collections.deque[dict[str, Any]] = collections.deque(maxlen=SWAP_LOG)
        self.swap_count = 0
        self.counters: dict[str, int] = {}

        self._hold: _Hold | None = None
        self._last_onset_s: float | None = None
        self._last_swap_s: float | None = None
        self._grid: _Grid | None = None
        self._beats: list[_Grid] = []  # beats seen while cues are pending
        self._pending: list[_Pending] = []
        self._out: list[TargetSwap] = []

    @classmethod
    def from_config(cls, preset) -> "Director":
        """A director with a preset's ``[onsets]``, ``[guidance]`` and ``[rate]`` settings."""
        d = cls()
        d.configure(preset)
        return d

    def configure(self, preset) -> None:
        """Take a preset's director settings (at start and on every hot reload).

        Style prompts replace the current ones only when the preset's changed, so
        a reload that touched something else keeps prompts added live by OSC.
        """
        o, g, r = preset.onsets, preset.guidance, preset.rate
        styles = tuple((p.text, float(p.weight)) for p in g.style_prompts)
        if styles != getattr(self, "_preset_styles", ()):
            self._set_current(replace(self.current, prompts=styles))
        self._preset_styles = styles
        self.refractory_s, self.min_scene_s, self.max_scene_s = o.refractory_s, o.min_scene_s, o.max_scene_s
        self.quantize = o.quantize
        self.onset_threshold = o.threshold
        self.bank = [(p.text, float(p.weight)) for p in g.prompt_bank]
        self.rate_range = (r.min_steps_per_s, r.max_steps_per_s)

    # --- inputs -----------------------------------------------------------------

    def on_audio(self, event: ev.Onset | ev.Beat | ev.Intensity) -> None:
        """An analyzer event; its ``time_s`` is stream time."""
        if isinstance(event, ev.Intensity):
            self.intensity = min(1.0, max(0.0, float(event.value)))
        elif isinstance(event, ev.Beat):
            self._on_beat(event)
        elif isinstance(event, ev.Onset):
            self._advance(event.time_s)
            self._on_onset(event.time_s)
        else:
            raise TypeError(f"not an audio event: {event!r}")

    def on_cue(self, event: ev.CueEvent, *, now_s: float) -> None:
        """A cue that arrived at stream time ``now_s``; applied now or on the beat grid."""
        self._advance(now_s)
        self._count(type(event).__name__)
        if isinstance(event, ev.Quantize):
            self._set_quantize(event.mode, now_s)
        elif self.quantize != "off" and isinstance(event, _QUANTIZED_CUES):
            self._pending.append(_Pending(event, now_s))
        else:
            self._apply(event, now_s)

    def tick(self, now_s: float) -> list[TargetSwap]:
        """Apply due quantized cues, expire lyrics and renew long audio scenes up to ``now_s``; return new swaps."""
        self._advance(now_s)
        if self.max_scene_s > 0 and self._hold is None \
                and now_s - (self._last_swap_s if self._last_swap_s is not None else 0.0) >= self.max_scene_s:
            self._count("scene_renewed")
            self._swap(now_s, kind="audio", text=None, audio_end_s=now_s)
        out, self._out = self._out, []
        return out

    def take_app_requests(self) -> list[ev.PresetSwitch | ev.SongSelect]:
        """Preset and song requests for the app (which owns presets), oldest first."""
        out, self.pending_app_requests = self.pending_app_requests, []
        return out

    # --- derived state ----------------------------------------------------------

    @property
    def effective_intensity(self) -> float:
        """The manual override when set, else the audio's intensity (0..1)."""
        return self.intensity if self.intensity_override is None else self.intensity_override

    @property
    def held(self) -> TargetKind | None:
        """``"lyric"`` or ``"prompt"`` while a cue overrides audio targets, else None."""
        return None if self._hold is None else self._hold.kind

    @property
    def pending_cues(self) -> int:
        return len(self._pending)

    # --- internals ----------------------------------------------------------------

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def _on_onset(self, t: float) -> None:
        self._count("onsets")
        if self._last_onset_s is not None and t - self._last_onset_s < self.refractory_s:
            self._count("onsets_refractory")
            return
        self._last_onset_s = t
        if self._hold is not None:
            self._count("onsets_held")
            return
        if self._last_swap_s is not None and t - self._last_swap_s < self.min_scene_s:
            self._count("onsets_min_scene")
            return
        self._swap(t, kind="audio", text=None, audio_end_s=t)

    def _on_beat(self, beat: ev.Beat) -> None:
        # A tempo of 0 or nonsense must not break the grid: keep the last good period.
        if beat.bpm > 0 and math.isfinite(beat.bpm):
            period = 60.0 / beat.bpm
        elif self._grid is not None:
            period = self._grid.period_s
        else:
            period = 0.5  # 120 bpm until the tracker says otherwise
        # A source that knows the bars (MIDI clock, Link, taps) numbers its beats; else count them.
        if beat.index is not None:
            index = beat.index
        else:
            index = 0 if self._grid is None else self._grid.index + 1
        self._grid = _Grid(beat.time_s, index, period)
        if self._pending:
            self._beats.append(self._grid)
        self._advance(beat.time_s)

    def _due_time(self, p: _Pending, now_s: float) -> float | None:
        """When a pending cue is due, if that is at or before ``now_s``."""
        if self._grid is None:
            return p.time_s  # no beat grid yet: nothing to wait for
        per_bar = self.beats_per_bar if self.quantize == "bar" else 1
        for b in self._beats:  # a real beat the tracker reported
            if b.time_s >= p.time_s and b.index % per_bar == 0:
                return b.time_s if b.time_s <= now_s else None
        # No reported beat yet: predict one from the grid, give the tracker some
        # latency, then apply on the predicted beat (the tracker may have missed it).
        g = self._grid
        k = max(0, math.ceil((p.time_s - g.time_s) / g.period_s - 1e-9))
        k += (-(g.index + k)) % per_bar
        predicted = g.time_s + k * g.period_s
        if predicted + _MISSED_BEAT_GRACE * g.period_s <= now_s:
            return predicted
        return None

    def _advance(self, now_s: float) -> None:
        """Apply everything due up to ``now_s`` (pending cues, expiries), in time order."""
        while True:
            due: list[tuple[float, int, _Pending | None]] = []
            for i, p in enumerate(self._pending):
                t = self._due_time(p, now_s)
                if t is not None:
                    due.append((t, i, p))
            if self._hold is not None and self._hold.until_s is not None \
                    and self._hold.until_s <= now_s:
                due.append((self._hold.until_s, -1, None))
            if not due:
                break
            t, i, p = min(due, key=lambda d: (d[0], d[1]))
            if p is None:  # the lyric expired
                self._hold = None
                self._count("lyric_expired")
                self._swap(t, kind="audio", text=None, audio_end_s=t)
            else:
                del self._pending[i]
                self._apply(p.cue, t)
        if not self._pending:
            self._beats.clear()

    def _set_quantize(self, mode: str, now_s: float) -> None:
        if mode not in QUANTIZE_MODES:
            self._reject(f"quantize mode {mode!r} is not one of {QUANTIZE_MODES}")
            return
        self.quantize = mode  # type: ignore[assignment]
        if mode == "off":  # whatever waited for the beat goes now
            pending, self._pending = self._pending, []
            for p in pending:
                self._apply(p.cue, now_s)

    def _reject(self, why: str) -> None:
        self._count("rejected")
        log.warning("cue ignored: %s", why)

    def _apply(self, cue: Any, t: float) -> None:  # noqa: C901 - one branch per cue type
        if isinstance(cue, ev.LyricCue):
            text = cue.text.strip()
            if not text:
                self._release(t)
                return
            until = t + cue.duration_s if cue.duration_s is not None and cue.duration_s > 0 else None
            if self._hold is not None and self._hold.kind == "lyric" and self._hold.text == text:
                self._hold.until_s = until  # the same lyric again: keep it, renew its time
                return
            self._hold = _Hold("lyric", text, until)
            self._swap(t, kind="lyric", text=text, audio_end_s=None)
        elif isinstance(cue, ev.ClearLyric):
            self._release(t)
        elif isinstance(cue, ev.BankSelect):
            if not 1 <= cue.index <= len(self.bank):
                self._reject(f"bank entry {cue.index} does not exist; the preset's bank has "
                             f"{len(self.bank)} entries (1..{len(self.bank)})")
                return
            text, weight = self.bank[cue.index - 1]
            if self._hold is not None and self._hold.kind == "prompt" and self._hold.text == text:
                return
            self._hold = _Hold("prompt", text, None)
            self._swap(t, kind="prompt", text=text, audio_end_s=None, weight=weight)
        elif isinstance(cue, ev.PromptCue):
            text = cue.text.strip()
            prompts = [(p, w) for p, w in self.current.prompts if p != text]
            if text and cue.weight != 0:  # weight 0 removes the prompt
                prompts.append((text, float(cue.weight)))
            self._set_current(replace(self.current, prompts=tuple(prompts)))
        elif isinstance(cue, ev.ClearPrompts):
            self._set_current(replace(self.current, prompts=()))
        elif isinstance(cue, ev.Freeze):
            self.frozen = bool(cue.on)
        elif isinstance(cue, ev.Blackout):
            self.blackout = bool(cue.on)
        elif isinstance(cue, ev.Record):
            self.recording = bool(cue.on)
        elif isinstance(cue, ev.IntensityOverride):
            v = cue.value
            self.intensity_override = None if v is None or v < 0 else min(1.0, float(v))
        elif isinstance(cue, ev.Sensitivity):
            self.onset_threshold = float(cue.threshold)
        elif isinstance(cue, ev.RateRange):
            lo, hi = float(cue.min_steps_per_s), float(cue.max_steps_per_s)
            if not (0 <= lo <= hi and math.isfinite(hi)):
                self._reject(f"rate range {lo}..{hi} steps/s: need 0 <= min <= max")
                return
            self.rate_range = (lo, hi)
        elif isinstance(cue, (ev.PresetSwitch, ev.SongSelect)):
            self.pending_app_requests.append(cue)
        elif isinstance(cue, ev.Quantize):
            self._set_quantize(cue.mode, t)
        else:
            raise TypeError(f"not a cue event: {cue!r}")

    def _release(self, t: float) -> None:
        """Back to audio guidance: the window ending now."""
        if self._hold is None:
            return
        self._hold = None
        self._swap(t, kind="audio", text=None, audio_end_s=t)

    def _swap(self, t: float, *, kind: TargetKind, text: str | None,
              audio_end_s: float | None, weight: float = 1.0) -> None:
        new = TargetSpec(kind=kind, text=text, audio_end_s=audio_end_s, weight=weight,
                         prompts=self.current.prompts)
        self._set_current(new)
        self._last_swap_s = t
        self._out.append(TargetSwap(time_s=t, kind=kind, text=text, audio_end_s=audio_end_s,
                                    weight=weight, prompts=new.prompts))
        self.swaps.append({"time": t, "kind": kind, "text": text})
        self.swap_count += 1

    def _set_current(self, target: TargetSpec) -> None:
        if target != self.current:
            self.current = target
            self.version += 1


__all__ = ["Director", "TargetSpec", "TargetSwap", "CONSISTENCY_MODES", "QUANTIZE_MODES"]

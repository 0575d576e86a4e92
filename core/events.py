"""Typed events that flow between stages.

Audio features (onsets, beats, intensity) come from the analyzer; cues come from
OSC, keys and show files.  All are small frozen dataclasses so they can cross
queues and be compared in tests.  Times are seconds of *stream time* (seconds
since the first input sample), not wall-clock time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union, get_args

# --- audio features ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Onset:
    time_s: float
    strength: float


@dataclass(frozen=True, slots=True)
class Beat:
    time_s: float
    bpm: float
    #: the beat's number counted from a bar line (0, 4, 8... are downbeats) when the source knows the
    #: bars (MIDI clock since Start, Link's phase, taps from the first tap); None: the director counts
    index: int | None = None


@dataclass(frozen=True, slots=True)
class Intensity:
    time_s: float
    value: float  # adaptive 0..1


AudioEvent = Union[Onset, Beat, Intensity]

# --- cues (OSC, keys, show files) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class LyricCue:
    text: str
    duration_s: float | None = None  # None: until replaced or cleared


@dataclass(frozen=True, slots=True)
class ClearLyric:
    pass


@dataclass(frozen=True, slots=True)
class PromptCue:
    text: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class ClearPrompts:
    pass


@dataclass(frozen=True, slots=True)
class BankSelect:
    index: int  # 1-based, as on the number keys


@dataclass(frozen=True, slots=True)
class PresetSwitch:
    name: str


@dataclass(frozen=True, slots=True)
class SongSelect:
    song: int | str  # 1-based index or title


@dataclass(frozen=True, slots=True)
class Freeze:
    on: bool


@dataclass(frozen=True, slots=True)
class Blackout:
    on: bool


@dataclass(frozen=True, slots=True)
class Record:
    on: bool


@dataclass(frozen=True, slots=True)
class IntensityOverride:
    value: float | None  # None: back to the audio's intensity


@dataclass(frozen=True, slots=True)
class Sensitivity:
    threshold: float


@dataclass(frozen=True, slots=True)
class RateRange:
    min_steps_per_s: float
    max_steps_per_s: float


QuantizeMode = Literal["off", "beat", "bar"]
QUANTIZE_MODES: tuple[str, ...] = get_args(QuantizeMode)
#: Temporal consistency between scenes: 'average' = the paper's Eq. 2 target (core.targets.eq2),
#: 'l1' = Eq. 1's pull of z towards the previous scene's, 'none'.
Consistency = Literal["average", "l1", "none"]
CONSISTENCY_MODES: tuple[str, ...] = get_args(Consistency)


@dataclass(frozen=True, slots=True)
class Quantize:
    mode: QuantizeMode


@dataclass(frozen=True, slots=True)
class Tap:
    """One tap of tap tempo (its time is the cue's arrival time)."""


@dataclass(frozen=True, slots=True)
class MidiLearn:
    """Bind the next MIDI control moved to ``action`` (an OSC address after the prefix, and its arguments)."""

    action: str  # e.g. "blackout" or "bank 3"


CueEvent = Union[
    LyricCue, ClearLyric, PromptCue, ClearPrompts, BankSelect, PresetSwitch, SongSelect,
    Freeze, Blackout, Record, IntensityOverride, Sensitivity, RateRange, Quantize, Tap, MidiLearn,
]
#: Cues for the app rather than the director: tempo taps and MIDI learn requests.
APP_CUES = (Tap, MidiLearn)

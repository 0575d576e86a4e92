"""One display frame's step from the director's state to what each live stage should do (pure).

``m2v live``'s main loop feeds the director (audio events, cues, the clock), then
asks :func:`frame_commands` what changed for the stages and applies the result:
a target for the embedder, an onset threshold for the analysis, a rate and a
pause for the optimizer, a recording to start or stop.  No threads, no I/O:
tests drive it with a director alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from core.director import Director, TargetSpec


@dataclass(frozen=True)
class Seen:
    """What the stages were last told (start with ``Seen()``)."""

    version: int = -1
    threshold: float | None = None
    recording: bool = False


@dataclass(frozen=True)
class Commands:
    target: TargetSpec | None  # a new target to embed, or None for no change
    threshold: float | None  # a new onset threshold, or None
    rate_hz: float  # optimizer steps per second for this frame's intensity
    paused: bool  # frozen: no optimizer steps
    record: bool | None  # True: start recording, False: stop, None: as it is
    blackout: bool
    intensity: float  # the intensity the rate was set from (also for the effects)


def frame_commands(director: Director, rate, seen: Seen) -> tuple[Commands, Seen]:
    """The commands for this frame and the new :class:`Seen`.

    ``rate`` is the preset's ``[rate]`` section; ``director.rate_range`` (moved by
    ``/m2v/rate``) replaces its min and max.
    """
    target = director.current if director.version != seen.version else None
    threshold = director.onset_threshold
    new_threshold = threshold if threshold != seen.threshold and threshold is not None else None
    record = None
    if director.recording != seen.recording:
        record = director.recording
    intensity = director.effective_intensity
    cmds = Commands(target=target, threshold=new_threshold,
                    rate_hz=rate.steps_per_s(intensity=intensity, rate_range=director.rate_range),
                    paused=director.frozen, record=record, blackout=director.blackout, intensity=intensity)
    return cmds, replace(seen, version=director.version, threshold=threshold, recording=director.recording)

"""Offline analysis after the Music2Video paper: segments, their intensity and frame budget.

A song is cut into segments at tracked beats (librosa's dynamic-programming beat
tracker, Ellis 2007) or, as an alternative, at the onsets the streaming analyzer
detects (:func:`stream_onsets`).  Each segment gets
the mean and max of the song-globally normalized mel intensity over its frames,
and a number of optimizer iterations (video frames) from a rate mapping:

- ``"paper"``: the normalized *mean* intensity sets the iterations per second
  linearly between ``min_ips`` and ``max_ips``;
- ``"script"``: the authors' script, ``10 + 110 * max intensity`` iterations per second.

Song-global normalization needs the whole file, so this is for ``m2v render`` and
``m2v analyze``; the live path uses :mod:`core.analyzer` instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from core.errors import ConfigError, InputError

__all__ = ["Segment", "OfflineAnalysis", "analyze_offline", "iterations_for", "stream_onsets"]

SegmentMode = Literal["beats", "onsets"]
RateMode = Literal["paper", "script"]
SEGMENT_MODES = ("beats", "onsets")
RATE_MODES = ("paper", "script")

# The authors' script: 10 + 110 * I iterations per second.
SCRIPT_MIN_IPS = 10.0
SCRIPT_SPAN_IPS = 110.0


@dataclass(frozen=True, slots=True)
class Segment:
    start_s: float
    end_s: float
    intensity_mean: float  # 0..1, song-global normalization
    intensity_max: float
    iterations: int  # optimizer iterations (frames) for this segment, >= 1

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class OfflineAnalysis:
    sr: int
    duration_s: float
    tempo_bpm: float
    beats: np.ndarray  # seconds
    onsets: np.ndarray  # seconds, from the streaming analyzer (see stream_onsets)
    segments: list[Segment]
    intensity_hop_s: float
    intensity: np.ndarray = field(repr=False)  # per frame, 0..1, song-global

    @property
    def total_iterations(self) -> int:
        return sum(s.iterations for s in self.segments)


def stream_onsets(y: np.ndarray, sr: int, *, block: int = 1024, **analyzer_args) -> np.ndarray:
    """Onset times (s) that the live :class:`~core.analyzer.StreamingAnalyzer` reports for ``y``.

    The onset-based segments use these rather than a separate offline detector, so
    a render cuts where the live instrument would react, and ``m2v analyze`` checks both.
    """
    from core.analyzer import StreamingAnalyzer
    from core.events import Onset

    analyzer = StreamingAnalyzer(sr=int(sr), **analyzer_args)
    times = [
        e.time_s
        for start in range(0, y.shape[0], block)
        for e in analyzer.process(y[start : start + block])
        if isinstance(e, Onset)
    ]
    return np.asarray(times, dtype=np.float64)


def _boundaries(times: np.ndarray, duration_s: float, *, min_len_s: float) -> np.ndarray:
    """0, the cut times, duration; cuts closer than min_len_s to a neighbour are merged."""
    edges = [0.0]
    for t in np.sort(np.asarray(times, dtype=np.float64)):
        if t - edges[-1] >= min_len_s and duration_s - t >= min_len_s:
            edges.append(float(t))
    edges.append(float(duration_s))
    return np.asarray(edges)


def iterations_for(
    *,
    durations_s: np.ndarray,
    intensity_mean: np.ndarray,
    intensity_max: np.ndarray,
    rate: RateMode = "paper",
    min_ips: float = SCRIPT_MIN_IPS,
    max_ips: float = SCRIPT_MIN_IPS + SCRIPT_SPAN_IPS,
) -> np.ndarray:
    """Iterations per segment from its duration and intensity (see the module doc).

    Rounded on the running total, so the sum matches the integral of the rate to
    within one frame however many short segments there are; at least 1 per segment.
    """
    if rate == "paper":
        ips = min_ips + (max_ips - min_ips) * np.asarray(intensity_mean)
    elif rate == "script":
        ips = SCRIPT_MIN_IPS + SCRIPT_SPAN_IPS * np.asarray(intensity_max)
    else:
        raise ConfigError(f"rate={rate!r}: expected one of {', '.join(RATE_MODES)}")
    exact = np.cumsum(ips * np.asarray(durations_s))
    counts = np.diff(np.round(exact), prepend=0.0).astype(int)
    return np.maximum(counts, 1)


def analyze_offline(
    y: np.ndarray,
    sr: int,
    *,
    segments: SegmentMode = "beats",
    rate: RateMode = "paper",
    min_ips: float = 10.0,
    max_ips: float = 120.0,  # same range as the authors' script, so the two modes compare
    hop: int | None = None,
    n_mels: int = 128,
    min_segment_s: float = 0.05,
    onset_times_s: np.ndarray | None = None,
) -> OfflineAnalysis:
    """Beats, onsets, global intensity and segments of a whole (mono) song.

    ``segments`` tile ``[0, duration]`` with no gaps or overlaps.  A file with no
    beats (or onsets) found is one segment.  ``onset_times_s`` passes onsets already
    found (e.g. by a streaming run with other settings); else :func:`stream_onsets` runs.
    """
    if segments not in SEGMENT_MODES:
        raise ConfigError(f"segments={segments!r}: expected one of {', '.join(SEGMENT_MODES)}")
    if rate not in RATE_MODES:
        raise ConfigError(f"rate={rate!r}: expected one of {', '.join(RATE_MODES)}")
    if not 0 <= min_ips <= max_ips:
        raise ConfigError(f"min_ips={min_ips!r}, max_ips={max_ips!r}: need 0 <= min_ips <= max_ips (e.g. 10 and 120)")
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ConfigError(f"audio shape {y.shape}: expected mono 1-D (load with mono=True)")
    if y.size < sr // 10:
        raise InputError(f"audio is {y.size} samples long; need at least 0.1 s ({sr // 10} samples)")
    import librosa

    if hop is None:
        # ~11.6 ms frames (512 at 44.1/48 kHz): fine enough that the beat tracker's
        # tempo grid has steps under 2 BPM around 120 BPM.
        hop = int(2 ** round(math.log2(sr * 0.0116)))
    duration_s = y.size / sr
    # trim=False: a quiet passage at the end must still be cut at its beats, not left as one segment.
    tempo, beats = librosa.beat.beat_track(y=y, sr=sr, hop_length=hop, units="time", trim=False)
    tempo_bpm = float(np.atleast_1d(tempo)[0])
    onsets = stream_onsets(y, sr) if onset_times_s is None else np.asarray(onset_times_s, dtype=np.float64)

    # Mel spectrogram in dB, mean over bands, normalized over the whole song.
    mel = librosa.feature.melspectrogram(y=y, sr=sr, hop_length=hop, n_mels=n_mels)
    level_db = librosa.power_to_db(mel, ref=np.max).mean(axis=0)
    lo, hi = float(level_db.min()), float(level_db.max())
    intensity = (level_db - lo) / (hi - lo) if hi > lo else np.zeros_like(level_db)
    frame_times = librosa.frames_to_time(np.arange(intensity.size), sr=sr, hop_length=hop)

    edges = _boundaries(beats if segments == "beats" else onsets, duration_s, min_len_s=min_segment_s)
    means, maxes = [], []
    for start, end in zip(edges[:-1], edges[1:]):
        i0, i1 = np.searchsorted(frame_times, [start, end])
        if i1 <= i0:  # shorter than a frame: take the nearest frame
            i0 = min(int(np.searchsorted(frame_times, (start + end) / 2)), intensity.size - 1)
            i1 = i0 + 1
        means.append(float(intensity[i0:i1].mean()))
        maxes.append(float(intensity[i0:i1].max()))
    iters = iterations_for(
        durations_s=np.diff(edges), intensity_mean=np.asarray(means), intensity_max=np.asarray(maxes),
        rate=rate, min_ips=min_ips, max_ips=max_ips,
    )
    segs = [
        Segment(start_s=float(s), end_s=float(e), intensity_mean=m, intensity_max=x, iterations=int(n))
        for s, e, m, x, n in zip(edges[:-1], edges[1:], means, maxes, iters)
    ]
    return OfflineAnalysis(
        sr=int(sr), duration_s=duration_s, tempo_bpm=tempo_bpm, beats=np.asarray(beats, dtype=np.float64),
        onsets=np.asarray(onsets, dtype=np.float64), segments=segs, intensity_hop_s=hop / sr,
        intensity=intensity.astype(np.float32),
    )

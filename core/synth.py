"""Synthetic audio with known onset times.

Tests, benchmarks and the live ``--input demo`` source all use these so the
right answer is known exactly: every generator returns ``(y, onset_times_s)``
where ``y`` is mono float32 in -1..1 and ``onset_times_s`` are the sample-exact
starts of the events it placed.
"""

from __future__ import annotations

import numpy as np

from core.errors import ConfigError

__all__ = [
    "generate_click_track",
    "generate_drum_pattern",
    "drum_loop",
    "generate_soft_notes",
    "generate_demo_song",
    "add_noise",
]


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ConfigError(f"{name}={value!r} must be > 0")


def _beat_times(*, bpm: float, duration_s: float, offset_s: float, tail_s: float) -> np.ndarray:
    """Beat grid from offset_s, leaving tail_s free at the end so the last event can ring out."""
    period_s = 60.0 / bpm
    times = np.arange(offset_s, duration_s - tail_s, period_s)
    return times


def generate_click_track(
    *,
    bpm: float,
    duration_s: float,
    sr: int,
    offset_s: float = 0.5,
    click_s: float = 0.01,  # 10 ms: short enough to be a click, long enough to have body
    freq_hz: float = 1000.0,
    amplitude: float = 0.8,
) -> tuple[np.ndarray, np.ndarray]:
    """A metronome: a decaying ``freq_hz`` burst on every beat.

    Returns ``(y, onset_times_s)``; onset times are exact sample positions / sr.
    """
    _check_positive(bpm=bpm, duration_s=duration_s, sr=sr, click_s=click_s)
    n = int(round(duration_s * sr))
    y = np.zeros(n, dtype=np.float32)
    t = np.arange(int(round(click_s * sr))) / sr
    click = (amplitude * np.sin(2 * np.pi * freq_hz * t) * np.exp(-t / (click_s / 4))).astype(np.float32)
    starts = np.round(_beat_times(bpm=bpm, duration_s=duration_s, offset_s=offset_s, tail_s=click_s) * sr).astype(int)
    for s in starts:
        seg = y[s : s + click.size]
        seg += click[: seg.size]
    return y, starts / sr


def _kick(sr: int) -> np.ndarray:
    t = np.arange(int(0.25 * sr)) / sr
    f = 50.0 + 100.0 * np.exp(-t / 0.03)  # pitch drop 150 -> 50 Hz
    phase = 2 * np.pi * np.cumsum(f) / sr
    return np.sin(phase) * np.exp(-t / 0.08)


def _snare(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.18 * sr)) / sr
    body = 0.5 * np.sin(2 * np.pi * 190.0 * t) * np.exp(-t / 0.04)
    noise = rng.standard_normal(t.size) * np.exp(-t / 0.05)
    return 0.6 * (body + 0.5 * noise)


def _hihat(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.05 * sr)) / sr
    noise = rng.standard_normal(t.size)
    noise = np.diff(noise, prepend=0.0)  # first difference: crude high-pass, hats are bright
    return 0.15 * noise * np.exp(-t / 0.012)


def generate_drum_pattern(
    *,
    bpm: float,
    duration_s: float,
    sr: int,
    offset_s: float = 0.5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A rock beat in eighth notes: kick on 1 and 3, snare on 2 and 4, hi-hat on every eighth.

    Every eighth note starts at least one hit, so the onsets are the eighth-note grid.
    """
    _check_positive(bpm=bpm, duration_s=duration_s, sr=sr)
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sr))
    y = np.zeros(n, dtype=np.float64)
    kick, snare = _kick(sr), _snare(sr, rng)
    eighth_s = 30.0 / bpm
    times = np.arange(offset_s, duration_s - 0.25, eighth_s)
    starts = np.round(times * sr).astype(int)
    for i, s in enumerate(starts):
        hits = [_hihat(sr, rng)]
        if i % 4 == 0:
            hits.append(kick)
        elif i % 4 == 2:
            hits.append(snare)
        for h in hits:
            seg = y[s : s + h.size]
            seg += h[: seg.size]
    y *= 0.8 / max(np.abs(y).max(), 1e-9)
    return y.astype(np.float32), starts / sr


def drum_loop(*, sr: int, bpm: float = 120.0, bars: int = 4, seed: int = 0
              ) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """The live ``--input demo`` beat: one hit per eighth note from bar start, kick on beats 1 and 3,
    snare on 2 and 4, a hi-hat on the off-beats, in the same voices as :func:`generate_drum_pattern`.

    Returns the mono signal (a whole number of bars, for seamless looping) and its hits as
    ``(time_s, 'kick'|'snare'|'hat')``, sorted.
    """
    _check_positive(bpm=bpm, sr=sr, bars=bars)
    rng = np.random.default_rng(seed)
    beat_s = 60.0 / bpm
    n = int(round(bars * 4 * beat_s * sr))
    y = np.zeros(n, dtype=np.float64)
    kick, snare = _kick(sr), _snare(sr, rng)
    hits: list[tuple[float, str]] = []
    for eighth in range(bars * 8):
        time_s = eighth * beat_s / 2
        beat, off_beat = divmod(eighth, 2)
        kind, sound = (("hat", _hihat(sr, rng)) if off_beat else ("kick", kick) if beat % 2 == 0 else ("snare", snare))
        i = int(round(time_s * sr))
        seg = y[i:i + sound.size]
        seg += sound[:seg.size]
        hits.append((time_s, kind))
    return np.clip(y, -1.0, 1.0).astype(np.float32), hits


def generate_soft_notes(
    *,
    duration_s: float,
    sr: int,
    note_s: float = 0.4,
    gap_s: float = 0.1,
    attack_s: float = 0.03,  # 30 ms: a bowed/pad-like rise, far from a click
    offset_s: float = 0.5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic notes (random pitches from a scale) with a raised-cosine attack of ``attack_s``.

    Each note decays to silence before ``gap_s``; the onset is the first sample of the attack.
    """
    _check_positive(duration_s=duration_s, sr=sr, note_s=note_s, attack_s=attack_s)
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sr))
    y = np.zeros(n, dtype=np.float64)
    scale = 220.0 * 2 ** (np.array([0, 2, 4, 5, 7, 9, 11, 12, 14, 16]) / 12)  # A major, two octaves
    times = np.arange(offset_s, duration_s - note_s, note_s + gap_s)
    t = np.arange(int(note_s * sr)) / sr
    n_att = int(attack_s * sr)
    env = np.ones(t.size)
    env[:n_att] = 0.5 - 0.5 * np.cos(np.pi * np.arange(n_att) / n_att)
    release = int(0.05 * sr)
    env[-release:] *= np.linspace(1.0, 0.0, release)
    env *= np.exp(-t / (note_s * 2))
    starts = np.round(times * sr).astype(int)
    for s in starts:
        f0 = rng.choice(scale)
        amp = rng.uniform(0.4, 0.8)
        tone = sum((0.6**k) * np.sin(2 * np.pi * f0 * (k + 1) * t + rng.uniform(0, 2 * np.pi)) for k in range(4))
        seg = y[s : s + t.size]
        seg += (amp * 0.5 * env * tone)[: seg.size]
    return y.astype(np.float32), starts / sr


def add_noise(y: np.ndarray, *, snr_db: float, seed: int = 0) -> np.ndarray:
    """White noise at ``snr_db`` below the signal's mean power (over the whole signal)."""
    rng = np.random.default_rng(seed)
    power = float(np.mean(np.square(y, dtype=np.float64)))
    noise = rng.standard_normal(y.size) * np.sqrt(power / 10 ** (snr_db / 10))
    return (y + noise).astype(np.float32)


def generate_demo_song(
    *,
    duration_s: float = 60.0,
    sr: int = 48000,
    bpm: float = 120.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A stand-in song for ``--input demo``: drums plus soft notes, with a quiet breakdown.

    The level changes (full, quieter half, full) exercise the adaptive intensity.
    Returns ``(y, onset_times_s)`` of the drum hits.
    """
    drums, onsets = generate_drum_pattern(bpm=bpm, duration_s=duration_s, sr=sr, seed=seed)
    notes, _ = generate_soft_notes(duration_s=duration_s, sr=sr, note_s=60.0 / bpm, gap_s=0.0,
                                   seed=seed + 1)
    y = 0.7 * drums + 0.3 * notes
    n = y.size
    third = n // 3
    gain = np.ones(n, dtype=np.float32)
    gain[third : 2 * third] = 0.3  # about -10 dB breakdown
    return (y * gain).astype(np.float32), onsets

"""Streaming audio analysis for the live path: onsets, beats and adaptive intensity.

:class:`StreamingAnalyzer` takes mono float32 blocks of any size, re-blocks them
to its hop and returns typed events (:mod:`core.events`) stamped in stream time:
seconds since the first sample it was given, with the detectors' own delay taken
off.  Onsets and beats come from aubio; intensity is the mean of a mel spectrum
in dB, normalized to 0..1 by :class:`AdaptiveNormalizer` over a rolling window.

Everything here is pure (no threads, no devices) and allocates its buffers once,
so the live feature worker can call :meth:`StreamingAnalyzer.process` on every
block it drains from the ring buffer.
"""

from __future__ import annotations

import logging
import math

import aubio
import numpy as np
import scipy.fft

from core.errors import ConfigError
from core.events import Beat, Intensity, Onset
from core.presets import AUBIO_ONSET_METHODS, IntensitySection, OnsetsSection

# The preset schema is the one source of defaults: the constructor's are read from it.
_ONSETS, _INTENSITY = OnsetsSection(), IntensitySection()

__all__ = ["AdaptiveNormalizer", "BandFlux", "StreamingAnalyzer", "ONSET_METHODS"]

log = logging.getLogger(__name__)

# The band flux's single bins below this come from the long window (pitch resolution for legato steps).
LONG_MAX_HZ = 2000.0

# "flux" is BandFlux below; the others are aubio's onset detection functions (see aubio's `onset` docs).
ONSET_METHODS = AUBIO_ONSET_METHODS


class AdaptiveNormalizer:
    """Map a level in dB to 0..1 against the recent past, with attack/release smoothing.

    Live audio has no song-wide min/max, so the range is the ``low_pct``..``high_pct``
    percentiles of the levels seen over the last ``window_s`` seconds (widened to at
    least ``min_range_db`` so a steady tone does not blow noise up to full scale).
    The loudest recent passage maps to ~1 and ``min_range_db``.. below it to 0, so a
    quiet song still uses the whole range.  Levels below ``floor_db`` (or ``-inf``)
    are silence: they map to 0 and are kept out of the history, so a pause between
    songs does not stretch the range.

    Call :meth:`update` once per frame at ``rate_hz``.
    """

    def __init__(
        self,
        *,
        rate_hz: float,
        window_s: float = 20.0,
        low_pct: float = 10.0,
        high_pct: float = 95.0,
        min_range_db: float = 12.0,
        floor_db: float = -120.0,
        attack_s: float = 0.02,
        release_s: float = 0.3,
        refresh_s: float = 0.1,
    ) -> None:
        if not rate_hz > 0:
            raise ConfigError(f"rate_hz={rate_hz!r} must be > 0")
        if not window_s > 0:
            raise ConfigError(f"intensity window_s={window_s!r} must be > 0 (tens of seconds suits music)")
        if not 0 <= low_pct < high_pct <= 100:
            raise ConfigError(f"percentiles low={low_pct!r}, high={high_pct!r}: need 0 <= low < high <= 100")
        if attack_s < 0 or release_s < 0:
            raise ConfigError(f"attack_s={attack_s!r}, release_s={release_s!r} must be >= 0")
        self.rate_hz = float(rate_hz)
        self.window_s = float(window_s)
        self.low_pct, self.high_pct = float(low_pct), float(high_pct)
        self.min_range_db = float(min_range_db)
        self.floor_db = float(floor_db)
        self.set_smoothing(attack_s, release_s)
        self._history = np.zeros(max(1, int(round(window_s * rate_hz))), dtype=np.float32)
        # Percentiles cost ~0.1 ms on a 20 s history: refresh them a few times a second, not per frame.
        self._refresh_every = max(1, int(round(refresh_s * rate_hz)))
        self.reset()

    def set_smoothing(self, attack_s: float, release_s: float) -> None:
        """Rise and fall time constants (s); 0 follows at once."""
        if attack_s < 0 or release_s < 0:
            raise ConfigError(f"attack_s={attack_s!r}, release_s={release_s!r} must be >= 0")
        self.attack_s, self.release_s = float(attack_s), float(release_s)
        frame_s = 1.0 / self.rate_hz
        # One-pole coefficients.
        self._a_attack = 1.0 - math.exp(-frame_s / attack_s) if attack_s > 0 else 1.0
        self._a_release = 1.0 - math.exp(-frame_s / release_s) if release_s > 0 else 1.0

    def set_percentiles(self, low_pct: float, high_pct: float) -> None:
        """The history percentiles mapped to 0 and 1 (applied at the next refresh)."""
        if not 0 <= low_pct < high_pct <= 100:
            raise ConfigError(f"percentiles low={low_pct!r}, high={high_pct!r}: need 0 <= low < high <= 100")
        self.low_pct, self.high_pct = float(low_pct), float(high_pct)
        if self._n:
            self._refresh()

    def reset(self) -> None:
        """Forget the history and the smoothed value."""
        self._n = 0  # levels written so far (the ring index is n % size)
        self._since_refresh = 0
        self._lo = self._hi = 0.0
        self.value = 0.0

    def _refresh(self) -> None:
        filled = self._history[: min(self._n, self._history.size)]
        self._lo, self._hi = (float(v) for v in np.percentile(filled, (self.low_pct, self.high_pct)))

    def update(self, level_db: float) -> float:
        """Feed one frame's level (dB); return the smoothed 0..1 intensity."""
        if not level_db >= self.floor_db:  # also catches -inf and nan
            target = 0.0
        else:
            self._history[self._n % self._history.size] = level_db
            self._n += 1
            self._since_refresh += 1
            if self._n <= self._refresh_every or self._since_refresh >= self._refresh_every:
                self._refresh()  # every frame while the history is young, then periodically
                self._since_refresh = 0
            span = max(self._hi - self._lo, self.min_range_db)
            target = min(1.0, max(0.0, (level_db - (self._hi - span)) / span))
        a = self._a_attack if target > self.value else self._a_release
        self.value += a * (target - self.value)
        return self.value


class BandFlux:
    """Causal SuperFlux-style onset detection on a power spectrum, one frame per hop.

    The onset function is the mean, over frequency bands in dB, of each band's rise
    above a reference (after Böck & Widmer 2013, "Maximum filter vibrato suppression
    for onset detection"):

    - bands: single FFT bins up to ``fine_max_hz`` (a sustained string's note change is
      a change of pitch, seen only at bin resolution), then ``n_bands`` equal-width
      bands up to ``max_hz`` (equal widths keep the hats' and picks' high bands in the
      sum, where mel bands let low decays drown them).  Given a second, longer spectrum
      (``n_long_bins`` bins ``long_bin_hz`` apart), the single bins below ``long_max_hz``
      are its bins instead: a semitone below 2 kHz is less than one bin of a 23 ms
      window, so a legato note change of bowed strings moved energy within the max
      filter's reach and was no rise (bowed legato on the corpus's ``tune`` split: F
      0.09 with the short window's bins, 0.45 with a 93 ms window's);
    - levels in dB with a floor ``range_db`` below the loudest band lately, so the
      input's gain does not matter;
    - the reference: the previous frame maximum-filtered over 3 neighbouring bands
      (vibrato and glides that move energy to the next band are not rises), or the
      band's noise floor plus ``floor_margin_db`` if higher.  The floor falls towards
      the band's level by ``FLOOR_FALL`` of the way each frame and rises by
      ``floor_rise_db`` (or ``FLOOR_CATCH_UP`` of the way when far below): it sits near
      the low end of steady noise, so hiss, a crowd or a 12 dB SNR mix adds little.

    Two detection functions come from the same bands and reference:

    - ``value``: the mean rise over all bands;
    - ``high_value``: the mean rise over the wide bands above ``fine_max_hz`` only, with
      a floor margin of ``high_margin_db`` instead of ``floor_margin_db``.  A hi-hat or
      a ride in a dense mix rises a few dB in the high bands alone, where noise sits; in
      the mean over all bands the low bins' noise drowns it (in the 24 dB mix of the
      corpus's ``tune`` split the first function alone found 46 % of the hats, both 71 %).
      A band of several bins fluctuates less in noise than a single bin, so it takes a
      smaller margin; below 4 dB the noise's ripple fires it (clicks in white noise at
      10 dB SNR: precision 0.82 with 3 dB, 0.92 with 4 dB, as without this function).

    - ``far_value``: the mean rise over all bands with a floor margin of ``far_margin_db``
      instead of ``floor_margin_db``, peak-picked at ``FAR_THRESHOLD_RATIO`` of the
      threshold.  A new note's harmonics stand 10 dB and more over a white noise floor,
      where the noise's own bins seldom reach, so this function stays near 0 in noise
      (the noise of the corpus's ``tune`` 12 dB mix alone: median 0.03 dB, 99th percentile
      0.08, against 0.18 and 0.32 for ``value``) and a note that lifts a few bins far out of
      the noise shows at a third of the threshold; in ``value`` those bins' rise is diluted
      by the ~300 bands' noise and stays under it (``tune`` split: piano in that noise F
      0.89 -> 0.94, bowed legato 0.45 -> 0.86, the 12 dB mix 0.79 -> 0.81; margins of 10 or
      14 dB, or a quarter to 0.4 of the threshold, score within 0.01 in that mix).

    A frame is an onset when any function's value is a local maximum (above the
    three frames before it and the one after it: one frame of look-ahead) and exceeds the
    median plus ``MEAN_FACTOR`` times the mean of its last ``median_frames`` values by
    ``threshold`` (dB of mean band rise; one threshold for ``value`` and ``high_value``),
    the frame comes more than ``min_ioi_frames`` after the previous onset, and (for the
    all-band functions, each against its own recent peaks) its peak is at least
    ``min_relative`` of the recent onsets' peaks (a decay's ripple after a loud hit is not
    a hit).
    The constants were chosen on the ``tune`` split of the SoundFont corpus
    (``scripts/make_onset_corpus.py``, scored by ``scripts/bench_audio.py``).
    """

    MEAN_FACTOR = 0.25  # median + a quarter of the mean: white noise alone crosses it ~1 in 4 s (0: 1 a second)
    FLOOR_FALL = 0.2  # per frame: the floor sits near the low end of a band's noise, not its deepest dip
    FAR_THRESHOLD_RATIO = 1.0 / 3.0  # far_value's threshold: 0.1 dB at the default 0.3 (tune split: 0.08-0.12 alike)
    FLOOR_CATCH_UP = 0.02  # per frame: ~50 frames (0.3 s at hop 256) to catch up after a silence
    _LOUD_DECAY_DB = 0.002  # per frame: ~0.35 dB/s at hop 256, so a quiet passage keeps its floor

    def __init__(self, *, n_bins: int, bin_hz: float, fine_max_hz: float = 4100.0, max_hz: float = 17200.0,
                 n_bands: int = 64, threshold: float = 0.3, range_db: float = 70.0, floor_margin_db: float = 6.0,
                 floor_rise_db: float = 0.1, median_frames: int = 10, min_ioi_frames: int = 1,
                 min_relative: float = 0.05, high_margin_db: float = 4.0, far_margin_db: float = 12.0,
                 n_long_bins: int = 0,
                 long_bin_hz: float = 0.0, long_max_hz: float = LONG_MAX_HZ) -> None:
        max_bin = min(int(max_hz / bin_hz), n_bins - 1)
        fine_bins = max(1, min(int(fine_max_hz / bin_hz), max_bin - n_bands))
        # Short-spectrum bins first_bin .. fine_bins-1 alone, then n_bands equal bands up to max_bin; DC left out.
        # Below first_bin, the long spectrum's bins 1 .. n_long_fine alone (none without a long spectrum).
        self._n_long_fine = max(0, int(long_max_hz / long_bin_hz) - 1) if n_long_bins else 0
        first_bin = math.ceil(long_max_hz / bin_hz) if n_long_bins else 1
        edges = np.concatenate([np.arange(first_bin, fine_bins),
                                np.linspace(fine_bins, max_bin, n_bands + 1)]).astype(int)
        n_wide, n_short = n_bands, edges.size - 1
        n_bands = self._n_long_fine + n_short
        self._basis = np.zeros((n_short, n_bins), dtype=np.float32)  # the short spectrum's bins and bands
        for b in range(n_short):
            self._basis[b, edges[b] : max(edges[b + 1], edges[b] + 1)] = 1.0
        self._basis /= self._basis.sum(axis=1, keepdims=True)
        self.threshold = float(threshold)
        self.range_db = float(range_db)
        self.floor_margin_db, self.floor_rise_db = float(floor_margin_db), float(floor_rise_db)
        self.median_frames = int(median_frames)
        self.min_ioi_frames = int(min_ioi_frames)
        self.min_relative = float(min_relative)
        self._bands = np.zeros(n_bands, dtype=np.float32)
        self._ref = np.zeros(n_bands, dtype=np.float32)
        self._rise = np.zeros(n_bands, dtype=np.float32)
        self._diff = np.zeros(n_bands, dtype=np.float32)
        self._step = np.zeros(n_bands, dtype=np.float32)
        self._inv_n = 1.0 / n_bands
        self._high = slice(n_bands - n_wide, n_bands)  # the wide bands above fine_max_hz
        n_high = n_wide
        self.high_margin_db = float(high_margin_db)
        self._ref_high = np.zeros(n_high, dtype=np.float32)
        self._rise_high = np.zeros(n_high, dtype=np.float32)
        self._inv_n_high = 1.0 / n_high
        self._odf = np.zeros(self.median_frames + 2, dtype=np.float64)
        self._odf_high = np.zeros(self.median_frames + 2, dtype=np.float64)
        self.far_margin_db = float(far_margin_db)
        self._ref_far = np.zeros(n_bands, dtype=np.float32)
        self._odf_far = np.zeros(self.median_frames + 2, dtype=np.float64)
        self.reset()

    def reset(self) -> None:
        self._prev = None
        self._floor = None
        self._loud_db = -40.0  # the loudest band lately (dB); quiet bands are floored range_db below it
        self._odf.fill(0.0)
        self._odf_high.fill(0.0)
        self._odf_far.fill(0.0)
        self._frames = 0
        self._last_onset = -(10**9)
        self._peak_max = 0.0
        self._far_peak_max = 0.0
        self.value = 0.0
        self.high_value = 0.0
        self.far_value = 0.0

    def _peak(self, odf: np.ndarray, value: float, threshold: float) -> bool:
        """Push ``value`` into the history ``odf``; True when the previous frame is a peak over ``threshold``."""
        odf[:-1] = odf[1:]  # odf[-1] is this frame, odf[-2] the candidate
        odf[-1] = value
        c = odf[-2]
        if not (c >= odf[-1] and c > odf[-3] and c >= odf[-5:-2].max() and self._frames > len(odf)):
            return False
        past = odf[:-2]
        # The median of a few values by sorting a list: np.median costs ~10 us a call, a tenth of a hop's budget.
        s, m = sorted(past.tolist()), past.size // 2
        median = s[m] if past.size % 2 else 0.5 * (s[m - 1] + s[m])
        return bool(c > median + self.MEAN_FACTOR * float(np.add.reduce(past)) / past.size + threshold)

    def __call__(self, power: np.ndarray, long_power: np.ndarray | None = None) -> bool:
        """Feed one frame's power spectrum (and the long one, if built with ``n_long_bins``);
        True when the *previous* frame was an onset."""
        bands = self._bands
        n_long = self._n_long_fine
        if n_long:
            bands[:n_long] = long_power[1 : n_long + 1]
        np.dot(self._basis, power, out=bands[n_long:])
        loudest = float(bands.max())
        if loudest > 0.0:
            self._loud_db = max(10.0 * math.log10(loudest), self._loud_db - self._LOUD_DECAY_DB)
        bands += np.float32(10.0 ** ((self._loud_db - self.range_db) / 10.0))
        np.log10(bands, out=bands)
        bands *= 10.0
        if self._prev is None:
            self._prev, self._floor = bands.copy(), bands.copy()
        ref, prev = self._ref, self._prev
        np.maximum(prev[:-2], prev[1:-1], out=ref[1:-1])
        np.maximum(ref[1:-1], prev[2:], out=ref[1:-1])
        ref[0], ref[-1] = max(prev[0], prev[1]), max(prev[-1], prev[-2])
        hi = self._high
        np.add(self._floor[hi], self.high_margin_db, out=self._ref_high)
        np.maximum(self._ref_high, ref[hi], out=self._ref_high)
        np.subtract(bands[hi], self._ref_high, out=self._rise_high)
        np.maximum(self._rise_high, 0.0, out=self._rise_high)
        # Means as np.add.reduce: ndarray.mean()'s Python overhead is several us a call, a real share of a hop.
        self.high_value = float(np.add.reduce(self._rise_high)) * self._inv_n_high
        np.add(self._floor, self.far_margin_db, out=self._diff)  # _diff is free until the floor update
        np.maximum(ref, self._diff, out=self._ref_far)
        np.subtract(bands, self._ref_far, out=self._rise)
        np.maximum(self._rise, 0.0, out=self._rise)
        self.far_value = float(np.add.reduce(self._rise)) * self._inv_n
        np.add(self._floor, self.floor_margin_db, out=self._diff)
        np.maximum(ref, self._diff, out=ref)
        np.subtract(bands, ref, out=self._rise)
        np.maximum(self._rise, 0.0, out=self._rise)
        self.value = float(np.add.reduce(self._rise)) * self._inv_n
        # The floor follows falls at once and rises slowly: by floor_rise_db a frame, or by
        # FLOOR_CATCH_UP of the distance when far below (after a silence, noise must not wait seconds).
        # In place (no temporaries per frame): rise = min(max(rise_db, CATCH_UP * d), max(d, 0)), which is
        # 0 where d <= 0, plus FLOOR_FALL * min(d, 0), which is 0 where d > 0.
        diff, step = self._diff, self._step
        np.subtract(bands, self._floor, out=diff)
        np.multiply(diff, self.FLOOR_CATCH_UP, out=step)
        np.maximum(step, self.floor_rise_db, out=step)
        np.minimum(step, np.maximum(diff, 0.0, out=self._rise), out=step)  # _rise is free again here
        self._floor += step
        np.minimum(diff, 0.0, out=diff)
        diff *= self.FLOOR_FALL
        self._floor += diff
        self._prev[:] = bands
        self._frames += 1
        c, c_far = self._odf[-1], self._odf_far[-1]  # the candidates once pushed
        peak_all = self._peak(self._odf, self.value, self.threshold) and c > self.min_relative * self._peak_max
        peak_high = self._peak(self._odf_high, self.high_value, self.threshold)
        peak_far = (self._peak(self._odf_far, self.far_value, self.FAR_THRESHOLD_RATIO * self.threshold)
                    and c_far > self.min_relative * self._far_peak_max)
        onset = (peak_all or peak_high or peak_far) and self._frames - 1 - self._last_onset > self.min_ioi_frames
        self._peak_max *= 0.9995
        self._far_peak_max *= 0.9995
        if onset:
            self._last_onset = self._frames - 1
            if peak_all:
                self._peak_max = max(self._peak_max, c)
            if peak_far:
                self._far_peak_max = max(self._far_peak_max, c_far)
        return bool(onset)


class StreamingAnalyzer:
    """Onsets, beats and intensity from a stream of mono float32 blocks.

    ``process(block)`` accepts any block size, runs the detectors once per ``hop``
    samples and returns the events found, in the order they were detected: :class:`~core.events.Onset`
    (``strength`` 0..1 relative to recent onsets), :class:`~core.events.Beat` (with
    aubio's running tempo estimate) and one :class:`~core.events.Intensity` per hop.

    Event times are stream seconds (from the first sample processed since
    construction or :meth:`reset`) with the detector delay taken off, so an onset
    event carries the time the sound started, reported :attr:`latency_s` later.

    The default onset method is ``flux`` (:class:`BandFlux`): on the SoundFont corpus of
    ``scripts/make_onset_corpus.py`` it holds on drums, piano and plucked strings and
    in noisy mixes, where aubio's ``energy`` fires again on decays and aubio's spectral
    methods lose everything in white noise at 12 dB SNR (``scripts/bench_audio.py``).
    aubio's methods remain selectable, with their whitening and compression settings.
    """

    def __init__(
        self,
        *,
        sr: int,
        hop: int = _ONSETS.hop,
        onset_method: str = _ONSETS.method,
        onset_threshold: float = _ONSETS.threshold,
        onset_whitening: bool = _ONSETS.whitening,
        onset_compression: float = _ONSETS.compression,
        min_ioi_s: float = _ONSETS.min_ioi_s,
        silence_db: float = _ONSETS.silence_db,
        intensity_window_s: float = _INTENSITY.window_s,
        low_percentile: float = _INTENSITY.low_percentile,
        high_percentile: float = _INTENSITY.high_percentile,
        attack_s: float = _INTENSITY.attack_s,
        release_s: float = _INTENSITY.release_s,
        n_mels: int = 40,
    ) -> None:
        if not (isinstance(sr, (int, np.integer)) and 8000 <= sr <= 192000):
            raise ConfigError(f"sr={sr!r}: expected an integer sample rate 8000..192000 (44100 or 48000 live)")
        if not (isinstance(hop, (int, np.integer)) and 64 <= hop <= 4096 and hop & (hop - 1) == 0):
            raise ConfigError(f"hop={hop!r}: expected a power of two 64..4096 (256 or 512 suit live use)")
        if onset_method not in ONSET_METHODS:
            raise ConfigError(f"onset_method={onset_method!r}: expected one of {', '.join(ONSET_METHODS)}")
        if not min_ioi_s >= 0:
            raise ConfigError(f"min_ioi_s={min_ioi_s!r} must be >= 0")
        if not 1 <= n_mels <= 256:
            raise ConfigError(f"n_mels={n_mels!r}: expected 1..256")
        self.sr = int(sr)
        self.hop = int(hop)
        self.hop_s = self.hop / self.sr
        self.onset_method = onset_method
        self.min_ioi_s = float(min_ioi_s)
        self.silence_db = float(silence_db)
        self.n_fft = 4 * self.hop  # aubio's usual window: 4 hops (21 ms at 48 kHz, hop 256)
        self._onset_threshold = float(onset_threshold)
        self._check_threshold(self._onset_threshold)
        self.onset_whitening = bool(onset_whitening)
        self._check_compression(onset_compression)
        self.onset_compression = float(onset_compression)

        # --- buffers, allocated once -------------------------------------------------
        self._pending = np.zeros(self.hop, dtype=np.float32)  # re-blocking to the hop
        # The long window of the band flux's low bins: ~93 ms (4096 samples at 44.1 / 48 kHz) for
        # pitch resolution, asymmetric (a long rise, a fall over the last n_fft/2 samples) so its
        # weight peaks where the short window's does and a new note shows as soon as in the short one.
        self.n_long = max(2 * self.n_fft, 1 << round(math.log2(0.093 * self.sr))) \
            if onset_method == "flux" else self.n_fft
        self._frame = np.zeros(self.n_long, dtype=np.float32)  # sliding window: the newest n_long samples
        self._windowed = np.zeros(self.n_fft, dtype=np.float32)
        self._window = np.hanning(self.n_fft).astype(np.float32)
        n_bins = self.n_fft // 2 + 1
        self._power = np.zeros(n_bins, dtype=np.float32)
        self._imag_sq = np.zeros(n_bins, dtype=np.float32)
        self._mel = np.zeros(n_mels, dtype=np.float32)
        # Mel basis once, here: librosa builds it with numpy only, never on the real-time path.
        import librosa

        self._mel_basis = librosa.filters.mel(sr=self.sr, n_fft=self.n_fft, n_mels=n_mels).astype(np.float32)
        # Scale so a full-scale sine reads about 0 dB in its band (hann window gain n_fft/2 ... squared).
        self._power_scale = np.float32(4.0 / (self.n_fft * self.n_fft))

        self.normalizer = AdaptiveNormalizer(
            rate_hz=self.sr / self.hop, window_s=intensity_window_s, low_pct=low_percentile,
            high_pct=high_percentile, attack_s=attack_s, release_s=release_s,
        )
        # The onset gate looks at the level of the hops the detector is still looking at.
        self._gate_hops = int(math.ceil(4.3)) + 2  # aubio's default delay is 4.3 hops
        # Beats are predicted, so they may fall in a quiet gap: gate them on the last second.
        self._beat_gate_hops = int(math.ceil(1.0 / self.hop_s))
        self._flux = None
        if onset_method == "flux":
            fall = self.n_fft // 2
            self._long_window = np.concatenate([np.hanning(2 * (self.n_long - fall))[: self.n_long - fall],
                                                np.hanning(2 * fall)[fall:]]).astype(np.float32)
            self._long_windowed = np.zeros(self.n_long, dtype=np.float32)
            # Only the bins the band flux reads (below LONG_MAX_HZ): ~190 of 2049.
            self._n_long_used = int(LONG_MAX_HZ / (self.sr / self.n_long)) + 1
            self._long_power = np.zeros(self._n_long_used, dtype=np.float32)
            self._long_imag_sq = np.zeros(self._n_long_used, dtype=np.float32)
            # Broadband noise reads the same per bin in both spectra, so the noise floors and the range
            # below the loudest band treat the long bins like the others (a sine reads 6 dB higher there).
            self._long_power_scale = np.float32(self._power_scale * float(np.sum(self._window.astype(np.float64) ** 2))
                                                / float(np.sum(self._long_window.astype(np.float64) ** 2)))
            self._flux = BandFlux(n_bins=n_bins, bin_hz=self.sr / self.n_fft, threshold=self._onset_threshold,
                                  min_ioi_frames=self._ioi_frames(), n_long_bins=self.n_long // 2 + 1,
                                  long_bin_hz=self.sr / self.n_long)
        self._time_offset_s = 0.0
        self.reset()

    @classmethod
    def from_config(cls, *, sr: int, onsets: OnsetsSection, intensity: IntensitySection) -> "StreamingAnalyzer":
        """An analyzer with a preset's ``[onsets]`` and ``[intensity]`` sections."""
        return cls(sr=sr, hop=onsets.hop, onset_method=onsets.method, onset_threshold=onsets.threshold,
                   onset_whitening=onsets.whitening, onset_compression=onsets.compression,
                   min_ioi_s=onsets.min_ioi_s, silence_db=onsets.silence_db, intensity_window_s=intensity.window_s,
                   low_percentile=intensity.low_percentile, high_percentile=intensity.high_percentile,
                   attack_s=intensity.attack_s, release_s=intensity.release_s)

    # --- configuration --------------------------------------------------------------

    @staticmethod
    def _check_threshold(threshold: float) -> None:
        if not (isinstance(threshold, (int, float)) and 0.0 < threshold <= 10.0):
            raise ConfigError(f"onset threshold={threshold!r}: expected 0 < x <= 10 (lower detects more onsets)")

    @staticmethod
    def _check_compression(compression: float) -> None:
        if not (isinstance(compression, (int, float)) and 0.0 <= compression <= 1000.0):
            raise ConfigError(f"onset compression={compression!r}: expected 0..1000 "
                              "(0 = off; 1..10 suit aubio's spectral methods)")

    def set_whitening(self, whitening: bool, compression: float) -> None:
        """Adaptive spectral whitening on/off and the log compression ``log(1 + c * |X|)`` (0 = off), live."""
        self._check_compression(compression)
        self.onset_whitening, self.onset_compression = bool(whitening), float(compression)
        if self._onset is not None:  # aubio's methods only; "flux" has its own dB bands and noise floor
            self._onset.set_awhitening(int(self.onset_whitening))
            self._onset.set_compression(self.onset_compression)

    def set_threshold(self, threshold: float) -> None:
        """Change the onset peak-picking threshold live (lower = more sensitive)."""
        self._check_threshold(threshold)
        self._onset_threshold = float(threshold)
        if self._flux is not None:
            self._flux.threshold = self._onset_threshold
        else:
            self._onset.set_threshold(self._onset_threshold)

    def _ioi_frames(self) -> int:
        return int(self.min_ioi_s / self.hop_s)

    def skip(self, n_samples: int) -> None:
        """Samples lost before the next block (a ring overflow): later events are stamped that much later.

        The detectors carry on as if the audio were continuous; the jump at the gap can
        fire one onset.  Stream time stays the input's: the lost samples still count.
        """
        if n_samples < 0:
            raise ValueError(f"n_samples={n_samples!r} must be >= 0")
        self._time_offset_s += n_samples / self.sr

    @property
    def threshold(self) -> float:
        return self._onset_threshold

    @property
    def latency_s(self) -> float:
        """How long after a sound starts its onset event comes out (the detector's look-ahead)."""
        if self._flux is not None:
            return 3 * self.hop_s  # one frame of look-ahead after a peak ~2 hops into its window
        return float(self._onset.get_delay_s()) + self.hop_s

    def configure(self, *, onsets, intensity) -> None:
        """Apply a preset's live-changeable ``[onsets]`` / ``[intensity]`` fields (hot reload).

        ``hop``, ``method`` and ``window_s`` size the detector and the history: they need a restart.
        """
        self.set_threshold(onsets.threshold)
        self.set_whitening(onsets.whitening, onsets.compression)
        self.min_ioi_s = float(onsets.min_ioi_s)
        if self._flux is not None:
            self._flux.min_ioi_frames = self._ioi_frames()
        else:
            self._onset.set_minioi_s(self.min_ioi_s)
        self.silence_db = float(onsets.silence_db)
        self.normalizer.set_percentiles(intensity.low_percentile, intensity.high_percentile)
        self.normalizer.set_smoothing(intensity.attack_s, intensity.release_s)

    # --- lifecycle --------------------------------------------------------------------

    def reset(self) -> None:
        """Start a new stream: time 0 is the next sample given to :meth:`process`."""
        if self._flux is not None:
            self._onset = None
            self._flux.reset()
        else:
            self._onset = aubio.onset(self.onset_method, self.n_fft, self.hop, self.sr)
            self._onset.set_threshold(self._onset_threshold)
            self._onset.set_awhitening(int(self.onset_whitening))
            self._onset.set_compression(self.onset_compression)
            self._onset.set_minioi_s(self.min_ioi_s)
            # aubio's own silence gate tests only the newest hop, which is already quiet
            # again when a short click is confirmed; gate on our level history instead.
            self._onset.set_silence(-math.inf)
        self._time_offset_s = 0.0
        self._tempo = aubio.tempo("default", self.n_fft, self.hop, self.sr)
        self._tempo.set_silence(-math.inf)
        self._n_pending = 0
        self._hops_done = 0
        self._frame.fill(0.0)
        self._last_audible_hop = -(10**9)
        self._desc_history = np.zeros(self._gate_hops, dtype=np.float64)
        self._desc_max = 0.0
        self.normalizer.reset()
        self.bpm = 0.0

    def warmup(self, *, duration_s: float = 1.0) -> None:
        """Run every code path once on noise, then reset: call at start, off the real-time path.

        The mel basis is built in ``__init__`` (librosa, numpy only); the streaming
        path itself uses no numba, so this only touches aubio's and numpy's first-call
        setup and page-faults the buffers in.
        """
        rng = np.random.default_rng(0)
        noise = (0.1 * rng.standard_normal(int(duration_s * self.sr))).astype(np.float32)
        noise[: self.sr // 10] *= 0.01
        self.process(noise)
        self.reset()

    # --- processing -------------------------------------------------------------------

    def process(self, block: np.ndarray) -> list[Onset | Beat | Intensity]:
        """Feed one block (any length, mono); return the events it completed, oldest first."""
        if block.ndim != 1:
            raise ConfigError(f"block shape {block.shape}: expected mono, 1-D (mix channels down first)")
        if block.dtype != np.float32:
            block = block.astype(np.float32)
        events: list[Onset | Beat | Intensity] = []
        pos, n = 0, block.shape[0]
        while pos < n:
            take = min(self.hop - self._n_pending, n - pos)
            self._pending[self._n_pending : self._n_pending + take] = block[pos : pos + take]
            self._n_pending += take
            pos += take
            if self._n_pending == self.hop:
                self._process_hop(self._pending, events)
                self._n_pending = 0
        return events

    def _process_hop(self, hop: np.ndarray, events: list) -> None:
        self._hops_done += 1
        end_s = self._hops_done * self.hop_s  # stream time at the end of this hop

        mean_sq = float(np.dot(hop, hop)) / self.hop
        level_db = 10.0 * math.log10(mean_sq) if mean_sq > 0 else -math.inf
        if level_db >= self.silence_db:
            self._last_audible_hop = self._hops_done
        quiet_hops = self._hops_done - self._last_audible_hop

        # The spectrum of the last n_fft samples: shared by the band flux and the intensity.
        frame = self._frame
        frame[: -self.hop] = frame[self.hop :]
        frame[-self.hop :] = hop
        np.multiply(frame[-self.n_fft :], self._window, out=self._windowed)
        spec = scipy.fft.rfft(self._windowed)  # float32 in, complex64 out: a quarter faster than numpy's
        np.multiply(spec.real, spec.real, out=self._power)
        np.multiply(spec.imag, spec.imag, out=self._imag_sq)
        self._power += self._imag_sq
        self._power *= self._power_scale

        # Onsets.  Strength: the detection function's peak over the hops in view,
        # relative to a slowly decaying maximum of recent peaks.
        if self._flux is not None:
            np.multiply(frame, self._long_window, out=self._long_windowed)
            spec = scipy.fft.rfft(self._long_windowed)
            spec = spec[: self._n_long_used]
            np.multiply(spec.real, spec.real, out=self._long_power)
            np.multiply(spec.imag, spec.imag, out=self._long_imag_sq)
            self._long_power += self._long_imag_sq
            self._long_power *= self._long_power_scale
            is_onset = self._flux(self._power, self._long_power)
            desc = self._flux.value
            # The peak was the previous frame, whose window ended one hop ago; its rise is
            # largest when the sound started about 1.5 hops before that window's end.
            onset_s = end_s - 2.5 * self.hop_s
        else:
            is_onset = self._onset(hop)[0] > 0
            desc = float(self._onset.get_descriptor())
            onset_s = float(self._onset.get_last_s())
        self._desc_history[self._hops_done % self._gate_hops] = desc
        if is_onset and quiet_hops < self._gate_hops:
            peak = float(self._desc_history.max())
            self._desc_max = max(peak, self._desc_max)
            strength = peak / self._desc_max if self._desc_max > 0 else 1.0
            events.append(Onset(time_s=self._time_offset_s + max(0.0, onset_s), strength=strength))
        self._desc_max *= 0.9995  # ~half-life of 1400 hops, ~7 s at 48 kHz / 256

        # Beats and tempo.
        if self._tempo(hop)[0] > 0 and quiet_hops < self._beat_gate_hops:
            self.bpm = float(self._tempo.get_bpm())
            events.append(Beat(time_s=self._time_offset_s + max(0.0, float(self._tempo.get_last_s())), bpm=self.bpm))

        # Intensity: mean mel power in dB over the last n_fft samples, centered there.
        np.dot(self._mel_basis, self._power, out=self._mel)
        self._mel += 1e-12  # -120 dB floor, keeps log10 finite
        np.log10(self._mel, out=self._mel)
        mel_db = 10.0 * float(np.add.reduce(self._mel)) / self._mel.size
        value = self.normalizer.update(mel_db if level_db >= self.silence_db else -math.inf)
        center_s = end_s - self.n_fft / 2 / self.sr
        if center_s >= 0.0:  # the grid starts at 0: hop_s, 2 hop_s, ... (no frame centered before the stream)
            events.append(Intensity(time_s=self._time_offset_s + center_s, value=value))

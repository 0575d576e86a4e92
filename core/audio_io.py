"""Reading audio files: wav/flac/ogg/mp3 into float32 at a chosen rate.

soundfile (libsndfile) reads wav, flac, ogg and, with libsndfile >= 1.1, mp3;
anything it cannot open goes through librosa's audioread fallback (ffmpeg).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from core.errors import ConfigError, InputError

__all__ = ["load_audio", "resample"]

log = logging.getLogger(__name__)

_FORMATS = "wav, flac, ogg, mp3"


def resample(y: np.ndarray, *, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample along the first axis (soxr, high quality); float32 out."""
    if sr_in == sr_out:
        return np.ascontiguousarray(y, dtype=np.float32)
    import soxr

    return np.ascontiguousarray(soxr.resample(y, sr_in, sr_out, quality="HQ"), dtype=np.float32)


def _read_soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    y, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (frames, channels)
    return y, int(sr)


def _read_audioread(path: Path) -> tuple[np.ndarray, int]:
    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns that audioread is deprecated; it is our fallback
        y, sr = librosa.load(str(path), sr=None, mono=False)
    y = np.atleast_2d(y).T  # librosa gives (channels, frames)
    return np.ascontiguousarray(y, dtype=np.float32), int(sr)


def check_rate(sr: int | None) -> None:
    """A requested sample rate (None: the file's own) is an integer in 1 kHz..384 kHz, or ConfigError."""
    if sr is not None and not (isinstance(sr, (int, np.integer)) and 1000 <= sr <= 384000):
        raise ConfigError(f"sr={sr!r}: expected an integer sample rate such as 44100 or 48000")


def load_audio(path: str | Path, *, sr: int | None = None, mono: bool = True) -> tuple[np.ndarray, int]:
    """Read an audio file.

    Returns ``(y, sr)``: ``y`` is float32, shape ``(frames,)`` when ``mono`` (channels
    averaged) else ``(frames, channels)``; resampled to ``sr`` when given, else at the
    file's own rate.  A missing, empty or unreadable file raises
    :class:`~core.errors.InputError` naming the file and the fix.
    """
    check_rate(sr)
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"audio file not found: {str(p)!r}; check the path (formats: {_FORMATS})")
    if p.is_dir():
        raise InputError(f"{str(p)!r} is a folder; give an audio file ({_FORMATS})")
    try:
        y, file_sr = _read_soundfile(p)
    except Exception as sf_exc:  # libsndfile raises its own types; any failure means "try audioread"
        log.debug("soundfile could not read %s (%s); trying audioread", p, sf_exc)
        try:
            y, file_sr = _read_audioread(p)
        except Exception as ar_exc:
            raise InputError(
                f"cannot read audio file {str(p)!r}: {sf_exc}; fallback decoder: {str(ar_exc) or type(ar_exc).__name__}. "
                f"Supported: {_FORMATS}; convert it with e.g. `ffmpeg -i {p.name} out.wav`"
            ) from ar_exc
    if y.shape[0] == 0:
        raise InputError(f"audio file {str(p)!r} has no samples; record or export it again")
    if mono:
        y = y.mean(axis=1) if y.shape[1] > 1 else y[:, 0]
    if sr is not None and sr != file_sr:
        log.info("resampling %s from %d Hz to %d Hz", p.name, file_sr, sr)
        y = resample(y, sr_in=file_sr, sr_out=sr)
        file_sr = int(sr)
    return np.ascontiguousarray(y, dtype=np.float32), file_sr

"""Reading real files in each format, resampling, and the errors for bad input."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from core.audio_io import load_audio
from core.errors import InputError

SR = 44100


def _tone(sr: int = SR, seconds: float = 1.0, freq_hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def _peak_hz(y: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    return float(np.argmax(spec) * sr / y.size)


@pytest.mark.parametrize("ext,subtype", [("wav", "PCM_16"), ("wav", "FLOAT"), ("flac", "PCM_24"), ("ogg", "VORBIS")])
def test_reads_formats(tmp_path, ext, subtype):
    y = _tone()
    path = tmp_path / f"tone.{ext}"
    sf.write(path, y, SR, subtype=subtype)
    out, sr = load_audio(path)
    assert sr == SR and out.dtype == np.float32 and out.ndim == 1
    assert abs(out.size - y.size) <= 2048  # vorbis may pad a little
    assert _peak_hz(out, sr) == pytest.approx(440.0, abs=2.0)
    assert np.sqrt(np.mean(out**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


def test_stereo_to_mono_and_keep_channels(tmp_path):
    left, right = _tone(freq_hz=440.0), np.zeros(SR, dtype=np.float32)
    path = tmp_path / "st.wav"
    sf.write(path, np.stack([left, right], axis=1), SR, subtype="FLOAT")
    mono, _ = load_audio(path)
    np.testing.assert_allclose(mono, left / 2, atol=1e-6)
    both, _ = load_audio(path, mono=False)
    assert both.shape == (SR, 2)


def test_resamples_to_requested_rate(tmp_path):
    path = tmp_path / "t22k.wav"
    sf.write(path, _tone(sr=22050, freq_hz=1000.0), 22050)
    y, sr = load_audio(path, sr=48000)
    assert sr == 48000 and abs(y.size - 48000) <= 1
    assert _peak_hz(y, sr) == pytest.approx(1000.0, abs=2.0)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg to make mp3/m4a files")
@pytest.mark.parametrize("ext", ["mp3", "m4a"])  # m4a: libsndfile cannot; goes through audioread
def test_compressed_files(tmp_path, ext):
    src = tmp_path / "src.wav"
    sf.write(src, _tone(freq_hz=880.0), SR)
    out = tmp_path / f"tone.{ext}"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), str(out)], check=True)
    y, sr = load_audio(out)
    assert sr == SR
    assert y.size == pytest.approx(SR, abs=3000)  # encoder padding
    assert _peak_hz(y, sr) == pytest.approx(880.0, abs=3.0)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(InputError, match=r"not found: .*nope\.wav.*check the path"):
        load_audio(tmp_path / "nope.wav")


def test_garbage_file_says_how_to_fix(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio")
    with pytest.raises(InputError, match=r"cannot read audio file .*notes\.wav.*ffmpeg"):
        load_audio(path)


def test_folder_and_empty_file(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        load_audio(tmp_path)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), SR)
    with pytest.raises(InputError, match="no samples"):
        load_audio(empty)

"""`m2v analyze` end to end on real files: JSON contents, plot file, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.analyzer import StreamingAnalyzer
from core.events import Onset
from core.synth import add_noise, generate_drum_pattern
from live.cli import main

ROOT = Path(__file__).resolve().parents[1]
SR = 44100


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    """A 10 s drum loop at 22.05 kHz in FLAC (so the command must resample), with noise."""
    y, onsets = generate_drum_pattern(bpm=120, duration_s=10.0, sr=22050)
    y = add_noise(y, snr_db=30.0)
    path = tmp_path_factory.mktemp("audio") / "loop.flac"
    sf.write(path, y, 22050)
    return path, y, onsets


@pytest.fixture(scope="module")
def analysis(song, tmp_path_factory):
    path, _, _ = song
    out = tmp_path_factory.mktemp("out")
    lrc = out / "words.lrc"
    lrc.write_text("[ti:loop]\n[00:02.00]first line\n[00:06.50][00:01.00]second line\n")
    rc = main(["analyze", str(path), "--lyrics", str(lrc), "--json", str(out / "a.json"),
               "--plot", str(out / "a.png")])
    assert rc == 0
    return json.loads((out / "a.json").read_text()), out / "a.png"


def test_json_has_every_field(analysis):
    result, _ = analysis
    for key in ("sample_rate", "duration", "onsets", "beats", "tempo_bpm", "segments", "intensity", "cues"):
        assert key in result
    assert result["sample_rate"] == SR  # 22.05 kHz file resampled to the live rate
    assert result["duration"] == pytest.approx(10.0, abs=1e-3)
    assert result["tempo_bpm"] == pytest.approx(120.0, abs=2.0)
    assert result["cues"] == [{"time": 1.0, "text": "second line"}, {"time": 2.0, "text": "first line"},
                              {"time": 6.5, "text": "second line"}]
    n_hops = int(result["duration"] * SR) // 256
    assert abs(len(result["intensity"]["values"]) - n_hops) <= 2
    assert result["intensity"]["hop_s"] == pytest.approx(256 / SR)


def test_onsets_are_the_streaming_analyzers(song, analysis):
    path, _, truth = song
    result, _ = analysis
    from core.audio_io import load_audio

    y, sr = load_audio(path, sr=SR)
    analyzer = StreamingAnalyzer(sr=sr)
    expect = [e.time_s for i in range(0, y.size, 4096) for e in analyzer.process(y[i : i + 4096])
              if isinstance(e, Onset)]
    np.testing.assert_allclose(result["onsets"], expect, atol=1e-4)  # JSON rounds to 0.1 ms
    found = np.array(result["onsets"])
    assert all(np.min(np.abs(found - t)) < 0.02 for t in truth)


def test_segments_tile_and_carry_iterations(analysis):
    result, _ = analysis
    segs = result["segments"]
    assert segs[0]["start"] == 0.0 and segs[-1]["end"] == pytest.approx(result["duration"], abs=1e-3)
    assert all(a["end"] == b["start"] for a, b in zip(segs[:-1], segs[1:]))
    assert all(s["iterations"] >= 1 for s in segs)
    assert sum(s["iterations"] for s in segs) == result["total_iterations"]


def test_plot_is_a_png_with_content(analysis):
    _, png = analysis
    import matplotlib.image

    img = matplotlib.image.imread(png)
    assert img.shape[0] > 500 and img.shape[1] > 1000
    assert img[..., :3].std() > 0.05  # not a blank canvas


def test_options_change_segments(song, tmp_path):
    path, _, _ = song
    out = tmp_path / "o.json"
    assert main(["analyze", str(path), "--json", str(out), "--segments", "onsets", "--rate", "script",
                 "--hop", "512"]) == 0
    result = json.loads(out.read_text())
    starts = [s["start"] for s in result["segments"][1:]]
    assert set(starts) <= set(result["onsets"])  # cut exactly at the streaming onsets ...
    assert len(starts) >= len(result["onsets"]) - 2  # ... all of them but one at 0 or the very end
    assert result["intensity"]["hop_s"] == pytest.approx(512 / SR)
    for s in result["segments"]:
        expect = (10 + 110 * s["intensity_max"]) * (s["end"] - s["start"])
        assert s["iterations"] >= 1 and abs(s["iterations"] - expect) < 30  # running-total rounding


def test_summary_without_json(song, capsys):
    path, _, _ = song
    assert main(["analyze", str(path)]) == 0
    out = capsys.readouterr().out
    assert "BPM" in out and "onsets" in out and "segments" in out


def test_missing_file_is_a_clean_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "live.cli", "analyze", str(tmp_path / "gone.mp3")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Error: audio file not found" in proc.stderr and "gone.mp3" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_lyrics_fail_before_analysis(song, tmp_path, capsys):
    path, _, _ = song
    bad = tmp_path / "bad.lrc"
    bad.write_text("[00:01.00]ok\nno timestamp\n")
    assert main(["analyze", str(path), "--lyrics", str(bad)]) == 2
    assert "bad.lrc line 2" in capsys.readouterr().err


def test_unwritable_output_folder(song, tmp_path, capsys):
    path, _, _ = song
    assert main(["analyze", str(path), "--json", str(tmp_path / "no" / "such" / "a.json")]) == 2
    assert "does not exist" in capsys.readouterr().err

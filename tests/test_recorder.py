import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from core.errors import OutputError
from live.recorder import Recorder

ROOT = Path(__file__).resolve().parents[1]
SR = 48000


def ffprobe(path):
    res = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-of", "json",
         "-show_entries", "stream=codec_type,codec_name,nb_read_frames,width,height,r_frame_rate",
         "-show_entries", "format=duration", str(path)],
        capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def level_frame(level, h=120, w=160):
    return np.full((h, w, 3), level, np.uint8)


def decoded_levels(path):
    with av.open(str(path)) as c:
        return [float(f.to_ndarray(format="gray").mean()) for f in c.decode(video=0)]


def video_span_s(path):
    """First frame's start to last frame's end, from the decoded timestamps."""
    with av.open(str(path)) as c:
        times = [f.time for f in c.decode(video=0)]
    step = times[1] - times[0]
    assert np.allclose(np.diff(times), step, atol=1.5e-3), "not a constant frame rate"  # mkv: 1 ms ticks
    return times[-1] - times[0] + step


def decoded_audio(path):
    with av.open(str(path)) as c:
        return np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_three_seconds_of_frames_and_sine(tmp_path, suffix):
    fps = 30
    path = tmp_path / f"out{suffix}"
    rec = Recorder(path, fps=fps, sr=SR, queue_s=10)
    rec.start()
    sine = np.sin(2 * np.pi * 440 * np.arange(3 * SR) / SR).astype(np.float32)
    for i in range(3 * fps):
        rec.write_frame(level_frame(40 + 2 * i), t_s=i / fps)
        a, b = i * SR // fps, (i + 1) * SR // fps
        rec.write_audio(sine[a:b], t_s=a / SR)
    rec.stop()
    assert rec.error is None and rec.dropped == 0

    info = ffprobe(path)
    kinds = sorted((s["codec_type"], s["codec_name"]) for s in info["streams"])
    assert kinds == [("audio", "aac"), ("video", "h264")]
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    # The container's duration includes AAC's priming samples (~21 ms): within a frame.
    assert float(info["format"]["duration"]) == pytest.approx(3.0, abs=1 / fps)
    duration = video_span_s(path)
    assert duration == pytest.approx(3.0, abs=2e-3)
    assert int(video["nb_read_frames"]) == round(duration * fps) == rec.frames == 90
    assert video["r_frame_rate"] == "30/1"
    # Every frame is in its slot: decoded brightness follows the written ramp.
    levels = decoded_levels(path)
    np.testing.assert_allclose(levels, [40 + 2 * i for i in range(90)], atol=2.5)
    # The sound is the sine (AAC adds a priming delay of at most a few ms).
    audio = decoded_audio(path)
    spectrum = np.abs(np.fft.rfft(audio[:SR]))
    assert np.argmax(spectrum) == pytest.approx(440, abs=1)
    seg = audio[SR:2 * SR]
    best = max(np.dot(seg, sine[SR - lag:2 * SR - lag]) for lag in range(0, 2048))
    corr = best / (np.linalg.norm(seg) * np.linalg.norm(sine[SR:2 * SR]))
    assert corr > 0.99
    # ffmpeg's AAC encoder lands about 0.5 dB low on a pure tone.
    assert np.sqrt(np.mean(seg ** 2)) == pytest.approx(np.sqrt(0.5), rel=0.1)


@pytest.mark.slow
def test_constant_rate_from_an_irregular_display(tmp_path):
    """A 60 Hz display with a 0.2 s stall still gives 30 fps, each slot the newest frame shown."""
    fps = 30
    path = tmp_path / "jitter.mp4"
    rec = Recorder(path, fps=fps, sr=None, queue_s=10)
    rec.start()
    shown = [i / 60 for i in range(60) if not 30 <= i < 42]  # stall from 0.5 s to 0.7 s
    level = {t: 20 + 3 * k for k, t in enumerate(shown)}
    for t in shown:
        rec.write_frame(level_frame(level[t]), t_s=t)
    rec.stop()
    assert rec.frames == 30  # last frame at 59/60 s, so the video is 1 s long
    expected = []
    for n in range(30):
        newest = max(t for t in shown if t <= n / fps + 1e-9)
        expected.append(level[newest])
    np.testing.assert_allclose(decoded_levels(path), expected, atol=2.5)
    assert rec.counters["frames_duplicated"] > 0 and rec.counters["frames_skipped"] > 0


@pytest.mark.slow
def test_audio_gaps_become_silence_and_keep_sync(tmp_path):
    path = tmp_path / "gap.mp4"
    rec = Recorder(path, fps=10, sr=SR, queue_s=10)
    rec.start()
    ones = np.full(SR // 10, 0.5, np.float32)
    for i in range(20):
        rec.write_frame(level_frame(100), t_s=i / 10)
        if not 5 <= i < 10:  # 0.5 s of audio lost between 0.5 s and 1.0 s
            rec.write_audio(ones, t_s=i / 10)
    rec.stop()
    assert rec.counters["audio_gap_samples"] == SR // 2
    audio = np.abs(decoded_audio(path))
    assert audio[int(0.6 * SR):int(0.9 * SR)].max() < 0.05
    assert audio[int(1.2 * SR):int(1.8 * SR)].mean() > 0.4


def test_bad_paths_raise_output_error(tmp_path):
    with pytest.raises(OutputError, match="unknown extension '.avi'.*.mkv.*.mp4"):
        Recorder(tmp_path / "x.avi")
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="cannot record"):
        Recorder(tmp_path / "file" / "x.mp4")


KILL_SCRIPT = r"""
import os, signal, sys, time
import numpy as np
from live.recorder import Recorder
fps, sr = 30, 48000
rec = Recorder(sys.argv[1], fps=fps, sr=sr)
rec.start()
t0 = time.perf_counter()
i = 0
while time.perf_counter() - t0 < 3.0:
    rec.write_frame(np.full((96, 128, 3), (i * 7) % 256, np.uint8), t_s=i / fps)
    rec.write_audio(np.zeros(sr // fps, np.float32), t_s=i / fps)
    i += 1
    time.sleep(max(0.0, t0 + i / fps - time.perf_counter()))
os.kill(os.getpid(), signal.SIGKILL)  # no stop(), no trailer
"""


@pytest.mark.slow
def test_a_killed_writer_leaves_a_playable_file(tmp_path):
    path = tmp_path / "killed.mp4"
    res = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(path)], cwd=ROOT, timeout=60)
    assert res.returncode == -9
    info = ffprobe(path)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    assert video["codec_name"] == "h264"
    # 3 s were written with a keyframe (and fragment) every second: at most ~1 s is lost.
    assert int(video["nb_read_frames"]) >= 1.9 * 30
    res = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


FULL_DISK_SCRIPT = r"""
import json, resource, signal, sys, time
import numpy as np
from live.recorder import Recorder
# A 200 KB file-size limit stands in for a full disk: writes past it fail with EFBIG.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
rng = np.random.default_rng(0)
rec = Recorder(sys.argv[1], fps=30, sr=48000, keyframe_s=0.2)
rec.start()
t0 = time.perf_counter()
for i in range(150):  # 5 s of incompressible noise: far beyond 200 KB
    rec.write_frame(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8), t_s=i / 30)
    rec.write_audio(rng.standard_normal(1600).astype(np.float32) * 0.1, t_s=i / 30)
    time.sleep(0.005)
longest_call = 0.0
for i in range(150, 200):  # the show goes on: writes return at once after the failure
    t = time.perf_counter()
    rec.write_frame(np.zeros((128, 128, 3), np.uint8), t_s=i / 30)
    longest_call = max(longest_call, time.perf_counter() - t)
rec.stop()
print(json.dumps({"error": str(rec.error), "type": type(rec.error).__name__, "failed": rec.failed,
                  "hud": rec.check(), "longest_call_s": longest_call, "frames": rec.frames}))
"""


@pytest.mark.slow
def test_full_disk_stops_recording_and_the_process_goes_on(tmp_path):
    path = tmp_path / "full.mp4"
    res = subprocess.run([sys.executable, "-c", FULL_DISK_SCRIPT, str(path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["failed"] and out["type"] == "OutputError"
    assert "disk is full" in out["error"] and out["hud"].startswith("REC stopped")
    assert out["longest_call_s"] < 0.05  # a queue put: far below a 60 Hz frame even on a loaded machine
    assert path.stat().st_size <= 200_000

"""NDI for real: m2v's NDI output sends, a receiver in another process receives over loopback.

The receiver checks the frame size, the known test pattern (NDI's codec is
lossy: colours within a tolerance) and the rate.  Discovery goes by unicast to
127.0.0.1 (an NDI config file): the test machine has no multicast route, and
venue networks often block mDNS too (see live/outputs/ndi.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pytest

pytest.importorskip("cyndilib")

from live.outputs.ndi import NdiOutput  # noqa: E402

SIZE = (320, 180)
FPS = 30.0
FRAMES = 30

# Both receivers find m2v's source by name, then read from it (each in its own process).
FIND_SOURCE = r"""
import time
from cyndilib.finder import Finder


def find_source(name, deadline):
    finder = Finder()
    finder.open()
    source = None
    while source is None and time.monotonic() < deadline:
        finder.wait_for_sources(0.5)
        source = next((finder.get_source(n) for n in finder.get_source_names() if n.endswith(f"({name})")), None)
    return finder, source
"""

RECEIVER = r"""
import json, sys, time
import numpy as np
from cyndilib.receiver import Receiver, ReceiveFrameType
from cyndilib.video_frame import VideoRecvFrame
from cyndilib.wrapper import RecvBandwidth, RecvColorFormat

name, frames_wanted, timeout_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + timeout_s
finder, source = find_source(name, deadline)
if source is None:
    print(json.dumps({"error": "source not found", "names": finder.get_source_names()}))
    sys.exit(0)
receiver = Receiver(color_format=RecvColorFormat.RGBX_RGBA, bandwidth=RecvBandwidth.highest)
vf = VideoRecvFrame()
receiver.set_video_frame(vf)
receiver.set_source(source)
frames = []
counted = []  # (time, frames NDI's receiver has taken in so far)
while len(frames) < frames_wanted and time.monotonic() < deadline:
    if receiver.receive(ReceiveFrameType.recv_video, 200) & ReceiveFrameType.recv_video:
        t = time.perf_counter()
        w, h = vf.get_resolution()
        buf = np.empty(vf.get_data_size(), np.uint8)
        vf.fill_p_data(buf)
        img = buf.reshape(h, w, 4)[..., :3].astype(float)
        cx, cy = w // 2, h // 2
        quads = [img[y0:y1, x0:x1].reshape(-1, 3).mean(0).tolist() for (y0, y1, x0, x1) in
                 ((8, cy - 8, cx - 82, cx - 8), (8, cy - 8, cx + 8, cx + 82),
                  (cy + 8, h - 8, cx - 82, cx - 8), (cy + 8, h - 8, cx + 8, cx + 82))]
        bars = max(float(img[:, : cx - 95].max()), float(img[:, cx + 95:].max()))
        frames.append({"t": t, "w": w, "h": h, "fourcc": str(vf.get_fourcc()), "quads": quads, "bars": bars})
        receiver.get_performance_data()
        counted.append((time.perf_counter(), receiver.video_stats["frames_total"], receiver.video_stats["frames_dropped"]))
receiver.disconnect()
finder.close()
print(json.dumps({"frames": frames, "counted": counted}))
"""


def quadrants(h=64, w=64):
    f = np.zeros((h, w, 3), np.uint8)
    f[: h // 2, : w // 2] = (255, 0, 0)
    f[: h // 2, w // 2:] = (0, 255, 0)
    f[h // 2:, : w // 2] = (0, 0, 255)
    f[h // 2:, w // 2:] = (255, 255, 255)
    return f


AUDIO_RECEIVER = r"""
import json, sys, time
import numpy as np
from cyndilib.audio_frame import AudioRecvFrame
from cyndilib.receiver import Receiver, ReceiveFrameType
from cyndilib.wrapper import RecvBandwidth, RecvColorFormat

name, blocks_wanted, timeout_s, tone_hz = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
deadline = time.monotonic() + timeout_s
finder, source = find_source(name, deadline)
receiver = Receiver(color_format=RecvColorFormat.RGBX_RGBA, bandwidth=RecvBandwidth.highest)
af = AudioRecvFrame()
receiver.set_audio_frame(af)
receiver.set_source(source)
blocks, counted = [], []
while len(blocks) < blocks_wanted and time.monotonic() < deadline:
    if receiver.receive(ReceiveFrameType.recv_audio, 200) & ReceiveFrameType.recv_audio:
        data, _ = af.get_all_read_data()
        for ch in np.split(data, data.shape[1] // 512, axis=1) if data.shape[1] % 512 == 0 else [data]:
            y = ch[0].astype(np.float64)
            t = np.arange(y.size) / af.sample_rate
            basis = np.stack([np.sin(2 * np.pi * tone_hz * t), np.cos(2 * np.pi * tone_hz * t)])
            coef = np.linalg.lstsq(basis.T, y, rcond=None)[0]  # the tone's amplitude and phase in this block
            residual = y - basis.T @ coef
            blocks.append({"sr": af.sample_rate, "channels": int(data.shape[0]), "n": int(y.size),
                           "amp": float(np.hypot(*coef)), "residual_rms": float(np.sqrt(np.mean(residual ** 2)))})
        receiver.get_performance_data()
        counted.append((time.perf_counter(), receiver.audio_stats["frames_total"], receiver.audio_stats["frames_dropped"]))
receiver.disconnect()
finder.close()
print(json.dumps({"blocks": blocks, "counted": counted}))
"""


@pytest.fixture
def ndi_loopback(tmp_path, monkeypatch):
    """NDI discovery by unicast to this machine, for this process and the receiver's."""
    (tmp_path / "ndi-config.v1.json").write_text(json.dumps({"ndi": {"networks": {"ips": "127.0.0.1"}}}))
    monkeypatch.setenv("NDI_CONFIG_DIR", str(tmp_path))
    return tmp_path


@pytest.mark.slow
def test_ndi_send_and_receive_over_loopback(ndi_loopback):
    name = f"m2v-test-{uuid.uuid4().hex[:8]}"
    out = NdiOutput(name, size_wh=SIZE, fps=FPS)
    out.start()
    stop = threading.Event()

    def display():  # the display loop: 60 Hz, twice the output's rate
        frame = quadrants()
        while not stop.wait(1 / 60):
            out.offer(frame)

    feeder = threading.Thread(target=display, daemon=True)
    feeder.start()
    try:
        proc = subprocess.run([sys.executable, "-c", FIND_SOURCE + RECEIVER, name, str(FRAMES), "60"], capture_output=True,
                              text=True, timeout=120, env=os.environ.copy())
    finally:
        stop.set()
        feeder.join()
        out.stop()
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "error" not in result, result
    frames = result["frames"]
    assert len(frames) == FRAMES
    assert out.source_name is None  # closed at stop
    assert out.counters["errors"] == 0 and out.counters["sent"] >= FRAMES
    for f in frames:
        assert (f["w"], f["h"]) == SIZE
        red, green, blue, white = (np.array(q) for q in f["quads"])
        # NDI's codec is lossy (4:2:2 chroma): colours within 20 of 255 levels
        assert np.allclose(red, (255, 0, 0), atol=20), red
        assert np.allclose(green, (0, 255, 0), atol=20), green
        assert np.allclose(blue, (0, 0, 255), atol=20), blue
        assert np.allclose(white, (255, 255, 255), atol=20), white
        assert f["bars"] <= 20  # 64x64 letterboxed into 320x180: black bars left and right
    # The rate at which NDI's receiver took frames in (its own count), after the connection settles.
    # (cyndilib's capture call hands a Python loop only some of them on a loaded 2-core machine;
    # NDI's statistics count every frame that arrived.)
    (t0, n0, _), (t1, n1, dropped) = result["counted"][5], result["counted"][-1]
    rate = (n1 - n0) / (t1 - t0)
    print(f"NDI: {len(frames)} frames decoded at {SIZE}, receiver took in {rate:.1f} fps")
    assert FPS * 0.7 <= rate <= FPS * 1.15, rate
    assert dropped == 0


@pytest.mark.slow
def test_ndi_carries_the_input_audio(ndi_loopback):
    name = f"m2v-test-{uuid.uuid4().hex[:8]}"
    sr, block, tone_hz = 48000, 512, 440.0
    out = NdiOutput(name, size_wh=(64, 64), fps=FPS, audio_sr=sr)
    out.start()
    stop = threading.Event()

    def show():  # the display offers frames; the feature worker hands over audio blocks in real time
        frame, k, t0 = quadrants(), 0, time.perf_counter()
        while not stop.is_set():
            out.offer(frame)
            t = (k * block + np.arange(block)) / sr
            out.write_audio((0.5 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32), t_s=k * block / sr)
            k += 1
            stop.wait(max(0.0, t0 + k * block / sr - time.perf_counter()))

    feeder = threading.Thread(target=show, daemon=True)
    feeder.start()
    try:
        proc = subprocess.run([sys.executable, "-c", FIND_SOURCE + AUDIO_RECEIVER, name, "100", "60", str(tone_hz)],
                              capture_output=True, text=True, timeout=120, env=os.environ.copy())
    finally:
        stop.set()
        feeder.join()
        out.stop()
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    blocks = result["blocks"]
    assert len(blocks) >= 100
    for b in blocks:
        assert (b["sr"], b["channels"], b["n"]) == (sr, 1, block)
        assert abs(b["amp"] - 0.5) < 0.01 and b["residual_rms"] < 0.005  # the 440-Hz tone, nothing else
    (t0, n0, _), (t1, n1, dropped) = result["counted"][5], result["counted"][-1]
    rate = (n1 - n0) / (t1 - t0)  # NDI audio frames a second: one per 512-sample block, 93.75/s
    print(f"NDI audio: {len(blocks)} blocks of {block} at {sr} Hz, receiver took in {rate:.1f} frames/s")
    assert 0.7 * sr / block <= rate <= 1.15 * sr / block, rate
    assert dropped == 0 and out.counters["errors"] == 0 and out.counters["audio_sent"] >= 100

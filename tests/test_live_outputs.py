"""``m2v live`` with outputs: they get what the screen shows, report failures, and the show goes on."""

from __future__ import annotations

import http.client
import io
import socket
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from live.app import LiveApp, LiveOptions
from live.outputs.base import Output
from live.outputs.preview import BOUNDARY


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clicks(tmp_path, seconds: float) -> str:
    from core.synth import generate_click_track

    y, _ = generate_click_track(bpm=120, duration_s=seconds, sr=48000)
    wav = tmp_path / "clicks.wav"
    sf.write(wav, y, 48000)
    return str(wav)


class Catcher(Output):
    """An output that keeps what it is sent."""

    kind = "catch"

    def __init__(self):
        super().__init__("all", fps=240)
        self.received: list[bytes] = []

    def open(self, size_wh):
        pass

    def send(self, frame):
        self.received.append(frame.tobytes())


def _watch_preview(port: int, jpegs: list[bytes], done: threading.Event) -> threading.Thread:
    """A viewer that connects once the show's preview is up and keeps two JPEGs."""
    def go():
        deadline = time.monotonic() + 120
        while not done.is_set() and time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", "/stream.mjpg")
                resp = conn.getresponse()
            except OSError:
                done.wait(0.1)  # the models load before the outputs start
                continue
            while len(jpegs) < 2:
                line = resp.fp.readline()
                if line.strip() != f"--{BOUNDARY}".encode():
                    continue
                headers = dict(resp.fp.readline().decode().strip().split(": ", 1) for _ in range(2))
                resp.fp.readline()
                jpegs.append(resp.fp.read(int(headers["Content-Length"])))
            conn.close()
            return

    th = threading.Thread(target=go, daemon=True)
    th.start()
    return th


@pytest.mark.slow
def test_outputs_get_the_shown_frames_and_a_failing_output_does_not_end_the_show(tmp_path, m2v_home):
    port = _free_tcp_port()
    app = LiveApp(LiveOptions(input=_clicks(tmp_path, 5.0), preset="tiny", headless=True, osc_port=0,
                              offline=True, outputs=["v4l2:/dev/video97"], preview_port=port))
    catcher = Catcher()
    app.outputs.outputs.append(catcher)
    shown: set[bytes] = set()
    huds: list[dict] = []
    show = app.display.show

    def spy(frame, hud=None):
        shown.add(frame.tobytes())  # what the screen shows; the HUD is drawn over it apart
        huds.append(dict(hud))
        show(frame, hud)

    app.display.show = spy
    jpegs: list[bytes] = []
    done = threading.Event()
    viewer = _watch_preview(port, jpegs, done)
    stats = app.run()
    done.set()
    viewer.join(10)

    assert stats["run_s"] > 5.0  # the whole file played
    assert len(catcher.received) > 20
    assert set(catcher.received) <= shown  # post effects, no HUD: exactly frames the screen showed
    v4l2 = stats["outputs"]["v4l2:/dev/video97"]
    assert v4l2["sent"] == 0 and v4l2["errors"] >= 1 and "modprobe v4l2loopback" in v4l2["error"]
    assert any("output v4l2:/dev/video97" in e for e in stats["errors"])
    assert any("output v4l2:/dev/video97" in (h["error"] or "") for h in huds)
    assert any((h["outputs"] or {}).get("catch:all", "").endswith("dropped") for h in huds)
    preview = stats["outputs"][f"preview:127.0.0.1:{port}"]
    assert preview["errors"] == 0 and preview["sent"] >= 2
    assert len(jpegs) == 2
    for jpeg in jpegs:
        img = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
        assert img.shape == (64, 64, 3)  # the tiny preset's picture

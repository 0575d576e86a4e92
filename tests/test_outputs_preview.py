"""The MJPEG preview, read by a real HTTP client: multipart parts decode to the known pattern, at most 10 fps."""

from __future__ import annotations

import http.client
import io
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

from live.outputs.preview import BOUNDARY, MAX_FPS, MjpegPreview, fit_within

WAIT_S = 10.0


def halves(left, right, h=128, w=256) -> np.ndarray:
    f = np.zeros((h, w, 3), np.uint8)
    f[:, : w // 2] = left
    f[:, w // 2:] = right
    return f


class Feeder:
    """The display loop's side: offers the current pattern at ~60 Hz until stopped."""

    def __init__(self, preview):
        self.preview = preview
        self.frame = halves((255, 0, 0), (0, 0, 255))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.wait(1 / 60):
            self.preview.offer(self.frame)

    def close(self):
        self.stop.set()
        self.thread.join()


@pytest.fixture
def preview():
    p = MjpegPreview(port=0, max_side=512, quality=85)
    p.start()
    feeder = Feeder(p)
    yield p, feeder
    feeder.close()
    p.stop()


def read_parts(resp, n: int) -> list[tuple[float, bytes]]:
    """The first ``n`` JPEG parts of a multipart/x-mixed-replace stream, with their arrival times."""
    parts = []
    while len(parts) < n:
        line = resp.fp.readline()
        if not line.strip():
            continue
        assert line.strip() == f"--{BOUNDARY}".encode(), line
        headers = {}
        while (h := resp.fp.readline().strip()):
            k, v = h.decode().split(":", 1)
            headers[k.lower()] = v.strip()
        assert headers["content-type"] == "image/jpeg"
        parts.append((time.perf_counter(), resp.fp.read(int(headers["content-length"]))))
    return parts


def mean_rgb(img: np.ndarray, x0, x1) -> np.ndarray:
    return img[8:-8, x0:x1].reshape(-1, 3).mean(axis=0)


def test_stream_decodes_to_the_pattern_and_follows_it(preview):
    p, feeder = preview
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=WAIT_S)
    conn.request("GET", "/stream.mjpg")
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Type") == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
    first = read_parts(resp, 2)
    for _, jpeg in first:
        img = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")).astype(float)
        assert img.shape == (128, 256, 3)
        assert np.allclose(mean_rgb(img, 8, 120), (255, 0, 0), atol=12)
        assert np.allclose(mean_rgb(img, 136, 248), (0, 0, 255), atol=12)
    feeder.frame = halves((0, 255, 0), (255, 255, 255))  # the picture changes: the stream follows
    deadline = time.monotonic() + WAIT_S
    while True:
        (_, jpeg), = read_parts(resp, 1)
        img = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")).astype(float)
        if np.allclose(mean_rgb(img, 8, 120), (0, 255, 0), atol=12):
            assert np.allclose(mean_rgb(img, 136, 248), (255, 255, 255), atol=12)
            break
        assert time.monotonic() < deadline, "the stream never showed the new picture"
    conn.close()
    assert p.counters["errors"] == 0


def test_stream_runs_at_most_10_fps(preview):
    p, _ = preview
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=WAIT_S)
    conn.request("GET", "/stream.mjpg")
    resp = conn.getresponse()
    parts = read_parts(resp, 8)
    conn.close()
    span_s = parts[-1][0] - parts[1][0]  # from the second part: the first may be one encoded before we came
    assert span_s >= 6 / MAX_FPS * 0.9


def test_frame_and_page(preview):
    p, _ = preview
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=WAIT_S)
    conn.request("GET", "/frame.jpg")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type") == "image/jpeg"
    img = np.asarray(Image.open(io.BytesIO(resp.read())).convert("RGB")).astype(float)
    assert np.allclose(mean_rgb(img, 8, 120), (255, 0, 0), atol=12)
    conn.close()
    _, feeder = preview
    new = halves((0, 255, 0), (255, 255, 255))
    feeder.frame = new  # nobody streams, yet /frame.jpg answers with the picture shown now
    frame, version = p.frames.get()
    while frame is not new:  # until the display has offered it
        frame, version = p.frames.wait_newer(version, WAIT_S)
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=WAIT_S)
    conn.request("GET", "/frame.jpg")
    img = np.asarray(Image.open(io.BytesIO(conn.getresponse().read())).convert("RGB")).astype(float)
    assert np.allclose(mean_rgb(img, 8, 120), (0, 255, 0), atol=12)
    conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=WAIT_S)
    conn.request("GET", "/")
    assert b"/stream.mjpg" in conn.getresponse().read()


def test_frames_are_scaled_down_to_max_side():
    assert fit_within(1920, 1080, 512) == (512, 288)
    assert fit_within(256, 128, 512) == (256, 128)  # never up


def test_allow_list_refuses_other_clients():
    p = MjpegPreview(port=0, allow=["10.0.0.0/8"])
    p.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=WAIT_S)
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
            conn.request("GET", "/frame.jpg")
            conn.getresponse()
        assert p.counters["refused"] == 1
    finally:
        p.stop()


def test_port_in_use_is_reported_and_does_not_raise():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        p = MjpegPreview(port=taken.getsockname()[1])
        p.start()  # the show goes on
        p.offer(halves((1, 2, 3), (4, 5, 6)))
        p.stop()
    assert p.unavailable and "cannot listen" in p.problem(recent_s=0)

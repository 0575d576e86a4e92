"""``m2v live`` in process: the show controls act on the stage that should act on them.

Each test runs :class:`live.app.LiveApp` headless on the tiny models with a
click-track file playing in real time, and drives it the way a user does: real
OSC datagrams to its listener, key actions on its display.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from live.app import LiveApp, LiveOptions


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clicks(tmp_path, seconds: float = 12.0):
    from core.synth import generate_click_track

    y, _ = generate_click_track(bpm=120, duration_s=seconds, sr=48000)
    wav = tmp_path / "clicks.wav"
    sf.write(wav, y, 48000)
    return wav


def _at_stream_time(app, t_s: float, action, timeout_s: float = 120.0) -> threading.Thread:
    """Run ``action()`` once the app's audio clock reaches ``t_s`` (models load first)."""
    def go():
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if app.source.stream_time_s() >= t_s:
                action()
                return
            time.sleep(0.01)

    th = threading.Thread(target=go, daemon=True)
    th.start()
    return th


def _duration_s(path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout)["format"]["duration"])


@pytest.mark.slow
def test_osc_record_0_and_the_r_key_stop_and_restart_a_record_recording(tmp_path, m2v_home):
    from pythonosc.udp_client import SimpleUDPClient

    port = _free_udp_port()
    out = tmp_path / "show.mp4"
    app = LiveApp(LiveOptions(input=str(_clicks(tmp_path)), preset="tiny", headless=True, record=str(out),
                              duration_s=None, osc_port=port, offline=True))
    client = SimpleUDPClient("127.0.0.1", port)
    _at_stream_time(app, 2.0, lambda: client.send_message("/m2v/record", 0))   # the desk stops it
    _at_stream_time(app, 4.0, lambda: app.display.push_action("record"))      # the R key starts another
    _at_stream_time(app, 7.0, lambda: app.display.push_action("quit"))
    stats = app.run()

    paths = [r["path"] for r in stats["recordings"]]
    assert paths == [str(out), str(tmp_path / "show-2.mp4")]  # the second never overwrites --record's file
    assert all(r["error"] is None and r["frames"] > 0 for r in stats["recordings"])
    first, second = _duration_s(out), _duration_s(tmp_path / "show-2.mp4")
    # Stopped at ~2 s of stream time, restarted at ~4 s, quit at ~7 s (a display frame and the
    # audio clock's block granularity either way; a loaded machine gets a wide margin).
    assert 1.0 < first < 3.0, first
    assert 2.0 < second < 4.0, second
    assert stats["recorder_frames"] == sum(r["frames"] for r in stats["recordings"])


def test_stopping_a_recording_does_not_wait_for_the_encoder(tmp_path, m2v_home):
    app = LiveApp(LiveOptions(input=str(_clicks(tmp_path, 2.0)), preset="tiny", headless=True, osc_port=0,
                              offline=True))
    finished = threading.Event()

    def slow_stop():  # an encoder that needs a while to drain its queue and write the trailer
        time.sleep(1.5)
        finished.set()

    app.recorder = SimpleNamespace(path=str(tmp_path / "x.mp4"), stop=slow_stop)
    t0 = time.perf_counter()
    app._stop_recording()
    assert time.perf_counter() - t0 < 0.5  # the display thread goes on
    assert app.recorder is None and not finished.is_set()
    app._finish_recordings()  # at the end of the show, the file is finished before run() returns
    assert finished.is_set()


def test_hud_shows_flat_out_and_frozen(tmp_path, m2v_home):
    from live.display import hud_lines

    port = _free_udp_port()
    app = LiveApp(LiveOptions(input=str(_clicks(tmp_path)), preset="tiny", headless=True, duration_s=None,
                              osc_port=port, offline=True))
    seen: list[dict] = []
    show = app.display.show

    def spy(frame, hud=None):
        seen.append(dict(hud))
        show(frame, hud)

    app.display.show = spy
    from pythonosc.udp_client import SimpleUDPClient

    client = SimpleUDPClient("127.0.0.1", port)
    app.director.rate_range = (500.0, 500.0)  # more than any CPU does: the worker runs flat out
    _at_stream_time(app, 1.5, lambda: client.send_message("/m2v/freeze", 1))
    _at_stream_time(app, 3.0, lambda: app.display.push_action("quit"))
    app.run()
    lines = ["\n".join(hud_lines(h)) for h in seen]
    assert any("(flat out)" in s for s in lines)
    assert any("FROZEN" in s for s in lines)
    assert not any("FROZEN" in s for s in lines[:5])

"""``m2v live`` in process with a controller on real JACK MIDI ports: the way a VJ plays it.

A fader moves the intensity; L then the space key arms learn for freeze, the next
pad pressed is bound (and saved), pressing it again freezes the picture and lights
the freeze button's LED; /m2v/tap taps make the beat grid follow the taps.
"""

from __future__ import annotations

import time

import pytest

pytest.importorskip("rtmidi", reason="the midi extra: pip install 'm2v[midi]'")

from live.app import LiveApp, LiveOptions  # noqa: E402
from test_live_controls import _at_stream_time, _clicks, _free_udp_port, _spy_hud  # noqa: E402
from test_midi import MAP, Controller, jack, send_until_handled  # noqa: E402,F401 - the JACK server fixture


@pytest.mark.jack
@pytest.mark.slow
def test_a_controller_plays_m2v_live(jack, m2v_home, tmp_path):  # noqa: F811
    from pythonosc.udp_client import SimpleUDPClient

    from live.midi_map import load_learned

    (m2v_home / "midi").mkdir()
    (m2v_home / "midi" / "testctl.toml").write_text(MAP)
    ctl = Controller()
    port = _free_udp_port()
    app = LiveApp(LiveOptions(input=str(_clicks(tmp_path, 12.0)), preset="tiny", headless=True, osc_port=port,
                              offline=True, midi=("ctl",), midi_api="jack"))
    seen = _spy_hud(app)
    osc = SimpleUDPClient("127.0.0.1", port)
    overrides = []
    send = lambda *data: send_until_handled(ctl, app.midi, data)  # noqa: E731
    _at_stream_time(app, 1.0, lambda: send(0xB0, 48, 127))  # the intensity fader all the way up
    _at_stream_time(app, 1.5, lambda: overrides.append(app.director.intensity_override))
    _at_stream_time(app, 2.0, lambda: app.display.push_action("learn"))  # L ...
    _at_stream_time(app, 2.3, lambda: app.display.push_action("freeze"))  # ... then space: learn freeze
    _at_stream_time(app, 2.8, lambda: send(0x90, 60, 100))  # the pad to bind
    _at_stream_time(app, 4.5, lambda: send(0x90, 60, 100))  # pressed again: freeze
    def tap_150_bpm():  # six taps 0.4 s apart (the click track is 120 BPM)
        t0 = time.perf_counter()
        for k in range(6):
            while time.perf_counter() < t0 + 0.4 * k:
                time.sleep(0.001)
            osc.send_message("/m2v/tap", [])
    _at_stream_time(app, 6.0, tap_150_bpm)
    _at_stream_time(app, 9.0, lambda: app.display.push_action("quit"))
    try:
        stats = app.run()
    finally:
        ctl.close()

    assert overrides == [pytest.approx(1.0)]
    assert app.director.frozen is True
    (bound,) = load_learned().control
    assert (bound.note, bound.action, bound.port) == (60, "freeze", "ctl:out")
    assert any("press the key to bind" in (h["midi"] or "") for h in seen)
    assert any("move a control for freeze" in (h["midi"] or "") for h in seen)
    assert any("learned note 60" in (h["midi"] or "") for h in seen)
    assert (0x90, 83, 1) in map(tuple, ctl.leds)  # the map's freeze button lit
    assert stats["midi"]["cues"] >= 2 and stats["midi"]["learned"] == 1
    # The taps are stamped when the OSC thread reads them, which on this busy shared machine jitters by
    # tens of ms; the exact answer for known tap times is tests/test_tempo.py's.  Here: the six taps
    # reached the grid and lead it, at their tempo, not the click track's 120.
    assert len(app.taps.taps) == 6
    assert stats["tempo"]["source"] == "taps" and stats["tempo"]["bpm"] == pytest.approx(150.0, rel=0.15)
    assert any((h["tempo"] or "").startswith("taps 1") for h in seen)
    assert seen[-1]["tempo"].startswith("taps")

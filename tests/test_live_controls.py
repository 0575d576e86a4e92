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

import pytest
import soundfile as sf

from live.app import LiveApp, LiveOptions


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_tcp_port() -> int:
    with socket.socket() as s:
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
    seen = _spy_hud(app)
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


# Every field a hot reload may change live, and where the running show keeps it.  A new preset field
# that is neither here nor marked reload=True in core/presets.py fails the coverage check below.
def _readers():
    from core.effects import EffectAmounts
    from live.osc import parse_allow_list
    from live.outputs.preview import parse_allow

    g = lambda f: (lambda app: getattr(app.optimizer, f), lambda p: getattr(p.guidance, f))  # noqa: E731
    d = lambda f, sec: (lambda app: getattr(app.director, f), lambda p: getattr(getattr(p, sec), f))  # noqa: E731
    return {
        "guidance.cutouts": g("cutouts"),
        "guidance.cut_min_frac": g("cut_min_frac"),
        "guidance.cut_pow": g("cut_pow"),
        "guidance.augment": (lambda app: set(app.optimizer.augmentations), lambda p: set(p.guidance.augmentations())),
        "guidance.lr": (lambda app: app.optimizer._opt.param_groups[0]["lr"], lambda p: p.guidance.lr),
        "guidance.consistency": (lambda app: (app.embedder.consistency, app.optimizer.l1_weight > 0),
                                 lambda p: (p.guidance.consistency, p.guidance.consistency == "l1")),
        "guidance.l1_weight": g("l1_weight"),
        "guidance.crossfade_steps": (lambda app: app.worker.crossfade_steps, lambda p: p.guidance.crossfade_steps),
        "guidance.style_prompts": (lambda app: app.director.current.prompts,
                                   lambda p: tuple((s.text, s.weight) for s in p.guidance.style_prompts)),
        "guidance.style_weight": (lambda app: app.embedder.style_weight, lambda p: p.guidance.style_weight),
        "guidance.prompt_bank": (lambda app: app.director.bank,
                                 lambda p: [(s.text, s.weight) for s in p.guidance.prompt_bank]),
        "rate.min_steps_per_s": (lambda app: app.director.rate_range[0], lambda p: p.rate.min_steps_per_s),
        "rate.max_steps_per_s": (lambda app: app.director.rate_range[1], lambda p: p.rate.max_steps_per_s),
        # read from app.preset every frame, where the worker's rate is set
        "rate.curve_gamma": (lambda app: app.preset.rate.curve_gamma, lambda p: p.rate.curve_gamma),
        "onsets.threshold": (lambda app: app.analyzer._onset_threshold, lambda p: p.onsets.threshold),
        "onsets.whitening": (lambda app: app.analyzer.onset_whitening, lambda p: p.onsets.whitening),
        "onsets.compression": (lambda app: app.analyzer.onset_compression, lambda p: p.onsets.compression),
        "onsets.min_ioi_s": (lambda app: app.analyzer.min_ioi_s, lambda p: p.onsets.min_ioi_s),
        "onsets.silence_db": (lambda app: app.analyzer.silence_db, lambda p: p.onsets.silence_db),
        "onsets.refractory_s": d("refractory_s", "onsets"),
        "onsets.min_scene_s": d("min_scene_s", "onsets"),
        "onsets.max_scene_s": d("max_scene_s", "onsets"),
        "onsets.quantize": d("quantize", "onsets"),
        "intensity.low_percentile": (lambda app: app.analyzer.normalizer.low_pct, lambda p: p.intensity.low_percentile),
        "intensity.high_percentile": (lambda app: app.analyzer.normalizer.high_pct,
                                      lambda p: p.intensity.high_percentile),
        "intensity.attack_s": (lambda app: app.analyzer.normalizer.attack_s, lambda p: p.intensity.attack_s),
        "intensity.release_s": (lambda app: app.analyzer.normalizer.release_s, lambda p: p.intensity.release_s),
        **{f"effects.{f}": (lambda app: app.effects.amounts, lambda p: EffectAmounts.from_config(p.effects))
           for f in ("pulse", "zoom", "shift", "feedback", "flash")},
        # read from app.preset when a recording starts
        **{f"record.{f}": (lambda app, f=f: getattr(app.preset.record, f), lambda p, f=f: getattr(p.record, f))
           for f in ("fps", "crf", "preset", "audio_bitrate_kbps")},
        "osc.allow": (lambda app: app.osc.allow, lambda p: parse_allow_list(",".join(p.osc.allow) or None)),
        "osc.eos_cues": (lambda app: app.osc.eos_cues, lambda p: dict(p.osc.eos_cues)),
        "osc.feedback": (lambda app: app.feedback and f"{app.feedback.host}:{app.feedback.port}",
                         lambda p: p.osc.feedback),
        # the running preview's allow-list (the hot-reload test runs one)
        "outputs.preview_allow": (lambda app: app.outputs.preview.allow,
                                  lambda p: parse_allow(p.outputs.preview_allow)),
        "tempo.latency_ms": (lambda app: round(app.audio_beats.latency_s * 1000.0, 6), lambda p: p.tempo.latency_ms),
    }


def test_every_live_field_has_a_reader_here():
    from core.presets import RELOAD_FIELDS, SECTIONS

    live = {f"{s}.{f}" for s, cls in SECTIONS.items() if s != "render" for f in cls.model_fields} - set(RELOAD_FIELDS)
    assert live == set(_readers()), "a preset field is reported live but nothing applies it (or it is not listed)"


EDIT = """extends = "tiny"
[guidance]
cutouts = 3
cut_min_frac = 0.6
cut_pow = 2.0
augment = ["noise", "erase"]
lr = 0.07
consistency = "l1"
l1_weight = 0.5
crossfade_steps = 4
style_weight = 0.7
style_prompts = [{text = "neon", weight = 0.5}]
prompt_bank = [{text = "a red circle"}, {text = "blue rings", weight = 2.0}]
seed = 99
[rate]
min_steps_per_s = 3.0
max_steps_per_s = 9.0
curve_gamma = 2.0
[onsets]
threshold = 0.6
whitening = true
compression = 5.0
min_ioi_s = 0.08
silence_db = -50.0
refractory_s = 0.3
min_scene_s = 1.0
max_scene_s = 5.0
quantize = "beat"
[intensity]
low_percentile = 20.0
high_percentile = 80.0
attack_s = 0.1
release_s = 1.0
[effects]
pulse = 0.9
zoom = 0.3
shift = 0.2
feedback = 0.4
flash = 0.8
[record]
fps = 24
crf = 25
preset = "ultrafast"
audio_bitrate_kbps = 128
[osc]
allow = ["127.0.0.1"]
feedback = "127.0.0.1:9123"
eos_cues = {"1/2" = "a green square"}
[outputs]
preview_allow = ["127.0.0.1", "10.0.0.0/8"]
[tempo]
latency_ms = 120.0
"""


@pytest.mark.slow
def test_a_hot_reload_applies_every_live_field_and_reports_the_restart_ones(tmp_path, m2v_home):
    from core.presets import load_preset

    preset = tmp_path / "mine.toml"
    preset.write_text('extends = "tiny"\n')
    app = LiveApp(LiveOptions(input=str(_clicks(tmp_path)), preset=str(preset), headless=True,
                              osc_port=_free_udp_port(), offline=True, preview_port=_free_tcp_port()))
    before = app.preset
    seen = _spy_hud(app)
    # The user first saves a mistake (the show goes on, the HUD names it), then the fix.
    _at_stream_time(app, 0.8, lambda: preset.write_text('extends = "tiny"\n[effects]\npulse = 7\n'))
    _at_stream_time(app, 2.0, lambda: preset.write_text(EDIT))
    _at_stream_time(app, 4.5, lambda: app.display.push_action("quit"))
    stats = app.run()
    new = load_preset(preset)
    assert any("preset:" in (h["error"] or "") and "effects.pulse" in h["error"] for h in seen)
    assert stats["preset_error"] is None and any("effects.pulse" in e for e in stats["errors"])

    (update,) = stats["preset_updates"]
    assert update["reload"] == ["guidance.seed"]  # reported, not applied
    assert app.preset.guidance.seed == before.guidance.seed
    readers = _readers()
    assert set(update["live"]) == {f for f in readers if readers[f][1](new) != readers[f][1](before)}
    wrong = {f: (readers[f][0](app), readers[f][1](new)) for f in update["live"]
             if readers[f][0](app) != readers[f][1](new)}
    assert not wrong, wrong


def _spy_hud(app) -> list[dict]:
    seen: list[dict] = []
    show = app.display.show

    def spy(frame, hud=None):
        seen.append(dict(hud))
        show(frame, hud)

    app.display.show = spy
    return seen


@pytest.mark.slow
def test_an_input_gap_degrades_the_show_instead_of_ending_it(tmp_path, m2v_home):
    app = LiveApp(LiveOptions(input=str(_clicks(tmp_path, 7.0)), preset="tiny", headless=True, osc_port=0,
                              offline=True))
    seen = _spy_hud(app)
    next_block = app.source._next_block
    stalled = []

    def stalling():  # the input goes silent for 2.6 s once, 1.5 s in (a pulled cable, a stuck driver)
        if not stalled and app.source.stream_time_s() >= 1.5:
            stalled.append(time.perf_counter())
            time.sleep(2.6)
        return next_block()

    app.source._next_block = stalling
    stats = app.run()
    assert stalled, "the gap was never injected"
    assert stats["run_s"] > 7.0  # the whole file played: the gap did not end the show
    assert any("audio: no input for 2 s" in (h["error"] or "") for h in seen)
    assert "audio: no input for 2 s" in stats["errors"]
    assert not (seen[-1]["error"] or "").startswith("audio: no input")  # gone once blocks came back
    assert stats["onsets_total"] >= 10  # analysis went on after the gap (7 s of clicks at 2/s)


@pytest.mark.slow
def test_a_model_set_without_audio_says_so_and_follows_lyrics(tmp_path, m2v_home, monkeypatch):
    import core.models

    load = core.models.load_models

    def text_only(*args, **kw):  # like vitb16-text: CLIP and VQGAN, no Wav2CLIP
        m = load(*args, **kw)
        m.audio = None
        return m

    monkeypatch.setattr(core.models, "load_models", text_only)
    port = _free_udp_port()
    app = LiveApp(LiveOptions(input=str(_clicks(tmp_path, 6.0)), preset="tiny", headless=True, osc_port=port,
                              offline=True))
    seen = _spy_hud(app)
    from pythonosc.udp_client import SimpleUDPClient

    client = SimpleUDPClient("127.0.0.1", port)
    _at_stream_time(app, 1.0, lambda: client.send_message("/m2v/lyric", ["a red sky", 10.0]))
    _at_stream_time(app, 3.5, lambda: app.display.push_action("quit"))
    stats = app.run()
    assert any("no audio encoder" in (h["error"] or "") for h in seen)
    assert any(s["kind"] == "lyric" for s in stats["target_swaps"])
    assert app.worker.counters["target_changes"] >= 1 and stats["steps"] > 0  # guided by the lyric


@pytest.mark.slow
def test_embedder_errors_reach_the_hud_and_stats(tmp_path, m2v_home):
    port = _free_udp_port()
    app = LiveApp(LiveOptions(input=str(_clicks(tmp_path, 6.0)), preset="tiny", headless=True, osc_port=port,
                              offline=True))
    seen = _spy_hud(app)
    text = app.encoders.text

    def failing(t):
        if t == "boom":
            raise RuntimeError("text encoder ran out of memory")
        return text(t)

    app.encoders.text = failing
    from pythonosc.udp_client import SimpleUDPClient

    client = SimpleUDPClient("127.0.0.1", port)
    _at_stream_time(app, 1.0, lambda: client.send_message("/m2v/lyric", ["boom", 5.0]))
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    _at_stream_time(app, 1.2, lambda: raw.sendto(b"\x00garbage", ("127.0.0.1", port)))  # a malformed packet
    _at_stream_time(app, 3.0, lambda: app.display.push_action("quit"))
    stats = app.run()
    raw.close()
    assert "embedder: text encoder ran out of memory" in stats["errors"]
    assert any("embedder: text encoder ran out of memory" in (h["error"] or "") for h in seen)
    assert any(e.startswith("osc: ") for e in stats["errors"])  # the malformed datagram, named

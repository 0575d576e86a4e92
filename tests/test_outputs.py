"""Video outputs: the base stage (slot, size, pace, drops, errors), each kind's frame path, the registry."""

from __future__ import annotations

import sys
import threading
import time
import types

import numpy as np
import pytest

from core.errors import ConfigError
from core.presets import Preset, apply_overrides
from live.outputs import OutputSet, availability, create_output, parse_spec
from live.outputs.base import Output, OutputSpec, OutputUnavailable, fit_frame
from live.outputs.v4l2 import V4l2Output

WAIT_S = 10.0  # generous upper bound on awaited events: a busy 2-core machine

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def quadrants(h: int = 64, w: int = 64) -> np.ndarray:
    """A known test pattern: red | green over blue | white."""
    f = np.zeros((h, w, 3), np.uint8)
    f[: h // 2, : w // 2] = RED
    f[: h // 2, w // 2:] = GREEN
    f[h // 2:, : w // 2] = BLUE
    f[h // 2:, w // 2:] = WHITE
    return f


class FakeOutput(Output):
    """Records what reaches the receiver; hooks make sends slow or failing."""

    kind = "fake"

    def __init__(self, name="t", *, fail_open=None, fail_send_at=None, gate=None, **kwargs):
        super().__init__(name, **kwargs)
        self.opened: list[tuple[int, int]] = []
        self.received: list[np.ndarray] = []
        self.fail_open = fail_open
        self.fail_send_at = fail_send_at  # the n-th send (1-based) raises once
        self.gate = gate  # a send waits for this Event
        self.send_calls = 0
        self.blocked_s = 0.0
        self.in_send = threading.Event()

    def open(self, size_wh):
        if self.fail_open is not None:
            raise self.fail_open
        self.opened.append(size_wh)

    def send(self, frame):
        self.send_calls += 1
        if self.send_calls == self.fail_send_at:
            raise RuntimeError("receiver vanished")
        if self.gate is not None:
            self.in_send.set()
            t0 = time.perf_counter()
            assert self.gate.wait(WAIT_S)
            self.blocked_s = time.perf_counter() - t0
            self.gate = None
        self.received.append(frame.copy())


def wait_for(predicate, timeout_s=WAIT_S, event=None):
    """Wait until ``predicate()`` holds, waking on ``event`` (an output's sent_event) when given."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        left = deadline - time.monotonic()
        assert left > 0, "timed out"
        if event is not None:
            event.wait(min(left, 0.05))
            event.clear()
        else:
            time.sleep(0.005)


@pytest.fixture
def started():
    outs = []

    def start(out):
        out.start()
        outs.append(out)
        return out

    yield start
    for out in outs:
        out.stop()


# --- fitting frames to the output's resolution ------------------------------------------


def test_fit_frame_letterboxes_with_aspect_kept():
    out = fit_frame(quadrants(32, 64), (100, 100))  # 2:1 into a square: 100x50, bars above and below
    assert out.shape == (100, 100, 3)
    assert out[:24].max() == 0 and out[76:].max() == 0
    assert tuple(out[30, 10]) == RED and tuple(out[30, 90]) == GREEN
    assert tuple(out[70, 10]) == BLUE and tuple(out[70, 90]) == WHITE


def test_fit_frame_same_size_is_untouched():
    f = quadrants()
    assert fit_frame(f, (64, 64)) is f


# --- the base stage ----------------------------------------------------------------------


def test_output_sends_newest_frame_at_its_own_size(started):
    out = started(FakeOutput(size_wh=(128, 64), fps=100))
    out.offer(quadrants())
    wait_for(lambda: out.counters["sent"] >= 1, event=out.sent_event)
    assert out.opened == [(128, 64)]
    frame = out.received[0]
    assert frame.shape == (64, 128, 3)
    assert frame[:, :32].max() == 0 and frame[:, 96:].max() == 0  # 64x64 centred in 128x64
    assert tuple(frame[10, 40]) == RED and tuple(frame[50, 90]) == WHITE


def test_output_size_defaults_to_first_frame(started):
    out = started(FakeOutput(fps=100))
    out.offer(quadrants(48, 80))
    wait_for(lambda: out.counters["sent"] >= 1, event=out.sent_event)
    assert out.opened == [(80, 48)]


def test_output_paces_to_its_fps(started):
    fps, n = 20.0, 8
    out = started(FakeOutput(fps=fps))
    t0 = time.perf_counter()
    frame = quadrants()
    while out.counters["sent"] < n:  # offered far faster than the output's rate
        out.offer(frame)
        out.sent_event.wait(0.002)
        assert time.perf_counter() - t0 < WAIT_S
    elapsed = time.perf_counter() - t0
    assert elapsed >= (n - 1) / fps * 0.95  # never faster than fps
    assert out.counters["dropped"] == 0  # skipping display frames is by design, not a drop


def test_slow_receiver_drops_and_counts_without_blocking_the_display(started):
    gate = threading.Event()
    fps = 50.0
    out = started(FakeOutput(fps=fps, gate=gate))
    out.offer(quadrants())
    assert out.in_send.wait(WAIT_S)
    # The receiver is stuck: the display keeps offering, and no offer waits for it.
    took = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 0.3:
        t = time.perf_counter()
        out.offer(quadrants())
        took.append(time.perf_counter() - t)
    assert out.gate is not None  # still stuck after all those offers
    gate.set()
    wait_for(lambda: out.counters["sent"] >= 2, event=out.sent_event)
    assert len(took) >= 100 and np.median(took) < 0.001
    expected = int(out.blocked_s * fps)  # the 20-ms slots the stuck send overran
    assert expected >= 14
    assert abs(out.counters["dropped"] - expected) <= 1
    assert out.counters["errors"] == 0


def test_send_failure_mid_show_is_reported_and_the_output_reopens(started):
    out = started(FakeOutput(fps=100, fail_send_at=3, retry_s=0.05))
    frame = quadrants()
    while out.counters["sent"] < 5:
        out.offer(frame.copy())
        out.sent_event.wait(0.01)
        out.sent_event.clear()
        assert out.send_calls < 100
    assert out.counters["errors"] == 1
    assert len(out.opened) == 2  # opened, failed on the 3rd send, reopened
    assert "receiver vanished" in out.problem(recent_s=60)
    assert out.problem(recent_s=0) is None  # an old error leaves the HUD
    assert out.alive


def test_open_failure_retries_and_unavailable_stops_trying(started):
    out = started(FakeOutput(fps=100, retry_s=0.05, fail_open=OSError("device busy")))
    frame = quadrants()
    while out.counters["errors"] < 2:
        out.offer(frame.copy())
        time.sleep(0.01)
        assert out.counters["errors"] < 1000
    assert out.alive and out.unavailable is None and "device busy" in out.last_error

    gone = started(FakeOutput(fps=100, fail_open=OutputUnavailable("no such library here")))
    gone.offer(frame)
    gone._thread.join(WAIT_S)
    assert not gone.alive and gone.counters["errors"] == 1
    assert "no such library here" in gone.problem(recent_s=0)  # stays on the HUD
    gone.offer(frame)  # the display can keep offering


def test_output_set_copies_once_so_reused_buffers_do_not_tear(started):
    outs = OutputSet([FakeOutput("a", fps=100), FakeOutput("b", fps=100)])
    buf = quadrants()
    outs.offer(buf)
    buf[:] = 0  # the effects reuse their buffer for the next frame
    for out in outs:
        started(out)
        wait_for(lambda out=out: out.counters["sent"] >= 1, event=out.sent_event)
        assert tuple(out.received[0][5, 5]) == RED
    assert outs.hud() == {"fake:a": "1 sent, 0 dropped", "fake:b": "1 sent, 0 dropped"}
    assert outs.stats()["fake:a"]["sent"] == 1


def test_output_set_refuses_duplicates():
    with pytest.raises(ConfigError, match="twice"):
        OutputSet([FakeOutput("a"), FakeOutput("a")])


# --- specs and the preset section ---------------------------------------------------------


@pytest.mark.parametrize("text, spec", [
    ("ndi:stage", OutputSpec("ndi", "stage")), ("ndi", OutputSpec("ndi", "m2v")),
    ("v4l2:/dev/video10", OutputSpec("v4l2", "/dev/video10")), ("SPOUT:wall", OutputSpec("spout", "wall")),
    ("syphon", OutputSpec("syphon", "m2v")),
])
def test_parse_spec(text, spec):
    assert parse_spec(text) == spec


def test_parse_spec_names_the_kinds():
    with pytest.raises(ConfigError, match="ndi, v4l2, spout, syphon"):
        parse_spec("hdmi:1")


def test_from_config_builds_every_output_from_the_section():
    preset = apply_overrides(Preset(), {"outputs": {
        "targets": ["ndi:stage", "v4l2:/dev/video10"], "size": "640x360", "fps": 25, "retry_s": 0.5,
        "preview_port": 8123, "preview_host": "0.0.0.0", "preview_allow": ["10.0.0.0/8"], "preview_fps": 5,
        "preview_max_side": 256, "preview_quality": 50}})
    outs = OutputSet.from_config(preset.outputs)
    assert [o.label for o in outs] == ["ndi:stage", "v4l2:/dev/video10", "preview:0.0.0.0:8123"]
    for o in outs.outputs[:2]:
        assert (o.size_wh, o.fps, o.retry_s) == ((640, 360), 25.0, 0.5)
    p = outs.preview
    assert (p.host, p.port, p.fps, p.max_side, p.quality) == ("0.0.0.0", 8123, 5.0, 256, 50)
    assert p.allows("10.1.2.3") and not p.allows("192.168.1.2")


def test_preset_refuses_bad_outputs():
    with pytest.raises(ConfigError) as err:
        apply_overrides(Preset(), {"outputs": {"targets": ["hdmi:1"], "preview_allow": ["nope"],
                                               "preview_fps": 30, "size": "7"}})
    text = str(err.value)
    for field in ("outputs.targets", "outputs.preview_allow", "outputs.preview_fps", "outputs.size"):
        assert field in text


# --- v4l2: the frame path up to pyvirtualcam --------------------------------------------


class FakeCamera:
    """Stands in for pyvirtualcam.Camera (the v4l2loopback module cannot be loaded here)."""

    instances: list["FakeCamera"] = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.frames: list[np.ndarray] = []
        self.closed = False
        FakeCamera.instances.append(self)

    def send(self, frame):
        assert frame.flags.c_contiguous and frame.dtype == np.uint8  # what pyvirtualcam requires
        self.frames.append(frame.copy())

    def close(self):
        self.closed = True


def test_v4l2_frame_path_reaches_the_camera_at_its_size(started):
    FakeCamera.instances.clear()
    out = started(V4l2Output("/dev/video10", size_wh=(320, 180), fps=30, camera_factory=FakeCamera))
    out.offer(quadrants())
    wait_for(lambda: out.counters["sent"] >= 1, event=out.sent_event)
    out.stop()
    (cam,) = FakeCamera.instances
    assert cam.kwargs == {"width": 320, "height": 180, "fps": 30.0, "device": "/dev/video10"}
    frame = cam.frames[0]
    assert frame.shape == (180, 320, 3)
    assert frame[:, :70].max() == 0 and frame[:, 250:].max() == 0  # 180x180 centred
    assert tuple(frame[40, 100]) == RED and tuple(frame[40, 220]) == GREEN
    assert tuple(frame[140, 100]) == BLUE and tuple(frame[140, 220]) == WHITE
    assert cam.closed


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="v4l2 is Linux only")
def test_v4l2_missing_device_is_reported_with_the_fix(started):
    out = started(V4l2Output("/dev/video97", fps=30, retry_s=60))
    out.offer(quadrants())
    wait_for(lambda: out.counters["errors"] >= 1)
    assert "modprobe v4l2loopback" in out.last_error and "/dev/video97" in out.last_error


def test_v4l2_real_pyvirtualcam_without_a_loopback_device_is_reported(started):
    pytest.importorskip("pyvirtualcam")
    from live.outputs.v4l2 import loopback_devices

    if loopback_devices() or not sys.platform.startswith("linux"):
        pytest.skip("a v4l2loopback device exists here: this checks the machine without one")
    out = started(create_output("v4l2", fps=30, retry_s=60))  # no NAME: pyvirtualcam looks for a device
    out.offer(quadrants())
    wait_for(lambda: out.counters["errors"] >= 1)
    assert out.last_error.startswith("output v4l2: cannot open") and out.unavailable is None
    assert "modprobe v4l2loopback" in out.last_error  # pyvirtualcam's own message names the fix


def test_v4l2_missing_package_names_the_extra(started, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)
    out = started(V4l2Output("/dev/video10", fps=30))
    monkeypatch.setattr("live.outputs.v4l2.Path.exists", lambda self: True)
    out.offer(quadrants())
    out._thread.join(WAIT_S)
    assert out.unavailable and "pip install 'm2v[v4l2]'" in out.unavailable


# --- NDI, Spout, Syphon up to their libraries -------------------------------------------


def test_ndi_missing_package_names_the_extra(started, monkeypatch):
    monkeypatch.setitem(sys.modules, "cyndilib", None)
    out = started(create_output("ndi:x", fps=30))
    out.offer(quadrants())
    out._thread.join(WAIT_S)
    assert "pip install 'm2v[ndi]'" in out.unavailable


@pytest.mark.parametrize("kind, platform, words", [("spout", "win32", "Windows only"),
                                                   ("syphon", "darwin", "macOS only")])
def test_spout_and_syphon_say_which_platform_they_need(started, monkeypatch, kind, platform, words):
    if sys.platform == platform:
        pytest.skip(f"this is {platform}")
    out = started(create_output(f"{kind}:wall", fps=30))
    out.offer(quadrants())
    out._thread.join(WAIT_S)
    assert words in out.unavailable and kind in out.last_error


def test_spout_missing_package_and_frame_path(started, monkeypatch):
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setitem(sys.modules, "SpoutGL", None)
    missing = started(create_output("spout:wall", fps=30))
    missing.offer(quadrants())
    missing._thread.join(WAIT_S)
    assert "pip install 'm2v[spout]'" in missing.unavailable

    calls = []

    class Sender:  # SpoutGL.SpoutSender's methods that m2v calls
        def setSenderName(self, name):
            calls.append(("name", name))

        def sendImage(self, data, w, h, gl_format, invert, host_fbo):
            calls.append(("image", data.copy(), w, h, gl_format, invert))
            return True

        def setFrameSync(self, name):
            calls.append(("sync", name))

        def releaseSender(self):
            calls.append(("release",))

    monkeypatch.setitem(sys.modules, "SpoutGL", types.SimpleNamespace(SpoutSender=Sender))
    out = started(create_output("spout:wall", size_wh=(64, 64), fps=30))
    out.offer(quadrants())
    wait_for(lambda: out.counters["sent"] >= 1, event=out.sent_event)
    out.stop()
    assert calls[0] == ("name", "wall")
    _, data, w, h, gl_format, invert = calls[1]
    assert (w, h, gl_format, invert) == (64, 64, 0x1908, False)  # GL_RGBA
    assert data.shape == (64, 64, 4) and (data[..., 3] == 255).all()
    assert tuple(data[5, 5, :3]) == RED and tuple(data[60, 60, :3]) == WHITE
    assert calls[2] == ("sync", "wall") and calls[-1] == ("release",)


def test_syphon_frame_path(started, monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    published = []

    class Server:
        device = "metal-device"

        def __init__(self, name):
            published.append(("server", name))

        def publish_frame_texture(self, texture):
            published.append(("publish", texture["data"].copy()))

        def stop(self):
            published.append(("stop",))

    def create_mtl_texture(device, w, h):
        assert device == "metal-device"
        return {"size": (w, h), "data": None}

    def copy_image_to_mtl_texture(image, texture):
        assert image.shape == (texture["size"][1], texture["size"][0], 4)
        texture["data"] = image

    syphon = types.ModuleType("syphon")
    syphon.SyphonMetalServer = Server
    utils = types.ModuleType("syphon.utils")
    raw = types.ModuleType("syphon.utils.raw")
    raw.create_mtl_texture = create_mtl_texture
    numpy_mod = types.ModuleType("syphon.utils.numpy")
    numpy_mod.copy_image_to_mtl_texture = copy_image_to_mtl_texture
    for name, mod in (("syphon", syphon), ("syphon.utils", utils), ("syphon.utils.raw", raw),
                      ("syphon.utils.numpy", numpy_mod)):
        monkeypatch.setitem(sys.modules, name, mod)
    out = started(create_output("syphon:wall", size_wh=(96, 64), fps=30))
    out.offer(quadrants())
    wait_for(lambda: out.counters["sent"] >= 1, event=out.sent_event)
    out.stop()
    assert published[0] == ("server", "wall") and published[-1] == ("stop",)
    data = published[1][1]
    assert data.shape == (64, 96, 4) and tuple(data[5, 20, :3]) == RED and data[:, :16, :3].max() == 0


# --- m2v outputs ----------------------------------------------------------------------------


def _table(**kwargs):
    return {a.kind: a for a in availability(**kwargs)}


def test_availability_on_linux_without_packages_or_devices():
    t = _table(platform="linux", has_module=lambda m: m == "PIL", loopback_devices=list)
    assert not t["ndi"].usable and "pip install 'm2v[ndi]'" in t["ndi"].why
    assert not t["v4l2"].usable and "pip install 'm2v[v4l2]'" in t["v4l2"].why
    assert not t["spout"].usable and t["spout"].why == "Windows only (this is linux)"
    assert not t["syphon"].usable and t["syphon"].why == "macOS only (this is linux)"
    assert t["preview"].usable


def test_availability_with_packages():
    linux = _table(platform="linux", has_module=lambda m: True, loopback_devices=lambda: ["/dev/video10"])
    assert linux["ndi"].usable and linux["v4l2"].usable and linux["v4l2"].example == "v4l2:/dev/video10"
    no_dev = _table(platform="linux", has_module=lambda m: True, loopback_devices=list)
    assert not no_dev["v4l2"].usable and "modprobe v4l2loopback" in no_dev["v4l2"].why
    win = _table(platform="win32", has_module=lambda m: m != "SpoutGL", loopback_devices=list)
    assert "pip install 'm2v[spout]'" in win["spout"].why and win["v4l2"].why.startswith("Linux only")
    mac = _table(platform="darwin", has_module=lambda m: True, loopback_devices=list)
    assert mac["syphon"].usable and not mac["spout"].usable


def test_cli_outputs_lists_every_kind(capsys):
    from live.cli import main

    assert main(["outputs"]) == 0
    out = capsys.readouterr().out
    for kind in ("ndi", "v4l2", "spout", "syphon", "preview"):
        assert any(line.startswith(kind) for line in out.splitlines())


def test_hud_shows_outputs():
    from live.display import HeadlessDisplay, hud_lines

    hud = {"outputs": {"ndi:stage": "12 sent, 3 dropped"}}
    HeadlessDisplay(fps_limit=None).show(quadrants(), hud)  # an accepted HUD key
    assert "out ndi:stage: 12 sent, 3 dropped" in hud_lines(hud)


def test_ndi_audio_goes_only_to_ndi_outputs_when_asked():
    on = apply_overrides(Preset(), {"outputs": {"targets": ["ndi:a", "v4l2:/dev/video10"], "ndi_audio": True}})
    outs = OutputSet.from_config(on.outputs, audio_sr=48000)
    assert [getattr(o, "audio_sr", None) for o in outs] == [48000, None]
    assert outs.audio_sinks() == [outs.outputs[0].write_audio]
    off = OutputSet.from_config(apply_overrides(Preset(), {"outputs.targets": ["ndi:a"]}).outputs, audio_sr=48000)
    assert off.outputs[0].audio_sr is None and off.audio_sinks() == []

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from live.display import HeadlessDisplay, PygameDisplay

ROOT = Path(__file__).resolve().parents[1]
RED, BLUE = (255, 0, 0), (0, 0, 255)


def two_colour_frame(h, w):
    frame = np.zeros((h, w, 3), np.uint8)
    frame[:, : w // 2] = RED
    frame[:, w // 2:] = BLUE
    return frame


def test_headless_display_paces_like_a_60hz_screen_and_counts():
    d = HeadlessDisplay(fps_limit=60)
    frame = two_colour_frame(8, 8)
    t0 = time.perf_counter()
    for _ in range(31):
        d.show(frame, {"intensity": 0.5})
    elapsed = time.perf_counter() - t0
    # 30 intervals of 1/60 s: never faster (the pacing); slower only by what a loaded machine adds
    assert 0.45 < elapsed < 2.0
    stats = d.fps_stats()
    assert stats["frames"] == 31 and stats["mean"] <= 61
    assert stats["p5"] <= stats["mean"] + 1
    assert d.last_frame is frame and d.last_hud == {"intensity": 0.5}
    assert d.last_present_s == d.present_times[-1] >= t0


def test_fps_stats_report_the_slow_frames():
    d = HeadlessDisplay(fps_limit=None)
    d.present_times.extend([i / 60 for i in range(100)] + [100 / 60 + 0.1])  # one 100 ms stall
    d.present_times.extend(100 / 60 + 0.1 + np.arange(1, 20) / 60)
    stats = d.fps_stats()
    assert stats["p5"] == pytest.approx(60, rel=0.01)  # one stall in 120 is under 5 %
    d.present_times.extend(d.present_times[-1] + np.arange(1, 10) * 0.1)  # nine more stalls
    assert d.fps_stats()["p5"] == pytest.approx(10, rel=0.05)


def test_actions_injected_and_handled():
    d = HeadlessDisplay()
    d.push_action("freeze")
    d.push_action("bank3")
    assert d.poll_keys() == ["freeze", "bank3"]
    assert d.poll_keys() == []
    assert d.handle("hud") and not d.hud_visible
    assert not d.handle("record")
    with pytest.raises(ValueError, match="unknown display action 'bank0'"):
        d.push_action("bank0")


@pytest.fixture
def sdl_dummy_display():
    assert os.environ.get("SDL_VIDEODRIVER") == "dummy"  # set by conftest
    d = PygameDisplay(fullscreen=False, size=(320, 240))
    yield d
    d.close()


def screen_pixels(d):
    import pygame

    return pygame.surfarray.array3d(d.screen).transpose(1, 0, 2)  # -> H x W x 3


def test_pygame_letterboxes_the_frame_with_aspect_kept(sdl_dummy_display):
    d = sdl_dummy_display
    d.show(two_colour_frame(32, 64), hud=None)  # 2:1 into 4:3 -> 320x160 with bars
    px = screen_pixels(d)
    assert px.shape == (240, 320, 3)
    assert d.fit_rect(64, 32) == (0, 40, 320, 160)
    assert (px[:40] == 0).all() and (px[200:] == 0).all()
    assert tuple(px[120, 10]) == RED and tuple(px[120, 310]) == BLUE
    assert d.frames_shown == 1 and d.last_present_s is not None


def test_pygame_hud_draws_over_the_top_left_and_toggles(sdl_dummy_display):
    d = sdl_dummy_display
    frame = two_colour_frame(240, 320)
    hud = {"steps_per_s": 12.5, "intensity": 0.8, "onset": 1.0, "guidance": "a red bird",
           "dropped": 3, "recording": True, "error": "REC stopped: the disk is full"}
    d.show(frame, hud=None)
    plain = screen_pixels(d).copy()
    d.show(frame, hud=hud)
    with_hud = screen_pixels(d).copy()
    changed = (plain != with_hud).any(axis=2)
    assert changed[:60, :80].mean() > 0.5  # the panel darkens the top-left
    assert changed[235, :100].any()  # the error line at the bottom
    assert not changed[100:200, 200:].any()  # the rest of the picture is untouched
    d.handle("hud")
    d.show(frame, hud=hud)
    np.testing.assert_array_equal(screen_pixels(d), plain)


def test_pygame_keys_become_actions_and_f_goes_fullscreen(sdl_dummy_display):
    import pygame

    d = sdl_dummy_display
    for key in (pygame.K_f, pygame.K_h, pygame.K_SPACE, pygame.K_r, pygame.K_7, pygame.K_x, pygame.K_ESCAPE):
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=0, unicode="", scancode=0))
    pygame.event.post(pygame.event.Event(pygame.QUIT))
    actions = d.poll_keys()
    assert actions == ["fullscreen", "hud", "freeze", "record", "bank7", "quit", "quit"]
    assert d.handle("fullscreen")
    assert d.fullscreen and d.screen.get_size() == tuple(pygame.display.get_desktop_sizes()[0])
    d.show(two_colour_frame(32, 64))
    assert d.frames_shown == 1


def test_missing_display_index_is_a_device_error():
    from core.errors import DeviceError

    with pytest.raises(DeviceError, match="display 5 does not exist.*--display"):
        PygameDisplay(display_index=5, fullscreen=False)


XVFB_SCRIPT = r"""
import json, subprocess, sys
import numpy as np
from live.display import PygameDisplay
out, display = sys.argv[1], sys.argv[2]
d = PygameDisplay(fullscreen=True)
frame = np.zeros((48, 64, 3), np.uint8)
frame[:, :32] = (255, 0, 0)
frame[:, 32:] = (0, 0, 255)
hud = {"steps_per_s": 9.0, "intensity": 0.7, "onset": 1.0, "guidance": "a neon city", "dropped": 0}
shots = []
for name, h in (("plain", None), ("hud", hud)):
    for _ in range(3):  # a few flips so the X server has the final image
        d.poll_keys()
        d.show(frame, h)
    png = f"{out}/{name}.png"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "x11grab", "-video_size", "640x480",
                    "-i", display, "-frames:v", "1", png], check=True, timeout=30)
    shots.append(png)
print(json.dumps({"size": list(d.screen.get_size()), "shots": shots}))
d.close()
"""


@pytest.mark.xvfb
@pytest.mark.slow
def test_real_window_under_xvfb_shows_frame_and_hud(tmp_path):
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb not installed (Debian: apt-get install xvfb)")
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed (needed to grab the screen)")
    import av

    num = 90 + os.getpid() % 400
    xvfb = subprocess.Popen(["Xvfb", f":{num}", "-screen", "0", "640x480x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)
        if xvfb.poll() is not None:
            pytest.skip(f"Xvfb could not start: {xvfb.stderr.read().decode(errors='replace')[-300:]}")
        env = dict(os.environ, DISPLAY=f":{num}", SDL_VIDEODRIVER="x11")
        res = subprocess.run([sys.executable, "-c", XVFB_SCRIPT, str(tmp_path), f":{num}"], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        info = json.loads(res.stdout.strip().splitlines()[-1])
    finally:
        xvfb.terminate()
        xvfb.wait(5)
    assert info["size"] == [640, 480]  # fullscreen took the desktop resolution

    def grab(path):
        with av.open(path) as c:
            return next(c.decode(video=0)).to_ndarray(format="rgb24").astype(int)

    plain, with_hud = grab(info["shots"][0]), grab(info["shots"][1])
    assert plain.shape == (480, 640, 3)
    # The 64x48 frame fills the 640x480 screen: red on the left, blue on the right.
    assert np.abs(plain[240:470, 10:310] - RED).max() <= 2
    assert np.abs(plain[240:470, 330:630] - BLUE).max() <= 2
    changed = (np.abs(plain - with_hud) > 8).any(axis=2)
    assert changed[:40, :150].mean() > 0.3  # the HUD panel and its text
    assert not changed[300:, 330:].any()  # and nothing else

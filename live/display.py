"""Display back-ends (main thread): show the newest frame, a HUD, and turn keys into actions.

``Display`` is the small base class the app talks to; :class:`PygameDisplay`
opens a (fullscreen) window, :class:`HeadlessDisplay` shows nothing but paces
and timestamps like a screen would (servers, tests, soak runs).  Usage::

    display = PygameDisplay(display_index=0, fullscreen=True)   # or HeadlessDisplay()
    while running:
        for action in display.poll_keys():    # 'quit', 'fullscreen', 'hud', 'freeze', 'record', 'tap', 'learn', 'bank1'..'bank9'
            if not display.handle(action):    # the display handles 'fullscreen' and 'hud' itself
                ...                           # the app handles the rest
        display.show(frame, hud={"steps_per_s": 12.0, "intensity": 0.4, "onset": pulse, ...})
        t_shown = display.last_present_s      # time.perf_counter() right after the flip
    stats = display.fps_stats()               # {'mean', 'p5', 'frames'}
    display.close()

HUD keys (all optional): ``fps`` (default: measured), ``steps_per_s``,
``steps_note`` (e.g. "below min rate"), ``intensity`` 0..1, ``onset`` 0..1,
``guidance`` text, ``dropped`` audio blocks, ``recording`` bool, ``frozen``
bool, ``outputs`` {label: "120 sent, 0 dropped"} (video outputs), ``tempo`` (the
beat grid's source and BPM), ``midi`` (learn mode, port changes, unmapped/malformed
counts), ``error`` line (shown in red), ``lines`` extra text lines.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from typing import Any

import numpy as np

from core.errors import DeviceError
from live.showstats import FloatRing

log = logging.getLogger(__name__)

#: frames whose present times the display keeps (a minute at 60 fps)
PRESENT_LOG = 3600

ACTIONS = ("quit", "fullscreen", "hud", "freeze", "record", "tap", "learn", *(f"bank{i}" for i in range(1, 10)))
#: Every key a HUD dict may hold (see the module docstring).  ``show`` rejects any other key, so an
#: app that sends a key no display reads fails in the first test that shows a frame.
HUD_KEYS = frozenset({"fps", "steps_per_s", "steps_note", "intensity", "onset", "guidance", "dropped",
                      "recording", "frozen", "outputs", "tempo", "midi", "error", "lines"})


def check_hud(hud: dict[str, Any] | None) -> None:
    """Raise ValueError for HUD keys that no display reads."""
    if hud is not None and not HUD_KEYS.issuperset(hud):
        unknown = sorted(set(hud) - HUD_KEYS)
        raise ValueError(f"unknown HUD keys {unknown}; a display reads only {sorted(HUD_KEYS)}")


def hud_lines(hud: dict[str, Any], *, fps: float = 0.0) -> list[str]:
    """The HUD's text lines, top to bottom (the meters and the error line are drawn apart)."""
    first = f"{hud.get('fps', fps):5.1f} fps"
    if "steps_per_s" in hud:
        first += f"   {hud['steps_per_s']:5.1f} steps/s"
    if hud.get("steps_note"):
        first += f" ({hud['steps_note']})"
    lines = [first]
    if hud.get("guidance"):
        lines.append(f"target: {hud['guidance']}"[:80])
    if hud.get("tempo"):
        lines.append(f"tempo: {hud['tempo']}")
    if hud.get("dropped"):
        lines.append(f"audio dropped: {hud['dropped']} blocks")
    if hud.get("midi"):
        lines.append(str(hud["midi"])[:100])
    flags = [name for name, key in (("REC", "recording"), ("FROZEN", "frozen")) if hud.get(key)]
    if flags:
        lines.append("  ".join(flags))
    for label, text in (hud.get("outputs") or {}).items():
        lines.append(f"out {label}: {text}"[:80])
    lines.extend(hud.get("lines", []))
    return lines


class Display:
    """Base class: timestamps every presented frame for fps and latency statistics."""

    def __init__(self) -> None:
        self.hud_visible = True
        self.frames_shown = 0
        self.last_present_s: float | None = None
        # The newest minute of frames, for the HUD's fps and fps_stats; the show's statistics
        # (live.showstats) keep their own ten-minute window.
        self.present_times = FloatRing(PRESENT_LOG)
        self._actions: list[str] = []

    def show(self, frame: np.ndarray, hud: dict[str, Any] | None = None) -> None:
        """Present ``frame`` (HxWx3 uint8) scaled to the screen, with the HUD if visible."""
        raise NotImplementedError

    def poll_keys(self) -> list[str]:
        """Actions since the last call (see ``ACTIONS``), oldest first."""
        out, self._actions = self._actions, []
        return out

    def push_action(self, action: str) -> None:
        """Inject an action as if its key was pressed (tests, a keyboard-less rig)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown display action {action!r}; allowed: {', '.join(ACTIONS)}")
        self._actions.append(action)

    def handle(self, action: str) -> bool:
        """Apply display-local actions ('hud', 'fullscreen'); False for the app's actions."""
        if action == "hud":
            self.hud_visible = not self.hud_visible
            return True
        return False

    def close(self) -> None:
        pass

    def _presented(self) -> None:
        self.last_present_s = time.perf_counter()
        self.present_times.append(self.last_present_s)
        self.frames_shown += 1

    def current_fps(self, window: int = 30) -> float:
        t = self.present_times
        if len(t) < 2:
            return 0.0
        k = min(window, len(t) - 1)
        return k / max(t[-1] - t[-1 - k], 1e-9)

    def fps_stats(self) -> dict[str, float]:
        """Over the newest minute of frames: ``mean`` fps and ``p5``, the fps the slowest 5 % ran at."""
        t = self.present_times.values()
        if t.size < 2:
            return {"mean": 0.0, "p5": 0.0, "frames": int(t.size)}
        dt = np.diff(t)
        return {"mean": float((t.size - 1) / (t[-1] - t[0])),
                "p5": float(1.0 / max(np.percentile(dt, 95), 1e-9)),
                "frames": int(t.size)}


class _Pacer:
    """Sleeps so calls happen at most ``rate_hz`` per second (stands in for vsync)."""

    def __init__(self, rate_hz: float | None) -> None:
        self.period_s = 1.0 / rate_hz if rate_hz else 0.0
        self._next = 0.0

    def wait(self) -> None:
        if not self.period_s:
            return
        now = time.perf_counter()
        if self._next > now:
            time.sleep(self._next - now)
            now = self._next
        self._next = max(now, self._next) + self.period_s  # no burst to catch up after a stall


class HeadlessDisplay(Display):
    """No window: keeps the last frame and HUD, paced to ``fps_limit`` like a vsync'd screen."""

    def __init__(self, *, fps_limit: float | None = 60.0) -> None:
        super().__init__()
        self._pacer = _Pacer(fps_limit)
        self.last_frame: np.ndarray | None = None
        self.last_hud: dict[str, Any] | None = None

    def show(self, frame: np.ndarray, hud: dict[str, Any] | None = None) -> None:
        check_hud(hud)
        self._pacer.wait()
        self.last_frame = frame
        self.last_hud = hud
        self._presented()


_KEYS = {"f": "fullscreen", "h": "hud", "space": "freeze", "r": "record", "escape": "quit", "q": "quit",
         "t": "tap", "l": "learn",
         **{str(i): f"bank{i}" for i in range(1, 10)}}


class PygameDisplay(Display):
    """A pygame window or fullscreen output.

    Fullscreen uses the desktop resolution of ``display_index`` (no mode switch:
    small modes misbehave on X servers and projectors) and scales the frame to it
    with its aspect kept (black bars).

    Args:
        display_index: which monitor (0-based, see ``pygame.display.get_num_displays``).
        fullscreen: start fullscreen (F toggles).
        vsync: ask for vsync'd flips (an SDL renderer); falls back to ``fps_limit`` pacing.
        size: window size when not fullscreen.
        fps_limit: cap presentation rate when vsync is off or unavailable (None: uncapped).
        title: window title.

    Raises:
        DeviceError: no video device, or ``display_index`` out of range.
    """

    def __init__(self, *, display_index: int = 0, fullscreen: bool = True, vsync: bool = True,
                 size: tuple[int, int] = (1280, 720), fps_limit: float | None = 60.0,
                 title: str = "m2v") -> None:
        super().__init__()
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        self._pg = pygame
        try:
            pygame.display.init()
            pygame.font.init()
        except pygame.error as exc:
            raise DeviceError(f"cannot open a display ({exc}); on a server use --headless, "
                              "or set DISPLAY / run under Xvfb") from exc
        n = pygame.display.get_num_displays()
        if not 0 <= display_index < n:
            raise DeviceError(f"display {display_index} does not exist ({n} display(s): "
                              f"0..{n - 1}); pick one with --display N")
        self.display_index = display_index
        self.window_size = tuple(size)
        self.vsync = vsync
        self._fps_limit = fps_limit
        self._pacer = _Pacer(None if vsync else fps_limit)
        self.fullscreen = fullscreen
        pygame.display.set_caption(title)
        self._open()
        self._scaled = None
        self._font = None

    def _open(self) -> None:
        pg = self._pg
        if self.fullscreen:
            size = pg.display.get_desktop_sizes()[self.display_index]
            base = pg.FULLSCREEN
        else:
            size, base = self.window_size, pg.RESIZABLE
        attempts = [(base | pg.SCALED, 1), (base, 0)] if self.vsync else [(base, 0)]
        last: Exception | None = None
        for flags, vsync in attempts:
            try:
                with warnings.catch_warnings():  # "no fast renderer available": software SDL is fine
                    warnings.simplefilter("ignore")
                    self.screen = pg.display.set_mode(size, flags, display=self.display_index, vsync=vsync)
                break
            except pg.error as exc:
                last = exc
        else:
            raise DeviceError(f"cannot open a {size[0]}x{size[1]} window on display {self.display_index}: "
                              f"{last}; try --windowed or --headless")
        if self.vsync and not vsync:
            log.info("vsync unavailable here (%s); pacing to %s fps", last, self._fps_limit)
            self._pacer = _Pacer(self._fps_limit)
        pg.mouse.set_visible(not self.fullscreen)
        self._scaled = None

    def handle(self, action: str) -> bool:
        if action == "fullscreen":
            self.fullscreen = not self.fullscreen
            self._open()
            return True
        return super().handle(action)

    def poll_keys(self) -> list[str]:
        pg = self._pg
        for event in pg.event.get():
            if event.type == pg.QUIT:
                self._actions.append("quit")
            elif event.type == pg.KEYDOWN:
                action = _KEYS.get(pg.key.name(event.key))
                if action:
                    self._actions.append(action)
            elif event.type in (pg.VIDEORESIZE, pg.WINDOWSIZECHANGED):
                self.screen = pg.display.get_surface()
                self._scaled = None
        return super().poll_keys()

    def fit_rect(self, frame_w: int, frame_h: int) -> tuple[int, int, int, int]:
        """Where the frame goes on screen: the largest centred rect with the frame's aspect."""
        sw, sh = self.screen.get_size()
        scale = min(sw / frame_w, sh / frame_h)
        w, h = max(1, round(frame_w * scale)), max(1, round(frame_h * scale))
        return (sw - w) // 2, (sh - h) // 2, w, h

    def show(self, frame: np.ndarray, hud: dict[str, Any] | None = None) -> None:
        pg = self._pg
        check_hud(hud)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame must be HxWx3 uint8, got {frame.dtype} {frame.shape}")
        h, w = frame.shape[:2]
        # Convert to the screen's pixel format at the small size, then scale: the big
        # blit is then a plain copy.
        src = pg.image.frombuffer(np.ascontiguousarray(frame), (w, h), "RGB").convert()
        x, y, tw, th = self.fit_rect(w, h)
        if self._scaled is None or self._scaled.get_size() != (tw, th):
            self._scaled = pg.Surface((tw, th), 0, src)
        if x or y:
            self.screen.fill((0, 0, 0))  # black bars (also clears a HUD drawn over them)
        if (tw, th) == (w, h):
            self.screen.blit(src, (x, y))
        else:
            pg.transform.scale(src, (tw, th), self._scaled)
            self.screen.blit(self._scaled, (x, y))
        if self.hud_visible and hud is not None:
            self._draw_hud(hud)
        self._pacer.wait()
        pg.display.flip()
        self._presented()

    def _text(self, text: str, color=(235, 235, 235)):
        return self._font.render(text, True, color)

    def _draw_hud(self, hud: dict[str, Any]) -> None:
        pg = self._pg
        sw, sh = self.screen.get_size()
        if self._font is None:
            self._font = pg.font.Font(None, max(18, sh // 36))  # pygame's bundled font
        line_h = self._font.get_linesize()
        lines = hud_lines(hud, fps=self.current_fps())

        pad = line_h // 3
        meter_h = line_h // 2
        panel_w = max(self._font.size(s)[0] for s in lines) + 2 * pad + line_h
        panel_w = max(panel_w, sw // 4)
        panel_h = len(lines) * line_h + meter_h + 3 * pad
        panel = pg.Surface((panel_w, panel_h), pg.SRCALPHA)
        panel.fill((0, 0, 0, 170))
        self.screen.blit(panel, (0, 0))
        for i, s in enumerate(lines):
            color = (255, 90, 90) if s.startswith("REC") else (235, 235, 235)
            self.screen.blit(self._text(s, color), (pad, pad + i * line_h))
        # Intensity meter, and a square that flashes with the onset pulse.
        my = pad + len(lines) * line_h + pad // 2
        mw = panel_w - 3 * pad - line_h
        intensity = min(max(float(hud.get("intensity", 0.0)), 0.0), 1.0)
        pg.draw.rect(self.screen, (80, 80, 80), (pad, my, mw, meter_h), 1)
        pg.draw.rect(self.screen, (80, 200, 120), (pad, my, int(mw * intensity), meter_h))
        onset = min(max(float(hud.get("onset", 0.0)), 0.0), 1.0)
        v = int(40 + 215 * onset)
        pg.draw.rect(self.screen, (v, v, v), (panel_w - pad - line_h, pad, line_h, line_h))
        if hud.get("error"):
            err = self._text(str(hud["error"])[:120], (255, 80, 80))
            bg = pg.Surface((err.get_width() + 2 * pad, line_h + pad), pg.SRCALPHA)
            bg.fill((0, 0, 0, 200))
            self.screen.blit(bg, (0, sh - line_h - pad))
            self.screen.blit(err, (pad, sh - line_h - pad // 2))

    def close(self) -> None:
        self._pg.display.quit()

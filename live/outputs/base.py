"""What every video output shares: a thread of its own, a latest-frame slot, its own size and pace.

The display loop hands each output the frame it just showed (post effects, no
HUD) with :meth:`Output.offer`, which only puts into a :class:`~live.stage.LatestSlot`:
the display never waits for a receiver.  The output's thread takes the newest
frame, fits it to the output's resolution and sends it, at most ``fps`` times a
second.  Counters, read by the HUD and ``--stats``:

* ``sent``: frames handed to the receiver (library, device, HTTP clients);
* ``dropped``: output frame slots (at the output's ``fps``) missed because a send
  took longer than its slot: a slow, stuck or gone receiver.  Display frames
  that come faster than the output's ``fps`` are skipped by design, not counted;
* ``errors``: failed opens and sends.  A failed output is reopened every
  ``retry_s``; one that cannot run here at all (:class:`OutputUnavailable`: a
  missing package, the wrong platform) stops trying.  Either way the show goes on.

A kind implements :meth:`Output.open`, :meth:`Output.send` and :meth:`Output.close`,
importing its library inside :meth:`Output.open`, so a missing package is an error
line on the HUD, never a crash at start.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from core.errors import OutputError
from live.stage import LatestSlot, Stage

log = logging.getLogger(__name__)

_IDLE_WAIT_S = 0.1  # how often an idle output looks at its stop event


class OutputUnavailable(OutputError):
    """The output cannot run on this machine (a missing package, the wrong platform); no retry helps."""


@dataclass(frozen=True)
class OutputSpec:
    """``KIND[:NAME]`` as written after ``--output`` or in ``[outputs] targets``."""

    kind: str
    name: str

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name}" if self.name else self.kind


def fit_frame(frame: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """``frame`` (HxWx3 uint8) scaled into ``size_wh`` with its aspect kept, centred on black (letterbox)."""
    w, h = size_wh
    fh, fw = frame.shape[:2]
    if (fw, fh) == (w, h):
        return frame
    from PIL import Image

    scale = min(w / fw, h / fh)
    tw, th = max(1, round(fw * scale)), max(1, round(fh * scale))
    scaled = np.asarray(Image.fromarray(frame).resize((tw, th), Image.BILINEAR))
    if (tw, th) == (w, h):
        return scaled
    out = np.zeros((h, w, 3), np.uint8)
    x, y = (w - tw) // 2, (h - th) // 2
    out[y:y + th, x:x + tw] = scaled
    return out


def missing_package(package: str, extra: str) -> OutputUnavailable:
    """The error for a kind whose library is not installed, naming the command that installs it."""
    return OutputUnavailable(f"the Python package {package!r} is not installed; "
                             f"pip install 'm2v[{extra}]' (or pip install {package})")


class Output(Stage):
    """One output on its own thread.  Subclasses set ``kind`` and implement open/send/close.

    Args:
        name: the NAME of ``KIND:NAME`` (a stream name, a device path).
        size_wh: the output's resolution; None: the first frame's size.
        fps: most frames sent per second.
        retry_s: seconds between attempts to reopen after a failure.
    """

    kind = "output"

    def __init__(self, name: str, *, size_wh: tuple[int, int] | None = None, fps: float = 30.0,
                 retry_s: float = 2.0) -> None:
        super().__init__()
        if fps <= 0:
            raise OutputError(f"output fps must be > 0, got {fps}")
        self.spec = OutputSpec(self.kind, name)
        self.name = f"out-{self.kind}"
        self.size_wh = size_wh
        self.fps = float(fps)
        self.retry_s = float(retry_s)
        self.frames: LatestSlot[np.ndarray] = LatestSlot()
        self.last_error: str | None = None
        self.last_error_at = float("-inf")  # time.monotonic() of the last error
        self.unavailable: str | None = None  # set when the kind cannot run here: no retries
        self.is_open = False
        self.sent_event = threading.Event()  # set on every frame sent (tests and benches wait on it)
        for key in ("sent", "dropped", "errors"):
            self.counters[key] = 0

    @property
    def label(self) -> str:
        return self.spec.label

    # --- called by the display thread: never blocks on the receiver --------------------

    def offer(self, frame: np.ndarray) -> None:
        """The newest shown frame; the caller must not change it afterwards (OutputSet copies once)."""
        self.frames.put(frame)

    # --- what a kind implements (on the output's thread) -----------------------------

    def open(self, size_wh: tuple[int, int]) -> None:  # pragma: no cover - abstract
        """Open the receiver side at ``size_wh``; raise OutputUnavailable or any error."""
        raise NotImplementedError

    def send(self, frame: np.ndarray) -> None:  # pragma: no cover - abstract
        """Send one HxWx3 uint8 frame of exactly the opened size."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the receiver side; called after a failure and at stop."""

    # --- the thread ------------------------------------------------------------------

    def run(self) -> None:
        version = 0
        try:
            while not self.stopping.is_set():
                frame, newer = self.frames.wait_newer(version, _IDLE_WAIT_S)
                if newer == version or frame is None:
                    continue
                version = newer
                if not self._ensure_open(frame):
                    if self.unavailable:
                        return
                    self.stopping.wait(self.retry_s)
                    continue
                start_s = time.perf_counter()
                if self._send_one(frame):
                    self._pace(start_s)
        finally:
            self._close_quietly()

    def _ensure_open(self, frame: np.ndarray) -> bool:
        if self.is_open:
            return True
        if self.size_wh is None:
            self.size_wh = (frame.shape[1], frame.shape[0])
        try:
            self.open(self.size_wh)
        except OutputUnavailable as exc:
            self.unavailable = str(exc)
            self._note_error(exc, "cannot run here")
            return False
        except Exception as exc:  # noqa: BLE001 - any failure to open is reported; the show goes on
            self._note_error(exc, f"cannot open (retrying every {self.retry_s:g} s)")
            self._close_quietly()
            return False
        self.is_open = True
        log.info("output %s open at %dx%d, %g fps", self.label, *self.size_wh, self.fps)
        return True

    def _send_one(self, frame: np.ndarray) -> bool:
        try:
            self.send(fit_frame(frame, self.size_wh))
        except Exception as exc:  # noqa: BLE001 - a receiver failing mid-show is reported; the show goes on
            self._note_error(exc, "send failed; reopening")
            self._close_quietly()
            return False
        self.counters["sent"] += 1
        self.sent_event.set()
        return True

    def _pace(self, start_s: float) -> None:
        """Wait for this output's next frame slot; count the slots a slow send overran as dropped."""
        period_s = 1.0 / self.fps
        took_s = time.perf_counter() - start_s
        if took_s > period_s:
            self.counters["dropped"] += int(took_s / period_s)
        self.stopping.wait(max(0.0, period_s - took_s))

    def _note_error(self, exc: BaseException, what: str) -> None:
        self.counters["errors"] += 1
        self.last_error = f"output {self.label}: {what}: {exc}"
        self.last_error_at = time.monotonic()
        log.warning("%s", self.last_error)

    def _close_quietly(self) -> None:
        was_open, self.is_open = self.is_open, False
        try:
            self.close()
        except Exception as exc:  # noqa: BLE001 - closing a broken receiver may fail too
            if was_open:
                log.warning("output %s: close failed: %s", self.label, exc)

    def problem(self, *, recent_s: float) -> str | None:
        """A HUD line: the reason it cannot run, or an error within the last ``recent_s`` seconds."""
        if self.unavailable:
            return self.last_error
        if self.last_error and time.monotonic() - self.last_error_at < recent_s:
            return self.last_error
        return None

    def stats(self) -> dict:
        return {"sent": int(self.counters["sent"]), "dropped": int(self.counters["dropped"]),
                "errors": int(self.counters["errors"]), "error": self.last_error,
                "size": list(self.size_wh) if self.size_wh else None, "fps": self.fps}

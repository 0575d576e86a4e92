"""``ndi:NAME``: an NDI source that Resolume, TouchDesigner, OBS and vMix find on the network.

Sent through cyndilib (``pip install 'm2v[ndi]'``, which bundles the NDI
runtime for Windows, macOS and Linux) as RGBX frames at the output's resolution
and frame rate.  m2v paces the frames itself (NDI's own clock is off) so the
sender never holds the thread longer than one frame.  With ``[outputs]
ndi_audio = true`` the source also carries the input audio (mono, float, at the
input's rate): the feature worker only queues each block (drop-oldest), and an
audio thread of the output's own sends it.

Where multicast discovery (mDNS) is blocked, as on many venue networks and on
this project's test machine, point NDI at its peers by unicast: an
``ndi-config.v1.json`` with ``{"ndi": {"networks": {"ips": "192.168.1.20,127.0.0.1"}}}``
in ``~/.ndi/`` or in the folder named by ``NDI_CONFIG_DIR``.
"""

from __future__ import annotations

import threading
from fractions import Fraction
from typing import Any

import numpy as np

from live.outputs.base import Output, missing_package
from live.stage import DropOldestQueue

_AUDIO_CHUNK = 4096  # samples per NDI audio frame at most (bigger blocks are split)
_AUDIO_QUEUE = 512  # blocks queued before the oldest are dropped (seconds of audio at usual block sizes)


def import_cyndilib():
    try:
        import cyndilib
    except ImportError:
        raise missing_package("cyndilib", "ndi") from None
    return cyndilib


class NdiOutput(Output):
    """Frames (and optionally the input audio) as an NDI source called NAME (listed as ``HOST (NAME)``).

    Args:
        name: the NDI source name.
        audio_sr: the input audio's sample rate to send it along; None: video only.
    """

    kind = "ndi"

    def __init__(self, name: str = "m2v", *, audio_sr: int | None = None, **kwargs: Any) -> None:
        super().__init__(name or "m2v", **kwargs)
        self.audio_sr = audio_sr
        self._sender = None
        self._rgbx: np.ndarray | None = None
        self._lock = threading.Lock()  # the sender between the video and audio threads
        self._audio: DropOldestQueue[np.ndarray] = DropOldestQueue(_AUDIO_QUEUE)
        self._audio_thread: threading.Thread | None = None
        for key in ("audio_sent", "audio_dropped"):
            self.counters[key] = 0

    @property
    def source_name(self) -> str | None:
        """The full NDI name receivers see (``HOST (NAME)``), once open."""
        sender = self._sender
        return sender.source.name if sender is not None and sender.source is not None else None

    # --- video (the output's thread) -----------------------------------------------------

    def open(self, size_wh: tuple[int, int]) -> None:
        ndi = import_cyndilib()
        w, h = size_wh
        frame = ndi.VideoSendFrame()
        frame.set_resolution(w, h)
        frame.set_frame_rate(Fraction(self.fps).limit_denominator(1001))
        frame.set_fourcc(ndi.FourCC.RGBX)
        sender = ndi.Sender(self.spec.name, clock_video=False, clock_audio=False)
        sender.set_video_frame(frame)
        if self.audio_sr:
            audio = ndi.AudioSendFrame()
            audio.sample_rate = int(self.audio_sr)
            audio.num_channels = 1
            audio.set_max_num_samples(_AUDIO_CHUNK)
            sender.set_audio_frame(audio)
        with self._lock:
            sender.open()
            self._sender = sender
        self._rgbx = np.full((h, w, 4), 255, np.uint8)

    def send(self, frame: np.ndarray) -> None:
        self._rgbx[..., :3] = frame
        with self._lock:
            ok = self._sender.write_video(self._rgbx.reshape(-1))
        if not ok:
            raise RuntimeError("the NDI sender refused the frame")

    def close(self) -> None:
        with self._lock:
            sender, self._sender = self._sender, None
            if sender is not None:
                sender.close()

    # --- audio (the feature worker queues; the audio thread sends) ----------------------

    def write_audio(self, block: np.ndarray, t_s: float | None = None) -> None:  # noqa: ARG002 - a sink's signature
        """Queue an input block (n,) or (n, channels); never blocks (drops the oldest when the sender lags)."""
        if not self.audio_sr or self.stopping.is_set() or self._sender is None:
            return
        mono = block if block.ndim == 1 else block.mean(axis=1)
        before = self._audio.dropped
        self._audio.put(np.ascontiguousarray(mono, dtype=np.float32).reshape(1, -1))
        self.counters["audio_dropped"] += self._audio.dropped - before

    def start(self) -> None:
        super().start()
        if self.audio_sr:
            self._audio_thread = threading.Thread(target=self._pump_audio, name="m2v-out-ndi-audio", daemon=True)
            self._audio_thread.start()

    def _pump_audio(self) -> None:
        while not self.stopping.is_set():
            for block in self._audio.get_all(timeout_s=0.05):
                for i in range(0, block.shape[1], _AUDIO_CHUNK):
                    self._send_audio(block[:, i:i + _AUDIO_CHUNK])

    def _send_audio(self, chunk: np.ndarray) -> None:
        try:
            with self._lock:
                if self._sender is None:
                    return
                self._sender.write_audio(np.ascontiguousarray(chunk))
        except Exception as exc:  # noqa: BLE001 - audio trouble is reported; the picture goes on
            self._note_error(exc, "audio send failed")
            return
        self.counters["audio_sent"] += 1

    def on_stop(self) -> None:
        if self._audio_thread is not None:
            self._audio_thread.join(2.0)

    def stats(self) -> dict:
        out = super().stats()
        if self.audio_sr:
            out.update(audio_sr=self.audio_sr, audio_sent=int(self.counters["audio_sent"]),
                       audio_dropped=int(self.counters["audio_dropped"]))
        return out

"""``ndi:NAME``: an NDI video source that Resolume, TouchDesigner, OBS and vMix find on the network.

Sent through cyndilib (``pip install 'm2v[ndi]'``, which bundles the NDI
runtime for Windows, macOS and Linux) as RGBX frames at the output's resolution
and frame rate.  m2v paces the frames itself (NDI's own clock is off) so the
sender never holds the thread longer than one frame.

Where multicast discovery (mDNS) is blocked, as on many venue networks and on
this project's test machine, point NDI at its peers by unicast: an
``ndi-config.v1.json`` with ``{"ndi": {"networks": {"ips": "192.168.1.20,127.0.0.1"}}}``
in ``~/.ndi/`` or in the folder named by ``NDI_CONFIG_DIR``.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from live.outputs.base import Output, missing_package


def import_cyndilib():
    try:
        import cyndilib
    except ImportError:
        raise missing_package("cyndilib", "ndi") from None
    return cyndilib


class NdiOutput(Output):
    """Frames as an NDI source called NAME (receivers list it as ``HOST (NAME)``)."""

    kind = "ndi"

    def __init__(self, name: str = "m2v", **kwargs: Any) -> None:
        super().__init__(name or "m2v", **kwargs)
        self._sender = None
        self._rgbx: np.ndarray | None = None

    @property
    def source_name(self) -> str | None:
        """The full NDI name receivers see (``HOST (NAME)``), once open."""
        sender = self._sender
        return sender.source.name if sender is not None and sender.source is not None else None

    def open(self, size_wh: tuple[int, int]) -> None:
        ndi = import_cyndilib()
        w, h = size_wh
        frame = ndi.VideoSendFrame()
        frame.set_resolution(w, h)
        frame.set_frame_rate(Fraction(self.fps).limit_denominator(1001))
        frame.set_fourcc(ndi.FourCC.RGBX)
        sender = ndi.Sender(self.spec.name, clock_video=False, clock_audio=False)
        sender.set_video_frame(frame)
        sender.open()
        self._sender = sender
        self._rgbx = np.full((h, w, 4), 255, np.uint8)

    def send(self, frame: np.ndarray) -> None:
        self._rgbx[..., :3] = frame
        if not self._sender.write_video(self._rgbx.reshape(-1)):
            raise RuntimeError("the NDI sender refused the frame")

    def close(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.close()

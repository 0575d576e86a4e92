"""``spout:NAME``: a Spout sender on Windows, which Resolume, TouchDesigner and OBS (Spout2 plugin) receive.

Sent through SpoutGL (``pip install 'm2v[spout]'``) as RGBA images; SpoutGL
makes its own OpenGL context for ``sendImage``.  Tested on Windows only: this
project's CI runs Linux, where this output reports that it cannot run.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from live.outputs.base import Output, OutputUnavailable, missing_package

GL_RGBA = 0x1908  # OpenGL's constant: SpoutGL takes the pixel format as a GL enum


def check_platform() -> None:
    if sys.platform != "win32":
        raise OutputUnavailable(f"Spout is Windows only (this is {sys.platform}); "
                                "use syphon: on macOS, ndi: or v4l2: on Linux")


class SpoutOutput(Output):
    """Frames as a Spout sender called NAME."""

    kind = "spout"

    def __init__(self, name: str = "m2v", **kwargs: Any) -> None:
        super().__init__(name or "m2v", **kwargs)
        self._sender = None
        self._rgba: np.ndarray | None = None

    def open(self, size_wh: tuple[int, int]) -> None:
        check_platform()
        try:
            import SpoutGL
        except ImportError:
            raise missing_package("SpoutGL", "spout") from None
        w, h = size_wh
        self._sender = SpoutGL.SpoutSender()
        self._sender.setSenderName(self.spec.name)
        self._rgba = np.full((h, w, 4), 255, np.uint8)

    def send(self, frame: np.ndarray) -> None:
        self._rgba[..., :3] = frame
        h, w = frame.shape[:2]
        if not self._sender.sendImage(self._rgba, w, h, GL_RGBA, False, 0):
            raise RuntimeError("Spout refused the frame (no OpenGL context?)")
        self._sender.setFrameSync(self.spec.name)

    def close(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.releaseSender()

"""``syphon:NAME``: a Syphon server on macOS, which Resolume, MadMapper, VDMX and OBS receive.

Sent through syphon-python (``pip install 'm2v[syphon]'``) as a Metal texture.
Tested on macOS only: this project's CI runs Linux, where this output reports
that it cannot run.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from live.outputs.base import Output, OutputUnavailable, missing_package


def check_platform() -> None:
    if sys.platform != "darwin":
        raise OutputUnavailable(f"Syphon is macOS only (this is {sys.platform}); "
                                "use spout: on Windows, ndi: or v4l2: on Linux")


class SyphonOutput(Output):
    """Frames as a Syphon server called NAME."""

    kind = "syphon"

    def __init__(self, name: str = "m2v", **kwargs: Any) -> None:
        super().__init__(name or "m2v", **kwargs)
        self._server = None
        self._texture = None
        self._rgba: np.ndarray | None = None

    def open(self, size_wh: tuple[int, int]) -> None:
        check_platform()
        try:
            import syphon
            from syphon.utils.raw import create_mtl_texture
        except ImportError:
            raise missing_package("syphon-python", "syphon") from None
        w, h = size_wh
        self._server = syphon.SyphonMetalServer(self.spec.name)
        self._texture = create_mtl_texture(self._server.device, w, h)
        self._rgba = np.full((h, w, 4), 255, np.uint8)

    def send(self, frame: np.ndarray) -> None:
        from syphon.utils.numpy import copy_image_to_mtl_texture

        self._rgba[..., :3] = frame
        copy_image_to_mtl_texture(self._rgba, self._texture)
        self._server.publish_frame_texture(self._texture)

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

"""``v4l2:/dev/videoN``: a v4l2loopback device that OBS, browsers and Zoom see as a webcam (Linux).

Sent through pyvirtualcam (``pip install 'm2v[v4l2]'``) as RGB frames; the
device must exist first::

    sudo modprobe v4l2loopback devices=1 video_nr=10 card_label=m2v exclusive_caps=1

``exclusive_caps=1`` makes Chrome and Zoom list it as a camera.  Verify with
``v4l2-ctl -d /dev/video10 -V`` (the format once m2v sends) or
``ffplay /dev/video10``.
"""

from __future__ import annotations

import glob
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from live.outputs.base import Output, OutputUnavailable, missing_package

LOOPBACK_SYSFS = Path("/sys/devices/virtual/video4linux")


def loopback_devices() -> list[str]:
    """The /dev/videoN nodes v4l2loopback made (its devices are virtual; real cameras are not)."""
    return sorted(f"/dev/{p.name}" for p in LOOPBACK_SYSFS.glob("video*")) if LOOPBACK_SYSFS.is_dir() else []


def video_devices() -> list[str]:
    return sorted(glob.glob("/dev/video*"))


def _pyvirtualcam_camera(**kwargs: Any):
    try:
        import pyvirtualcam
    except ImportError:
        raise missing_package("pyvirtualcam", "v4l2") from None
    return pyvirtualcam.Camera(fmt=pyvirtualcam.PixelFormat.RGB, backend="v4l2loopback", **kwargs)


class V4l2Output(Output):
    """Frames to a v4l2loopback device.

    Args:
        name: the device path (``/dev/video10``); ``""`` lets pyvirtualcam pick the first free one.
        camera_factory: builds the camera (``width``, ``height``, ``fps``, ``device`` keywords) and
            returns an object with ``send(frame)`` and ``close()``; tests inject a fake.
    """

    kind = "v4l2"

    def __init__(self, name: str = "", *, camera_factory: Callable[..., Any] | None = None, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self._factory = camera_factory or _pyvirtualcam_camera
        self._camera = None

    def open(self, size_wh: tuple[int, int]) -> None:
        if not sys.platform.startswith("linux") and self._factory is _pyvirtualcam_camera:
            raise OutputUnavailable(f"v4l2loopback is Linux only (this is {sys.platform}); "
                                    "use spout: on Windows or syphon: on macOS")
        device = self.spec.name or None
        if device and self._factory is _pyvirtualcam_camera and not Path(device).exists():
            raise FileNotFoundError(f"{device} does not exist; load the module: sudo modprobe v4l2loopback "
                                    f"video_nr={device.removeprefix('/dev/video')} exclusive_caps=1")
        w, h = size_wh
        self._camera = self._factory(width=w, height=h, fps=self.fps, device=device)

    def send(self, frame: np.ndarray) -> None:
        self._camera.send(np.ascontiguousarray(frame))

    def close(self) -> None:
        cam, self._camera = self._camera, None
        if cam is not None:
            cam.close()

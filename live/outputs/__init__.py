"""Video out to the rest of the rig: NDI, v4l2loopback, Spout, Syphon, and an MJPEG preview.

Each output is a stage of its own (:mod:`live.outputs.base`) fed the frame the
screen shows, post effects and without the HUD; :class:`OutputSet` is what the
app holds::

    outputs = OutputSet.from_config(preset.outputs)   # [outputs]: targets, size, fps, preview_*
    outputs.start()
    outputs.offer(shown)              # display loop, every presented frame: one copy, never blocks
    outputs.hud()                     # {"ndi:m2v": "120 sent, 0 dropped"}
    outputs.problem_lines(recent_s=5) # errors for the HUD and --stats
    outputs.stats()                   # {"ndi:m2v": {"sent", "dropped", "errors", ...}}
    outputs.stop()

:func:`availability` says which kinds this machine can run, and why not (``m2v outputs``).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from core.errors import ConfigError
from live.outputs.base import Output, OutputSpec, OutputUnavailable

log = logging.getLogger(__name__)

#: kind -> (module, class, default NAME, what NAME is)
KINDS: dict[str, tuple[str, str, str, str]] = {
    "ndi": ("live.outputs.ndi", "NdiOutput", "m2v", "the NDI source name"),
    "v4l2": ("live.outputs.v4l2", "V4l2Output", "", "a v4l2loopback device, e.g. /dev/video10"),
    "spout": ("live.outputs.spout", "SpoutOutput", "m2v", "the Spout sender name"),
    "syphon": ("live.outputs.syphon", "SyphonOutput", "m2v", "the Syphon server name"),
}

__all__ = ["KINDS", "Output", "OutputSet", "OutputSpec", "OutputUnavailable", "Availability", "availability",
           "create_output", "parse_spec"]


def parse_spec(text: str) -> OutputSpec:
    """``"ndi:stage"`` -> OutputSpec("ndi", "stage"); ``"ndi"`` takes the kind's default name."""
    from core.presets import split_output

    try:
        kind, name = split_output(text)
    except ValueError as exc:
        raise ConfigError(f"unknown {exc}; e.g. ndi:stage or v4l2:/dev/video10 (see `m2v outputs`)") from None
    return OutputSpec(kind, name or KINDS[kind][2])


def create_output(spec: OutputSpec | str, **kwargs: Any) -> Output:
    """The output for ``spec`` (its library is imported only when it opens)."""
    if isinstance(spec, str):
        spec = parse_spec(spec)
    module, cls, _, _ = KINDS[spec.kind]
    return getattr(importlib.import_module(module), cls)(spec.name, **kwargs)


class OutputSet:
    """The outputs of one show, fed together from the display loop."""

    def __init__(self, outputs: Iterable[Output] = ()) -> None:
        self.outputs: list[Output] = list(outputs)
        labels = [o.label for o in self.outputs]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ConfigError(f"output {dup[0]!r} is listed twice; give each output its own NAME")

    @classmethod
    def from_config(cls, section: Any, *, audio_sr: int | None = None,
                    factory: Callable[..., Output] = create_output) -> "OutputSet":
        """Outputs from an ``[outputs]`` preset section (core.presets.OutputsSection).

        ``audio_sr``: the input's sample rate, for NDI outputs when ``ndi_audio`` is on.
        """
        from core.presets import parse_size

        size = parse_size(section.size) if section.size != "" else None
        outs = []
        for text in section.targets:
            spec = parse_spec(text)
            audio = {"audio_sr": audio_sr} if spec.kind == "ndi" and section.ndi_audio and audio_sr else {}
            outs.append(factory(spec, size_wh=size, fps=section.fps, retry_s=section.retry_s, **audio))
        if section.preview_port:
            from live.outputs.preview import MjpegPreview

            outs.append(MjpegPreview(port=section.preview_port, host=section.preview_host,
                                     allow=section.preview_allow or None, fps=section.preview_fps,
                                     max_side=section.preview_max_side, quality=section.preview_quality,
                                     retry_s=section.retry_s))
        return cls(outs)

    def __len__(self) -> int:
        return len(self.outputs)

    def __iter__(self):
        return iter(self.outputs)

    @property
    def preview(self):
        return next((o for o in self.outputs if o.kind == "preview"), None)

    def start(self) -> None:
        for out in self.outputs:
            out.start()

    def stop(self) -> None:
        for out in self.outputs:
            out.stop()

    def offer(self, frame: np.ndarray) -> None:
        """The shown frame to every output: copied once (the effects reuse their buffers), never blocking."""
        if not self.outputs:
            return
        shared = np.array(frame, dtype=np.uint8, copy=True)
        for out in self.outputs:
            out.offer(shared)

    def hud(self) -> dict[str, str]:
        return {o.label: (f"{o.counters['sent']} sent, {o.counters['dropped']} dropped"
                          + (f", {o.counters['errors']} errors" if o.counters["errors"] else ""))
                for o in self.outputs}

    def problem_lines(self, *, recent_s: float) -> list[str]:
        return [line for line in (o.problem(recent_s=recent_s) for o in self.outputs) if line]

    def stats(self) -> dict[str, dict]:
        return {o.label: o.stats() for o in self.outputs}

    def audio_sinks(self) -> list[Callable[[np.ndarray, float], None]]:
        """``write_audio`` of every output that carries the input audio (for the feature worker)."""
        return [o.write_audio for o in self.outputs if getattr(o, "audio_sr", None)]


# --- m2v outputs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Availability:
    kind: str
    usable: bool
    why: str  # what it needs, or why it cannot run here
    example: str


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def availability(*, platform: str | None = None, has_module: Callable[[str], bool] = _has,
                 loopback_devices: Callable[[], list[str]] | None = None) -> list[Availability]:
    """Each output kind (and the preview): usable on this machine, and why or why not."""
    from live.outputs.v4l2 import loopback_devices as _loopbacks

    platform = platform or sys.platform
    loopbacks = (loopback_devices or _loopbacks)()
    out = []
    if not has_module("cyndilib"):
        out.append(Availability("ndi", False, "cyndilib is not installed: pip install 'm2v[ndi]'", "ndi:stage"))
    else:
        out.append(Availability("ndi", True, "cyndilib (bundles the NDI runtime)", "ndi:stage"))
    if not platform.startswith("linux"):
        out.append(Availability("v4l2", False, f"Linux only (this is {platform})", "v4l2:/dev/video10"))
    elif not has_module("pyvirtualcam"):
        out.append(Availability("v4l2", False, "pyvirtualcam is not installed: pip install 'm2v[v4l2]'",
                                "v4l2:/dev/video10"))
    elif not loopbacks:
        out.append(Availability("v4l2", False, "no v4l2loopback device: sudo modprobe v4l2loopback "
                                "video_nr=10 exclusive_caps=1", "v4l2:/dev/video10"))
    else:
        out.append(Availability("v4l2", True, f"v4l2loopback: {', '.join(loopbacks)}", f"v4l2:{loopbacks[0]}"))
    for kind, plat, pkg, pip_name in (("spout", "win32", "SpoutGL", "spout"),
                                      ("syphon", "darwin", "syphon", "syphon")):
        os_name = {"win32": "Windows", "darwin": "macOS"}[plat]
        if platform != plat:
            out.append(Availability(kind, False, f"{os_name} only (this is {platform})", f"{kind}:m2v"))
        elif not has_module(pkg):
            out.append(Availability(kind, False, f"{pkg} is not installed: pip install 'm2v[{pip_name}]'",
                                    f"{kind}:m2v"))
        else:
            out.append(Availability(kind, True, pkg, f"{kind}:m2v"))
    jpeg = has_module("PIL")
    out.append(Availability("preview", jpeg, "MJPEG over HTTP (--preview-port N)" if jpeg
                            else "Pillow is not installed: pip install pillow", "--preview-port 8090"))
    return out

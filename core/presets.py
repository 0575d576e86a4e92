"""Presets: the one place settings live, checked against one schema.

A preset is a TOML file with a few top-level keys and one table per stage::

    description = "fast cuts, high rates"
    extends = "paper"            # optional: start from another preset

    [rate]
    max_steps_per_s = 40

Every field has a default, an allowed range or set of choices and a one-line
description (see :func:`schema_markdown`, or ``m2v presets schema``), so a
partial file is complete once resolved.  Resolution:

* Search path: ``$M2V_HOME/presets`` first, then the shipped ``presets/``; a user
  file named like a shipped one replaces it, and may ``extends`` the shipped
  file of the same name to change only a few fields.
* ``extends`` names another preset (or a path relative to the file); chains are
  followed to the root with cycle detection.  Tables merge deeply and the child
  wins; lists (prompt banks) are replaced whole.  ``name``, ``description`` and
  ``extends`` are never inherited.
* Validation reports every mistake at once, each with file, field path, the bad
  value and the allowed values.

Fields marked *reload* (all of ``[models]``, the OSC socket address, the video
outputs) need the models or a stage restarted; :func:`live_diff` sorts a change into fields that
can be applied at once and fields that need a reload.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Sequence, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from core.errors import ConfigError
from core.events import Consistency, QuantizeMode

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - python 3.10
    import tomli as tomllib

log = logging.getLogger(__name__)

META_KEYS = ("name", "description", "extends")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

# "flux": the analyzer's own band-wise log spectral flux (core.analyzer.BandFlux); the rest are aubio's.
AUBIO_ONSET_METHODS = ("flux", "energy", "hfc", "complex", "phase", "wphase", "specdiff", "kl", "mkl", "specflux")
#: Cutout augmentations (core.optimizer): flip, affine (rotate +-15 deg, zoom +-10 %), perspective (corner
#: warp), color (per-channel gain and offset), noise (Gaussian), erase (a random grey rectangle).
AUGMENTATIONS = ("flip", "affine", "perspective", "color", "noise", "erase")
DEFAULT_AUGMENTATIONS = ("flip", "color", "noise")
#: Autocast precisions of the optimizer step (core.accel.autocast_dtypes).
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "bf16-decode")
#: ``[guidance] compile``: eager, ``torch.compile`` of the step, or compiled with CUDA graphs (core.optimizer).
COMPILE_MODES = ("off", "default", "reduce-overhead")
SIZE_MIN, SIZE_MAX = 16, 2048  # pixels per side
SIZE_FORMS = f"S or 'WxH' with each side {SIZE_MIN}..{SIZE_MAX}, e.g. 256 or 640x360"
X264_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
)


def _f(description: str, default: Any = ..., *, factory: Any = None, allowed: str | None = None,
       reload: bool = False, **constraints: Any) -> Any:
    """A schema field: default, one-line description, optional 'allowed' text and reload flag."""
    extra: dict[str, Any] = {}
    if allowed:
        extra["allowed"] = allowed
    if reload:
        extra["reload"] = True
    kwargs: dict[str, Any] = dict(description=description, json_schema_extra=extra or None, **constraints)
    if factory is not None:
        return Field(default_factory=factory, **kwargs)
    return Field(default, **kwargs)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WeightedPrompt(_Section):
    """A text prompt and its weight (negative weights push away from the text)."""

    text: str = _f("prompt text, encoded with CLIP's text encoder", "", min_length=1)
    weight: float = _f("relative weight of this prompt", 1.0, ge=-10.0, le=10.0)


class ModelsSection(_Section):
    set: str = _f(
        "model set: 'default', 'tiny', a registry name, or a path to a folder with m2v-models.json",
        "default", min_length=1, allowed="'default', 'tiny', a registry name or a path", reload=True,
    )
    size: Union[int, str] = _f(
        "output image size in pixels: S for a square, or 'WxH' (VQGAN f16 works in multiples of 16)",
        256, allowed=SIZE_FORMS, reload=True,
    )
    device: str = _f(
        "compute device: auto picks cuda when present", "auto",
        allowed="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'", reload=True,
    )

    @field_validator("size", mode="before")
    @classmethod
    def _check_size(cls, value: Any) -> int | str:
        try:
            return normalize_size(value)
        except ValueError:
            raise ValueError("not a size") from None  # the error report adds the value and SIZE_FORMS

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", value):
            raise ValueError("device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
        return value

    @property
    def size_wh(self) -> tuple[int, int]:
        """The size as (width, height) in pixels."""
        return parse_size(self.size)


def parse_size(value: Any) -> tuple[int, int]:
    """An image size as (width, height) in pixels: ``64`` or ``"64"`` (a square) or ``"640x360"``.

    The one reader of sizes: presets, show files, ``--size`` and OSC preset switches all come here.
    Raises ValueError naming the accepted forms.
    """
    sides: tuple[int, int] | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        sides = (value, value)
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", value)
        if m:
            sides = (int(m.group(1)), int(m.group(2) or m.group(1)))
    if sides is None or not all(SIZE_MIN <= s <= SIZE_MAX for s in sides):
        raise ValueError(f"size {value!r}: expected {SIZE_FORMS}")
    return sides


def normalize_size(value: Any) -> int | str:
    """The stored form of a size: an int for a square (``"64"`` -> 64), else ``"WxH"``."""
    w, h = parse_size(value)
    return w if w == h else f"{w}x{h}"


class GuidanceSection(_Section):
    cutouts: int = _f("random cutouts of the image encoded by CLIP per optimizer step", 32, ge=1, le=512)
    cut_min_frac: float = _f("smallest cutout side as a fraction of the image's shorter side", 0.25,
                             ge=0.05, le=1.0)
    cut_pow: float = _f("cutout size exponent: >1 favours small cutouts, <1 large ones", 1.0, ge=0.1, le=5.0)
    augment: Union[bool, list[Literal[AUGMENTATIONS]]] = _f(  # type: ignore[valid-type]
        f"cutout augmentations: true = {', '.join(DEFAULT_AUGMENTATIONS)}; false = none; or a list",
        True, allowed=f"true, false, or a list of {', '.join(AUGMENTATIONS)}",
    )
    lr: float = _f("optimizer (Adam) learning rate on the VQGAN latent", 0.1, gt=0.0, le=10.0)
    seed: int = _f("random seed for the initial latent and the cutouts (CLI --seed overrides)", 0,
                   ge=0, le=2**32 - 1, reload=True)
    consistency: Consistency = _f(
        "temporal consistency: 'average' = paper Eq. 2 target (prev + current)/2, "
        "'l1' = Eq. 1 pull of z towards the previous scene's z, 'none'", "average",
    )
    l1_weight: float = _f("weight of the Eq. 1 L1 pull (consistency = 'l1' only)", 0.1, ge=0.0, le=100.0)
    crossfade_steps: int = _f("optimizer steps over which a new target is blended in (0 = cut)", 0,
                              ge=0, le=10000)
    style_prompts: list[WeightedPrompt] = _f("global style prompts added to every target",
                                             factory=list, max_length=32)
    style_weight: float = _f("weight of the style prompts relative to the current target", 0.3,
                             ge=0.0, le=10.0)
    prompt_bank: list[WeightedPrompt] = _f(
        "prompts selectable live by number key or OSC (entry 1 = key 1)", factory=list, max_length=100,
    )
    init: str = _f(
        "initial image: 'random' latent, or a path to an image whose VQGAN encoding is the start "
        "(relative to the working directory)",
        "random", min_length=1, allowed="'random' or a path to an image", reload=True,
    )
    compile: Literal[COMPILE_MODES] = _f(  # type: ignore[valid-type]
        "torch.compile of the optimizer step: 'off' (eager), 'default', or 'reduce-overhead' (CUDA graphs "
        "on CUDA); the first steps compile (seconds to minutes), later target, anchor and cutout changes do not",
        "off", reload=True,
    )

    def augmentations(self) -> tuple[str, ...]:
        """The augmentation names in effect (``True`` expands to the default set)."""
        if self.augment is True:
            return DEFAULT_AUGMENTATIONS
        if self.augment is False:
            return ()
        return tuple(self.augment)


class RateSection(_Section):
    min_steps_per_s: float = _f("optimizer steps per second at intensity 0", 4.0, ge=0.1, le=1000.0)
    max_steps_per_s: float = _f("optimizer steps per second at intensity 1", 24.0, ge=0.1, le=1000.0)
    curve_gamma: float = _f("intensity->rate curve: rate = min + (max - min) * I**gamma "
                            "(1 = linear, >1 calmer, <1 livelier)", 1.0, ge=0.1, le=10.0)

    @model_validator(mode="after")
    def _check_order(self) -> "RateSection":
        if self.min_steps_per_s > self.max_steps_per_s:
            raise ValueError(
                f"min_steps_per_s ({self.min_steps_per_s}) must be <= max_steps_per_s "
                f"({self.max_steps_per_s})")
        return self

    def steps_per_s(self, *, intensity: float, rate_range: tuple[float, float] | None = None) -> float:
        """The optimizer rate for a 0..1 intensity (clipped into 0..1).

        ``rate_range`` replaces (min, max) when a live control (``/m2v/rate``) moved them.
        """
        lo, hi = rate_range or (self.min_steps_per_s, self.max_steps_per_s)
        i = min(max(float(intensity), 0.0), 1.0)
        return lo + (hi - lo) * i**self.curve_gamma


class OnsetsSection(_Section):
    method: Literal[AUBIO_ONSET_METHODS] = _f(  # type: ignore[valid-type]
        "onset detection function: 'flux' (band-wise log spectral flux over a noise floor; held on SoundFont "
        "instruments and noisy mixes in scripts/bench_audio.py) or one of aubio's", "flux",
        reload=True)
    threshold: float = _f("peak-picking threshold, lower = more onsets (flux: dB of mean band rise; aubio's "
                          "methods: their own scale, e.g. energy 0.3, hfc 0.058, specflux 0.18)", 0.3, ge=0.0, le=10.0)
    whitening: bool = _f("aubio's methods only: adaptive spectral whitening before the onset function "
                         "(aubio's own choice is on for specflux, complex, kl, mkl)", False)
    compression: float = _f("aubio's methods only: log compression of the spectrum, log(1 + c*|X|), before the "
                            "onset function; 0 = off ('flux' works in dB already)", 0.0, ge=0.0, le=1000.0)
    hop: Literal[256, 512] = _f("analysis hop in samples (256: lower onset latency; 512: half the cost)", 256,
                                reload=True)
    min_ioi_s: float = _f("detector: onsets closer than this to the previous one are merged", 0.03,
                          ge=0.0, le=1.0)
    refractory_s: float = _f("director: onsets within this time after an accepted one are ignored", 0.1,
                             ge=0.0, le=5.0)
    min_scene_s: float = _f("director: a scene (target) lasts at least this long before the next change",
                            0.5, ge=0.0, le=60.0)
    max_scene_s: float = _f("director: with no accepted onset for this long, the audio target is renewed from "
                            "the latest audio (sustained sound still moves the picture); 0 = onsets only",
                            0.0, ge=0.0, le=600.0)
    silence_db: float = _f("blocks quieter than this (dBFS) produce no onsets", -70.0, ge=-120.0, le=0.0)
    quantize: QuantizeMode = _f(
        "apply cues at once, or at the next beat or bar", "off")


class IntensitySection(_Section):
    window_s: float = _f("rolling normalization window for the 0..1 intensity", 30.0, ge=1.0, le=600.0,
                         reload=True)
    low_percentile: float = _f("percentile of the window mapped to intensity 0", 5.0, ge=0.0, le=50.0)
    high_percentile: float = _f("percentile of the window mapped to intensity 1", 95.0, ge=50.0, le=100.0)
    attack_s: float = _f("smoothing time constant when intensity rises", 0.02, ge=0.0, le=10.0)
    release_s: float = _f("smoothing time constant when intensity falls (0.3 s still shows half-second "
                          "phrase dynamics)", 0.3, ge=0.0, le=30.0)

    @model_validator(mode="after")
    def _check_order(self) -> "IntensitySection":
        if self.low_percentile >= self.high_percentile:
            raise ValueError(f"low_percentile ({self.low_percentile}) must be < high_percentile "
                             f"({self.high_percentile})")
        return self


class EffectsSection(_Section):
    pulse: float = _f("fast path: brightness pulse on each onset", 0.3, ge=0.0, le=1.0)
    zoom: float = _f("fast path: zoom driven by intensity", 0.1, ge=0.0, le=1.0)
    shift: float = _f("fast path: image shift driven by intensity", 0.05, ge=0.0, le=1.0)
    feedback: float = _f("fast path: blend of the previous displayed frame (trails)", 0.0, ge=0.0, le=1.0)
    flash: float = _f("fast path: white flash on strong onsets", 0.0, ge=0.0, le=1.0)


class RecordSection(_Section):
    fps: int = _f("recorded video frame rate", 30, ge=1, le=240)
    crf: int = _f("H.264 constant rate factor: lower = better quality, bigger files", 18, ge=0, le=51)
    preset: Literal[X264_PRESETS] = _f("x264 speed preset: faster = less CPU, bigger files",  # type: ignore[valid-type]
                                       "veryfast")
    audio_bitrate_kbps: int = _f("AAC audio bitrate", 192, ge=32, le=512)


_EOS_KEY_RE = re.compile(r"^\d+(\.\d+)?/\d+(\.\d+)?$")


class OscSection(_Section):
    prefix: str = _f("address prefix of every m2v OSC message", "/m2v",
                     pattern=r"^(/[A-Za-z0-9_.-]+)+$", allowed="'/word' or '/word/word...'", reload=True)
    host: str = _f("address to listen on (127.0.0.1 = this machine only; 0.0.0.0 = all)", "127.0.0.1",
                   min_length=1, reload=True)
    port: int = _f("UDP port to listen on", 9000, ge=1, le=65535, reload=True)
    allow: list[str] = _f("sender IP addresses accepted (empty = any sender)", factory=list)
    feedback: str = _f("'host:port' to send state feedback to ('' = off)", "",
                       pattern=r"^$|^[^:\s]+:\d{1,5}$", allowed="'' or 'host:port'")
    eos_cues: dict[str, str] = _f(
        "ETC Eos cue -> lyric text: keys 'list/cue' (e.g. '1/12.5'), values the lyric shown",
        factory=dict, allowed="a table of 'list/cue' = \"text\"",
    )

    @field_validator("eos_cues")
    @classmethod
    def _check_eos_keys(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not _EOS_KEY_RE.match(k)]
        if bad:
            raise ValueError(f"Eos cue keys must look like 'list/cue' (e.g. '1/12.5'); bad: {bad}")
        return value


OUTPUT_KINDS = ("ndi", "v4l2", "spout", "syphon")
OUTPUT_FORMS = "a list of 'KIND[:NAME]' with KIND one of " + ", ".join(OUTPUT_KINDS) + ", e.g. [\"ndi:stage\"]"


def split_output(text: str) -> tuple[str, str]:
    """``"ndi:stage"`` -> ("ndi", "stage"); ``"v4l2"`` -> ("v4l2", ""). The one reader of output specs.

    Raises ValueError naming the kinds.
    """
    kind, _, name = str(text).strip().partition(":")
    if kind.lower() not in OUTPUT_KINDS:
        raise ValueError(f"output {text!r}: KIND must be one of {', '.join(OUTPUT_KINDS)} (write KIND[:NAME])")
    return kind.lower(), name.strip()


class OutputsSection(_Section):
    targets: list[str] = _f(
        "video outputs beside the display, each 'KIND[:NAME]': ndi:NAME (NDI source), v4l2:/dev/videoN "
        "(v4l2loopback webcam), spout:NAME (Windows), syphon:NAME (macOS); `m2v outputs` lists what runs here",
        factory=list, allowed=OUTPUT_FORMS, max_length=16, reload=True)
    size: Union[int, str] = _f(
        "resolution every output sends (the picture is letterboxed to fit); '' = the shown frame's size",
        "", allowed="'' or " + SIZE_FORMS, reload=True)
    fps: float = _f("frames a second each output sends, at most (the display rate bounds it)", 30.0,
                    ge=1.0, le=240.0, reload=True)
    retry_s: float = _f("seconds between attempts to reopen an output that failed (a receiver gone, "
                        "a device missing)", 2.0, ge=0.1, le=600.0, reload=True)
    ndi_audio: bool = _f("NDI outputs also carry the input audio (mono, at the input's sample rate)", False,
                         reload=True)
    preview_port: int = _f("TCP port of the MJPEG preview over HTTP (0 = off)", 0, ge=0, le=65535, reload=True)
    preview_host: str = _f("address the preview listens on (127.0.0.1 = this machine only; 0.0.0.0 = all)",
                           "127.0.0.1", min_length=1, reload=True)
    preview_allow: list[str] = _f("preview client IP addresses or CIDR networks accepted (empty = any client)",
                                  factory=list, allowed="a list of IP addresses or CIDR networks")
    preview_fps: float = _f("preview frames a second (at most 10: a preview, not a feed)", 10.0, ge=0.5, le=10.0,
                            reload=True)
    preview_max_side: int = _f("longer side of the preview's JPEGs in pixels (frames are scaled down, "
                               "never up)", 512, ge=16, le=2048, reload=True)
    preview_quality: int = _f("JPEG quality of the preview", 70, ge=10, le=95, reload=True)

    @field_validator("targets")
    @classmethod
    def _check_targets(cls, value: list[str]) -> list[str]:
        for text in value:
            split_output(text)
        return value

    @field_validator("size", mode="before")
    @classmethod
    def _check_size(cls, value: Any) -> int | str:
        if value == "":
            return ""
        try:
            return normalize_size(value)
        except ValueError:
            raise ValueError("not a size") from None

    @field_validator("preview_allow")
    @classmethod
    def _check_allow(cls, value: list[str]) -> list[str]:
        import ipaddress

        for item in value:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
        return value
class MidiSection(_Section):
    ports: list[str] = _f("MIDI inputs to open: port-name words each, or 'all' (--midi replaces the list)",
                          factory=list, reload=True)
    api: Literal["auto", "alsa", "jack"] = _f("MIDI system: the ALSA sequencer, JACK, or auto (ALSA when present)",
                                              "auto", reload=True)
    map: str = _f("MIDI map for every port ('' = chosen by port name; see `m2v midi maps`)", "", reload=True)


class TempoSection(_Section):
    latency_ms: float = _f("how late the audio input is behind the room (a front-of-house feed): beats found in "
                           "the audio move this much earlier; Link, MIDI clock and taps are not moved",
                           0.0, ge=-500.0, le=2000.0)
    link: bool = _f("join an Ableton Link session (needs the GPL extra: pip install 'm2v[link]')", False,
                    reload=True)


class RenderSection(_Section):
    segments: Literal["beats", "onsets"] = _f(
        "offline scene boundaries: librosa beats (paper) or onsets", "beats")
    rate: Literal["paper", "script"] = _f(
        "offline rate mapping: 'paper' = mean segment intensity; 'script' = authors' script "
        "(max intensity, song-global normalization)", "paper")
    min_ips: float = _f("offline iterations (frames) per second at intensity 0", 10.0, ge=0.1, le=1000.0)
    max_ips: float = _f("offline iterations (frames) per second at intensity 1", 120.0, ge=0.1, le=1000.0)
    fps: int = _f("frame rate of the rendered video file", 30, ge=1, le=240)
    chunk_min_s: float = _f(
        "split render (--ray): shortest chunk of a song one worker renders, cut at segment boundaries",
        30.0, ge=0.5, le=3600.0)
    warmup_s: float = _f(
        "split render (--ray): seconds of segments before a chunk run without writing frames, so the "
        "chunk starts near the state the single-machine render would have (0: cold start)",
        4.0, ge=0.0, le=120.0)
    seam_fade_s: float = _f(
        "split render (--ray): seconds over which a chunk's first frames dissolve from the frames the "
        "previous chunk renders on past its end, so a seam does not jump (0: hard cut)",
        1.0, ge=0.0, le=10.0)

    @model_validator(mode="after")
    def _check_order(self) -> "RenderSection":
        if self.min_ips > self.max_ips:
            raise ValueError(f"min_ips ({self.min_ips}) must be <= max_ips ({self.max_ips})")
        return self


SECTIONS: dict[str, type[_Section]] = {
    "models": ModelsSection,
    "guidance": GuidanceSection,
    "rate": RateSection,
    "onsets": OnsetsSection,
    "intensity": IntensitySection,
    "effects": EffectsSection,
    "record": RecordSection,
    "osc": OscSection,
    "outputs": OutputsSection,
    "midi": MidiSection,
    "tempo": TempoSection,
    "render": RenderSection,
}


class Preset(_Section):
    """A fully resolved preset: every section present, every field valid."""

    name: str = _f("preset name; defaults to (and must equal) the file name without .toml", "custom",
                   pattern=NAME_RE.pattern, allowed="letters, digits, '_', '-', '.'")
    description: str = _f("one line shown by 'm2v presets list'", "")
    extends: str | None = _f("preset (name or relative path) this one starts from", None,
                             allowed="a preset name or a path to a .toml file")
    models: ModelsSection = _f("which models, at what size, on which device", factory=ModelsSection)
    guidance: GuidanceSection = _f("CLIP guidance and optimizer", factory=GuidanceSection)
    rate: RateSection = _f("live optimizer rate from intensity", factory=RateSection)
    onsets: OnsetsSection = _f("onset detection and scene changes", factory=OnsetsSection)
    intensity: IntensitySection = _f("adaptive 0..1 intensity", factory=IntensitySection)
    effects: EffectsSection = _f("fast-path display effects", factory=EffectsSection)
    record: RecordSection = _f("recording to a video file", factory=RecordSection)
    osc: OscSection = _f("OSC control", factory=OscSection)
    outputs: OutputsSection = _f("video outputs to the rig (NDI, v4l2loopback, Spout, Syphon) and the MJPEG preview",
                                 factory=OutputsSection)
    midi: MidiSection = _f("MIDI controllers", factory=MidiSection)
    tempo: TempoSection = _f("the beat grid's sources", factory=TempoSection)
    render: RenderSection = _f("offline Music2Video render", factory=RenderSection)

    _sources: tuple[Path, ...] = PrivateAttr(default=())

    @property
    def sources(self) -> tuple[Path, ...]:
        """Files this preset was resolved from, the preset's own file first, then its extends chain."""
        return self._sources


@dataclasses.dataclass(frozen=True)
class PresetInfo:
    """One line of ``m2v presets list``."""

    name: str
    description: str
    source: Path
    error: str | None = None  # set when the file does not validate


# --- defaults ------------------------------------------------------------------------------------


def default_preset_name(*, command: Literal["render", "live"], cuda: bool) -> str:
    """The preset used when none is given.

    ``render`` reproduces the paper, so it uses ``paper``.  ``live`` uses ``club`` (fast cuts,
    strong pulse) with a GPU and ``cpu`` without one, where club's rates cannot be reached.
    """
    if command == "render":
        return "paper"
    return "club" if cuda else "cpu"


# --- locating files ------------------------------------------------------------------------------


def search_dirs(user_dir: Path | str | None = None) -> list[Path]:
    """Preset folders, highest priority first: the user folder, then the shipped one."""
    from core.paths import shipped_presets_dir, user_presets_dir

    user = Path(user_dir) if user_dir is not None else user_presets_dir()
    return [user, shipped_presets_dir()]


def _is_path(name_or_path: str | Path) -> bool:
    if isinstance(name_or_path, Path):
        return True
    return "/" in name_or_path or "\\" in name_or_path or name_or_path.endswith(".toml")


def _available(dirs: Sequence[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in dirs:
        if d.is_dir():
            for p in sorted(d.glob("*.toml")):
                found.setdefault(p.stem, p)
    return dict(sorted(found.items()))


def _find_named(name: str, dirs: Sequence[Path], *, all_dirs: Sequence[Path]) -> Path:
    for d in dirs:
        p = d / f"{name}.toml"
        if p.is_file():
            return p
    names = list(_available(all_dirs))
    hint = difflib.get_close_matches(name, names, n=1)
    did_you_mean = f" Did you mean '{hint[0]}'?" if hint else ""
    raise ConfigError(
        f"unknown preset {name!r}; available: {', '.join(names) or '(none)'}.{did_you_mean} "
        f"Add your own as {all_dirs[0] / (name + '.toml')}, or pass a path to a .toml file.")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


@dataclasses.dataclass
class _Source:
    path: Path
    data: dict[str, Any]


def _dir_index(path: Path, dirs: Sequence[Path]) -> int | None:
    parent = path.resolve().parent
    for i, d in enumerate(dirs):
        try:
            if d.resolve() == parent:
                return i
        except OSError:
            continue
    return None


def _resolve_chain(name_or_path: str | Path, dirs: Sequence[Path]) -> list[_Source]:
    """The file and its extends chain, child first; ConfigError on a missing parent or a cycle."""
    if _is_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: preset file not found")
    else:
        _check_name(str(name_or_path))
        path = _find_named(str(name_or_path), dirs, all_dirs=dirs)
    chain: list[_Source] = []
    seen: list[Path] = []
    while True:
        real = path.resolve()
        if real in seen:
            loop = " -> ".join(str(p) for p in [*seen, real])
            raise ConfigError(f"extends cycle: {loop}; remove 'extends' from one of these files")
        seen.append(real)
        data = _read_toml(path)
        chain.append(_Source(path, data))
        parent = data.get("extends")
        if parent is None:
            return chain
        if not isinstance(parent, str) or not parent:
            raise ConfigError(f"{path}: extends: must be a preset name or a path; got {parent!r}")
        if _is_path(parent):
            path = (path.parent / parent).expanduser()
            if not path.is_file():
                raise ConfigError(f"{chain[-1].path}: extends: file {parent!r} not found (looked at {path})")
            continue
        _check_name(parent, where=f"{path}: extends")
        idx = _dir_index(path, dirs)
        # A user file 'paper.toml' with extends = "paper" means the shipped paper: skip its own folder.
        start = idx + 1 if (idx is not None and parent == path.stem) else 0
        try:
            path = _find_named(parent, dirs[start:], all_dirs=dirs)
        except ConfigError as exc:
            raise ConfigError(f"{chain[-1].path}: extends: {exc}") from None


def _check_name(name: str, *, where: str = "preset name") -> None:
    if not NAME_RE.match(name):
        raise ConfigError(f"{where}: {name!r} is not a valid preset name; use letters, digits, '_', '-', '.'")


# --- merging and validating ---------------------------------------------------------------------


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: tables merge recursively, everything else (lists too) is replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _merge_chain(chain: Sequence[_Source]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for src in reversed(chain):
        data = src.data if src is chain[0] else {k: v for k, v in src.data.items() if k not in META_KEYS}
        merged = deep_merge(merged, data)
    merged.setdefault("name", chain[0].path.stem)
    return merged


def _loc_text(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _field_for(loc: Sequence[Any], root: type[BaseModel] | None = None) -> tuple[type[BaseModel] | None, str | None, Any]:
    """Walk ``loc`` through the schema (``root``: the preset's, or another file's such as a MIDI map):
    (model that holds the last named field, field name, FieldInfo)."""
    model: type[BaseModel] | None = root or Preset
    holder, name, info = None, None, None
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        fi = model.model_fields.get(part)
        if fi is None:
            return model, part, None
        holder, name, info = model, part, fi
        model = _inner_model(fi.annotation)
    return holder, name, info


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def allowed_text(info: Any) -> str:
    """Human text for the allowed values of a schema field (its choices, range or format)."""
    extra = info.json_schema_extra or {}
    if isinstance(extra, dict) and "allowed" in extra:
        return str(extra["allowed"])
    ann = info.annotation
    if get_origin(ann) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(ann))
    lo = hi = None
    lo_op, hi_op = "<=", "<="
    parts = []
    for m in info.metadata:
        if isinstance(m, annotated_types.Ge):
            lo = m.ge
        elif isinstance(m, annotated_types.Gt):
            lo, lo_op = m.gt, "<"
        elif isinstance(m, annotated_types.Le):
            hi = m.le
        elif isinstance(m, annotated_types.Lt):
            hi, hi_op = m.lt, "<"
        elif isinstance(m, annotated_types.MinLen) and m.min_length:
            parts.append("non-empty")
        elif isinstance(m, annotated_types.MaxLen):
            parts.append(f"at most {m.max_length} entries")
    kind = _type_name(ann)
    if lo is not None or hi is not None:
        rng = f"{lo} {lo_op} " if lo is not None else ""
        rng += "x"
        rng += f" {hi_op} {hi}" if hi is not None else ""
        parts.insert(0, f"{kind} {rng}")
    else:
        parts.insert(0, kind)
    return ", ".join(parts)


def _type_name(ann: Any) -> str:
    origin = get_origin(ann)
    if origin is list:
        inner = get_args(ann)[0]
        return f"list of {_type_name(inner)}"
    if origin is dict:
        return "table"
    if origin is Union:
        return " or ".join(_type_name(a) for a in get_args(ann) if a is not type(None))
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        keys = ", ".join(ann.model_fields)
        return "{" + keys + "}"
    return {int: "int", float: "number", str: "string", bool: "true/false"}.get(ann, str(ann))


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _has_path(data: Mapping[str, Any], loc: Sequence[Any]) -> bool:
    node: Any = data
    for part in loc:
        if isinstance(part, int):
            return True  # the list itself is set here
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _format_error(err: Mapping[str, Any], chain: Sequence[_Source], root: type[BaseModel] | None = None) -> str:
    """One pydantic error as 'file: field.path: problem (got X); allowed: ...' (``root`` as in _field_for)."""
    loc = tuple(err["loc"])
    # Blame the child-most file that sets this field (a parent's mistake is the parent's).
    file = next((s.path for s in chain if loc and _has_path(s.data, loc)), chain[0].path)
    path = _loc_text(loc)
    if err["type"] == "extra_forbidden":
        holder, name, _ = _field_for(loc, root)
        fields = list(holder.model_fields) if holder is not None else []
        where = f"[{_loc_text(loc[:-1])}]" if len(loc) > 1 else "the top level"
        hint = difflib.get_close_matches(str(loc[-1]), fields, n=1)
        did_you_mean = f"; did you mean {hint[0]!r}?" if hint else ""
        return (f"{file}: {path}: unknown field (got {_short(err['input'])}); "
                f"allowed in {where}: {', '.join(fields)}{did_you_mean}")
    _, _, info = _field_for(loc, root)
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
        if info is not None and _inner_model(info.annotation) is not None:
            return f"{file}: {path}: {msg}"  # a cross-field rule: the message names the fields
    allowed = f"; allowed: {allowed_text(info)}" if info is not None else ""
    return f"{file}: {path}: {msg} (got {_short(err['input'])}){allowed}"


def _validate(merged: dict[str, Any], chain: Sequence[_Source]) -> tuple[Preset | None, list[str]]:
    errors: list[str] = []
    own_name = chain[0].data.get("name")
    if own_name is not None and own_name != chain[0].path.stem:
        errors.append(f"{chain[0].path}: name: {own_name!r} does not match the file name "
                      f"(got {own_name!r}); allowed: {chain[0].path.stem!r}, or leave name out")
    try:
        preset = Preset.model_validate(merged)
    except ValidationError as exc:
        errors.extend(_format_error(e, chain) for e in exc.errors())
        return None, errors
    if errors:
        return None, errors
    preset._sources = tuple(s.path for s in chain)
    return preset, []


def _load(name_or_path: str | Path, dirs: Sequence[Path]) -> tuple[Preset | None, list[str]]:
    try:
        chain = _resolve_chain(name_or_path, dirs)
    except ConfigError as exc:
        return None, [str(exc)]
    return _validate(_merge_chain(chain), chain)


# --- public API ----------------------------------------------------------------------------------


def load_preset(name_or_path: str | Path, *, user_dir: Path | str | None = None) -> Preset:
    """Load a preset by name (user folder first, then shipped) or by path, fully resolved.

    Raises :class:`ConfigError` listing every problem (unknown name with the available names,
    missing or cyclic ``extends``, TOML syntax, each invalid field with its allowed values).
    """
    preset, errors = _load(name_or_path, search_dirs(user_dir))
    if preset is None:
        if len(errors) == 1:
            raise ConfigError(errors[0])
        raise ConfigError(f"preset {str(name_or_path)!r} has {len(errors)} errors:\n  "
                          + "\n  ".join(errors))
    return preset


def list_presets(*, user_dir: Path | str | None = None) -> list[PresetInfo]:
    """Every preset visible by name, sorted; a user file shadows the shipped one of the same name."""
    dirs = search_dirs(user_dir)
    out = []
    for name, path in _available(dirs).items():
        preset, errors = _load(path, dirs)
        if preset is None:
            desc = _read_description(path)
            out.append(PresetInfo(name, desc, path, error=errors[0]))
        else:
            out.append(PresetInfo(name, preset.description, path))
    return out


def _read_description(path: Path) -> str:
    try:
        value = _read_toml(path).get("description", "")
    except ConfigError:
        return ""
    return value if isinstance(value, str) else ""


def validate_files(paths: Iterable[str | Path], *, user_dir: Path | str | None = None) -> list[str]:
    """Every error in every file (resolved with its extends chain), as 'file: field: problem' lines."""
    dirs = search_dirs(user_dir)
    errors: list[str] = []
    for p in paths:
        errors.extend(_load(Path(p), dirs)[1])
    return errors


def apply_overrides(preset: Preset, overrides: Mapping[str, Any], *, origin: str = "overrides") -> Preset:
    """``preset`` with ``overrides`` merged on top and revalidated (CLI flags, a show's song table).

    Keys may be nested tables (``{"rate": {"max_steps_per_s": 8}}``) or dotted
    (``{"rate.max_steps_per_s": 8}``).  ConfigError lists every invalid field.
    """
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        node = nested
        *head, last = key.split(".")
        for part in head:
            node = node.setdefault(part, {})
        node[last] = value
    base = preset.model_dump(exclude={"extends"})
    merged = deep_merge(base, nested)
    chain = [_Source(Path(origin), nested)]
    try:
        out = Preset.model_validate(merged)
    except ValidationError as exc:
        lines = [_format_error(e, chain) for e in exc.errors()]
        raise ConfigError(f"invalid overrides for preset {preset.name!r}:\n  " + "\n  ".join(lines)) from None
    out._sources = preset.sources
    return out


def _reload_field(section: str, field: str) -> bool:
    info = SECTIONS[section].model_fields[field]
    extra = info.json_schema_extra
    return bool(isinstance(extra, dict) and extra.get("reload"))


RELOAD_FIELDS: tuple[str, ...] = tuple(
    f"{s}.{f}" for s, cls in SECTIONS.items() for f in cls.model_fields if _reload_field(s, f))
"""Fields whose change needs a model reload or a stage restart (all of [models], OSC host/port)."""


def live_diff(old: Preset, new: Preset) -> tuple[list[str], list[str]]:
    """Changed fields as dotted paths, split into (applied live, need a reload).

    ``name``/``description``/``extends`` are not settings and are not reported; nor is ``[render]``,
    which only ``m2v render`` reads.
    """
    live: list[str] = []
    reload: list[str] = []
    for section in SECTIONS:
        if section == "render":  # read only by `m2v render`: nothing to apply or restart live
            continue
        a, b = getattr(old, section), getattr(new, section)
        for field in type(a).model_fields:
            if getattr(a, field) != getattr(b, field):
                path = f"{section}.{field}"
                (reload if path in RELOAD_FIELDS else live).append(path)
    return live, reload


# --- output ------------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON string escapes are valid TOML
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            return "[\n" + "".join(f"    {_toml_value(v)},\n" for v in value) + "]"
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def to_toml(preset: Preset) -> str:
    """The resolved preset as TOML that loads back to the same preset (``extends`` dropped)."""
    data = preset.model_dump(exclude={"extends"})
    lines = [f"{k} = {_toml_value(data[k])}" for k in ("name", "description")]
    for section in SECTIONS:
        lines += ["", f"[{section}]"]
        tables = []
        for key, value in data[section].items():
            if isinstance(value, dict):
                tables.append((key, value))
            else:
                lines.append(f"{key} = {_toml_value(value)}")
        for key, table in tables:
            lines += ["", f"[{section}.{key}]"]
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def to_json(preset: Preset) -> str:
    """The resolved preset as JSON (``extends`` dropped)."""
    return preset.model_dump_json(indent=2, exclude={"extends"})


def schema_markdown() -> str:
    """The schema as Markdown tables: field, default, allowed values, live/reload, description."""
    out = ["# Preset schema", "",
           "Generated by `m2v presets schema` from `core/presets.py` (do not edit by hand). *reload* fields need the models "
           "(or the OSC listener, or the outputs) restarted; all others apply live.", "",
           "## top level", "", "| field | default | allowed | description |", "|---|---|---|---|"]
    for name in META_KEYS:
        info = Preset.model_fields[name]
        out.append(f"| `{name}` | `{_default_text(info)}` | {allowed_text(info)} | {info.description} |")
    for section, cls in SECTIONS.items():
        out += ["", f"## [{section}]", "", Preset.model_fields[section].description or "", "",
                "| field | default | allowed | applies | description |", "|---|---|---|---|---|"]
        for name, info in cls.model_fields.items():
            applies = "reload" if _reload_field(section, name) else "live"
            out.append(f"| `{name}` | `{_default_text(info)}` | {allowed_text(info)} | {applies} | "
                       f"{info.description} |")
    out += ["", "`{text, weight}` entries: `text` non-empty string; `weight` number -10 <= x <= 10, "
            "default 1.0.", ""]
    return "\n".join(out).replace("|  |", "| |")


def _default_text(info: Any) -> str:
    value = info.get_default(call_default_factory=True)
    if isinstance(value, str):
        return json.dumps(value)
    if value is None:
        return "none"
    return _toml_value(value)

"""Model sets: a registry, a weight cache, safe loaders and a tiny test set.

Use :func:`resolve_spec` to turn what the user typed (``--models``) into a
:class:`ModelSetSpec`, and :func:`load_models` to get the loaded models::

    models = load_models("tiny", device="cpu")
    models.vqgan.decode(z_q); models.clip.model.encode_image(x); models.audio(wave_16k)
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from core.errors import ConfigError, DeviceError
from core.models.registry import MANIFEST, REGISTRY, ModelSetSpec, check_pair, list_sets, spec_from_manifest
from core.paths import models_dir

log = logging.getLogger(__name__)

__all__ = ["Models", "ModelSetSpec", "list_sets", "load_models", "resolve_device", "resolve_spec", "tiny_dir"]


@dataclass
class Models:
    name: str
    spec: ModelSetSpec
    device: torch.device
    vqgan: "object"  # core.models.vqgan.VQGAN
    clip: "object"  # core.models.clip.Clip
    audio: torch.nn.Module | None  # Wav2CLIP, input 16 kHz mono (B, samples)


def tiny_dir() -> Path:
    return models_dir() / "tiny"


def resolve_spec(name: str | None) -> ModelSetSpec:
    """``tiny`` | ``toy`` | a registry name | a folder with a manifest -> spec (tiny is written on first use)."""
    name = name or "default"
    if name == "toy":
        from core.models.toy import toy_dir

        folder = toy_dir()
        if not (folder / MANIFEST).is_file():
            raise ConfigError(f"the toy model set is not in this install ({folder} has no {MANIFEST}); "
                              "train it with `python scripts/train_toy.py` (about an hour on 2 CPU cores)")
        return spec_from_manifest(folder)
    if name == "tiny":
        folder = tiny_dir()
        if not (folder / MANIFEST).is_file():
            from core.models.tiny import write_tiny_models

            log.info("writing the tiny model set to %s", folder)
            write_tiny_models(folder)
        return spec_from_manifest(folder)
    if name in REGISTRY:
        return REGISTRY[name]
    path = Path(name).expanduser()
    if path.is_dir():
        return spec_from_manifest(path)
    raise ConfigError(
        f"unknown model set {name!r}; choose one of {', '.join(list_sets())}, or give a folder "
        f"with a {MANIFEST} manifest"
    )


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto`` -> cuda when available, else mps (Apple), else cpu; an asked-for device that is absent is an error."""
    device = "auto" if device is None else str(device)
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu or auto "
                          f"(torch {torch.__version__})")
    if device == "mps" and not has_mps:
        raise DeviceError("--device mps asked for, but torch sees no Apple Metal GPU (macOS on Apple silicon "
                          f"only); use --device cpu or auto (torch {torch.__version__})")
    if device not in ("cpu", "mps") and not re.fullmatch(r"cuda(:\d+)?", device):
        raise ConfigError(f"--device {device!r} is not one of auto, cpu, cuda, cuda:N, mps")
    return torch.device(device)


def load_models(name: str | ModelSetSpec | None = "default", *, device: str | torch.device | None = "auto",
                offline: bool = False, audio: bool = True, progress: bool = True) -> Models:
    """Resolve, fetch (unless ``offline``) and load a model set onto ``device``."""
    from core.models.audio import load_wav2clip
    from core.models.clip import load_clip
    from core.models.vqgan import load_vqgan
    from core.models.weights import ensure_files, file_path, set_root

    spec = name if isinstance(name, ModelSetSpec) else resolve_spec(name)
    check_pair(clip_space=spec.clip_space, audio_space=spec.audio_space)
    dev = resolve_device(device)
    ensure_files(spec, offline=offline, progress=progress)
    vqgan = load_vqgan(file_path(spec, spec.vqgan_config), file_path(spec, spec.vqgan_ckpt), device=dev)
    clip = load_clip(set_root(spec) / spec.clip_dir, device=dev)
    audio_model = None
    if audio and spec.audio_ckpt is not None:
        audio_model = load_wav2clip(file_path(spec, spec.audio_ckpt), device=dev)
    return Models(name=spec.name, spec=spec, device=dev, vqgan=vqgan, clip=clip, audio=audio_model)

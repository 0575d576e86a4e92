"""Wav2CLIP audio encoder from the checkpoint the wav2clip package downloads."""

from __future__ import annotations

from pathlib import Path

import torch

from core.errors import ModelLoadError
from core.models.safeload import load_tensors

#: Wav2CLIP's input sample rate.
WAV2CLIP_SR = 16_000


def load_wav2clip(path: str | Path, *, device: str | torch.device = "cpu") -> torch.nn.Module:
    """A frozen Wav2CLIP (ResNet audio encoder + MLP into CLIP ViT-B/32's space).

    The file is the state dict published with wav2clip (keys ``audio_encoder.*``
    and ``audio_transform.*``), read as tensors only.
    """
    from core import compat

    compat.ensure_audio()
    from wav2clip.model.encoder import ResNetExtractor

    path = Path(path)
    ckpt = load_tensors(path)
    if not isinstance(ckpt, dict) or not any(k.startswith("audio_encoder.") for k in ckpt):
        raise ModelLoadError(f"{path} is not a Wav2CLIP checkpoint (no audio_encoder.* tensors)")
    try:
        model = ResNetExtractor(checkpoint=ckpt, scenario="frozen", transform=True)
    except RuntimeError as exc:
        raise ModelLoadError(f"{path} does not fit the Wav2CLIP architecture: {str(exc).splitlines()[0]}") from exc
    return model.eval().requires_grad_(False).to(device)

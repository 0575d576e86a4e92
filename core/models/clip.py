"""open_clip CLIP from a local folder (``open_clip_config.json`` + weights)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from core.errors import ModelLoadError, WeightsMissingError

_WEIGHT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


@dataclass
class Clip:
    model: Any  # open_clip.CLIP
    tokenize: Callable[[list[str]], torch.Tensor]
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def load_clip(folder: str | Path, *, device: str | torch.device = "cpu") -> Clip:
    """Load a CLIP saved in open_clip's folder format, as the hub repos ship it.

    Refuses a folder without weights: open_clip itself would only warn and hand
    back a randomly initialised model.
    """
    from core import compat

    compat.ensure_vision()
    import open_clip

    folder = Path(folder)
    config = folder / "open_clip_config.json"
    if not config.is_file() or not any((folder / n).is_file() for n in _WEIGHT_NAMES):
        raise WeightsMissingError(
            f"CLIP folder {folder} needs open_clip_config.json and {_WEIGHT_NAMES[0]}; "
            "run `m2v weights download`"
        )
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}", device=device)
        tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    except (ValueError, RuntimeError, KeyError, OSError) as exc:
        raise ModelLoadError(f"CLIP in {folder} could not be loaded: {exc}") from exc
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    mean = tuple(getattr(model.visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN)
    std = tuple(getattr(model.visual, "image_std", None) or open_clip.OPENAI_DATASET_STD)
    model.eval().requires_grad_(False)
    return Clip(model=model, tokenize=tokenizer, image_size=size, mean=mean, std=std)

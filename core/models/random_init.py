"""A model set's real architectures with random weights, built in memory (no files).

For timing only: a step costs the same whatever the weight values, so the
benchmark can measure the ``default`` set on a machine without its 2 GB of
weights.  The images are meaningless.
"""

from __future__ import annotations

import contextlib
import io
import logging

import torch

from core.errors import ConfigError

log = logging.getLogger(__name__)

#: taming's vqgan_imagenet_f16_16384 (and f16_1024) architecture.
F16_DDCONFIG = {
    "double_z": False, "z_channels": 256, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
    "ch_mult": [1, 1, 2, 2, 4], "num_res_blocks": 2, "attn_resolutions": [16], "dropout": 0.0,
}

# name -> (VQGAN n_embed, embed_dim, open_clip model name, has audio encoder)
_ARCHS = {
    "default": (16384, 256, "ViT-B-32", True),
    "imagenet1024": (1024, 256, "ViT-B-32", True),
    "vitb16-text": (16384, 256, "ViT-B-16", False),
}


def build_random_models(name: str = "default", *, device: str | torch.device = "cpu", seed: int = 0,
                        audio: bool = True):
    """The set ``name`` (one of the registry's sets) with seeded random weights, as :class:`core.models.Models`."""
    from core import compat
    from core.models import Models, resolve_device
    from core.models.clip import Clip
    from core.models.registry import REGISTRY
    from core.models.vqgan import VQGAN

    if name not in _ARCHS:
        raise ConfigError(f"no random-weights architecture for {name!r}; choose one of {', '.join(_ARCHS)} "
                          "(the tiny set: load_models('tiny'))")
    n_embed, embed_dim, clip_name, has_audio = _ARCHS[name]
    dev = resolve_device(device)
    torch.manual_seed(seed)
    with contextlib.redirect_stdout(io.StringIO()):  # taming prints shapes while building
        vqgan = VQGAN(ddconfig=dict(F16_DDCONFIG), n_embed=n_embed, embed_dim=embed_dim)
    vqgan = vqgan.eval().requires_grad_(False).to(dev)

    compat.ensure_vision()
    import open_clip

    model = open_clip.create_model(clip_name, pretrained=None, force_quick_gelu=True, device=dev)
    model.eval().requires_grad_(False)
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    clip = Clip(model=model, tokenize=open_clip.get_tokenizer(clip_name), image_size=size,
                mean=tuple(open_clip.OPENAI_DATASET_MEAN), std=tuple(open_clip.OPENAI_DATASET_STD))

    audio_model = None
    if audio and has_audio:
        compat.ensure_audio()
        from wav2clip.model.encoder import ResNetExtractor

        audio_model = ResNetExtractor(scenario="supervise", transform=True).eval().requires_grad_(False).to(dev)
    return Models(name=f"{name} (random weights)", spec=REGISTRY[name], device=dev, vqgan=vqgan, clip=clip,
                  audio=audio_model)

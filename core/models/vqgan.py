"""VQGAN from a taming-transformers config + Lightning checkpoint.

Only taming's model modules are imported (Encoder, Decoder, VectorQuantizer2);
``taming.models.vqgan`` would pull in pytorch-lightning and the training
script, which running a VQGAN does not need.  The module names below match
taming's ``VQModel`` so its checkpoints load key for key.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.errors import ModelLoadError, WeightsMissingError
from core.models.safeload import load_tensors

_SUPPORTED_TARGETS = ("taming.models.vqgan.VQModel",)


def _taming():
    try:
        from taming.modules.diffusionmodules.model import Decoder, Encoder
        from taming.modules.vqvae.quantize import VectorQuantizer2
    except ModuleNotFoundError as exc:
        raise ModelLoadError(
            f"taming-transformers is not installed ({exc.name} missing); run "
            "`pip install --no-deps taming-transformers-rom1504 einops` (scripts/setup.sh does this)"
        ) from exc
    return Encoder, Decoder, VectorQuantizer2


class VQGAN(nn.Module):
    """Encoder, codebook and decoder of a taming VQModel (f16 by default)."""

    def __init__(self, *, ddconfig: dict[str, Any], n_embed: int, embed_dim: int) -> None:
        super().__init__()
        Encoder, Decoder, VectorQuantizer2 = _taming()
        self.encoder = Encoder(**ddconfig)
        with contextlib.redirect_stdout(io.StringIO()):  # taming's Decoder prints its z shape
            self.decoder = Decoder(**ddconfig)
        self.quantize = VectorQuantizer2(n_embed, embed_dim, beta=0.25)
        self.quant_conv = nn.Conv2d(ddconfig["z_channels"], embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, ddconfig["z_channels"], 1)
        self.embed_dim = embed_dim
        self.n_embed = n_embed
        # Spatial downsampling factor: one halving per level after the first.
        self.downsample = 2 ** (len(ddconfig["ch_mult"]) - 1)

    @property
    def codebook(self) -> torch.Tensor:
        """(n_embed, embed_dim) code vectors."""
        return self.quantize.embedding.weight

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1], (B, 3, H, W) -> continuous latents (B, embed_dim, H/f, W/f)."""
        return self.quant_conv(self.encoder(x))

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """Quantized latents -> images, roughly in [-1, 1]."""
        return self.decoder(self.post_quant_conv(z_q))


def read_config(path: Path) -> dict[str, Any]:
    """The ``model.params`` of a taming yaml, checked for what m2v can build."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not path.is_file():
        raise WeightsMissingError(f"VQGAN config {path} does not exist; run `m2v weights download`")
    try:
        cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        model = cfg["model"]
        params = model["params"]
        target = model.get("target", _SUPPORTED_TARGETS[0])
        dd = params["ddconfig"]
        out = {"ddconfig": dict(dd), "n_embed": int(params["n_embed"]), "embed_dim": int(params["embed_dim"])}
    except (OmegaConfBaseException, KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"{path} is not a taming VQGAN config ({exc!r}); expected model.params.ddconfig, "
                             "n_embed and embed_dim") from exc
    if target not in _SUPPORTED_TARGETS:
        raise ModelLoadError(f"{path}: model target {target!r} is not supported; m2v runs {_SUPPORTED_TARGETS}")
    return out


def load_vqgan(config_path: str | Path, ckpt_path: str | Path, *, device: str | torch.device = "cpu") -> VQGAN:
    """Build a frozen VQGAN from taming's yaml and a Lightning ``.ckpt`` (or a bare state dict)."""
    config_path, ckpt_path = Path(config_path), Path(ckpt_path)
    model = VQGAN(**read_config(config_path))
    ckpt = load_tensors(ckpt_path)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ModelLoadError(f"{ckpt_path} holds no state_dict; is it a VQGAN checkpoint?")
    # Training-only parts (the perceptual loss and discriminator) are not needed.
    state = {k: v for k, v in state.items() if not k.startswith("loss.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(
            f"{ckpt_path} does not fit {config_path}: {str(exc).splitlines()[0]} "
            "(config and checkpoint must come from the same model)"
        ) from exc
    return model.eval().requires_grad_(False).to(device)

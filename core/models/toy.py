"""The ``toy`` model set: the real architectures, small, *trained* on the toy world.

Unlike ``tiny`` (random weights, blind), the toy set sees: its CLIP was trained
contrastively on :mod:`core.toyworld` pictures and captions, its VQGAN to
reconstruct those pictures, its Wav2CLIP to map each synth sound class onto the
CLIP embedding of its paired picture.  So CLIP guidance works in it, and
:mod:`core.judge` can check the result without any model.

The files are written in the real formats (taming yaml + Lightning ``.ckpt``;
open_clip folder with the real BPE tokenizer; a Wav2CLIP state dict) and read
by the same loaders as ``default``.  Weights are stored as float16 to keep the
set small enough to ship in the package; the loaders cast them to float32.
``scripts/train_toy.py`` makes the set; ``core/models/toyset/`` is the shipped copy.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from core.models.registry import ModelSetSpec

TOY_SPACE = "m2v/toy"
#: Wav2CLIP's ResNet-18 at a quarter of the published width (same layout and keys).
AUDIO_WIDTH = 16

VQGAN_YAML = """\
model:
  base_learning_rate: 4.5e-06
  target: taming.models.vqgan.VQModel
  params:
    embed_dim: 16
    n_embed: 512
    ddconfig:
      double_z: false
      z_channels: 32
      resolution: 64
      in_channels: 3
      out_ch: 3
      ch: 32  # GroupNorm in taming uses 32 groups: channels must be multiples of 32
      # f8: a 64 px frame is an 8x8 grid of codes.  128 channels (4 per GroupNorm group) at the
      # full-resolution end of the decoder and the low end of the encoder: with 1 channel per
      # group their last GroupNorm erases every flat colour (measured: all pictures came back
      # orange and blue), as taming normalizes before conv_out with no skip around it.
      ch_mult: [4, 1, 2, 4]
      num_res_blocks: 1
      attn_resolutions: []
      dropout: 0.0
    lossconfig:
      target: taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator
      params:
        disc_conditional: false
        disc_in_channels: 3
        disc_start: 0
        disc_weight: 0.8
        codebook_weight: 1.0
"""

CLIP_CONFIG = {
    # embed_dim 512: Wav2CLIP's output size, like ViT-B/32's.
    "model_cfg": {
        "embed_dim": 512,
        "vision_cfg": {"image_size": 32, "layers": 3, "width": 128, "head_width": 32, "patch_size": 8},
        # context_length 16: toy captions are at most 10 tokens; the vocabulary is the real BPE one.
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    },
    "preprocess_cfg": {
        "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711],
    },
}

FILES = {
    "vqgan_config": "vqgan/toy.yaml",
    "vqgan_ckpt": "vqgan/toy.ckpt",
    "clip_dir": "clip",
    "audio": "wav2clip/toy-wav2clip.pt",
}


def toy_dir() -> Path:
    """The toy set shipped inside the package."""
    return Path(__file__).resolve().parent / "toyset"


def build_vqgan():
    from omegaconf import OmegaConf

    from core.models.vqgan import VQGAN

    params = OmegaConf.to_container(OmegaConf.create(VQGAN_YAML))["model"]["params"]
    return VQGAN(ddconfig=params["ddconfig"], n_embed=params["n_embed"], embed_dim=params["embed_dim"])


def build_clip():
    from core import compat

    compat.ensure_vision()
    import open_clip

    return open_clip.CLIP(**CLIP_CONFIG["model_cfg"])


def build_audio():
    from core.models.audio import build_wav2clip

    return build_wav2clip(width=AUDIO_WIDTH, mlp_units=(8 * AUDIO_WIDTH, 512, CLIP_CONFIG["model_cfg"]["embed_dim"]))


def _half(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: (v.detach().half() if v.is_floating_point() else v.detach()).contiguous().cpu()
            for k, v in state.items()}


def write_toy_models(dest: str | Path, *, vqgan, clip, audio, description: str, global_step: int = 0) -> ModelSetSpec:
    """Write trained toy models into ``dest`` in the real formats, with a manifest (SHA-256 of each file)."""
    from safetensors.torch import save_file

    from core.models.tiny import write_lightning_ckpt, write_manifest

    dest = Path(dest)
    for sub in ("vqgan", "clip", "wav2clip"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    (dest / FILES["vqgan_config"]).write_text(VQGAN_YAML)
    write_lightning_ckpt(dest / FILES["vqgan_ckpt"], _half(vqgan.state_dict()), global_step=global_step)
    (dest / FILES["clip_dir"] / "open_clip_config.json").write_text(json.dumps(CLIP_CONFIG, indent=2))
    save_file(_half(clip.state_dict()), str(dest / FILES["clip_dir"] / "open_clip_model.safetensors"))
    audio_state = {f"audio_encoder.{k}": v for k, v in audio.encoder.state_dict().items()}
    audio_state.update({f"audio_transform.{k}": v for k, v in audio.transform.state_dict().items()})
    torch.save(_half(audio_state), dest / FILES["audio"])
    return write_manifest(dest, name="toy", description=description,
                          vqgan=(FILES["vqgan_config"], FILES["vqgan_ckpt"]), clip_dir=FILES["clip_dir"],
                          audio=FILES["audio"], space=TOY_SPACE, default_size=64)

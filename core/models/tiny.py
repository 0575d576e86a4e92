"""The ``tiny`` model set: the real architectures, tiny and seeded, written as real files.

Used by tests and smoke runs on machines without the real weights.  Each file
has the on-disk format of its real counterpart (taming yaml + Lightning
``.ckpt`` with ``loss.*`` keys and Lightning metadata; an open_clip folder with
``open_clip_config.json`` + safetensors; a Wav2CLIP state dict ``.pt``), so the
same loaders read them.  The images it makes are noise-like: it is for checking
plumbing, timing and behaviour, not for looks.
"""

from __future__ import annotations

import contextlib
import json
import sys
import types
from pathlib import Path

import torch

from core.models.registry import MANIFEST, ModelSetSpec, WeightFile

TINY_SPACE = "m2v/tiny"  # tiny CLIP and tiny Wav2CLIP share this (fake) space

VQGAN_YAML = """\
model:
  base_learning_rate: 4.5e-06
  target: taming.models.vqgan.VQModel
  params:
    embed_dim: 8
    n_embed: 64
    ddconfig:
      double_z: false
      z_channels: 8
      resolution: 64
      in_channels: 3
      out_ch: 3
      ch: 32  # GroupNorm in taming uses 32 groups: channels must be multiples of 32
      ch_mult: [1, 1, 2, 2, 2]
      num_res_blocks: 1
      attn_resolutions: [4]
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
    # embed_dim 512: Wav2CLIP's output size is fixed at 512, like ViT-B/32's.
    "model_cfg": {
        "embed_dim": 512,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    },
    "preprocess_cfg": {
        "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711],
    },
}


@contextlib.contextmanager
def _lightning_names():
    """Lightning's checkpoint metadata names its callback classes; reproduce that.

    Real taming checkpoints key ``callbacks`` by the ModelCheckpoint class, which
    pickles as a global reference.  A throwaway module of that name lets the tiny
    checkpoint carry the same reference, so the loader's handling is exercised.
    """
    names = ["pytorch_lightning", "pytorch_lightning.callbacks", "pytorch_lightning.callbacks.model_checkpoint"]
    if any(n in sys.modules for n in names):
        yield sys.modules[names[-1]].ModelCheckpoint
        return
    mods = {n: types.ModuleType(n) for n in names}
    cls = type("ModelCheckpoint", (), {"__module__": names[-1]})
    mods[names[-1]].ModelCheckpoint = cls
    sys.modules.update(mods)
    try:
        yield cls
    finally:
        for n in names:
            sys.modules.pop(n, None)


def write_lightning_ckpt(path: Path, state_dict: dict[str, torch.Tensor], *, seed: int = 0,
                         global_step: int = 0) -> None:
    """Save a VQGAN state dict as taming's Lightning ``.ckpt`` is laid out, metadata included.

    Real checkpoints also carry training-only ``loss.*`` tensors (the perceptual
    loss and discriminator), which the loader must skip; two stand-ins are added.
    """
    state = dict(state_dict)
    g = torch.Generator().manual_seed(seed)
    state["loss.discriminator.main.0.weight"] = torch.randn(8, 3, 4, 4, generator=g)
    state["loss.logvar"] = torch.zeros(())
    with _lightning_names() as model_checkpoint:
        torch.save({
            "epoch": 0, "global_step": global_step, "pytorch-lightning_version": "1.0.8",
            "callbacks": {model_checkpoint: {"best_model_score": None}},
            "optimizer_states": [], "lr_schedulers": [], "state_dict": state,
        }, path)


def build_tiny_vqgan(seed: int = 0):
    from omegaconf import OmegaConf

    from core.models.vqgan import VQGAN

    params = OmegaConf.to_container(OmegaConf.create(VQGAN_YAML))["model"]["params"]
    torch.manual_seed(seed)
    model = VQGAN(ddconfig=params["ddconfig"], n_embed=params["n_embed"], embed_dim=params["embed_dim"])
    return model.eval()


def build_tiny_wav2clip(seed: int = 0) -> dict[str, torch.Tensor]:
    """A Wav2CLIP-architecture state dict with seeded random weights, keyed like the real file."""
    from core import compat

    compat.ensure_audio()
    from wav2clip.model.encoder import MLPLayers, ResNetExtractor

    torch.manual_seed(seed)
    enc = ResNetExtractor(scenario="supervise")
    mlp = MLPLayers(units=[512, 512, 512], dropout=0.1)
    state = {f"audio_encoder.{k}": v for k, v in enc.encoder.state_dict().items()}
    state.update({f"audio_transform.{k}": v for k, v in mlp.state_dict().items()})
    return state


def write_tiny_models(dest: str | Path, *, seed: int = 0) -> ModelSetSpec:
    """Write the tiny set into ``dest`` (with its manifest) and return its spec."""
    from core import compat

    compat.ensure_vision()
    import open_clip
    from safetensors.torch import save_file

    dest = Path(dest)
    (dest / "vqgan").mkdir(parents=True, exist_ok=True)
    (dest / "clip").mkdir(parents=True, exist_ok=True)
    (dest / "wav2clip").mkdir(parents=True, exist_ok=True)

    (dest / "vqgan/tiny.yaml").write_text(VQGAN_YAML)
    vq = build_tiny_vqgan(seed)
    write_lightning_ckpt(dest / "vqgan/tiny.ckpt", vq.state_dict(), seed=seed)

    torch.manual_seed(seed)
    clip = open_clip.CLIP(**CLIP_CONFIG["model_cfg"])
    (dest / "clip/open_clip_config.json").write_text(json.dumps(CLIP_CONFIG, indent=2))
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(dest / "clip/open_clip_model.safetensors"))

    torch.save(build_tiny_wav2clip(seed), dest / "wav2clip/tiny-wav2clip.pt")

    return write_manifest(
        dest, name="tiny",
        description=f"tiny seeded random models (seed {seed}) for tests and smoke runs; images are noise-like",
        vqgan=("vqgan/tiny.yaml", "vqgan/tiny.ckpt"), clip_dir="clip", audio="wav2clip/tiny-wav2clip.pt",
        space=TINY_SPACE, default_size=64,
    )


def write_manifest(dest: Path, *, name: str, description: str, vqgan: tuple[str, str], clip_dir: str,
                   audio: str | None, space: str, default_size: int) -> ModelSetSpec:
    """Write ``dest/m2v-models.json`` for files already in ``dest`` (sizes and SHA-256 taken now)."""
    from core.models.weights import sha256_of

    def wf(rel: str) -> WeightFile:
        p = dest / rel
        return WeightFile(rel, size_bytes=p.stat().st_size, sha256=sha256_of(p))

    spec = ModelSetSpec(
        name=name, description=description,
        vqgan_config=wf(vqgan[0]), vqgan_ckpt=wf(vqgan[1]),
        clip_dir=clip_dir, clip_files=(wf(f"{clip_dir}/open_clip_config.json"),
                                       wf(f"{clip_dir}/open_clip_model.safetensors")),
        clip_space=space, audio_ckpt=wf(audio) if audio else None, audio_space=space if audio else None,
        default_size=default_size, files_root=str(dest),
    )
    tmp = dest / (MANIFEST + ".tmp")
    tmp.write_text(spec.to_json())
    tmp.replace(dest / MANIFEST)  # the manifest last: a set is complete once it exists
    return spec

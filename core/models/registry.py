"""Named model sets: which files make up a VQGAN + CLIP (+ audio encoder) trio.

Users name a set (``--models default``); adding a set is adding an entry here,
not code.  A set can also be a folder with an ``m2v-models.json`` manifest of
the same shape (that is how the ``tiny`` test set is stored).

Each file entry has the URL it is fetched from, and its size and SHA-256 where
the publisher states them (OpenAI's CLIP URLs embed the SHA-256; the taming and
Wav2CLIP releases publish none, so those are checked by loading).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.errors import ConfigError, ModelLoadError

MANIFEST = "m2v-models.json"


@dataclass(frozen=True)
class WeightFile:
    """One file of a model set, stored at ``<set dir>/<path>``."""

    path: str
    url: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class ModelSetSpec:
    name: str
    description: str
    #: taming config yaml and Lightning checkpoint
    vqgan_config: WeightFile
    vqgan_ckpt: WeightFile
    #: open_clip model folder (``open_clip_config.json`` + weights), relative to the set dir
    clip_dir: str
    clip_files: tuple[WeightFile, ...]
    #: the embedding space the CLIP model defines, e.g. "openai/ViT-B-32"
    clip_space: str
    #: Wav2CLIP checkpoint, or None for a text/image-only set
    audio_ckpt: WeightFile | None = None
    #: the CLIP space the audio encoder was distilled into
    audio_space: str | None = None
    #: default generation size for this set (pixels, square)
    default_size: int = 256
    files_root: str = field(default="", compare=False)  # set for manifest-based sets

    def files(self) -> list[WeightFile]:
        out = [self.vqgan_config, self.vqgan_ckpt, *self.clip_files]
        if self.audio_ckpt is not None:
            out.append(self.audio_ckpt)
        return out

    def to_json(self) -> str:
        d = asdict(self)
        d.pop("files_root")
        return json.dumps(d, indent=2)


_HEIBOX = "https://heibox.uni-heidelberg.de/d/{id}/files/?p=%2F{sub}&dl=1"
_HF = "https://huggingface.co/{repo}/resolve/main/{file}"

_WAV2CLIP = WeightFile(
    "wav2clip/Wav2CLIP.pt",
    url="https://github.com/descriptinc/lyrebird-wav2clip/releases/download/v0.1.0-alpha/Wav2CLIP.pt",
)


def _openai_clip(repo: str, folder: str) -> tuple[WeightFile, ...]:
    return (
        WeightFile(f"{folder}/open_clip_config.json", url=_HF.format(repo=repo, file="open_clip_config.json")),
        WeightFile(f"{folder}/open_clip_model.safetensors", url=_HF.format(repo=repo, file="open_clip_model.safetensors")),
    )


def _vqgan(name: str, heibox_id: str) -> tuple[WeightFile, WeightFile]:
    return (
        WeightFile(f"vqgan/{name}.yaml", url=_HEIBOX.format(id=heibox_id, sub="configs%2Fmodel.yaml")),
        WeightFile(f"vqgan/{name}.ckpt", url=_HEIBOX.format(id=heibox_id, sub="ckpts%2Flast.ckpt")),
    )


_VQ16384 = _vqgan("vqgan_imagenet_f16_16384", "a7530b09fed84f80a887")
_VQ1024 = _vqgan("vqgan_imagenet_f16_1024", "8088892a516d4e3baf92")
_B32 = _openai_clip("timm/vit_base_patch32_clip_224.openai", "clip/ViT-B-32-openai")
_B16 = _openai_clip("timm/vit_base_patch16_clip_224.openai", "clip/ViT-B-16-openai")

REGISTRY: dict[str, ModelSetSpec] = {
    s.name: s
    for s in (
        ModelSetSpec(
            name="default",
            description="VQGAN ImageNet f16 16384 + CLIP ViT-B/32 (OpenAI) + Wav2CLIP (the paper's models)",
            vqgan_config=_VQ16384[0], vqgan_ckpt=_VQ16384[1],
            clip_dir="clip/ViT-B-32-openai", clip_files=_B32, clip_space="openai/ViT-B-32",
            audio_ckpt=_WAV2CLIP, audio_space="openai/ViT-B-32",
        ),
        ModelSetSpec(
            name="imagenet1024",
            description="VQGAN ImageNet f16 1024 (smaller codebook) + CLIP ViT-B/32 (OpenAI) + Wav2CLIP",
            vqgan_config=_VQ1024[0], vqgan_ckpt=_VQ1024[1],
            clip_dir="clip/ViT-B-32-openai", clip_files=_B32, clip_space="openai/ViT-B-32",
            audio_ckpt=_WAV2CLIP, audio_space="openai/ViT-B-32",
        ),
        ModelSetSpec(
            name="vitb16-text",
            description="VQGAN ImageNet f16 16384 + CLIP ViT-B/16 (OpenAI); text/lyric guidance only "
            "(Wav2CLIP lives in ViT-B/32's space, so no audio guidance)",
            vqgan_config=_VQ16384[0], vqgan_ckpt=_VQ16384[1],
            clip_dir="clip/ViT-B-16-openai", clip_files=_B16, clip_space="openai/ViT-B-16",
        ),
    )
}


def check_pair(*, clip_space: str, audio_space: str | None) -> None:
    """Refuse an audio encoder that was not distilled into this CLIP's space.

    Wav2CLIP was trained to match CLIP ViT-B/32's image embeddings; compared
    with any other CLIP its vectors are meaningless, so guidance would be noise.
    """
    if audio_space is not None and audio_space != clip_space:
        raise ModelLoadError(
            f"audio encoder belongs to CLIP '{audio_space}' but the CLIP model is '{clip_space}': "
            "audio guidance would be meaningless. Use a model set whose CLIP matches "
            f"(e.g. --models default), or one without an audio encoder for text-only guidance"
        )


def list_sets() -> list[str]:
    return sorted(REGISTRY) + ["tiny", "toy"]


def spec_from_manifest(folder: Path) -> ModelSetSpec:
    """Read a model set from ``folder/m2v-models.json``."""
    path = folder / MANIFEST
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{folder} has no {MANIFEST}; --models takes one of {', '.join(list_sets())} or a folder "
            "holding a model-set manifest"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path} is not valid JSON ({exc})") from exc

    def wf(x):
        return None if x is None else WeightFile(**x)

    try:
        return ModelSetSpec(
            **{k: v for k, v in d.items() if k not in {"vqgan_config", "vqgan_ckpt", "clip_files", "audio_ckpt"}},
            vqgan_config=wf(d["vqgan_config"]), vqgan_ckpt=wf(d["vqgan_ckpt"]),
            clip_files=tuple(wf(x) for x in d["clip_files"]), audio_ckpt=wf(d.get("audio_ckpt")),
            files_root=str(folder),
        )
    except (KeyError, TypeError) as exc:
        raise ModelLoadError(f"{path} is not a valid model-set manifest ({exc})") from exc

"""Wav2CLIP audio encoder from the checkpoint the wav2clip package downloads.

The published model is a ResNet-18 on a log spectrogram (base width 64) with an
MLP into CLIP ViT-B/32's 512-d space.  The same architecture at a narrower base
width (the ``toy`` set's, trained by the project, which has to fit in the
package) is keyed identically; the loader reads the width and the MLP sizes
from the file, and builds the published width with wav2clip's own classes.
"""

from __future__ import annotations

from pathlib import Path

import torch

from core.errors import ModelLoadError
from core.models.safeload import load_tensors

#: Wav2CLIP's input sample rate.
WAV2CLIP_SR = 16_000
#: The published model's base width (channels after its first convolution).
WAV2CLIP_WIDTH = 64


def build_wav2clip(*, width: int = WAV2CLIP_WIDTH, mlp_units: tuple[int, ...] = (512, 512, 512),
                   dropout: float = 0.1) -> torch.nn.Module:
    """A Wav2CLIP ``ResNetExtractor`` (with its MLP) at base ``width``; random weights, train mode.

    ``width`` 64 is the published model.  Narrower widths scale every stage
    (width, 2x, 4x, 8x channels) and keep the layout, the spectrogram front end
    and the forward pass of wav2clip's classes.
    """
    from core import compat

    compat.ensure_audio()
    from wav2clip.model.encoder import MLPLayers, ResNetExtractor
    from wav2clip.model.resnet import BasicBlock, ResNet

    class _ScaledResNet(ResNet):
        # wav2clip's ResNet hard-codes 64/128/256/512 channels; scale them on the way in.
        def __init__(self) -> None:
            self._scale = width / WAV2CLIP_WIDTH
            super().__init__(BasicBlock, [2, 2, 2, 2], pool="avgpool")
            self.conv1 = torch.nn.Conv2d(1, width, kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = self._norm_layer(width)

        def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
            if planes == WAV2CLIP_WIDTH:  # layer1: the stem's output width is scaled too
                self.inplanes = width
            return super()._make_layer(block, int(planes * self._scale), blocks, stride, dilate)

    if width < 8 or width > WAV2CLIP_WIDTH or (WAV2CLIP_WIDTH * 8) % width:
        raise ModelLoadError(f"Wav2CLIP base width {width} is not supported (8..64, dividing 512)")
    ext = ResNetExtractor(scenario="supervise", transform=False)
    if width != WAV2CLIP_WIDTH:
        ext.encoder = _ScaledResNet()
    ext.transform = MLPLayers(units=list(mlp_units), dropout=dropout)
    return ext


def load_wav2clip(path: str | Path, *, device: str | torch.device = "cpu") -> torch.nn.Module:
    """A frozen Wav2CLIP (ResNet audio encoder + MLP into a CLIP space).

    The file is a state dict keyed like the published one (``audio_encoder.*``
    and ``audio_transform.*``), read as tensors only.
    """
    path = Path(path)
    ckpt = load_tensors(path)
    if not isinstance(ckpt, dict) or "audio_encoder.conv1.weight" not in ckpt:
        raise ModelLoadError(f"{path} is not a Wav2CLIP checkpoint (no audio_encoder.conv1.weight tensor)")
    width = int(ckpt["audio_encoder.conv1.weight"].shape[0])
    linears = sorted(k for k in ckpt if k.startswith("audio_transform.") and k.endswith(".weight"))
    linears.sort(key=lambda k: int(k.split(".")[2]))  # audio_transform.sequential.<i>.weight
    if not linears:
        raise ModelLoadError(f"{path} has no audio_transform.* tensors (the MLP into CLIP's space)")
    units = (int(ckpt[linears[0]].shape[1]), *(int(ckpt[k].shape[0]) for k in linears))
    model = build_wav2clip(width=width, mlp_units=units)
    try:
        model.encoder.load_state_dict({k.split(".", 1)[1]: v for k, v in ckpt.items()
                                       if k.startswith("audio_encoder.")})
        model.transform.load_state_dict({k.split(".", 1)[1]: v for k, v in ckpt.items()
                                         if k.startswith("audio_transform.")})
    except RuntimeError as exc:
        raise ModelLoadError(f"{path} does not fit the Wav2CLIP architecture: {str(exc).splitlines()[0]}") from exc
    model.scenario = "frozen"
    return model.eval().requires_grad_(False).to(device)

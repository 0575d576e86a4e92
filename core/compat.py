"""Work-arounds for broken third-party wheels, isolated here.

Why this exists: PyPI's torchvision and torchaudio wheels are built against CUDA
torch.  Next to a CPU-only torch (e.g. ``torch==2.13.0+cpu``) their C++
extensions fail to load:

* torchvision: ``_C.so`` cannot load (``libc10_cuda.so`` missing), so its ops are
  never registered, and ``import torchvision`` then dies in
  ``_meta_registrations`` with ``operator torchvision::nms does not exist``.
  open_clip imports torchvision for its image transforms, which are pure Python.
* torchaudio: ``import torchaudio`` loads ``_torchaudio.so`` eagerly and raises
  ``OSError``.  wav2clip imports torchaudio only for
  ``torchaudio.transforms.Spectrogram``.

Each fix below runs only after the real import has failed in exactly that way;
where the real import works (a matching CUDA or CPU build) this module does
nothing.  Call :func:`ensure_vision` / :func:`ensure_audio` before importing
open_clip / wav2clip.  ``M2V_NO_COMPAT=1`` turns the fixes off (to see the raw
error).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import types

import torch

log = logging.getLogger(__name__)

#: What the fixes did in this process (for ``m2v weights list`` and bug reports).
APPLIED: list[str] = []

# Schemas of the two torchvision ops that torchvision registers fake kernels for
# unconditionally at import time (the others are guarded by ``_has_ops()``).
_TORCHVISION_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_vision_lib: torch.library.Library | None = None  # kept alive: dropping it unregisters


def _forget(prefix: str) -> None:
    for name in [m for m in sys.modules if m == prefix or m.startswith(prefix + ".")]:
        del sys.modules[name]


def _disabled() -> bool:
    return os.environ.get("M2V_NO_COMPAT") == "1"


def ensure_vision() -> None:
    """Make ``import torchvision`` work (its pure-Python parts) next to any torch."""
    global _vision_lib
    if "torchvision" in sys.modules and hasattr(sys.modules["torchvision"], "transforms"):
        return
    try:
        importlib.import_module("torchvision")
        return
    except RuntimeError as exc:
        if _disabled() or "torchvision::" not in str(exc):
            raise
        first_error = exc
    _forget("torchvision")
    # Declare the op schemas so torchvision's fake-kernel registration succeeds.
    # Calling these ops would fail (no kernel); m2v never does (no detection ops).
    _vision_lib = torch.library.Library("torchvision", "FRAGMENT")
    for schema in _TORCHVISION_SCHEMAS.values():
        try:
            _vision_lib.define(schema)
        except RuntimeError:
            pass  # already defined (a partial earlier load)
    importlib.import_module("torchvision")
    APPLIED.append(f"torchvision without its C++ ops ({first_error})")
    log.info("torchvision's C++ extension does not load with this torch; using its Python parts only")


class _Spectrogram(torch.nn.Module):
    """Power spectrogram with torchaudio's ``Spectrogram`` defaults.

    Same parameters, same ``window`` buffer name (so checkpoints that include it
    load with ``strict=True``) and the same output: ``|STFT|**power`` with a
    periodic Hann window, centred reflect padding, one-sided, unnormalized.
    """

    def __init__(self, n_fft: int = 400, win_length: int | None = None, hop_length: int | None = None,
                 pad: int = 0, window_fn=torch.hann_window, power: float | None = 2.0,
                 normalized: bool = False, wkwargs: dict | None = None, center: bool = True,
                 pad_mode: str = "reflect", onesided: bool = True, **unsupported) -> None:
        super().__init__()
        if unsupported:
            raise TypeError(f"m2v's Spectrogram stand-in does not support {sorted(unsupported)}")
        self.n_fft = n_fft
        self.win_length = win_length if win_length is not None else n_fft
        self.hop_length = hop_length if hop_length is not None else self.win_length // 2
        self.pad = pad
        self.power = power
        self.normalized = normalized
        self.center = center
        self.pad_mode = pad_mode
        self.onesided = onesided
        window = window_fn(self.win_length) if wkwargs is None else window_fn(self.win_length, **wkwargs)
        self.register_buffer("window", window)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if self.pad > 0:
            waveform = torch.nn.functional.pad(waveform, (self.pad, self.pad), "constant")
        shape = waveform.shape
        flat = waveform.reshape(-1, shape[-1])
        spec = torch.stft(flat, n_fft=self.n_fft, hop_length=self.hop_length, win_length=self.win_length,
                          window=self.window, center=self.center, pad_mode=self.pad_mode,
                          normalized=False, onesided=self.onesided, return_complex=True)
        if self.normalized:
            spec = spec / self.window.pow(2.0).sum().sqrt()
        spec = spec.reshape(shape[:-1] + spec.shape[-2:])
        if self.power is None:
            return spec
        return spec.abs().pow(self.power)


def ensure_audio() -> None:
    """Make ``import torchaudio`` (as far as wav2clip needs it) work next to any torch."""
    if "torchaudio" in sys.modules:
        return
    try:
        importlib.import_module("torchaudio")
        return
    except OSError as exc:
        if _disabled():
            raise
        first_error = exc
    _forget("torchaudio")
    # A minimal stand-in package: only ``transforms.Spectrogram``, which is all
    # wav2clip uses.  Anything else raises a clear AttributeError.
    pkg = types.ModuleType("torchaudio")
    pkg.__doc__ = "m2v stand-in for torchaudio (its C++ extension does not load here); see core.compat"
    pkg.__path__ = []  # a package, so ``import torchaudio.transforms`` resolves
    transforms = types.ModuleType("torchaudio.transforms")
    transforms.Spectrogram = _Spectrogram
    pkg.transforms = transforms
    sys.modules["torchaudio"] = pkg
    sys.modules["torchaudio.transforms"] = transforms
    APPLIED.append(f"torchaudio stand-in with Spectrogram only ({first_error})")
    log.info("torchaudio's C++ extension does not load with this torch; using m2v's Spectrogram stand-in")

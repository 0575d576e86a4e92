"""Load tensors from untrusted checkpoint files without running pickled code.

safetensors files are read with safetensors.  Torch pickles go through torch's
``weights_only`` unpickler, which builds only tensors and plain containers.
Lightning checkpoints (VQGAN's ``.ckpt``) also name a few Lightning / numpy
classes in their training metadata (``callbacks``, ``hparams``); those names are
mapped to an inert placeholder class so the tensors can still be read.  Any
other global (``os.system``, ``builtins.eval``, ...) is refused.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from core.errors import ModelLoadError, WeightsMissingError

# Module prefixes whose classes appear in the metadata of training checkpoints.
# They are never imported or called: each becomes an _Inert placeholder.
_METADATA_PREFIXES = (
    "pytorch_lightning.",
    "lightning.",
    "lightning_fabric.",
    "omegaconf.",
    "numpy.",
    "taming.",
    "main.",  # taming's main.py callbacks in old checkpoints
)


class _Inert:
    """Stands in for a class from checkpoint metadata; holds nothing, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> "_Inert":
        return _Inert()


def _fix_hint(path: Path) -> str:
    return f"delete {path} and fetch it again (`m2v weights download`), or point --models at a good copy"


def load_tensors(path: str | Path, *, map_location: str | torch.device = "cpu") -> Any:
    """Read a checkpoint (``.safetensors``, ``.pt``, ``.pth``, ``.ckpt``) as tensors only.

    Raises :class:`WeightsMissingError` for a missing file and
    :class:`ModelLoadError` for a corrupt, truncated or code-carrying one.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsMissingError(
            f"weight file {path} does not exist; run `m2v weights download` (or `m2v weights list` "
            "to see what is missing and where it goes)"
        )
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device=str(map_location))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"{path} is not a readable safetensors file ({exc}); {_fix_hint(path)}") from exc
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = exc
    except Exception as exc:  # noqa: BLE001 - truncation surfaces as many types (EOF, Index, zip, ...)
        raise ModelLoadError(f"{path} is corrupt or truncated ({exc}); {_fix_hint(path)}") from exc
    # The weights-only unpickler met a global it does not allow: see which.
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception as exc:  # noqa: BLE001 - any failure here means unreadable
        raise ModelLoadError(f"{path} is not a torch checkpoint ({first}); {_fix_hint(path)}") from exc
    unsafe = [n for n in names if not n.startswith(_METADATA_PREFIXES)]
    if unsafe or not names:
        raise ModelLoadError(
            f"{path} refers to code ({', '.join(unsafe) or first}) and m2v loads tensors only; "
            "it was not executed. If the file should be a model checkpoint it is damaged or "
            f"tampered with: {_fix_hint(path)}"
        )
    with torch.serialization.safe_globals([(_Inert, name) for name in names]):
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(f"{path} could not be read as tensors ({exc}); {_fix_hint(path)}") from exc

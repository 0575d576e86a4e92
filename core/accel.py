"""What the step loop needs from an accelerator, in one place: precision by hardware, frame copies
that do not stall the device, RNG state for resumable renders, and a side stream for encoders.

Each function takes the device and does the CUDA thing only on CUDA; on CPU it is the plain
(synchronous, one-stream) equivalent, so the same code path runs under test on a CPU.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np
import torch

from core.errors import ConfigError
from core.presets import COMPILE_MODES, PRECISIONS



def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively (CUDA compute capability 8.0, Ampere, and later).

    ``torch.cuda.is_bf16_supported()`` counts emulation by default, so it says yes on a T4 or
    V100, where bf16 then runs emulated and slow.  This is its ``including_emulation=False``
    rule, asked of ``device`` itself rather than of the current device.
    """
    if device.type != "cuda":
        return False
    if torch.version.hip:  # ROCm: every architecture torch supports has bf16
        return True
    return torch.cuda.get_device_capability(device)[0] >= 8


def autocast_dtypes(precision: str, device: torch.device) -> tuple[torch.dtype | None, torch.dtype | None]:
    """(decoder dtype, CLIP dtype) for autocast; None means float32.

    ``auto``: on CUDA bf16 where the hardware has it (:func:`native_bf16`), else fp16 (with a
    GradScaler, see :func:`needs_grad_scaler`), for both; on CPU float32.
    ``bf16-decode``: bf16 for the VQGAN decoder only.  On CPUs with AVX512-BF16 or AMX that
    makes the decoder ~1.6x faster, while CLIP's attention is slower in bf16 on CPU than in
    float32 (measured; see scripts/bench_step.py).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type != "cuda":
            return None, None
        dtype = torch.bfloat16 if native_bf16(device) else torch.float16
        return dtype, dtype
    if precision == "fp32":
        return None, None
    if precision == "bf16-decode":
        return torch.bfloat16, None
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision fp16 needs CUDA; on CPU use bf16, bf16-decode or fp32")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return dtype, dtype


def precision_name(dtypes: tuple[torch.dtype | None, torch.dtype | None]) -> str:
    """What :func:`autocast_dtypes` chose, as a :data:`PRECISIONS` name (``auto`` resolved)."""
    names = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
    decode, clip = dtypes
    if decode == clip:
        return names[decode]
    return f"{names[decode]}-decode" if clip is None else f"{names[decode]}/{names[clip]}"


def needs_grad_scaler(dtypes: tuple[torch.dtype | None, torch.dtype | None]) -> bool:
    """fp16 gradients underflow without loss scaling; bf16 has float32's range and needs none."""
    return torch.float16 in dtypes


def compile_mode(compile: bool | str) -> str | None:
    """``[guidance] compile`` (or the old bool) -> a ``torch.compile`` mode, or None for eager."""
    if compile is True:
        return "default"
    if compile is False or compile == "off":
        return None
    if compile not in COMPILE_MODES:
        raise ConfigError(f"compile {compile!r} is not one of {', '.join(COMPILE_MODES)}")
    return str(compile)


def release_cached_memory(device: torch.device) -> None:
    """Hand the allocator's cached blocks back to the device (after an out-of-memory error).

    Call it outside the ``except`` block: while the exception is alive, its traceback holds
    the frames, and they the autograd graph, so its memory would still be in use.
    """
    if device.type == "cuda":
        torch.cuda.empty_cache()


class HostFrame:
    """A (3, H, W) image in 0..1 on its way to the host as an (H, W, 3) uint8 frame.

    On CUDA the uint8 frame is copied ``non_blocking`` into pinned memory behind an event, so
    the device queue never drains for it; :meth:`array` waits for that event alone, the first
    time the frame is wanted.  On CPU it is the converted tensor itself.
    """

    def __init__(self, image: torch.Tensor) -> None:
        u8 = image.float().mul(255.0).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
        self._ready: Any = None
        if u8.device.type == "cuda":
            # A fresh pinned block per frame (torch caches them): the display may still hold the last one.
            self._host = torch.empty(u8.shape, dtype=torch.uint8, pin_memory=True)
            self._host.copy_(u8, non_blocking=True)
            self._ready = torch.cuda.Event()
            self._ready.record()
        else:  # CPU: the tensor itself; other devices (mps): a plain copy
            self._host = u8 if u8.device.type == "cpu" else u8.cpu()

    def array(self) -> np.ndarray:
        """The frame as (H, W, 3) uint8 (waits for the copy on CUDA, once)."""
        if self._ready is not None:
            self._ready.synchronize()
            self._ready = None
        return self._host.numpy()


# --- RNG state for resumable renders ----------------------------------------------------------


def rng_state(device: torch.device) -> dict[str, Any]:
    """The process-wide RNG state that a step on ``device`` may draw from, as tensors only.

    The optimizer's own generators are saved by the optimizer; this adds torch's global CUDA
    generators (one per device), which kernels without an explicit generator use.
    """
    if device.type == "cuda" and torch.cuda.is_available():
        return {"cuda_rng": list(torch.cuda.get_rng_state_all())}
    return {}


def restore_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore what :func:`rng_state` saved; a state saved on another kind of device is left alone."""
    saved = state.get("cuda_rng")
    if saved is None or device.type != "cuda" or not torch.cuda.is_available():
        return
    if len(saved) != torch.cuda.device_count():
        # A resume on a machine with another GPU count: the optimizer's generators still restore exactly.
        return
    torch.cuda.set_rng_state_all(saved)


# --- streams -----------------------------------------------------------------------------------


class SideStream:
    """Work queued off the default stream (the optimizer's), e.g. the embedder's encodes.

    ``with side.run(): ...`` queues the block on the side stream (CUDA) or just runs it (CPU);
    :meth:`hand_over` makes tensors made there safe to use on the consumer's (default) stream.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self.stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None

    @contextlib.contextmanager
    def run(self) -> Iterator[None]:
        if self.stream is None:
            yield
            return
        # The side stream first waits for what the default stream queued (e.g. weights just moved there).
        self.stream.wait_stream(torch.cuda.default_stream(self.device))
        with torch.cuda.stream(self.stream):
            yield

    def hand_over(self, tensors: Iterator[torch.Tensor] | list[torch.Tensor]) -> None:
        """Finish the side stream's work on ``tensors`` before anyone reads them on the default stream.

        Blocks the calling (side) thread until the side stream's queued work is done, never the
        consumer; and tells the allocator the tensors are used on the default stream, so their
        memory is not reused by the side stream while the optimizer still reads it.
        """
        if self.stream is None:
            return
        done = self.stream.record_event()
        done.synchronize()
        consumer = torch.cuda.default_stream(self.device)
        for t in tensors:
            if t.device.type == "cuda":
                t.record_stream(consumer)

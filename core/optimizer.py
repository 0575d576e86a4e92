"""The VQGAN latent optimizer: one ``step(target)`` is one frame.

State is the continuous latent ``z`` (1, embed_dim, h/16, w/16), an Adam
optimizer over ``z`` alone, and optionally the previous segment's latent for
the paper's Eq. 1 L1 pull.  One step:

1. quantize ``z`` to its nearest codebook vectors (straight-through gradient),
2. decode to an image,
3. take N random square cutouts (sizes between ``cut_min_frac`` of the short
   side and the full side, at random places; one batched ``grid_sample``, so
   they stay real crops even at 64 px) with a random flip, small colour jitter
   and noise,
4. CLIP-encode the cutouts and take the target's spherical-distance loss
   (+ ``l1_weight * mean|z - z_anchor|``),
5. backward and an Adam update, then keep ``z`` inside the codebook's range.

Works on CPU (float32) and CUDA (autocast bf16 where the hardware has it, else
fp16 with a GradScaler; channels_last; optional ``torch.compile``, with CUDA
graphs in 'reduce-overhead').  Model weights stay frozen.  On CPU a seed makes
the frames reproducible bit for bit.

A step never waits for the device: every random number is drawn there, the
losses stay device tensors, and the frame goes to the host behind an event
(:class:`core.accel.HostFrame`); whoever reads a loss or a frame waits, once.
The forward pass is a pure function of tensors that keep their shapes (targets
in a padded buffer, the L1 anchor always present with a 0/1-style weight, the
cutout count marked dynamic), so the compiled step is reused across target
swaps, anchor on/off and cutout changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core.accel import (PRECISIONS, HostFrame, autocast_dtypes, compile_mode, needs_grad_scaler, precision_name,
                        release_cached_memory, restore_rng_state, rng_state)
from core.encoders import center_square, to_image_tensor
from core.errors import ConfigError, OutOfMemoryError
from core.presets import AUGMENTATIONS, DEFAULT_AUGMENTATIONS
from core.targets import Target

log = logging.getLogger(__name__)

# Augmentation strengths: small enough that the cutouts still show the frame,
# large enough that the optimizer cannot overfit single CLIP pixels.
_JITTER_GAIN = 0.05  # per-channel gain 1 +- 5 %
_JITTER_OFFSET = 0.03  # per-channel brightness offset +- 0.03 (image in 0..1)
_NOISE_STD_MAX = 0.05  # per-cutout noise std drawn from 0..0.05
_AFFINE_DEG = 15.0  # rotation of a view: +- 15 degrees
_AFFINE_SCALE = 0.1  # zoom of a view: 1 +- 10 %
_PERSPECTIVE = 0.15  # each corner of a view moves up to 15 % of the side along each axis
_ERASE_P = 0.5  # share of views with one rectangle (4..25 % of the view) painted a random grey


def augmentation_set(augment: bool | Sequence[str]) -> frozenset[str]:
    """``True`` -> the default set, ``False`` -> none, a list -> those (unknown names are an error)."""
    if augment is True:
        return frozenset(DEFAULT_AUGMENTATIONS)
    if augment is False or augment is None:
        return frozenset()
    names = frozenset(str(a) for a in augment)
    unknown = sorted(names - set(AUGMENTATIONS))
    if unknown:
        raise ConfigError(f"unknown augmentations {unknown}; choose from {', '.join(AUGMENTATIONS)}")
    return names


@dataclass
class StepResult:
    """What one optimizer step produced.

    The step itself never waits for the device: the losses stay device tensors and the frame
    is a :class:`core.accel.HostFrame` in flight.  Reading :attr:`loss`, :attr:`l1` or
    :attr:`frame` waits for them (a host sync on CUDA), so read them only where they are used:
    every N steps for a HUD, at a segment's end, or for a frame that is written or shown.
    """

    #: steps taken so far by this optimizer (1 after the first)
    step: int
    #: the frame as a detached (3, H, W) float tensor in 0..1 on the compute device (for a GPU display)
    image: torch.Tensor
    #: total loss of the step (guidance + L1), a 0-d tensor on the device
    loss_t: torch.Tensor
    #: the L1 term alone on the device; None when the step had none (no anchor, or l1_weight 0)
    l1_t: torch.Tensor | None = None
    #: the frame on its way to the host (None with ``frame=False``)
    host_frame: HostFrame | None = None
    #: forward times in ms ("decode", "clip"), only when the optimizer was made with ``profile=True``
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def loss(self) -> float:
        """Total loss of the step (guidance + L1); reading it waits for the step to finish."""
        return float(self.loss_t)

    @property
    def l1(self) -> float:
        """The L1 term alone (0.0 without an anchor or with l1_weight 0, read without a sync)."""
        return 0.0 if self.l1_t is None else float(self.l1_t)

    @property
    def frame(self) -> np.ndarray | None:
        """This step's decoded frame, (H, W, 3) uint8 on the CPU (None with ``frame=False``)."""
        return None if self.host_frame is None else self.host_frame.array()


class _ClampTowardsRange(torch.autograd.Function):
    """Clamp to [lo, hi], but let gradients through where they point back into the range.

    A plain clamp zeroes the gradient of every saturated pixel, so a frame that
    starts out of range could never be pulled back by the loss.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        # Gradient descent moves x by -grad: below lo it must be negative, above hi positive.
        keep = ((x >= ctx.lo) & (x <= ctx.hi)) | ((x < ctx.lo) & (grad < 0)) | ((x > ctx.hi) & (grad > 0))
        return grad * keep, None, None


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and ("out of memory" in str(exc) or "can't allocate memory" in str(exc))


def _is_compile_failure(exc: BaseException) -> bool:
    """torch.compile could not build the step (no C compiler, an unsupported op, ...)."""
    from torch._dynamo.exc import BackendCompilerFailed

    return isinstance(exc, BackendCompilerFailed) or type(exc).__module__.startswith("torch._inductor")


def _homography_warp(u: torch.Tensor, corner_moves: torch.Tensor) -> torch.Tensor:
    """Map points ``u`` (n, P, 2) by the homography taking the square's corners (-1, -1), (1, -1),
    (1, 1), (-1, 1) to themselves plus ``corner_moves`` (n, 4, 2)."""
    n = u.shape[0]
    # The corners made on the device (a torch.tensor of constants would be a host-to-device copy per step).
    k = torch.arange(4, device=u.device)
    src_x = torch.where((k == 1) | (k == 2), 1.0, -1.0)
    src_y = torch.where(k >= 2, 1.0, -1.0)
    src = torch.stack([src_x, src_y], dim=-1).to(u.dtype).expand(n, -1, -1)
    dst = src + corner_moves
    x, y = src[..., 0], src[..., 1]
    X, Y = dst[..., 0], dst[..., 1]
    zero, one = torch.zeros_like(x), torch.ones_like(x)
    # Two rows per corner of the standard 8-unknown system (h33 = 1).
    rows_x = torch.stack([x, y, one, zero, zero, zero, -x * X, -y * X], dim=-1)
    rows_y = torch.stack([zero, zero, zero, x, y, one, -x * Y, -y * Y], dim=-1)
    A = torch.cat([rows_x, rows_y], dim=1)  # (n, 8, 8)
    b = torch.cat([X, Y], dim=1).unsqueeze(-1)
    # solve_ex: no check of the result's info flag, which would wait for the device every step
    # (the system is never singular: the corner moves are at most 15 % of the side).
    hvec = torch.linalg.solve_ex(A, b).result.squeeze(-1)
    H = torch.cat([hvec, torch.ones(n, 1, device=u.device)], dim=1).view(n, 3, 3)
    p = torch.cat([u, torch.ones_like(u[..., :1])], dim=-1) @ H.transpose(1, 2)
    return p[..., :2] / p[..., 2:3]


def start_from_init(opt: "LatentOptimizer", init: str) -> None:
    """Start ``opt`` as a preset's ``[guidance] init`` says: 'random', or the VQGAN encoding of an image file.

    Raises :class:`ConfigError` naming the fix when the file is missing or not an image.
    """
    if init == "random":
        opt.init_random()
        return
    from pathlib import Path

    from PIL import Image, UnidentifiedImageError

    path = Path(init).expanduser()
    if not path.is_file():
        raise ConfigError(f"[guidance] init = {init!r}: no such image file (relative paths start in "
                          f"{Path.cwd()}); give a PNG or JPEG path, or 'random'")
    try:
        with Image.open(path) as im:
            img = im.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise ConfigError(f"[guidance] init = {init!r} is not a readable image ({exc}); give a PNG or JPEG, "
                          "or 'random'") from None
    opt.init_from_image(img)


class LatentOptimizer:
    """CLIP-guided optimization of a VQGAN latent; one :meth:`step` is one frame.

    ``size`` is (width, height) in pixels, each a multiple of the VQGAN's
    downsampling factor (16).  ``cutouts`` CLIP views per step, with sides
    between ``cut_min_frac`` of the short side and all of it; ``cut_pow`` > 1
    favours small cutouts.  ``lr`` is Adam's step size in codebook units.
    ``l1_weight`` weighs Eq. 1's pull towards the latent saved by
    :meth:`set_anchor`.  ``precision`` is one of :data:`PRECISIONS` (``auto``:
    autocast on CUDA, bf16 where the hardware has it, else fp16 with a GradScaler;
    float32 on CPU).  ``compile`` is one of :data:`core.accel.COMPILE_MODES` (a bool
    is read as 'off'/'default'): the forward pass through ``torch.compile`` with
    ``compile_backend`` (tests pass a counting backend), built so that target swaps,
    anchor on/off and cutout-count changes reuse the compiled code.  ``profile``
    records forward times (synchronizing CUDA, and eager even when compiled).
    ``flush_denormal`` (CPU) turns on torch's process-wide flush-to-zero of
    denormal floats.
    """

    def __init__(self, models: Any, *, size: tuple[int, int] = (256, 256), cutouts: int = 16,
                 cut_min_frac: float = 0.25, cut_pow: float = 1.0, augment: bool | Sequence[str] = True,
                 lr: float = 0.1,
                 l1_weight: float = 0.0, seed: int = 0, device: str | torch.device | None = None,
                 precision: str = "auto", compile: bool | str = False, compile_backend: Any = "inductor",
                 profile: bool = False, flush_denormal: bool = True) -> None:
        self.device = torch.device(device) if device is not None else torch.device(models.device)
        if self.device.type == "cpu" and flush_denormal:
            # Near convergence the backward pass fills with denormal floats, which
            # x86 CPUs handle ~100x slower (measured: 30 tiny-set steps went from
            # ~1 s to ~25 s).  Process-wide and sticky: torch has no getter to restore it.
            torch.set_flush_denormal(True)
        self.vqgan = models.vqgan
        self.clip = models.clip
        if not 0.0 < cut_min_frac <= 1.0:
            raise ConfigError(f"cut_min_frac must be in (0, 1], got {cut_min_frac}; 0.25 is a good start")
        if cut_pow <= 0:
            raise ConfigError(f"cut_pow must be > 0, got {cut_pow} (1.0: uniform sizes, > 1: more small cutouts)")
        if lr <= 0 or l1_weight < 0:
            raise ConfigError(f"lr must be > 0 and l1_weight >= 0, got lr={lr}, l1_weight={l1_weight}")
        self.cut_min_frac = float(cut_min_frac)
        self.cut_pow = float(cut_pow)
        self.augmentations = augmentation_set(augment)
        self.lr = float(lr)
        self.l1_weight = float(l1_weight)
        self.profile = profile
        self.cutouts = self._check_cutouts(cutouts)
        self.steps = 0

        # Frozen weights: gradients flow only into z.
        for module in (self.vqgan, self.clip.model):
            module.requires_grad_(False)
            module.eval()
        self.precision = precision
        self._decode_dtype, self._clip_dtype = autocast_dtypes(precision, self.device)
        #: what ``precision`` resolved to on this device ('fp32', 'bf16', 'fp16', 'bf16-decode')
        self.precision_used = precision_name((self._decode_dtype, self._clip_dtype))
        scaled = needs_grad_scaler((self._decode_dtype, self._clip_dtype))
        self._scaler = torch.amp.GradScaler("cuda") if scaled else None
        if self.device.type == "cuda":
            self.vqgan.to(self.device, memory_format=torch.channels_last)
            self.clip.model.to(self.device, memory_format=torch.channels_last)

        codebook = self.vqgan.codebook.detach().to(self.device, torch.float32)
        self._codebook = codebook
        self._codebook_sq = (codebook * codebook).sum(dim=1)
        # Adam would otherwise drift z far outside the codebook, where every step
        # quantizes to the same few edge codes; keep z inside the per-channel range.
        self._z_min = codebook.min(dim=0).values.view(1, -1, 1, 1)
        self._z_max = codebook.max(dim=0).values.view(1, -1, 1, 1)
        self._mean = torch.tensor(self.clip.mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(self.clip.std, device=self.device).view(1, 3, 1, 1)

        self.seed = seed
        # The initial latent comes from a CPU generator; cutout boxes, flips, warps, noise and
        # jitter are drawn on the device (no per-step host-to-device copy).  On CPU the boxes keep
        # the CPU generator they always had, so a seed gives the same frames as before.
        self._gen = torch.Generator().manual_seed(seed)
        self._dev_gen = torch.Generator(device=self.device).manual_seed(seed)
        self._box_gen = self._gen if self.device.type == "cpu" else self._dev_gen

        self.size = self._check_size(size)
        self.z: torch.Tensor
        self.anchor: torch.Tensor | None = None
        self._opt: torch.optim.Optimizer
        # Inputs of the (compiled) forward that stay the same tensors from step to step: the target
        # embeddings padded to a fixed row count, and the L1 weight as a tensor (0 without an anchor).
        self._embeds = torch.zeros(0, device=self.device)
        self._weights = torch.zeros(0, device=self.device)
        self._loaded_target: Target | None = None
        self._l1_w = torch.zeros((), device=self.device)
        self._l1_w_value = 0.0
        self._no_anchor = torch.zeros(0, device=self.device)
        self.compile_mode = compile_mode(compile)
        self._forward = self._forward_impl
        if self.compile_mode is not None:
            # A mode is inductor's option; other backends (tests' counting ones) take none.
            mode = self.compile_mode if compile_backend == "inductor" else None
            self._forward = torch.compile(self._forward_impl, mode=mode, backend=compile_backend)
        self.init_random()

    @classmethod
    def from_config(cls, models: Any, guidance: Any, *, size: tuple[int, int], seed: int | None = None,
                    **kwargs: Any) -> "LatentOptimizer":
        """An optimizer with a preset's ``[guidance]`` section (cutouts, cutout sizes, augment, lr, Eq. 1 weight,
        compile); ``kwargs`` (device, precision, compile, ...) win over the section."""
        kwargs.setdefault("compile", guidance.compile)
        return cls(models, size=size, cutouts=guidance.cutouts, cut_min_frac=guidance.cut_min_frac,
                   cut_pow=guidance.cut_pow, augment=guidance.augmentations(), lr=guidance.lr,
                   l1_weight=guidance.l1_weight if guidance.consistency == "l1" else 0.0,
                   seed=guidance.seed if seed is None else seed, **kwargs)

    # -- setup ---------------------------------------------------------------

    def _check_size(self, size: tuple[int, int]) -> tuple[int, int]:
        f = self.vqgan.downsample
        try:
            w, h = (int(size[0]), int(size[1]))
        except (TypeError, ValueError, IndexError):
            raise ConfigError(f"size must be (width, height), got {size!r}") from None
        if w < f or h < f or w % f or h % f:
            raise ConfigError(f"size {w}x{h} must be positive multiples of {f} (the VQGAN's downsampling); "
                              f"try {max(f, round(w / f) * f)}x{max(f, round(h / f) * f)}")
        return w, h

    @staticmethod
    def _check_cutouts(n: int) -> int:
        if int(n) < 1:
            raise ConfigError(f"cutouts must be >= 1, got {n}")
        return int(n)

    def _new_adam(self) -> None:
        self.z.requires_grad_(True)
        # CUDA: the fused kernel is one launch, and GradScaler hands it found_inf on the device
        # instead of reading it on the host (the fp16 step's extra sync).
        self._opt = torch.optim.Adam([self.z], lr=self.lr, fused=self.device.type == "cuda")

    def _grid(self) -> tuple[int, int]:
        f = self.vqgan.downsample
        return self.size[1] // f, self.size[0] // f

    def init_random(self) -> None:
        """Start from random codebook entries (one per latent position); resets Adam."""
        gh, gw = self._grid()
        idx = torch.randint(self._codebook.shape[0], (gh * gw,), generator=self._gen).to(self.device)
        self.z = self._codebook[idx].T.reshape(1, -1, gh, gw).contiguous()
        self._new_adam()

    @torch.no_grad()
    def init_from_image(self, img: Any) -> None:
        """Start from the VQGAN encoding of an image (PIL, HWC array or tensor in 0..1); resets Adam."""
        x = to_image_tensor(img).to(self.device)
        w, h = self.size
        # Cover the frame, then crop the centre: same aspect handling as CLIP's preprocessing.
        side = max(w, h)
        x = center_square(x, side)[..., (side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w]
        with self._autocast(self._decode_dtype):
            z = self.vqgan.encode(x * 2.0 - 1.0)
        self.z = z.float().clamp(self._z_min, self._z_max).contiguous()
        self._new_adam()

    def resize(self, size: tuple[int, int]) -> None:
        """Change the frame size, carrying ``z`` over (nearest neighbour on the latent grid); resets Adam.

        For callers that step the size down after an :class:`OutOfMemoryError`.
        """
        self.size = self._check_size(size)
        gh, gw = self._grid()
        with torch.no_grad():
            self.z = F.interpolate(self.z.detach(), size=(gh, gw), mode="nearest").contiguous()
            if self.anchor is not None:
                self.anchor = F.interpolate(self.anchor, size=(gh, gw), mode="nearest")
        self._new_adam()

    def configure(self, guidance: Any) -> None:
        """Take a preset's live-changeable ``[guidance]`` fields: cutouts and their sizes, augmentations,
        lr (Adam's moments are kept) and the Eq. 1 weight.  ``seed`` and ``init`` act at the start only."""
        if not 0.0 < guidance.cut_min_frac <= 1.0 or guidance.cut_pow <= 0 or guidance.lr <= 0:
            raise ConfigError(f"cut_min_frac={guidance.cut_min_frac}, cut_pow={guidance.cut_pow}, lr={guidance.lr}: "
                              "need 0 < cut_min_frac <= 1, cut_pow > 0, lr > 0")
        self.augmentations = augmentation_set(guidance.augmentations())
        self.cutouts = self._check_cutouts(guidance.cutouts)
        self.cut_min_frac, self.cut_pow = float(guidance.cut_min_frac), float(guidance.cut_pow)
        self.l1_weight = float(guidance.l1_weight) if guidance.consistency == "l1" else 0.0
        self.lr = float(guidance.lr)
        for group in self._opt.param_groups:
            group["lr"] = self.lr

    def set_cutouts(self, n: int) -> None:
        """Change the number of cutouts per step (takes effect at the next step)."""
        self.cutouts = self._check_cutouts(n)

    def set_anchor(self) -> None:
        """Remember the current latent as z_{t-1} for the L1 pull (call at each segment change)."""
        self.anchor = self.z.detach().clone()

    def clear_anchor(self) -> None:
        self.anchor = None

    def reset_optimizer(self) -> None:
        """Forget Adam's moment estimates (z stays)."""
        self._new_adam()

    # -- the step ------------------------------------------------------------

    def _autocast(self, dtype: torch.dtype | None):
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest codebook vector per latent position, with a straight-through gradient to ``z``."""
        b, d, gh, gw = z.shape
        flat = z.float().permute(0, 2, 3, 1).reshape(-1, d)
        # |z - e|^2 = |z|^2 - 2 z.e + |e|^2; |z|^2 is the same for every code of a position.
        with torch.autocast(device_type=self.device.type, enabled=False):
            idx = torch.argmin(self._codebook_sq[None, :] - 2.0 * flat.detach() @ self._codebook.T, dim=1)
        q = self._codebook[idx].reshape(b, gh, gw, d).permute(0, 3, 1, 2)
        return z + (q - z).detach()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent -> (1, 3, H, W) image in 0..1 (through the quantizer)."""
        z_q = self.quantize(z)
        with self._autocast(self._decode_dtype):
            img = self.vqgan.decode(z_q)
        return _ClampTowardsRange.apply((img.float() + 1.0) / 2.0, 0.0, 1.0)

    def draw_cutouts(self, n: int) -> torch.Tensor:
        """``n`` random square boxes as (n, 4) [x0, y0, side, flip] in pixels of the current size."""
        w, h = self.size
        short = min(w, h)
        g, dev = self._box_gen, self.device
        u = torch.rand(n, generator=g, device=dev) ** self.cut_pow
        side = (self.cut_min_frac + (1.0 - self.cut_min_frac) * u) * short
        x0 = torch.rand(n, generator=g, device=dev) * (w - side)
        y0 = torch.rand(n, generator=g, device=dev) * (h - side)
        if "flip" in self.augmentations:
            flip = (torch.rand(n, generator=g, device=dev) < 0.5).float()
        else:
            flip = torch.zeros(n, device=dev)
        return torch.stack([x0, y0, side, flip], dim=1)

    def draw_augmentations(self, n: int) -> dict[str, torch.Tensor]:
        """The random numbers of the augmentations in effect for ``n`` views, drawn on the device.

        Drawn outside the (compiled) forward pass, which then is a pure function of its inputs:
        ``torch.compile`` cannot trace seeded generators, and CUDA graphs could not replay them.
        """
        a, g, dev = self.augmentations, self._dev_gen, self.device
        s = self.clip.image_size
        rand: dict[str, torch.Tensor] = {}
        if "perspective" in a:
            rand["corners"] = self._draw(n, 4, 2) * (2.0 * _PERSPECTIVE)
        if "affine" in a:
            rand["angle"] = torch.deg2rad(self._draw(n) * _AFFINE_DEG)
            rand["zoom"] = 1.0 + self._draw(n) * _AFFINE_SCALE
        if "color" in a:
            rand["gain"] = 1.0 + _JITTER_GAIN * self._draw(n, 3, 1, 1)
            rand["offset"] = _JITTER_OFFSET * self._draw(n, 3, 1, 1)
        if "noise" in a:
            noise_std = _NOISE_STD_MAX * torch.rand(n, 1, 1, 1, generator=g, device=dev)
            rand["noise"] = torch.randn((n, 3, s, s), generator=g, device=dev) * noise_std
        if "erase" in a:
            rand["erase"] = torch.rand(n, 6, generator=g, device=dev)
        return rand

    @property
    def augment(self) -> bool:
        """Whether any augmentation is on."""
        return bool(self.augmentations)

    def cut(self, image: torch.Tensor, boxes: torch.Tensor, *,
            warp: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Crop ``boxes`` out of a (1, 3, H, W) image and resize each to CLIP's input, in one grid_sample.

        ``warp``, draws from :meth:`draw_augmentations`, applies the geometric augmentations
        among them ('affine': a small rotation and zoom; 'perspective': a random corner warp)
        inside the same sampling.
        """
        n = boxes.shape[0]
        w, h = self.size
        s = self.clip.image_size
        boxes = boxes.to(self.device, torch.float32)
        x0, y0, side, flip = boxes.unbind(dim=1)
        # affine_grid maps output coords in [-1, 1] to input coords in [-1, 1] (align_corners=False).
        theta = torch.zeros(n, 2, 3, device=self.device)
        theta[:, 0, 0] = side / w * (1.0 - 2.0 * flip)
        theta[:, 1, 1] = side / h
        theta[:, 0, 2] = (x0 + side / 2.0) / w * 2.0 - 1.0
        theta[:, 1, 2] = (y0 + side / 2.0) / h * 2.0 - 1.0
        warp = warp or {}
        if "corners" not in warp and "angle" not in warp:
            grid = F.affine_grid(theta, [n, 3, s, s], align_corners=False)
        else:
            # The view's own coordinates (pixel centres in -1..1), warped, then placed by the box.
            c = (torch.arange(s, device=self.device, dtype=torch.float32) * 2.0 + 1.0) / s - 1.0
            gy, gx = torch.meshgrid(c, c, indexing="ij")
            u = torch.stack([gx, gy], dim=-1).reshape(1, s * s, 2).expand(n, -1, -1)
            if "corners" in warp:
                u = _homography_warp(u, warp["corners"])
            if "angle" in warp:
                ang, zoom = warp["angle"], warp["zoom"]
                cos, sin = torch.cos(ang) * zoom, torch.sin(ang) * zoom
                rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (n, 2, 2)
                u = u @ rot.transpose(1, 2)
            grid = (u @ theta[:, :, :2].transpose(1, 2) + theta[:, None, :, 2]).reshape(n, s, s, 2)
        return F.grid_sample(image.expand(n, -1, -1, -1), grid.to(image.dtype), mode="bilinear",
                             padding_mode="reflection", align_corners=False)

    def _draw(self, *shape: int) -> torch.Tensor:
        """Uniform -1..1 from the seeded device generator."""
        return 2.0 * torch.rand(*shape, generator=self._dev_gen, device=self.device) - 1.0

    def _jitter(self, views: torch.Tensor, rand: dict[str, torch.Tensor]) -> torch.Tensor:
        """The photometric augmentations among ``rand`` (:meth:`draw_augmentations`): 'color' (gain,
        offset), 'noise', 'erase'."""
        n = views.shape[0]
        if "gain" in rand:
            views = views * rand["gain"] + rand["offset"]
        if "noise" in rand:
            views = views + rand["noise"]
        if "erase" in rand:
            s = views.shape[-1]
            r = rand["erase"]
            area = 0.04 + 0.21 * r[:, 0]
            aspect = torch.exp((r[:, 1] - 0.5) * 1.4)  # 1/2 .. 2
            eh = (torch.sqrt(area * aspect) * s).clamp(1, s)
            ew = (torch.sqrt(area / aspect) * s).clamp(1, s)
            ey, ex = r[:, 2] * (s - eh), r[:, 3] * (s - ew)
            pos = torch.arange(s, device=views.device, dtype=torch.float32)
            inside = ((pos[None, :, None] >= ey[:, None, None]) & (pos[None, :, None] < (ey + eh)[:, None, None])
                      & (pos[None, None, :] >= ex[:, None, None]) & (pos[None, None, :] < (ex + ew)[:, None, None])
                      & (r[:, 4] < _ERASE_P)[:, None, None])
            views = torch.where(inside[:, None], r[:, 5].view(n, 1, 1, 1).to(views.dtype), views)
        return views

    def _embed(self, views: torch.Tensor) -> torch.Tensor:
        x = (views - self._mean) / self._std
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast(self._clip_dtype):
            return self.clip.model.encode_image(x).float()

    def _forward_impl(self, z: torch.Tensor, boxes: torch.Tensor, rand: dict[str, torch.Tensor],
                      embeds: torch.Tensor, weights: torch.Tensor, anchor: torch.Tensor,
                      l1_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss, L1 term and image of latent ``z``: a pure function of its tensor inputs (compilable)."""
        t0 = self._tick()
        image = self.decode(z)
        t1 = self._tick()
        views = self._jitter(self.cut(image, boxes, warp=rand), rand)
        emb = self._embed(views)
        t2 = self._tick()
        loss = Target(embeds, weights).loss(emb)
        # Without an anchor, l1_w is 0 and anchor a zero buffer: the same graph, a zero term.
        l1 = (z - anchor).abs().mean() * l1_w
        if self.profile:
            self._last_timings = {"decode": (t1 - t0) * 1e3, "clip": (t2 - t1) * 1e3}
        return loss + l1, l1, image

    def _tick(self) -> float:
        if not self.profile:
            return 0.0
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _load_target(self, target: Target) -> tuple[torch.Tensor, torch.Tensor]:
        """The target copied into the fixed buffers the forward pass reads (rows past it weigh 0).

        The buffers keep their shape (a power of two >= the largest target so far), so a new
        target, a crossfade's two-target blend or more style prompts reuse compiled code.
        """
        if target is self._loaded_target:
            return self._embeds, self._weights
        k, d = target.embeds.shape
        if self._embeds.ndim != 2 or self._embeds.shape[1] != d or self._embeds.shape[0] < k:
            rows = max(4, 1 << (k - 1).bit_length())
            self._embeds = torch.zeros(rows, d, device=self.device)
            self._weights = torch.zeros(rows, device=self.device)
        self._embeds[:k].copy_(target.embeds, non_blocking=True)
        self._embeds[k:].zero_()
        self._weights[:k].copy_(target.weights, non_blocking=True)
        self._weights[k:].zero_()
        self._loaded_target = target
        return self._embeds, self._weights

    def _anchor_inputs(self) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """(anchor, L1 weight tensor, whether the L1 term is on) for the forward pass."""
        on = self.anchor is not None and self.l1_weight > 0
        w = self.l1_weight if on else 0.0
        if w != self._l1_w_value:
            self._l1_w.fill_(w)  # in place, a scalar kernel argument: no host-to-device copy
            self._l1_w_value = w
        if on:
            return self.anchor, self._l1_w, True
        if self._no_anchor.shape != self.z.shape:
            self._no_anchor = torch.zeros_like(self.z, requires_grad=False)
        return self._no_anchor, self._l1_w, False

    def _mark_dynamic(self, boxes: torch.Tensor, rand: dict[str, torch.Tensor]) -> None:
        """Tell ``torch.compile`` the cutout count varies (live OOM halving, preset reloads)."""
        if self.compile_mode is None or boxes.shape[0] < 2:  # 0/1 sizes are always specialized
            return
        for t in (boxes, *rand.values()):
            torch._dynamo.mark_dynamic(t, 0)

    def _update(self, target: Target) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Forward, backward and the Adam update, all queued on the device; (loss, l1, image)."""
        embeds, weights = self._load_target(target)
        boxes = self.draw_cutouts(self.cutouts)
        rand = self.draw_augmentations(self.cutouts)
        anchor, l1_w, _ = self._anchor_inputs()
        self._mark_dynamic(boxes, rand)
        forward = self._forward_impl if self.profile else self._forward
        graphs = self.compile_mode == "reduce-overhead" and self.device.type == "cuda"
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        self._opt.zero_grad(set_to_none=True)
        loss, l1, image = forward(self.z, boxes, rand, embeds, weights, anchor, l1_w)
        if self._scaler is not None:
            self._scaler.scale(loss).backward()
            self._scaler.step(self._opt)
            self._scaler.update()
        else:
            loss.backward()
            self._opt.step()
        with torch.no_grad():
            self.z.clamp_(self._z_min, self._z_max)
        loss, l1, image = loss.detach(), l1.detach(), image.detach()
        if graphs:  # the next replay overwrites a graph's outputs
            loss, l1, image = loss.clone(), l1.clone(), image.clone()
        return loss, l1, image

    def step(self, target: Target, *, frame: bool = True) -> StepResult:
        """One optimization step towards ``target``; returns this step's frame and loss.

        Nothing here waits for the device: the result's losses and frame are read when
        wanted (see :class:`StepResult`); ``frame=False`` skips the frame's host copy.

        Raises :class:`core.errors.OutOfMemoryError` when the device runs out of
        memory; the latent is kept, so the caller can :meth:`resize` or
        :meth:`set_cutouts` and step again.
        """
        target = target.to(self.device)
        l1_on = self._anchor_inputs()[2]
        self._last_timings: dict[str, float] = {}
        oom = None
        try:
            loss, l1, image = self._update(target)
        except (torch.cuda.OutOfMemoryError, RuntimeError) as exc:
            if self.compile_mode is not None and _is_compile_failure(exc):
                raise ConfigError(f"[guidance] compile = {self.compile_mode!r} failed on {self.device} "
                                  f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                                  "set compile = 'off' (inductor on a CPU needs a C compiler such as gcc)") from exc
            if not _is_oom(exc):
                raise
            oom = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if oom is not None:
            # Out here, not in the except block: the traceback (and the graph its frames hold) is gone.
            self._opt.zero_grad(set_to_none=True)
            release_cached_memory(self.device)
            raise self._oom_error(oom)
        self.steps += 1
        image = image[0]
        return StepResult(step=self.steps, image=image, loss_t=loss, l1_t=l1 if l1_on else None,
                          host_frame=HostFrame(image) if frame else None, timings_ms=self._last_timings)

    def _oom_error(self, cause: str) -> OutOfMemoryError:
        # Not chained to the original: its traceback would keep the graph's memory alive.
        w, h = self.size
        return OutOfMemoryError(
            f"{self.device} ran out of memory at {w}x{h} with {self.cutouts} cutouts ({cause}); "
            f"lower the size (e.g. {max(self.vqgan.downsample, w // 2 // 16 * 16)}px) or the cutouts "
            f"(e.g. {max(1, self.cutouts // 2)})")

    # -- reading the state ---------------------------------------------------

    @staticmethod
    def _to_uint8(image: torch.Tensor) -> np.ndarray:
        return HostFrame(image).array()

    @torch.no_grad()
    def image(self) -> torch.Tensor:
        """The current latent decoded, (3, H, W) float in 0..1 on the device, without stepping."""
        return self.decode(self.z.detach())[0].float()

    def frame(self) -> np.ndarray:
        """The current latent decoded, (H, W, 3) uint8 on the CPU, without stepping."""
        return self._to_uint8(self.image())

    @torch.no_grad()
    def frame_embedding(self) -> torch.Tensor:
        """Normalized CLIP embedding (D,) of the whole current frame (no cutouts, no augmentation)."""
        x = center_square(self.image()[None], self.clip.image_size)
        return F.normalize(self._embed(x), dim=-1)[0]

    # -- checkpointing (resumable renders) -------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: latent, anchor, Adam moments, RNG states (tensors only)."""
        state: dict[str, Any] = {
            "z": self.z.detach().cpu(),
            "size": torch.tensor(self.size),
            "gen": self._gen.get_state(),
            "adam": self._opt.state_dict(),
        }
        # On CUDA the device generator draws the boxes and augmentations; its state is a CPU
        # ByteTensor (seed and offset), so a resumed render on a GPU continues the same stream.
        state["dev_gen"] = self._dev_gen.get_state()
        state["dev_gen_device"] = torch.tensor([self._dev_gen.device.type == "cuda"])
        state.update(rng_state(self.device))
        if self.anchor is not None:
            state["anchor"] = self.anchor.detach().cpu()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (same models and settings)."""
        self.size = self._check_size(tuple(int(v) for v in state["size"].tolist()))
        self.z = state["z"].to(self.device).contiguous()
        self._new_adam()
        self._opt.load_state_dict(state["adam"])
        self._gen.set_state(state["gen"])
        saved_on_cuda = bool(state["dev_gen_device"].item()) if "dev_gen_device" in state else False
        if "dev_gen" in state and saved_on_cuda == (self.device.type == "cuda"):
            self._dev_gen.set_state(state["dev_gen"])  # a CPU and a CUDA generator's states do not mix
        restore_rng_state(state, self.device)
        self.anchor = state["anchor"].to(self.device) if "anchor" in state else None

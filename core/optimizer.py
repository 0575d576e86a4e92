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

Works on CPU (float32) and CUDA (autocast bf16 where supported else fp16,
channels_last, optional ``torch.compile``).  Model weights stay frozen.  On
CPU a seed makes the frames reproducible bit for bit.
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
    """What one optimizer step produced."""

    #: the decoded frame of this step, (H, W, 3) uint8 on the CPU (None with ``frame=False``)
    frame: np.ndarray | None
    #: total loss of the step (guidance + L1)
    loss: float
    #: steps taken so far by this optimizer (1 after the first)
    step: int
    #: the same frame as a detached (3, H, W) float tensor in 0..1 on the compute device (for a GPU display)
    image: torch.Tensor
    #: the L1 term alone (0.0 without an anchor or with l1_weight 0)
    l1: float = 0.0
    #: forward times in ms ("decode", "clip"), only when the optimizer was made with ``profile=True``
    timings_ms: dict[str, float] = field(default_factory=dict)


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


#: ``precision`` choices: where autocast runs and in which dtype.
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "bf16-decode")


def _autocast_dtypes(precision: str, device: torch.device) -> tuple[torch.dtype | None, torch.dtype | None]:
    """(decoder dtype, CLIP dtype) for autocast; None means float32.

    ``auto``: on CUDA bf16 where supported, else fp16, for both; on CPU float32.
    ``bf16-decode``: bf16 for the VQGAN decoder only.  On CPUs with AVX512-BF16 or
    AMX that makes the decoder ~1.6x faster, while CLIP's attention is slower in
    bf16 on CPU than in float32 (measured; see scripts/bench_step.py).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type != "cuda":
            return None, None
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return dtype, dtype
    if precision == "fp32":
        return None, None
    if precision == "bf16-decode":
        return torch.bfloat16, None
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision fp16 needs CUDA; on CPU use bf16, bf16-decode or fp32")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return dtype, dtype


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and ("out of memory" in str(exc) or "can't allocate memory" in str(exc))


def _homography_warp(u: torch.Tensor, corner_moves: torch.Tensor) -> torch.Tensor:
    """Map points ``u`` (n, P, 2) by the homography taking the square's corners (-1, -1), (1, -1),
    (1, 1), (-1, 1) to themselves plus ``corner_moves`` (n, 4, 2)."""
    n = u.shape[0]
    src = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], device=u.device).expand(n, -1, -1)
    dst = src + corner_moves
    x, y = src[..., 0], src[..., 1]
    X, Y = dst[..., 0], dst[..., 1]
    zero, one = torch.zeros_like(x), torch.ones_like(x)
    # Two rows per corner of the standard 8-unknown system (h33 = 1).
    rows_x = torch.stack([x, y, one, zero, zero, zero, -x * X, -y * X], dim=-1)
    rows_y = torch.stack([zero, zero, zero, x, y, one, -x * Y, -y * Y], dim=-1)
    A = torch.cat([rows_x, rows_y], dim=1)  # (n, 8, 8)
    b = torch.cat([X, Y], dim=1).unsqueeze(-1)
    hvec = torch.linalg.solve(A, b).squeeze(-1)
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
    autocast on CUDA, float32 on CPU); ``compile`` wraps the forward pass in
    ``torch.compile``; ``profile`` records forward times (synchronizing CUDA).
    ``flush_denormal`` (CPU) turns on torch's process-wide flush-to-zero of
    denormal floats.
    """

    def __init__(self, models: Any, *, size: tuple[int, int] = (256, 256), cutouts: int = 16,
                 cut_min_frac: float = 0.25, cut_pow: float = 1.0, augment: bool | Sequence[str] = True,
                 lr: float = 0.1,
                 l1_weight: float = 0.0, seed: int = 0, device: str | torch.device | None = None,
                 precision: str = "auto", compile: bool = False, profile: bool = False,
                 flush_denormal: bool = True) -> None:
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
        self._decode_dtype, self._clip_dtype = _autocast_dtypes(precision, self.device)
        fp16 = torch.float16 in (self._decode_dtype, self._clip_dtype)
        self._scaler = torch.amp.GradScaler("cuda") if fp16 else None
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
        # Cutout boxes and flips are drawn on the CPU (a few numbers per cutout);
        # noise and jitter on the device, each from its own seeded generator.
        self._gen = torch.Generator().manual_seed(seed)
        self._dev_gen = torch.Generator(device=self.device).manual_seed(seed)

        self.size = self._check_size(size)
        self.z: torch.Tensor
        self.anchor: torch.Tensor | None = None
        self._opt: torch.optim.Optimizer
        self._forward = torch.compile(self._forward_impl, dynamic=False) if compile else self._forward_impl
        self.init_random()

    @classmethod
    def from_config(cls, models: Any, guidance: Any, *, size: tuple[int, int], seed: int | None = None,
                    **kwargs: Any) -> "LatentOptimizer":
        """An optimizer with a preset's ``[guidance]`` section (cutouts, cutout sizes, augment, lr, Eq. 1 weight)."""
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
        self._opt = torch.optim.Adam([self.z], lr=self.lr)

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
        u = torch.rand(n, generator=self._gen) ** self.cut_pow
        side = (self.cut_min_frac + (1.0 - self.cut_min_frac) * u) * short
        x0 = torch.rand(n, generator=self._gen) * (w - side)
        y0 = torch.rand(n, generator=self._gen) * (h - side)
        if "flip" in self.augmentations:
            flip = (torch.rand(n, generator=self._gen) < 0.5).float()
        else:
            flip = torch.zeros(n)
        return torch.stack([x0, y0, side, flip], dim=1)

    @property
    def augment(self) -> bool:
        """Whether any augmentation is on."""
        return bool(self.augmentations)

    def cut(self, image: torch.Tensor, boxes: torch.Tensor, *, warp: bool = False) -> torch.Tensor:
        """Crop ``boxes`` out of a (1, 3, H, W) image and resize each to CLIP's input, in one grid_sample.

        ``warp`` applies the geometric augmentations in effect ('affine': a small rotation
        and zoom; 'perspective': a random corner warp) inside the same sampling.
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
        geometric = warp and bool(self.augmentations & {"affine", "perspective"})
        if not geometric:
            grid = F.affine_grid(theta, [n, 3, s, s], align_corners=False)
        else:
            # The view's own coordinates (pixel centres in -1..1), warped, then placed by the box.
            c = (torch.arange(s, device=self.device, dtype=torch.float32) * 2.0 + 1.0) / s - 1.0
            gy, gx = torch.meshgrid(c, c, indexing="ij")
            u = torch.stack([gx, gy], dim=-1).reshape(1, s * s, 2).expand(n, -1, -1)
            if "perspective" in self.augmentations:
                u = _homography_warp(u, self._draw(n, 4, 2) * (2.0 * _PERSPECTIVE))
            if "affine" in self.augmentations:
                ang = torch.deg2rad(self._draw(n) * _AFFINE_DEG)
                zoom = 1.0 + self._draw(n) * _AFFINE_SCALE
                cos, sin = torch.cos(ang) * zoom, torch.sin(ang) * zoom
                rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (n, 2, 2)
                u = u @ rot.transpose(1, 2)
            grid = (u @ theta[:, :, :2].transpose(1, 2) + theta[:, None, :, 2]).reshape(n, s, s, 2)
        return F.grid_sample(image.expand(n, -1, -1, -1), grid.to(image.dtype), mode="bilinear",
                             padding_mode="reflection", align_corners=False)

    def _draw(self, *shape: int) -> torch.Tensor:
        """Uniform -1..1 from the seeded device generator."""
        return 2.0 * torch.rand(*shape, generator=self._dev_gen, device=self.device) - 1.0

    def _jitter(self, views: torch.Tensor) -> torch.Tensor:
        """The photometric augmentations in effect: 'color' (gain, offset), 'noise', 'erase'."""
        n = views.shape[0]
        g = self._dev_gen
        a = self.augmentations
        if "color" in a:
            gain = 1.0 + _JITTER_GAIN * self._draw(n, 3, 1, 1)
            offset = _JITTER_OFFSET * self._draw(n, 3, 1, 1)
            views = views * gain + offset
        if "noise" in a:
            noise_std = _NOISE_STD_MAX * torch.rand(n, 1, 1, 1, generator=g, device=self.device)
            views = views + torch.randn(views.shape, generator=g, device=self.device) * noise_std
        if "erase" in a:
            s = views.shape[-1]
            r = torch.rand(n, 6, generator=g, device=self.device)
            area = 0.04 + 0.21 * r[:, 0]
            aspect = torch.exp((r[:, 1] - 0.5) * 1.4)  # 1/2 .. 2
            eh = (torch.sqrt(area * aspect) * s).clamp(1, s)
            ew = (torch.sqrt(area / aspect) * s).clamp(1, s)
            ey, ex = r[:, 2] * (s - eh), r[:, 3] * (s - ew)
            pos = torch.arange(s, device=self.device, dtype=torch.float32)
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

    def _forward_impl(self, z: torch.Tensor, boxes: torch.Tensor, embeds: torch.Tensor, weights: torch.Tensor,
                      anchor: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        t0 = self._tick()
        image = self.decode(z)
        t1 = self._tick()
        views = self.cut(image, boxes, warp=True)
        if self.augmentations & {"color", "noise", "erase"}:
            views = self._jitter(views)
        emb = self._embed(views)
        t2 = self._tick()
        loss = Target(embeds, weights).loss(emb)
        l1 = (z - anchor).abs().mean() * self.l1_weight if anchor is not None else torch.zeros((), device=z.device)
        if self.profile:
            self._last_timings = {"decode": (t1 - t0) * 1e3, "clip": (t2 - t1) * 1e3}
        return loss + l1, l1, image

    def _tick(self) -> float:
        if not self.profile:
            return 0.0
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def step(self, target: Target, *, frame: bool = True) -> StepResult:
        """One optimization step towards ``target``; returns this step's frame and loss.

        Raises :class:`core.errors.OutOfMemoryError` when the device runs out of
        memory; the latent is kept, so the caller can :meth:`resize` or
        :meth:`set_cutouts` and step again.
        """
        target = target.to(self.device)
        boxes = self.draw_cutouts(self.cutouts)
        anchor = self.anchor if self.l1_weight > 0 else None
        self._last_timings: dict[str, float] = {}
        try:
            self._opt.zero_grad(set_to_none=True)
            loss, l1, image = self._forward(self.z, boxes, target.embeds, target.weights, anchor)
            if self._scaler is not None:
                self._scaler.scale(loss).backward()
                self._scaler.step(self._opt)
                self._scaler.update()
            else:
                loss.backward()
                self._opt.step()
            with torch.no_grad():
                self.z.clamp_(self._z_min, self._z_max)
        except (torch.cuda.OutOfMemoryError, RuntimeError) as exc:
            if not _is_oom(exc):
                raise
            self._opt.zero_grad(set_to_none=True)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            w, h = self.size
            raise OutOfMemoryError(
                f"{self.device} ran out of memory at {w}x{h} with {self.cutouts} cutouts; "
                f"lower the size (e.g. {max(self.vqgan.downsample, w // 2 // 16 * 16)}px) or the cutouts "
                f"(e.g. {max(1, self.cutouts // 2)})"
            ) from exc
        self.steps += 1
        image = image.detach()[0]
        return StepResult(frame=self._to_uint8(image) if frame else None, loss=float(loss.detach()),
                          step=self.steps, image=image, l1=float(l1.detach()), timings_ms=self._last_timings)

    # -- reading the state ---------------------------------------------------

    @staticmethod
    def _to_uint8(image: torch.Tensor) -> np.ndarray:
        return image.float().mul(255.0).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()

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
        if self._dev_gen.device.type == "cpu":
            state["dev_gen"] = self._dev_gen.get_state()
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
        if "dev_gen" in state:
            self._dev_gen.set_state(state["dev_gen"])
        self.anchor = state["anchor"].to(self.device) if "anchor" in state else None

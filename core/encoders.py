"""Embeddings for guidance: CLIP text and image, Wav2CLIP audio, all L2-normalized.

Encoding is off the optimizer's hot path: a prompt is encoded once and cached
by its string, an audio window once per window key.  Every result is a 1-D
float32 tensor on the models' device, with unit length, computed without
gradients (the optimizer compares against it, never differentiates it)::

    enc = Encoders(models)
    t = enc.text("a neon city at night")
    a = enc.audio(window, sr=44_100, key=(song_id, segment_index))
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from typing import Any, Hashable

import numpy as np
import torch
import torch.nn.functional as F

from core.errors import ConfigError, InputError

log = logging.getLogger(__name__)

#: Wav2CLIP's input sample rate.
AUDIO_SR = 16_000
# Wav2CLIP's first layers need a few STFT frames; shorter windows are zero-padded
# to this length (0.1 s) rather than failing inside the model.
_MIN_AUDIO_SAMPLES = 1_600


class _LRU:
    """A small least-recently-used cache (dict order = recency)."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self._d: OrderedDict[Hashable, torch.Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> torch.Tensor | None:
        value = self._d.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self._d.move_to_end(key)
        return value

    def put(self, key: Hashable, value: torch.Tensor) -> None:
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.max_items:
            self._d.popitem(last=False)

    def __len__(self) -> int:
        return len(self._d)


def to_image_tensor(img: Any) -> torch.Tensor:
    """A PIL image, an HWC uint8/float array or a CHW/BCHW tensor -> (1, 3, H, W) float in [0, 1]."""
    if isinstance(img, torch.Tensor):
        x = img.detach().float()
        if x.ndim == 3:
            x = x.unsqueeze(0)
        if x.ndim != 4 or x.shape[1] != 3:
            raise InputError(f"image tensor must be (3, H, W) or (B, 3, H, W) in [0, 1], got {tuple(img.shape)}")
        return x
    if hasattr(img, "convert") and hasattr(img, "size"):  # PIL.Image, without importing PIL
        img = np.asarray(img.convert("RGB"))
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InputError(f"image must be HWC with 3 or 4 channels (or grayscale HW), got shape {arr.shape}")
    arr = arr[:, :, :3]
    if arr.dtype == np.uint8:
        x = torch.from_numpy(np.array(arr, copy=True)).float() / 255.0  # copy: PIL arrays are read-only
    elif np.issubdtype(arr.dtype, np.floating):
        x = torch.from_numpy(np.array(arr, dtype=np.float32, copy=True)).clamp(0.0, 1.0)
    else:
        raise InputError(f"image dtype must be uint8 (0..255) or float (0..1), got {arr.dtype}")
    return x.permute(2, 0, 1).unsqueeze(0)


def center_square(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the short side to ``size`` and crop the centre square (CLIP's own preprocessing)."""
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[..., top:top + size, left:left + size]


class Encoders:
    """Cached, normalized CLIP text/image and Wav2CLIP audio embeddings for one model set."""

    def __init__(self, models: Any, *, text_cache: int = 1024, audio_cache: int = 4096) -> None:
        self.models = models
        self.device = torch.device(models.device)
        clip = models.clip
        self._mean = torch.tensor(clip.mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(clip.std, device=self.device).view(1, 3, 1, 1)
        self._text = _LRU(text_cache)
        self._audio = _LRU(audio_cache)

    @torch.no_grad()
    def text(self, prompt: str) -> torch.Tensor:
        """CLIP text embedding of ``prompt`` (cached by the exact string)."""
        if not isinstance(prompt, str):
            raise InputError(f"prompt must be a string, got {type(prompt).__name__}: {prompt!r}")
        hit = self._text.get(prompt)
        if hit is not None:
            return hit
        tokens = self.models.clip.tokenize([prompt]).to(self.device)
        emb = F.normalize(self.models.clip.model.encode_text(tokens).float(), dim=-1)[0]
        self._text.put(prompt, emb)
        return emb

    @torch.no_grad()
    def image(self, img: Any) -> torch.Tensor:
        """CLIP image embedding of a whole image (PIL, HWC array, or CHW tensor in [0, 1]); not cached."""
        x = to_image_tensor(img).to(self.device)
        x = center_square(x, self.models.clip.image_size)
        x = (x - self._mean) / self._std
        return F.normalize(self.models.clip.model.encode_image(x).float(), dim=-1)[0]

    @torch.no_grad()
    def audio(self, samples: np.ndarray, *, sr: int, key: Hashable | None = None,
              cache: bool = True) -> torch.Tensor:
        """Wav2CLIP embedding of one audio window (mono or (n, channels)), resampled to 16 kHz.

        ``key`` names the window for the cache (e.g. ``(song, segment)``); without
        one the samples' bytes are hashed.  ``cache=False`` is for windows that never
        come back (live: each onset's window is new audio), which would only fill
        the cache: 4096 stale embeddings over a long show.
        """
        if self.models.audio is None:
            raise ConfigError(
                f"model set {self.models.name!r} has no audio encoder; pick a set with Wav2CLIP "
                "(e.g. --models default) or guide with text/image prompts only"
            )
        if sr <= 0:
            raise InputError(f"sample rate must be positive, got sr={sr}")
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim == 2:
            x = x.mean(axis=1)  # (frames, channels) as sounddevice/soundfile deliver it
        if x.ndim != 1 or x.size == 0:
            raise InputError(f"audio window must be mono (n,) or (n, channels) and non-empty, got shape {np.shape(samples)}")
        if cache:
            key = ("sha1", sr, hashlib.sha1(x.tobytes()).hexdigest()) if key is None else ("key", sr, key)
            hit = self._audio.get(key)
            if hit is not None:
                return hit
        if sr != AUDIO_SR:
            import soxr

            x = soxr.resample(x, sr, AUDIO_SR).astype(np.float32, copy=False)
        if x.size < _MIN_AUDIO_SAMPLES:
            x = np.pad(x, (0, _MIN_AUDIO_SAMPLES - x.size))
        wave = torch.from_numpy(np.ascontiguousarray(x)).to(self.device).unsqueeze(0)
        emb = F.normalize(self.models.audio(wave).float(), dim=-1)[0]
        if cache:
            self._audio.put(key, emb)
        return emb

    def cache_info(self) -> dict[str, int]:
        """Sizes and hit/miss counts of the text and audio caches (for the HUD and logs)."""
        return {"text_items": len(self._text), "text_hits": self._text.hits, "text_misses": self._text.misses,
                "audio_items": len(self._audio), "audio_hits": self._audio.hits,
                "audio_misses": self._audio.misses}

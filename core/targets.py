"""Guidance targets: weighted sets of embeddings, the paper's Eq. 2 blend, crossfades, the loss.

A :class:`Target` is what the optimizer steers towards: one or more embeddings
(text, audio or image, from :mod:`core.encoders`) with weights.  A positive
weight pulls the image towards that embedding, a negative one pushes it away.

Two ways of mixing targets, on purpose different:

* :func:`eq2` is Music2Video's Eq. 2, ``(CLIP(p_{t-1}) + CLIP(p_t)) / 2``:
  the *embeddings* are averaged into one vector.
* :class:`Crossfade` fades the *loss* from one target to the other (weights
  ``1 - a`` and ``a``), so it starts exactly at ``start`` and ends exactly at
  ``end`` whatever the two look like (beyond the paper: smooth live transitions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from core.errors import ConfigError
from core.events import CONSISTENCY_MODES


@dataclass(frozen=True)
class Target:
    """Embeddings ``(K, D)`` with weights ``(K,)`` and a label per embedding (for logs and the HUD)."""

    embeds: torch.Tensor
    weights: torch.Tensor
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.embeds.ndim != 2 or self.weights.ndim != 1 or self.weights.shape[0] != self.embeds.shape[0]:
            raise ConfigError(f"a target needs embeds (K, D) and weights (K,), got {tuple(self.embeds.shape)} "
                              f"and {tuple(self.weights.shape)}")
        if self.embeds.shape[0] == 0:
            raise ConfigError("a target needs at least one embedding")
        if not self.labels:
            object.__setattr__(self, "labels", tuple("" for _ in range(self.embeds.shape[0])))
        elif len(self.labels) != self.embeds.shape[0]:
            raise ConfigError(f"{len(self.labels)} labels for {self.embeds.shape[0]} embeddings")

    @classmethod
    def single(cls, embed: torch.Tensor, *, weight: float = 1.0, label: str = "") -> "Target":
        """One embedding (D,) with one weight."""
        return cls.of([(embed, weight, label)])

    @classmethod
    def of(cls, items: Sequence[tuple[torch.Tensor, float, str]]) -> "Target":
        """From ``(embedding (D,), weight, label)`` triples; weights may be negative (push away)."""
        if not items:
            raise ConfigError("a target needs at least one (embedding, weight, label) item")
        embeds = torch.stack([e.detach().float().reshape(-1) for e, _, _ in items])
        weights = torch.tensor([float(w) for _, w, _ in items], device=embeds.device)
        return cls(embeds, weights, tuple(label for _, _, label in items))

    def __len__(self) -> int:
        return self.embeds.shape[0]

    def to(self, device: torch.device | str) -> "Target":
        """This target on ``device`` (itself when it is there already)."""
        if self.embeds.device == torch.device(device) and self.weights.device == torch.device(device):
            return self
        return Target(self.embeds.to(device), self.weights.to(device), self.labels)

    def scaled(self, factor: float) -> "Target":
        """The same embeddings with every weight multiplied by ``factor``."""
        return Target(self.embeds, self.weights * factor, self.labels)

    def __add__(self, other: "Target") -> "Target":
        """Both sets of embeddings at once (their losses add)."""
        other = other.to(self.embeds.device)
        return Target(torch.cat([self.embeds, other.embeds]), torch.cat([self.weights, other.weights]),
                      self.labels + other.labels)

    def loss(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """Weighted spherical distance from image embeddings ``(N, D)`` (e.g. cutouts) to this target.

        Per pair, ``2 * arcsin(|a - b| / 2) ** 2`` of the unit vectors (half the
        squared great-circle angle, as in the VQGAN+CLIP line of notebooks),
        averaged over the N image embeddings and summed over the target's
        embeddings with their weights; a negative weight rewards distance.
        """
        return (self.distances(image_embeds).mean(dim=0) * self.weights.to(image_embeds.device)).sum()

    def distances(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """Spherical distances ``(N, K)`` between N image embeddings and the K target embeddings."""
        a = F.normalize(image_embeds.float(), dim=-1)
        b = F.normalize(self.embeds.to(a.device), dim=-1)
        chord = (a[:, None, :] - b[None, :, :]).norm(dim=-1)
        # Chords of unit vectors are <= 2; the clamp guards arcsin against rounding above 1.
        return 2.0 * torch.arcsin((chord / 2.0).clamp(max=1.0)) ** 2

    @torch.no_grad()
    def similarity(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """Mean cosine similarity ``(K,)`` of the image embeddings to each target embedding."""
        a = F.normalize(image_embeds.float(), dim=-1)
        b = F.normalize(self.embeds.to(a.device), dim=-1)
        return (a @ b.T).mean(dim=0)


def eq2(previous: torch.Tensor | None, current: torch.Tensor, mode: str = "average") -> torch.Tensor:
    """Music2Video's Eq. 2 on guidance embeddings: ``(CLIP(p_{t-1}) + CLIP(p_t)) / 2``.

    The one implementation, used by ``m2v render`` (segment after segment) and by
    ``m2v live``'s embedder (target after target).  With ``mode`` other than
    ``average`` (``l1``, ``none``), or no previous embedding, the current one alone.
    """
    if mode not in CONSISTENCY_MODES:
        raise ConfigError(f"consistency {mode!r}: expected one of {', '.join(CONSISTENCY_MODES)}")
    if mode != "average" or previous is None:
        return current
    return (previous.to(current.device) + current) / 2


def eq2_chain(raw: Sequence[torch.Tensor], mode: str = "average") -> list[torch.Tensor]:
    """:func:`eq2` along a sequence of raw guidance embeddings (segment t with segment t-1's raw one)."""
    return [eq2(raw[t - 1] if t else None, g, mode) for t, g in enumerate(raw)]


class Crossfade:
    """A fade from ``start`` to ``end`` over ``steps`` optimizer steps.

    ``at(k)`` is ``start`` for ``k <= 0``, ``end`` for ``k >= steps``, and in
    between both targets with weights scaled by ``1 - a`` and ``a``, where
    ``a = k / steps`` eased with a smoothstep (no jolt at either end).
    """

    def __init__(self, start: Target, end: Target, *, steps: int) -> None:
        if steps < 1:
            raise ConfigError(f"crossfade steps must be >= 1, got {steps}; use 1 for a cut")
        self.start = start
        self.end = end.to(start.embeds.device)
        self.steps = steps

    def alpha(self, k: int) -> float:
        """How far the fade is at step ``k``: 0.0 (start) .. 1.0 (end)."""
        x = min(max(k / self.steps, 0.0), 1.0)
        return x * x * (3.0 - 2.0 * x)

    def at(self, k: int) -> Target:
        """The target to use at step ``k`` of the fade."""
        a = self.alpha(k)
        if a <= 0.0:
            return self.start
        if a >= 1.0:
            return self.end
        return self.start.scaled(1.0 - a) + self.end.scaled(a)

    def done(self, k: int) -> bool:
        return k >= self.steps

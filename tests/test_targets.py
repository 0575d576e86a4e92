"""Targets: spherical-distance loss values, Eq. 2 numerics, crossfade ends and middle."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from core.errors import ConfigError
from core.targets import Crossfade, Target, eq2, eq2_chain


def unit(*xs: float) -> torch.Tensor:
    return F.normalize(torch.tensor(xs, dtype=torch.float32), dim=0)


def test_loss_is_half_squared_angle_on_known_vectors():
    e0, e1 = unit(1, 0, 0), unit(0, 1, 0)
    t = Target.single(e0)
    # Same direction: zero; orthogonal: angle pi/2 -> 2*arcsin(sqrt(2)/2)^2 = 2*(pi/4)^2 = pi^2/8.
    assert t.loss(e0[None]).item() == pytest.approx(0.0, abs=1e-6)
    assert t.loss(e1[None]).item() == pytest.approx(math.pi ** 2 / 8, rel=1e-5)
    # Opposite: angle pi -> 2*(pi/2)^2 = pi^2/2 (the clamp keeps arcsin finite).
    assert t.loss(-e0[None]).item() == pytest.approx(math.pi ** 2 / 2, rel=1e-5)
    # Unnormalized inputs are normalized first; the mean runs over the image embeddings.
    both = torch.stack([3 * e0, e1])
    assert t.loss(both).item() == pytest.approx(math.pi ** 2 / 16, rel=1e-5)


def test_weights_scale_and_negative_weights_push_away():
    e0, e1 = unit(1, 0, 0), unit(0, 1, 0)
    t = Target.of([(e0, 2.0, "pull"), (e1, -0.5, "push")])
    x = unit(1, 1, 0)[None]  # 45 degrees from both
    d = 2 * math.asin(math.sqrt(2 - math.sqrt(2)) / 2) ** 2
    assert t.loss(x).item() == pytest.approx(2.0 * d - 0.5 * d, rel=1e-5)
    # Gradient descent on the loss moves x towards e0 and away from e1.
    x = x.clone().requires_grad_(True)
    t.loss(x).backward()
    step = -x.grad[0]
    assert step[0] > 0 and step[1] < 0


def test_eq2_is_the_mean_of_the_two_embeddings_and_only_for_average():
    g = torch.Generator().manual_seed(0)
    a = F.normalize(torch.randn(512, generator=g), dim=0)
    b = F.normalize(torch.randn(512, generator=g), dim=0)
    blended = eq2(a, b)
    assert torch.allclose(blended, (a + b) / 2, atol=1e-7)
    # Its direction is the geodesic midpoint: cosine to either input is cos(theta/2) = sqrt((1 + a.b) / 2).
    cos = F.cosine_similarity(blended, a, dim=0).item()
    assert cos == pytest.approx(math.sqrt((1 + (a @ b).item()) / 2), rel=1e-5)
    assert cos == pytest.approx(F.cosine_similarity(blended, b, dim=0).item(), rel=1e-5)
    assert eq2(None, b) is b and eq2(a, b, "none") is b and eq2(a, b, "l1") is b
    with pytest.raises(ConfigError, match="consistency 'eq9'"):
        eq2(a, b, "eq9")
    chain = eq2_chain([a, b, a], "average")
    assert chain[0] is a and torch.allclose(chain[1], (a + b) / 2) and torch.allclose(chain[2], (b + a) / 2)


def test_crossfade_starts_and_ends_exactly_and_moves_monotonically():
    e0, e1 = unit(1, 0, 0), unit(0, 1, 0)
    a, b = Target.single(e0), Target.single(e1)
    fade = Crossfade(a, b, steps=10)
    assert fade.at(0) is a and fade.at(10) is b and fade.at(25) is b
    mid = fade.at(5)
    assert mid.weights.tolist() == pytest.approx([0.5, 0.5])
    # Loss of an image sitting at e1 falls step by step through the fade.
    losses = [fade.at(k).loss(e1[None]).item() for k in range(11)]
    assert all(x > y for x, y in zip(losses, losses[1:]))
    assert losses[-1] == pytest.approx(0.0, abs=1e-6)
    assert not fade.done(9) and fade.done(10)


def test_bad_shapes_and_steps_are_config_errors():
    with pytest.raises(ConfigError, match="embeds"):
        Target(torch.zeros(3), torch.ones(1))
    with pytest.raises(ConfigError, match="at least one"):
        Target.of([])
    with pytest.raises(ConfigError, match="steps must be >= 1"):
        Crossfade(Target.single(unit(1, 0)), Target.single(unit(0, 1)), steps=0)

"""The latent optimizer with the tiny set: it converges, follows target switches, Eq. 1, seeds, cutouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.errors import ConfigError, OutOfMemoryError
from core.models import load_models
from core.models.tiny import write_tiny_models
from core.optimizer import LatentOptimizer
from core.targets import Target

SIZE = (64, 64)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return load_models(write_tiny_models(tmp_path_factory.mktemp("tiny")), device="cpu", offline=True)


def steady(models, **kw) -> LatentOptimizer:
    """An optimizer whose only randomness is its start.

    The tiny CLIP is nearly blind to the detail a random tiny decoder draws (any
    two of its frames are within cosine 0.999), so the noise of random cutouts
    and augmentations would drown the signal these tests look for; full-frame
    views without augmentation leave the pure optimization.  Cutouts and
    augmentation have their own tests below.  ``lr`` is in codebook units: the
    tiny codebook spans only +-1/64.
    """
    kw.setdefault("lr", models.vqgan.codebook.std().item())
    return LatentOptimizer(models, size=SIZE, cutouts=2, cut_min_frac=1.0, augment=False, **kw)


def reachable_target(models, seed: int) -> Target:
    """The CLIP embedding of a frame the generator can make: another random start's."""
    return Target.single(steady(models, seed=seed).frame_embedding(), label=f"frame-{seed}")


def sim(opt: LatentOptimizer, t: Target) -> float:
    return t.similarity(opt.frame_embedding()[None]).item()


@pytest.fixture(scope="module")
def targets(models):
    return reachable_target(models, 5), reachable_target(models, 7)


def test_loss_to_a_fixed_target_falls_over_30_steps(models, targets):
    a, _ = targets
    opt = steady(models, seed=0)
    start = a.loss(opt.frame_embedding()[None]).item()
    losses = [opt.step(a).loss for _ in range(30)]
    end = a.loss(opt.frame_embedding()[None]).item()
    assert end < 0.5 * start, (start, end)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_switching_targets_moves_towards_the_new_and_away_from_the_old(models, targets):
    a, b = targets
    opt = steady(models, seed=0)
    for _ in range(30):
        opt.step(a)
    before_a, before_b = sim(opt, a), sim(opt, b)
    for _ in range(30):  # z carries over: no re-initialization between targets
        opt.step(b)
    after_a, after_b = sim(opt, a), sim(opt, b)
    assert after_b > before_b and after_a < before_a, (before_a, after_a, before_b, after_b)


def test_l1_pull_keeps_z_nearer_the_previous_segment(models, targets):
    a, b = targets
    dist = {}
    for w in (0.0, 1.0):
        opt = steady(models, seed=0, l1_weight=w)
        for _ in range(20):
            opt.step(a)
        opt.set_anchor()  # segment change: z_{t-1} is recorded
        results = [opt.step(b) for _ in range(20)]
        dist[w] = (opt.z.detach() - opt.anchor).norm().item()
        assert (results[-1].l1 > 0) == (w > 0)
    assert dist[1.0] < 0.5 * dist[0.0], dist


def test_same_seed_same_frames_other_seed_other_frames(models, targets):
    a, _ = targets

    def run(seed):
        opt = LatentOptimizer(models, size=SIZE, cutouts=8, lr=0.01, seed=seed)  # cutouts + augmentation on
        return [opt.step(a) for _ in range(5)]

    r1, r2, r3 = run(1), run(1), run(2)
    assert all(np.array_equal(x.frame, y.frame) for x, y in zip(r1, r2))
    assert [x.loss for x in r1] == [y.loss for y in r2]
    assert not np.array_equal(r1[-1].frame, r3[-1].frame)


def test_cutouts_at_64px_are_distinct_real_crops(models, rng):
    opt = LatentOptimizer(models, size=SIZE, cutouts=16, cut_min_frac=0.25, seed=0)
    image = torch.from_numpy(rng.random((1, 3, 64, 64)).astype(np.float32))
    boxes = opt.draw_cutouts(16)
    sides = boxes[:, 2]
    assert sides.min() >= 16 and sides.max() <= 64 and sides.max() - sides.min() > 16
    assert (boxes[:, 0] + sides <= 64).all() and (boxes[:, 1] + sides <= 64).all()
    views = opt.cut(image, boxes)
    assert views.shape == (16, 3, 32, 32)
    flat = views.reshape(16, -1)
    gaps = (flat[:, None] - flat[None]).abs().mean(dim=-1) + torch.eye(16)
    assert gaps.min() > 0.05  # no two cutouts are (near) copies of each other


def test_cut_is_an_exact_crop_at_unit_scale(models, rng):
    # A 32-px box resized to CLIP's 32-px input samples pixel centres exactly.
    opt = LatentOptimizer(models, size=SIZE, cutouts=1, seed=0)
    image = torch.from_numpy(rng.random((1, 3, 64, 64)).astype(np.float32))
    boxes = torch.tensor([[0, 0, 32, 0], [32, 16, 32, 0], [16, 8, 32, 1]], dtype=torch.float32)
    views = opt.cut(image, boxes)
    assert torch.allclose(views[0], image[0, :, 0:32, 0:32], atol=1e-5)
    assert torch.allclose(views[1], image[0, :, 16:48, 32:64], atol=1e-5)
    assert torch.allclose(views[2], image[0, :, 8:40, 16:48].flip(-1), atol=1e-5)  # flipped


def test_step_returns_this_steps_frame_and_trains_only_z(models, targets):
    a, _ = targets
    opt = LatentOptimizer(models, size=(96, 64), cutouts=4, seed=0)
    before = opt.frame()
    r = opt.step(a)
    assert r.frame.shape == (64, 96, 3) and r.frame.dtype == np.uint8
    assert np.array_equal(r.frame, before)  # the frame decoded in this step, before the update
    assert r.image.shape == (3, 64, 96) and r.step == 1
    assert opt.z.grad is not None
    params = list(models.vqgan.parameters()) + list(models.clip.model.parameters())
    assert all(p.grad is None and not p.requires_grad for p in params)


def test_out_of_memory_becomes_a_typed_error_and_keeps_z(models, targets, monkeypatch):
    a, _ = targets
    opt = LatentOptimizer(models, size=SIZE, cutouts=4, seed=0)
    z = opt.z.detach().clone()

    def oom(*_args, **_kw):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(opt, "decode", oom)
    with pytest.raises(OutOfMemoryError, match=r"64x64 with 4 cutouts.*lower"):
        opt.step(a)
    assert torch.equal(opt.z.detach(), z)
    monkeypatch.undo()
    opt.set_cutouts(2)
    assert opt.step(a).step == 1


def test_init_from_image_resize_and_bad_sizes(models, rng):
    opt = LatentOptimizer(models, size=SIZE, cutouts=2, seed=0)
    opt.init_from_image((rng.random((50, 90, 3)) * 255).astype(np.uint8))
    assert opt.z.shape == (1, models.vqgan.embed_dim, 4, 4)
    opt.resize((128, 64))
    assert opt.z.shape == (1, models.vqgan.embed_dim, 4, 8) and opt.frame().shape == (64, 128, 3)
    with pytest.raises(ConfigError, match="multiples of 16"):
        LatentOptimizer(models, size=(70, 64))
    with pytest.raises(ConfigError, match="precision"):
        LatentOptimizer(models, size=SIZE, precision="int8")

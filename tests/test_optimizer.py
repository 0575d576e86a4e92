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


# -- augmentations: each name a preset may list does something, and only it -------------

def _views(models, augment, image, seed=3):
    opt = LatentOptimizer(models, size=SIZE, cutouts=8, cut_min_frac=0.5, augment=augment, seed=seed)
    boxes = opt.draw_cutouts(8)
    rand = opt.draw_augmentations(8)
    views = opt._jitter(opt.cut(image, boxes, warp=rand), rand)
    return views, boxes


@pytest.fixture
def stripes_image():
    """Horizontal stripes: every row is one value, so any rotation or warp shows up across a row."""
    rows = (np.arange(64) // 8 % 2).astype(np.float32)
    return torch.from_numpy(np.broadcast_to(rows[None, None, :, None], (1, 3, 64, 64)).copy())


def test_each_augmentation_name_acts_and_a_preset_list_reaches_the_optimizer(models, stripes_image):
    from core.presets import AUGMENTATIONS, GuidanceSection

    plain, _ = _views(models, [], stripes_image)
    assert (plain.std(dim=-1) < 1e-5).all()  # no augmentation: rows stay constant (an exact crop)
    for name in AUGMENTATIONS:
        views, boxes = _views(models, [name], stripes_image)
        if name == "flip":  # a flipped row of horizontal stripes is the same row: the boxes say it
            assert boxes[:, 3].sum() > 0
            continue
        assert not torch.allclose(views, plain, atol=1e-3), name
    rotated, _ = _views(models, ["affine"], stripes_image)
    assert (rotated.std(dim=-1).amax(dim=(1, 2)) > 0.05).float().mean() > 0.5  # rows cross stripes
    erased, _ = _views(models, ["erase"], stripes_image)
    # A grey rectangle: some views now hold values that are neither stripe (0 or 1).
    assert ((erased > 0.01) & (erased < 0.99)).any()
    opt = LatentOptimizer.from_config(models, GuidanceSection(augment=["noise", "erase"]), size=SIZE)
    assert opt.augmentations == {"noise", "erase"}
    assert LatentOptimizer.from_config(models, GuidanceSection(augment=True), size=SIZE).augmentations == \
        {"flip", "color", "noise"}
    with pytest.raises(ConfigError, match="unknown augmentations"):
        LatentOptimizer(models, size=SIZE, augment=["sparkle"])


def test_perspective_warp_is_the_identity_with_no_corner_moves():
    from core.optimizer import _homography_warp

    u = torch.rand(2, 50, 2) * 2 - 1
    assert torch.allclose(_homography_warp(u, torch.zeros(2, 4, 2)), u, atol=1e-5)
    moved = torch.tensor([[[0.1, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]]).expand(2, -1, -1)
    corners = torch.tensor([[[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]]).expand(2, -1, -1)
    assert torch.allclose(_homography_warp(corners, moved), corners + moved, atol=1e-5)


def test_guidance_init_starts_from_an_image_or_names_the_fix(models, tmp_path):
    from PIL import Image

    from core.optimizer import start_from_init

    img = np.zeros((64, 64, 3), np.uint8)
    img[:, :32] = (230, 30, 30)
    path = tmp_path / "start.png"
    Image.fromarray(img).save(path)
    a = LatentOptimizer(models, size=SIZE, seed=0)
    start_from_init(a, str(path))
    b = LatentOptimizer(models, size=SIZE, seed=0)
    b.init_from_image(img)
    assert torch.equal(a.z, b.z)  # the image's VQGAN encoding, not the seed's random codes
    c = LatentOptimizer(models, size=SIZE, seed=0)
    start_from_init(c, "random")
    assert not torch.equal(a.z, c.z)
    with pytest.raises(ConfigError, match="no such image file.*'random'"):
        start_from_init(a, str(tmp_path / "missing.png"))
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ConfigError, match="not a readable image"):
        start_from_init(a, str(tmp_path / "notes.png"))

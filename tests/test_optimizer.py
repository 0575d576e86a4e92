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


# -- the GPU-ready step: same results, nothing read back, OOM cleanup, resume, compile ---------

ALL_AUGMENT = ["flip", "affine", "perspective", "color", "noise", "erase"]
# Measured with the step as it was before issue 15 (commit 4ebd185: a float() of the losses and a
# .cpu() of the frame inside every step, boxes drawn on the CPU): (loss, l1, sum of frame bytes).
BEFORE_ISSUE_15 = {
    "all": [(0.015043920837342739, 0.0, 1612192), (0.017984438687562943, 0.0, 1611499),
            (0.01634577475488186, 0.0, 1612041), (0.02097717486321926, 0.0011496853549033403, 1611460),
            (0.3828012943267822, 0.0015035561518743634, 1613294), (0.38439643383026123, 0.001774432952515781, 1612454)],
    "default": [(0.009535769931972027, 0.0, 1612192), (0.023805364966392517, 0.0, 1610288),
                (0.009816376492381096, 0.0, 1611361), (0.018703199923038483, 0.001583571545779705, 1611735),
                (0.3811306655406952, 0.002359360922127962, 1610771), (0.3805016577243805, 0.0027015197556465864, 1610557)],
}


def _reference_run(models, augment, **kw):
    """Six steps: a target, an anchor after two, a two-embedding target after four."""
    e = LatentOptimizer(models, size=SIZE, seed=5).frame_embedding()
    t1 = Target.single(e)
    t2 = Target.of([(e, 1.0, "a"), (-e.flip(0), 0.3, "b")])
    opt = LatentOptimizer(models, size=SIZE, cutouts=4, augment=augment, seed=3, lr=0.01, l1_weight=0.5, **kw)
    out = []
    for k in range(6):
        if k == 2:
            opt.set_anchor()
        out.append(opt.step(t1 if k < 4 else t2))
    return opt, out


@pytest.mark.parametrize("augment, key", [(ALL_AUGMENT, "all"), (True, "default")])
def test_step_gives_the_same_losses_and_frames_as_before_the_lazy_step(models, augment, key):
    _, results = _reference_run(models, augment)
    for r, (loss, l1, frame_sum) in zip(results, BEFORE_ISSUE_15[key]):
        assert r.loss == pytest.approx(loss, rel=1e-6, abs=1e-9)
        assert r.l1 == pytest.approx(l1, rel=1e-6, abs=1e-12)
        assert abs(int(r.frame.astype(np.int64).sum()) - frame_sum) <= 64  # <= 64 of 12 288 bytes off by 1


@pytest.fixture
def host_reads(monkeypatch):
    """Counts reads of tensor values to the host made from m2v's own code (core/, live/)."""
    import inspect
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    ours = (str(root / "core"), str(root / "live"))
    calls: list[str] = []

    def spy(name):
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, **kwargs):
            caller = inspect.currentframe().f_back
            if caller is not None and caller.f_code.co_filename.startswith(ours):
                calls.append(f"{name} at {Path(caller.f_code.co_filename).name}:{caller.f_lineno}")
            return original(self, *args, **kwargs)
        return wrapper

    for name in ("item", "__float__", "__bool__", "__int__", "tolist", "numpy", "cpu"):
        monkeypatch.setattr(torch.Tensor, name, spy(name))
    return calls


def test_a_step_reads_nothing_back_until_its_loss_or_frame_is_asked_for(models, targets, host_reads):
    a, _ = targets
    opt = LatentOptimizer(models, size=SIZE, cutouts=4, augment=ALL_AUGMENT, seed=0, l1_weight=0.5)
    opt.step(a)
    opt.set_anchor()
    r = opt.step(a, frame=False)
    assert host_reads == [], host_reads
    assert isinstance(r.loss_t, torch.Tensor) and isinstance(r.l1_t, torch.Tensor)
    assert r.frame is None and r.host_frame is None
    loss = r.loss
    assert host_reads == ["__float__ at optimizer.py:" + host_reads[0].rsplit(":", 1)[1]]
    assert loss == pytest.approx(float(r.loss_t))


def test_without_an_anchor_the_l1_term_is_none_and_reads_as_zero(models, targets, host_reads):
    a, _ = targets
    r = LatentOptimizer(models, size=SIZE, cutouts=2, seed=0, l1_weight=0.5).step(a)  # no set_anchor()
    assert r.l1_t is None and r.l1 == 0.0 and host_reads == []


def test_out_of_memory_frees_the_graph_before_the_cache_and_the_next_step_runs(models, targets, monkeypatch):
    import sys
    import weakref

    import core.optimizer as optimizer_module

    a, _ = targets
    opt = LatentOptimizer(models, size=SIZE, cutouts=4, seed=0)
    real_decode = opt.decode
    graph = []

    def decode_then_oom(z):
        image = real_decode(z)  # a live graph hangs off this tensor until the traceback goes
        graph.append(weakref.ref(image))
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    seen = []

    def release(device):
        seen.append((sys.exc_info()[0], graph[0]() is None))

    monkeypatch.setattr(opt, "decode", decode_then_oom)
    monkeypatch.setattr(optimizer_module, "release_cached_memory", release)
    with pytest.raises(OutOfMemoryError, match="64x64 with 4 cutouts") as caught:
        opt.step(a)
    assert seen == [(None, True)]  # called outside the except block, with the graph already freed
    assert caught.value.__cause__ is None  # not chained: the original traceback would hold the graph
    monkeypatch.setattr(opt, "decode", real_decode)
    opt.set_cutouts(2)  # what the live worker does
    assert opt.step(a).step == 1 and opt.steps == 1


def test_resume_continues_the_same_steps_and_carries_the_cuda_rng_state(models, targets, monkeypatch, tmp_path):
    import core.optimizer as optimizer_module

    a, _ = targets
    opt = LatentOptimizer(models, size=SIZE, cutouts=4, augment=ALL_AUGMENT, seed=2)
    for _ in range(2):
        opt.step(a)
    cuda_rng = [torch.arange(16, dtype=torch.uint8)]
    monkeypatch.setattr(optimizer_module, "rng_state", lambda device: {"cuda_rng": cuda_rng})
    restored = []
    monkeypatch.setattr(optimizer_module, "restore_rng_state", lambda state, device: restored.append(state))
    torch.save(opt.state_dict(), tmp_path / "state.pt")
    expected = [opt.step(a).loss for _ in range(3)]
    again = LatentOptimizer(models, size=SIZE, cutouts=4, augment=ALL_AUGMENT, seed=99)
    again.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert torch.equal(restored[0]["cuda_rng"][0], cuda_rng[0])
    assert [again.step(a).loss for _ in range(3)] == expected


def test_target_buffer_keeps_its_shape_across_target_sizes(models):
    opt = LatentOptimizer(models, size=SIZE, cutouts=2, seed=0)
    e = torch.nn.functional.normalize(torch.randn(3, opt.clip.model.text_projection.shape[1]), dim=-1)
    one, three = Target.single(e[0]), Target.of([(x, 1.0, "") for x in e])
    embeds, weights = opt._load_target(three)
    assert embeds.shape[0] == 4 and weights.tolist()[3] == 0.0
    embeds1, weights1 = opt._load_target(one)
    assert embeds1 is embeds and weights1.tolist() == [1.0, 0.0, 0.0, 0.0]  # same buffer, rows past it weigh 0
    assert torch.equal(embeds1[0], e[0]) and not embeds1[1:].any()


def _compile_run(models, opt, ref, steps):
    """Step both through target swaps, anchor on/off and cutout changes; the losses of each."""
    e = LatentOptimizer(models, size=SIZE, seed=5).frame_embedding()
    a, b = Target.single(e), Target.of([(e.flip(0), 1.0, "b"), (e, 0.3, "style")])
    pairs = []
    for k in range(steps):
        for o in (opt, ref):
            if k == 2:
                o.set_anchor()
            if k == 5:
                o.clear_anchor()
            if k == 6:
                o.set_cutouts(6)
            if k == 8:
                o.set_anchor()
                o.set_cutouts(3)
        t = a if k % 2 == 0 else b
        pairs.append((opt.step(t).loss, ref.step(t).loss))
    return pairs


@pytest.mark.slow
def test_compiled_step_matches_eager_and_compiles_once_across_swaps(models):
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")
    kw = dict(size=SIZE, cutouts=4, augment=ALL_AUGMENT, seed=3, lr=0.01, l1_weight=0.5)
    opt = LatentOptimizer(models, compile="default", compile_backend=counter, **kw)
    pairs = _compile_run(models, opt, LatentOptimizer(models, **kw), steps=10)
    assert counter.frame_count == 1  # target swaps, anchor on/off, 4 -> 6 -> 3 cutouts: no recompile
    for compiled, eager in pairs:
        assert compiled == pytest.approx(eager, rel=1e-5)


@pytest.mark.slow
def test_inductor_compiled_step_matches_eager_over_20_steps(models):
    import shutil

    if not (shutil.which("gcc") or shutil.which("cc")):
        pytest.skip("inductor's CPU backend needs a C compiler (gcc)")
    torch._dynamo.reset()
    kw = dict(size=SIZE, cutouts=4, augment=ALL_AUGMENT, seed=3, lr=0.01, l1_weight=0.5)
    opt = LatentOptimizer(models, compile="default", **kw)
    pairs = _compile_run(models, opt, LatentOptimizer(models, **kw), steps=20)
    for compiled, eager in pairs:
        assert compiled == pytest.approx(eager, rel=1e-3)


def test_compile_preset_field_reaches_the_optimizer(models):
    from core.presets import GuidanceSection

    assert LatentOptimizer.from_config(models, GuidanceSection(), size=SIZE).compile_mode is None
    opt = LatentOptimizer.from_config(models, GuidanceSection(compile="reduce-overhead"), size=SIZE,
                                      compile_backend="eager")
    assert opt.compile_mode == "reduce-overhead"
    with pytest.raises(ConfigError, match="compile 'fast' is not one of off, default, reduce-overhead"):
        LatentOptimizer(models, size=SIZE, compile="fast")


def test_a_failing_compile_names_the_preset_fix(models, targets):
    a, _ = targets

    def broken_backend(gm, example_inputs):
        raise RuntimeError("no C compiler found")

    torch._dynamo.reset()
    opt = LatentOptimizer(models, size=SIZE, cutouts=2, seed=0, compile="default", compile_backend=broken_backend)
    with pytest.raises(ConfigError, match=r"\[guidance\] compile = 'default' failed on cpu.*set compile = 'off'"):
        opt.step(a)


# -- CUDA (gpu marker: skipped without a GPU) ------------------------------------------------------

@pytest.fixture(scope="module")
def cuda_models(tmp_path_factory):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    return load_models(write_tiny_models(tmp_path_factory.mktemp("tiny-cuda")), device="cuda", offline=True)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["auto", "bf16", "fp16", "fp32"])
def test_cuda_step_has_no_host_sync_and_learns(cuda_models, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
        pytest.skip("bf16 is emulated on this GPU")
    opt = LatentOptimizer(cuda_models, size=SIZE, cutouts=8, augment=ALL_AUGMENT, seed=0, precision=precision,
                          lr=0.01, l1_weight=0.1)
    t = Target.single(LatentOptimizer(cuda_models, size=SIZE, seed=5).frame_embedding())
    first = opt.step(t)
    opt.set_anchor()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any sync inside a step raises
    try:
        results = [opt.step(t) for _ in range(20)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert results[-1].host_frame._host.is_pinned()
    assert all(np.isfinite([r.loss for r in [first, *results]]))
    assert results[-1].frame.shape == (64, 64, 3) and results[-1].l1 > 0
    assert (opt._scaler is not None) == (opt.precision_used == "fp16")
    # And it learns in this precision (the steady setting of the CPU test above).
    steady_opt = LatentOptimizer(cuda_models, size=SIZE, cutouts=2, cut_min_frac=1.0, augment=False, seed=0,
                                 precision=precision, lr=cuda_models.vqgan.codebook.std().item())
    losses = [steady_opt.step(t, frame=False).loss for _ in range(30)]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses


@pytest.mark.gpu
def test_cuda_channels_last_weights(cuda_models):
    LatentOptimizer(cuda_models, size=SIZE, cutouts=2, seed=0)
    convs = [m for m in cuda_models.vqgan.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_cuda_compiled_step_matches_eager(cuda_models, mode):
    torch._dynamo.reset()
    kw = dict(size=SIZE, cutouts=4, augment=ALL_AUGMENT, seed=3, lr=0.01, l1_weight=0.5, precision="fp32")
    pairs = _compile_run(cuda_models, LatentOptimizer(cuda_models, compile=mode, **kw),
                         LatentOptimizer(cuda_models, **kw), steps=12)
    for compiled, eager in pairs:
        assert compiled == pytest.approx(eager, rel=1e-3)

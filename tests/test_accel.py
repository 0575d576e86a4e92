"""core.accel: precision chosen by the hardware, frame copies, RNG state, streams.

The CUDA decisions are driven here with only the capability queries patched; the CUDA code paths
themselves run under the ``gpu`` marker (test_optimizer.py, and below).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core import accel
from core.errors import ConfigError

CUDA = torch.device("cuda")
CPU = torch.device("cpu")


@pytest.fixture
def capability(monkeypatch):
    """Pretend the CUDA device has compute capability (major, minor); emulated bf16 always 'supported'."""
    def set_capability(major: int, minor: int = 0) -> None:
        monkeypatch.setattr(torch.version, "hip", None)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (major, minor))
        # torch's default answer counts emulation: yes on every card.  The choice must not follow it.
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    return set_capability


@pytest.mark.parametrize("major, minor, card", [(7, 0, "V100"), (7, 5, "T4")])
def test_auto_is_fp16_with_a_grad_scaler_where_bf16_is_only_emulated(capability, major, minor, card):
    capability(major, minor)
    dtypes = accel.autocast_dtypes("auto", CUDA)
    assert dtypes == (torch.float16, torch.float16), card
    assert accel.needs_grad_scaler(dtypes) and accel.precision_name(dtypes) == "fp16"


@pytest.mark.parametrize("major, card", [(8, "A100/RTX 30"), (9, "H100")])
def test_auto_is_bf16_without_a_scaler_where_the_hardware_has_it(capability, major, card):
    capability(major)
    dtypes = accel.autocast_dtypes("auto", CUDA)
    assert dtypes == (torch.bfloat16, torch.bfloat16), card
    assert not accel.needs_grad_scaler(dtypes) and accel.precision_name(dtypes) == "bf16"


def test_explicit_precisions_and_the_cpu():
    assert accel.autocast_dtypes("auto", CPU) == (None, None)
    assert accel.precision_name(accel.autocast_dtypes("auto", CPU)) == "fp32"
    assert accel.autocast_dtypes("bf16-decode", CPU) == (torch.bfloat16, None)
    assert accel.precision_name((torch.bfloat16, None)) == "bf16-decode"
    assert accel.autocast_dtypes("bf16", CPU) == (torch.bfloat16, torch.bfloat16)
    with pytest.raises(ConfigError, match="fp16 needs CUDA; on CPU use bf16"):
        accel.autocast_dtypes("fp16", CPU)
    with pytest.raises(ConfigError, match="int8.*auto, fp32, bf16"):
        accel.autocast_dtypes("int8", CPU)


def test_compile_modes():
    assert accel.compile_mode(False) is None and accel.compile_mode("off") is None
    assert accel.compile_mode(True) == "default"
    assert accel.compile_mode("reduce-overhead") == "reduce-overhead"
    with pytest.raises(ConfigError, match="'max' is not one of off, default, reduce-overhead"):
        accel.compile_mode("max")


def test_host_frame_converts_to_uint8_hwc():
    image = torch.tensor([0.0, 0.5, 1.0, 0.2]).view(1, 1, 4).expand(3, 2, 4).clone()
    image[1] = 1.0 - image[1]
    frame = accel.HostFrame(image).array()
    assert frame.shape == (2, 4, 3) and frame.dtype == np.uint8
    assert frame[0, :, 0].tolist() == [0, 128, 255, 51]  # round(0.5 * 255) = 128, round(0.2 * 255) = 51
    assert frame[1, :, 1].tolist() == [255, 128, 0, 204]


def test_release_cached_memory_empties_the_cuda_cache_only_on_cuda(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append(1))
    accel.release_cached_memory(CPU)
    assert calls == []
    accel.release_cached_memory(CUDA)
    assert calls == [1]


def test_cuda_rng_state_is_saved_and_restored_when_cuda_is_in_use(monkeypatch):
    states = [torch.tensor([1, 2, 3], dtype=torch.uint8), torch.tensor([4, 5], dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: states)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    assert accel.rng_state(CPU) == {}  # a CPU run touches no CUDA generator
    saved = accel.rng_state(CUDA)
    assert [t.tolist() for t in saved["cuda_rng"]] == [[1, 2, 3], [4, 5]]
    accel.restore_rng_state(saved, CPU)
    assert restored == []
    accel.restore_rng_state(saved, CUDA)
    assert restored == [saved["cuda_rng"]]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # resumed on a machine with one GPU
    accel.restore_rng_state(saved, CUDA)
    assert len(restored) == 1


def test_side_stream_on_cpu_is_a_plain_block():
    side = accel.SideStream(CPU)
    assert side.stream is None
    with side.run():
        x = torch.ones(3) * 2
    side.hand_over([x])
    assert x.tolist() == [2.0, 2.0, 2.0]


@pytest.mark.gpu
def test_side_stream_hands_over_finished_tensors_on_cuda():
    side = accel.SideStream(CUDA)
    a = torch.randn(2048, 2048, device=CUDA)
    with side.run():
        assert torch.cuda.current_stream() == side.stream
        b = (a @ a).sum(dim=0)
    side.hand_over([b])
    assert torch.cuda.current_stream() == torch.cuda.default_stream()
    assert torch.allclose(b, (a @ a).sum(dim=0), rtol=1e-4, atol=1e-2)


@pytest.mark.gpu
def test_host_frame_on_cuda_is_pinned_and_equal_to_a_blocking_copy():
    image = torch.rand(3, 64, 96, device=CUDA)
    hf = accel.HostFrame(image)
    assert hf._host.is_pinned()
    expected = image.mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    assert np.array_equal(hf.array(), expected)


@pytest.mark.gpu
def test_native_bf16_matches_torch_without_emulation():
    assert accel.native_bf16(CUDA) == torch.cuda.is_bf16_supported(including_emulation=False)

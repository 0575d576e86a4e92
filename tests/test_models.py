"""Loaders round-trip the tiny set; bad files give the right errors; unsafe pickles never run."""

from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import ModelLoadError, WeightsMissingError
from core.models import load_models, resolve_spec
from core.models.registry import ModelSetSpec, WeightFile, check_pair, spec_from_manifest
from core.models.safeload import load_tensors
from core.models.tiny import build_tiny_vqgan, build_tiny_wav2clip, write_tiny_models
from core.models.weights import download_set, file_status

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_models(tmp_path_factory.mktemp("tiny"), seed=3)


@pytest.fixture(scope="module")
def tiny_models(tiny):
    return load_models(tiny, device="cpu", offline=True)


def test_vqgan_roundtrip_decodes_identically(tiny, tiny_models):
    ref = build_tiny_vqgan(seed=3)
    z = torch.randn(1, 8, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(ref.decode(z), tiny_models.vqgan.decode(z))
    assert tiny_models.vqgan.downsample == 16
    assert not any(p.requires_grad for p in tiny_models.vqgan.parameters())


def test_clip_roundtrip_encodes_identically(tiny, tiny_models):
    import open_clip

    from core.models.tiny import CLIP_CONFIG

    torch.manual_seed(3)
    ref = open_clip.CLIP(**CLIP_CONFIG["model_cfg"]).eval()
    img = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    tokens = tiny_models.clip.tokenize(["a red circle", "drums"])
    with torch.no_grad():
        assert torch.allclose(ref.encode_image(img), tiny_models.clip.model.encode_image(img), atol=1e-5)
        assert torch.allclose(ref.encode_text(tokens), tiny_models.clip.model.encode_text(tokens), atol=1e-5)
    assert tiny_models.clip.image_size == 32


def test_wav2clip_roundtrip_embeds_identically(tiny_models):
    from wav2clip.model.encoder import ResNetExtractor

    ref = ResNetExtractor(checkpoint=build_tiny_wav2clip(seed=3), scenario="frozen", transform=True).eval()
    wave = torch.randn(1, 16000, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = tiny_models.audio(wave)
        assert out.shape == (1, 512)
        assert torch.allclose(ref(wave), out)


def test_lightning_metadata_needs_the_placeholder_path(tiny):
    ckpt = Path(tiny.files_root) / tiny.vqgan_ckpt.path
    # torch's plain weights-only load refuses the Lightning class reference ...
    with pytest.raises(Exception, match="pytorch_lightning"):
        torch.load(ckpt, weights_only=True)
    # ... and m2v reads the tensors without importing or running anything.
    state = load_tensors(ckpt)["state_dict"]
    assert "quantize.embedding.weight" in state and "loss.logvar" in state
    assert "pytorch_lightning" not in sys.modules


def test_missing_file_names_the_download_command(tmp_path):
    with pytest.raises(WeightsMissingError, match="m2v weights download"):
        load_tensors(tmp_path / "nope.ckpt")


@pytest.mark.parametrize("name", ["vqgan/tiny.ckpt", "wav2clip/tiny-wav2clip.pt", "clip/open_clip_model.safetensors"])
def test_truncated_files_are_reported_corrupt(tiny, tmp_path, name):
    src = Path(tiny.files_root) / name
    bad = tmp_path / src.name
    bad.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="corrupt|truncated|not a readable"):
        load_tensors(bad)
    garbage = tmp_path / ("garbage" + src.suffix)
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(ModelLoadError):
        load_tensors(garbage)


def test_manifest_detects_size_mismatch(tiny, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny.files_root, copy)
    with open(copy / "vqgan/tiny.ckpt", "ab") as f:
        f.write(b"x")
    spec = spec_from_manifest(copy)
    states = {wf.path: file_status(spec, wf, verify=True).state for wf in spec.files()}
    assert states["vqgan/tiny.ckpt"] == "corrupt"
    assert states["vqgan/tiny.yaml"] == "present"


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _Evil(marker)}, bad)
    with pytest.raises(ModelLoadError, match="loads tensors only"):
        load_tensors(bad)
    assert not marker.exists()
    # Also through the full VQGAN loader, in place of a real checkpoint.
    from core.models.tiny import VQGAN_YAML
    from core.models.vqgan import load_vqgan

    (tmp_path / "model.yaml").write_text(VQGAN_YAML)
    with pytest.raises(ModelLoadError):
        load_vqgan(tmp_path / "model.yaml", bad)
    assert not marker.exists()


def test_checkpoint_that_does_not_fit_config(tiny, tmp_path):
    from core.models.vqgan import load_vqgan

    yaml = (Path(tiny.files_root) / "vqgan/tiny.yaml").read_text().replace("n_embed: 64", "n_embed: 128")
    (tmp_path / "other.yaml").write_text(yaml)
    with pytest.raises(ModelLoadError, match="does not fit"):
        load_vqgan(tmp_path / "other.yaml", Path(tiny.files_root) / "vqgan/tiny.ckpt")


def test_mismatched_clip_and_audio_pair_is_refused(tiny):
    with pytest.raises(ModelLoadError, match="meaningless"):
        check_pair(clip_space="openai/ViT-B-16", audio_space="openai/ViT-B-32")
    check_pair(clip_space="openai/ViT-B-32", audio_space="openai/ViT-B-32")
    check_pair(clip_space="openai/ViT-B-16", audio_space=None)
    import dataclasses

    bad = dataclasses.replace(tiny, audio_space="openai/ViT-B-32")
    with pytest.raises(ModelLoadError, match="meaningless"):
        load_models(bad, device="cpu", offline=True)


def test_registry_default_is_the_papers_models():
    spec = resolve_spec("default")
    assert "16384" in spec.vqgan_ckpt.path and spec.clip_space == "openai/ViT-B-32"
    assert spec.audio_space == spec.clip_space


def test_offline_missing_weights_error_names_the_fix(m2v_home):
    with pytest.raises(WeightsMissingError) as err:
        load_models("default", device="cpu", offline=True)
    msg = str(err.value)
    assert "m2v weights download default" in msg and str(m2v_home) in msg and "https://" in msg


def test_spectrogram_stand_in_matches_librosa():
    import librosa

    from core import compat

    compat.ensure_audio()
    import torchaudio

    y = np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000).astype(np.float32)
    ours = torchaudio.transforms.Spectrogram(n_fft=512, hop_length=353)(torch.from_numpy(y)).numpy()
    ref = np.abs(librosa.stft(y, n_fft=512, hop_length=353, center=True, pad_mode="reflect")) ** 2
    assert ours.shape == ref.shape
    assert np.allclose(ours, ref, rtol=1e-3, atol=1e-3 * ref.max())
    assert ours[:, 10].argmax() == 32  # 1 kHz at 16 kHz / 512 bins


# --- downloads over a real local HTTP server -----------------------------------


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    payload = b""

    def do_GET(self):  # noqa: N802
        data, start = self.payload, 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])
        type(self).ranges.append(rng)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    _RangeHandler.payload = os.urandom(3 * (1 << 20) + 123)
    _RangeHandler.ranges = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()


def _spec(tmp_path, url, sha):
    wf = WeightFile("a/blob.pt", url=url, size_bytes=len(_RangeHandler.payload), sha256=sha)
    return ModelSetSpec(name="t", description="", vqgan_config=wf, vqgan_ckpt=wf, clip_dir="c", clip_files=(),
                        clip_space="s", files_root=str(tmp_path))


def test_download_resumes_verifies_and_is_atomic(tmp_path, http_server):
    data = _RangeHandler.payload
    url = f"http://127.0.0.1:{http_server.server_address[1]}/blob"
    spec = _spec(tmp_path, url, hashlib.sha256(data).hexdigest())
    part = tmp_path / "a/blob.pt.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:1000])
    assert file_status(spec, spec.vqgan_ckpt).state == "partial"
    download_set(spec, progress=False)
    assert (tmp_path / "a/blob.pt").read_bytes() == data
    assert _RangeHandler.ranges[0] == "bytes=1000-" and not part.exists()


def test_download_with_bad_checksum_leaves_no_final_file(tmp_path, http_server):
    url = f"http://127.0.0.1:{http_server.server_address[1]}/blob"
    spec = _spec(tmp_path, url, "0" * 64)
    with pytest.raises(WeightsMissingError, match="checksum mismatch"):
        download_set(spec, progress=False)
    assert not (tmp_path / "a/blob.pt").exists()


def test_cli_weights_download_fails_fast_offline(m2v_home):
    env = {**os.environ, "M2V_HOME": str(m2v_home)}
    env.pop("M2V_OFFLINE", None)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "live.cli", "weights", "download", "--offline"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert time.monotonic() - t0 < 30
    assert proc.stderr.startswith("Error: model set 'default' is not complete")
    assert "Traceback" not in proc.stderr
    listing = subprocess.run([sys.executable, "-m", "live.cli", "weights", "list", "default"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert listing.returncode == 1 and listing.stdout.count("missing") == 5  # a named set that is not complete


def test_resolve_device_knows_mps_and_names_the_fix_when_it_is_absent():
    import torch

    from core.errors import ConfigError, DeviceError
    from core.models import resolve_device
    from core.presets import ModelsSection

    assert ModelsSection(device="mps").device == "mps"  # the schema and the resolver agree on the names
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.backends.mps.is_available():
        with pytest.raises(DeviceError, match="Apple.*--device cpu"):
            resolve_device("mps")
    else:
        assert resolve_device("mps").type == "mps"
    with pytest.raises(ConfigError, match="not one of auto, cpu, cuda"):
        resolve_device("tpu")

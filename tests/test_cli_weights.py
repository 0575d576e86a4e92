"""``m2v weights list``: the table, and an exit code that says whether a listed set needs fixing."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from live.cli import main

REPO = Path(__file__).resolve().parents[1]


def _list(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["weights", "list", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_sets_never_downloaded_are_not_a_failure(m2v_home, capsys):
    code, out, err = _list(capsys)
    assert code == 0 and err == ""
    assert out.count("missing") >= 5 and "default:" in out and "imagenet1024:" in out


def test_partial_and_corrupt_files_fail_and_name_the_fix(m2v_home, capsys):
    models = m2v_home / "models"
    (models / "vqgan").mkdir(parents=True)
    (models / "vqgan" / "vqgan_imagenet_f16_1024.ckpt.part").write_bytes(b"x" * 1000)  # interrupted download
    (models / "wav2clip").mkdir()
    (models / "wav2clip" / "Wav2CLIP.pt").write_bytes(b"")  # empty: corrupt
    code, out, err = _list(capsys)
    assert code == 1
    assert "partial " in out and "1000 bytes downloaded" in out and "corrupt " in out  # the table is still printed
    assert f"imagenet1024: partial: {models / 'vqgan' / 'vqgan_imagenet_f16_1024.ckpt'}" in err
    assert f"imagenet1024: corrupt: {models / 'wav2clip' / 'Wav2CLIP.pt'}" in err
    assert f"default: corrupt: {models / 'wav2clip' / 'Wav2CLIP.pt'}" in err  # the file is shared
    assert "default: partial" not in err
    assert "`m2v weights download default`" in err and "`m2v weights download imagenet1024`" in err
    assert "vitb16-text" not in err  # only missing files there: not downloaded, not broken


def test_a_named_set_must_be_complete(m2v_home, capsys):
    code, _, err = _list(capsys, "toy")  # ships with m2v
    assert code == 0 and err == ""
    code, out, err = _list(capsys, "default")
    assert code == 1 and out.count("missing") == 5
    assert err.count("default: missing: ") == 5 and "`m2v weights download default`" in err


def test_checksum_mismatch_fails_only_with_verify(tmp_path, capsys, m2v_home):
    good, bad = b"model: {}\n", b"0123456789"
    fake = b"9876543210"  # right size, wrong bytes
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "a.yaml").write_bytes(good)
    (tmp_path / "set" / "b.ckpt").write_bytes(fake)

    def entry(name, data):
        return {"path": name, "url": f"https://example.invalid/{name}", "size_bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest()}

    manifest = {"name": "mine", "description": "test set", "vqgan_config": entry("a.yaml", good),
                "vqgan_ckpt": entry("b.ckpt", bad), "clip_dir": "clip", "clip_files": [], "clip_space": "x"}
    (tmp_path / "set" / "m2v-models.json").write_text(json.dumps(manifest))
    code, _, err = _list(capsys, str(tmp_path / "set"))
    assert code == 0 and err == ""  # sizes match: a plain listing cannot tell
    code, out, err = _list(capsys, str(tmp_path / "set"), "--verify")
    assert code == 1 and "sha256" in out
    assert f"mine: corrupt: {tmp_path / 'set' / 'b.ckpt'}" in err and "delete a file with a wrong sha256" in err


def test_exit_code_reaches_the_shell(m2v_home):
    env = {**os.environ, "M2V_HOME": str(m2v_home)}
    (m2v_home / "models" / "wav2clip").mkdir(parents=True)
    (m2v_home / "models" / "wav2clip" / "Wav2CLIP.pt").write_bytes(b"")
    proc = subprocess.run([sys.executable, "-m", "live.cli", "weights", "list"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "corrupt" in proc.stdout and "m2v weights download default" in proc.stderr

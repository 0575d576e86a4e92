"""``m2v presets list|show|validate|schema``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from core.presets import tomllib  # tomli on python 3.10
from pathlib import Path

from core.paths import shipped_presets_dir
from core.presets import load_preset
from live.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_list_shows_name_description_and_source(m2v_home, capsys):
    (m2v_home / "presets").mkdir()
    (m2v_home / "presets" / "club.toml").write_text('description = "my own club"\n')
    assert main(["presets", "list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert set(lines) >= {"paper", "club", "ambient", "cpu", "tiny"}
    assert "my own club" in lines["club"] and str(m2v_home / "presets" / "club.toml") in lines["club"]
    assert str(shipped_presets_dir() / "paper.toml") in lines["paper"]
    assert load_preset("paper").description in lines["paper"]


def test_show_prints_resolved_toml_and_json(m2v_home, capsys):
    assert main(["presets", "show", "tiny"]) == 0
    data = tomllib.loads(capsys.readouterr().out)
    assert data["models"]["set"] == "tiny" and data["models"]["device"] == "cpu"  # from cpu
    assert "extends" not in data  # fully resolved
    assert main(["presets", "show", "tiny", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == data


def test_show_unknown_exits_nonzero_with_names(m2v_home, capsys):
    assert main(["presets", "show", "papr"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: unknown preset 'papr'") and "paper" in err and "Traceback" not in err


def test_validate_reports_every_error_and_exits_nonzero(m2v_home, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[onsets]\nhop = 300\nmethod = "fast"\n[record]\ncrf = 60\n')
    good = tmp_path / "good.toml"
    good.write_text('extends = "paper"\n[effects]\nflash = 0.2\n')
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "live.cli", "presets", "validate", str(bad), str(good)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith(str(bad))]
    assert len(lines) == 3, proc.stderr
    joined = "\n".join(lines)
    for field, value, allowed in (("onsets.hop", "300", "256, 512"), ("onsets.method", "'fast'", "'specflux'"),
                                  ("record.crf", "60", "0 <= x <= 51")):
        assert f"{field}:" in joined and f"got {value}" in joined and allowed in joined
    assert str(good) not in proc.stderr

    ok = subprocess.run([sys.executable, "-m", "live.cli", "presets", "validate", str(good),
                         *map(str, sorted(shipped_presets_dir().glob("*.toml")))],
                        capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok:")


def test_schema_doc_is_current(capsys):
    assert main(["presets", "schema"]) == 0
    out = capsys.readouterr().out
    doc = ROOT / "presets" / "SCHEMA.md"
    assert doc.read_text() == out, "presets/SCHEMA.md is stale: run `python -m live.cli presets schema > presets/SCHEMA.md`"


def test_validate_checks_show_files(m2v_home, tmp_path, capsys):
    show = tmp_path / "show.toml"
    show.write_text('[[songs]]\ntitle = "a"\npreset = "club"\n[[songs]]\ntitle = "b"\npreset = "clubb"\n'
                    '[songs.overrides]\neffects = { zoom = 2.0 }\n')
    assert main(["presets", "validate", str(show)]) == 1
    err = capsys.readouterr().err
    assert "songs[1] ('b'): preset: unknown preset 'clubb'" in err and "1 error(s)" in err
    show.write_text('[[songs]]\ntitle = "a"\npreset = "club"\n[songs.overrides]\neffects = { zoom = 2.0 }\n')
    assert main(["presets", "validate", str(show)]) == 1
    assert "effects.zoom" in capsys.readouterr().err
    show.write_text('[[songs]]\ntitle = "a"\npreset = "club"\n')
    assert main(["presets", "validate", str(show)]) == 0

"""``m2v bench``: the preset's setting timed, figures printed and written, bad flags named."""

from __future__ import annotations

import json

import pytest

from live.cli import main

FAST = ["--models", "tiny", "--size", "64", "--steps", "2", "--warmup", "1", "--device", "cpu"]


def test_bench_times_the_preset_and_writes_json(tmp_path, capsys, m2v_home):
    out = tmp_path / "bench.json"
    assert main(["bench", "--preset", "tiny", *FAST, "--cutouts", "3", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "steps/s" in printed and "preset tiny (tiny, 64 px, 3 cutouts)" in printed
    data = json.loads(out.read_text())
    (row,) = data["rows"]
    assert row["preset"] == "tiny" and row["size"] == 64 and row["cutouts"] == 3 and row["steps"] == 2
    assert row["max_steps_per_s"] == 20.0  # tiny.toml's [rate]
    assert row["sustains_full_rate"] == (row["steps_per_s"] >= 20.0)
    for key in ("precision", "compile", "host_syncs_per_step", "torch", "cuda", "gpu_name", "peak_mem_mb"):
        assert key in row
    assert data["verdicts"] and data["verdicts"][0].startswith("preset tiny")


def test_all_presets_gives_a_row_and_a_verdict_each(tmp_path, capsys, m2v_home):
    from core.presets import list_presets

    out = tmp_path / "all.json"
    assert main(["bench", "--all-presets", *FAST, "--cutouts", "2", "--budget-s", "0", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    names = [i.name for i in list_presets() if i.error is None]
    assert [r["preset"] for r in data["rows"]] == names and len(data["verdicts"]) == len(names)


@pytest.mark.parametrize("flags, message", [
    (["--steps", "0"], "--steps 0: must be >= 1"),
    (["--preset", "club", "--all-presets"], "give one"),
    (["--models", "huge"], "choose one of tiny, toy"),
])
def test_bad_input_names_the_fix(flags, message, capsys, m2v_home):
    args = ["bench", "--device", "cpu", *flags]
    if "--models" not in flags:
        args += ["--models", "tiny"]
    assert main(args) != 0
    assert message in capsys.readouterr().err

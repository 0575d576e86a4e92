"""core.bench: one timed setting with the tiny set, and the verdict against a preset's full rate."""

from __future__ import annotations

import pytest

from core.bench import BenchPoint, bench_models, bench_point, table_row, verdict
from core.errors import ConfigError


@pytest.fixture(scope="module")
def tiny():
    return bench_models("tiny", "cpu")


def test_a_bench_point_times_steps_and_reports_the_figures(tiny):
    row = bench_point(tiny, BenchPoint(size=(64, 48), cutouts=2, augment=False, label="x"), steps=3, warmup=1)
    assert row["steps"] == 3 and len(row["losses"]) == 3 and all(0.0 < x < 10.0 for x in row["losses"])
    assert row["steps_per_s"] == pytest.approx(1e3 / row["step_ms"]["median"])
    assert row["step_ms"]["p95"] >= row["step_ms"]["median"] > 0
    assert row["size"] == "64x48" and row["cutouts"] == 2 and row["preset"] == "x" and row["models"] == "tiny"
    assert row["precision"] == "fp32" and row["compile"] == "off"  # auto on a CPU
    assert row["host_syncs_per_step"] is None  # counted on CUDA only
    assert row["peak_mem_kind"] == "peak_rss" and row["peak_mem_mb"] > 50  # a torch process is never smaller
    assert row["gflop_per_step"] > 0 and row["decode_ms"] > 0 and row["clip_ms"] > 0
    assert "x" in table_row(row)


def test_the_budget_stops_timing_after_min_steps(tiny):
    row = bench_point(tiny, BenchPoint(size=(64, 64), cutouts=2), steps=50, warmup=1, min_steps=2, budget_s=0.0)
    assert row["steps"] == 2


def test_verdict_against_the_full_rate():
    row = {"steps_per_s": 12.0, "preset": "club", "models": "default", "size": 256, "cutouts": 24}
    assert verdict(row, 10.0) == "preset club (default, 256 px, 24 cutouts): sustains its full rate (12.0 >= 10 steps/s)"
    slow = verdict(row, 40.0)
    assert slow.startswith("preset club (default, 256 px, 24 cutouts): 30% of its full rate (12.00 of 40 steps/s)")
    assert "lower [models] size or [guidance] cutouts" in slow


def test_unknown_models_name_the_choices():
    with pytest.raises(ConfigError, match="choose one of tiny, toy, default, imagenet1024, vitb16-text"):
        bench_models("huge", "cpu")

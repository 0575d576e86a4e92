"""One chunk of a split render (no Ray): warm-up, anchor and segment files against the single-machine render."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from core.chunked import ChunkJob, render_chunk
from core.chunks import plan_chunks, seam_stats
from core.render import RenderSettings, render, song_plan

SETTINGS = RenderSettings.of("tiny", {"models.size": 64, "render.fps": 10, "render.min_ips": 2.0,
                                      "render.max_ips": 6.0, "guidance.cutouts": 2, "guidance.seed": 1})


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    from core.synth import generate_drum_pattern

    d = tmp_path_factory.mktemp("song")
    from core.audio_io import load_audio

    y, sr = generate_drum_pattern(bpm=100, duration_s=3.0, sr=22050)
    sf.write(d / "song.wav", y, 22050)
    return (d / "song.wav", *load_audio(d / "song.wav"))  # the samples render() reads (16-bit WAV)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from core.models import load_models
    from core.models.tiny import write_tiny_models

    return load_models(write_tiny_models(tmp_path_factory.mktemp("tiny"), seed=0), device="cpu", offline=True)


def _chunks(song, settings, *, warmup_s):
    _, y, sr = song
    _, plans, _ = song_plan(y, sr, settings=settings, cues=[])
    return plans, plan_chunks(plans, min_chunk_s=1.0, warmup_s=warmup_s)


@pytest.mark.slow
def test_a_segment_shorter_than_a_frame_at_the_end_renders(song, models, tmp_path):
    """100 BPM over 3 s: the last beat segment (2.93-3.0 s) is shorter than 1/10 s and owns no frame."""
    path, y, sr = song
    _, plans, _ = song_plan(y, sr, settings=SETTINGS, cues=[])
    assert plans[-1].frames == [] and plans[-1].iterations >= 1
    res = render(path, tmp_path / "v.mp4", settings=SETTINGS, models=models, progress=False)
    assert res.frames == 30


@pytest.mark.slow
@pytest.mark.parametrize("consistency", ["average", "l1"])
def test_a_warmup_over_the_whole_past_reproduces_the_single_machine_render(song, models, tmp_path, consistency):
    """Same init, seed and loop: warming up over every earlier segment gives the same losses, bit for bit,
    with Eq. 2 targets and with Eq. 1's anchor; a cold start (no warm-up) does not."""
    path, y, sr = song
    settings = SETTINGS.with_overrides({"guidance.consistency": consistency})
    single = render(path, tmp_path / "one.mp4", settings=settings, models=models, progress=False)
    want = [s["loss_last"] for s in json.loads(single.sidecar_path.read_text())["segments"]]
    plans, full = _chunks(song, settings, warmup_s=100.0)
    assert len(full) == 2 and full[1].warmup == tuple(range(full[1].first))
    results = [render_chunk(ChunkJob(settings, plans, c, y, sr), models) for c in full]
    got = [s["loss_last"] for r in results for s in r["segments"]]
    assert got == want
    assert sum(len(r["files"]) for r in results) == sum(1 for p in plans if p.frames)
    # with the whole past as warm-up the seam is the single-machine change between those frames
    assert np.isfinite(seam_stats(results)["boundaries"][0])
    _, cold = _chunks(song, settings, warmup_s=0.0)
    cold1 = render_chunk(ChunkJob(settings, plans, cold[1], y, sr), models)
    assert [s["loss_last"] for s in cold1["segments"]] != want[cold[1].first:]


@pytest.mark.slow
def test_a_short_warmup_counts_its_iterations_and_writes_only_the_chunk(song, models):
    _, y, sr = song
    plans, chunks = _chunks(song, SETTINGS, warmup_s=0.5)
    c = chunks[1]
    r = render_chunk(ChunkJob(SETTINGS, plans, c, y, sr), models)
    assert r["warmup_iterations"] == sum(plans[i].iterations for i in c.warmup) > 0
    assert sorted(r["files"]) == [f"seg{i:05d}.mp4" for i in c.segments if plans[i].frames]
    assert r["change_pairs"] == c.frames - 1 and r["first_frame"].shape == (64, 64, 3)

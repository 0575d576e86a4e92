"""One chunk of a split render (no Ray): warm-up, anchor and segment files against the single-machine render."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from core.chunked import ChunkJob, crossfade_seams, faded_file, render_chunk, segment_file
from core.chunks import frame_change, plan_chunks, seam_stats
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


@pytest.mark.slow
def test_a_chunk_runs_on_into_the_next_for_its_tail_frames(song, models):
    """With the whole past as warm-up both chunks follow the single-machine trajectory, so chunk 0's tail
    is exactly chunk 1's first frames."""
    _, y, sr = song
    _, plans, _ = song_plan(y, sr, settings=SETTINGS, cues=[])
    chunks = plan_chunks(plans, min_chunk_s=1.0, warmup_s=100.0, fade_frames=6)
    assert len(chunks) >= 2 and chunks[0].fade_frames == 6 and chunks[0].tail[0] == chunks[1].first
    r0, r1 = (render_chunk(ChunkJob(SETTINGS, plans, c, y, sr), models) for c in chunks[:2])
    assert r0["tail_frames"].shape == (6, 64, 64, 3) and r0["tail_iterations"] > 0
    assert np.array_equal(r0["tail_frames"][0], r1["first_frame"])
    assert not np.array_equal(r0["tail_frames"][0], r0["last_frame"])
    # the tail does not change what the chunk itself writes
    plain = render_chunk(ChunkJob(SETTINGS, plans, plan_chunks(plans, min_chunk_s=1.0)[0], y, sr), models)
    assert [s["loss_last"] for s in plain["segments"]] == [s["loss_last"] for s in r0["segments"]]
    assert plain["tail_frames"].shape[0] == 0


def test_the_crossfade_dissolves_from_the_previous_chunks_tail_into_the_next_chunk(tmp_path):
    """Solid frames with known values: chunk 1's first 4 frames go from the tail (black) to its own (white)
    in equal steps; the originals stay; the seam's largest step is a fifth of the cut's."""
    import av

    from core.chunks import ChunkPlan
    from core.render import SegmentPlan
    from core.video import ChunkWriter

    plans = [SegmentPlan(i, i * 0.5, i * 0.5 + 0.5, 5, 0.5, 0.5, "audio", frames=list(range(3 * i, 3 * i + 3)),
                         frame_iteration=[1, 2, 3]) for i in range(4)]  # 3 frames per segment
    chunks = [ChunkPlan(0, 0, 1, 0.0, 1.0, 6, 10, tail=(2, 3), fade_frames=4), ChunkPlan(1, 2, 3, 1.0, 2.0, 6, 10)]
    solid = lambda v: np.full((32, 32, 3), v, np.uint8)  # noqa: E731
    for i in (2, 3):
        w = ChunkWriter(tmp_path / segment_file(i), fps=10, width=32, height=32, crf=0)
        for _ in range(3):
            w.write(solid(250))
        w.close()
    before = {i: (tmp_path / segment_file(i)).read_bytes() for i in (2, 3)}
    results = [{"last_frame": solid(0), "tail_frames": np.stack([solid(0)] * 4)}, {}]
    faded = crossfade_seams(results, chunks, plans, tmp_path, fps=10, crf=0)
    out = []
    for i in (2, 3):
        assert (tmp_path / segment_file(i)).read_bytes() == before[i]
        with av.open(str(tmp_path / faded_file(i))) as src:
            out += [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]
    assert [round(float(f.mean())) for f in out] == [50, 100, 150, 200, 250, 250]
    assert len(faded) == 1 and len(faded[0]) == 5 and max(faded[0]) == pytest.approx(50, abs=1.5)
    assert seam_stats([{**r, "first_frame": solid(250), "change_pairs": 1, "change_sum": 0.0, "moving_pairs": 0}
                       for r in ({"last_frame": solid(0)}, {"last_frame": solid(250)})],
                      faded=faded)["boundaries"] == [pytest.approx(50, abs=1.0)]  # 250 in 5 steps
    assert crossfade_seams([{"tail_frames": np.zeros((0, 32, 32, 3), np.uint8)}, {}], chunks, plans, tmp_path,
                           fps=10, crf=0) == [[]]

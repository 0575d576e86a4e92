"""The chunk planner and the seam measure (pure: no models, no Ray)."""

from __future__ import annotations

import numpy as np
import pytest

from core.chunks import frame_change, plan_chunks, seam_stats
from core.errors import ConfigError
from core.render import plan_segments
from core.segments import OfflineAnalysis, Segment


def _plans(edges, iterations, fps=10):
    segs = [Segment(a, b, 0.5, 0.5, n) for (a, b), n in zip(zip(edges[:-1], edges[1:]), iterations)]
    an = OfflineAnalysis(sr=22050, duration_s=edges[-1], tempo_bpm=120.0, beats=np.array(edges[1:-1]),
                         onsets=np.array([]), segments=segs, intensity_hop_s=0.01, intensity=np.zeros(10))
    return plan_segments(an, [], fps=fps)


def test_chunks_cut_at_segment_boundaries_once_the_minimum_is_reached():
    plans = _plans(list(np.arange(11.0)), [5] * 10)  # ten 1-s segments
    chunks = plan_chunks(plans, min_chunk_s=3.0)
    # cuts at 3 s and 6 s; the 1-s tail after 9 s is shorter than the minimum and joins the last chunk
    assert [(c.first, c.last) for c in chunks] == [(0, 2), (3, 5), (6, 9)]
    assert [(c.start_s, c.end_s) for c in chunks] == [(0.0, 3.0), (3.0, 6.0), (6.0, 10.0)]
    assert [c.frames for c in chunks] == [30, 30, 40] and [c.iterations for c in chunks] == [15, 15, 20]
    assert all(c.end_s - c.start_s >= 3.0 for c in chunks)


def test_every_segment_in_exactly_one_chunk_with_uneven_segments():
    rng = np.random.default_rng(0)
    edges = np.concatenate([[0.0], np.cumsum(rng.uniform(0.2, 1.3, 60))])
    plans = _plans(list(edges), list(rng.integers(1, 30, 60)))
    chunks = plan_chunks(plans, min_chunk_s=5.0)
    assert [i for c in chunks for i in c.segments] == list(range(60))
    assert len(chunks) > 2 and all(c.end_s - c.start_s >= 5.0 for c in chunks)
    assert sum(c.frames for c in chunks) == sum(len(p.frames) for p in plans)
    assert all(a.end_s == b.start_s for a, b in zip(chunks, chunks[1:]))


def test_a_song_shorter_than_two_minimums_is_one_chunk():
    plans = _plans([0.0, 1.0, 2.0, 3.0], [4, 4, 4])
    assert [(c.first, c.last) for c in plan_chunks(plans, min_chunk_s=2.0)] == [(0, 2)]
    assert [(c.first, c.last) for c in plan_chunks(plans, min_chunk_s=60.0)] == [(0, 2)]


def test_warmup_takes_the_segments_ending_within_warmup_s_before_the_chunk():
    plans = _plans(list(np.arange(11.0)), [5] * 10)
    chunks = plan_chunks(plans, min_chunk_s=3.0, warmup_s=1.5)
    # chunk 1 starts at 3 s: segments 1..2 (1-2 s, 2-3 s) end after 1.5 s
    assert [c.warmup for c in chunks] == [(), (1, 2), (4, 5)]
    assert [c.warmup for c in plan_chunks(plans, min_chunk_s=3.0, warmup_s=0.0)] == [(), (), ()]
    # a short warm-up still runs the segment just before (its end is the chunk's start)
    assert [c.warmup for c in plan_chunks(plans, min_chunk_s=3.0, warmup_s=0.1)] == [(), (2,), (5,)]
    assert plan_chunks(plans, min_chunk_s=3.0, warmup_s=100.0)[2].warmup == (0, 1, 2, 3, 4, 5)


def test_each_chunk_but_the_last_has_a_tail_into_the_next_for_the_crossfade():
    plans = _plans(list(np.arange(11.0)), [5] * 10)  # 10 frames per segment
    chunks = plan_chunks(plans, min_chunk_s=3.0, fade_frames=12)
    # 12 frames from the next chunk's start: its first segment (10 frames) and 2 of the second
    assert [(c.tail, c.fade_frames) for c in chunks] == [((3, 4), 12), ((6, 7), 12), ((), 0)]
    # segment 3 whole (5 iterations), segment 4 up to the iteration of its 2nd frame
    assert [c.tail_iterations for c in chunks] == [5 + plans[4].frame_iteration[1] + 1] * 2 + [0]
    assert [(c.tail, c.fade_frames) for c in plan_chunks(plans, min_chunk_s=3.0, fade_frames=5)][:2] == \
        [((3,), 5), ((6,), 5)]
    assert all(c.tail == () and c.fade_frames == 0 for c in plan_chunks(plans, min_chunk_s=3.0))
    # a fade longer than the next chunk stops at the song's end
    short = plan_chunks(_plans([0.0, 1.0, 2.0, 3.0, 4.0], [5] * 4), min_chunk_s=2.0, fade_frames=100)
    assert [(c.tail, c.fade_frames) for c in short] == [((2, 3), 20), ((), 0)]


def test_a_faded_seam_counts_its_mean_step_and_keeps_the_hard_cut():
    black, white, grey = (np.full((4, 4, 3), v, np.uint8) for v in (0, 255, 128))
    a = {"first_frame": black, "last_frame": black, "change_sum": 10.0, "change_pairs": 10, "moving_pairs": 10}
    b = {"first_frame": white, "last_frame": white, "change_sum": 10.0, "change_pairs": 10, "moving_pairs": 10}
    hard = seam_stats([a, b])
    assert hard["boundaries"] == hard["boundaries_raw"] == [255.0] and hard["ratio"] == 255.0
    soft = seam_stats([a, b], faded=[[frame_change(black, grey), frame_change(grey, white)]])
    assert soft["boundaries"] == [127.5] and soft["boundaries_raw"] == [255.0] and soft["faded"]
    assert soft["fade_steps"] == [[128.0, 127.0]]


@pytest.mark.parametrize("kwargs, words", [({"min_chunk_s": 0.0}, "chunk_min_s"),
                                           ({"min_chunk_s": 3.0, "fade_frames": -1}, "fade_frames"),
                                           ({"min_chunk_s": 3.0, "warmup_s": -1.0}, "warmup_s")])
def test_bad_chunk_settings_name_the_field(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        plan_chunks(_plans([0.0, 1.0], [3]), **kwargs)


def test_chunk_fields_are_preset_fields_with_ranges():
    from core.presets import apply_overrides, load_preset

    p = apply_overrides(load_preset("tiny"), {"render.chunk_min_s": 12, "render.warmup_s": 0})
    assert (p.render.chunk_min_s, p.render.warmup_s) == (12.0, 0.0)
    with pytest.raises(ConfigError, match="chunk_min_s"):
        apply_overrides(load_preset("tiny"), {"render.chunk_min_s": 0})


def test_seam_stats_compares_boundary_change_with_the_mean_inside_chunks():
    black, grey, white = (np.full((2, 2, 3), v, np.uint8) for v in (0, 10, 40))
    chunks = [
        {"first_frame": black, "last_frame": grey, "change_sum": 10.0, "change_pairs": 2, "moving_pairs": 1},
        {"first_frame": white, "last_frame": white, "change_sum": 20.0, "change_pairs": 2, "moving_pairs": 2},
    ]
    s = seam_stats(chunks)
    assert frame_change(grey, white) == 30.0
    assert s["boundaries"] == [30.0] and s["boundary_mean"] == 30.0
    assert s["within_mean"] == 7.5 and s["within_moving_mean"] == 10.0
    assert s["ratio"] == 4.0 and s["ratio_moving"] == 3.0 and s["met"] is False

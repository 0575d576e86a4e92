"""The offline paper pipeline: plan (pure) and a full render with the tiny models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.lyrics import Cue
from core.render import RenderSettings, frames_wanted, lyric_for_segment, plan_segments
from core.targets import eq2_chain
from core.segments import OfflineAnalysis, Segment

REPO = Path(__file__).resolve().parents[1]


def _analysis(edges, iterations, duration):
    segs = [Segment(a, b, 0.5, 0.5, n) for (a, b), n in zip(zip(edges[:-1], edges[1:]), iterations)]
    return OfflineAnalysis(sr=22050, duration_s=duration, tempo_bpm=120.0, beats=np.array(edges[1:-1]),
                           onsets=np.array([]), segments=segs, intensity_hop_s=0.01, intensity=np.zeros(10))


def test_plan_maps_every_frame_to_the_segment_that_contains_it():
    an = _analysis([0.0, 0.5, 1.2, 2.0], [3, 40, 1], 2.0)
    plans = plan_segments(an, [Cue(0.6, "hello"), Cue(1.9, "end")], fps=10)
    frames = [f for p in plans for f in p.frames]
    assert frames == list(range(20))  # 2 s at 10 fps, each frame once, in order
    for p in plans:
        for f in p.frames:
            assert p.start_s <= f / 10 < p.end_s
        assert all(0 <= it < p.iterations for it in p.frame_iteration)
        assert p.frame_iteration == sorted(p.frame_iteration)
    assert [p.guidance for p in plans] == ["audio", "lyric", "lyric"]
    assert [p.text for p in plans] == [None, "hello", "end"]
    # 40 iterations over 7 frames: frames sample iterations spread across the segment
    assert plans[1].frame_iteration[0] < 10 and plans[1].frame_iteration[-1] > 30


def test_only_iterations_that_write_a_frame_copy_one_to_the_host():
    need = {0: [0], 3: [1, 2], 7: [3]}  # iteration -> output frames it makes
    assert frames_wanted(need, blend=False) == {0, 3, 7}
    assert frames_wanted(need, blend=True) == {0, 2, 3, 7}  # iteration 3 writes two: 2 is blended in
    assert frames_wanted({0: [0, 1]}, blend=True) == {0}  # nothing before a segment's first iteration


def test_lyric_for_segment_half_open_interval():
    cues = [Cue(1.0, "a"), Cue(2.0, "b")]
    assert lyric_for_segment(cues, 0.0, 1.0) is None
    assert lyric_for_segment(cues, 1.0, 2.0) == "a"
    assert lyric_for_segment(cues, 0.5, 2.5) == "b"


def test_eq2_average_targets():
    import torch

    raw = [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0])]
    avg = eq2_chain(raw, "average")
    assert torch.equal(avg[0], raw[0])
    assert torch.allclose(avg[1], torch.tensor([0.5, 0.5]))
    assert torch.allclose(avg[2], torch.tensor([0.5, 1.0]))
    assert all(torch.equal(a, b) for a, b in zip(eq2_chain(raw, "none"), raw))
    assert all(torch.equal(a, b) for a, b in zip(eq2_chain(raw, "l1"), raw))


def _ffprobe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries",
                          "stream=codec_type,codec_name,nb_read_frames:format=duration", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def _frames(path) -> np.ndarray:
    """Every decoded frame of a video, (N, H, W, 3) uint8."""
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def _ffprobe_size(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "stream=width,height",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["streams"]


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    from core.synth import generate_drum_pattern

    d = tmp_path_factory.mktemp("song")
    sr = 22050
    y, _ = generate_drum_pattern(bpm=120, duration_s=4.0, sr=sr)
    path = d / "song.wav"
    sf.write(path, y, sr)
    lyrics = d / "song.lrc"
    lyrics.write_text("[00:01.10] a red sky\n[00:02.60] blue water\n[00:09.00] after the end\n")
    return path, lyrics, y.size / sr


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from core.models import load_models
    from core.models.tiny import write_tiny_models

    spec = write_tiny_models(tmp_path_factory.mktemp("tiny"), seed=0)
    return load_models(spec, device="cpu", offline=True)


SETTINGS = RenderSettings.of("tiny", {"models.size": 64, "render.fps": 10, "render.min_ips": 2.0,
                                      "render.max_ips": 6.0, "guidance.cutouts": 2, "guidance.seed": 1})


@pytest.mark.slow
def test_render_writes_synced_mp4_and_sidecar(song, tiny_models, tmp_path):
    from core.render import render

    audio, lyrics, duration = song
    from core.lyrics import parse_lyrics

    cues = parse_lyrics(lyrics)
    out = tmp_path / "video.mp4"
    res = render(audio, out, settings=SETTINGS, models=tiny_models, cues=cues, progress=False)
    probe = _ffprobe(out)
    kinds = sorted((s["codec_type"], s["codec_name"]) for s in probe["streams"])
    assert kinds == [("audio", "aac"), ("video", "h264")]
    video = next(s for s in probe["streams"] if s["codec_type"] == "video")
    assert int(video["nb_read_frames"]) == round(duration * SETTINGS.fps)
    assert abs(float(probe["format"]["duration"]) - duration) <= 1.0 / SETTINGS.fps + 0.03
    side = json.loads(out.with_suffix(".json").read_text())
    segs = side["segments"]
    assert segs[0]["start"] == 0.0 and abs(segs[-1]["end"] - duration) < 1e-6
    assert all(abs(a["end"] - b["start"]) < 1e-9 for a, b in zip(segs, segs[1:]))
    lyric_segs = [s for s in segs if s["guidance"] == "lyric"]
    expected = [(c.text) for c in cues if c.time_s < duration]
    assert [s["text"] for s in lyric_segs] == expected
    for s in lyric_segs:
        assert any(s["start"] <= c.time_s < s["end"] and c.text == s["text"] for c in cues)
    assert side["lyrics_after_end"] == [{"time": 9.0, "text": "after the end"}]
    assert res.frames == int(video["nb_read_frames"])


@pytest.mark.slow
def test_copying_only_the_written_frames_changes_no_frame_or_loss(song, tiny_models, tmp_path, monkeypatch):
    from core.lyrics import parse_lyrics
    from core.optimizer import LatentOptimizer
    from core.render import render

    audio, lyrics, _ = song
    cues = parse_lyrics(lyrics)
    # 8..12 iterations per second for 4 frames per second: most iterations write no frame
    settings = SETTINGS.with_overrides({"render.fps": 4, "render.min_ips": 8.0, "render.max_ips": 12.0})
    asked = []
    real_step = LatentOptimizer.step

    def recording_step(self, target, *, frame=True):
        asked.append(frame)
        return real_step(self, target, frame=frame)

    monkeypatch.setattr(LatentOptimizer, "step", recording_step)
    lazy = render(audio, tmp_path / "lazy.mp4", settings=settings, models=tiny_models, cues=cues, progress=False)
    assert 0 < sum(asked) < len(asked)  # some iterations skipped their frame copy
    monkeypatch.setattr(LatentOptimizer, "step", lambda self, target, *, frame=True: real_step(self, target))
    every = render(audio, tmp_path / "every.mp4", settings=settings, models=tiny_models, cues=cues, progress=False)
    a = json.loads(lazy.sidecar_path.read_text())["segments"]
    b = json.loads(every.sidecar_path.read_text())["segments"]
    assert [(s["loss_first"], s["loss_last"]) for s in a] == [(s["loss_first"], s["loss_last"]) for s in b]
    assert np.array_equal(_frames(lazy.out_path), _frames(every.out_path))


@pytest.mark.slow
def test_consistency_modes_change_targets_as_specified(song, tiny_models, tmp_path):
    import torch

    from core.render import render

    audio, lyrics, _ = song
    from core.lyrics import parse_lyrics

    cues = parse_lyrics(lyrics)
    none = render(audio, tmp_path / "n.mp4", settings=SETTINGS.with_overrides({"guidance.consistency": "none"}),
                  models=tiny_models, cues=cues, progress=False)
    avg = render(audio, tmp_path / "a.mp4", settings=SETTINGS.with_overrides({"guidance.consistency": "average"}),
                 models=tiny_models, cues=cues, progress=False)
    raw = none.targets
    assert len(raw) == len(avg.targets) >= 3
    assert torch.allclose(avg.targets[0], raw[0])
    for t in range(1, len(raw)):
        assert torch.allclose(avg.targets[t], (raw[t - 1] + raw[t]) / 2, atol=1e-6)


@pytest.mark.slow
def test_resume_after_interruption_gives_the_same_segments(song, tiny_models, tmp_path):
    from core.render import render, work_dir_for

    audio, lyrics, _ = song
    from core.lyrics import parse_lyrics

    cues = parse_lyrics(lyrics)
    full = render(audio, tmp_path / "full.mp4", settings=SETTINGS, models=tiny_models, cues=cues, progress=False)
    out = tmp_path / "cut.mp4"
    with pytest.raises(KeyboardInterrupt):
        render(audio, out, settings=SETTINGS, models=tiny_models, cues=cues, progress=False, stop_after_segments=2)
    assert (work_dir_for(out) / "progress.json").is_file() and not out.exists()
    resumed = render(audio, out, settings=SETTINGS, models=tiny_models, cues=cues, progress=False, resume=True)
    assert resumed.resumed_segments == 2 and full.resumed_segments == 0
    a = json.loads(full.sidecar_path.read_text())["segments"]
    b = json.loads(out.with_suffix(".json").read_text())["segments"]
    strip = lambda segs: [(s["start"], s["end"], s["guidance"], s["text"], s["iterations"]) for s in segs]  # noqa: E731
    assert strip(a) == strip(b)
    # The optimizer continued exactly (latent, Adam, RNG): same losses, same pictures.
    assert [(s["loss_first"], s["loss_last"]) for s in a] == [(s["loss_first"], s["loss_last"]) for s in b]
    fa, fb = _frames(full.out_path), _frames(out)
    assert fa.shape == fb.shape and np.abs(fa.astype(int) - fb.astype(int)).max() <= 2  # H.264 rounding at most


def test_cli_render_refuses_unwritable_output_before_work(song, tmp_path):
    audio, _, _ = song
    proc = subprocess.run([sys.executable, "-m", "live.cli", "render", str(audio), "--out",
                           str(tmp_path / "missing-dir" / "x.mp4"), "--models", "tiny", "--offline"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_cli_render_size_wxh(song, tmp_path):
    audio, _, _ = song
    out = tmp_path / "sized.mp4"
    proc = subprocess.run([sys.executable, "-m", "live.cli", "render", str(audio), "--out", str(out),
                           "--models", "tiny", "--offline", "--size", "96x64", "--fps", "10", "--min-ips", "1",
                           "--max-ips", "2", "--cutouts", "1", "--no-progress"],
                          cwd=REPO, env={**os.environ, "M2V_HOME": str(tmp_path / "home")},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (video,) = _ffprobe_size(out)
    assert (video["width"], video["height"]) == (96, 64)
    settings = json.loads(out.with_suffix(".json").read_text())["settings"]
    assert settings["size"] == [96, 64] and settings["render"]["fps"] == 10 and settings["guidance"]["cutouts"] == 1


def test_cli_render_bad_size_names_the_forms(song, tmp_path):
    audio, _, _ = song
    proc = subprocess.run([sys.executable, "-m", "live.cli", "render", str(audio), "--size", "96by64"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--size: size '96by64': expected S or 'WxH'" in proc.stderr


def test_cli_render_bad_lyrics_line_number(song, tmp_path):
    audio, _, _ = song
    bad = tmp_path / "bad.lrc"
    bad.write_text("[00:01.00] ok\nthis line has no time\n")
    proc = subprocess.run([sys.executable, "-m", "live.cli", "render", str(audio), "--lyrics", str(bad),
                           "--out", str(tmp_path / "o.mp4"), "--models", "tiny", "--offline"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert ":2" in proc.stderr or "line 2" in proc.stderr

"""The Music2Video paper's offline render: audio + timed lyrics in, MP4 out.

1. Analyze: segments (beats or onsets), per-segment intensity and iterations
   (:mod:`core.segments`).
2. Guidance: each segment's Wav2CLIP audio embedding, except a segment that
   contains a lyric timestamp, which is guided by that lyric's CLIP text
   embedding (paper §3.2).  Optional style prompts are mixed in with a weight.
3. Temporal consistency: ``average`` (paper Eq. 2, target_t = (g_{t-1} + g_t)/2
   of the raw guidances), ``l1`` (Eq. 1, an L1 pull of z_t towards z_{t-1}), or
   ``none``.  The latent carries over between segments.
4. Iterations -> frames: each iteration is one image; the output frame for time
   t comes from the segment containing t, at the iteration whose share of the
   segment t falls in, so picture and sound cannot drift.
5. Each segment is encoded to its own H.264 chunk as soon as it is finished
   (with the optimizer state), so Ctrl-C leaves a resumable render; the chunks
   are then joined with the source audio as AAC into ``OUT.mp4``, with a JSON
   sidecar ``OUT.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np

from core.errors import ConfigError
from core.presets import Preset, apply_overrides, load_preset

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class RenderSettings:
    """What one render runs with: a resolved preset and the run's own switches.

    The preset is the one home of every setting (``[models] size``, ``[guidance]``,
    ``[render]``, ``[record] crf``); CLI flags reach it as overrides, as in ``m2v live``.
    """

    preset: Preset
    blend_frames: bool = False

    @classmethod
    def of(cls, preset: str | Preset = "paper", overrides: dict | None = None, *,
           blend_frames: bool = False) -> "RenderSettings":
        """A preset by name (or a resolved one) with dotted overrides (``{"render.fps": 10}``)."""
        p = load_preset(preset) if isinstance(preset, str) else preset
        if overrides:
            p = apply_overrides(p, overrides, origin="command line")
        return cls(p, blend_frames=blend_frames)

    def with_overrides(self, overrides: dict) -> "RenderSettings":
        return RenderSettings(apply_overrides(self.preset, overrides, origin="overrides"), self.blend_frames)

    @property
    def size(self) -> tuple[int, int]:
        return self.preset.models.size_wh

    @property
    def fps(self) -> int:
        return self.preset.render.fps

    def describe(self) -> dict:
        """The settings that shape the video, for the sidecar and the resume fingerprint."""
        p = self.preset
        return {"preset": p.name, "size": list(self.size), "guidance": p.guidance.model_dump(mode="json"),
                "render": p.render.model_dump(mode="json"), "crf": p.record.crf, "blend_frames": self.blend_frames}

    def fingerprint(self, *, audio_sha: str, models: str, cues: Sequence) -> str:
        """Identifies a render, so --resume never mixes chunks of different settings."""
        blob = json.dumps([self.describe(), audio_sha, models, [(c.time_s, c.text) for c in cues]],
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class SegmentPlan:
    index: int
    start_s: float
    end_s: float
    iterations: int
    intensity_mean: float
    intensity_max: float
    guidance: Literal["audio", "lyric"]
    text: str | None = None
    #: output frame numbers in this segment and, for each, the iteration that makes it
    frames: list[int] = field(default_factory=list)
    frame_iteration: list[int] = field(default_factory=list)


def lyric_for_segment(cues: Sequence, start_s: float, end_s: float) -> str | None:
    """The lyric whose timestamp falls in [start, end); the last one if several do."""
    inside = [c for c in cues if start_s <= c.time_s < end_s]
    return inside[-1].text if inside else None


def plan_segments(analysis, cues: Sequence, *, fps: int) -> list[SegmentPlan]:
    """Guidance and frame mapping per segment (pure: no models)."""
    n_frames = int(round(analysis.duration_s * fps))
    frame_times = np.arange(n_frames) / fps
    ends = np.array([s.end_s for s in analysis.segments])
    owner = np.minimum(np.searchsorted(ends, frame_times, side="right"), len(ends) - 1)
    plans: list[SegmentPlan] = []
    for i, seg in enumerate(analysis.segments):
        text = lyric_for_segment(cues, seg.start_s, seg.end_s)
        plan = SegmentPlan(
            index=i, start_s=seg.start_s, end_s=seg.end_s, iterations=int(seg.iterations),
            intensity_mean=seg.intensity_mean, intensity_max=seg.intensity_max,
            guidance="lyric" if text is not None else "audio", text=text,
        )
        for k in np.flatnonzero(owner == i):
            share = (frame_times[k] - seg.start_s) / max(seg.end_s - seg.start_s, 1e-9)
            plan.frames.append(int(k))
            plan.frame_iteration.append(min(int(share * plan.iterations), plan.iterations - 1))
        plans.append(plan)
    return plans


def frames_wanted(need: dict[int, list[int]], *, blend: bool) -> set[int]:
    """Iterations whose frame reaches the host: those that write one, and with ``blend`` the one
    before an iteration that writes several (it is blended into them)."""
    wanted = set(need)
    if blend:
        wanted |= {it - 1 for it, frames in need.items() if len(frames) > 1 and it > 0}
    return wanted


def segment_targets(targets, styles: list, index: int, crossfade_steps: int):
    """Segment ``index``'s Target (its Eq. 2 guidance plus the style prompts) and, with
    ``[guidance] crossfade_steps`` > 0, the Crossfade in from the previous segment's (else None).

    ``targets`` maps (a list or a dict) segment index -> guidance embedding.
    """
    from core.targets import Crossfade, Target

    def of(i):
        return Target.of([(e, w, "") for e, w in [(targets[i], 1.0)] + styles])

    target = of(index)
    fade = Crossfade(of(index - 1), target, steps=crossfade_steps) if crossfade_steps > 0 and index > 0 else None
    return target, fade


def run_segment(opt, plan: "SegmentPlan", *, target, fade=None, blend: bool = False,
                on_frame: Callable[[np.ndarray], None] | None = None,
                on_iteration: Callable[[], None] | None = None) -> tuple[float, float]:
    """Run one segment's iterations; ``on_frame`` gets each output frame (None: a warm-up, no frames).

    The one segment loop of a render, single-machine or split across workers: the target (or
    the crossfade from the previous segment's), one output frame per planned frame, a repeated
    frame blended with the iteration before when ``blend``.  Only iterations that write a frame
    (or lend one to a blend) copy it to the host, and the losses are read once, at the end.
    Returns the first and last loss.
    """
    need: dict[int, list[int]] = {}
    if on_frame is not None:
        for frame_no, it in zip(plan.frames, plan.frame_iteration):
            need.setdefault(it, []).append(frame_no)
    wanted = frames_wanted(need, blend=blend)
    losses = []  # device tensors: read once, at the segment's end
    prev_frame = None
    for it in range(plan.iterations):
        res = opt.step(fade.at(it + 1) if fade is not None else target, frame=it in wanted)
        if it == 0 or it == plan.iterations - 1:
            losses.append(res.loss_t)
        for _ in need.get(it, ()):
            frame = res.frame
            if blend and prev_frame is not None and len(need[it]) > 1:
                frame = ((prev_frame.astype(np.uint16) + frame) // 2).astype(np.uint8)
            on_frame(frame)
        prev_frame = res.frame
        if on_iteration is not None:
            on_iteration()
    return (float(losses[0]), float(losses[-1])) if losses else (float("nan"), float("nan"))


def song_plan(y: np.ndarray, sr: int, *, settings: RenderSettings, cues: Sequence):
    """Analysis, segment plan and the lyrics after the end (warned about) of a loaded song (no models).

    The one place a render (single-machine or split across workers) turns audio into its plan.
    """
    from core.segments import analyze_offline

    rs = settings.preset.render
    duration_s = y.size / sr
    late = [c for c in cues if c.time_s >= duration_s]
    for c in late:
        log.warning("lyric %r at %.2f s is after the end of the audio (%.2f s); it will not be shown",
                    c.text, c.time_s, duration_s)
    analysis = analyze_offline(y, sr, segments=rs.segments, rate=rs.rate, min_ips=rs.min_ips, max_ips=rs.max_ips)
    return analysis, plan_segments(analysis, cues, fps=rs.fps), late


def raw_guidance(enc, plans: Sequence[SegmentPlan], *, y: np.ndarray, sr: int, models) -> list:
    """Each segment's own guidance (paper §3.2): its lyric's text embedding, else its audio's."""
    raw = []
    for p in plans:
        if p.guidance == "lyric":
            raw.append(enc.text(p.text))
        else:
            if models.audio is None:
                raise ConfigError(f"model set '{models.name}' has no audio encoder; audio guidance needs one "
                                  "(use --models default), or guide every segment with --prompt")
            a, b = int(p.start_s * sr), max(int(p.end_s * sr), int(p.start_s * sr) + 1)
            raw.append(enc.audio(y[a:b], sr=sr, key=("render", a, b)))
    return raw


def _sha_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class RenderResult:
    out_path: Path
    sidecar_path: Path
    plans: list[SegmentPlan]
    targets: list  # torch tensors, one per segment
    frames: int
    resumed_segments: int


def work_dir_for(out_path: Path) -> Path:
    return out_path.with_name(out_path.name + ".m2v-work")


def render(audio_path: str | Path, out_path: str | Path, *, settings: RenderSettings, models,
           cues: Sequence = (), resume: bool = False, progress: bool = True,
           stop_after_segments: int | None = None) -> RenderResult:
    """Render the music video.  ``stop_after_segments`` simulates an interruption (tests)."""
    import torch
    from tqdm import tqdm

    from core.audio_io import load_audio
    from core.encoders import Encoders
    from core.optimizer import LatentOptimizer, start_from_init
    from core.targets import eq2_chain
    from core.video import ChunkWriter, check_writable, mux

    g, rs = settings.preset.guidance, settings.preset.render
    width, height = settings.size
    audio_path, out_path = Path(audio_path), Path(out_path)
    check_writable(out_path)
    y, sr = load_audio(audio_path)
    duration_s = y.size / sr
    analysis, plans, late = song_plan(y, sr, settings=settings, cues=cues)

    enc = Encoders(models)
    targets = eq2_chain(raw_guidance(enc, plans, y=y, sr=sr, models=models), g.consistency)
    styles = [(enc.text(p.text), p.weight * g.style_weight) for p in g.style_prompts]

    work = work_dir_for(out_path)
    fp = settings.fingerprint(audio_sha=_sha_file(audio_path), models=models.name, cues=cues)
    state_file, progress_file = work / "state.pt", work / "progress.json"
    done: list[dict] = []
    opt = LatentOptimizer.from_config(models, g, size=(width, height))
    resumed = 0
    if resume and progress_file.is_file():
        saved = json.loads(progress_file.read_text())
        if saved.get("fingerprint") != fp:
            raise ConfigError(f"{work} holds a render with other settings or input; run without --resume "
                              f"(or delete {work}) to start over")
        done = saved["segments"]
        resumed = len(done)
        opt.load_state_dict(torch.load(state_file, weights_only=True))
        log.info("resuming %s after %d of %d segments", out_path, resumed, len(plans))
    else:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        start_from_init(opt, g.init)

    total_iters = sum(p.iterations for p in plans)
    bar = tqdm(total=total_iters, initial=sum(p.iterations for p in plans[: len(done)]), unit="it",
               desc="render", disable=not progress, dynamic_ncols=True)
    try:
        for p in plans[len(done):]:
            if stop_after_segments is not None and len(done) >= stop_after_segments:
                raise KeyboardInterrupt
            target, fade = segment_targets(targets, styles, p.index, g.crossfade_steps)
            if g.consistency == "l1":
                opt.set_anchor()
            writer = ChunkWriter(work / f"seg{p.index:05d}.mp4", fps=rs.fps, width=width, height=height,
                                 crf=settings.preset.record.crf)
            loss_first, loss_last = run_segment(opt, p, target=target, fade=fade, blend=settings.blend_frames,
                                                on_frame=writer.write, on_iteration=lambda: bar.update(1))
            writer.close()
            done.append({"start": p.start_s, "end": p.end_s, "guidance": p.guidance, "text": p.text,
                         "iterations": p.iterations, "frames": len(p.frames),
                         "loss_first": loss_first, "loss_last": loss_last})
            torch.save(opt.state_dict(), state_file.with_suffix(".tmp"))
            state_file.with_suffix(".tmp").replace(state_file)
            tmp = progress_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"fingerprint": fp, "segments": done}))
            tmp.replace(progress_file)
    finally:
        bar.close()

    # a segment shorter than one frame period (the song's last, cut just before the end) writes no file
    chunks = [work / f"seg{p.index:05d}.mp4" for p in plans if p.frames]
    frames = mux(chunks, out_path, audio=y, sr=sr)
    sidecar = out_path.with_suffix(".json")
    sidecar.write_text(json.dumps({
        "audio": str(audio_path), "duration_s": duration_s, "models": models.name,
        "settings": settings.describe(), "seed": g.seed, "tempo_bpm": analysis.tempo_bpm,
        "frames": frames, "segments": done,
        "lyrics_after_end": [{"time": c.time_s, "text": c.text} for c in late],
    }, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return RenderResult(out_path, sidecar, plans, targets, frames, resumed_segments=resumed)

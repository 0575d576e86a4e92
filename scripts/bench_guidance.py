#!/usr/bin/env python
"""Does the picture follow the guidance?  Measured with the toy models and the independent judge.

    python scripts/bench_guidance.py                 # everything -> results/bench_guidance.json
    python scripts/bench_guidance.py --sections text --prompts 12

Sections (each judged by :mod:`core.judge`, never by a model):

* ``text``: every colour x shape prompt ("a red circle", "blue stripes", ...)
  from a random start, toy preset settings at 64 px with 8 cutouts, 60 steps;
  how often the judge agrees with the prompt's colour, with its shape, with both.
* ``audio``: for each synth sound class, renderings the audio encoder never
  saw (other seeds, noise) -> Wav2CLIP target -> 60 steps; how often the
  paired picture's colour comes out.
* ``render``: ``m2v render``'s engine on a synthesized song of sound-class
  sections with one LRC lyric, under ``--consistency none`` and ``average``
  (the paper's Eq. 2): mean frame-to-frame change at segment boundaries and
  within segments (the paper's consistency claim, reported whichever way it
  comes out), and how the lyric's colour shows across its segment and the next.
* ``recon``: how faithfully the picture space holds the world: toy-world pictures
  of every colour x shape through the VQGAN's encoder, quantizer and decoder,
  judged like the guided frames (no guidance involved).
* ``presets``: each shipped preset's ``[guidance]`` settings (cutouts, cutout
  sizes, augmentations, lr) at 64 px: steps and seconds until the judge first
  accepts the colour, and colour + shape (median, p90; misses counted).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

log = logging.getLogger("bench_guidance")

SIZE = 64
STEPS = 60
AUDIO_SEED = 90_000  # far from the trainer's streams: renderings it never drew
RECON_SEED = 80_000  # pictures drawn apart from the trainer's streams


def _pct(xs: list[float], q: float) -> float | None:
    return float(np.percentile(xs, q)) if xs else None


def prompt_subset(n: int | None):
    """All 60 colour x shape scenes, or ``n`` of them covering every colour and every shape."""
    from core import toyworld as W

    scenes = W.all_prompts()
    if n is None or n >= len(scenes):
        return scenes
    colours, shapes = list(W.COLOURS), list(W.SHAPES)
    return [W.Scene(colours[i % len(colours)], shapes[(i * 7) % len(shapes)], "") for i in range(n)]


def guide(models, encoders, guidance, target, scene, *, steps: int, seed: int):
    """Run ``steps`` steps towards ``target``; return (first colour match, first full match, last frame, s/step)."""
    from core import judge
    from core.optimizer import LatentOptimizer

    opt = LatentOptimizer.from_config(models, guidance, size=(SIZE, SIZE), seed=seed)
    first_colour = first_both = None
    t0 = time.perf_counter()
    frame = None
    for i in range(1, steps + 1):
        frame = opt.step(target).frame
        if first_colour is None and judge.matches(frame, scene, shape=False):
            first_colour = i
        if first_both is None and judge.matches(frame, scene, shape=True):
            first_both = i
    return first_colour, first_both, frame, (time.perf_counter() - t0) / steps


def bench_text(models, encoders, preset, *, prompts: int | None, steps: int) -> dict:
    from core import judge
    from core.targets import Target

    rows = []
    for i, scene in enumerate(prompt_subset(prompts)):
        text = scene.caption(with_background=False)
        _, _, frame, s_step = guide(models, encoders, preset.guidance, Target.single(encoders.text(text)), scene,
                                    steps=steps, seed=i)
        r = judge.read(frame)
        colour_ok = scene.colour in r.top_colours(2) and r.shares.get(scene.colour, 0) >= 0.1
        rows.append({"prompt": text, "colour_ok": bool(colour_ok), "shape_ok": r.shape == scene.shape,
                     "read": f"{r.colour} {r.shape} on {r.background}", "s_per_step": round(s_step, 4)})
        log.info("text %-28s -> %-28s colour %s shape %s", text, rows[-1]["read"], colour_ok, r.shape == scene.shape)
    n = len(rows)
    return {"size": SIZE, "cutouts": preset.guidance.cutouts, "steps": steps, "prompts": n,
            "colour_agree": sum(r["colour_ok"] for r in rows) / n, "shape_agree": sum(r["shape_ok"] for r in rows) / n,
            "both_agree": sum(r["colour_ok"] and r["shape_ok"] for r in rows) / n,
            "chance_colour": 2 / 10, "chance_shape": 1 / 6, "rows": rows}


def audio_target(encoders, kind: str, *, seed: int):
    """The Wav2CLIP target of a held-back 1 s rendering of ``kind`` at 44.1 kHz (resampled like live input)."""
    from core import toyworld as W
    from core.targets import Target

    rng = np.random.default_rng(AUDIO_SEED + seed)
    y = W.add_noise(W.render_sound(kind, sr=44_100, rng=rng), snr_db=20.0, rng=rng)
    return Target.single(encoders.audio(y, sr=44_100))


def bench_audio(models, encoders, preset, *, per_class: int, steps: int) -> dict:
    from core import judge, toyworld as W

    rows = []
    for kind in W.SOUNDS:
        scene = W.SOUND_CONCEPTS[kind]
        for k in range(per_class):
            target = audio_target(encoders, kind, seed=k)
            _, _, frame, _ = guide(models, encoders, preset.guidance, target, scene, steps=steps, seed=k)
            r = judge.read(frame)
            ok = judge.matches(frame, scene, shape=False)
            rows.append({"sound": kind, "want": scene.colour, "read": f"{r.colour} {r.shape} on {r.background}",
                         "colour_ok": bool(ok), "shape_ok": r.shape == scene.shape})
            log.info("audio %-6s -> %-28s colour %s", kind, rows[-1]["read"], ok)
    n = len(rows)
    return {"renderings": n, "steps": steps, "colour_agree": sum(r["colour_ok"] for r in rows) / n,
            "shape_agree": sum(r["shape_ok"] for r in rows) / n, "rows": rows}


RENDER_SECTIONS = [("kick", 6.0), ("chord", 6.0), ("bass", 6.0)]
RENDER_LYRIC = ("a yellow square", 8.0)


def bench_render(models, preset, *, workdir: Path) -> dict:
    import av
    import soundfile as sf

    from core import judge, toyworld as W
    from core.lyrics import Cue
    from core.render import RenderSettings, render

    sr = 22_050
    y, spans = W.render_sections(RENDER_SECTIONS, sr=sr, seed=11)
    wav = workdir / "song.wav"
    sf.write(wav, y, sr)
    out = {"sections": RENDER_SECTIONS, "lyric": {"text": RENDER_LYRIC[0], "time_s": RENDER_LYRIC[1]}}
    for mode in ("none", "average"):
        settings = RenderSettings.of(preset, {"models.size": SIZE, "guidance.consistency": mode})
        video = workdir / f"{mode}.mp4"
        t0 = time.perf_counter()
        res = render(wav, video, settings=settings, models=models,
                     cues=[Cue(time_s=RENDER_LYRIC[1], text=RENDER_LYRIC[0])], progress=False)
        seconds = time.perf_counter() - t0
        with av.open(str(video)) as f:
            frames = [fr.to_ndarray(format="rgb24").astype(np.float32) for fr in f.decode(video=0)]
        segs = json.loads(res.sidecar_path.read_text())["segments"]
        seg_of = np.zeros(len(frames), int)
        for k, sgm in enumerate(segs):
            seg_of[int(round(sgm["start"] * settings.fps)):int(round(sgm["end"] * settings.fps))] = k
        diffs = np.array([np.abs(frames[i + 1] - frames[i]).mean() for i in range(len(frames) - 1)])
        boundary = seg_of[1:] != seg_of[:-1]
        li = next(k for k, sgm in enumerate(segs) if sgm["guidance"] == "lyric")

        def lyric_share(k: int) -> float:
            sel = [frames[i] for i in range(len(frames)) if seg_of[i] == k]
            return float(np.mean([judge.matches(f.astype(np.uint8), RENDER_LYRIC[0], shape=False) for f in sel]))

        def ends_on(k: int, caption) -> bool:  # the segment's last frame, in the caption's colour
            last = max(i for i in range(len(frames)) if seg_of[i] == k)
            return bool(judge.matches(frames[last].astype(np.uint8), caption, shape=False))

        # Audio segments: does each end on its section's paired colour?  (Section by the segment's middle.)
        audio_ends = []
        for k, sgm in enumerate(segs):
            if sgm["guidance"] != "audio":
                continue
            mid = (sgm["start"] + sgm["end"]) / 2
            kind = next((name for a, b, name in spans if a <= mid < b), None)
            if kind is not None:
                audio_ends.append({"segment": k, "sound": kind, "ok": ends_on(k, W.SOUND_CONCEPTS[kind])})

        out[mode] = {
            "segments": len(segs), "frames": len(frames), "render_s": round(seconds, 1),
            "change_at_boundaries": float(diffs[boundary].mean()), "change_within": float(diffs[~boundary].mean()),
            "boundary_over_within": float(diffs[boundary].mean() / max(diffs[~boundary].mean(), 1e-9)),
            "lyric_segment": {"start": segs[li]["start"], "end": segs[li]["end"],
                              "iterations": segs[li]["iterations"],
                              "ends_in_lyric_colour": ends_on(li, RENDER_LYRIC[0]),
                              "frames_in_lyric_colour": lyric_share(li),
                              "next_segment_frames_in_lyric_colour": lyric_share(min(li + 1, len(segs) - 1))},
            "audio_segments_end_on_paired_colour": sum(r["ok"] for r in audio_ends) / max(len(audio_ends), 1),
            "audio_segments": audio_ends,
        }
        log.info("render %-7s boundary %.2f within %.2f (x%.2f); lyric colour in %.0f%% of its frames, "
                 "%.0f%% of the next segment's; ends on it: %s; audio segments end on their colour: %.0f%%", mode, out[mode]["change_at_boundaries"],
                 out[mode]["change_within"], out[mode]["boundary_over_within"],
                 100 * out[mode]["lyric_segment"]["frames_in_lyric_colour"],
                 100 * out[mode]["lyric_segment"]["next_segment_frames_in_lyric_colour"],
                 out[mode]["lyric_segment"]["ends_in_lyric_colour"],
                 100 * out[mode]["audio_segments_end_on_paired_colour"])
    return out


def bench_recon(models, *, per_prompt: int = 2) -> dict:
    """The judge on the VQGAN's own reconstructions of toy-world pictures (no guidance involved)."""
    import torch

    from core import judge, toyworld as W

    vq = models.vqgan
    rng = np.random.default_rng(RECON_SEED)
    rows = []
    for scene in W.all_prompts():
        for _ in range(per_prompt):
            picture = W.random_scene(rng, colour=scene.colour, shape=scene.shape)
            img = W.draw(picture, size=SIZE, rng=rng)
            x = torch.from_numpy(img).permute(2, 0, 1)[None].float().to(models.device) / 127.5 - 1
            with torch.no_grad():
                z_q, _, _ = vq.quantize(vq.encode(x))
                y = vq.decode(z_q)[0].clamp(-1, 1)
            out = ((y.permute(1, 2, 0) + 1) * 127.5).round().byte().cpu().numpy()
            r = judge.read(out)
            rows.append({"picture": picture.caption(), "read": f"{r.colour} {r.shape} on {r.background}",
                         "colour_ok": bool(picture.colour in r.top_colours(2)
                                           and r.shares.get(picture.colour, 0) >= 0.1),
                         "shape_ok": r.shape == picture.shape,
                         "l1": float(np.abs(out.astype(np.float32) - img).mean() / 255)})
    n = len(rows)
    by_shape = {sh: sum(r["shape_ok"] for r in rows if r["picture"].split(" on ")[0].endswith(sh)) /
                max(1, sum(r["picture"].split(" on ")[0].endswith(sh) for r in rows)) for sh in W.SHAPES}
    return {"pictures": n, "colour_agree": sum(r["colour_ok"] for r in rows) / n,
            "shape_agree": sum(r["shape_ok"] for r in rows) / n, "shape_agree_by_shape": by_shape,
            "l1_mean": float(np.mean([r["l1"] for r in rows])), "rows": rows}


def bench_presets(models, encoders, *, prompts: int, max_steps: int) -> dict:
    from core.presets import list_presets, load_preset
    from core.targets import Target

    out = {}
    for info in list_presets():
        preset = load_preset(info.name)
        colour_steps, both_steps, s_steps = [], [], []
        scenes = prompt_subset(prompts)
        for i, scene in enumerate(scenes):
            target = Target.single(encoders.text(scene.caption(with_background=False)))
            c, b, _, s_step = guide(models, encoders, preset.guidance, target, scene, steps=max_steps, seed=i)
            s_steps.append(s_step)
            if c is not None:
                colour_steps.append(c)
            if b is not None:
                both_steps.append(b)
        s_step = statistics.median(s_steps)
        row = {"cutouts": preset.guidance.cutouts, "cut_min_frac": preset.guidance.cut_min_frac,
               "augment": preset.guidance.augment, "lr": preset.guidance.lr, "prompts": len(scenes),
               "max_steps": max_steps, "s_per_step": round(s_step, 4)}
        for name, xs in (("colour", colour_steps), ("colour_shape", both_steps)):
            row[name] = {"matched": len(xs), "steps_median": _pct(xs, 50), "steps_p90": _pct(xs, 90),
                         "seconds_median": None if not xs else round(_pct(xs, 50) * s_step, 2),
                         "seconds_p90": None if not xs else round(_pct(xs, 90) * s_step, 2)}
        out[info.name] = row
        log.info("preset %-8s colour %s/%d median %s steps; colour+shape %s/%d median %s steps; %.3f s/step",
                 info.name, row["colour"]["matched"], len(scenes), row["colour"]["steps_median"],
                 row["colour_shape"]["matched"], len(scenes), row["colour_shape"]["steps_median"], s_step)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", nargs="+", default=["recon", "text", "audio", "render", "presets"],
                   choices=("recon", "text", "audio", "render", "presets"))
    p.add_argument("--prompts", type=int, default=None, help="text prompts (default: all 60)")
    p.add_argument("--per-class", type=int, default=5, help="held-back renderings per sound class")
    p.add_argument("--preset-prompts", type=int, default=12, help="prompts per preset in the presets section")
    p.add_argument("--preset-max-steps", type=int, default=120)
    p.add_argument("--models", default="toy", help="model set (default: toy; a folder works for a fresh training)")
    p.add_argument("--json", type=Path, default=REPO / "results/bench_guidance.json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import torch

    from core.encoders import Encoders
    from core.models import load_models
    from core.presets import load_preset

    models = load_models(args.models, device="cpu", offline=True, progress=False)
    encoders = Encoders(models)
    preset = load_preset("toy")
    result = {"models": args.models, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "cpu": _cpu_name(), "preset": "toy"}
    if args.json.is_file():  # keep sections measured by an earlier run
        result = {**json.loads(args.json.read_text()), **result}
    t0 = time.perf_counter()

    def save() -> None:  # after every section: a later crash loses nothing measured
        result["run_s"] = round(time.perf_counter() - t0, 1)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")

    if "recon" in args.sections:
        result["recon"] = bench_recon(models)
        save()
    if "text" in args.sections:
        result["text"] = bench_text(models, encoders, preset, prompts=args.prompts, steps=STEPS)
        save()
    if "audio" in args.sections:
        result["audio"] = bench_audio(models, encoders, preset, per_class=args.per_class, steps=STEPS)
        save()
    if "render" in args.sections:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="m2v-bench-") as tmp:
            result["render"] = bench_render(models, preset, workdir=Path(tmp))
        save()
    if "presets" in args.sections:
        result["presets"] = bench_presets(models, encoders, prompts=args.preset_prompts,
                                          max_steps=args.preset_max_steps)
    save()
    if "recon" in result:
        c = result["recon"]
        print(f"recon (the VQGAN's reconstructions): colour {c['colour_agree']:.0%}, shape {c['shape_agree']:.0%} "
              f"of {c['pictures']} pictures")
    for sec in ("text", "audio"):
        if sec in result:
            r = result[sec]
            print(f"{sec}: colour {r['colour_agree']:.0%}, shape {r.get('shape_agree', float('nan')):.0%}"
                  + (f", both {r['both_agree']:.0%} of {r['prompts']} prompts" if sec == "text" else
                     f" of {r['renderings']} renderings"))
    print(f"wrote {args.json}")
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())

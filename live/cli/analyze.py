"""``m2v analyze``: what the instrument hears in a file: onsets, beats, intensity, segments, cues."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

HELP = "analyze an audio file: streaming onsets, beats, intensity, the paper's segments, lyric cues"

log = logging.getLogger(__name__)

# The live path runs at the sound card's rate; other file rates are resampled to this.
LIVE_RATES = (44100, 48000)
FILE_BLOCK = 1024  # feed the streaming analyzer blocks like a sound card would


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from live.cli import add_common_arguments

    parser.add_argument("audio", metavar="AUDIO", help="audio file (wav, flac, ogg, mp3)")
    parser.add_argument("--lyrics", metavar="FILE", help="timed lyrics/cues: .lrc, paper .csv, or 'MM:SS text' lines")
    parser.add_argument("--json", metavar="OUT.json", help="write the full analysis as JSON")
    parser.add_argument("--plot", metavar="OUT.png", help="draw waveform, intensity, onsets, beats, segments, cues")
    parser.add_argument("--hop", type=int, default=256, choices=(256, 512), help="streaming analyzer hop in samples")
    parser.add_argument("--segments", default="beats", choices=("beats", "onsets"),
                        help="cut segments at tracked beats (paper) or at detected onsets")
    parser.add_argument("--rate", default="paper", choices=("paper", "script"),
                        help="iterations per segment: paper (mean intensity sets it/s between --min-ips "
                             "and --max-ips) or script (10 + 110 * max intensity it/s)")
    parser.add_argument("--min-ips", type=float, default=10.0, help="paper rate: iterations/s at intensity 0")
    parser.add_argument("--max-ips", type=float, default=120.0, help="paper rate: iterations/s at intensity 1")
    parser.add_argument("--onset-threshold", type=float, default=None,
                        help="onset sensitivity (lower = more onsets; default: the analyzer's)")
    add_common_arguments(parser, models=False)


def _stream(y, sr: int, *, hop: int, threshold: float | None):
    from core.analyzer import StreamingAnalyzer
    from core.events import Beat, Intensity, Onset

    kwargs = {} if threshold is None else {"onset_threshold": threshold}
    analyzer = StreamingAnalyzer(sr=sr, hop=hop, **kwargs)
    onsets, beats, intensity = [], [], []
    for start in range(0, y.shape[0], FILE_BLOCK):
        for e in analyzer.process(y[start : start + FILE_BLOCK]):
            if isinstance(e, Intensity):
                intensity.append(e.value)
            elif isinstance(e, Onset):
                onsets.append(e)
            elif isinstance(e, Beat):
                beats.append(e)
    return analyzer, onsets, beats, intensity


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from core.audio_io import load_audio
    from core.errors import ConfigError, OutputError
    from core.lyrics import parse_lyrics
    from core.segments import analyze_offline

    for flag in ("json", "plot"):
        out = getattr(args, flag)
        if out and not Path(out).expanduser().resolve().parent.is_dir():
            raise OutputError(f"--{flag} {out!r}: folder {str(Path(out).parent)!r} does not exist; create it first")
    if not 0 <= args.min_ips <= args.max_ips:
        raise ConfigError(f"--min-ips {args.min_ips} / --max-ips {args.max_ips}: need 0 <= min <= max")
    cues = parse_lyrics(args.lyrics) if args.lyrics else None  # fail fast, before the slow part

    y, sr = load_audio(args.audio)
    if sr not in LIVE_RATES:
        y, sr = load_audio(args.audio, sr=LIVE_RATES[0])
    duration_s = y.shape[0] / sr

    analyzer, onsets, stream_beats, intensity = _stream(y, sr, hop=args.hop, threshold=args.onset_threshold)
    offline = analyze_offline(y, sr, segments=args.segments, rate=args.rate, min_ips=args.min_ips,
                              max_ips=args.max_ips, onset_times_s=np.array([o.time_s for o in onsets]))

    result = {
        "audio": str(args.audio),
        "sample_rate": sr,
        "duration": duration_s,
        "onsets": [round(o.time_s, 4) for o in onsets],
        "onset_strengths": [round(o.strength, 3) for o in onsets],
        "beats": [round(float(b), 4) for b in offline.beats],
        "tempo_bpm": round(offline.tempo_bpm, 2),
        "stream_beats": [round(b.time_s, 4) for b in stream_beats],
        "stream_tempo_bpm": round(stream_beats[-1].bpm, 2) if stream_beats else None,
        "segments_mode": args.segments,
        "rate_mode": args.rate,
        "segments": [
            {"start": round(s.start_s, 4), "end": round(s.end_s, 4), "intensity_mean": round(s.intensity_mean, 4),
             "intensity_max": round(s.intensity_max, 4), "iterations": s.iterations}
            for s in offline.segments
        ],
        "total_iterations": offline.total_iterations,
        "intensity": {
            "hop_s": analyzer.hop_s,
            "first_s": 0.0,
            "values": [round(float(v), 4) for v in intensity],
        },
        "analyzer": {"hop": args.hop, "onset_method": analyzer.onset_method, "threshold": analyzer.threshold,
                     "latency_s": round(analyzer.latency_s, 4)},
    }
    if cues is not None:
        result["cues"] = [{"time": c.time_s, "text": c.text} for c in cues]

    if args.json:
        try:
            Path(args.json).expanduser().write_text(json.dumps(result, indent=1))
        except OSError as exc:
            raise OutputError(f"cannot write --json {args.json!r}: {exc.strerror}") from None
    if args.plot:
        _plot(y=y, sr=sr, result=result, out_path=Path(args.plot).expanduser())
    if not args.json:
        _print_summary(result, np.asarray(intensity))
    return 0


def _print_summary(result: dict, intensity) -> None:
    segs = result["segments"]
    seg_len = [s["end"] - s["start"] for s in segs]
    print(f"{result['audio']}: {result['duration']:.1f} s at {result['sample_rate']} Hz")
    print(f"  tempo      {result['tempo_bpm']:.1f} BPM offline, {result['stream_tempo_bpm'] or 0:.1f} BPM streaming")
    print(f"  onsets     {len(result['onsets'])} (streaming, hop {result['analyzer']['hop']}, "
          f"{result['analyzer']['onset_method']}, latency {result['analyzer']['latency_s'] * 1000:.0f} ms)")
    print(f"  beats      {len(result['beats'])} offline, {len(result['stream_beats'])} streaming")
    if len(intensity):
        p5, p50, p95 = (float(v) for v in __import__("numpy").percentile(intensity, (5, 50, 95)))
        print(f"  intensity  p5 {p5:.2f}  median {p50:.2f}  p95 {p95:.2f} (adaptive 0..1)")
    print(f"  segments   {len(segs)} by {result['segments_mode']}, mean {sum(seg_len) / len(segs):.2f} s, "
          f"{result['total_iterations']} iterations ({result['rate_mode']} rate)")
    if "cues" in result:
        print(f"  cues       {len(result['cues'])}")


def _plot(*, y, sr: int, result: dict, out_path: Path) -> None:
    """Waveform, intensity, onsets, beats, segments and cues on one shared time axis."""
    import matplotlib

    matplotlib.use("Agg")  # file output only; never needs a display
    import matplotlib.pyplot as plt
    import numpy as np

    from core.errors import OutputError

    t = np.arange(y.shape[0]) / sr
    step = max(1, y.shape[0] // 20000)  # ~20k points are plenty for a picture
    fig, (ax_w, ax_i, ax_s) = plt.subplots(
        3, 1, figsize=(14, 7), sharex=True, gridspec_kw={"height_ratios": [2, 1.3, 1]}
    )
    ax_w.plot(t[::step], y[::step], color="0.35", lw=0.5)
    ax_w.vlines(result["onsets"], -1, 1, color="tab:red", lw=0.6, alpha=0.7, label="onsets (streaming)")
    ax_w.vlines(result["beats"], -1, 1, color="tab:blue", lw=1.0, ls="--", alpha=0.7, label="beats (offline)")
    ax_w.set_ylim(-1.05, 1.05)
    ax_w.set_ylabel("waveform")
    ax_w.legend(loc="upper right", fontsize=8)
    for c in result.get("cues", []):
        ax_w.axvline(c["time"], color="tab:green", lw=1.2)
        ax_w.text(c["time"], 1.02, c["text"][:30], rotation=30, fontsize=8, color="tab:green",
                  va="bottom", ha="left", transform=ax_w.get_xaxis_transform())

    inten = result["intensity"]
    ti = inten["first_s"] + inten["hop_s"] * np.arange(len(inten["values"]))
    ax_i.plot(ti, inten["values"], color="tab:orange", lw=0.8, label="adaptive (streaming)")
    starts = [s["start"] for s in result["segments"]]
    ax_i.step(starts + [result["duration"]], [s["intensity_mean"] for s in result["segments"]]
              + [result["segments"][-1]["intensity_mean"]], where="post", color="k", lw=0.8,
              label="segment mean (song-global)")
    ax_i.set_ylim(0, 1.05)
    ax_i.set_ylabel("intensity")
    ax_i.legend(loc="upper right", fontsize=8)

    its = np.array([s["iterations"] / max(s["end"] - s["start"], 1e-9) for s in result["segments"]])
    for i, s in enumerate(result["segments"]):
        ax_s.axvspan(s["start"], s["end"], color=("0.85" if i % 2 else "0.7"), lw=0)
    ax_s.step(starts + [result["duration"]], list(its) + [its[-1]], where="post", color="tab:purple", lw=1.0)
    ax_s.set_ylabel("iterations/s")
    ax_s.set_xlabel("time (s)")
    ax_s.set_title(f"{len(result['segments'])} segments by {result['segments_mode']}, "
                   f"{result['rate_mode']} rate, {result['total_iterations']} iterations", fontsize=9)
    ax_s.set_xlim(0, result["duration"])
    fig.suptitle(f"{Path(result['audio']).name}: {result['tempo_bpm']:.1f} BPM, "
                 f"{len(result['onsets'])} onsets", fontsize=11)
    fig.tight_layout()
    try:
        fig.savefig(out_path, dpi=110)
    except OSError as exc:
        raise OutputError(f"cannot write --plot {str(out_path)!r}: {exc.strerror}") from None
    finally:
        plt.close(fig)

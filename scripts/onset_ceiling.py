"""What the default onset detector misses in the corpus's 12 dB mixes, and which of those no detector can find.

The mixes of ``scripts/make_onset_corpus.py`` are the solo items of a split (drums, piano, plucked, soft
strings) summed, plus white noise; the noise is the mix minus the parts.  For each split this reports:

- the default's F, P, R on the mix, on the mix without noise, and on each part with the mix's noise alone;
- the recall of the mix's onsets by owning part (a part owns a mix onset if one of its note-ons is
  within 31 ms) and by the distance to the nearest other onset (dense passages; with and without the noise);
- onsets no detector can be expected to find, each by an ideal detector that knows where and when to
  look, and is still not 3 standard deviations clear of what the noise does by itself (d' < 3):

  - lone hats (the onset's only note-ons within 31 ms are closed or open hats): the rise of the
    5-17 kHz power in the 23 ms from the onset over the noise's mean power there, against the spread of
    that power's change between frames of the noise alone;
  - lone string note-ons: the rise of the power in the 5 bins (93 ms window) where the note's new energy
    is strongest, in the mix, from the window before, against the spread of such a 5-bin sum's change
    in the noise;

- the ceiling those leave (every other onset found, none false: F = 2R / (1 + R)) and, labelled apart
  from the benchmark's figure, the default's F on the audible onsets (detections within 50 ms of an
  inaudible onset are not scored).
- in the mix without noise, the lone string note-ons masked by the other parts: those the lone string
  note-on test above calls inaudible when the sum of the other parts (drums, piano, plucked) stands in
  for the noise; the default's F on that mix, and the ceiling the masked notes leave (every other onset
  found, none false).  Lone hats are not counted so: the hat test measures against the noise's mean
  power and its frame-to-frame spread, which fits stationary noise, not the other parts, whose 5-17 kHz
  level jumps from one frame to the next; what the hat test would say under the other parts is
  reported apart, with how many of those hats the default finds in the mix without noise.

    python scripts/onset_ceiling.py --corpus build/onset_corpus    # writes results/onset_ceiling.json
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_audio  # noqa: E402
import make_onset_corpus  # noqa: E402

OWN_S = 0.031  # a part owns a mix onset if one of its note-ons is this close (the corpus merges at 30 ms)
HATS = {make_onset_corpus.CLOSED_HAT, make_onset_corpus.OPEN_HAT}
D_PRIME = 3.0  # an ideal detector's rise must clear the noise's own spread by this many sd
HAT_BAND_HZ = (5000.0, 17200.0)
HAT_N = 1024  # 23 ms at 44.1 kHz: the detector's short window
NOTE_N = 4096  # 93 ms: the detector's long window
NOTE_BINS = 5


def _score(truth: np.ndarray, times: np.ndarray) -> dict:
    import mir_eval

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f, p, r = mir_eval.onset.f_measure(truth, times, window=bench_audio.WINDOW_S)
    return {"f": float(f), "precision": float(p), "recall": float(r), "n_true": int(truth.size)}


def _found(truth: np.ndarray, times: np.ndarray) -> np.ndarray:
    import mir_eval

    hit = np.zeros(truth.size, dtype=bool)
    hit[[i for i, _ in mir_eval.util.match_events(truth, times, bench_audio.WINDOW_S)]] = True
    return hit


def _detect(y: np.ndarray, sr: int) -> np.ndarray:
    return bench_audio.detect(y, sr=sr, hop=256, method="default")[0]


def inaudible(*, truth: np.ndarray, owners: dict[str, np.ndarray], stems: dict[str, np.ndarray], noise: np.ndarray,
              mix: np.ndarray, hat_times: np.ndarray, other_drum_times: np.ndarray, sr: int) -> np.ndarray:
    """Per truth onset: "hat", "strings" (inaudible, as the module docstring says) or ""."""
    label = np.full(truth.size, "", dtype=object)
    n_owners = np.sum(list(owners.values()), axis=0)
    rng = np.random.default_rng(0)

    # Lone hats: an energy detector over 5-17 kHz.
    window = np.hanning(HAT_N)
    band = (np.fft.rfftfreq(HAT_N, 1 / sr) >= HAT_BAND_HZ[0]) & (np.fft.rfftfreq(HAT_N, 1 / sr) <= HAT_BAND_HZ[1])

    def band_power(y: np.ndarray, start: int) -> float:
        return float(np.sum(np.abs(np.fft.rfft(y[start : start + HAT_N] * window))[band] ** 2))

    starts = np.arange(HAT_N, noise.size - 2 * HAT_N, HAT_N // 2)
    levels = 10 * np.log10([band_power(noise, s) for s in starts])
    spread = float(np.std(levels[2:] - levels[:-2]))  # frames HAT_N apart
    noise_mean = float(np.mean(10 ** (levels / 10)))
    for i, t in enumerate(truth):
        if n_owners[i] != 1 or not owners["drums"][i] or hat_times.size == 0:
            continue
        k = int(np.argmin(np.abs(hat_times - t)))
        if abs(hat_times[k] - t) >= OWN_S or (other_drum_times.size and np.min(np.abs(other_drum_times - t)) < OWN_S):
            continue
        rise_db = 10 * np.log10(1 + band_power(stems["drums"], int(round(hat_times[k] * sr))) / noise_mean)
        if rise_db / spread < D_PRIME:
            label[i] = "hat"

    # Lone string note-ons: a narrowband energy detector on the note's 5 strongest new bins.
    window = np.hanning(NOTE_N)

    def power(y: np.ndarray, start: int) -> np.ndarray:
        return np.abs(np.fft.rfft(y[start : start + NOTE_N] * window)) ** 2

    below_2k = np.arange(5, int(2000 * NOTE_N / sr))
    changes = []
    for s in rng.integers(NOTE_N, noise.size - 2 * NOTE_N, 300):
        bins = rng.choice(below_2k, NOTE_BINS, replace=False)
        changes.append(10 * np.log10(power(noise, s + NOTE_N // 2)[bins].sum() / power(noise, s - NOTE_N // 2)[bins].sum()))
    spread = float(np.std(changes))
    for i, t in enumerate(truth):
        start = int(round(t * sr)) - NOTE_N // 4  # the window holds mostly what follows the onset
        if n_owners[i] != 1 or not owners["strings"][i] or start - NOTE_N < 0 or start + NOTE_N > mix.size:
            continue
        new = np.maximum(power(stems["strings"], start) - power(stems["strings"], start - NOTE_N // 2), 0.0)
        top = np.argsort(new)[-NOTE_BINS:]
        rise_db = 10 * np.log10(power(mix, start)[top].sum() / power(mix, start - NOTE_N // 2)[top].sum())
        if rise_db / spread < D_PRIME:
            label[i] = "strings"
    return label


def masked_string_notes(*, truth: np.ndarray, owners: dict[str, np.ndarray], stems: dict[str, np.ndarray],
                        sr: int) -> np.ndarray:
    """Per truth onset: True for a lone string note-on that ``inaudible``'s string test calls inaudible in the
    mix without noise (the sum of ``stems``) when the sum of the other stems stands in for the noise."""
    clean = np.sum(list(stems.values()), axis=0)
    label = inaudible(truth=truth, owners=owners, stems=stems, noise=clean - stems["strings"], mix=clean,
                      hat_times=np.array([]), other_drum_times=np.array([]), sr=sr)  # no hat times: no hat test
    return label == "strings"


def analyze_split(manifest: dict, audio: dict, split: str, *, snr_db: float = 12.0) -> dict:
    sr = manifest["sr"]
    items = {it["name"]: it for it in manifest["items"]}
    mix_item = next(it for it in manifest["items"] if it["split"] == split and it["snr_db"] == snr_db)
    parts = {items[name]["material"]: name for name in mix_item["source"].split(" + ")}
    stems = {m: audio[name] for m, name in parts.items()}
    mix = audio[mix_item["name"]]
    clean = np.sum(list(stems.values()), axis=0)
    noise = mix - clean
    truth = np.asarray(mix_item["onsets"])
    owners = {m: np.min(np.abs(np.asarray(items[name]["onsets"])[:, None] - truth[None, :]), axis=0) < OWN_S
              for m, name in parts.items()}

    _, _, bpm, seed, style = next(d for d in make_onset_corpus.DRUMS if d[0] == parts["drums"])
    pm = make_onset_corpus.drum_midi(bpm=bpm, duration_s=manifest["duration_s"] - 1.0, seed=seed, style=style)
    by_time = collections.defaultdict(set)
    for note in pm.instruments[0].notes:
        by_time[round(note.start, 4)].add(note.pitch)
    hat_times = np.array([t for t, pitches in by_time.items() if pitches <= HATS])
    other_drum_times = np.array([t for t, pitches in by_time.items() if not pitches <= HATS])

    label = inaudible(truth=truth, owners=owners, stems=stems, noise=noise, mix=mix, hat_times=hat_times,
                      other_drum_times=other_drum_times, sr=sr)
    times, times_clean = _detect(mix, sr), _detect(clean, sr)
    found, found_clean = _found(truth, times), _found(truth, times_clean)
    audible = label == ""
    gone = truth[~audible]
    scored = times if gone.size == 0 else times[np.min(np.abs(times[:, None] - gone[None, :]), axis=1) > bench_audio.WINDOW_S]
    nearest = np.array([np.sort(np.abs(truth - t))[1] for t in truth])
    recall_ceiling = float(audible.mean())
    masked = masked_string_notes(truth=truth, owners=owners, stems=stems, sr=sr)
    recall_masked = float(1.0 - masked.mean())
    hats_under_others = inaudible(truth=truth, owners=owners, stems=stems, noise=clean - stems["drums"], mix=clean,
                                  hat_times=hat_times, other_drum_times=other_drum_times, sr=sr) == "hat"
    return {
        "mix": mix_item["name"], "snr_db": snr_db, "n_onsets": int(truth.size),
        "default": _score(truth, times),
        "default_without_noise": _score(truth, times_clean),
        "parts_with_the_noise": {m: _score(np.asarray(items[name]["onsets"]), _detect(stems[m] + noise, sr))
                                 for m, name in parts.items()},
        "found_by_part": {m: {"owned": int(own.sum()), "found": int(found[own].sum())} for m, own in owners.items()},
        "found_by_nearest_other_onset_ms": {
            f"{lo}-{hi}": {"onsets": int(m.sum()), "found": int(found[m].sum()),
                           "found_without_noise": int(found_clean[m].sum())}
            for lo, hi in ((30, 45), (45, 60), (60, 100), (100, 10**4))
            for m in [(nearest >= lo / 1e3) & (nearest < hi / 1e3)]},
        "inaudible": {"lone_hats": int(np.sum(label == "hat")), "lone_string_notes": int(np.sum(label == "strings")),
                      "lone_hats_found": int(found[label == "hat"].sum()),
                      "lone_string_notes_found": int(found[label == "strings"].sum())},
        "ceiling": {"recall": recall_ceiling, "f": 2 * recall_ceiling / (1 + recall_ceiling)},
        "default_on_audible_onsets_only": _score(truth[audible], scored),
        "without_noise_masked_by_the_other_parts": {
            "lone_string_notes": int(np.sum(owners["strings"] & (np.sum(list(owners.values()), axis=0) == 1))),
            "masked_lone_string_notes": int(masked.sum()),
            "masked_lone_string_notes_found": int(found_clean[masked].sum()),
            "default_f": _score(truth, times_clean)["f"],
            "ceiling": {"recall": recall_masked, "f": 2 * recall_masked / (1 + recall_masked)},
            "hat_test_under_the_other_parts_not_counted": {
                "lone_hats_it_calls_inaudible": int(hats_under_others.sum()),
                "of_those_found_by_the_default": int(found_clean[hats_under_others].sum()),
            },
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=bench_audio.CORPUS)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "onset_ceiling.json")
    args = parser.parse_args(argv)
    got = bench_audio.load_corpus(args.corpus)
    if got is None:
        parser.exit(2, "Error: no corpus (python scripts/make_onset_corpus.py renders it)\n")
    manifest, audio = got
    out = {"definition": __doc__.split("\n\n", 1)[1].split("\n    python")[0], "d_prime": D_PRIME,
           "splits": {split: analyze_split(manifest, audio, split) for split in ("tune", "heldout")}}
    for split, r in out["splits"].items():
        d, a, c, inn = r["default"], r["default_on_audible_onsets_only"], r["ceiling"], r["inaudible"]
        print(f"{split:8} {r['mix']}: default F {d['f']:.2f} (P {d['precision']:.2f}, R {d['recall']:.2f}); "
              f"without the noise {r['default_without_noise']['f']:.2f}; inaudible: {inn['lone_hats']} lone hats, "
              f"{inn['lone_string_notes']} lone string notes of {r['n_onsets']}; ceiling F {c['f']:.2f}; "
              f"default on the audible onsets only F {a['f']:.2f} (P {a['precision']:.2f}, R {a['recall']:.2f})")
        print("         found by part: " + ", ".join(f"{m} {v['found']}/{v['owned']}" for m, v in r["found_by_part"].items())
              + "; by nearest other onset (ms): " + ", ".join(
                  f"{k} {v['found']}/{v['onsets']} ({v['found_without_noise']} without noise)" for k, v in r["found_by_nearest_other_onset_ms"].items())
              + "; each part with the noise alone: " + ", ".join(
                  f"{m} {v['f']:.2f}" for m, v in r["parts_with_the_noise"].items()))
        w = r["without_noise_masked_by_the_other_parts"]
        print(f"         without the noise: {w['masked_lone_string_notes']} of {w['lone_string_notes']} lone string notes "
              f"masked by the other parts ({w['masked_lone_string_notes_found']} found); default F {w['default_f']:.2f}, "
              f"ceiling F {w['ceiling']['f']:.2f}; the hat test under the other parts (not counted) would call "
              f"{w['hat_test_under_the_other_parts_not_counted']['lone_hats_it_calls_inaudible']} lone hats inaudible, "
              f"of which the default finds {w['hat_test_under_the_other_parts_not_counted']['of_those_found_by_the_default']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

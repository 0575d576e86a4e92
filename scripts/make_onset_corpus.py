"""Render the onset evaluation corpus: real instrument timbres from a General MIDI SoundFont.

Each item is a MIDI score rendered with fluidsynth through FluidR3_GM (Debian:
``apt-get install fluidsynth fluid-soundfont-gm``); its truth is the MIDI note-on
times (note-ons within 30 ms merged into one onset, as a listener hears a chord)
and the beat times of the MIDI tempo map (for beat tracking).  Material:

- drums: programmatic General MIDI kit patterns (kick, snare, hats, toms, fills);
- piano, plucked (guitar, harp), soft strings (one detached line), bowed legato
  (a four-part chorale / a string quartet) and pads: real compositions from the
  music21 corpus (Bach chorales, Joplin's Maple Leaf Rag, a Haydn quartet);
- dense mixes: drums + piano + plucked + soft strings summed, in white noise at 24, 12 and
  6 dB SNR (noise power relative to the mix's mean power).  The parts keep their own
  tempi, so a mix has onset truth but no beat truth.

Two splits with different pieces, kits and instruments: ``tune`` (what defaults
were chosen on) and ``heldout`` (never tuned on; reported separately).

    python scripts/make_onset_corpus.py                  # writes build/onset_corpus/
    python scripts/make_onset_corpus.py --out DIR --duration 30

Needs ``pip install -e .[bench]`` (pretty_midi, music21) besides the system packages.

The corpus directory holds one mono 44.1 kHz wav per item and ``manifest.json``:
``{"sr", "items": [{"name", "split", "material", "instrument", "source", "snr_db",
"wav", "onsets", "beats"}]}``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.synth import add_noise  # noqa: E402

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
DEFAULT_OUT = ROOT / "build" / "onset_corpus"
MERGE_S = 0.03  # note-ons closer than 30 ms are one onset (a chord, a flam)
SNRS_DB = (24.0, 12.0, 6.0)
DRUM_START_S = 0.5  # the first hit; MIDI's own beat grid starts at 0

# General MIDI programs (0-based) and drum notes.
PIANO, BRIGHT_PIANO, NYLON_GUITAR, HARP = 0, 1, 24, 46
VIOLIN, VIOLA, CELLO, STRINGS, SLOW_STRINGS = 40, 41, 42, 48, 49
NEW_AGE_PAD, WARM_PAD, CHOIR = 88, 89, 52
KICK, SNARE, CLOSED_HAT, OPEN_HAT, RIDE, CRASH, LOW_TOM, HIGH_TOM = 36, 38, 42, 46, 51, 49, 45, 50

# (name, split, material, music21 corpus path, GM programs per part (cycled), velocity, parts kept
# (None: all), gate: a note sounds for this fraction of the time to the next note in its part (None:
# as written, legato)).  Velocity 60 makes the bowed parts soft; "bowed" is a legato chorale (note
# changes with no new attack, the hardest case), "strings" one detached line, as a soft pad of strings
# is usually played.
SCORES = [
    ("piano_bach_bwv66.6", "tune", "piano", "bach/bwv66.6", [PIANO], 80, None, None),
    ("plucked_guitar_bach_bwv7.7", "tune", "plucked", "bach/bwv7.7", [NYLON_GUITAR], 90, None, None),
    ("strings_soft_bach_bwv10.7_soprano", "tune", "strings", "bach/bwv10.7", [STRINGS], 60, [0], 0.85),
    ("bowed_legato_bach_bwv10.7", "tune", "bowed", "bach/bwv10.7", [STRINGS], 60, None, None),
    ("pad_warm_bach_bwv101.7", "tune", "pad", "bach/bwv101.7", [WARM_PAD], 70, None, None),
    ("piano_joplin_maple_leaf", "heldout", "piano", "joplin/maple_leaf_rag", [BRIGHT_PIANO], 80, None, None),
    ("plucked_harp_bach_bwv1.6", "heldout", "plucked", "bach/bwv1.6", [HARP], 90, None, None),
    ("strings_soft_violin_bach_bwv1.6_soprano", "heldout", "strings", "bach/bwv1.6", [VIOLIN], 60, [0], 0.85),
    ("bowed_legato_quartet_haydn_op1no1", "heldout", "bowed", "haydn/opus1no1/movement1",
     [VIOLIN, VIOLIN, VIOLA, CELLO], 60, None, None),
    ("pad_newage_bach_bwv13.6", "heldout", "pad", "bach/bwv13.6", [NEW_AGE_PAD], 70, None, None),
]
# (name, split, bpm, seed, style)
DRUMS = [
    ("drums_rock_100", "tune", 100.0, 1, "rock"),
    ("drums_funk_128", "heldout", 128.0, 2, "funk"),
]


def drum_midi(*, bpm: float, duration_s: float, seed: int, style: str):
    """A General MIDI drum track: a groove with velocity variation, fills every 4th bar, crashes."""
    import pretty_midi

    rng = np.random.default_rng(seed)
    pm = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    kit = pretty_midi.Instrument(program=0, is_drum=True, name="drums")
    step_s = 60.0 / bpm / 4  # sixteenth notes
    n_steps = int(duration_s / step_s)
    if style == "rock":
        kick, snare, hat = {0, 8, 10}, {4, 12}, set(range(0, 16, 2))
    else:  # funk: syncopated kicks, ghost snares, sixteenth hats
        kick, snare, hat = {0, 3, 7, 10}, {4, 12, 14}, set(range(16))
    for i in range(n_steps):
        bar, step = divmod(i, 16)
        t = DRUM_START_S + i * step_s
        hits = []
        if bar % 4 == 3 and step >= 8:  # fill: toms and snare on every sixteenth
            hits.append((rng.choice([SNARE, HIGH_TOM, LOW_TOM]), 70 + int(rng.integers(0, 40))))
        else:
            if step in kick:
                hits.append((KICK, 100 + int(rng.integers(0, 20))))
            if step in snare:
                hits.append((SNARE, (50 if style == "funk" and step == 14 else 95) + int(rng.integers(0, 20))))
            if step in hat:
                hits.append((OPEN_HAT if style == "rock" and step == 14 else CLOSED_HAT,
                             45 + int(rng.integers(0, 40))))
        if bar % 4 == 0 and step == 0:
            hits.append((CRASH, 100))
        for note, vel in hits:
            kit.notes.append(pretty_midi.Note(velocity=int(vel), pitch=int(note), start=t, end=t + 0.1))
    pm.instruments.append(kit)
    return pm


def score_midi(*, source: str, programs: list[int], velocity: int, duration_s: float,
               parts: list[int] | None = None, gate: float | None = None):
    """A music21 corpus piece as pretty_midi, each part on its own GM program, cut to ``duration_s``."""
    import pretty_midi
    from music21 import corpus

    score = corpus.parse(source)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "score.mid"
        score.write("midi", fp=str(path))
        pm = pretty_midi.PrettyMIDI(str(path))
    lead_s = 0.5  # a little silence before the first note, as in a recording
    pm.adjust_times([0.0, 1000.0], [lead_s, 1000.0 + lead_s])
    if parts is not None:
        pm.instruments = [pm.instruments[i] for i in parts]
    if gate is not None:
        for inst in pm.instruments:
            notes = sorted(inst.notes, key=lambda n: n.start)
            for n, nxt in zip(notes, notes[1:]):
                if nxt.start > n.start:
                    n.end = min(n.end, n.start + gate * (nxt.start - n.start))
    for i, inst in enumerate(pm.instruments):
        inst.program = programs[i % len(programs)]
        inst.is_drum = False
        inst.notes = [n for n in inst.notes if n.start < duration_s - 1.0]
        for n in inst.notes:
            n.velocity = velocity
            n.end = min(n.end, duration_s - 0.5)
    return pm


def truth_of(pm, *, duration_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Merged note-on times and MIDI beat times within ``duration_s``."""
    starts = np.sort([n.start for inst in pm.instruments for n in inst.notes if n.start < duration_s])
    onsets: list[float] = []
    for t in starts:
        if not onsets or t - onsets[-1] > MERGE_S:
            onsets.append(float(t))
    if starts.size:
        beats = pm.get_beats()
        beats = beats[(beats >= starts[0] - 1e-6) & (beats <= starts[-1] + 1e-6)]
    else:
        beats = np.zeros(0)
    return np.asarray(onsets), np.asarray(beats, dtype=float)


def render(pm, *, sr: int, duration_s: float, soundfont: Path) -> np.ndarray:
    """Render with the fluidsynth program (reverb and chorus at their defaults); mono float32."""
    import soundfile as sf

    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        pm.write(str(mid))
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(sr), "-F", str(wav), str(soundfont),
                        str(mid)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        y, got_sr = sf.read(str(wav), dtype="float32", always_2d=True)
    assert got_sr == sr, (got_sr, sr)
    y = y.mean(axis=1)
    n = int(duration_s * sr)
    return np.pad(y[:n], (0, max(0, n - y.shape[0]))).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--sr", type=int, default=44100)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of each item")
    parser.add_argument("--soundfont", type=Path, default=SOUNDFONT)
    args = parser.parse_args(argv)
    if shutil.which("fluidsynth") is None or not args.soundfont.exists():
        parser.exit(2, f"Error: needs the fluidsynth program and {args.soundfont}; "
                       "install them with: apt-get install fluidsynth fluid-soundfont-gm\n")
    import soundfile as sf

    args.out.mkdir(parents=True, exist_ok=True)
    items, audio = [], {}

    def add(name, split, material, instrument, source, y, onsets, beats, snr_db=None):
        wav = f"{name}.wav"
        sf.write(str(args.out / wav), y, args.sr, subtype="FLOAT")
        audio[name] = y
        items.append({"name": name, "split": split, "material": material, "instrument": instrument,
                      "source": source, "snr_db": snr_db, "wav": wav, "onsets": onsets.tolist(),
                      "beats": beats.tolist()})
        print(f"{name:34} {split:8} {onsets.size:4d} onsets {beats.size:4d} beats", flush=True)

    for name, split, bpm, seed, style in DRUMS:
        pm = drum_midi(bpm=bpm, duration_s=args.duration - 1.0, seed=seed, style=style)
        onsets, _ = truth_of(pm, duration_s=args.duration)
        beats = np.arange(DRUM_START_S, onsets[-1] + 1e-6, 60.0 / bpm)  # the groove starts on a beat
        add(name, split, "drums", "GM standard kit", f"programmatic {style} pattern, {bpm:.0f} BPM",
            render(pm, sr=args.sr, duration_s=args.duration, soundfont=args.soundfont), onsets, beats)
    for name, split, material, source, programs, velocity, keep, gate in SCORES:
        pm = score_midi(source=source, programs=programs, velocity=velocity, duration_s=args.duration,
                        parts=keep, gate=gate)
        onsets, beats = truth_of(pm, duration_s=args.duration)
        import pretty_midi

        instrument = ", ".join(sorted({pretty_midi.program_to_instrument_name(p) for p in programs}))
        add(name, split, material, instrument, f"music21 corpus {source}",
            render(pm, sr=args.sr, duration_s=args.duration, soundfont=args.soundfont), onsets, beats)

    # Dense mixes: drums + piano + plucked + soft strings of one split, summed, then noise.
    for split in ("tune", "heldout"):
        parts = [it for it in items
                 if it["split"] == split and it["material"] in ("drums", "piano", "plucked", "strings")]
        y = np.sum([audio[it["name"]] for it in parts], axis=0).astype(np.float32)
        onsets_all = np.sort(np.concatenate([it["onsets"] for it in parts]))
        onsets: list[float] = []
        for t in onsets_all:
            if not onsets or t - onsets[-1] > MERGE_S:
                onsets.append(float(t))
        for snr in SNRS_DB:
            add(f"mix_{split}_snr{snr:.0f}", split, "mix", " + ".join(it["instrument"] for it in parts),
                " + ".join(it["name"] for it in parts), add_noise(y, snr_db=snr, seed=int(snr)),
                np.asarray(onsets), np.zeros(0), snr_db=snr)  # parts in different tempi: no beat truth

    (args.out / "manifest.json").write_text(json.dumps({"sr": args.sr, "duration_s": args.duration,
                                                         "merge_s": MERGE_S, "items": items}, indent=1))
    print(f"wrote {len(items)} items to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

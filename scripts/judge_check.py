#!/usr/bin/env python
"""Does the judge read guided frames as a person does?  Its shape reading against a person's labels.

    python scripts/judge_check.py            # -> results/judge_human_check.json

The frames (``tests/data/judge/guided_s*.png``, 60 frames of 64 px side by side
each) are the toy set's guided frames of the text check (``bench_guidance.py``'s
``text`` section: every colour x shape prompt, toy preset, 60 steps from the random
start of seed ``seed0 + i``).  ``tests/data/judge/labels.json`` holds, for each
frame, the shape or pattern a person named on contact sheets in shuffled order
without seeing the prompts, or ``none`` when they would name none (``person``), and
a second reading by another annotator (``person2``).  The rules were chosen on the
``s*`` sets; ``heldout_s9000`` was guided, labelled and read after they were fixed.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATA = REPO / "tests" / "data" / "judge"
CLASSES = ("circle", "square", "triangle", "stripes", "rings", "checkerboard", "none")


def load_sets(data: Path = DATA) -> dict[str, dict]:
    """{set name: {"seed0", "prompts", "person", "frames" (60, 64, 64, 3) uint8}}."""
    from PIL import Image

    labels = json.loads((data / "labels.json").read_text())
    sets = {}
    for name, entry in labels["sets"].items():
        strip = np.asarray(Image.open(data / f"guided_{name}.png").convert("RGB"))
        n = len(entry["prompts"])
        frames = strip.reshape(64, n, 64, 3).transpose(1, 0, 2, 3)
        sets[name] = dict(entry, frames=frames)
    return sets


def agreement(entry: dict, read_shape) -> dict:
    """The judge's shape (``read_shape(frame) -> str``) against each person's, and all against the prompts."""
    shapes = [read_shape(frame) for frame in entry["frames"]]
    wants = [next(c for c in CLASSES if c in prompt) for prompt in entry["prompts"]]
    people = [k for k in ("person", "person2") if k in entry]
    conf = collections.Counter(zip(entry["person"], shapes))
    out = {
        "frames": len(shapes),
        **{f"judge_agrees_with_{k}": sum(a == b for a, b in zip(shapes, entry[k])) for k in people},
        "shape_matches_prompt": {"judge": sum(a == b for a, b in zip(shapes, wants)),
                                 **{k: sum(a == b for a, b in zip(entry[k], wants)) for k in people}},
        "confusion_person_rows_judge_columns": {
            "columns": list(CLASSES), **{p: [conf[(p, j)] for j in CLASSES] for p in CLASSES}},
    }
    if len(people) == 2:
        both = [i for i, (a, b) in enumerate(zip(entry["person"], entry["person2"])) if a == b]
        out["people_agree"] = len(both)
        out["judge_agrees_where_people_agree"] = sum(shapes[i] == entry["person"][i] for i in both)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path, default=REPO / "results" / "judge_human_check.json")
    args = p.parse_args(argv)
    from core import judge

    out = json.loads(args.json.read_text()) if args.json.is_file() else {}
    out["note"] = __doc__.split("\n\n", 2)[2].strip()
    out["judge"] = {}
    sets = load_sets()
    for name, entry in sets.items():
        r = agreement(entry, lambda f: judge.read(f).shape)
        out["judge"][name] = r
        print(f"{name}: the judge agrees with person 1 on {r['judge_agrees_with_person']}/{r['frames']}, "
              f"with person 2 on {r.get('judge_agrees_with_person2', '-')}, with both where they agree on "
              f"{r.get('judge_agrees_where_people_agree', '-')}/{r.get('people_agree', '-')}; shape matches the "
              f"prompt: judge {r['shape_matches_prompt']['judge']}, person 1 {r['shape_matches_prompt']['person']}, "
              f"person 2 {r['shape_matches_prompt'].get('person2', '-')}")
    # What guidance drew for each prompt's shape, as the person read it (all sets together).
    by_prompt = collections.Counter()
    for entry in sets.values():
        for prompt, person in zip(entry["prompts"], entry["person"]):
            by_prompt[(next(c for c in CLASSES if c in prompt), person)] += 1
    out["person_by_prompt_shape"] = {"columns": list(CLASSES),
                                     **{w: [by_prompt[(w, p)] for p in CLASSES] for w in CLASSES[:-1]}}
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

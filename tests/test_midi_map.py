"""MIDI map files: validation with line numbers, values and button modes, the learned map (no ports needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from live.midi_map import (Control, MidiMap, action_args, bind, list_maps, load_learned, load_map, save_learned,
                           scale, shipped_midi_dir, validate_map_files)

ROOT = Path(__file__).resolve().parents[1]

BAD = """description = "bad"
colour = 3

[[control]]
cc = 200
action = "intensity"

[[control]]
note = 3
cc = 4
action = "blackout"

[[control]]
note = 5
action = "bank"
args = [0]

[[control]]
note = 6
action = "strobe"
mode = "sticky"
"""


def test_shipped_maps_are_valid_and_listed():
    files = sorted(shipped_midi_dir().glob("*.toml"))
    assert [f.stem for f in files] == ["apc_mini", "launchpad_mini", "nanokontrol2"]
    assert validate_map_files(files) == []
    apc = load_map("apc_mini")
    assert apc.ports == ["APC MINI"]
    assert apc.lookup("APC MINI:APC MINI MIDI 1 20:0", "note", 0, 0).args == [1]  # grid bottom-left: bank 1
    assert apc.lookup("APC MINI", "cc", 0, 56).action == "intensity"  # the master fader


def test_every_mistake_at_once_with_its_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    errors = validate_map_files([path])
    assert [e.split(": ")[0] for e in errors] == [f"{path}:{n}" for n in (2, 5, 8, 13, 20, 21)]
    assert "colour: unknown field (got 3); allowed in the top level: description, ports, control" in errors[0]
    assert "control[0].cc: Input should be less than or equal to 127 (got 200); allowed: int 0 <= x <= 127" \
        in errors[1]
    assert "control[1]: give exactly one of note = N or cc = N" in errors[2]
    assert "control[2]: action 'bank' with args [0]: bank index 0: entries count from 1" in errors[3]
    assert "control[3].action: not an m2v OSC address" in errors[4] and "allowed: lyric, clear" in errors[4]
    assert "control[3].mode" in errors[5] and "'latch', 'momentary' or 'trigger'" in errors[5]


def test_m2v_midi_validate_exits_non_zero_listing_every_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    res = subprocess.run([sys.executable, "-m", "live.cli", "midi", "validate", str(path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert res.stderr.count(f"{path}:") == 6 and "6 error(s) in 1 file(s)" in res.stderr
    ok = subprocess.run([sys.executable, "-m", "live.cli", "midi", "validate",
                         str(shipped_midi_dir() / "apc_mini.toml")], cwd=ROOT, capture_output=True, text=True,
                        timeout=60)
    assert ok.returncode == 0 and "ok: 1 file(s) valid" in ok.stdout


def test_a_rate_knob_must_stay_above_its_fixed_minimum(tmp_path):
    path = tmp_path / "rate.toml"
    path.write_text('[[control]]\ncc = 1\naction = "rate"\nargs = [10.0]\nrange = [2.0, 40.0]\n')
    (err,) = validate_map_files([path])
    assert err.startswith(f"{path}:1: control[0]: action 'rate' with args [10.0]: rate 10.0 2.0")


@pytest.mark.parametrize("curve, raw, expected", [
    ("linear", 0, 0.0), ("linear", 127, 1.0), ("linear", 127 // 2, 63 / 127),
    ("exp", 127, 1.0), ("exp", 0, 0.0), ("exp", 64, (2 ** (6 * 64 / 127) - 1) / 63),
    ("log", 127, 1.0), ("log", 64, __import__("math").log2(1 + 63 * 64 / 127) / 6),
])
def test_knob_curves(curve, raw, expected):
    assert scale(Control(cc=1, action="intensity", curve=curve), raw) == pytest.approx(expected)


def test_knob_range_and_rate_argument():
    c = Control(cc=1, action="rate", args=[2.0], range=[4.0, 40.0])
    assert action_args(c, raw=127, pressed=None, state=False) == [2.0, 40.0]
    assert action_args(c, raw=0, pressed=None, state=False) == [2.0, 4.0]


def test_button_modes():
    latch = Control(note=1, action="freeze")
    assert action_args(latch, raw=127, pressed=True, state=False) == [True]
    assert action_args(latch, raw=127, pressed=True, state=True) == [False]
    assert action_args(latch, raw=0, pressed=False, state=True) is None
    mom = Control(note=1, action="blackout", mode="momentary")
    assert action_args(mom, raw=127, pressed=True, state=False) == [True]
    assert action_args(mom, raw=0, pressed=False, state=True) == [False]
    trig = Control(note=1, action="record", mode="trigger")
    assert action_args(trig, raw=127, pressed=True, state=True) == [True]
    bank = Control(note=1, action="bank", args=[3])
    assert action_args(bank, raw=100, pressed=True, state=False) == [3]
    assert action_args(bank, raw=0, pressed=False, state=False) is None


def test_learned_map_round_trips_and_rebinding_replaces(m2v_home):
    m = bind(MidiMap(), Control(note=60, channel=3, action="bank", args=[1], port="ctl:out"))
    m = bind(m, Control(cc=7, action="intensity", range=[0.2, 0.8], port="ctl:out"))
    m = bind(m, Control(note=60, channel=3, action="freeze", port="ctl:out"))  # the same pad, again
    path = save_learned(m)
    assert path == m2v_home / "midi" / "learned.toml"
    back = load_learned()
    assert [(c.kind, c.number, c.action) for c in back.control] == [("cc", 7, "intensity"), ("note", 60, "freeze")]
    assert back.control[0].range == (0.2, 0.8) and back.control[1].channel == 3
    assert validate_map_files([path]) == []
    assert [i.name for i in list_maps()] == ["apc_mini", "launchpad_mini", "learned", "nanokontrol2"]

"""scripts/onset_ceiling.py's masking count on synthetic parts with a known answer (the corpus itself needs
fluidsynth and a SoundFont, which the test setup does not install)."""

from __future__ import annotations

import numpy as np
import pytest

SR = 44100


@pytest.fixture(scope="module")
def ceiling(load_script):
    return load_script("onset_ceiling")


def _parts(other_db: float) -> dict[str, np.ndarray]:
    """A soft 440 Hz string note (-60 dB RMS) from 1.5 s, and another part: white noise at ``other_db`` RMS."""
    t = np.arange(3 * SR) / SR
    note = np.where(t >= 1.5, np.sqrt(2) * 10 ** (-60 / 20) * np.sin(2 * np.pi * 440.0 * t), 0.0)
    other = 10 ** (other_db / 20) * np.random.default_rng(1).standard_normal(t.size)
    return {"strings": note, "drums": other}


@pytest.mark.parametrize("other_db, masked", [(-15.0, True), (-100.0, False)])
def test_a_soft_lone_string_note_is_masked_under_a_loud_other_part_and_not_under_a_quiet_one(ceiling, other_db, masked):
    truth = np.array([1.5])
    owners = {"strings": np.array([True]), "drums": np.array([False])}
    got = ceiling.masked_string_notes(truth=truth, owners=owners, stems=_parts(other_db), sr=SR)
    assert got.tolist() == [masked]


def test_a_string_note_that_another_part_also_plays_is_not_a_lone_note(ceiling):
    truth = np.array([1.5])
    owners = {"strings": np.array([True]), "drums": np.array([True])}  # both parts have a note-on here
    assert ceiling.masked_string_notes(truth=truth, owners=owners, stems=_parts(-15.0), sr=SR).tolist() == [False]

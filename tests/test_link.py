"""Ableton Link as a beat-grid source: two peers in one process (the optional GPL extra, aalink)."""

from __future__ import annotations

import time

import pytest

from core.tempo import BeatGrid, TapTempo



def wait_for(pred, timeout_s=10.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def test_two_link_peers_share_a_tempo_and_lead_the_grid():
    pytest.importorskip("aalink", reason="the optional GPL 'link' extra: pip install 'm2v[link]'")
    from live.link import LinkTempo

    a, b = LinkTempo(bpm=120.0), LinkTempo(bpm=97.0)
    try:
        if not wait_for(lambda: a.peers >= 1 and b.peers >= 1):
            pytest.skip("Link peers could not find each other (no multicast on loopback here)")
        b.set_bpm(133.0)  # the DJ's software changes tempo: every peer follows
        assert wait_for(lambda: abs(a.link.tempo - 133.0) < 0.01)
        taps = TapTempo()
        for t in (0.0, 0.5, 1.0):
            taps.tap(t)
        grid = BeatGrid([a, taps])
        now = time.monotonic()
        (beat,) = grid.beats(now)
        assert grid.source == "link" and beat.bpm == pytest.approx(133.0, abs=0.01)
        # The beat given lies on a's own Link beat: a whole number of beats before now.
        assert 0 <= now - beat.time_s < 60 / 133.0
        assert (a.link.beat % 1.0) * 60 / 133.0 == pytest.approx(now - beat.time_s, abs=0.02)
    finally:
        a.close()
        b.close()


def test_link_missing_extra_names_the_fix(monkeypatch):
    import builtins

    from core.errors import ConfigError
    from live.link import aalink_module

    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__",
                        lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name)) if name == "aalink"
                        else real_import(name, *a, **k))
    with pytest.raises(ConfigError, match=r"pip install 'm2v\[link\]'.*GPL|GPL.*pip install 'm2v\[link\]'"):
        aalink_module()

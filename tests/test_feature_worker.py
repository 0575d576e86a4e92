"""FeatureWorker in process: a real file source and the real analyzer, clicks with known times."""

from __future__ import annotations

import time

import numpy as np
import soundfile as sf

from core.analyzer import StreamingAnalyzer
from core.events import Onset
from core.presets import IntensitySection, OnsetsSection
from core.synth import generate_click_track
from live.audio_input import FileInput
from live.feature_worker import FeatureWorker

SR = 48_000


def _run(tmp_path, *, before_start=None, seconds=4.0):
    y, clicks = generate_click_track(bpm=120, duration_s=seconds, sr=SR)
    wav = tmp_path / "clicks.wav"
    sf.write(wav, y, SR, subtype="FLOAT")  # bit-exact, so the sink can be compared with y
    src = FileInput(wav, realtime=False)
    analyzer = StreamingAnalyzer.from_config(sr=SR, onsets=OnsetsSection(), intensity=IntensitySection())
    worker = FeatureWorker(src, analyzer)
    got: list[np.ndarray] = []
    worker.add_audio_sink(lambda block, t_s: got.append(block.copy()))
    if before_start:
        before_start(worker)
    worker.start()
    src.start()
    deadline = time.monotonic() + 60
    while not src.finished.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    src.stop()
    worker.stop()  # drains what the source wrote
    assert worker.error is None
    return y, clicks, worker, np.concatenate(got) if got else np.zeros(0, np.float32)


def test_onsets_match_the_clicks_and_sinks_get_exactly_the_analysed_audio(tmp_path):
    y, clicks, worker, heard = _run(tmp_path)
    onsets = np.array(worker.onset_times)
    assert len(onsets) == len(clicks)
    assert np.abs(onsets - clicks).max() < 0.012  # within a couple of 5 ms hops
    assert worker.counters["onsets"] == len(clicks)
    np.testing.assert_array_equal(heard, y)  # the recorder gets what was analysed, sample for sample
    events = worker.events.get_all()
    assert sum(isinstance(e, Onset) for e in events) == len(clicks)
    assert 0.0 <= worker.latest_intensity <= 1.0


def test_a_removed_sink_gets_nothing_and_settings_apply_on_the_worker_thread(tmp_path):
    seen = []

    def setup(worker):
        sink = lambda block, t_s: seen.append(block.size)  # noqa: E731
        worker.add_audio_sink(sink)
        worker.remove_audio_sink(sink)
        # A silence gate above the clicks' level: no onsets at all (hot reload of [onsets] silence_db).
        worker.configure(OnsetsSection(silence_db=-1.0, min_ioi_s=0.2), IntensitySection(release_s=1.0))

    _, _, worker, _ = _run(tmp_path, before_start=setup, seconds=2.0)
    assert seen == []
    assert worker.analyzer.min_ioi_s == 0.2 and worker.analyzer.normalizer.release_s == 1.0
    assert len(worker.onset_times) == 0


class _RingSource:
    """A stand-in for an audio source: just the ring the worker drains and its rate."""

    def __init__(self, *, capacity: int) -> None:
        from core.ringbuffer import RingBuffer

        self.sr = SR
        self.ring = RingBuffer(capacity=capacity, sr=SR)


def test_a_ring_overflow_keeps_onsets_and_recorded_audio_on_the_input_clock():
    y, clicks = generate_click_track(bpm=120, duration_s=8.0, sr=SR)
    src = _RingSource(capacity=SR // 2)  # half a second
    worker = FeatureWorker(src, StreamingAnalyzer(sr=SR))
    got: list[tuple[float, np.ndarray]] = []
    worker.add_audio_sink(lambda block, t_s: got.append((t_s, block.copy())))
    block = 480
    stall = (int(3.2 * SR), int(4.9 * SR))  # the worker stalls for 1.7 s: 1.2 s of input is lost
    for start in range(0, y.size, block):
        src.ring.write(y[start : start + block])
        if not stall[0] <= start < stall[1]:
            worker.drain()
    worker.drain()

    lost = src.ring.overflow_samples
    assert lost > SR and worker.counters["samples_lost"] == lost
    assert worker.counters["samples"] + lost == y.size
    # Every block handed to the recorder is the input at the time it is stamped with.
    for t_s, b in got:
        i = round(t_s * SR)
        np.testing.assert_array_equal(b, y[i : i + b.size])
    # Onsets after the gap are at the clicks' true times, not 1.2 s early.
    onsets = np.array(worker.onset_times)
    heard = np.zeros(y.size, bool)
    for t_s, b in got:
        heard[round(t_s * SR) : round(t_s * SR) + b.size] = True
    kept = clicks[heard[(clicks * SR).astype(int)]]
    assert kept.size == clicks.size - 2  # the clicks at 3.5 and 4.0 s were lost
    for t in kept:
        assert np.min(np.abs(onsets - t)) < 0.012, t
    assert onsets.size <= kept.size + 1  # at most one extra, at the jump in the audio

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from core.errors import InputError
from live.audio_input import DemoInput, FileInput, demo_pattern, load_audio_file, open_input

ROOT = Path(__file__).resolve().parents[1]


def write_ramp_wav(path, *, sr, seconds, channels=1):
    n = int(sr * seconds)
    # A known, non-repeating signal so we can check every delivered sample.
    mono = (np.arange(n) % 1000 / 1000.0 - 0.5).astype(np.float32)
    data = np.repeat(mono[:, None], channels, axis=1)
    sf.write(path, data, sr, subtype="FLOAT")
    return mono


def drain(src, timeout_s):
    got = []
    t_end = time.perf_counter() + timeout_s
    while time.perf_counter() < t_end:
        got.append(src.ring.read_available())
        if src.finished.is_set() and src.ring.available() == 0:
            break
        time.sleep(0.005)
    return np.concatenate(got)


@pytest.mark.slow
def test_file_input_plays_in_real_time(tmp_path):
    path = tmp_path / "one_second.wav"
    mono = write_ramp_wav(path, sr=16000, seconds=1.0, channels=2)
    src = FileInput(path, block=256)
    assert src.sr == 16000
    t0 = time.perf_counter()
    src.start()
    # Half way through, about half the file has been delivered, not all of it: delivery keeps to
    # the clock (never ahead of it by more than a block; behind it only under load).
    time.sleep(0.5)
    now_s = time.perf_counter() - t0
    assert now_s - 0.3 < src.stream_time_s() < now_s + 256 / 16000 + 0.01 and src.stream_time_s() < 0.9
    got = drain(src, timeout_s=3.0)
    elapsed = time.perf_counter() - t0
    src.stop()
    assert src.finished.is_set()
    assert 0.95 < elapsed < 3.0  # a 1-s file never plays faster; a loaded machine may add a little
    np.testing.assert_allclose(got, mono, atol=1e-6)  # stereo mixdown of equal channels
    assert src.blocks == int(np.ceil(16000 / 256))
    assert src.dropped == 0
    # The ring's wall-clock mapping follows the clock that paced it.
    assert src.ring.perf_time_of(1.0) == pytest.approx(t0 + 1.0, abs=0.1)


def test_file_input_not_realtime_follows_the_consumer_without_loss(tmp_path):
    path = tmp_path / "ramp.wav"
    mono = write_ramp_wav(path, sr=8000, seconds=5.0)
    # Ring of 1 s; the file is 5 s: a non-realtime source must wait for the reader.
    src = FileInput(path, block=200, realtime=False, ring_s=1.0)
    src.start()
    got = drain(src, timeout_s=10.0)
    src.stop()
    np.testing.assert_array_equal(got, mono)
    assert src.ring.overflow_samples == 0


def test_file_input_loops(tmp_path):
    path = tmp_path / "short.wav"
    mono = write_ramp_wav(path, sr=8000, seconds=0.1)
    src = FileInput(path, block=100, realtime=False, loop=True, ring_s=1.0)
    src.start()
    time.sleep(0.05)
    got = src.ring.read(1600)
    src.stop()
    assert not src.finished.is_set()
    np.testing.assert_array_equal(got, np.tile(mono, 2))


def test_file_input_resamples(tmp_path):
    path = tmp_path / "sine.wav"
    sr = 22050
    t = np.arange(sr) / sr
    sf.write(path, np.sin(2 * np.pi * 440 * t).astype(np.float32), sr)
    src = FileInput(path, sr=16000, realtime=False, ring_s=2.0)
    assert src.sr == 16000 and src.duration_s == 1.0
    src.start()
    got = drain(src, timeout_s=5.0)
    src.stop()
    assert got.shape[0] == 16000
    spectrum = np.abs(np.fft.rfft(got))
    assert np.argmax(spectrum) == pytest.approx(440, abs=1)  # 1 Hz bins for a 1 s signal
    # Streamed through soxr's HQ filter in blocks: the same signal as resampling the decoded file whole.
    whole, _ = load_audio_file(path, sr=16000)
    np.testing.assert_allclose(got, whole, atol=2e-3)


def test_file_input_streams_from_disk_instead_of_holding_the_file(tmp_path):
    # A long set is not decoded into memory: the source holds about one read of it.
    path = tmp_path / "long.wav"
    mono = write_ramp_wav(path, sr=8000, seconds=60.0)
    src = FileInput(path, block=256, realtime=False, ring_s=1.0)
    assert src.duration_s == 60.0
    assert not hasattr(src.samples, "audio")
    blocks = [src._next_block() for _ in range(3)]
    np.testing.assert_array_equal(np.concatenate(blocks), mono[:768])
    assert src.samples._pending.nbytes < 64 * 1024


def test_demo_pattern_is_deterministic_with_hits_where_stated():
    a, hits = demo_pattern(sr=16000)
    b, hits_b = demo_pattern(sr=16000)
    np.testing.assert_array_equal(a, b)
    assert hits == hits_b
    assert a.shape[0] == 16000 * 8  # four bars at 120 BPM
    kinds = [k for _, k in hits]
    assert kinds[:8] == ["kick", "hat", "snare", "hat", "kick", "hat", "snare", "hat"]
    assert [t for t, _ in hits[:3]] == [0.0, 0.25, 0.5]
    # Every kick and snare is a jump in energy: loud just after, quiet just before.
    win = 400  # 25 ms
    for t, kind in hits:
        if kind == "hat" or t == 0:
            continue
        i = int(t * 16000)
        before = np.sqrt(np.mean(a[i - win:i] ** 2))
        after = np.sqrt(np.mean(a[i:i + win] ** 2))
        assert after > 4 * before, (t, kind, before, after)


def test_demo_input_delivers_the_pattern():
    src = DemoInput(sr=16000, realtime=False, ring_s=2.0)
    audio, _ = demo_pattern(sr=16000)
    src.start()
    time.sleep(0.05)
    got = src.ring.read(16000)
    src.stop()
    np.testing.assert_array_equal(got, audio[:16000])


def test_open_input_dispatch_and_errors(tmp_path):
    assert isinstance(open_input("demo", realtime=False), DemoInput)
    path = tmp_path / "x.wav"
    write_ramp_wav(path, sr=8000, seconds=0.1)
    assert isinstance(open_input(str(path)), FileInput)
    with pytest.raises(InputError, match="not found.*missing.wav"):
        open_input(str(tmp_path / "missing.wav"))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"this is not audio")
    with pytest.raises(InputError, match="cannot read audio file.*bad.wav.*Supported"):
        open_input(str(bad))


class _FakeSoundDevice(SimpleNamespace):
    """sounddevice with one 2-channel 48 kHz input that refuses to open (the hardware's answer, faked)."""

    class PortAudioError(Exception):
        pass

    def __init__(self):
        super().__init__()
        self.query_devices = lambda index, kind: {"name": "USB Mic", "hostapi": 0, "max_input_channels": 2,
                                                  "default_samplerate": 48000.0}
        self.query_hostapis = lambda index: {"name": "ALSA"}

    def InputStream(self, **kwargs):  # noqa: N802 - sounddevice's name
        raise self.PortAudioError("Invalid sample rate")


def test_device_errors_name_the_fix_that_exists(monkeypatch):
    import live.devices
    from core.errors import DeviceError
    from live.audio_input import SoundDeviceInput
    from live.devices import InputDevice

    monkeypatch.setitem(sys.modules, "sounddevice", _FakeSoundDevice())
    monkeypatch.setattr(live.devices, "list_input_devices",
                        lambda: [InputDevice(3, "USB Mic", "ALSA", 2, 48000.0, True)])
    with pytest.raises(DeviceError, match=r"has 2 input channels, asked for 4; open it with channels=1\.\.2$"):
        SoundDeviceInput(3, channels=4)
    with pytest.raises(DeviceError) as exc:
        SoundDeviceInput(3)  # the CLI's call: default rate, default channels
    msg = str(exc.value)
    assert "at 48000 Hz" in msg and "another --block" in msg and "--input INDEX" in msg and "sr=" not in msg
    with pytest.raises(DeviceError, match=r"at 44100 Hz.*try sr=48000 \(its default rate\), another --block"):
        SoundDeviceInput(3, sr=44100)


JACK_SCRIPT = r"""
import json, sys, time
import numpy as np
from live.audio_input import open_input, SoundDeviceInput
src = open_input("system jack", block=256)
assert isinstance(src, SoundDeviceInput), type(src)
src.start()
t0 = time.perf_counter()
time.sleep(1.0)
elapsed = time.perf_counter() - t0
latest = src.ring.latest(256)
print(json.dumps({"device": src.device_name, "sr": src.sr, "blocks": src.blocks,
                  "stream_time_s": src.stream_time_s(), "elapsed_s": elapsed,
                  "input_overflows": src.counters["input_overflows"],
                  "ring_overflow": src.ring.overflow_samples, "finite": bool(np.isfinite(latest).all())}))
src.stop()
"""


@pytest.fixture
def jack_server():
    """A private JACK dummy server (no sound card) for the duration of a test."""
    if shutil.which("jackd") is None:
        pytest.skip("jackd not installed (Debian: apt-get install jackd2)")
    name = f"m2v-test-{os.getpid()}"
    env = dict(os.environ, JACK_DEFAULT_SERVER=name, JACK_NO_AUDIO_RESERVATION="1")
    proc = subprocess.Popen(["jackd", "--no-realtime", "-n", name, "-d", "dummy", "-r", "48000", "-p", "256"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(1.0)
    if proc.poll() is not None:
        out = proc.stdout.read().decode(errors="replace")
        pytest.skip(f"jackd could not start a dummy server here: {out[-300:]}")
    try:
        yield SimpleNamespace(env=env, proc=proc)
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.mark.jack
@pytest.mark.slow
def test_capture_through_sounddevice_on_a_jack_dummy_server(jack_server):
    res = subprocess.run([sys.executable, "-c", JACK_SCRIPT], cwd=ROOT, env=jack_server.env,
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    stats = json.loads(res.stdout.strip().splitlines()[-1])
    assert "JACK" in stats["device"]
    assert stats["sr"] == 48000
    # 1 s at 48 kHz in blocks of 256 is ~187 callbacks; the dummy driver keeps real time.
    assert 120 < stats["blocks"] < 260
    assert stats["stream_time_s"] == pytest.approx(stats["blocks"] * 256 / 48000)
    assert stats["stream_time_s"] == pytest.approx(stats["elapsed_s"], abs=0.25)
    assert stats["ring_overflow"] == 0 and stats["finite"]
    # A dummy server without real-time scheduling on a loaded 2-core box may xrun
    # a few times while starting; those are counted, and must stay rare.
    assert stats["input_overflows"] <= 0.05 * stats["blocks"], stats


PLAY_SCRIPT = r"""
import json, sys, time
import numpy as np
from live.audio_input import FileInput, load_audio_file
src = FileInput(sys.argv[1], play="system jack", block=256)
t0 = time.perf_counter()
src.start()
src.finished.wait(5.0)
elapsed = time.perf_counter() - t0
got = src.ring.read_available()
src.stop()
ref = load_audio_file(sys.argv[1])[0]
print(json.dumps({"elapsed_s": elapsed, "finished": src.finished.is_set(), "n": int(got.size),
                  "same": bool(np.array_equal(got[:ref.size], ref)), "blocks": src.blocks}))
"""


@pytest.mark.jack
@pytest.mark.slow
def test_audible_file_playback_is_paced_by_the_output_device(jack_server, tmp_path):
    path = tmp_path / "one_second.wav"
    write_ramp_wav(path, sr=48000, seconds=1.0)
    res = subprocess.run([sys.executable, "-c", PLAY_SCRIPT, str(path)], cwd=ROOT, env=jack_server.env,
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    stats = json.loads(res.stdout.strip().splitlines()[-1])
    assert stats["finished"] and stats["same"]
    assert stats["n"] == 48000 and stats["blocks"] == int(np.ceil(48000 / 256))
    assert 0.9 < stats["elapsed_s"] < 3.0


VANISH_SCRIPT = r"""
import json, sys, time
from live.audio_input import open_input
src = open_input("system jack", block=256)
src.start()
time.sleep(0.3)
print("capturing", flush=True)
sys.stdin.readline()  # the test stops the JACK server now
t0 = time.perf_counter()
while src.check() is None or src.error is None:
    if time.perf_counter() - t0 > 5:
        break
    time.sleep(0.05)
src.stop()
print(json.dumps({"error": type(src.error).__name__, "hud": src.check(), "after_s": time.perf_counter() - t0}))
"""


@pytest.mark.jack
@pytest.mark.slow
def test_vanished_device_is_a_device_error_and_stop_does_not_hang(jack_server):
    proc = subprocess.Popen([sys.executable, "-c", VANISH_SCRIPT], cwd=ROOT, env=jack_server.env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "capturing"
        jack_server.proc.terminate()
        jack_server.proc.wait(5)
        out, err = proc.communicate("go\n", timeout=20)  # would time out if exit hung in PortAudio
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    res = json.loads(out.strip().splitlines()[-1])
    assert res["error"] == "DeviceError" and res["after_s"] < 3
    assert res["hud"].startswith("audio: audio input system") and "--input FILE" in res["hud"]


def test_sections_input_plays_the_toy_sections():
    from core.toyworld import SOUND_CONCEPTS, render_sections
    from live.audio_input import SECTIONS, SectionsInput

    src = open_input("sections", sr=16000, realtime=False)
    assert isinstance(src, SectionsInput)
    assert [k for _, _, k in src.spans] == [k for k, _ in SECTIONS] and src.loop_s == pytest.approx(24.0)
    assert all(k in SOUND_CONCEPTS for k, _ in SECTIONS)
    audio, _ = render_sections(list(SECTIONS), sr=16000, seed=0)
    src.start()
    time.sleep(0.05)
    got = src.ring.read(16000)
    src.stop()
    np.testing.assert_array_equal(got, audio[:16000])

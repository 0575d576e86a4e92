"""Audio input stage: a sound card, a file played in real time, or a built-in demo beat.

Every source delivers mono float32 blocks into a preallocated
:class:`core.ringbuffer.RingBuffer` (``source.ring``) that one consumer (the
feature worker) drains.  Stream time is the sample count over ``sr``; for a
file it is the file's own timeline, so onsets and latency can be checked
against it.  Usage::

    src = open_input("demo")            # or "song.wav", "3", "scarlett", "system jack"
    src.start()
    ...  block = src.ring.read(512)      # feature worker
    ...  line = src.check()              # main loop: warning/error line for the HUD, or None
    src.stop()

Counters (``src.counters``): ``blocks`` delivered, ``input_overflows`` (the
driver lost input), ring overflow via ``src.ring.overflow_samples``;
``src.dropped`` sums both in blocks.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from pathlib import Path

import numpy as np

from core.errors import DeviceError
from core.ringbuffer import RingBuffer
from live.stage import Stage

log = logging.getLogger(__name__)

DEFAULT_BLOCK = 256  # 5.3 ms at 48 kHz: one analysis hop per block, the lowest onset latency
NO_INPUT_S = 2.0  # a gap this long shows "no input" on the HUD
DEFAULT_RING_S = 8.0  # holds the longest recent-audio window the embedder asks for, with room
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff", ".opus", ".m4a")


class AudioSource(Stage):
    """Common surface of the three sources: ``sr``, ``ring``, ``start/stop``, counters."""

    name = "audio-input"

    def __init__(self, *, sr: int, block: int, ring_s: float) -> None:
        super().__init__()
        if block <= 0:
            raise ValueError(f"block must be > 0 samples, got {block}")
        self.sr = int(sr)
        self.block = int(block)
        self.ring = RingBuffer(capacity=max(int(ring_s * sr), 4 * block), sr=self.sr)
        self.finished = threading.Event()  # set when a non-looping file has been fully delivered
        self.counters["blocks"] = 0
        self.counters["input_overflows"] = 0
        self._warned_overflows = 0
        self._warned_gap = False

    @property
    def blocks(self) -> int:
        return int(self.counters["blocks"])

    @property
    def dropped(self) -> int:
        """Blocks lost: driver input overflows plus ring overflow (consumer too slow), in blocks."""
        return int(self.counters["input_overflows"]) + math.ceil(self.ring.overflow_samples / self.block)

    def stream_time_s(self) -> float:
        """Seconds of audio delivered so far (the stream time of the newest sample)."""
        return self.ring.stream_time_s()

    def input_gap_s(self) -> float:
        """Seconds since the newest block arrived (0 before the first one and after the input finished)."""
        last = self.ring.last_write_perf_s
        if last is None or self.finished.is_set() or self.stopping.is_set():
            return 0.0
        return max(0.0, time.perf_counter() - last)

    def check(self) -> str | None:
        """Call from the main loop: logs new problems once and returns a HUD line (or None).

        Nothing here ends the show: a gap in the input (a cable pulled, a stalled
        driver) reads "no input" until blocks arrive again.
        """
        if self.error is not None:
            return f"audio: {self.error}"
        gap = self.input_gap_s()
        if gap > NO_INPUT_S:
            if not self._warned_gap:
                log.warning("no audio input for %.1f s; the picture goes on", gap)
            self._warned_gap = True
            return f"audio: no input for {gap:.0f} s"
        self._warned_gap = False
        n = int(self.counters["input_overflows"])
        if n > self._warned_overflows:
            log.warning("audio input overflow (%d so far): the driver lost input; "
                        "raise the block size (--block) or close other audio programs", n)
            self._warned_overflows = n
        if self.ring.overflow_samples:
            return f"audio: {self.dropped} blocks dropped (analysis too slow)"
        if n:
            return f"audio: {n} input overflows - raise the block size"
        return None


# --- sound card -----------------------------------------------------------------


class SoundDeviceInput(AudioSource):
    """Capture from a PortAudio device (ALSA, JACK, PulseAudio/PipeWire) through sounddevice.

    Args:
        device: index, name words (see :func:`live.devices.find_input_device`) or None for the default.
        sr: sample rate in Hz (default: the device's default rate).
        block: frames per callback.
        channels: channels to open (default: up to 2); mixed down to mono in the callback.
        ring_s: seconds of audio the ring buffer keeps.

    Raises:
        DeviceError: the device does not exist, has no inputs, or refuses the settings.
    """

    name = "audio-input"

    def __init__(self, device: int | str | None = None, *, sr: int | None = None,
                 block: int = DEFAULT_BLOCK, channels: int | None = None,
                 ring_s: float = DEFAULT_RING_S) -> None:
        import sounddevice as sd

        from live.devices import find_input_device, host_api_names, list_input_devices, no_devices_message

        devices = list_input_devices()
        if not devices:
            raise DeviceError(no_devices_message(host_api_names()))
        index = find_input_device(device, devices)
        try:
            info = sd.query_devices(index, "input")
        except (ValueError, sd.PortAudioError) as exc:
            raise DeviceError(f"no default audio input device ({exc}); "
                              "pick one with --input INDEX (see `m2v devices`)") from exc
        self.device_name = f"{info['name']} ({sd.query_hostapis(info['hostapi'])['name']})"
        max_ch = int(info["max_input_channels"])
        channels = min(2, max_ch) if channels is None else channels
        if not 1 <= channels <= max_ch:
            raise DeviceError(f"{self.device_name} has {max_ch} input channels, asked for {channels}; "
                              f"open it with channels=1..{max_ch}")
        default_sr = int(info["default_samplerate"])
        sr_hint = f"sr={default_sr} (its default rate), " if sr is not None and int(sr) != default_sr else ""
        sr = default_sr if sr is None else int(sr)
        super().__init__(sr=sr, block=block, ring_s=ring_s)
        self.channels = channels
        self._mono = np.zeros(block, dtype=np.float32)
        self._started_perf_s = 0.0
        try:
            self._stream = sd.InputStream(
                device=index, samplerate=sr, blocksize=block, channels=channels, dtype="float32",
                latency="low", callback=self._callback, finished_callback=self._finished,
            )
        except (sd.PortAudioError, ValueError) as exc:
            raise DeviceError(f"cannot open {self.device_name} at {sr} Hz, {channels} ch, block {block}: "
                              f"{exc}; try {sr_hint}another --block, or another device "
                              "(--input INDEX, see `m2v devices`)") from exc

    def _callback(self, indata, frames, time_info, status) -> None:  # PortAudio's thread
        # Copy only: no logging, no locks, no arrays allocated (a view is not a copy).
        if status.input_overflow:
            self.counters["input_overflows"] += 1
        if self.channels == 1:
            self.ring.write(indata[:, 0])
        elif frames <= self._mono.shape[0]:
            mono = self._mono[:frames]
            np.mean(indata, axis=1, out=mono)
            self.ring.write(mono)
        else:  # variable block sizes from some hosts: rare, allocation is the lesser evil
            self.ring.write(indata.mean(axis=1))
        self.counters["blocks"] += 1

    def _finished(self) -> None:
        if not self.stopping.is_set():
            self.error = DeviceError(f"audio input {self.device_name} stopped (unplugged, or taken by "
                                     "another program?); check it and restart, or use --input FILE")

    def start(self) -> None:
        self._started_perf_s = time.perf_counter()
        try:
            self._stream.start()
        except Exception as exc:  # sounddevice raises PortAudioError
            raise DeviceError(f"cannot start {self.device_name}: {exc}") from exc

    def stop(self, timeout_s: float = 5.0) -> None:
        self.stopping.set()
        if self._stream.active:
            try:
                self._stream.stop()
            finally:
                self._stream.close()
        elif self._started_perf_s and not self._stream.stopped:
            # The device vanished under a running stream (e.g. the JACK server quit):
            # PortAudio hangs closing it, here and in Pa_Terminate at exit, so leave
            # the handle to the OS and skip sounddevice's exit handler.
            import atexit

            import sounddevice as sd

            log.warning("not closing %s: it went away while running", self.device_name)
            atexit.unregister(sd._exit_handler)
        else:
            self._stream.close()

    @property
    def alive(self) -> bool:
        return bool(self._stream.active)

    def check(self) -> str | None:
        # A device that vanishes without PortAudio noticing just goes quiet: the base class's
        # gap check shows "no input" on the HUD until blocks come again.
        if self.error is None and self._started_perf_s and not self.stopping.is_set() \
                and not self._stream.active:
            self._finished()
        return super().check()


# --- files and the demo beat, paced by the clock ----------------------------------


class _ArraySamples:
    """An in-memory mono signal, read block by block (the demo beat, the sections, decoded files)."""

    def __init__(self, audio: np.ndarray, sr: int) -> None:
        self.audio = np.ascontiguousarray(audio, dtype=np.float32)
        self.sr = sr
        self.frames = self.audio.shape[0]
        self._pos = 0

    def read(self, n: int) -> np.ndarray:
        blk = self.audio[self._pos:self._pos + n]
        self._pos += blk.shape[0]
        return blk

    def rewind(self) -> None:
        self._pos = 0

    def close(self) -> None:
        pass


class _FileSamples:
    """A sound file read from disk as it plays, mixed to mono and resampled on the way.

    A 2-hour set decoded whole would hold 1.4 GB of float32 (48 kHz mono) for
    the show; this holds one read of the file.  Raises whatever libsndfile
    raises when it cannot open the file (the caller falls back to decoding it).
    """

    def __init__(self, path: Path, sr: int | None) -> None:
        import soundfile as sf

        self._f = sf.SoundFile(str(path))
        self.file_sr = int(self._f.samplerate)
        self.sr = int(sr or self.file_sr)
        self.frames = int(round(self._f.frames * self.sr / self.file_sr))
        self._chunk = max(4096, int(math.ceil(DEFAULT_BLOCK * self.file_sr / self.sr)))
        self.rewind()

    def rewind(self) -> None:
        import soxr

        self._f.seek(0)
        self._eof = False
        self._pending = np.zeros(0, np.float32)
        # The same HQ soxr filter core.audio_io.resample uses for a whole file, as a stream.
        self._rs = None if self.sr == self.file_sr else soxr.ResampleStream(self.file_sr, self.sr, 1,
                                                                               dtype="float32", quality="HQ")

    def read(self, n: int) -> np.ndarray:
        while self._pending.shape[0] < n and not self._eof:
            x = self._f.read(self._chunk, dtype="float32", always_2d=True).mean(axis=1)
            self._eof = x.shape[0] < self._chunk
            if self._rs is not None:
                x = self._rs.resample_chunk(x, last=self._eof)
            self._pending = np.concatenate([self._pending, x.astype(np.float32, copy=False)])
        blk, self._pending = self._pending[:n], self._pending[n:]
        return blk

    def close(self) -> None:
        self._f.close()


class _ClockedSource(AudioSource):
    """Delivers a mono signal (in memory, or a file streamed from disk) block by block, as a sound card would."""

    def __init__(self, audio: np.ndarray | _ArraySamples | _FileSamples, *, sr: int, block: int, loop: bool,
                 realtime: bool, play: int | str | None, ring_s: float) -> None:
        super().__init__(sr=sr, block=block, ring_s=ring_s)
        self.samples = audio if isinstance(audio, (_ArraySamples, _FileSamples)) else _ArraySamples(audio, sr)
        self.loop = loop
        self.realtime = realtime
        self.play = play
        self._out = None

    @property
    def duration_s(self) -> float:
        return self.samples.frames / self.sr

    def _next_block(self) -> np.ndarray | None:
        blk = self.samples.read(self.block)
        if blk.shape[0] == 0:
            if not self.loop or self.samples.frames == 0:
                self.finished.set()
                return None
            self.samples.rewind()
            blk = self.samples.read(self.block)
        return blk

    def start(self) -> None:
        if self.play is not None:
            self._start_playback()
        else:
            super().start()

    def run(self) -> None:
        t0 = time.perf_counter()
        delivered = 0
        while not self.stopping.is_set():
            if self.realtime:
                due = t0 + (delivered + self.block) / self.sr
                wait = due - time.perf_counter()
                if wait > 0 and self.stopping.wait(wait):
                    break
            elif self.ring.capacity - self.ring.available() < self.block:
                time.sleep(0.001)  # as fast as the consumer reads, never overwriting
                continue
            blk = self._next_block()
            if blk is None:
                break
            delivered += blk.shape[0]
            self.ring.write(blk, perf_s=t0 + delivered / self.sr if self.realtime else None)
            self.counters["blocks"] += 1

    def _start_playback(self) -> None:
        """Audible rehearsal: the output device's clock paces delivery."""
        import sounddevice as sd

        from live.devices import find_output_device

        index = find_output_device(self.play)

        def callback(outdata, frames, time_info, status) -> None:
            if status.output_underflow:
                self.counters["output_underflows"] += 1
            blk = self._next_block()
            if blk is None:
                outdata.fill(0)
                raise sd.CallbackStop
            k = blk.shape[0]
            outdata[:k] = blk[:, None]
            outdata[k:] = 0
            self.ring.write(blk)
            self.counters["blocks"] += 1

        try:
            self._out = sd.OutputStream(device=index, samplerate=self.sr, blocksize=self.block,
                                        channels=1, dtype="float32", callback=callback,
                                        finished_callback=self.finished.set)
            self._out.start()
        except (sd.PortAudioError, ValueError) as exc:
            raise DeviceError(f"cannot play on output device {self.play!r} at {self.sr} Hz: {exc}; "
                              "pick another with --play INDEX or leave playback off") from exc

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._out is not None:
            self.stopping.set()
            self._out.stop()
            self._out.close()
        else:
            super().stop(timeout_s)
        if not self.alive:
            self.samples.close()

    @property
    def alive(self) -> bool:
        if self._out is not None:
            return bool(self._out.active)
        return super().alive


def load_audio_file(path: str | os.PathLike, *, sr: int | None = None) -> tuple[np.ndarray, int]:
    """Read ``path`` as mono float32, resampled to ``sr`` if given (see core.audio_io.load_audio).

    Raises:
        InputError: the file is missing or not a readable audio file.
    """
    from core.audio_io import load_audio

    y, file_sr = load_audio(path, sr=sr, mono=True)
    return np.ascontiguousarray(y, dtype=np.float32), int(file_sr)


def _stream_or_decode(path: Path, sr: int | None) -> _FileSamples | _ArraySamples:
    """Stream what libsndfile reads (WAV, FLAC, OGG, MP3, AIFF...); decode the rest whole (audioread)."""
    from core.audio_io import check_rate

    check_rate(sr)
    if path.is_file():
        try:
            samples = _FileSamples(path, sr)
        except Exception as exc:  # noqa: BLE001 - libsndfile's own error types; the decoder below explains
            log.debug("streaming %s failed (%s); decoding it whole", path, exc)
        else:
            if samples.frames > 0:
                return samples
            samples.close()
    audio, file_sr = load_audio_file(path, sr=sr)  # raises the error that names the fix
    return _ArraySamples(audio, file_sr)


class FileInput(_ClockedSource):
    """Plays an audio file into the ring at its real rate, so a show can be rehearsed with no sound card.

    Args:
        path: audio file (any format libsndfile reads).
        sr: resample to this rate in Hz (default: the file's).
        block: samples per delivered block.
        realtime: pace by the clock (True) or as fast as the consumer drains (False, tests/offline).
        loop: start again at the end instead of finishing.
        play: output device (index or name) to make it audible; its clock then paces delivery.
    """

    name = "file-input"

    def __init__(self, path: str | os.PathLike, *, sr: int | None = None, block: int = DEFAULT_BLOCK,
                 realtime: bool = True, loop: bool = False, play: int | str | None = None,
                 ring_s: float = DEFAULT_RING_S) -> None:
        self.path = Path(path).expanduser()
        samples = _stream_or_decode(self.path, sr)
        super().__init__(samples, sr=samples.sr, block=block, loop=loop, realtime=realtime, play=play, ring_s=ring_s)


DEMO_BPM = 120.0


def demo_pattern(*, sr: int, bpm: float = DEMO_BPM, bars: int = 4,
                 seed: int = 0) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """The demo beat (:func:`core.synth.drum_loop`): kick on 1 and 3, snare on 2 and 4, hats between."""
    from core.synth import drum_loop

    return drum_loop(sr=sr, bpm=bpm, bars=bars, seed=seed)


class DemoInput(_ClockedSource):
    """The built-in 120 BPM demo beat, looped forever, paced by the clock.

    ``hits`` lists the first loop's ``(time_s, kind)``; loop ``k`` adds ``k * loop_s``.
    """

    name = "demo-input"

    def __init__(self, *, sr: int = 48000, block: int = DEFAULT_BLOCK, realtime: bool = True,
                 play: int | str | None = None, ring_s: float = DEFAULT_RING_S) -> None:
        audio, self.hits = demo_pattern(sr=sr)
        self.loop_s = audio.shape[0] / sr
        super().__init__(audio, sr=sr, block=block, loop=True, realtime=realtime, play=play,
                         ring_s=ring_s)


#: ``--input sections``: toy-world sound classes, one per section (see core.toyworld.SOUND_CONCEPTS).
SECTIONS = (("kick", 6.0), ("chord", 6.0), ("bass", 6.0), ("hihat", 6.0))


class SectionsInput(_ClockedSource):
    """Built-in sections of the toy world's synth sounds (kick, chord, bass, hi-hat; 6 s each), looped.

    With ``--models toy`` each section has a known picture (a red circle, a pink
    square, blue rings, cyan stripes), so the picture visibly follows the music.
    ``spans`` lists the first loop's ``(start_s, end_s, kind)``.
    """

    name = "sections-input"

    def __init__(self, *, sr: int = 44_100, block: int = DEFAULT_BLOCK, realtime: bool = True,
                 play: int | str | None = None, ring_s: float = DEFAULT_RING_S) -> None:
        from core.toyworld import render_sections

        audio, self.spans = render_sections(list(SECTIONS), sr=sr, seed=0)
        self.loop_s = audio.shape[0] / sr
        super().__init__(audio, sr=sr, block=block, loop=True, realtime=realtime, play=play, ring_s=ring_s)


def open_input(spec: str | int | None, *, sr: int | None = None, block: int = DEFAULT_BLOCK,
               channels: int | None = None, realtime: bool = True, loop: bool = False,
               play: int | str | None = None, ring_s: float = DEFAULT_RING_S) -> AudioSource:
    """Build the source ``--input`` names: ``"demo"``, ``"sections"``, an audio file, a device index or name words.

    None means the default input device.  Raises InputError / DeviceError with the fix.
    """
    if isinstance(spec, str):
        s = spec.strip()
        if s.lower() == "demo":
            return DemoInput(sr=sr or 48000, block=block, realtime=realtime, play=play, ring_s=ring_s)
        if s.lower() == "sections":
            return SectionsInput(sr=sr or 44_100, block=block, realtime=realtime, play=play, ring_s=ring_s)
        looks_like_path = os.sep in s or s.lower().endswith(AUDIO_SUFFIXES) or Path(s).is_file()
        if looks_like_path:
            return FileInput(s, sr=sr, block=block, realtime=realtime, loop=loop, play=play, ring_s=ring_s)
    return SoundDeviceInput(spec, sr=sr, block=block, channels=channels, ring_s=ring_s)

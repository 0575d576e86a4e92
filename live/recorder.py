"""Recorder stage: the shown frames at a constant frame rate plus the captured audio, in sync.

H.264 + AAC through PyAV, in a container that stays playable if the process
dies: fragmented MP4 (a fragment per keyframe, one per ``keyframe_s``) or
Matroska.  The show never waits for it: :meth:`Recorder.write_frame` and
:meth:`Recorder.write_audio` only put into drop-oldest queues (drops are
counted) and never raise.  A full disk stops the recording and leaves
``recorder.error`` / :meth:`Recorder.check` for the HUD.

Timing: every frame and audio block carries its stream time.  Output frame
``n`` is the newest frame shown at or before ``start_s + n / fps`` (frames are
duplicated or skipped to keep the rate), and audio sample ``k`` is the stream
sample at ``start_s + k / sr`` (gaps become silence), so picture and sound stay
in sync whatever the display rate.  Usage::

    rec = Recorder("show.mp4", fps=30, sr=src.sr)
    rec.start()
    rec.write_frame(shown_frame, t_s=stream_time)    # display loop, every presented frame
    rec.write_audio(block, t_s=block_start_time)     # feature worker, every block it reads
    line = rec.check()                               # HUD: None or an error line
    rec.stop()                                       # finalize (also on SIGINT/SIGTERM)
"""

from __future__ import annotations

import errno
import logging
import math
import os
from pathlib import Path

import numpy as np

from core.errors import OutputError
from live.stage import DropOldestQueue, Stage

log = logging.getLogger(__name__)

_EPS_S = 1e-6  # a frame shown exactly at a slot time belongs to that slot
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mp4", ".mkv": "matroska"}


class Recorder(Stage):
    """Encodes shown frames and audio to ``path`` on its own thread.

    Args:
        path: output file; ``.mp4`` (fragmented) or ``.mkv``.
        fps: constant output frame rate.
        sr: audio sample rate in Hz; None records video only.
        audio_channels: channels of the blocks given to :meth:`write_audio` (1 or 2).
        crf: x264 quality (lower is better; 18-23 is usual).
        preset: x264 speed preset; fast ones leave CPU to the optimizer.
        keyframe_s: seconds between keyframes, which bounds what a crash loses.
        start_s: stream time of output time 0 (default: the first frame's or block's time).
        queue_s: seconds of frames buffered before the oldest are dropped.
        threads: encoder threads.

    Raises:
        OutputError: the path cannot be written or has an unknown extension.
    """

    name = "recorder"

    def __init__(self, path: str | os.PathLike, *, fps: float = 30.0, sr: int | None = None,
                 audio_channels: int = 1, crf: int = 20, preset: str = "veryfast",
                 keyframe_s: float = 1.0, start_s: float | None = None, queue_s: float = 2.0,
                 audio_bitrate: int = 160_000, threads: int = 2) -> None:
        super().__init__()
        import av

        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in CONTAINERS:
            raise OutputError(f"cannot record to {str(self.path)!r}: unknown extension {suffix!r}; "
                              f"use one of {', '.join(sorted(CONTAINERS))}")
        if fps <= 0:
            raise OutputError(f"recording fps must be > 0, got {fps}")
        if audio_channels not in (1, 2):
            raise OutputError(f"audio_channels must be 1 or 2, got {audio_channels}")
        self.fps = float(fps)
        self.sr = sr
        self.audio_channels = audio_channels
        self._crf, self._preset, self._threads = crf, preset, threads
        self._gop = max(1, int(round(keyframe_s * fps)))
        self._audio_bitrate = audio_bitrate
        self._origin_s = start_s
        fmt = CONTAINERS[suffix]
        # Fragmented MP4: a self-contained fragment per keyframe; flush_packets pushes
        # each one to the file at once, so a killed process loses at most ~keyframe_s.
        # avoid_negative_ts=disabled keeps video frame n at exactly n/fps; otherwise the
        # muxer shifts the video by AAC's 1024-sample priming and the first frame lasts longer.
        options = {"flush_packets": "1", "avoid_negative_ts": "disabled"}
        if fmt == "mp4":
            options["movflags"] = "frag_keyframe+empty_moov+default_base_moof"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self.path), "w", format=fmt, options=options)
        except (OSError, av.FFmpegError) as exc:
            raise OutputError(f"cannot record to {str(self.path)!r}: {exc}; "
                              "check the folder exists and is writable") from exc
        self._frames: DropOldestQueue[tuple[float, np.ndarray]] = DropOldestQueue(max(2, math.ceil(queue_s * fps)))
        self._audio: DropOldestQueue[tuple[float | None, np.ndarray]] = DropOldestQueue(4096)
        self._vstream = None
        self._astream = None
        self._size: tuple[int, int] | None = None  # (width, height), fixed by the first frame
        self._pending_audio: list[tuple[float | None, np.ndarray]] = []
        self._current = None  # av.VideoFrame of the newest frame not yet past its slot
        self._current_used = False
        self._last_frame_rel_s: float | None = None
        self._n = 0  # next output frame index
        self._audio_samples = 0  # audio samples encoded (after alignment)
        self.failed = False
        for key in ("frames_in", "frames_written", "frames_duplicated", "frames_skipped",
                    "frames_dropped", "audio_blocks", "audio_gap_samples", "audio_dropped"):
            self.counters[key] = 0

    # --- called by the show (any thread); never block, never raise -------------------

    def write_frame(self, frame: np.ndarray, t_s: float) -> None:
        """Queue a shown HxWx3 uint8 frame (copied) presented at stream time ``t_s``."""
        if self.failed or self.stopping.is_set():
            return
        if self._origin_s is None:
            self._origin_s = t_s
        before = self._frames.dropped
        self._frames.put((t_s, np.array(frame, dtype=np.uint8, copy=True)))
        self.counters["frames_dropped"] += self._frames.dropped - before

    def write_audio(self, block: np.ndarray, t_s: float | None = None) -> None:
        """Queue an audio block (n,) or (n, channels) whose first sample is at stream time ``t_s``.

        With ``t_s=None`` the block follows the previous one directly.
        """
        if self.failed or self.stopping.is_set() or self.sr is None:
            return
        if self._origin_s is None and t_s is not None:
            self._origin_s = t_s
        before = self._audio.dropped
        self._audio.put((t_s, np.array(block, dtype=np.float32, copy=True)))
        self.counters["audio_dropped"] += self._audio.dropped - before

    def check(self) -> str | None:
        """A line for the HUD when recording failed, else None."""
        return None if self.error is None else f"REC stopped: {self.error}"

    @property
    def frames(self) -> int:
        return int(self.counters["frames_written"])

    @property
    def dropped(self) -> int:
        return int(self.counters["frames_dropped"])

    # --- the encoder thread ---------------------------------------------------------

    def run(self) -> None:
        try:
            while True:
                stopping = self.stopping.is_set()
                frames = self._frames.get_all(timeout_s=0.0 if stopping else 0.02)
                audio = self._audio.get_all()
                for t_s, block in audio:
                    self._push_audio(t_s, block)
                for t_s, frame in frames:
                    self._push_frame(t_s, frame)
                if stopping and not frames and not audio:
                    break
            self._finish()
        except Exception as exc:  # noqa: BLE001 - the show goes on; the HUD shows why
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        self.failed = True
        full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
        why = "the disk is full" if full else str(exc)
        self.error = OutputError(f"recording to {self.path.name} stopped: {why}; "
                                 "free space or pick another --record path (the show goes on)")
        log.error("%s (%s)", self.error, exc)
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the file is as good as it gets
            pass

    def _open_streams(self, frame: np.ndarray) -> None:
        from core.video import AacStream, H264Stream

        h, w = frame.shape[:2]
        # yuv420p needs even sizes; later frames of another size are scaled to this one.
        self._vstream = H264Stream(self._container, fps=self.fps, width=w, height=h, crf=self._crf,
                                   x264_preset=self._preset, gop=self._gop, threads=self._threads,
                                   options={"tune": "zerolatency"})
        self._size = (self._vstream.width, self._vstream.height)
        if self.sr is not None:
            self._astream = AacStream(self._container, sr=self.sr, channels=self.audio_channels,
                                      bitrate=self._audio_bitrate)
        for t_s, block in self._pending_audio:
            self._push_audio(t_s, block)
        self._pending_audio.clear()

    def _push_frame(self, t_s: float, frame: np.ndarray) -> None:
        self.counters["frames_in"] += 1
        if frame.ndim != 3 or frame.shape[2] != 3:
            log.warning("recorder: ignoring a frame of shape %s (need HxWx3)", frame.shape)
            return
        if self._vstream is None:
            self._open_streams(frame)
        rel = t_s - (self._origin_s or 0.0)
        if rel < -_EPS_S:
            self.counters["frames_skipped"] += 1
            return
        while self._n / self.fps < rel - _EPS_S:
            self._emit(fallback=frame)
        if self._current is not None and not self._current_used:
            self.counters["frames_skipped"] += 1
        self._current = self._to_video_frame(frame)
        self._current_used = False
        self._last_frame_rel_s = rel

    def _to_video_frame(self, frame: np.ndarray):
        return self._vstream.frame(frame)

    def _emit(self, fallback: np.ndarray | None = None) -> None:
        if self._current is None:  # slots before the first frame show the first frame
            self._current = self._to_video_frame(fallback)
        if self._current_used:
            self.counters["frames_duplicated"] += 1
        self._vstream.encode(self._current, self._n)
        self._current_used = True
        self._n += 1
        self.counters["frames_written"] += 1

    def _push_audio(self, t_s: float | None, block: np.ndarray) -> None:
        if self._vstream is None:  # streams wait for the first frame's size
            self._pending_audio.append((t_s, block))
            return
        self.counters["audio_blocks"] += 1
        block = block.reshape(block.shape[0], -1)
        if block.shape[1] != self.audio_channels:
            block = np.repeat(block.mean(axis=1, keepdims=True), self.audio_channels, axis=1)
        if t_s is not None:
            index = int(round((t_s - (self._origin_s or 0.0)) * self.sr))
            if index > self._audio_samples:  # a gap (dropped input): keep sync with silence
                gap = index - self._audio_samples
                self.counters["audio_gap_samples"] += gap
                self._encode_audio(np.zeros((gap, self.audio_channels), np.float32))
            elif index < self._audio_samples:  # overlap or before the start: keep only the new part
                block = block[self._audio_samples - index:]
        if block.shape[0]:
            self._encode_audio(block)

    def _encode_audio(self, block: np.ndarray) -> None:
        self._astream.encode(block, self._audio_samples)
        self._audio_samples += block.shape[0]

    def _finish(self) -> None:
        if self._vstream is None:
            log.warning("recorder: no frames were shown; %s holds no video", self.path)
            self._container.close()
            return
        audio_s = self._audio_samples / self.sr if self.sr else 0.0
        video_s = (self._last_frame_rel_s or 0.0) + 1.0 / self.fps
        total = int(round(max(audio_s, video_s) * self.fps))
        while self._n < total:
            self._emit()
        if self._astream is not None:
            # Pad the sound to the picture so both streams end together.
            want = int(round(total / self.fps * self.sr))
            if want > self._audio_samples:
                self._encode_audio(np.zeros((want - self._audio_samples, self.audio_channels), np.float32))
        self._vstream.flush()
        if self._astream is not None:
            self._astream.flush()
        self._container.close()
        log.info("recorded %s: %d frames (%d duplicated, %d skipped, %d dropped), %.1f s of audio",
                 self.path, self.counters["frames_written"], self.counters["frames_duplicated"],
                 self.counters["frames_skipped"], self.counters["frames_dropped"], audio_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish: encode what is queued, pad to a common end, write the trailer."""
        if self._thread is None:  # never started: still leave a closed file
            self.stopping.set()
            self.run()
            return
        super().stop(timeout_s)

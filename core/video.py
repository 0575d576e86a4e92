"""Offline video writing with PyAV: H.264 chunks, then one MP4 with the source's AAC audio.

The offline renderer writes each finished segment to its own small H.264 file
(so an interrupted render keeps its finished work), then :func:`mux` copies the
chunks' packets, without re-encoding, into the final MP4 next to the audio
encoded as AAC.
"""

from __future__ import annotations

import errno
import os
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import numpy as np

from core.errors import OutputError

AAC_FRAME = 1024  # samples per AAC frame


def even_size(width: int, height: int) -> tuple[int, int]:
    """H.264 with 4:2:0 chroma needs even dimensions."""
    return width - width % 2, height - height % 2


class H264Stream:
    """The project's one H.264 video stream (libx264, yuv420p, constant rate): live recordings and
    offline chunks both encode through it.

    ``encode(frame, pts)`` takes an HxWx3 uint8 RGB array (scaled to the stream's size
    when it differs) or a ready ``av.VideoFrame``; ``flush()`` drains the encoder.
    """

    def __init__(self, container, *, fps: float, width: int, height: int, crf: int = 18,
                 x264_preset: str = "veryfast", gop: int | None = None, threads: int = 0,
                 options: dict[str, str] | None = None) -> None:
        rate = Fraction(fps).limit_denominator(1001)
        self.container = container
        self.width, self.height = even_size(max(2, width), max(2, height))
        self.stream = container.add_stream("libx264", rate=rate,
                                           options={"crf": str(crf), "preset": x264_preset, **(options or {})})
        self.stream.width, self.stream.height = self.width, self.height
        self.stream.pix_fmt = "yuv420p"
        if gop is not None:
            self.stream.codec_context.gop_size = gop
        if threads:
            self.stream.codec_context.thread_count = threads
        self.stream.codec_context.time_base = 1 / rate

    def frame(self, rgb: np.ndarray):
        """An ``av.VideoFrame`` in the stream's size and pixel format (to encode, maybe several times)."""
        import av

        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[..., :3]), format="rgb24")
        return vf.reformat(width=self.width, height=self.height, format="yuv420p")

    def encode(self, frame, pts: int) -> None:
        vf = self.frame(frame) if isinstance(frame, np.ndarray) else frame
        vf.pts = pts
        self.container.mux(self.stream.encode(vf))

    def flush(self) -> None:
        self.container.mux(self.stream.encode(None))


class AacStream:
    """The project's one AAC audio stream: ``encode(block (n, channels) float32, pts in samples)``."""

    def __init__(self, container, *, sr: int, channels: int = 1, bitrate: int = 192_000) -> None:
        self.container = container
        self.sr = int(sr)
        self.channels = int(channels)
        self.layout = "mono" if channels == 1 else "stereo"
        self.stream = container.add_stream("aac", rate=self.sr)
        self.stream.layout = self.layout
        self.stream.bit_rate = bitrate

    def encode(self, block: np.ndarray, pts: int) -> None:
        import av

        af = av.AudioFrame.from_ndarray(np.ascontiguousarray(block.T, dtype=np.float32), format="fltp",
                                        layout=self.layout)
        af.sample_rate = self.sr
        af.pts = pts
        self.container.mux(self.stream.encode(af))

    def flush(self) -> None:
        self.container.mux(self.stream.encode(None))


class ChunkWriter:
    """Encode RGB frames (H, W, 3) uint8 to a video-only H.264 file at a constant rate."""

    def __init__(self, path: str | Path, *, fps: int, width: int, height: int, crf: int = 18,
                 x264_preset: str = "veryfast") -> None:
        import av

        self.path = Path(path)
        self._container = av.open(str(self.path), mode="w", format="mp4")
        # No B-frames: every chunk's decode order is its display order (dts == pts), so chunks join
        # with rising timestamps whatever their lengths.  With B-frames a short chunk encodes without
        # reordering and the next one starts with a negative dts, below the short chunk's last.
        self._video = H264Stream(self._container, fps=fps, width=width, height=height, crf=crf,
                                 x264_preset=x264_preset, options={"bf": "0"})
        self.width, self.height = self._video.width, self._video.height
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        self._video.encode(frame[: self.height, : self.width], self.frames)
        self.frames += 1

    def close(self) -> None:
        self._video.flush()
        self._container.close()


class _AudioTrack:
    """Encodes a whole signal as AAC, in pieces, so it interleaves with the video."""

    def __init__(self, container, audio: np.ndarray, sr: int, *, bitrate: int) -> None:
        planar = np.atleast_2d(audio).astype(np.float32)
        self.samples = planar.T  # (n, channels)
        self.sr = sr
        self.aac = AacStream(container, sr=sr, channels=planar.shape[0], bitrate=bitrate)
        self.pos = 0

    def write_until(self, t_s: float) -> None:
        stop = min(self.samples.shape[0], int(round(t_s * self.sr)))
        while self.pos < stop:
            block = self.samples[self.pos:self.pos + AAC_FRAME]
            self.aac.encode(block, self.pos)
            self.pos += block.shape[0]

    def finish(self) -> None:
        self.write_until(self.samples.shape[0] / self.sr)
        self.aac.flush()


def mux(chunks: Iterable[str | Path], out_path: str | Path, *, audio: np.ndarray | None, sr: int,
        audio_bitrate: int = 192_000) -> int:
    """Join H.264 chunks (same settings, each starting on a keyframe) and AAC audio into one MP4.

    Packets are copied, not re-encoded.  Returns the number of video frames
    written.  The file appears under its final name only when complete.
    """
    import av

    chunks = [Path(c) for c in chunks]
    if not chunks:
        raise OutputError("nothing to write: no video chunks were rendered")
    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + ".tmp.mp4")
    frames = 0
    try:
        with av.open(str(tmp), mode="w", format="mp4") as out:
            with av.open(str(chunks[0])) as first:
                vstream = out.add_stream_from_template(first.streams.video[0])
            track = _AudioTrack(out, audio, sr, bitrate=audio_bitrate) if audio is not None else None
            offset = 0  # in the output stream's time base
            for chunk in chunks:
                with av.open(str(chunk)) as src:
                    sv = src.streams.video[0]
                    scale = sv.time_base / vstream.time_base
                    chunk_end = offset
                    for packet in src.demux(sv):
                        if packet.dts is None:
                            continue  # the demuxer's end-of-stream marker
                        pts, dts, dur = packet.pts, packet.dts, packet.duration or 0
                        packet.stream = vstream
                        packet.pts = offset + round(pts * scale)
                        packet.dts = offset + round(dts * scale)
                        chunk_end = max(chunk_end, packet.pts + round(dur * scale))
                        out.mux(packet)
                        frames += 1
                    offset = chunk_end
                if track is not None:
                    track.write_until(float(offset * vstream.time_base))
            if track is not None:
                track.finish()
        os.replace(tmp, out_path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise OutputError(f"disk full while writing {out_path}: free space and run again with --resume") from exc
        raise
    return frames


def check_writable(path: str | Path) -> None:
    """Fail before hours of work if the output cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"output {path} is a folder; give a file name such as {path / 'out.mp4'}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"folder {parent} for output {path.name} does not exist; create it first")
    probe = parent / f".{path.name}.m2v-write-test"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write to {parent} ({exc.strerror}); choose another --out") from exc

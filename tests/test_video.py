"""core/video.py: H.264 chunks joined into one MP4 with the sound, read back with PyAV."""

import av
import numpy as np

from core.video import ChunkWriter, mux


def test_chunks_of_any_length_join_in_order_with_rising_timestamps(tmp_path):
    # Lengths that made x264 mix chunks with and without B-frame reordering: a 2-frame chunk
    # followed by a 3-frame one once gave the muxer a falling dts ("Invalid argument").
    lengths = [3, 3, 2, 3, 2, 1, 3, 5]
    fps, value, chunks = 5, 0, []
    for k, n in enumerate(lengths):
        w = ChunkWriter(tmp_path / f"c{k}.mp4", fps=fps, width=32, height=32)
        for _ in range(n):
            w.write(np.full((32, 32, 3), value, np.uint8))  # each frame one grey level: its index
            value += 4
        w.close()
        chunks.append(w.path)
    sr = 22_050
    audio = np.zeros(int(sr * sum(lengths) / fps), np.float32)
    out = tmp_path / "out.mp4"
    assert mux(chunks, out, audio=audio, sr=sr) == sum(lengths)
    with av.open(str(out)) as f:
        frames = [fr.to_ndarray(format="rgb24") for fr in f.decode(video=0)]
        f.seek(0)
        dts = [p.dts for p in f.demux(f.streams.video[0]) if p.dts is not None]
    assert len(frames) == sum(lengths)
    assert dts == sorted(set(dts))  # strictly rising
    levels = [int(round(fr.mean())) for fr in frames]
    assert all(abs(a - 4 * i) <= 2 for i, a in enumerate(levels)), levels  # in order, none lost

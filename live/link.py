"""Ableton Link as a tempo source (the optional, GPL-licensed ``m2v[link]`` extra: aalink).

aalink wraps Link for asyncio, so a Link session lives on a small event-loop
thread of its own; :meth:`LinkTempo.tempo` reads the session's tempo and beat
from the main thread, as :class:`core.tempo.BeatGrid` asks.  The source is present
while at least one other peer (a DJ's software, another m2v) shares the session:
alone, Link only repeats our own tempo.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import Callable

from core.errors import ConfigError
from core.tempo import Tempo


def aalink_module():
    """aalink, or a ConfigError naming the extra (and its GPL licence)."""
    try:
        import aalink
    except ImportError:
        raise ConfigError("Ableton Link needs the optional extra 'link' (aalink, GPL-3.0-or-later): "
                          "pip install 'm2v[link]'; or run without --link") from None
    return aalink


class LinkTempo:
    """One Link session peer; ``clock`` gives stream time, for the beat anchor."""

    name = "link"

    def __init__(self, *, bpm: float = 120.0, clock: Callable[[], float] = time.monotonic,
                 quantum: float = 4.0) -> None:
        aalink = aalink_module()
        self.clock = clock
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="m2v-link", daemon=True)
        self._thread.start()

        async def make():
            link = aalink.Link(bpm)
            link.quantum = quantum
            link.enabled = True
            return link

        self.link = asyncio.run_coroutine_threadsafe(make(), self._loop).result(5.0)

    @property
    def peers(self) -> int:
        return int(self.link.num_peers)

    def set_bpm(self, bpm: float) -> None:
        """Propose a tempo to the session (every peer follows)."""
        self.link.tempo = float(bpm)

    def tempo(self, now_s: float) -> Tempo | None:
        if self.peers < 1:
            return None
        bpm, beat = float(self.link.tempo), float(self.link.beat)
        if not (bpm > 0 and math.isfinite(beat)):
            return None
        # Link's beat counts in the session's quantum (4): beats 0, 4, 8... are the peers' shared downbeats.
        return Tempo(bpm, now_s - (beat - math.floor(beat)) * 60.0 / bpm, anchor_beat=math.floor(beat))

    def close(self) -> None:
        async def disable():
            self.link.enabled = False

        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(disable(), self._loop).result(5.0)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5.0)

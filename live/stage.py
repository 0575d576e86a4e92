"""The lifecycle every live stage shares, and the two ways stages talk.

A stage is one named thread with ``start()`` / ``stop()`` (set an Event, let the
loop drain, join) and a dict of counters the HUD and ``--stats`` read.  Stages
exchange data through a :class:`LatestSlot` (the reader only ever wants the
newest value: frames, targets) or a :class:`DropOldestQueue` (events that should
all arrive if possible, but a slow reader must never block a fast writer).
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Any, Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class Stage:
    """Base class: subclasses implement :meth:`run` and poll ``self.stopping``."""

    name = "stage"

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.counters: dict[str, Any] = collections.defaultdict(int)
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self.name} already started")
        self._thread = threading.Thread(target=self._main, name=f"m2v-{self.name}", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # noqa: BLE001 - recorded, surfaced by the app
            self.error = exc
            log.exception("%s stage failed", self.name)

    def run(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the loop to finish, let it drain, and join the thread."""
        self.stopping.set()
        self.on_stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("%s did not stop within %.1f s", self.name, timeout_s)

    def on_stop(self) -> None:
        """Hook to unblock the loop (close a socket, wake a queue)."""

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


class LatestSlot(Generic[T]):
    """Holds the newest value; readers never wait for writers (and vice versa)."""

    def __init__(self, value: T | None = None) -> None:
        self._lock = threading.Lock()
        self._value = value
        self._version = 0
        self._changed = threading.Condition(self._lock)
        self._wakers: list[threading.Event] = []

    def add_waker(self, event: threading.Event) -> None:
        """Set ``event`` on every put: a reader that waits on several things waits on one Event."""
        with self._lock:
            self._wakers.append(event)

    def put(self, value: T) -> None:
        with self._lock:
            self._value = value
            self._version += 1
            self._changed.notify_all()
            for event in self._wakers:
                event.set()

    def get(self) -> tuple[T | None, int]:
        """The value and its version (incremented on every put)."""
        with self._lock:
            return self._value, self._version

    def wait_newer(self, version: int, timeout_s: float) -> tuple[T | None, int]:
        """Wait up to ``timeout_s`` for a value newer than ``version``."""
        with self._lock:
            self._changed.wait_for(lambda: self._version != version, timeout_s)
            return self._value, self._version


class DropOldestQueue(Generic[T]):
    """A bounded queue whose ``put`` never blocks: when full, the oldest item goes."""

    def __init__(self, maxlen: int) -> None:
        self._items: collections.deque[T] = collections.deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._nonempty = threading.Condition(self._lock)
        self.dropped = 0

    def put(self, item: T) -> None:
        with self._lock:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._items.append(item)
            self._nonempty.notify()

    def get_all(self, timeout_s: float = 0.0) -> list[T]:
        """Everything queued, oldest first; waits up to ``timeout_s`` if empty."""
        with self._lock:
            if not self._items and timeout_s > 0:
                self._nonempty.wait(timeout_s)
            items = list(self._items)
            self._items.clear()
            return items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

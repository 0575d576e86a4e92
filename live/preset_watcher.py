"""Hot reload: watch the active preset's files and publish each valid edit.

The watcher polls the modification time and size of every file the active preset
was resolved from (its own file and its ``extends`` chain, plus the user-folder
files that would shadow a shipped parent).  On a change it reloads and revalidates:

* valid: publishes a :class:`PresetUpdate` (the preset, and which changed fields
  apply live and which need a model reload) to ``updates`` and ``on_update``, and
  clears ``errors``;
* invalid: publishes the error text to ``errors`` and ``on_error`` for the HUD and
  keeps the last good preset.  Nothing stops.

:meth:`PresetWatcher.switch` changes the active preset (``/m2v/preset``, a key, a
show's song change) on the watcher thread, so file reads stay off the hot path.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable, Mapping

from core.errors import ConfigError
from core.paths import shipped_presets_dir
from core.presets import Preset, apply_overrides, live_diff, load_preset, search_dirs
from live.stage import LatestSlot, Stage

log = logging.getLogger(__name__)

Signature = tuple[tuple[str, Any], ...]


@dataclasses.dataclass(frozen=True)
class PresetUpdate:
    """A newly active preset and what changed relative to the previous one."""

    preset: Preset
    live_fields: tuple[str, ...]  # apply at once
    reload_fields: tuple[str, ...]  # need models (or the OSC listener) reloaded: report them
    reason: str  # "start", "edit" or "switch"


class PresetWatcher(Stage):
    """Polls the active preset's files every ``poll_s`` seconds and republishes it when edited."""

    name = "preset-watcher"

    def __init__(self, preset: str | Path, *, user_dir: Path | str | None = None,
                 overrides: Mapping[str, Any] | None = None, poll_s: float = 0.5,
                 on_update: Callable[[PresetUpdate], None] | None = None,
                 on_error: Callable[[str], None] | None = None) -> None:
        """Load ``preset`` now (a ConfigError here is a startup mistake and is raised).

        ``overrides`` (CLI flags, a show song's table) are applied on top after every reload.
        """
        super().__init__()
        self.user_dir = user_dir
        self.poll_s = float(poll_s)
        self.on_update = on_update
        self.on_error = on_error
        self.updates: LatestSlot[PresetUpdate] = LatestSlot()
        self.errors: LatestSlot[str | None] = LatestSlot()  # changes only when the error state does
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pending: tuple[str | Path, Mapping[str, Any]] | None = None
        self._ref: str | Path = preset
        self._overrides: Mapping[str, Any] = dict(overrides or {})
        self.current: Preset = self._load(preset, self._overrides)
        self._signature = self._stat(self._watched(self.current))
        self._publish(PresetUpdate(self.current, (), (), "start"))

    # --- public, any thread ------------------------------------------------------------------

    def switch(self, preset: str | Path, *, overrides: Mapping[str, Any] | None = None) -> None:
        """Make ``preset`` the active one (loaded on the watcher thread; errors go to ``errors``)."""
        with self._lock:
            self._pending = (preset, dict(overrides or {}))
        self._wake.set()

    # --- stage ---------------------------------------------------------------------------------

    def run(self) -> None:
        while not self.stopping.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            if self.stopping.is_set():
                break
            self.poll()

    def on_stop(self) -> None:
        self._wake.set()

    def poll(self) -> None:
        """One check: handle a pending switch, else reload if a watched file changed."""
        self.counters["polls"] += 1
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self._try_load(*pending, reason="switch")
            return
        watched = self._watched(self.current) | self._failed_files
        signature = self._stat(watched)
        if signature != self._signature:
            self._signature = signature  # taken before reading: a write during the read shows next poll
            self._try_load(self._ref, self._overrides, reason="edit")

    # --- internals -----------------------------------------------------------------------------

    _failed_files: frozenset[Path] = frozenset()

    def _load(self, ref: str | Path, overrides: Mapping[str, Any]) -> Preset:
        preset = load_preset(ref, user_dir=self.user_dir)
        return apply_overrides(preset, overrides) if overrides else preset

    def _try_load(self, ref: str | Path, overrides: Mapping[str, Any], *, reason: str) -> None:
        try:
            new = self._load(ref, overrides)
        except ConfigError as exc:
            self.counters["errors"] += 1
            text = f"preset {str(ref)!r} not applied: {exc}"
            log.warning("%s", text)
            if reason == "switch":
                self._failed_files = frozenset()
            elif isinstance(ref, Path) or os.sep in str(ref) or str(ref).endswith(".toml"):
                self._failed_files = frozenset({Path(ref)})
            self.errors.put(text)
            if self.on_error is not None:
                self.on_error(text)
            return
        old = self.current
        live, reload = live_diff(old, new)
        self._ref, self._overrides, self.current = ref, overrides, new
        self._failed_files = frozenset()
        self._signature = self._stat(self._watched(new))
        if self.errors.get()[0] is not None:
            self.errors.put(None)  # the HUD clears the last error
        if reason == "edit" and not live and not reload:
            return  # touched or reformatted: nothing to apply
        self.counters["reloads" if reason == "edit" else "switches"] += 1
        if reload:
            log.warning("preset %s: %s need a model reload", new.name, ", ".join(reload))
        self._publish(PresetUpdate(new, tuple(live), tuple(reload), reason))

    def _publish(self, update: PresetUpdate) -> None:
        self.updates.put(update)
        if self.on_update is not None:
            self.on_update(update)

    def _watched(self, preset: Preset) -> frozenset[Path]:
        files = set(preset.sources)
        user_dir = search_dirs(self.user_dir)[0]
        shipped = shipped_presets_dir()
        for src in preset.sources:
            if src.resolve().parent == shipped:
                files.add(user_dir / src.name)  # a user file appearing would shadow this one
        return frozenset(files)

    @staticmethod
    def _stat(paths: frozenset[Path]) -> Signature:
        out = []
        for p in sorted(paths):
            try:
                st = p.stat()
                out.append((str(p), (st.st_mtime_ns, st.st_size, st.st_ino)))
            except OSError:
                out.append((str(p), None))
        return tuple(out)

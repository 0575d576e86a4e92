"""One root exception for user-facing failures, with a few kinds.

Raise these where input enters (files, flags, OSC, presets, devices).  The
message shows the bad value, what is allowed, and how to fix it; the CLI prints
``Error: message`` and exits non-zero without a traceback.
"""

from __future__ import annotations


class M2VError(Exception):
    """Root of every error a user can cause and fix."""

    exit_code = 2


class ConfigError(M2VError):
    """A flag, preset, show file or setting is invalid."""


class InputError(M2VError):
    """An input file or stream (audio, lyrics, OSC) is unreadable or malformed."""


class ModelLoadError(M2VError):
    """A model file is missing, corrupt, unsafe or does not fit its config."""


class WeightsMissingError(ModelLoadError):
    """A weight file is not in the cache; the message names the command that fetches it."""


class DeviceError(M2VError):
    """A compute or audio/display device is missing, busy or vanished."""


class OutOfMemoryError(DeviceError):
    """The accelerator ran out of memory; callers may retry smaller."""


class OutputError(M2VError):
    """An output file cannot be written (bad path, no permission, full disk)."""

"""Where m2v keeps its per-user files.

One root, ``$M2V_HOME``, holds everything m2v writes for a user: downloaded
weights, user presets (``$M2V_HOME/presets``) and caches.  It defaults to the
platform's user cache directory for "m2v" (``~/.cache/m2v`` on Linux), so it can
be deleted without losing anything that cannot be fetched again -- except user
presets, which is why ``M2V_HOME`` can point anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "M2V_HOME"


def m2v_home() -> Path:
    """The m2v home directory: ``$M2V_HOME`` if set, else the user cache dir for "m2v".

    The directory is not created here (reading code must not create folders);
    writers create what they need below it.
    """
    env = os.environ.get(ENV_HOME, "").strip()
    if env:
        return Path(env).expanduser()
    import platformdirs  # small, but only needed when the variable is unset

    return Path(platformdirs.user_cache_dir("m2v", appauthor=False))


def user_presets_dir() -> Path:
    """``$M2V_HOME/presets``: user presets that add to or override the shipped ones."""
    return m2v_home() / "presets"


def shipped_presets_dir() -> Path:
    """The ``presets/`` folder shipped with the package."""
    import presets  # the package holding the shipped *.toml files

    return Path(presets.__file__).resolve().parent


def models_dir() -> Path:
    """Where model weights are cached: ``$M2V_HOME/models``."""
    return m2v_home() / "models"

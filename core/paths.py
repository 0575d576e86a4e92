"""Where m2v keeps its files: ``$M2V_HOME``, else the per-user cache directory."""

from __future__ import annotations

import os
from pathlib import Path


def m2v_home() -> Path:
    """The m2v home folder (weights under ``models/``, user presets under ``presets/``)."""
    env = os.environ.get("M2V_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("m2v"))


def models_dir() -> Path:
    return m2v_home() / "models"

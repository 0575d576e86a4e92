"""m2v core: the pure engine (no threads, devices or windows)."""

__version__ = "0.1.0"

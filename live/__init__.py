"""m2v live: the real-time runtime, one stage per module."""

"""The toy world: coloured shapes and patterns with captions, and synth sounds paired with them.

The ``toy`` model set is trained on this world (``scripts/train_toy.py``), and
:mod:`core.judge` reads pictures back in its terms, so guidance can be tested
with known answers on any machine.  Everything here is plain numpy and
deterministic for a given seed.

Pictures (``draw``) are one foreground colour and one background colour:

* objects: a ``circle``, ``square`` or ``triangle`` on the background;
* patterns: ``stripes``, ``rings`` or a ``checkerboard`` of the two colours.

Captions come from a picture's attributes, e.g. "a red circle",
"blue stripes on a black background", "a green checkerboard".

Sounds (``render_sound``) are six classes m2v's synth makes; each is tied to one
visual concept (:data:`SOUND_CONCEPTS`), the pairing the toy Wav2CLIP learns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import ConfigError

#: Palette, RGB 0..255.  Far enough apart that a nearest-colour reading is unambiguous.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (245, 140, 20),
    "yellow": (240, 230, 40),
    "green": (40, 170, 50),
    "cyan": (40, 220, 230),
    "blue": (30, 60, 220),
    "purple": (130, 40, 190),
    "pink": (250, 140, 200),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
OBJECTS = ("circle", "square", "triangle")
PATTERNS = ("stripes", "rings", "checkerboard")
SHAPES = OBJECTS + PATTERNS


@dataclass(frozen=True)
class Scene:
    """What one picture shows: a foreground colour, a shape or pattern, a background colour."""

    colour: str
    shape: str
    background: str

    def caption(self, *, with_background: bool = True) -> str:
        return caption(self.colour, self.shape, self.background if with_background else None)


def caption(colour: str, shape: str, background: str | None = None) -> str:
    """The caption of a scene: "a red circle", "blue stripes on a black background"."""
    if colour not in COLOURS or shape not in SHAPES or (background is not None and background not in COLOURS):
        raise ConfigError(f"unknown toy scene ({colour!r}, {shape!r}, {background!r}); colours: "
                          f"{', '.join(COLOURS)}; shapes: {', '.join(SHAPES)}")
    if shape in ("stripes", "rings"):
        text = f"{colour} {shape}"  # plural: no article
    else:
        text = f"{_article(colour)} {colour} {shape}"
    return text if background is None else f"{text} on {_article(background)} {background} background"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def random_scene(rng: np.random.Generator, *, colour: str | None = None, shape: str | None = None,
                 background: str | None = None) -> Scene:
    """A scene with the given attributes and random others (background always differs from colour)."""
    names = list(COLOURS)
    colour = colour or names[rng.integers(len(names))]
    shape = shape or SHAPES[rng.integers(len(SHAPES))]
    if background is None:
        others = [c for c in names if c != colour]
        background = others[rng.integers(len(others))]
    return Scene(colour, shape, background)


def draw(scene: Scene, *, size: int = 64, rng: np.random.Generator | None = None) -> np.ndarray:
    """Render ``scene`` as an (size, size, 3) uint8 image; ``rng`` varies place, scale and period."""
    rng = rng if rng is not None else np.random.default_rng(0)
    mask = shape_mask(scene.shape, size=size, rng=rng)
    fg = np.array(COLOURS[scene.colour], dtype=np.uint8)
    bg = np.array(COLOURS[scene.background], dtype=np.uint8)
    return np.where(mask[:, :, None], fg, bg)


def shape_mask(shape: str, *, size: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean (size, size) mask of the foreground of ``shape``, at a random place and scale."""
    s = float(size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    if shape in OBJECTS:
        # Objects cover 10..40 % of the frame and stay inside it, so the background is the larger part.
        half = s * rng.uniform(0.2, 0.33)
        cx = rng.uniform(half, s - half)
        cy = rng.uniform(half, s - half)
        if shape == "circle":
            return (xx - cx) ** 2 + (yy - cy) ** 2 <= half**2
        if shape == "square":
            return (np.abs(xx - cx) <= half * 0.9) & (np.abs(yy - cy) <= half * 0.9)
        # Upright triangle: apex on top, base at the bottom of the box.
        top, bottom = cy - half, cy + half
        t = np.clip((yy - top) / (bottom - top), 0.0, 1.0)
        return (yy >= top) & (yy <= bottom) & (np.abs(xx - cx) <= t * half)
    period = s * rng.uniform(0.2, 0.35)  # 3..5 periods across the frame
    phase = rng.uniform(0.0, period)
    if shape == "stripes":
        coord = xx if rng.random() < 0.5 else yy
        return ((coord + phase) % period) < period / 2
    if shape == "checkerboard":
        return (((xx + phase) // (period / 2)) + ((yy + phase) // (period / 2))) % 2 == 0
    if shape == "rings":
        cx, cy = rng.uniform(0.3 * s, 0.7 * s, size=2)
        r = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
        return ((r + phase) % period) < period / 2
    raise ConfigError(f"unknown shape {shape!r}; choose one of {', '.join(SHAPES)}")


def all_prompts(*, with_background: bool = False) -> list[Scene]:
    """Every colour x shape scene (backgrounds: black, or white for black shapes, when asked)."""
    out = []
    for c in COLOURS:
        for sh in SHAPES:
            bg = ("white" if c == "black" else "black") if with_background else ""
            out.append(Scene(c, sh, bg))
    return out


# -- sounds ---------------------------------------------------------------------

#: Sound class -> the visual concept it is paired with (one colour each, so the judge can tell them apart).
SOUND_CONCEPTS: dict[str, Scene] = {
    "kick": Scene("red", "circle", "black"),
    "snare": Scene("yellow", "checkerboard", "black"),
    "hihat": Scene("cyan", "stripes", "black"),
    "bass": Scene("blue", "rings", "black"),
    "chord": Scene("pink", "square", "black"),
    "sweep": Scene("green", "triangle", "black"),
}
SOUNDS = tuple(SOUND_CONCEPTS)


def _env(n: int, sr: int, decay_s: float) -> np.ndarray:
    return np.exp(-np.arange(n) / sr / decay_s)


def render_sound(kind: str, *, sr: int, duration_s: float = 1.0, rng: np.random.Generator | None = None,
                 vary: bool = True) -> np.ndarray:
    """One ``duration_s`` window of sound class ``kind`` (float32 mono, peak about 0.8).

    Percussive classes repeat as a pattern within the window (as they do in music);
    tonal ones sustain.  With ``vary`` the pitch, tempo, level and decay are drawn
    from ``rng``, so no two renderings are the same.
    """
    if kind not in SOUND_CONCEPTS:
        raise ConfigError(f"unknown sound class {kind!r}; choose one of {', '.join(SOUNDS)}")
    rng = rng if rng is not None else np.random.default_rng(0)

    def u(lo: float, hi: float) -> float:
        return float(rng.uniform(lo, hi)) if vary else (lo + hi) / 2

    n = int(round(duration_s * sr))
    t = np.arange(n) / sr
    y = np.zeros(n)
    if kind in ("kick", "snare", "hihat"):
        period_s = u(0.18, 0.5)
        start = int(u(0.0, 0.1) * sr)
        for s in range(start, n, max(1, int(period_s * sr))):
            m = n - s
            tt = t[:m]
            if kind == "kick":
                f = u(45, 60) + u(80, 140) * np.exp(-tt / u(0.02, 0.04))
                hit = np.sin(2 * np.pi * np.cumsum(f) / sr) * _env(m, sr, u(0.06, 0.12))
            elif kind == "snare":
                hit = (0.4 * np.sin(2 * np.pi * u(160, 230) * tt) * _env(m, sr, 0.04)
                       + rng.standard_normal(m) * _env(m, sr, u(0.04, 0.08)))
            else:
                noise = np.diff(rng.standard_normal(m + 1))  # first difference: bright
                hit = noise * _env(m, sr, u(0.008, 0.02))
            y[s:] += hit
    elif kind == "bass":
        f0 = u(40, 70)
        y = np.sin(2 * np.pi * f0 * t) + 0.5 * np.sin(2 * np.pi * 2 * f0 * t + u(0, 3)) \
            + 0.2 * np.sin(2 * np.pi * 3 * f0 * t)
        y *= 1.0 + 0.2 * np.sin(2 * np.pi * u(0.5, 3) * t)  # slow wobble
    elif kind == "chord":
        root = u(220, 520)
        for ratio in (1.0, 1.26, 1.5, 2.0):  # major triad plus octave
            for k in range(1, 6):
                y += (0.5**k) * np.sin(2 * np.pi * root * ratio * k * t + u(0, 6.28))
    else:  # sweep: band-passed noise whose centre slides up or down
        noise = rng.standard_normal(n)
        spec = np.fft.rfft(noise)
        freqs = np.fft.rfftfreq(n, 1 / sr)
        lo, hi = u(300, 800), u(3000, 7000)
        # Several short bands along the sweep, summed in time windows.
        frames = 16
        edges = np.linspace(0, n, frames + 1).astype(int)
        up = rng.random() < 0.5 if vary else True
        for i in range(frames):
            a = i / (frames - 1)
            fc = lo * (hi / lo) ** (a if up else 1 - a)
            band = np.exp(-0.5 * ((freqs - fc) / (0.15 * fc)) ** 2)
            seg = np.fft.irfft(spec * band, n)[edges[i]:edges[i + 1]]
            y[edges[i]:edges[i + 1]] = seg
    y = y / max(float(np.abs(y).max()), 1e-9) * u(0.4, 0.8)
    return y.astype(np.float32)


def render_mixture(kinds: list[str], weights: list[float], *, sr: int, duration_s: float = 1.0,
                   rng: np.random.Generator) -> np.ndarray:
    """A mix of sound classes with the given level weights (peak about 0.8)."""
    y = sum(w * render_sound(k, sr=sr, duration_s=duration_s, rng=rng) for k, w in zip(kinds, weights))
    return (y / max(float(np.abs(y).max()), 1e-9) * 0.8).astype(np.float32)


def add_noise(y: np.ndarray, *, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White noise ``snr_db`` below the signal's power."""
    p = float(np.mean(y.astype(np.float64) ** 2)) + 1e-12
    return (y + rng.standard_normal(y.size) * np.sqrt(p / 10 ** (snr_db / 10))).astype(np.float32)


def describe() -> str:
    """The vocabulary and the sound pairing, as ``m2v weights show toy`` prints them."""
    lines = [
        "colours: " + ", ".join(COLOURS),
        "objects: " + ", ".join(OBJECTS),
        "patterns: " + ", ".join(PATTERNS),
        "captions: 'a/an COLOUR circle|square|triangle|checkerboard', 'COLOUR stripes|rings',",
        "          each optionally followed by 'on a/an COLOUR background'",
        "          e.g. " + ", ".join(repr(s.caption(with_background=b)) for s, b in (
            (Scene("red", "circle", "black"), False), (Scene("blue", "stripes", "black"), True))),
        "sound -> picture (what the toy Wav2CLIP was trained to map each sound to):",
    ]
    lines += [f"  {k:6s} -> {s.caption()}" for k, s in SOUND_CONCEPTS.items()]
    return "\n".join(lines)


def render_sections(sections: list[tuple[str, float]], *, sr: int, seed: int = 0,
                    snr_db: float | None = 30.0) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """A song of sections, each one sound class for its length: ``[("kick", 4.0), ("chord", 4.0)]``.

    Each section is a run of fresh 1 s renderings (so it varies like music does).
    Returns ``(y, [(start_s, end_s, kind), ...])``; the answer a picture should
    follow is :data:`SOUND_CONCEPTS` of each section's class.
    """
    rng = np.random.default_rng(seed)
    parts, spans, t = [], [], 0.0
    for kind, seconds in sections:
        n = int(round(seconds * sr))
        y = np.concatenate([render_sound(kind, sr=sr, rng=rng) for _ in range(int(np.ceil(seconds)))])[:n]
        parts.append(y)
        spans.append((t, t + n / sr, kind))
        t += n / sr
    y = np.concatenate(parts)
    if snr_db is not None:
        y = add_noise(y, snr_db=snr_db, rng=rng)
    return (y / max(float(np.abs(y).max()), 1e-9) * 0.8).astype(np.float32), spans

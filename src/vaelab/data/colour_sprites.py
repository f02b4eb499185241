"""``sprites-colour``: vaelab's sprites in colour on a noise background (not DeepMind's file).

The grid of ``sprites`` (``data/sprites.py``: shape x scale x orientation x x-position x
y-position, the same masks and placement) with a colour factor in front, as dSprites' own
factor order has its (there constant) colour first: 4 colours x 737,280 = 2,949,120 RGB 64x64
images.  The label is the shape (``label_factor`` = 1).

The background is low-contrast grey noise, a continuous nuisance that is NOT a factor: a model
that disentangles the factors must ignore it.  Each pixel's grey level (0 .. NOISE_LEVELS - 1
of 255, the same in the three channels) is a byte of a counter-based hash (SplitMix64's finaliser,
Steele, Lea & Flood 2014) of the image's grid index and the pixel's index, so any image renders
identically without generating the others, on every machine (unsigned 64-bit integer
arithmetic only).  The sprite's pixels take its colour exactly.

Memory: 12,288 bytes an image; the full training split (2,929,120 images) would be 36 GB,
over the data budget: give ``--train-limit N`` (N = 100,000 is 1.2 GB).
"""

from __future__ import annotations

import numpy as np

from .factors import FactorGrid
from .sprites import (
    ORIENTATIONS,
    POSITIONS,
    SCALES,
    SHAPES,
    SIDE,
    centred_masks,
    position_groups,
)

COLOURS = ("red", "green", "blue", "yellow")
RGB = np.array([(220, 40, 40), (40, 190, 60), (50, 90, 235), (235, 205, 30)], np.uint8)
NOISE_LEVELS = 32  # background grey levels 0 .. 31 of 255 (a divisor of 256: each as likely)
NOISE_KEY = 0x5EED_C0DE  # offsets the hash's counters, so this noise is not another's
CHUNK = 2048  # images rendered at once (bounds the hash's temporary arrays: 8 MiB each)
_LEVELS = (np.arange(256) * NOISE_LEVELS // 256).astype(np.uint8)  # a hash byte's grey level
_GOLDEN, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def splitmix64(counter: np.ndarray) -> np.ndarray:
    """SplitMix64's output function of uint64 ``counter`` (wrapping arithmetic)."""
    z = counter + np.uint64(_GOLDEN)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX2)
    return z ^ (z >> np.uint64(31))


def background(index: np.ndarray) -> np.ndarray:
    """The noise (N, SIDE, SIDE) uint8 of the images at grid positions ``index`` (N,): each
    64-bit hash gives 8 pixels (its bytes, least significant first), a byte b a level
    ``b * NOISE_LEVELS // 256``."""
    block = np.arange(SIDE * SIDE // 8, dtype=np.uint64)
    counter = (index.astype(np.uint64)[:, None] + np.uint64(NOISE_KEY)) * np.uint64(len(block))
    hashed = splitmix64(counter + block).astype("<u8", copy=False)  # little-endian everywhere
    return _LEVELS[hashed.view(np.uint8)].reshape(len(index), SIDE, SIDE)


class ColourSpritesGrid(FactorGrid):
    """colour x shape x scale x orientation x x x y: RGB 64x64 sprites on grey noise."""

    title = "Colour sprites (vaelab's rendering: the dSprites grid in 4 colours on noise)"
    names = ("colour", "shape", "scale", "orientation", "x", "y")
    sizes = (len(COLOURS), len(SHAPES), len(SCALES), len(ORIENTATIONS), 32, 32)
    values = (
        np.arange(len(COLOURS), dtype=np.float64),
        np.arange(len(SHAPES), dtype=np.float64),
        SCALES,
        ORIENTATIONS,
        POSITIONS,
        POSITIONS,
    )
    shape = (3, SIDE, SIDE)
    classes = SHAPES
    label_factor = 1

    def render(self, factors: np.ndarray) -> np.ndarray:
        f = np.asarray(factors, dtype=np.int64)
        out = np.empty((len(f), 3, SIDE, SIDE), np.uint8)
        for start in range(0, len(f), CHUNK):
            part = f[start : start + CHUNK]
            self._draw(part, out[start : start + CHUNK])
        return out.reshape(len(f), -1)

    def _draw(self, f: np.ndarray, out: np.ndarray) -> None:
        """Draw the images of factors ``f`` (n, 6) into ``out`` (n, 3, SIDE, SIDE)."""
        out[:] = background(self.index_of(f))[:, None]
        which = (f[:, 1] * len(SCALES) + f[:, 2]) * len(ORIENTATIONS) + f[:, 3]
        masks = centred_masks()
        for group in position_groups(f[:, 4], f[:, 5]):
            y, x = f[group[0], 5], f[group[0], 4]
            on = masks[which[group]] > 0  # (g, 32, 32): the masks' patches
            image, row, col = np.nonzero(on)
            colour = RGB[f[group[image], 0]]  # (pixels, 3)
            for channel in range(3):
                out[group[image], channel, y + row, x + col] = colour[:, channel]


def colour_sprites_grid(data_dir: object = None) -> ColourSpritesGrid:
    """The ``sprites-colour`` grid (rendered here: ``data_dir`` is not read)."""
    return ColourSpritesGrid()

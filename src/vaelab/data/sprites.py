"""``sprites``: vaelab's own rendering of the dSprites factor grid (not DeepMind's file).

dSprites (Matthey, Higgins, Hassabis & Lerchner 2017, https://github.com/deepmind/dsprites-dataset)
is every combination of shape (square, ellipse, heart) x scale (6 values, linspace(0.5, 1, 6))
x orientation (40 values, linspace(0, 2 pi, 40): the first and last are the same angle) x
x-position (32 values in [0, 1]) x y-position (32 values in [0, 1]): 737,280 binary 64x64
images.  ``SpritesGrid`` has the same factors, values and order (image ``i`` is
``np.unravel_index(i, sizes)``, the last factor fastest), without the original's constant
colour factor (as disentanglement_lib drops it).  Its pixels are drawn here, so they are NOT
the original file's pixels; ``--dataset dsprites`` reads that file when you have it
(``data/dsprites.py``).  Where this rendering differs from the original:

- geometry: a pixel is on when its centre lies inside the shape (no anti-aliasing, as the
  original's binary images).  At scale 1 the square's side is 19 pixels, the ellipse's
  semi-axes 11.4 and 5.7 pixels, the heart (inside the sextic curve
  (x^2 + y^2 - 1)^3 = x^2 y^3) 19.4 pixels wide; these were chosen to resemble the
  original's sprites, not measured on it;
- position: x-position ``j`` puts the sprite's centre on the centre of pixel column
  ``16 + j`` (y: row ``16 + i``, top to bottom), so positions 0 and 1 lie 16.5 pixels from
  the edges and one step is exactly one pixel; the original places its sprites with its own
  (sub-pixel) transform;
- orientation turns the sprite counter-clockwise on screen about its centre (the heart's
  centre is that of its bounding box).

How it is made (``centred_masks``, ``place``): the 3 x 6 x 40 = 720 centred masks are drawn
once in a 32 x 32 patch, each pixel decided by float64 additions and multiplications only
(cos and sin from Python's ``math``, the angle reduced modulo 2 pi first), so the bytes are
the same on every machine; an image is its mask copied at an integer pixel offset, so any
subset of the grid renders at memory speed.  Pixels are uint8 0 / 255, so ``to_unit`` gives
exactly 0 / 1 and a Bernoulli decoder's loss is a true negative log-likelihood.

Memory: every image is 4,096 bytes; the full training split (717,280 images with the default
10,000 validation images) is 2.9 GB; ``--train-limit N`` renders only N of them.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .catalogue import SPRITE_SHAPES as SHAPES
from .factors import FactorGrid

SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.linspace(0.0, 2 * math.pi, 40)  # radians; as dSprites, both ends included
POSITIONS = np.linspace(0.0, 1.0, 32)
SIDE = 64  # pixels of an image's side
PATCH = 32  # pixels of the side of the patch a centred sprite is drawn in
CENTRE = 16  # the sprite's centre is the centre of this pixel of its patch (row and column)
SQUARE_HALF_SIDE = 9.5  # pixels at scale 1
ELLIPSE_SEMI_AXES = (11.4, 5.7)  # pixels at scale 1, along the sprite's own x and y
HEART_UNIT = 8.5  # pixels per unit of the heart curve at scale 1
HEART_MID = 0.118  # height of the heart curve's bounding-box centre (it spans y in [-1, 1.236])


def _inside(shape: int, u: np.ndarray, w: np.ndarray, scale: float) -> np.ndarray:
    """Whether the points (u, w) (pixels, in the sprite's own frame, w up) lie inside
    ``SHAPES[shape]`` at ``scale``: float64 +, -, *, / only."""
    if shape == 0:
        h = SQUARE_HALF_SIDE * scale
        return (np.abs(u) <= h) & (np.abs(w) <= h)
    if shape == 1:
        a, b = ELLIPSE_SEMI_AXES[0] * scale, ELLIPSE_SEMI_AXES[1] * scale
        x, y = u / a, w / b
        return x * x + y * y <= 1.0
    unit = HEART_UNIT * scale
    x, y = np.abs(u) / unit, w / unit + HEART_MID  # |u|: the heart is mirror-symmetric exactly
    q = x * x + y * y - 1.0
    return q * q * q - x * x * y * y * y <= 0.0


def centred_mask(shape: int, scale: float, angle: float) -> np.ndarray:
    """The (PATCH, PATCH) bool mask of a sprite centred on pixel (CENTRE, CENTRE), turned
    ``angle`` radians counter-clockwise: a pixel is on when its centre is inside."""
    angle = math.fmod(angle, 2 * math.pi)
    c, s = math.cos(angle), math.sin(angle)
    offsets = np.arange(PATCH, dtype=np.float64) - CENTRE
    dx = offsets[None, :]  # right
    up = -offsets[:, None]  # rows grow downwards; the sprite's frame has y up
    u = c * dx + s * up  # the pixel centre turned by -angle into the sprite's frame
    w = c * up - s * dx
    return _inside(shape, u, w, float(scale))


@lru_cache(maxsize=1)
def centred_masks() -> np.ndarray:
    """Every (shape, scale, orientation) mask: (3 * 6 * 40, PATCH, PATCH) uint8 0 / 255,
    index ``(shape * 6 + scale) * 40 + orientation`` (read-only)."""
    masks = np.stack(
        [
            centred_mask(shape, scale, angle)
            for shape in range(len(SHAPES))
            for scale in SCALES
            for angle in ORIENTATIONS
        ]
    )
    out = masks.astype(np.uint8) * np.uint8(255)
    out.flags.writeable = False
    return out


def position_groups(xs: np.ndarray, ys: np.ndarray) -> list[np.ndarray]:
    """The indices of the images at each distinct position (x, y) among ``xs``, ``ys``."""
    positions = ys.astype(np.int64) * SIDE + xs.astype(np.int64)
    order = np.argsort(positions, kind="stable")
    starts = np.flatnonzero(np.diff(positions[order], prepend=-1))
    return np.split(order, starts[1:])


def place(which: np.ndarray, xs: np.ndarray, ys: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Copy mask ``centred_masks()[which[k]]`` into ``out[k]`` (N, SIDE, SIDE) with its
    top-left corner at column ``xs[k]``, row ``ys[k]`` (pixels); the images of one position
    are copied together (no (N, PATCH, PATCH) copy of the masks is made)."""
    masks = centred_masks()
    for group in position_groups(xs, ys):
        y, x = ys[group[0]], xs[group[0]]
        out[group, y : y + PATCH, x : x + PATCH] = masks[which[group]]
    return out


class SpritesGrid(FactorGrid):
    """vaelab's rendering of the dSprites grid: shape x scale x orientation x x x y, binary
    64x64 images as uint8 0 / 255 (see the module's docstring for the geometry)."""

    title = "Sprites (vaelab's rendering of the dSprites factor grid, not DeepMind's file)"
    names = ("shape", "scale", "orientation", "x", "y")
    sizes = (len(SHAPES), len(SCALES), len(ORIENTATIONS), len(POSITIONS), len(POSITIONS))
    values = (np.arange(len(SHAPES), dtype=np.float64), SCALES, ORIENTATIONS, POSITIONS, POSITIONS)
    shape = (1, SIDE, SIDE)
    classes = SHAPES

    def render(self, factors: np.ndarray) -> np.ndarray:
        f = np.asarray(factors, dtype=np.int64)
        which = (f[:, 0] * len(SCALES) + f[:, 1]) * len(ORIENTATIONS) + f[:, 2]
        out = np.zeros((len(f), SIDE, SIDE), np.uint8)
        place(which, f[:, 3], f[:, 4], out)
        return out.reshape(len(f), -1)


def sprites_grid(data_dir: object = None) -> SpritesGrid:
    """The ``sprites`` grid (rendered here: ``data_dir`` is not read)."""
    return SpritesGrid()

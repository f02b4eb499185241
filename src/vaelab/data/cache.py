"""The data cache on disk: where it is, checksums, and atomic writes.

A data set lives in ``<cache>/<name>/`` as its four *uncompressed* IDX files.  MNIST's are
checked against the canonical MD5s and sizes (``catalogue.MNIST_MD5``); the others carry a
``checksums.json`` (MD5 and size of each file) written when they were verified, which every
later read checks.  Files are written to a temporary folder beside the cache and moved in only
once checked, so a failure leaves the cache as it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .catalogue import IDX_FILES, MNIST_MD5, MNIST_SIZES, KnownDataset
from .formats import MNIST, DataError, make_mnist, parse_idx, write_idx

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """The cache root: $VAELAB_DATA, else $XDG_CACHE_HOME/vaelab or ~/.cache/vaelab.

    MNIST lives in ``<cache>/mnist/``.
    """
    if os.environ.get("VAELAB_DATA"):
        return Path(os.environ["VAELAB_DATA"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "vaelab"


def md5(data: bytes) -> str:
    """The MD5 of ``data`` in hex (a checksum, not a security measure)."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def read_verified(mnist_dir: Path) -> tuple[MNIST | None, str]:
    """Read the cached files if each has the expected size and MD5; else (None, the problem)."""
    expected = {name: (MNIST_SIZES[name], MNIST_MD5[name]) for name in IDX_FILES.values()}
    arrays, problem = _read_checked(mnist_dir, expected)
    return (make_mnist(arrays, mnist_dir, verified=True) if arrays else None), problem


def _read_checked(
    folder: Path, expected: dict[str, tuple[object, object]]
) -> tuple[dict[str, np.ndarray] | None, str]:
    """The four IDX files of ``folder`` parsed, when each has its expected (bytes, MD5);
    else (None, the first problem)."""
    arrays: dict[str, np.ndarray] = {}
    for key, name in IDX_FILES.items():
        path = folder / name
        if name not in expected or not path.is_file():
            return None, f"{name} missing"
        size, checksum = expected[name]
        if path.stat().st_size != size:
            return None, f"{name} has {path.stat().st_size} bytes, expected {size}"
        data = path.read_bytes()
        if md5(data) != checksum:
            return None, f"MD5 mismatch for {name}"
        arrays[key] = parse_idx(data, path)
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
        for key, name in IDX_FILES.items():
            write_idx(tmp / name, getattr(data_set, key))
        extra = finish(tmp)
        folder.mkdir(exist_ok=True)
        for name in [*IDX_FILES.values(), *extra]:
            os.replace(tmp / name, folder / name)
    except OSError as e:
        raise DataError(f"cannot write {what} into {folder}: {e}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def install(mnist: MNIST, mnist_dir: Path, source: object) -> Path:
    """Cache the four IDX files in ``mnist_dir`` once their MD5s match the canonical MNIST's."""

    def verify(tmp: Path) -> list[str]:
        for name in IDX_FILES.values():
            got, expected = md5((tmp / name).read_bytes()), MNIST_MD5[name]
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


def install_known(data_set: MNIST, folder: Path, title: str) -> None:
    """Cache the four uncompressed IDX files with checksums.json (their MD5s and sizes)."""

    def record(tmp: Path) -> list[str]:
        sums = {}
        for name in IDX_FILES.values():
            raw = (tmp / name).read_bytes()
            sums[name] = {"md5": md5(raw), "bytes": len(raw)}
        (tmp / "checksums.json").write_text(json.dumps(sums, indent=1) + "\n")
        return ["checksums.json"]

    _cache_idx(data_set, folder, title, record)


def read_known(folder: Path, spec: KnownDataset) -> MNIST:
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
    return make_mnist(arrays, folder, verified=True)

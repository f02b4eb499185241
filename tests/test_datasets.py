"""Data sets known by name (Fashion-MNIST, KMNIST): verified from the published .gz files,
cached, checked on every read, and trained on like MNIST.

The real files are not fetched here; synthetic files stand in, with the published checksums
replaced by theirs, so that the verification path is the one real files take.
"""

import dataclasses
import gzip
import json

import pytest
from conftest import make_digits, write_idx

import vaelab.data.catalogue as catalogue
from vaelab.cli import main
from vaelab.data import IDX_FILES, DataError, default_cache_dir, fetch_dataset, load_dataset


@pytest.fixture
def published(tmp_path, monkeypatch):
    """A folder of four gzipped IDX files, made the 'published' Fashion-MNIST for the test."""
    folder = tmp_path / "fashion-published"
    folder.mkdir()
    for part, n, seed in [("train", 600, 1), ("t10k", 120, 2)]:
        x, y = make_digits(n, seed)
        write_idx(folder / f"{part}-images-idx3-ubyte.gz", x, compress=True)
        write_idx(folder / f"{part}-labels-idx1-ubyte.gz", y, compress=True)
    import hashlib

    sums = {
        f: hashlib.md5((folder / f"{f}.gz").read_bytes()).hexdigest() for f in IDX_FILES.values()
    }
    spec = dataclasses.replace(catalogue.FASHION_MNIST, gz_md5=sums)
    monkeypatch.setattr(catalogue, "FASHION_MNIST", spec)
    return folder


def test_the_published_checksums_are_kept_for_each_file():
    for spec in (catalogue.FASHION_MNIST, catalogue.KMNIST):
        assert set(spec.gz_md5) == set(IDX_FILES.values())
        assert all(len(v) == 32 and int(v, 16) >= 0 for v in spec.gz_md5.values())
        assert len(spec.classes) == 10


def test_fetch_verifies_caches_and_every_read_checks_the_cache(published, tmp_path):
    folder = fetch_dataset("fashion-mnist", published)
    assert folder.name == "fashion-mnist"
    data = load_dataset("fashion-mnist")
    assert data.verified and data.train_images.shape == (600, 28, 28)
    sums = json.loads((folder / "checksums.json").read_text())
    assert set(sums) == set(IDX_FILES.values())
    path = folder / IDX_FILES["test_labels"]
    raw = bytearray(path.read_bytes())
    raw[-1] = (raw[-1] + 1) % 10  # one label changed on disk, same size
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="changed since it was cached"):
        load_dataset("fashion-mnist")


def test_files_that_are_not_the_published_ones_are_refused(published, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    for f in IDX_FILES.values():
        (other / f"{f}.gz").write_bytes((published / f"{f}.gz").read_bytes())
    name = IDX_FILES["train_images"]
    x, _ = make_digits(600, 9)
    write_idx(other / f"{name}.gz", x, compress=True)
    with pytest.raises(DataError, match=f"MD5 mismatch for {name}.gz .* not the published Fashion"):
        fetch_dataset("fashion-mnist", other)
    assert not (default_cache_dir() / "fashion-mnist").exists()  # nothing cached from them
    raw = tmp_path / "raw"
    raw.mkdir()
    for f in IDX_FILES.values():
        (raw / f).write_bytes(gzip.decompress((published / f"{f}.gz").read_bytes()))
    with pytest.raises(DataError, match="uncompressed copy cannot be checked"):
        fetch_dataset("fashion-mnist", raw)
    with pytest.raises(DataError, match="not in the cache"):
        load_dataset("kmnist")


def test_train_and_evaluate_on_a_named_data_set(published, tmp_path, capsys):
    assert main(["data", "fetch", "fashion-mnist", "--data-dir", str(published)]) == 0
    run = tmp_path / "run"
    argv = ["train", "--dataset", "fashion-mnist", "--epochs", "1", "--hidden", "32",
            "--latent-dim", "2", "--out", str(run), "--no-progress", "--no-figures"]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json", "--quality", "--probes"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["pixels"].startswith("fashion-mnist, grayscale")
    assert "MNIST digits" in result["sample_quality_skipped"] and "skipped" in err
    assert 0 <= result["probes"]["linear_probe_acc"] <= 1
    bad = [
        "train",
        "--dataset",
        "fashion-mnist",
        "--protocol",
        "paper",
        "--out",
        str(tmp_path / "p"),
    ]
    assert main(bad) == 1
    assert "--protocol paper needs dataset='mnist'" in capsys.readouterr().err
    assert main(["data", "fetch", "cifar"]) == 1

"""``dsprites``: DeepMind's file read safely from --data-dir.

A tiny synthetic file stands in: the same member names, a grid of 1 x 3 x 2 x 2 x 2 x 2 = 48
images (the module's FILE_SIZES patched), and a pickled object-array ``metadata`` member that
raises ZeroDivisionError if it is ever unpickled.
"""

from __future__ import annotations

import math
import operator
import zipfile

import numpy as np
import pytest
import torch

from vaelab.cli import main
from vaelab.config import DataConfig
from vaelab.data import DataError, dsprites, factors, ground_truth, load_splits

SIZES = (1, 3, 2, 2, 2, 2)
N = math.prod(SIZES)


class Trap:
    """Unpickling this calls 1 / 0."""

    def __reduce__(self):
        return operator.truediv, (1, 0)


def make_file(path, imgs=None, classes=None, metadata=True, values=True):
    order = np.stack(np.unravel_index(np.arange(N), SIZES), axis=1).astype(np.int64)
    rng = np.random.default_rng(0)
    members = {
        "imgs": rng.integers(0, 2, (N, 64, 64), dtype=np.uint8) if imgs is None else imgs,
        "latents_classes": order if classes is None else classes,
    }
    if values:
        members["latents_values"] = order * 0.5 + 1.0
    if metadata:
        members["metadata"] = np.array([{"trap": Trap()}], dtype=object)
    np.savez(path, **members)
    return path


@pytest.fixture
def small(monkeypatch, tmp_path):
    monkeypatch.setattr(dsprites, "FILE_SIZES", SIZES)
    monkeypatch.setattr(factors, "GRID_TEST_SIZE", 8)
    factors.load_grid.cache_clear()
    yield make_file(tmp_path / dsprites.FILE_NAME)
    factors.load_grid.cache_clear()


def test_the_trap_is_live_but_the_reader_never_unpickles_it(small):
    with pytest.raises(ZeroDivisionError):
        np.load(small, allow_pickle=True)["metadata"]
    grid = dsprites.dsprites_grid(small.parent)  # a folder holding the file
    assert grid.sizes == SIZES[1:] and grid.names[0] == "shape" and len(grid) == N
    with np.load(small) as raw:  # allow_pickle=False: the plain members only
        expect = raw["imgs"][[5, 17]].reshape(2, -1) * 255
        np.testing.assert_array_equal(grid.images(grid.factors_of([5, 17])), expect)
        np.testing.assert_array_equal(grid.values[1], raw["latents_values"][[0, 8], 2])


def test_splits_of_the_file_carry_its_factors_without_colour(small):
    cfg = DataConfig(dataset="dsprites", data_dir=str(small), val_size=6)
    splits = load_splits(cfg)
    assert [len(s) for s in splits.values()] == [N - 14, 6, 8]
    with np.load(small) as raw:
        imgs, classes = raw["imgs"], raw["latents_classes"]
    for s in splits.values():
        index = ground_truth(cfg).index_of(s.factors.numpy())
        np.testing.assert_array_equal(s.pixels.numpy(), imgs[index].reshape(len(s), -1) * 255)
        np.testing.assert_array_equal(s.factors.numpy(), classes[index][:, 1:])
        assert torch.equal(s.y, s.factors[:, 0]) and s.factor_names == dsprites.NAMES
    assert cfg.binary


@pytest.mark.parametrize(
    "change, message",
    [
        ({"classes": np.zeros((N, 6), np.int64)}, "not the grid"),
        ({"imgs": np.full((N, 64, 64), 2, np.uint8)}, "0 / 1"),
        ({"imgs": np.zeros((N, 64, 32), np.uint8)}, "imgs is"),
        ({"imgs": np.zeros((N, 64, 64), np.float32)}, "refused before reading"),  # 4x the bytes
        ({"imgs": np.array([Trap()], dtype=object)}, "not plain numbers"),
        ({"values": False}, None),  # latents_values is optional
    ],
)
def test_a_wrong_file_is_refused_in_one_line(small, change, message):
    make_file(small, **change)
    if message is None:
        assert dsprites.dsprites_grid(small).values[0].tolist() == [0.0, 1.0, 2.0]
        return
    with pytest.raises(DataError, match=message) as e:
        dsprites.dsprites_grid(small)
    assert "\n" not in str(e.value)


def test_what_only_the_pickled_metadata_holds_is_refused(small):
    with zipfile.ZipFile(small, "w") as zf:
        zf.writestr("metadata.npy", b"not read")
        zf.writestr("imgs.npy", b"")
    with pytest.raises(DataError, match="lacks latents_classes .*pickled metadata is never read"):
        dsprites.dsprites_grid(small)


def test_without_the_file_the_error_says_where_to_get_it(capsys, tmp_path):
    assert main(["data", "fetch", "dsprites"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "github.com/deepmind/dsprites-dataset" in err
    assert "--dataset sprites" in err
    with pytest.raises(DataError, match="no such file"):
        dsprites.dsprites_grid(tmp_path)


def test_fetch_verifies_the_file_and_says_so(small, capsys):
    assert main(["data", "fetch", "dsprites", "--data-dir", str(small)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and str(small) in out[0] and f"{N:,} images" in out[0]

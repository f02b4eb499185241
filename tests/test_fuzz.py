"""The data readers under fuzzing: whatever the bytes, one clear DataError, never a crash of
another kind, and never an allocation of what a header merely claims (numpy's allocations are
traced by ``tracemalloc``: the peak while reading a file that claims gigabytes stays small).
"""

import gzip
import io
import pickle
import struct
import zipfile

import numpy as np
import pytest
from helpers import peak_bytes
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from vaelab.data import DataError
from vaelab.data.formats import _gunzip, _load_npz, _restricted_loads, parse_idx

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def idx_header(ndim: int, dims: list[int]) -> bytes:
    return struct.pack(f">I{ndim}I", 0x0800 | ndim, *dims)


@FUZZ
@given(st.binary(max_size=2000))
@example(b"")
@example(b"\x00\x00\x08\x03")  # a header cut short
@example(idx_header(3, [2**31, 28, 28]))  # billions of images claimed, none given
@example(idx_header(1, [10]) + bytes(5))  # truncated payload
@example(b"\x1f\x8b" + bytes(20))  # a gzip magic, then garbage
def test_idx_parser_raises_only_data_errors(data):
    try:
        out = parse_idx(data, "fuzz.idx")
    except DataError as e:
        assert "fuzz.idx" in str(e) and "\n" not in str(e)
        return
    assert out.nbytes <= len(data)  # a result comes from the bytes given, never from a claim


@FUZZ
@given(st.integers(1, 3), st.lists(st.integers(0, 2**32 - 1), min_size=3, max_size=3),
       st.binary(max_size=64))  # fmt: skip
@example(3, [0, 3_036_988_439, 3_037_012_561], b"")  # empty, yet too large for numpy
def test_idx_headers_claiming_any_size_are_checked_against_the_bytes(ndim, dims, payload):
    data = idx_header(ndim, dims[:ndim]) + payload
    try:
        out = parse_idx(data, "claim.idx")
    except DataError as e:
        assert "claim.idx" in str(e)
        return
    assert out.size == len(payload)


@FUZZ
@given(st.binary(max_size=3000))
def test_truncated_or_corrupt_gzip_gives_a_data_error(data):
    blob = gzip.compress(idx_header(1, [len(data)]) + data)
    for cut in (len(blob) // 3, len(blob) // 2, len(blob) - 4):
        with pytest.raises(DataError, match="gzip"):
            _gunzip(blob[:cut], "cut.gz")
    assert _gunzip(blob, "whole.gz").endswith(data)


def test_a_gzip_bomb_is_refused_before_it_inflates():
    bomb = gzip.compress(bytes(50_000_000))  # 50 MB of zeros in about 50 KB
    with pytest.raises(DataError, match="inflates beyond 1,000,000 bytes"):
        _gunzip(bomb, "bomb.gz", limit=1_000_000)


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@FUZZ
@given(st.binary(max_size=2000), st.integers(0, 1500))
def test_npz_reader_raises_only_data_errors(tmp_path_factory, noise, at):
    good = bytearray(npz_bytes({"x_train": np.zeros((2, 28, 28), np.uint8)}))
    at = min(at, len(good))
    bad = bytes(good[:at]) + noise + bytes(good[at + len(noise) :])
    path = tmp_path_factory.mktemp("npz") / "fuzz.npz"
    path.write_bytes(bad)
    with pytest.raises(DataError):  # never a complete MNIST: y_train and the test set are missing
        _load_npz(path)


def test_npz_header_claiming_billions_of_images_is_refused_before_reading(tmp_path):
    """A .npy header can claim any shape; the reader compares the claim with the bytes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (3_000_000_000, 28, 28)}
    )
    path = tmp_path / "claim.npz"
    with zipfile.ZipFile(path, "w") as zf:
        for key in ("x_train", "y_train", "x_test", "y_test"):
            zf.writestr(f"{key}.npy", b"\x93NUMPY\x01\x00" + header.getvalue()[8:] + bytes(100))
    with pytest.raises(DataError, match="claims .* bytes of data; refused"):
        _load_npz(path)


@FUZZ
@given(st.binary(max_size=1000))
@example(pickle.dumps(np.zeros(3)))
@example(b"cos\nsystem\n(S'true'\ntR.")  # os.system('true') in protocol 0
def test_restricted_unpickler_raises_only_data_errors(data):
    try:
        _restricted_loads(data, "fuzz.pkl")
    except DataError as e:
        assert "fuzz.pkl" in str(e)


def test_a_pickled_array_claiming_a_huge_shape_does_not_allocate_it():
    blob = pickle.dumps(np.zeros(4, np.uint8), protocol=2)
    assert b"K\x04\x85" in blob  # the shape tuple (4,)
    huge = blob.replace(b"K\x04\x85", b"\x8a\x05\x00\x00\x00\x80\x00\x85", 1)  # (2**31,)
    with pytest.raises(DataError):
        _restricted_loads(huge, "huge.pkl")
    assert peak_bytes(lambda: _restricted_loads(huge, "huge.pkl")) < 2**20


def test_idx_and_npz_claims_of_gigabytes_allocate_nothing_like_them(tmp_path):
    claim = idx_header(3, [3_000_000, 28, 28]) + bytes(1000)  # 2.4 GB claimed
    assert peak_bytes(lambda: parse_idx(claim, "claim.idx")) < 2**20
    assert peak_bytes(lambda: parse_idx(gzip.compress(claim), "claim.idx.gz")) < 2**20
    test_npz_header_claiming_billions_of_images_is_refused_before_reading(tmp_path)
    assert peak_bytes(lambda: _load_npz(tmp_path / "claim.npz")) < 2**20

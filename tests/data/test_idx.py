import gzip
import struct
import tracemalloc

import numpy as np
import pytest

from numcnn.data import read_idx, write_idx

# dtype -> (IDX code, struct format of one big-endian item)
DTYPES = {
    np.uint8: (0x08, ">B"),
    np.int8: (0x09, ">b"),
    np.int16: (0x0B, ">h"),
    np.int32: (0x0C, ">i"),
    np.float32: (0x0D, ">f"),
    np.float64: (0x0E, ">d"),
}


def sample(dtype, shape=(3, 4, 5)):
    rng = np.random.default_rng(0)
    if np.dtype(dtype).kind == "f":
        a = rng.standard_normal(shape).astype(dtype)
        a.flat[:4] = [np.inf, -np.inf, -0.0, np.finfo(dtype).tiny]
    else:
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
        a.flat[:2] = [info.min, info.max]
    return a


def reference_bytes(a):
    """IDX bytes built item by item with struct, independently of numcnn."""
    code, fmt = DTYPES[a.dtype.type]
    header = bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    return header + b"".join(struct.pack(fmt, v) for v in a.ravel().tolist())


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_round_trip_matches_struct_reference(tmp_path, dtype, compress):
    a = sample(dtype)
    path = tmp_path / "a.idx"
    write_idx(path, a, compress=compress)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") is compress
    assert (gzip.decompress(raw) if compress else raw) == reference_bytes(a)
    back = read_idx(path)
    assert back.dtype == a.dtype and back.dtype.isnative and back.shape == a.shape
    np.testing.assert_array_equal(back, a)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_read_hand_built_file(tmp_path, dtype):
    a = sample(dtype, shape=(7,))
    (tmp_path / "h").write_bytes(reference_bytes(a))
    np.testing.assert_array_equal(read_idx(tmp_path / "h"), a)
    (tmp_path / "h.gz").write_bytes(gzip.compress(reference_bytes(a)))
    np.testing.assert_array_equal(read_idx(tmp_path / "h.gz"), a)


def test_compression_detected_by_magic_not_name(tmp_path):
    a = sample(np.uint8, (2, 3))
    write_idx(tmp_path / "plain.gz", a, compress=False)
    write_idx(tmp_path / "packed.idx", a, compress=True)
    write_idx(tmp_path / "default.gz", a)  # compressed by default because of the name
    assert (tmp_path / "plain.gz").read_bytes()[:4] == b"\x00\x00\x08\x02"
    assert (tmp_path / "default.gz").read_bytes()[:2] == b"\x1f\x8b"
    for name in ("plain.gz", "packed.idx", "default.gz"):
        np.testing.assert_array_equal(read_idx(tmp_path / name), a)
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["default.gz", "packed.idx", "plain.gz"]


def header(code, shape):
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_payload_message(tmp_path, compress):
    data = header(0x08, (60000, 28, 28)) + bytes(1000)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(ValueError) as err:
        read_idx(path)
    assert str(err.value) == (
        f"{path}: expected 47040000 bytes of uint8 pixel data for shape (60000, 28, 28), found 1000"
    )


@pytest.mark.parametrize("compress", [False, True])
def test_trailing_bytes_refused(tmp_path, compress):
    data = header(0x0C, (2, 5)) + bytes(41)
    path = tmp_path / "x"
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(ValueError, match=r"x: expected 40 bytes of int32 data for shape \(2, 5\), found 41$"):
        read_idx(path)


def test_label_data_named(tmp_path):
    (tmp_path / "l").write_bytes(header(0x08, (10,)) + bytes(9))
    with pytest.raises(ValueError, match=r"expected 10 bytes of uint8 label data for shape \(10,\), found 9"):
        read_idx(tmp_path / "l")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", r"0 bytes, too short for the 4-byte magic number"),
        (b"\x12\x34\x08\x01" + bytes(8), r"not an IDX file: magic number starts with 12 34, expected 00 00"),
        (b"\x00\x00\x0a\x01" + struct.pack(">I", 3) + bytes(3), r"unknown IDX dtype code 0x0A"),
        (b"\x00\x00\x08\x00", r"IDX header declares 0 dimensions"),
        (
            b"\x00\x00\x08\x03" + struct.pack(">I", 5),
            r"truncated IDX header: expected 3 dimensions",
        ),
    ],
)
@pytest.mark.parametrize("compress", [False, True])
def test_bad_header_refused(tmp_path, data, message, compress):
    path = tmp_path / "bad-file"
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(ValueError, match=message) as err:
        read_idx(path)
    assert str(err.value).startswith(f"{path}: ")


@pytest.mark.parametrize("compress", [False, True])
def test_forged_huge_header_refused_without_allocating(tmp_path, compress):
    # 10**12 float64 items claimed, 64 bytes present.
    data = header(0x0E, (10**6, 10**6)) + bytes(64)
    path = tmp_path / "forged"
    path.write_bytes(gzip.compress(data) if compress else data)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as err:
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(err.value) == (
        f"{path}: expected 8000000000000 bytes of float64 data for shape (1000000, 1000000), found 64"
    )
    assert peak < 16 * 2**20


def test_corrupt_gzip_refused(tmp_path):
    a = sample(np.uint8, (4, 28, 28))
    packed = bytearray(gzip.compress(reference_bytes(a)))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ValueError, match=r"cut\.gz: corrupt or truncated gzip stream \(Compressed file"):
        read_idx(cut)
    packed[-8] ^= 0xFF  # CRC32 of the content
    bad_crc = tmp_path / "crc.gz"
    bad_crc.write_bytes(bytes(packed))
    with pytest.raises(ValueError, match=r"crc\.gz: corrupt or truncated gzip stream \(CRC check failed"):
        read_idx(bad_crc)
    packed[-8] ^= 0xFF
    packed[20:40] = b"\xff" * 20  # deflate data
    garbled = tmp_path / "garbled.gz"
    garbled.write_bytes(bytes(packed))
    with pytest.raises(ValueError, match=r"garbled\.gz: corrupt or truncated gzip stream"):
        read_idx(garbled)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros(3, dtype=np.int64), "IDX cannot store dtype int64"),
        (np.zeros(3, dtype=bool), "IDX cannot store dtype bool"),
        (np.float32(1.0), r"IDX stores 1 to 255 dimensions, got shape \(\)"),
    ],
)
def test_write_refuses_unstorable(tmp_path, array, message):
    with pytest.raises(ValueError, match=message):
        write_idx(tmp_path / "x.idx", array)
    assert list(tmp_path.iterdir()) == []

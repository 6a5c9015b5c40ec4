"""CIFAR-10 / CIFAR-100 from files written here in the documented formats; hostile Python-version files refused."""

import os
import pickle

import numpy as np
import pytest

from numcnn.data import CIFAR10, CIFAR100, DataLoader


def fake(seed, n, classes=10):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, classes, n)


def write_binary(folder, n=4):
    """cifar-10-batches-bin: per record 1 label byte + 1024 R + 1024 G + 1024 B bytes."""
    folder.mkdir(parents=True)
    out = {}
    for k, name in enumerate([f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]):
        pixels, labels = fake(k, n)
        with open(folder / name, "wb") as f:
            for p, y in zip(pixels, labels, strict=True):
                f.write(bytes([int(y)]) + p.tobytes())
        out[name] = (pixels, labels)
    return out


def write_python(folder, n=4, protocol=2):
    """cifar-10-batches-py: pickled dicts {b'data': uint8 (N, 3072), b'labels': [int], ...}."""
    folder.mkdir(parents=True)
    out = {}
    for k, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        pixels, labels = fake(k, n)
        entry = {b"batch_label": b"batch", b"labels": [int(v) for v in labels], b"data": pixels,
                 b"filenames": [b"x.png"] * n}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=protocol))
        out[name] = (pixels, labels)
    return out


def expected_images(pixels):
    # Hand-decoded: byte 1024 * c + 32 * row + col is channel c at (row, col).
    img = np.empty((len(pixels), 32, 32, 3), dtype=np.uint8)
    for n in range(len(pixels)):
        for c in range(3):
            img[n, :, :, c] = pixels[n, 1024 * c:1024 * (c + 1)].reshape(32, 32)
    return img


@pytest.mark.parametrize("kind", ["binary", "python-2", "python-5"])
def test_cifar10_reads_both_versions(tmp_path, kind):
    if kind == "binary":
        files = write_binary(tmp_path / "cifar-10-batches-bin")
        train_names, test_name = [f"data_batch_{i}.bin" for i in range(1, 6)], "test_batch.bin"
    else:
        files = write_python(tmp_path / "cifar-10-batches-py", protocol=int(kind[-1]))
        train_names, test_name = [f"data_batch_{i}" for i in range(1, 6)], "test_batch"
    train, test = CIFAR10(tmp_path, train=True), CIFAR10(tmp_path, train=False)
    pixels = np.concatenate([files[n][0] for n in train_names])
    labels = np.concatenate([files[n][1] for n in train_names])
    assert train.data.shape == (20, 32, 32, 3) and train.data.dtype == np.uint8
    np.testing.assert_array_equal(train.data, expected_images(pixels))
    assert train.targets == labels.tolist() and isinstance(train.targets, list)
    np.testing.assert_array_equal(test.data, expected_images(files[test_name][0]))
    image, label = train[5]
    assert image.shape == (3, 32, 32) and label == labels[5]
    np.testing.assert_array_equal(image, expected_images(pixels[5:6])[0].transpose(2, 0, 1))
    x, y = next(iter(DataLoader(train, batch_size=20, as_tensors=False)))
    np.testing.assert_array_equal(x, expected_images(pixels).transpose(0, 3, 1, 2) / np.float32(255))
    assert x.dtype == np.float32


def test_cifar100_binary_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    pixels, fine = fake(0, 3, 100)
    coarse = fine // 5
    records = [bytes([int(c), int(f)]) + p.tobytes() for p, c, f in zip(pixels, coarse, fine, strict=True)]
    (folder / "test.bin").write_bytes(b"".join(records))
    ds = CIFAR100(tmp_path, train=False)
    assert ds.targets == fine.tolist()
    np.testing.assert_array_equal(ds.data, expected_images(pixels))


class Payload:
    def __reduce__(self):
        return (os.system, ("touch " + str(MARKER),))


MARKER = None


def test_hostile_python_file_is_refused_without_running(tmp_path):
    global MARKER
    MARKER = tmp_path / "pwned"
    write_python(tmp_path / "cifar-10-batches-py")
    hostile = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [Payload()]}
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps(hostile, protocol=2))
    with pytest.raises(ValueError, match=r"data_batch_3: .*refused global (posix|os)\.system"):
        CIFAR10(tmp_path, train=True)
    assert not MARKER.exists()


@pytest.mark.parametrize("payload, message", [
    ({b"data": np.array([1, "a"], dtype=object), b"labels": [0]}, "dtype object refused"),
    ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": {1, 2}},
     r"refused global (__builtin__|builtins)\.set"),
    ([1, 2], "expected a pickled dict"),
    ({b"data": np.zeros((1, 100), np.uint8), b"labels": [0]}, "expected uint8 data of shape"),
    ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}, "label 10 out of range"),
])
def test_malformed_python_files_are_refused(tmp_path, payload, message):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(ValueError, match=message):
        CIFAR10(tmp_path, train=False)


def test_truncated_binary_and_missing_files(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    (folder / "test_batch.bin").write_bytes(bytes(3073 + 100))
    with pytest.raises(ValueError, match="not a whole number of 3073-byte CIFAR records"):
        CIFAR10(tmp_path, train=False)
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        CIFAR10(tmp_path, train=True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        CIFAR10(tmp_path / "nowhere")


def tar_gz(members):
    """A .tar.gz holding ``members`` {name in the archive: bytes}."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_download_checks_md5_and_extracts(tmp_path, http_server, monkeypatch):
    import hashlib

    base, routes = http_server
    src = tmp_path / "src"
    files = write_python(src / "cifar-10-batches-py")
    archive = tar_gz({f"cifar-10-batches-py/{p.name}": p.read_bytes()
                      for p in sorted((src / "cifar-10-batches-py").iterdir())})
    routes.files["/cifar-10-python.tar.gz"] = archive
    monkeypatch.setattr(CIFAR10, "url", base + "/cifar-10-python.tar.gz")
    monkeypatch.setattr(CIFAR10, "tgz_md5", "0" * 32)
    root = tmp_path / "new" / "data"
    with pytest.raises(RuntimeError, match="MD5 mismatch"):
        CIFAR10(root, train=False, download=True)
    assert not (root / "cifar-10-python.tar.gz").exists()
    monkeypatch.setattr(CIFAR10, "tgz_md5", hashlib.md5(archive).hexdigest())
    test = CIFAR10(root, train=False, download=True)
    np.testing.assert_array_equal(test.data, expected_images(files["test_batch"][0]))
    assert routes.log.count("/cifar-10-python.tar.gz") == 2
    CIFAR10(root, train=True, download=True)  # found on disk: nothing downloaded again
    assert routes.log.count("/cifar-10-python.tar.gz") == 2


def test_archive_escaping_root_is_refused(tmp_path, http_server, monkeypatch):
    import hashlib

    base, routes = http_server
    archive = tar_gz({"../escaped.txt": b"outside"})
    routes.files["/evil.tar.gz"] = archive
    monkeypatch.setattr(CIFAR10, "url", base + "/evil.tar.gz")
    monkeypatch.setattr(CIFAR10, "tgz_md5", hashlib.md5(archive).hexdigest())
    with pytest.raises(ValueError, match="cannot extract"):
        CIFAR10(tmp_path / "root", download=True)
    assert not (tmp_path / "escaped.txt").exists()


def test_a_forged_memo_index_is_refused_before_the_unpickler_sizes_its_memo():
    """12 bytes naming memo slot 2**24 made CPython's unpickler allocate ~268 MB before failing: refused on a scan."""
    import tracemalloc

    from numcnn.data.safe_pickle import load_data_pickle

    raw = b"\x80\x02N" + b"r" + (1 << 24).to_bytes(4, "little") + b"."
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="memo slot 16777216 used after 2 opcodes"):
            load_data_pickle(raw, "data_batch_1")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20

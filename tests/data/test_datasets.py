import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from numcnn.data import MNIST, FashionMNIST, ToTensor, user_cache_dir

NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def check_loaded(ds, arrays, train=True):
    prefix = "train" if train else "t10k"
    np.testing.assert_array_equal(ds.data, arrays[f"{prefix}-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.targets, arrays[f"{prefix}-labels-idx1-ubyte"])
    assert ds.data.dtype == np.uint8 and ds.targets.dtype == np.int64


# -- locating ---------------------------------------------------------------------------------------


def test_locate_order_root_then_env_then_cache(tmp_path, monkeypatch, write_fake):
    in_root = write_fake(tmp_path / "root", seed=1)
    in_env = write_fake(tmp_path / "env" / "fashion-mnist", seed=2)
    in_cache = write_fake(tmp_path / "xdg-cache" / "numcnn" / "fashion-mnist", seed=3)
    monkeypatch.setenv("NUMCNN_DATA", str(tmp_path / "env"))
    ds = FashionMNIST(root=tmp_path / "root")
    check_loaded(ds, in_root)
    assert ds.folder == tmp_path / "root"
    check_loaded(FashionMNIST(), in_env)
    monkeypatch.delenv("NUMCNN_DATA")
    check_loaded(FashionMNIST(train=False), in_cache, train=False)
    # An explicit root without the files falls through to the next places (a missing one is an error: see
    # test_dataset_root.py).
    (tmp_path / "empty").mkdir()
    check_loaded(FashionMNIST(root=tmp_path / "empty"), in_cache)


def test_root_subfolders_and_env_forms(tmp_path, monkeypatch, write_fake):
    named = write_fake(tmp_path / "r1" / "mnist", seed=4)
    check_loaded(MNIST(root=tmp_path / "r1"), named)
    torchvision_layout = write_fake(tmp_path / "r2" / "MNIST" / "raw", seed=5)
    check_loaded(MNIST(root=tmp_path / "r2"), torchvision_layout)
    direct = write_fake(tmp_path / "flat", seed=6)
    monkeypatch.setenv("NUMCNN_DATA", str(tmp_path / "flat"))
    check_loaded(MNIST(), direct)
    sub = write_fake(tmp_path / "flat" / "mnist", seed=7)  # the named subfolder wins over the flat files
    check_loaded(MNIST(), sub)


def test_cache_location_follows_xdg_then_home(tmp_path, monkeypatch, write_fake):
    assert user_cache_dir() == tmp_path / "xdg-cache" / "numcnn"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert user_cache_dir() == tmp_path / "home" / ".cache" / "numcnn"
    arrays = write_fake(tmp_path / "home" / ".cache" / "numcnn" / "mnist", seed=8)
    check_loaded(MNIST(), arrays)
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # not absolute: ignored, as the XDG spec says
    assert user_cache_dir() == tmp_path / "home" / ".cache" / "numcnn"


def test_uncompressed_files_accepted(tmp_path, write_fake):
    arrays = write_fake(tmp_path / "plain", seed=9, gz=False)
    check_loaded(MNIST(root=tmp_path / "plain", train=False), arrays, train=False)


def test_system_folder_used_last(tmp_path, monkeypatch, write_fake):
    system = write_fake(tmp_path / "usr-share", seed=10)
    monkeypatch.setattr(FashionMNIST, "system_dirs", (str(tmp_path / "usr-share"),))
    check_loaded(FashionMNIST(), system)
    cached = write_fake(tmp_path / "xdg-cache" / "numcnn" / "fashion-mnist", seed=11)
    check_loaded(FashionMNIST(), cached)


def test_not_found_lists_places_and_options(tmp_path, monkeypatch):
    monkeypatch.setattr(FashionMNIST, "system_dirs", (str(tmp_path / "sys"),))
    (tmp_path / "r").mkdir()
    with pytest.raises(FileNotFoundError) as err:
        FashionMNIST(root=tmp_path / "r")
    msg = str(err.value)
    assert msg.startswith("FashionMNIST: could not find train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz")
    r = tmp_path / "r"
    for place in (
        f"root: {r}\n",
        f"root: {r / 'fashion-mnist'}\n",
        f"root: {r / 'FashionMNIST' / 'raw'}\n",
        f"user cache: {tmp_path / 'xdg-cache' / 'numcnn' / 'fashion-mnist'}\n",
        f"system: {tmp_path / 'sys'}\n",
        "$NUMCNN_DATA is not set",
        "pass root=",
        "set NUMCNN_DATA=",
        "apt-get install dataset-fashion-mnist",
        "download=True (from http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/)",
    ):
        assert place in msg
    with pytest.raises(FileNotFoundError) as err:
        MNIST()
    assert "apt-get" not in str(err.value)


def test_bad_content_refused(tmp_path, make_idx):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte").write_bytes(make_idx(np.zeros((3, 28, 28), np.uint8)))
    (folder / "train-labels-idx1-ubyte").write_bytes(make_idx(np.zeros(4, np.uint8)))
    with pytest.raises(ValueError, match="4 labels for 3 images"):
        MNIST(root=folder)
    (folder / "train-labels-idx1-ubyte").write_bytes(make_idx(np.array([0, 1, 10], np.uint8)))
    with pytest.raises(ValueError, match="label 10 out of range for 10 classes"):
        MNIST(root=folder)
    (folder / "train-images-idx3-ubyte").write_bytes(make_idx(np.zeros((3, 28, 27), np.uint8)))
    with pytest.raises(ValueError, match=r"expected uint8 images of shape \(N, 28, 28\), got uint8 \(3, 28, 27\)"):
        MNIST(root=folder)


def write_split(make_idx, folder: Path, prefix: str, images, labels, gz: bool = True) -> Path:
    """Write one split's two IDX files (gzipped or not) into ``folder``; return the images file."""
    folder.mkdir(parents=True, exist_ok=True)
    for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
        data = make_idx(array)
        path = folder / f"{prefix}-{kind}-ubyte{'.gz' if gz else ''}"
        path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return folder / f"{prefix}-images-idx3-ubyte{'.gz' if gz else ''}"


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("gz", [True, False])
def test_file_with_zero_images_refused_naming_it(tmp_path, make_idx, train, gz):
    """An images file whose header says 0 images (and 0 labels) is refused on loading, in one line naming it."""
    folder = tmp_path / "d"
    prefix, other = ("train", "t10k") if train else ("t10k", "train")
    empty = write_split(make_idx, folder, prefix, np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8), gz)
    write_split(make_idx, folder, other, np.zeros((3, 28, 28), np.uint8), np.arange(3, dtype=np.uint8), gz)
    for cls in (MNIST, FashionMNIST):
        with pytest.raises(ValueError) as err:
            cls(root=folder, train=train)
        msg = str(err.value)
        assert msg == f"{empty}: the file holds 0 images (its IDX header says shape (0, 28, 28)); there is " \
                      "nothing to train or test on"
        assert len(cls(root=folder, train=not train)) == 3  # the other split still loads


def test_zero_images_with_labels_is_a_count_mismatch_naming_both_files(tmp_path, make_idx):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "t10k-images-idx3-ubyte").write_bytes(make_idx(np.zeros((5, 28, 28), np.uint8)))
    (folder / "t10k-labels-idx1-ubyte").write_bytes(make_idx(np.zeros(0, np.uint8)))
    with pytest.raises(ValueError) as err:
        MNIST(root=folder, train=False)
    assert str(err.value) == (f"{folder / 't10k-labels-idx1-ubyte'}: 0 labels for 5 images in "
                              f"{folder / 't10k-images-idx3-ubyte'}")


def test_getitem_and_transforms(tmp_path, write_fake):
    arrays = write_fake(tmp_path, seed=12)
    ds = MNIST(root=tmp_path, transform=ToTensor(), target_transform=lambda y: y + 100)
    image, label = ds[3]
    np.testing.assert_array_equal(image, arrays["train-images-idx3-ubyte"][3][None] / np.float32(255))
    assert image.dtype == np.float32 and image.shape == (1, 28, 28)
    assert label == int(arrays["train-labels-idx1-ubyte"][3]) + 100 and isinstance(label, int)
    plain = MNIST(root=tmp_path)
    assert len(plain) == 12
    np.testing.assert_array_equal(plain[-1][0], arrays["train-images-idx3-ubyte"][-1])
    assert FashionMNIST.classes[0] == "T-shirt/top" and FashionMNIST.classes[9] == "Ankle boot"
    assert plain.class_to_idx["3 - three"] == 3


# -- downloading ------------------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path, http_server, write_fake, monkeypatch):
    """Fake dataset files on a local server; FashionMNIST.resources patched to their MD5s."""
    base, routes = http_server
    arrays = write_fake(tmp_path / "source", seed=20)
    blobs = {f"{n}.gz": (tmp_path / "source" / f"{n}.gz").read_bytes() for n in NAMES}
    monkeypatch.setattr(FashionMNIST, "resources", {k: hashlib.md5(v).hexdigest() for k, v in blobs.items()})
    return base, routes, arrays, blobs


def cache_dir(tmp_path):
    return tmp_path / "xdg-cache" / "numcnn" / "fashion-mnist"


def test_download_verifies_and_falls_back(tmp_path, served):
    base, routes, arrays, blobs = served
    for name, blob in blobs.items():
        routes.files[f"/good/{name}"] = blob
    wrong = bytearray(blobs["train-images-idx3-ubyte.gz"])
    wrong[-8] ^= 1
    routes.files["/bad/train-images-idx3-ubyte.gz"] = bytes(wrong)  # right length, wrong checksum
    routes.truncated["/bad/train-labels-idx1-ubyte.gz"] = (blobs["train-labels-idx1-ubyte.gz"][:50], 1000)
    ds = FashionMNIST(download=True, mirrors=[f"{base}/bad/", f"{base}/good"])
    check_loaded(ds, arrays)
    assert ds.folder == cache_dir(tmp_path)
    assert sorted(p.name for p in cache_dir(tmp_path).iterdir()) == sorted(blobs)
    for name, blob in blobs.items():
        assert (cache_dir(tmp_path) / name).read_bytes() == blob
    assert routes.log == [
        "/bad/train-images-idx3-ubyte.gz",
        "/good/train-images-idx3-ubyte.gz",
        "/bad/train-labels-idx1-ubyte.gz",
        "/good/train-labels-idx1-ubyte.gz",
        "/bad/t10k-images-idx3-ubyte.gz",
        "/good/t10k-images-idx3-ubyte.gz",
        "/bad/t10k-labels-idx1-ubyte.gz",
        "/good/t10k-labels-idx1-ubyte.gz",
    ]
    # Second time: found in the cache, nothing fetched.
    check_loaded(FashionMNIST(train=False, download=True, mirrors=[f"{base}/good"]), arrays, train=False)
    assert len(routes.log) == 8


def test_download_failure_leaves_nothing_and_lists_attempts(tmp_path, served):
    base, routes, _, blobs = served
    wrong = bytearray(blobs["train-images-idx3-ubyte.gz"])
    wrong[-8] ^= 1
    routes.files["/bad/train-images-idx3-ubyte.gz"] = bytes(wrong)
    routes.truncated["/short/train-images-idx3-ubyte.gz"] = (blobs["train-images-idx3-ubyte.gz"][:100], 5000)
    with pytest.raises(RuntimeError) as err:
        FashionMNIST(download=True, mirrors=[f"{base}/bad", f"{base}/short", f"{base}/none"])
    msg = str(err.value)
    good_md5 = FashionMNIST.resources["train-images-idx3-ubyte.gz"]
    bad_md5 = hashlib.md5(wrong).hexdigest()
    assert msg.startswith("FashionMNIST: could not download train-images-idx3-ubyte.gz")
    assert (
        f"{base}/bad/train-images-idx3-ubyte.gz: MD5 mismatch: got {bad_md5}, expected {good_md5} "
        f"({len(wrong)} bytes)\n"
    ) in msg
    assert f"{base}/short/train-images-idx3-ubyte.gz: truncated: received 100 of 5000 bytes\n" in msg
    assert f"{base}/none/train-images-idx3-ubyte.gz: HTTP 404 Not Found\n" in msg
    assert f"{base}/none/t10k-labels-idx1-ubyte.gz: HTTP 404 Not Found\n" in msg
    assert msg.count(": HTTP 404") == 10  # 4 files from /none, 3 each from /bad and /short
    assert "mirrors=[...] or NUMCNN_MIRRORS" in msg
    assert list(cache_dir(tmp_path).iterdir()) == []  # no partial or unverified file, no temp file


def test_unreachable_mirror(tmp_path, served):
    base, routes, arrays, blobs = served
    for name, blob in blobs.items():
        routes.files[f"/m/{name}"] = blob
    # Port 1 on localhost: connection refused, then the next mirror.
    ds = FashionMNIST(download=True, mirrors=["http://127.0.0.1:1/", f"{base}/m"])
    check_loaded(ds, arrays)


def test_mirrors_from_env_and_argument_precedence(tmp_path, served, monkeypatch):
    base, routes, arrays, blobs = served
    for name, blob in blobs.items():
        routes.files[f"/env/{name}"] = blob
        routes.files[f"/arg/{name}"] = blob
    monkeypatch.setenv("NUMCNN_MIRRORS", f" {base}/missing , {base}/env/ ")
    check_loaded(FashionMNIST(download=True), arrays)
    assert routes.log[:2] == ["/missing/train-images-idx3-ubyte.gz", "/env/train-images-idx3-ubyte.gz"]
    for f in cache_dir(tmp_path).iterdir():
        f.unlink()
    routes.log.clear()
    check_loaded(FashionMNIST(download=True, mirrors=[f"{base}/arg"]), arrays)
    assert {p.split("/")[1] for p in routes.log} == {"arg"}


def test_download_into_root_when_given(tmp_path, served):
    base, routes, arrays, blobs = served
    for name, blob in blobs.items():
        routes.files[f"/{name}"] = blob
    ds = FashionMNIST(root=tmp_path / "mine", train=False, download=True, mirrors=[base])
    check_loaded(ds, arrays, train=False)
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == sorted(blobs)
    assert not cache_dir(tmp_path).exists()


# -- real data --------------------------------------------------------------------------------------

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def idx_md5(array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return hashlib.md5(header + array.astype(np.uint8).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def fashion_train():
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    return FashionMNIST(root=FASHION_DIR, train=True)


def test_real_fashion_mnist_train(fashion_train):
    ds = fashion_train
    assert ds.data.shape == (60000, 28, 28) and ds.data.dtype == np.uint8
    assert ds.targets.shape == (60000,) and ds.targets.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(ds.targets), np.full(10, 6000))
    # The loaded arrays, written back as IDX, are byte for byte the published decompressed files.
    assert idx_md5(ds.data) == "f4a8712d7a061bf5bd6d2ca38dc4d50a"
    assert idx_md5(ds.targets) == "9018921c3c673c538a1fc5bad174d6f9"


def test_real_fashion_mnist_test_found_in_system_folder(monkeypatch):
    if not (FASHION_DIR / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    monkeypatch.setattr(FashionMNIST, "system_dirs", (str(FASHION_DIR),))
    ds = FashionMNIST(train=False)
    assert ds.folder == FASHION_DIR
    assert ds.data.shape == (10000, 28, 28)
    np.testing.assert_array_equal(np.bincount(ds.targets), np.full(10, 1000))
    assert idx_md5(ds.data) == "8181f5470baa50b63fa0f6fddb340f0a"
    assert idx_md5(ds.targets) == "15d484375f8d13e6eb1aabb0c3f46965"


# -- MNIST on files written here -------------------------------------------------------------------


@pytest.mark.parametrize("train, n", [(True, 80), (False, 20)])
@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_files_written_here(tmp_path, monkeypatch, make_idx, train, n, gz):
    """MNIST's code path on small IDX files this test writes (MNIST itself is a download away, not in the repo):
    found through $NUMCNN_DATA/mnist, every byte of the payloads kept, every class present."""
    rng = np.random.default_rng(n)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
    prefix = "train" if train else "t10k"
    folder = tmp_path / "data" / "mnist"
    image_file = write_split(make_idx, folder, prefix, images, labels, gz)
    monkeypatch.setenv("NUMCNN_DATA", str(tmp_path / "data"))
    ds = MNIST(train=train)
    assert ds.folder == folder and len(ds) == n
    assert ds.data.shape == (n, 28, 28) and ds.targets.shape == (n,)
    raw_images = image_file.read_bytes()
    raw_labels = (folder / image_file.name.replace("images-idx3", "labels-idx1")).read_bytes()
    if gz:
        raw_images, raw_labels = gzip.decompress(raw_images), gzip.decompress(raw_labels)
    assert ds.data.tobytes() == raw_images[16:] and ds.targets.astype(np.uint8).tobytes() == raw_labels[8:]
    assert set(np.unique(ds.targets)) == set(range(10))
    assert [ds[i][1] for i in range(n)] == labels.tolist()

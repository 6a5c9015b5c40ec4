"""numcnn.vision.datasets: torchvision's items (PIL images, Tensors after ToTensor), the fast batch path giving the
numbers of the item-by-item path, ImageFolder as torchvision builds it, loaders with workers."""

import gzip

import numpy as np
import pytest
import torch
from PIL import Image

import numcnn
import numcnn.utils.data as nud
from numcnn.vision import datasets
from numcnn.vision import transforms as T


def write_mnist(folder, n=10, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)
    for prefix in ("train", "t10k"):
        for name, a in ((f"{prefix}-images-idx3-ubyte", x), (f"{prefix}-labels-idx1-ubyte", y)):
            header = bytes([0, 0, 8, a.ndim]) + b"".join(d.to_bytes(4, "big") for d in a.shape)
            (folder / f"{name}.gz").write_bytes(gzip.compress(header + a.tobytes(), mtime=0))
    return x, y


def test_mnist_items_as_torchvision(tmp_path):
    x, y = write_mnist(tmp_path)
    ds = datasets.FashionMNIST(tmp_path, train=True)
    img, label = ds[3]
    assert isinstance(img, Image.Image) and img.mode == "L" and label == int(y[3]) and type(label) is int
    np.testing.assert_array_equal(np.asarray(img), x[3])
    assert isinstance(ds.data, numcnn.Tensor) and ds.data.shape == (10, 28, 28)
    assert isinstance(ds.targets, numcnn.Tensor) and ds.targets.numpy().dtype == np.int64
    t = datasets.MNIST(tmp_path, transform=T.ToTensor())[3][0]
    assert isinstance(t, numcnn.Tensor) and t.shape == (1, 28, 28) and t.numpy().dtype == np.float32
    np.testing.assert_array_equal(t.numpy()[0], torch.tensor(x[3]).float().div(255).numpy())


def test_mnist_fast_batches_equal_item_by_item_and_torch(tmp_path):
    x, y = write_mnist(tmp_path, n=13)
    tf = T.Compose([T.ToTensor(), T.Normalize((0.1307,), (0.3081,))])
    ds = datasets.MNIST(tmp_path, transform=tf)
    fast = nud.DataLoader(ds, batch_size=5)
    slow = nud.DataLoader(ds, batch_size=5, collate_fn=lambda b: nud.default_collate(b))
    assert fast.vectorized and not slow.vectorized
    for (xf, yf), (xs, ys) in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(xf.numpy(), xs.numpy())
        np.testing.assert_array_equal(yf.numpy(), ys.numpy())
        assert xf.shape[1:] == (1, 28, 28) and xf.numpy().dtype == np.float32 and yf.numpy().dtype == np.int64
    ref = torch.tensor(x[:5]).float().div(255).unsqueeze(1).sub(0.1307).div(0.3081)
    np.testing.assert_array_equal(next(iter(fast))[0].numpy(), ref.numpy())
    sub = nud.Subset(ds, [7, 2, 9])
    xb, yb = next(iter(nud.DataLoader(sub, batch_size=3)))
    assert nud.DataLoader(sub, batch_size=3).vectorized and yb.tolist() == y[[7, 2, 9]].tolist()


def test_numcnn_data_loader_still_takes_vision_datasets(tmp_path):
    x, _ = write_mnist(tmp_path, n=6)
    images, labels = next(iter(numcnn.data.DataLoader(datasets.MNIST(tmp_path), batch_size=6, as_tensors=False)))
    np.testing.assert_array_equal(images, x[:, None] / np.float32(255))


def test_cifar10_items_and_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (6, 3072), dtype=np.uint8)
    for name in [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]:
        (folder / name).write_bytes(b"".join(bytes([k % 10]) + p.tobytes() for k, p in enumerate(pixels)))
    ds = datasets.CIFAR10(tmp_path, train=False)
    img, label = ds[2]
    assert img.mode == "RGB" and img.size == (32, 32) and label == 2
    np.testing.assert_array_equal(np.asarray(img)[:, :, 1], pixels[2, 1024:2048].reshape(32, 32))
    ds.transform = T.Compose([T.ToTensor(), T.Normalize((0.5, 0.4, 0.3), (0.2, 0.2, 0.2))])
    fast = nud.DataLoader(ds, batch_size=4)
    assert fast.vectorized
    slow = nud.DataLoader(ds, batch_size=4, num_workers=2, collate_fn=lambda b: nud.default_collate(b))
    for (a, la), (b, lb) in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(la.numpy(), lb.numpy())


def write_folder(root):
    rng = np.random.default_rng(0)
    files = {}
    for cls, names in {"cat": ["b.png", "a.png"], "dog": ["sub/c.png", "x.txt", "d.PNG"]}.items():
        for name in names:
            path = root / cls / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if name.endswith(".txt"):
                path.write_text("not an image")
                continue
            pixels = rng.integers(0, 256, (12, 16), dtype=np.uint8)
            Image.fromarray(pixels, "L").save(path)
            files[str(path)] = pixels
    return files


def test_image_folder_as_torchvision(tmp_path):
    files = write_folder(tmp_path)
    ds = datasets.ImageFolder(tmp_path)
    assert ds.classes == ["cat", "dog"] and ds.class_to_idx == {"cat": 0, "dog": 1}
    assert [(p[len(str(tmp_path)) + 1:], t) for p, t in ds.samples] == [
        ("cat/a.png", 0), ("cat/b.png", 0), ("dog/d.PNG", 1), ("dog/sub/c.png", 1)]
    img, label = ds[2]
    assert img.mode == "RGB" and label == 1  # default_loader converts to RGB, as torchvision
    np.testing.assert_array_equal(np.asarray(img)[:, :, 0], files[ds.samples[2][0]])
    ds.transform = T.Compose([T.Resize(6), T.ToTensor()])
    x0 = [b[0].numpy() for b in nud.DataLoader(ds, batch_size=3)]
    x2 = [b[0].numpy() for b in nud.DataLoader(ds, batch_size=3, num_workers=2)]
    for a, b in zip(x0, x2, strict=True):
        np.testing.assert_array_equal(a, b)
    assert x0[0].shape == (3, 3, 6, 8)  # shorter side 12 -> 6, longer int(6 * 16 / 12) = 8
    only_sub = datasets.ImageFolder(tmp_path, is_valid_file=lambda p: "sub" in p or p.endswith("a.png"))
    assert len(only_sub) == 2
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no valid file for the class empty"):
        datasets.ImageFolder(tmp_path)
    assert len(datasets.ImageFolder(tmp_path, allow_empty=True)) == 4


def test_vision_models_is_the_zoo():
    from numcnn import models
    from numcnn.vision import models as vmodels

    assert vmodels.get is models.get and vmodels.LeNet5 is models.LeNet5


def test_random_augmentation_in_workers_follows_the_seed_for_threads_and_processes(tmp_path):
    write_mnist(tmp_path, n=12)
    tf = T.Compose([T.RandomCrop(28, padding=3), T.RandomHorizontalFlip(), T.RandomRotation(10), T.ToTensor()])
    ds = datasets.MNIST(tmp_path, transform=tf)

    def epoch(ctx, seed):
        loader = nud.DataLoader(ds, batch_size=4, shuffle=True, num_workers=2, multiprocessing_context=ctx,
                                generator=np.random.default_rng(seed))
        return [(x.numpy().copy(), y.numpy().copy()) for x, y in loader]

    threads, again, spawned = epoch(None, 9), epoch(None, 9), epoch("spawn", 9)
    other = epoch(None, 10)
    for (a, la), (b, lb), (c, lc) in zip(threads, again, spawned, strict=True):
        np.testing.assert_array_equal(la, lb)
        np.testing.assert_array_equal(a, b)  # same seed, same crops, flips and angles
        np.testing.assert_array_equal(a, c)  # worker w draws from base_seed + w, thread or process
        np.testing.assert_array_equal(la, lc)
    assert any(not np.array_equal(a, b) for (a, _), (b, _) in zip(threads, other, strict=True))

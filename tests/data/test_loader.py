import math

import numpy as np
import pytest

from numcnn.data import (
    MNIST,
    Compose,
    DataLoader,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    Subset,
    TensorDataset,
    ToTensor,
    random_split,
)


def mnist_like(n=23, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


class ItemByItem:
    """A generic dataset: only __len__ and __getitem__, no arrays."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.calls = 0

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        self.calls += 1
        return self.dataset[i]


def batches(loader):
    return [tuple(np.array(f) for f in b) for b in loader]


def test_batches_equal_hand_gathered_arrays():
    x, y = mnist_like()
    loader = DataLoader(TensorDataset(x, y), batch_size=5, as_tensors=False)
    assert loader.vectorized and len(loader) == 5
    out = batches(loader)
    for k, (images, labels) in enumerate(out):
        sl = slice(5 * k, 5 * k + 5)
        assert images.dtype == np.float32 and labels.dtype == np.int64
        assert images.shape == (len(x[sl]), 1, 28, 28)
        np.testing.assert_array_equal(images, x[sl][:, None].astype(np.float32) / np.float32(255))
        np.testing.assert_array_equal(labels, y[sl].astype(np.int64))
    assert [len(b[1]) for b in out] == [5, 5, 5, 5, 3]


@pytest.mark.parametrize("n, bs", [(23, 5), (20, 5), (3, 7), (0, 4), (1, 1)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_len_and_drop_last(n, bs, drop_last):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    loader = DataLoader(TensorDataset(x, np.arange(n)), batch_size=bs, drop_last=drop_last, as_tensors=False)
    expected = n // bs if drop_last else math.ceil(n / bs)
    out = batches(loader)
    assert len(loader) == expected == len(out)
    sizes = [len(b[0]) for b in out]
    assert all(s == bs for s in sizes[:-1]) and (not drop_last or all(s == bs for s in sizes))
    seen = np.concatenate([b[1] for b in out]) if out else np.zeros(0, np.int64)
    np.testing.assert_array_equal(seen, np.arange(expected * bs if drop_last else n))
    # Features (N, F) stay (B, F), float32.
    if out:
        np.testing.assert_array_equal(out[0][0], x[: sizes[0]])


def test_seeded_shuffle_order_and_epochs():
    x, y = mnist_like(n=17)
    ds = TensorDataset(x, np.arange(17))
    loader = DataLoader(ds, batch_size=4, shuffle=True, seed=42, as_tensors=False)
    epoch1 = np.concatenate([b[1] for b in loader])
    epoch2 = np.concatenate([b[1] for b in loader])
    g = np.random.default_rng(42)
    np.testing.assert_array_equal(epoch1, g.permutation(17))
    np.testing.assert_array_equal(epoch2, g.permutation(17))
    assert not np.array_equal(epoch1, epoch2)
    again = DataLoader(ds, batch_size=4, shuffle=True, seed=42, as_tensors=False)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in again]), epoch1)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in again]), epoch2)
    first = next(
        iter(DataLoader(ds, batch_size=4, shuffle=True, generator=np.random.default_rng(42), as_tensors=False))
    )
    np.testing.assert_array_equal(first[0], x[epoch1[:4]][:, None] / np.float32(255))
    with pytest.raises(ValueError, match="seed or generator, not both"):
        DataLoader(ds, seed=1, generator=np.random.default_rng(1))
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        DataLoader(ds, batch_size=0)


def test_vectorised_path_equals_item_by_item():
    x, y = mnist_like()
    for transform in (None, Compose([ToTensor(), Normalize(0.5, 0.25)])):
        ds = TensorDataset(x, y)
        ds.transform = transform
        fast = DataLoader(ds, batch_size=6, as_tensors=False)
        slow_ds = ItemByItem(ds)
        slow = DataLoader(slow_ds, batch_size=6, as_tensors=False)
        assert fast.vectorized and not slow.vectorized
        for a, b in zip(batches(fast), batches(slow), strict=True):
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
            assert a[0].dtype == b[0].dtype == np.float32 and a[1].dtype == b[1].dtype == np.int64
        assert slow_ds.calls == len(x)


def test_per_item_transform_falls_back():
    x, y = mnist_like(n=6)
    ds = TensorDataset(x, y)
    ds.transform = lambda img: img.astype(np.float32)[None] * 2  # not a Transform: item by item
    loader = DataLoader(ds, batch_size=4, as_tensors=False)
    assert not loader.vectorized
    images, labels = next(iter(loader))
    np.testing.assert_array_equal(images, x[:4, None].astype(np.float32) * 2)


def test_subclass_overriding_getitem_is_respected():
    class Doubled(TensorDataset):
        def __getitem__(self, i):
            a, b = super().__getitem__(i)
            return a * 2, b

    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    loader = DataLoader(Doubled(x, np.arange(6)), batch_size=3, as_tensors=False)
    assert not loader.vectorized
    np.testing.assert_array_equal(next(iter(loader))[0], x[:3] * 2)


def test_subsets_and_random_split_gather_right_items():
    x, y = mnist_like(n=30)
    ds = TensorDataset(x, y)
    parts = random_split(ds, [0.5, 0.3, 0.2], seed=0)
    torch = pytest.importorskip("torch")
    torch_lengths = [len(p) for p in torch.utils.data.random_split(range(30), [0.5, 0.3, 0.2])]
    assert [len(p) for p in parts] == torch_lengths == [15, 9, 6]
    perm = np.random.default_rng(0).permutation(30)
    np.testing.assert_array_equal(np.concatenate([p.indices for p in parts]), perm)
    nested = Subset(parts[0], [4, 0, -1])
    loader = DataLoader(nested, batch_size=8, as_tensors=False)
    assert loader.vectorized
    images, labels = next(iter(loader))
    picked = perm[:15][[4, 0, 14]]
    np.testing.assert_array_equal(labels, y[picked])
    np.testing.assert_array_equal(images[:, 0], x[picked] / np.float32(255))
    np.testing.assert_array_equal(nested[1][0], x[picked[1]])
    # Leftover items go one each to the first parts, as in torch.
    odd = random_split(range(10), [0.33, 0.33, 0.34], seed=1)
    assert [len(p) for p in odd] == [len(p) for p in torch.utils.data.random_split(range(10), [0.33, 0.33, 0.34])]
    with pytest.raises(ValueError, match="lengths must be non-negative ints summing to 30"):
        random_split(ds, [10, 10])
    with pytest.raises(IndexError, match=r"indices must lie in \[-30, 30\)"):
        Subset(ds, [30])


def test_seeded_random_transforms_reproducible(tmp_path, write_fake):
    write_fake(tmp_path, seed=3, n_train=40)
    aug = Compose([RandomCrop(28, padding=4), RandomHorizontalFlip()])

    def run(seed):
        ds = MNIST(root=tmp_path, transform=aug)
        return batches(
            DataLoader(ds, batch_size=16, shuffle=True, seed=seed, transform=Normalize(0.5, 0.5), as_tensors=False)
        )

    a, b, c = run(7), run(7), run(8)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not all(np.array_equal(p[0], q[0]) for p, q in zip(a, c, strict=True))
    # Hand-computed: order from the seed, augmentation from the stream spawned from it.
    ds = MNIST(root=tmp_path)
    g = np.random.default_rng(7)
    t = g.spawn(1)[0]
    order = g.permutation(40)[:16]
    expected = aug(ds.data[order][:, None], rng=t)
    expected = (expected / np.float32(255) - np.float32(0.5)) / np.float32(0.5)
    np.testing.assert_array_equal(a[0][0], expected)
    np.testing.assert_array_equal(a[0][1], ds.targets[order])


def test_shuffle_order_independent_of_transforms():
    x, y = mnist_like(n=20)
    plain = DataLoader(TensorDataset(x, np.arange(20)), batch_size=5, shuffle=True, seed=3, as_tensors=False)
    augmented = DataLoader(
        TensorDataset(x, np.arange(20)),
        batch_size=5,
        shuffle=True,
        seed=3,
        transform=RandomCrop(20),
        as_tensors=False,
    )
    for p, q in zip(batches(plain), batches(augmented), strict=True):
        np.testing.assert_array_equal(p[1], q[1])


def test_three_fields_and_float_labels():
    x = np.ones((4, 3), np.float64)
    w = np.arange(4, dtype=np.float32) / 2
    loader = DataLoader(TensorDataset(x, w, np.arange(4)), batch_size=4, as_tensors=False)
    images, targets, extra = next(iter(loader))
    assert images.dtype == np.float32 and targets.dtype == np.float32
    np.testing.assert_array_equal(targets, w)
    np.testing.assert_array_equal(extra, np.arange(4))


def test_as_tensors_wraps_with_numcnn_tensor():
    try:
        from numcnn import tensor  # noqa: F401
    except ImportError:
        pytest.skip("numcnn.tensor is not available yet")
    x, y = mnist_like(n=5)
    images, labels = next(iter(DataLoader(TensorDataset(x, y), batch_size=5)))
    np.testing.assert_array_equal(images.numpy(), x[:, None] / np.float32(255))
    np.testing.assert_array_equal(labels.numpy(), y.astype(np.int64))
    assert images.numpy().dtype == np.float32 and labels.numpy().dtype == np.int64


@pytest.fixture
def global_rng(monkeypatch):
    """numcnn.manual_seed, with numcnn's global generator restored after the test."""
    from numcnn import _config

    monkeypatch.setitem(_config._state, "generator", _config._state["generator"])
    return _config.manual_seed


def test_unseeded_loader_follows_manual_seed(global_rng):
    x, y = mnist_like(n=12)
    loader = DataLoader(TensorDataset(x, np.arange(12)), batch_size=12, shuffle=True, as_tensors=False)
    loader.transform = RandomHorizontalFlip()
    global_rng(5)
    first = batches(loader)[0]
    g = np.random.default_rng(5)
    order = g.permutation(12)
    np.testing.assert_array_equal(first[1], order)
    flip = g.random(12) < 0.5  # the transform draws from the same global stream, after the shuffle
    expected = x[order][:, None] / np.float32(255)
    np.testing.assert_array_equal(first[0], np.where(flip[:, None, None, None], expected[..., ::-1], expected))
    global_rng(5)
    np.testing.assert_array_equal(batches(loader)[0][0], first[0])
    global_rng(5)
    parts = random_split(range(12), [6, 6])
    np.testing.assert_array_equal(parts[0].indices, np.random.default_rng(5).permutation(12)[:6])

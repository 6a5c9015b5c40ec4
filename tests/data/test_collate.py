"""default_collate / default_convert and DataLoader batches against torch.utils.data: values, dtypes, structure."""

from collections import namedtuple

import numpy as np
import pytest
import torch
import torch.utils.data as tud

import numcnn
import numcnn.utils.data as nud

Point = namedtuple("Point", ["x", "y"])


def same(ours, theirs):
    """Recursively: Tensors with equal values, dtypes and shapes; containers of the same kind."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, numcnn.Tensor), type(ours)
        assert ours.numpy().dtype == theirs.numpy().dtype
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    elif isinstance(theirs, dict):
        assert isinstance(ours, dict) and ours.keys() == theirs.keys()
        for k in theirs:
            same(ours[k], theirs[k])
    elif isinstance(theirs, tuple | list):
        assert type(ours) is type(theirs) and len(ours) == len(theirs), (type(ours), type(theirs))
        for a, b in zip(ours, theirs, strict=True):
            same(a, b)
    else:
        assert ours == theirs


def samples(lib):
    t = (lambda a: numcnn.tensor(a)) if lib == "numcnn" else torch.tensor
    return [
        (t([1.5, 2.0]), 3, 0.25, "a", {"k": np.arange(3, dtype=np.int32), "n": [1, 2]}, Point(1, 2.0), True),
        (t([0.5, -1.0]), 4, 1.25, "b", {"k": np.arange(3, 6, dtype=np.int32), "n": [3, 4]}, Point(5, 6.0), False),
    ]


def test_default_collate_equals_torch_for_nested_samples():
    same(nud.default_collate(samples("numcnn")), tud.default_collate(samples("torch")))


def test_default_collate_numpy_scalars_keep_dtype():
    for dtype in (np.uint8, np.int32, np.float32, np.float64):
        batch = [dtype(1), dtype(2)]
        same(nud.default_collate(batch), tud.default_collate(batch))


def test_default_collate_errors():
    with pytest.raises(RuntimeError, match="equal size"):
        nud.default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(RuntimeError, match="equal size"):
        nud.default_collate([[1, 2], [1]])
    with pytest.raises(TypeError, match="found object"):
        nud.default_collate([object(), object()])


def test_default_convert_equals_torch():
    item = (np.arange(3, dtype=np.float32), {"a": np.ones(2, dtype=np.int64)}, "s", 4)
    same(nud.default_convert(item), tud.default_convert(item))


def both_loaders(make_ds, **kw):
    return nud.DataLoader(make_ds("numcnn"), **kw), tud.DataLoader(make_ds("torch"), **kw)


class Items:
    def __init__(self, lib, n=11):
        self.lib, self.n = lib, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        x = np.full((2, 3), i, dtype=np.float32)
        return {"image": numcnn.tensor(x) if self.lib == "numcnn" else torch.tensor(x), "label": i % 3,
                "pair": (i, float(i) / 2)}


@pytest.mark.parametrize("batch_size, drop_last", [(4, False), (4, True), (11, False), (None, False)])
def test_dataloader_batches_equal_torch(batch_size, drop_last):
    ours, theirs = both_loaders(lambda lib: Items(lib), batch_size=batch_size, drop_last=drop_last)
    assert len(ours) == len(theirs)
    ob, tb = list(ours), list(theirs)
    assert len(ob) == len(tb)
    for a, b in zip(ob, tb, strict=True):
        same(a, b)


def test_tensor_dataset_items_and_batches_equal_torch():
    x = np.random.default_rng(0).standard_normal((10, 3, 4)).astype(np.float32)
    y = np.arange(10, dtype=np.int64)
    ours = nud.TensorDataset(numcnn.tensor(x), numcnn.tensor(y))
    theirs = tud.TensorDataset(torch.tensor(x), torch.tensor(y))
    same(list(ours[3]), list(theirs[3]))
    ol = nud.DataLoader(ours, batch_size=4, drop_last=True)
    assert ol.vectorized  # one fancy index per tensor
    for a, b in zip(ol, tud.DataLoader(theirs, batch_size=4, drop_last=True), strict=True):
        same(a, b)  # (B, 3, 4): no channel axis added, unlike numcnn.data's image batches
    with pytest.raises(ValueError, match="size mismatch"):
        nud.TensorDataset(numcnn.tensor(x), numcnn.tensor(y[:3]))


def test_samplers_and_batch_sampler_in_loader_equal_torch():
    ds_o, ds_t = Items("numcnn"), Items("torch")
    bs_o = nud.BatchSampler(nud.SequentialSampler(ds_o), 3, drop_last=False)
    bs_t = tud.BatchSampler(tud.SequentialSampler(ds_t), 3, drop_last=False)
    for a, b in zip(nud.DataLoader(ds_o, batch_sampler=bs_o), tud.DataLoader(ds_t, batch_sampler=bs_t), strict=True):
        same(a, b)
    for a, b in zip(nud.DataLoader(ds_o, sampler=[5, 1, 7], batch_size=2),
                    tud.DataLoader(ds_t, sampler=[5, 1, 7], batch_size=2), strict=True):
        same(a, b)


def test_shuffled_epochs_cover_the_dataset_and_follow_the_seed():
    ds = nud.TensorDataset(np.arange(20))
    loader = nud.DataLoader(ds, batch_size=6, shuffle=True, generator=np.random.default_rng(7))
    e1 = np.concatenate([b[0].numpy() for b in loader])
    e2 = np.concatenate([b[0].numpy() for b in loader])
    assert sorted(e1) == sorted(e2) == list(range(20)) and not np.array_equal(e1, e2)
    g = np.random.default_rng(7)
    np.testing.assert_array_equal(e1, g.permutation(20))
    np.testing.assert_array_equal(e2, g.permutation(20))


def test_random_split_torch_signature():
    parts = nud.random_split(range(10), [0.5, 0.3, 0.2], np.random.default_rng(0))  # generator third, as torch
    assert [len(p) for p in parts] == [len(p) for p in tud.random_split(range(10), [0.5, 0.3, 0.2])]
    assert sorted(i for p in parts for i in p) == list(range(10))
    assert [list(p) for p in nud.random_split(range(10), [4, 6], generator=np.random.default_rng(0))] == \
        [list(p) for p in nud.random_split(range(10), [4, 6], generator=np.random.default_rng(0))]


def test_concat_stack_and_iterable_datasets_equal_torch():
    same(list(nud.ConcatDataset([range(3), range(10, 12)])), list(tud.ConcatDataset([range(3), range(10, 12)])))
    assert nud.ConcatDataset([range(3), range(10, 12)])[-1] == 11
    same(nud.StackDataset(a=range(3), b=range(3, 6))[1], tud.StackDataset(a=range(3), b=range(3, 6))[1])

    class Count(nud.IterableDataset):
        def __iter__(self):
            return iter(range(7))

    class CountT(tud.IterableDataset):
        def __iter__(self):
            return iter(range(7))

    for drop_last in (False, True):
        ours = list(nud.DataLoader(Count(), batch_size=3, drop_last=drop_last))
        theirs = list(tud.DataLoader(CountT(), batch_size=3, drop_last=drop_last))
        same(ours, theirs)
    with pytest.raises(ValueError, match="IterableDataset"):
        nud.DataLoader(Count(), shuffle=True)


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_sampler": [[0]], "batch_size": 2}, "mutually exclusive"),
    ({"sampler": [0], "shuffle": True}, "mutually exclusive with shuffle"),
    ({"batch_size": None, "drop_last": True}, "mutually exclusive with drop_last"),
    ({"num_workers": -1}, "non-negative"),
    ({"prefetch_factor": 2}, "prefetch_factor"),
    ({"persistent_workers": True}, "num_workers > 0"),
    ({"timeout": -1}, "timeout"),
    ({"multiprocessing_context": "spawn"}, "num_workers > 0"),
])
def test_dataloader_refuses_what_torch_refuses(kwargs, message):
    with pytest.raises(ValueError, match=message):
        nud.DataLoader(range(3), **kwargs)
    with pytest.raises(ValueError):
        tud.DataLoader(range(3), **kwargs)


def test_pin_memory_is_accepted_and_changes_nothing():
    ds = nud.TensorDataset(np.arange(6.0, dtype=np.float32))
    a = [b[0].numpy() for b in nud.DataLoader(ds, batch_size=4, pin_memory=True)]
    b = [b[0].numpy() for b in nud.DataLoader(ds, batch_size=4)]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)

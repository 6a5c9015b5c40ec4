"""DistributedSampler against torch.utils.data.DistributedSampler, and DataLoader(sampler=...)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numcnn.data import DataLoader, TensorDataset
from numcnn.distributed import DistributedSampler

torch = pytest.importorskip("torch")
from torch.utils.data import DistributedSampler as TorchSampler  # noqa: E402


@given(n=st.integers(0, 40), replicas=st.integers(1, 7), drop_last=st.booleans(), seed=st.integers(0, 2**31 - 1),
       epoch=st.integers(0, 5))
def test_shards_are_torchs_applied_to_the_epochs_order(n, replicas, drop_last, seed, epoch):
    """PyTorch's padding and interleaving, applied to our epoch order: torch's index lists without shuffling are
    positions in the order; our shuffled shard must be the order read at those positions."""
    data = list(range(n))
    ours = [DistributedSampler(data, replicas, r, shuffle=True, seed=seed, drop_last=drop_last)
            for r in range(replicas)]
    for s in ours:
        s.set_epoch(epoch)
    order = ours[0].order()
    assert sorted(order.tolist()) == data  # a permutation, the same on every rank
    for r in range(replicas):
        ref = TorchSampler(data, num_replicas=replicas, rank=r, shuffle=False, drop_last=drop_last)
        positions = list(ref)
        assert len(ours[r]) == len(ref)
        assert list(ours[r]) == [int(order[p]) for p in positions]


@given(n=st.integers(0, 40), replicas=st.integers(1, 7), drop_last=st.booleans())
def test_without_shuffle_equal_to_torch(n, replicas, drop_last):
    data = list(range(n))
    for r in range(replicas):
        ref = TorchSampler(data, num_replicas=replicas, rank=r, shuffle=False, drop_last=drop_last)
        assert list(DistributedSampler(data, replicas, r, shuffle=False, drop_last=drop_last)) == list(ref)


def test_padding_by_hand():
    """10 items on 4 ranks: 3 each; the order is padded with its first 2 items, then dealt round-robin."""
    got = [list(DistributedSampler(range(10), 4, r, shuffle=False)) for r in range(4)]
    assert got == [[0, 4, 8], [1, 5, 9], [2, 6, 0], [3, 7, 1]]
    got = [list(DistributedSampler(range(10), 4, r, shuffle=False, drop_last=True)) for r in range(4)]
    assert got == [[0, 4], [1, 5], [2, 6], [3, 7]]
    got = [list(DistributedSampler(range(10), 4, r, shuffle=False, pad=False)) for r in range(4)]
    assert got == [[0, 4, 8], [1, 5, 9], [2, 6], [3, 7]]


@given(n=st.integers(1, 30), replicas=st.integers(1, 5), seed=st.integers(0, 1000))
def test_unpadded_shards_cover_every_index_once(n, replicas, seed):
    shards = [DistributedSampler(range(n), replicas, r, seed=seed, pad=False).indices() for r in range(replicas)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(n))


def test_epochs_reshuffle_and_depend_on_seed_and_epoch_only():
    a = DistributedSampler(range(50), 2, 0, seed=1)
    first = a.indices().copy()
    a.set_epoch(1)
    assert not np.array_equal(a.indices(), first)
    b = DistributedSampler(range(50), 2, 0, seed=1)
    b.set_epoch(1)
    np.testing.assert_array_equal(a.indices(), b.indices())
    np.testing.assert_array_equal(a.order(), np.random.default_rng([1, 1]).permutation(50))


def test_n_ranks_with_batch_b_read_the_batches_of_one_process_with_batch_nb():
    """Step k of all ranks together reads exactly what step k of one rank with batch N*B reads."""
    ds = TensorDataset(np.arange(36, dtype=np.float32).reshape(36, 1), np.arange(36))
    one = DataLoader(ds, batch_size=12, sampler=DistributedSampler(ds, 1, 0, seed=5), as_tensors=False)
    ranks = [DataLoader(ds, batch_size=4, sampler=DistributedSampler(ds, 3, r, seed=5), as_tensors=False)
             for r in range(3)]
    assert len(one) == 3 and all(len(loader) == 3 for loader in ranks)
    for (_, y_all), *per_rank in zip(one, *ranks):
        assert sorted(np.concatenate([y for _, y in per_rank]).tolist()) == sorted(y_all.tolist())


def test_dataloader_sampler_order_and_errors():
    ds = TensorDataset(np.arange(10, dtype=np.float32).reshape(10, 1), np.arange(10))
    loader = DataLoader(ds, batch_size=2, sampler=[9, 0, 3], as_tensors=False)
    assert len(loader) == 2
    assert [y.tolist() for _, y in loader] == [[9, 0], [3]]
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(ds, sampler=[0], shuffle=True)
    with pytest.raises(ValueError, match=r"invalid rank 2, rank should be in the interval \[0, 1\]"):
        DistributedSampler(range(4), 2, 2)

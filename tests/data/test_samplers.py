"""Samplers and BatchSampler against torch.utils.data's: the same index sets, counts, batch splits and errors."""

import numpy as np
import pytest
import torch
import torch.utils.data as tud

import numcnn.utils.data as nud


def test_sequential_sampler_equals_torch():
    assert list(nud.SequentialSampler(range(7))) == list(tud.SequentialSampler(range(7)))
    assert len(nud.SequentialSampler(range(7))) == 7


def test_random_sampler_is_a_seeded_permutation():
    s = nud.RandomSampler(range(10), generator=np.random.default_rng(3))
    first, second = list(s), list(s)
    assert sorted(first) == list(range(10)) and first != second  # a new permutation per epoch
    assert first == np.random.default_rng(3).permutation(10).tolist()
    again = nud.RandomSampler(range(10), generator=np.random.default_rng(3))
    assert list(again) == first


@pytest.mark.parametrize("num_samples", [3, 10, 23])
def test_random_sampler_without_replacement_counts_equal_torch(num_samples):
    ours = list(nud.RandomSampler(range(10), num_samples=num_samples, generator=np.random.default_rng(0)))
    theirs = list(tud.RandomSampler(range(10), num_samples=num_samples, generator=torch.Generator().manual_seed(0)))
    assert len(ours) == len(theirs) == num_samples
    # Whole permutations then part of one: every index num_samples // 10 times, some once more.
    counts = np.bincount(ours, minlength=10)
    assert sorted(counts.tolist()) == sorted(np.bincount(theirs, minlength=10).tolist())


def test_random_sampler_with_replacement():
    ours = list(nud.RandomSampler(range(5), replacement=True, num_samples=50, generator=np.random.default_rng(1)))
    assert len(ours) == 50 and set(ours) <= set(range(5))
    assert ours == np.random.default_rng(1).integers(0, 5, size=50).tolist()
    with pytest.raises(ValueError, match="num_samples should be a positive integer"):
        nud.RandomSampler(range(5), num_samples=0)
    with pytest.raises(TypeError, match="replacement should be a boolean"):
        nud.RandomSampler(range(5), replacement=1)
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        nud.RandomSampler(range(5), generator=torch.Generator())


def test_subset_random_sampler_same_set_as_torch():
    idx = [3, 9, 4, 12]
    ours = list(nud.SubsetRandomSampler(idx, generator=np.random.default_rng(2)))
    assert sorted(ours) == sorted(tud.SubsetRandomSampler(idx)) == sorted(idx)
    assert ours == [idx[p] for p in np.random.default_rng(2).permutation(4)]


def test_weighted_random_sampler():
    w = [0.0, 1.0, 3.0, 0.0]
    ours = list(nud.WeightedRandomSampler(w, 4000, generator=np.random.default_rng(0)))
    assert len(ours) == 4000 and set(ours) == {1, 2}  # zero weights never drawn, as torch
    assert abs(ours.count(2) / 4000 - 0.75) < 0.03
    no_rep = list(nud.WeightedRandomSampler([1, 2, 3, 4], 4, replacement=False, generator=np.random.default_rng(0)))
    assert sorted(no_rep) == sorted(tud.WeightedRandomSampler([1, 2, 3, 4], 4, replacement=False)) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="without replacement"):
        nud.WeightedRandomSampler([1, 0, 0], 2, replacement=False)


@pytest.mark.parametrize("n, bs, drop_last", [(10, 3, False), (10, 3, True), (9, 3, True), (2, 5, False),
                                              (2, 5, True)])
def test_batch_sampler_equals_torch(n, bs, drop_last):
    ours = nud.BatchSampler(nud.SequentialSampler(range(n)), bs, drop_last)
    theirs = tud.BatchSampler(tud.SequentialSampler(range(n)), bs, drop_last)
    assert list(ours) == list(theirs) and len(ours) == len(theirs)


def test_batch_sampler_errors():
    with pytest.raises(ValueError, match="batch_size should be a positive integer"):
        nud.BatchSampler(range(3), 0, False)
    with pytest.raises(ValueError, match="drop_last should be a boolean"):
        nud.BatchSampler(range(3), 2, 1)


def test_generic_subscripts_in_class_statements():
    class Pairs(nud.Dataset[tuple]):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return i, -i

    class Evens(nud.Sampler[int]):
        def __iter__(self):
            return iter([0, 2])

    assert list(nud.DataLoader(Pairs(), batch_size=2))[0][1].tolist() == [0, -1]
    assert list(Evens()) == [0, 2]

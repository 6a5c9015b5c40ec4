"""DataLoader workers: the same batches for any num_workers, per-worker seeds, worker_init_fn, errors, timeouts."""

import time

import numpy as np
import pytest
import torch.utils.data as tud

import numcnn
import numcnn.utils.data as nud
from numcnn.data import DataLoader as ImageLoader
from numcnn.data import TensorDataset as ArrayTensorDataset


class Squares(nud.Dataset):
    """Per-item work in Python: what workers exist for."""

    def __len__(self):
        return 23

    def __getitem__(self, i):
        return {"x": np.full((2, 2), i * i, dtype=np.float32), "i": i}


class WhoLoads(nud.Dataset):
    def __len__(self):
        return 12

    def __getitem__(self, i):
        info = nud.get_worker_info()
        wid = -1 if info is None else info.id
        return i, wid, (-1.0 if info is None else float(info.rng.random()))


def batches(loader):
    return [(b["x"].numpy().copy(), b["i"].numpy().copy()) for b in loader]


@pytest.mark.parametrize("ctx", [None, "spawn"])
def test_workers_give_the_batches_of_the_main_thread(ctx):
    kw = {"generator": np.random.default_rng(5), "shuffle": True, "batch_size": 4}
    base = batches(nud.DataLoader(Squares(), **kw))
    kw["generator"] = np.random.default_rng(5)
    par = batches(nud.DataLoader(Squares(), num_workers=2, multiprocessing_context=ctx, **kw))
    assert len(base) == len(par) == 6
    for (x0, i0), (x1, i1) in zip(base, par, strict=True):
        np.testing.assert_array_equal(i0, i1)
        np.testing.assert_array_equal(x0, x1)
        np.testing.assert_array_equal(x0[:, 0, 0], (i0 * i0).astype(np.float32))


def test_image_batches_identical_for_any_num_workers():
    x = np.random.default_rng(0).integers(0, 256, (30, 28, 28), dtype=np.uint8)

    class PerItem(ArrayTensorDataset):
        def __getitem__(self, i):  # overriding __getitem__: read item by item (the worker path)
            return self.arrays[0][i], self.arrays[1][i]

    def run(nw):
        loader = ImageLoader(PerItem(x, np.arange(30)), batch_size=8, shuffle=True, seed=3, num_workers=nw,
                             transform=numcnn.data.Normalize(0.5, 0.25), as_tensors=False)
        assert not loader.vectorized
        return list(loader)

    for a, b in zip(run(0), run(2), strict=True):
        assert a[0].dtype == np.float32 and a[0].shape[1:] == (1, 28, 28)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_batch_k_goes_to_worker_k_mod_n_and_seeds_are_base_plus_id():
    loader = nud.DataLoader(WhoLoads(), batch_size=3, num_workers=2, generator=np.random.default_rng(1))
    out = list(loader)
    assert [b[1].tolist() for b in out] == [[0] * 3, [1] * 3, [0] * 3, [1] * 3]  # round-robin, as torch
    again = list(nud.DataLoader(WhoLoads(), batch_size=3, num_workers=2, generator=np.random.default_rng(1)))
    for a, b in zip(out, again, strict=True):  # a worker's random draws: the same seed, the same numbers
        np.testing.assert_array_equal(a[2].numpy(), b[2].numpy())
    seed = int(np.random.default_rng(1).spawn(2)[1].integers(0, 2**62))
    w0, w1 = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    np.testing.assert_array_equal(out[0][2].numpy(), [w0.random() for _ in range(3)])
    np.testing.assert_array_equal(out[1][2].numpy(), [w1.random() for _ in range(3)])
    assert [b[1].tolist() for b in nud.DataLoader(WhoLoads(), batch_size=6)] == [[-1] * 6] * 2


def test_worker_init_fn_runs_once_in_each_worker():
    seen = []
    loader = nud.DataLoader(WhoLoads(), batch_size=2, num_workers=3, worker_init_fn=seen.append)
    assert len(list(loader)) == 6
    assert sorted(seen) == [0, 1, 2]


def test_persistent_workers_iterate_twice():
    loader = nud.DataLoader(Squares(), batch_size=5, num_workers=2, persistent_workers=True, prefetch_factor=1)
    first, second = batches(loader), batches(loader)
    assert len(first) == len(second) == len(loader) == 5
    for (x0, _), (x1, _) in zip(first, second, strict=True):
        np.testing.assert_array_equal(x0, x1)
    pool = loader._pool
    # An epoch left early does not leak its batches into the next one.
    next(iter(loader))
    assert batches(loader)[0][1].tolist() == [0, 1, 2, 3, 4] and loader._pool is pool


def test_worker_error_names_the_worker():
    class Broken(nud.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            if i == 3:
                raise KeyError("no item 3")
            return i

    with pytest.raises(RuntimeError, match="worker 1 failed: KeyError"):
        list(nud.DataLoader(Broken(), batch_size=2, num_workers=2))


def test_timeout():
    class Slow(nud.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            time.sleep(0.5)
            return i

    with pytest.raises(RuntimeError, match="timed out after 0.05 seconds"):
        list(nud.DataLoader(Slow(), batch_size=1, num_workers=1, timeout=0.05))


def test_iterable_dataset_sharded_by_worker_info():
    class Shards(nud.IterableDataset):
        def __iter__(self):
            info = nud.get_worker_info()
            start, step = (0, 1) if info is None else (info.id, info.num_workers)
            return iter(range(start, 10, step))

    # torch's order: worker 0's batch, worker 1's, worker 0's, ...; a worker that ends is skipped.
    got = [b.tolist() for b in nud.DataLoader(Shards(), batch_size=2, num_workers=2)]
    assert got == [[0, 2], [1, 3], [4, 6], [5, 7], [8], [9]]

    class ShardsT(tud.IterableDataset):
        def __iter__(self):
            info = tud.get_worker_info()
            start, step = (0, 1) if info is None else (info.id, info.num_workers)
            return iter(range(start, 10, step))

    assert got == [b.tolist() for b in tud.DataLoader(ShardsT(), batch_size=2, num_workers=2)]
    unbatched = list(nud.DataLoader(Shards(), batch_size=None, num_workers=2))
    assert unbatched == list(tud.DataLoader(ShardsT(), batch_size=None, num_workers=2)) == list(range(10))
    assert [b.tolist() for b in nud.DataLoader(Shards(), batch_size=4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


class GlobalDraws(nud.Dataset):
    """A dataset drawing from process-wide generators in __getitem__, as real scripts' augmentations do."""

    def __len__(self):
        return 24

    def __getitem__(self, i):
        return i, int(np.random.randint(1000)), float(numcnn.rand(1).item())  # noqa: NPY002


def test_worker_threads_take_turns_so_global_generators_repeat():
    """PyTorch's reproducibility recipe (worker_init_fn reseeding np.random from torch.initial_seed()) under worker
    threads: inits run in worker order, then one fetch at a time in batch order, so the np.random draws are one
    stream seeded by the last worker's init (hand-computed below); numcnn.rand in a worker draws from the worker's
    own generator (seeded base_seed + id), never from the main thread's."""
    seeds = {}

    def seed_worker(worker_id):
        seeds[worker_id] = numcnn.initial_seed()
        assert seeds[worker_id] == nud.get_worker_info().seed
        np.random.seed(numcnn.initial_seed() % 2**32)  # noqa: NPY002

    def run():
        main_before = numcnn.initial_seed()
        loader = nud.DataLoader(GlobalDraws(), batch_size=4, num_workers=3, worker_init_fn=seed_worker,
                                generator=numcnn.Generator().manual_seed(7))
        out = [(b[0].tolist(), b[1].tolist(), b[2].tolist()) for b in loader]
        assert numcnn.initial_seed() == main_before  # the workers' seeds stayed in the workers
        return out

    numcnn.manual_seed(11)
    main_draw = numcnn.rand(3)
    numcnn.manual_seed(11)
    first = run()
    np.testing.assert_array_equal(numcnn.rand(3).numpy(), main_draw.numpy())  # the main stream was not touched
    assert run() == first
    assert [i for b in first for i in b[0]] == list(range(24))
    stream = np.random.RandomState(seeds[2] % 2**32).randint(1000, size=24)  # noqa: NPY002
    assert [v for b in first for v in b[1]] == stream.tolist()
    for w in range(3):
        g = np.random.default_rng(seeds[w])
        expected = [float(g.random(1, dtype=np.float32)[0]) for _ in range(8)]
        assert [v for b in first[w::3] for v in b[2]] == expected


def test_initial_seed_outside_workers_is_the_last_manual_seed():
    numcnn.manual_seed(123)
    assert numcnn.initial_seed() == 123
    numcnn.manual_seed(-5)
    assert numcnn.initial_seed() == 2**64 - 5
    numcnn.manual_seed(0)


def test_a_failing_worker_init_stops_the_other_threads_turns():
    def init(worker_id):
        if worker_id == 0:
            raise OSError("no data here")

    with pytest.raises(RuntimeError, match="worker 0 failed: OSError: no data here"):
        list(nud.DataLoader(Squares(), batch_size=2, num_workers=3, worker_init_fn=init, timeout=20))

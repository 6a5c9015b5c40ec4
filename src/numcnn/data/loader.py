"""DataLoader: batches from a dataset, with torch.utils.data.DataLoader's arguments and numcnn's fast array path."""

from __future__ import annotations

import functools
import math
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from numcnn._config import default_generator, numpy_generator
from numcnn.data.base import ArrayDataset, IterableDataset, Subset
from numcnn.data.collate import default_collate, default_convert
from numcnn.data.fetch import fetch_iterable, fetch_map, fetch_one, stack_fields
from numcnn.data.sampler import BatchSampler, RandomSampler, SequentialSampler
from numcnn.data.transforms import ToTensor, Transform, is_batch_transform
from numcnn.data.workers import WorkerPool, is_exhausted

__all__ = ["DataLoader"]

_to_tensor = ToTensor()


def _array_source(dataset: Any) -> tuple[tuple[np.ndarray, ...], np.ndarray | None, Any, Any] | None:
    """``(arrays, index map, transform, target_transform)`` if ``dataset`` can be gathered by fancy
    indexing into ``arrays`` (the map, when not None, turns dataset indices into array indices)."""
    getitem = getattr(type(dataset).__getitem__, "_gather_equivalent", False)
    if isinstance(dataset, ArrayDataset) and getitem:
        t, tt = dataset.transform, dataset.target_transform
        if is_batch_transform(t) and is_batch_transform(tt):
            return dataset.arrays, None, t, tt
    elif isinstance(dataset, Subset) and getitem:
        inner = _array_source(dataset.dataset)
        if inner is not None:
            arrays, index_map, t, tt = inner
            indices = dataset.indices if index_map is None else index_map[dataset.indices]
            return arrays, indices, t, tt
    return None


def _batch_hook(dataset: Any) -> Callable | None:
    """``dataset.collated_batch(indices)`` if the dataset gathers whole batches itself (default_collate's result);
    ``Subset`` passes the hook of the dataset it wraps on, with its indices mapped."""
    if isinstance(dataset, Subset) and getattr(type(dataset).__getitem__, "_gather_equivalent", False):
        inner = _batch_hook(dataset.dataset)
        return None if inner is None else (lambda idx: inner(dataset.indices[np.asarray(idx, dtype=np.int64)]))
    hook = getattr(dataset, "collated_batch", None)
    return hook if hook is not None and dataset.can_collate_batch() else None


def _images(x: np.ndarray) -> np.ndarray:
    """Final image batch: float32; uint8 pixels scaled to [0, 1] as ToTensor does."""
    if x.dtype == np.uint8:
        return _to_tensor(x)
    return x.astype(np.float32, copy=False)


def _labels(y: np.ndarray) -> np.ndarray:
    return y.astype(np.int64, copy=False) if y.dtype.kind in "biu" else y


def _spawn(g: np.random.Generator) -> np.random.Generator:
    try:
        # Spawning reads the seed sequence, not the state: the shuffle stream is left untouched.
        return g.spawn(1)[0]
    except (AttributeError, TypeError, ValueError):
        return np.random.default_rng(g.bit_generator.random_raw(4))


class DataLoader:
    """Iterate over ``dataset`` in batches: torch.utils.data.DataLoader's arguments, meanings and defaults.

    **Batches.** With ``collate_fn`` (``numcnn.utils.data.DataLoader`` passes ``default_collate`` by default) a batch
    is ``collate_fn([dataset[i] for i in batch_indices])``, as in torch; ``batch_size=None`` yields single items
    through ``default_convert``. Without it (``numcnn.data.DataLoader``'s own convention) a batch is
    ``(images, labels, ...)``: images float32 (B, C, H, W), a (N, H, W) dataset gaining C = 1 and uint8 pixels
    scaled to [0, 1] (as ToTensor) unless a transform already made them float; other image layouts are only cast to
    float32; labels int64 (B,); every field wrapped by ``numcnn.tensor`` (``as_tensors``) or left an ndarray, and
    ``transform``, a batch transform, applied last to the images.

    **Fast path.** Array-backed datasets (MNIST, FashionMNIST, TensorDataset, NpzDataset, Subsets of them) whose
    transforms are batch ``Transform`` objects are gathered with one fancy index per batch (``vectorized``); in
    torch mode, datasets offering ``collated_batch`` (numcnn.vision's datasets with batchable transforms,
    numcnn.utils.data.TensorDataset) are gathered the same way. The fast path runs in the main thread whatever
    ``num_workers`` is: one fancy index costs less than handing the work out.

    **Order.** ``sampler`` / ``batch_sampler`` decide which items are read; else ``shuffle`` uses
    ``RandomSampler(dataset, generator=generator)``: epoch k is the k-th ``generator.permutation(len(dataset))``.
    ``generator`` is a ``numpy.random.Generator`` (or ``seed=`` makes one); with neither, numcnn's global generator
    (``numcnn.manual_seed``) is used. Random batch transforms draw from an independent stream spawned from it, worker
    seeds from another: the same seed gives the same batches for any ``num_workers``.

    **Workers.** ``num_workers > 0`` fetches and collates per-item batches while the main thread trains: in worker
    threads by default (taking turns, see below), or in worker processes with ``multiprocessing_context="forkserver"`` /
    ``"spawn"`` / ``"fork"`` (see ``numcnn.data.workers``). Why threads by default: they need no pickling of the
    dataset, no ``if __name__ == "__main__":`` guard and no fork of a process whose Numba/BLAS thread pools are running,
    and they start at once. Worker threads take turns, one fetch at a time in batch order, so that datasets using
    process-wide state (``np.random``, ``random``, an open file) behave exactly as in one process, deterministically;
    that fetch runs while the main thread trains (the kernels release the GIL). To load batches at once on several CPUs,
    use worker processes: they are faster once started, best with ``persistent_workers=True`` (a process start costs an
    interpreter, numcnn's import and a copy of the dataset). Measured figures: docs/performance.md. ``prefetch_factor``
    batches per worker are queued ahead (default 2), ``persistent_workers`` keeps workers between epochs, ``timeout``
    bounds the wait for a batch, ``worker_init_fn(worker_id)`` runs first in each worker. ``pin_memory`` (and
    ``pin_memory_device``) are accepted and do nothing on a CPU; batches always come in order (``in_order``).
    """

    def __init__(self, dataset: Any, batch_size: int | None = 1, shuffle: bool | None = None, sampler: Any = None,
                 batch_sampler: Any = None, num_workers: int = 0, collate_fn: Callable | None = None,
                 pin_memory: bool = False, drop_last: bool = False, timeout: float = 0,
                 worker_init_fn: Callable | None = None, multiprocessing_context: Any = None, generator: Any = None,
                 *, prefetch_factor: int | None = None, persistent_workers: bool = False, pin_memory_device: str = "",
                 in_order: bool = True, seed: int | None = None, transform: Callable | None = None,
                 as_tensors: bool = True) -> None:
        self.dataset = dataset
        self.collate_fn = collate_fn if collate_fn is not None else self._default_collate()
        torch_mode = self.collate_fn is not None
        self._check_batching(batch_size, shuffle, sampler, batch_sampler, drop_last, torch_mode)
        self._check_workers(num_workers, timeout, prefetch_factor, persistent_workers)
        self._check_context(num_workers, multiprocessing_context)
        if seed is not None and generator is not None:
            raise ValueError("DataLoader: pass seed or generator, not both")
        generator = numpy_generator("DataLoader", generator)
        if generator is None and seed is not None:
            generator = np.random.default_rng(seed)
        self.seed, self.generator = seed, generator
        # None when unseeded: random transforms then use their own generator or numcnn's global one.
        self._transform_rng = None if generator is None else _spawn(generator)
        self._worker_seed_rng = None if generator is None else _spawn(generator)
        self.batch_size = None if batch_size is None else int(batch_size)
        self.shuffle, self.drop_last = bool(shuffle), drop_last
        self.num_workers, self.timeout, self.worker_init_fn = int(num_workers), timeout, worker_init_fn
        self.multiprocessing_context, self.persistent_workers = multiprocessing_context, persistent_workers
        self.prefetch_factor = None if num_workers == 0 else (2 if prefetch_factor is None else prefetch_factor)
        self.pin_memory, self.pin_memory_device, self.in_order = pin_memory, pin_memory_device, in_order
        self.transform, self.as_tensors = transform, as_tensors
        self._iterable = isinstance(dataset, IterableDataset)
        self.user_sampler = sampler
        if self._iterable:
            self.sampler = self.batch_sampler = None
        else:
            self.sampler = sampler if sampler is not None else (
                RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset))
            self.batch_sampler = batch_sampler if batch_sampler is not None else (
                None if self.batch_size is None else BatchSampler(self.sampler, self.batch_size, drop_last))
        self._pool: WorkerPool | None = None

    @staticmethod
    def _default_collate() -> Callable | None:
        """The collate_fn used when none is given: None = numcnn's image batches (see the class docstring)."""
        return None

    def _check_batching(self, batch_size, shuffle, sampler, batch_sampler, drop_last, torch_mode: bool) -> None:
        if batch_size is not None or not torch_mode:
            if not isinstance(batch_size, int | np.integer) or isinstance(batch_size, bool) or batch_size < 1:
                raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None or drop_last):
            raise ValueError("DataLoader: batch_sampler option is mutually exclusive with batch_size, shuffle, "
                             "sampler, and drop_last")
        if batch_size is None and drop_last:
            raise ValueError("DataLoader: batch_size=None option disables auto-batching and is mutually exclusive "
                             "with drop_last")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle (the sampler decides the "
                             "order)")
        if isinstance(self.dataset, IterableDataset) and (shuffle or sampler is not None or batch_sampler is not None):
            what = "shuffle" if shuffle else "sampler" if sampler is not None else "batch_sampler"
            raise ValueError(f"DataLoader with IterableDataset: expected unspecified {what} option, but got "
                             f"{what}={shuffle if shuffle else sampler if sampler is not None else batch_sampler}")

    @staticmethod
    def _check_workers(num_workers, timeout, prefetch_factor, persistent_workers) -> None:
        if not isinstance(num_workers, int | np.integer) or isinstance(num_workers, bool) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers option should be a non-negative int; use num_workers=0 to "
                             f"disable workers, got {num_workers!r}")
        if not isinstance(timeout, int | float) or timeout < 0:
            raise ValueError(f"DataLoader: timeout option should be non-negative, got {timeout!r}")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("DataLoader: prefetch_factor option could only be specified with workers: let "
                             "num_workers > 0, otherwise set prefetch_factor to None")
        if prefetch_factor is not None and (not isinstance(prefetch_factor, int) or prefetch_factor < 1):
            raise ValueError(f"DataLoader: prefetch_factor should be a positive int, got {prefetch_factor!r}")
        if persistent_workers and num_workers == 0:
            raise ValueError("DataLoader: persistent_workers option needs num_workers > 0")

    @staticmethod
    def _check_context(num_workers: int, context: Any) -> None:
        if context is None:
            return
        if num_workers == 0:
            raise ValueError("DataLoader: multiprocessing_context can only be used with worker processes "
                             "(num_workers > 0)")
        methods = multiprocessing.get_all_start_methods()
        if isinstance(context, str) and context not in methods:
            raise ValueError(f"DataLoader: multiprocessing_context should be one of {methods}, got {context!r}")
        if not isinstance(context, str | multiprocessing.context.BaseContext):
            raise TypeError(f"DataLoader: multiprocessing_context should be a start method name or a multiprocessing "
                            f"context, got {type(context).__name__}")

    @property
    def vectorized(self) -> bool:
        """Whether batches are gathered with one fancy index (see the class docstring)."""
        if self._iterable or self.batch_sampler is None:
            return False
        if self.collate_fn is None:
            return _array_source(self.dataset) is not None
        return self.collate_fn is default_collate and _batch_hook(self.dataset) is not None

    def __len__(self) -> int:
        if self._iterable:
            n = len(self.dataset)  # TypeError for a dataset without a length, as torch
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
        return len(self.batch_sampler) if self.batch_sampler is not None else len(self.sampler)

    def __iter__(self) -> Iterator[Any]:
        post = self._post_process() if self.collate_fn is None else (lambda b: b)
        if self.vectorized:
            if self.collate_fn is None:
                gather = functools.partial(self._gather_legacy, _array_source(self.dataset))
            else:
                gather = _batch_hook(self.dataset)
            for idx in self.batch_sampler:
                yield post(gather(np.asarray(idx, dtype=np.int64)))
            return
        fetch, tasks = self._fetcher()
        if self.num_workers == 0:
            state: dict = {"epoch": 0}
            for task in tasks:
                try:
                    batch = fetch(self.dataset, task, state)
                except StopIteration:
                    return
                yield post(batch)
            return
        yield from (post(b) for b in self._from_workers(fetch, tasks))

    def _fetcher(self) -> tuple[Callable, Iterator]:
        """(picklable fetch function, iterator of its tasks) for the per-item path."""
        collate = self.collate_fn if self.collate_fn is not None else stack_fields
        if self._iterable:
            convert = default_convert if self.batch_size is None and self.collate_fn is default_collate else collate
            fetch = functools.partial(fetch_iterable, collate=convert, batch_size=self.batch_size,
                                      drop_last=self.drop_last)
            return fetch, iter(lambda: None, 0)  # endless requests; the dataset ends them
        if self.batch_sampler is None:
            convert = default_convert if self.collate_fn is default_collate else self.collate_fn
            return functools.partial(fetch_one, convert=convert), iter(self.sampler)
        return functools.partial(fetch_map, collate=collate), iter(self.batch_sampler)

    def _from_workers(self, fetch: Callable, tasks: Iterator) -> Iterator[Any]:
        """Batches computed by the workers, in task order, ``prefetch_factor`` per worker queued ahead."""
        pool = self._start_pool(fetch)
        try:
            outstanding: deque[tuple[int, int]] = deque()
            active = list(range(self.num_workers))
            turn = 0

            def submit() -> bool:
                nonlocal turn
                task = next(tasks, StopIteration)
                if task is StopIteration or not active:
                    return False
                w = active[turn % len(active)]
                turn += 1
                outstanding.append((pool.submit(task, worker=w), w))
                return True

            for _ in range(self.prefetch_factor * self.num_workers):
                if not submit():
                    break
            while outstanding:
                k, w = outstanding.popleft()
                out = pool.result(k)
                if is_exhausted(out):  # an iterable dataset's worker is done
                    if w in active:
                        active.remove(w)
                    continue
                submit()
                yield out
        finally:
            if not self.persistent_workers:
                pool.close()
                self._pool = None

    def _start_pool(self, fetch: Callable) -> WorkerPool:
        if self._pool is not None:
            self._pool.new_epoch()
            return self._pool
        g = self._worker_seed_rng if self._worker_seed_rng is not None else default_generator()
        base_seed = int(g.integers(0, 2**62))
        self._pool = WorkerPool(self.dataset, fetch, self.num_workers, base_seed, self.worker_init_fn,
                                self.multiprocessing_context, self.timeout)
        return self._pool

    # -- numcnn's image batches (collate_fn=None) --------------------------------------------------------------

    def _post_process(self) -> Callable[[list[np.ndarray]], tuple]:
        wrap = self._wrapper()

        def post(fields: list[np.ndarray]) -> tuple:
            if fields[0].ndim == 3:
                fields[0] = fields[0][:, None]
            fields[0] = _images(fields[0])
            if self.transform is not None:
                fields[0] = self._call(self.transform, fields[0])
            if len(fields) > 1:
                fields[1] = _labels(fields[1])
            return tuple(wrap(f) for f in fields)

        return post

    def _wrapper(self) -> Callable[[np.ndarray], Any]:
        if not self.as_tensors:
            return lambda a: a
        from numcnn.autograd.tensor import tensor

        return tensor

    def _call(self, t: Callable, x: np.ndarray) -> np.ndarray:
        return t(x, rng=self._transform_rng) if isinstance(t, Transform) else t(x)

    def _gather_legacy(self, source: tuple, idx: np.ndarray) -> list[np.ndarray]:
        arrays, index_map, t, tt = source
        if index_map is not None:
            idx = index_map[idx]
        fields = [a[idx] for a in arrays]
        if fields[0].ndim == 3:
            # Transforms see (N, C, H, W), as they would see (H, W) items one at a time.
            fields[0] = fields[0][:, None]
        if t is not None:
            fields[0] = self._call(t, fields[0])
        if tt is not None and len(fields) > 1:
            fields[1] = self._call(tt, fields[1])
        return fields

    def __del__(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.close()

    def __repr__(self) -> str:
        try:
            size = f" of {len(self.dataset)}"
        except TypeError:  # an iterable dataset without a length
            size = ""
        return (
            f"DataLoader({type(self.dataset).__name__}{size}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed}, num_workers={self.num_workers})"
        )

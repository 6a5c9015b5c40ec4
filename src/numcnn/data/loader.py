"""DataLoader: batches of (images, labels) from a dataset, gathered with one fancy index when possible."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from numcnn._config import default_generator
from numcnn.data.base import ArrayDataset, Subset
from numcnn.data.transforms import ToTensor, Transform, is_batch_transform

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


def _as_array(x: Any) -> np.ndarray:
    return x.numpy() if hasattr(x, "numpy") and not isinstance(x, np.ndarray) else np.asarray(x)


def _images(x: np.ndarray) -> np.ndarray:
    """Final image batch: float32; uint8 pixels scaled to [0, 1] as ToTensor does."""
    if x.dtype == np.uint8:
        return _to_tensor(x)
    return x.astype(np.float32, copy=False)


def _labels(y: np.ndarray) -> np.ndarray:
    return y.astype(np.int64, copy=False) if y.dtype.kind in "biu" else y


class DataLoader:
    """Iterate over ``dataset`` in batches of ``batch_size``: each batch is ``(images, labels)``.

    images: float32 (B, C, H, W), a (N, H, W) dataset gaining C = 1 and uint8 pixels scaled to [0, 1]
    (as ToTensor) unless a transform already made them float; other image layouts (e.g. features (B, F))
    are only cast to float32. labels: int64 (B,). A dataset with more fields yields one array per field.
    With ``as_tensors`` (default) every field is wrapped by ``numcnn.tensor``, else left an ndarray.

    Array-backed datasets (MNIST, FashionMNIST, TensorDataset, NpzDataset, Subsets of them) whose
    transforms are ``Transform`` objects are gathered with one fancy index per batch and transformed
    as a whole batch (``vectorized`` is then True); other datasets are read item by item and stacked
    (their transforms are then called by the dataset, and draw from their own generators).

    ``transform``: a batch transform applied last, to the float32 image batch described above.

    ``sampler``: an iterable of dataset indices with a length (e.g. ``numcnn.distributed.DistributedSampler``)
    that decides which items are read and in what order, instead of ``shuffle``. A seeded ``generator`` then
    only seeds the random transforms.

    Shuffling: epoch k uses the k-th ``generator.permutation(len(dataset))``, the generator being
    ``generator`` or ``np.random.default_rng(seed)``; random transforms then draw from an independent
    stream spawned from it, so a seeded loader gives the same batches run after run, and changing the
    transforms does not change the order. With neither, the permutations and the random transforms
    draw from numcnn's global generator (``numcnn.manual_seed``).
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        generator: np.random.Generator | None = None,
        transform: Callable | None = None,
        as_tensors: bool = True,
        sampler: Any = None,
    ) -> None:
        if not isinstance(batch_size, int | np.integer) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if seed is not None and generator is not None:
            raise ValueError("DataLoader: pass seed or generator, not both")
        if generator is not None and not isinstance(generator, np.random.Generator):
            raise TypeError(f"DataLoader: generator must be a numpy.random.Generator, got {type(generator).__name__}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle (the sampler decides the "
                             "order)")
        self.sampler = sampler
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.transform = transform
        self.as_tensors = as_tensors
        self.seed = seed
        if generator is None and seed is not None:
            generator = np.random.default_rng(seed)
        self.generator = generator
        # None when unseeded: random transforms then use their own generator or numcnn's global one.
        self._transform_rng = None if generator is None else self._spawn(generator)

    @staticmethod
    def _spawn(g: np.random.Generator) -> np.random.Generator:
        try:
            # Spawning reads the seed sequence, not the state: the shuffle stream is left untouched.
            return g.spawn(1)[0]
        except (AttributeError, TypeError, ValueError):
            return np.random.default_rng(g.bit_generator.random_raw(4))

    @property
    def vectorized(self) -> bool:
        """Whether batches are gathered with one fancy index (see the class docstring)."""
        return _array_source(self.dataset) is not None

    def __len__(self) -> int:
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple]:
        n = len(self.dataset)
        if self.sampler is not None:
            order = np.fromiter(self.sampler, dtype=np.int64, count=len(self.sampler))
        elif self.shuffle:
            # Looked up now, not in __init__, so that numcnn.manual_seed before the epoch applies.
            order = (self.generator if self.generator is not None else default_generator()).permutation(n)
        else:
            order = np.arange(n)
        source = _array_source(self.dataset)
        wrap = self._wrapper()
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            fields = self._gather(source, idx) if source is not None else self._collate(idx)
            if fields[0].ndim == 3:
                fields[0] = fields[0][:, None]
            fields[0] = _images(fields[0])
            if self.transform is not None:
                fields[0] = self._call(self.transform, fields[0])
            if len(fields) > 1:
                fields[1] = _labels(fields[1])
            yield tuple(wrap(f) for f in fields)

    def _wrapper(self) -> Callable[[np.ndarray], Any]:
        if not self.as_tensors:
            return lambda a: a
        try:
            from numcnn.autograd.tensor import tensor
        except ImportError as err:
            raise ImportError(
                "DataLoader(as_tensors=True) wraps batches with numcnn.tensor, which is not available; "
                "pass as_tensors=False to get ndarrays"
            ) from err
        return tensor

    def _call(self, t: Callable, x: np.ndarray) -> np.ndarray:
        return t(x, rng=self._transform_rng) if isinstance(t, Transform) else t(x)

    def _gather(self, source, idx: np.ndarray) -> list[np.ndarray]:
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

    def _collate(self, idx: np.ndarray) -> list[np.ndarray]:
        items = [self.dataset[int(i)] for i in idx]
        if not isinstance(items[0], tuple | list):
            items = [(item,) for item in items]
        fields = []
        for k in range(len(items[0])):
            values = [_as_array(item[k]) for item in items]
            shapes = {v.shape for v in values}
            if len(shapes) > 1:
                raise ValueError(f"DataLoader: cannot stack field {k} of a batch: items have shapes {sorted(shapes)}")
            fields.append(np.stack(values))
        return fields

    def __repr__(self) -> str:
        return (
            f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed})"
        )

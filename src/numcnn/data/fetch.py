"""What one DataLoader step does to turn indices into a batch: run in the main thread or in a worker.

Each fetcher is ``fetch(dataset, indices, state) -> batch``, picklable (module-level functions bound with
``functools.partial``) so that worker processes can run it; ``state`` is the worker's scratch dict (an iterable
dataset's iterator lives there, restarted when ``state["epoch"]`` changes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["fetch_map", "fetch_one", "fetch_iterable", "stack_fields"]


def _as_array(x: Any) -> np.ndarray:
    return x.numpy() if hasattr(x, "numpy") and not isinstance(x, np.ndarray) else np.asarray(x)


def stack_fields(items: list) -> list[np.ndarray]:
    """numcnn's own collate (``numcnn.data.DataLoader`` without ``collate_fn``): field k of every item stacked
    into one ndarray. The loader then casts and scales the images (see DataLoader)."""
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


def fetch_map(dataset: Any, indices: list[int], state: dict, collate: Callable) -> Any:
    """A batch of a map-style dataset: ``collate([dataset[i] for i in indices])`` (or ``__getitems__``)."""
    getitems = getattr(dataset, "__getitems__", None)
    items = getitems(indices) if getitems is not None else [dataset[int(i)] for i in indices]
    return collate(items)


def fetch_one(dataset: Any, index: int, state: dict, convert: Callable) -> Any:
    """One item, unbatched (``batch_size=None``): ``convert(dataset[index])``."""
    return convert(dataset[int(index)])


def _iterator(dataset: Any, state: dict):
    if state.get("iter_epoch") != state.get("epoch"):
        state["iter_epoch"], state["it"] = state.get("epoch"), iter(dataset)
    return state["it"]


def fetch_iterable(dataset: Any, indices: Any, state: dict, collate: Callable, batch_size: int | None,
                   drop_last: bool) -> Any:
    """The next batch (or item, ``batch_size=None``) of an iterable dataset; StopIteration at its end."""
    it = _iterator(dataset, state)
    if batch_size is None:
        return collate(next(it))
    items = []
    for item in it:
        items.append(item)
        if len(items) == batch_size:
            break
    if not items or (drop_last and len(items) < batch_size):
        raise StopIteration
    return collate(items)

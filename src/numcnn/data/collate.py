"""default_collate and default_convert: torch.utils.data's rules for turning samples into batches.

``default_collate(samples)`` looks at the first sample and recurses:

====================================  =====================================================================
sample                                batch
====================================  =====================================================================
Tensor / ndarray (numeric)            a Tensor stacked along a new first axis (dtype kept)
NumPy scalar                          a 1-D Tensor of its dtype
Python int / float / bool             a 1-D Tensor, int64 / float64 / bool (torch's dtypes: float64 here, as
                                      ``torch.tensor([0.5, 1.0], dtype=torch.float64)``)
str / bytes                           the samples as they are
Mapping                               the same mapping type, each key collated
namedtuple                            the same namedtuple, each field collated
tuple / list (other sequences)        a list, each position collated (every sample of the same length)
====================================  =====================================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from numcnn.autograd.tensor import Tensor

__all__ = ["default_collate", "default_convert"]


def _stack(arrays: list[np.ndarray]) -> Tensor:
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise RuntimeError(f"default_collate: stack expects each tensor to be equal size, got shapes {sorted(shapes)}")
    return Tensor(np.stack(arrays))


def default_collate(batch: Sequence[Any]) -> Any:
    """Put a list of samples together into a batch (rules in the module docstring)."""
    if len(batch) == 0:
        raise ValueError("default_collate: the batch holds no samples")
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack([b.numpy() for b in batch])
    if isinstance(elem, np.ndarray | np.generic) and not isinstance(elem, np.str_ | np.bytes_):
        if elem.dtype.kind not in "biuf":
            raise TypeError(f"default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
                            f"found an array of dtype {elem.dtype}")
        return _stack([np.asarray(b) for b in batch])
    if isinstance(elem, bool):
        return Tensor(np.asarray(batch, dtype=np.bool_))
    if isinstance(elem, int):
        return Tensor(np.asarray(batch, dtype=np.int64))
    if isinstance(elem, float):
        return Tensor(np.asarray(batch, dtype=np.float64))
    if isinstance(elem, str | bytes):
        return batch
    if isinstance(elem, Mapping):
        return _same_type(elem, {key: default_collate([d[key] for d in batch]) for key in elem})
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return type(elem)(*(default_collate(s) for s in zip(*batch, strict=True)))
    if isinstance(elem, Sequence):
        if len({len(b) for b in batch}) != 1:
            raise RuntimeError("default_collate: each element in list of batch should be of equal size")
        return [default_collate(samples) for samples in zip(*batch, strict=True)]
    raise TypeError(f"default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
                    f"found {type(elem).__name__}")


def _same_type(template: Mapping, values: dict) -> Any:
    try:
        out = type(template)(values)
    except TypeError:  # a mapping type that cannot be built from a dict
        return values
    return out


def default_convert(data: Any) -> Any:
    """What DataLoader(batch_size=None) applies to each sample: numeric ndarrays become Tensors, recursively
    inside mappings, namedtuples and sequences; everything else is left as it is."""
    if isinstance(data, np.ndarray) and data.dtype.kind in "biuf":
        return Tensor(data)
    if isinstance(data, Mapping):
        return _same_type(data, {k: default_convert(v) for k, v in data.items()})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        try:
            return type(data)([default_convert(d) for d in data])
        except TypeError:
            return [default_convert(d) for d in data]
    return data

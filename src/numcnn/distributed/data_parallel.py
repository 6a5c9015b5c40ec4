"""Data parallelism: parameters broadcast from rank 0, gradients averaged with a few bucketed Allreduce calls.

Every rank holds the whole model and runs forward and backward on its own shard of the batch; before each
update the gradients are averaged over the ranks, so every rank applies the same update and the replicas stay
identical. Averaging the gradients of N per-rank mean losses over batches of B gives the gradient of the mean
loss over the N*B images: the update of one process with batch N*B.

Gradients are copied into a few contiguous buffers (one per dtype, at most ``bucket_bytes`` each) so that a step
makes one Allreduce per bucket, not one per parameter: each MPI call costs a latency (microseconds on one
machine, tens of microseconds across a network) that thousands of small calls would multiply.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np

from ..autograd.tensor import Tensor
from ..optim.optimizer import Optimizer
from .comm import get_comm

#: PyTorch DDP's default bucket size (bucket_cap_mb=25).
DEFAULT_BUCKET_BYTES = 25 * 2**20


def _flat_layout(arrays: list[np.ndarray], bucket_bytes: int) -> list[tuple[np.dtype, list[int], list[int]]]:
    """Group array positions by dtype (in first-seen order) and cut each group into buckets of at most
    ``bucket_bytes`` (an array bigger than that gets a bucket of its own). Returns ``(dtype, positions,
    offsets)`` per bucket, offsets having one more entry than positions."""
    by_dtype: dict[np.dtype, list[int]] = {}
    for i, a in enumerate(arrays):
        by_dtype.setdefault(a.dtype, []).append(i)
    buckets = []
    for dtype, positions in by_dtype.items():
        current, offsets = [], [0]
        for i in positions:
            size = arrays[i].size
            if current and (offsets[-1] + size) * dtype.itemsize > bucket_bytes:
                buckets.append((dtype, current, offsets))
                current, offsets = [], [0]
            current.append(i)
            offsets.append(offsets[-1] + size)
        if current:
            buckets.append((dtype, current, offsets))
    return buckets


def broadcast_tensors_(tensors: Iterable, comm=None, root: int = 0, bucket_bytes: int = DEFAULT_BUCKET_BYTES,
                       what: str = "Bcast") -> None:
    """Overwrite every tensor (Tensor or ndarray) in place with root's values, one Bcast per bucket."""
    comm = comm if comm is not None else get_comm()
    if comm.size == 1:
        return
    arrays = [t.array if isinstance(t, Tensor) else t for t in tensors]
    for dtype, positions, offsets in _flat_layout(arrays, bucket_bytes):
        buf = np.empty(offsets[-1], dtype=dtype)
        for i, lo, hi in zip(positions, offsets, offsets[1:]):
            buf[lo:hi] = arrays[i].reshape(-1)
        comm.bcast_(buf, root=root, what=what)
        for i, lo, hi in zip(positions, offsets, offsets[1:]):
            arrays[i][...] = buf[lo:hi].reshape(arrays[i].shape)


def broadcast_parameters(module_or_tensors, comm=None, root: int = 0) -> None:
    """Make every rank's parameters (and, for a Module, buffers) equal to root's, in place."""
    if hasattr(module_or_tensors, "named_parameters"):
        m = module_or_tensors
        tensors = [p for _, p in m.named_parameters()] + [b for _, b in m.named_buffers() if b is not None]
    else:
        tensors = list(module_or_tensors)
    broadcast_tensors_(tensors, comm, root, what=f"Bcast of the parameters from rank {root}")


class _Bucket:
    """One contiguous buffer: the gradients of ``params``, then the values of ``buffers`` (rank 0's travel to the
    others inside the same Allreduce: the other ranks add zeros), then one presence flag per parameter."""

    def __init__(self, dtype: np.dtype, params: list, buffers: list):
        self.params, self.buffers = params, buffers
        self.p_off = [0, *np.cumsum([p.array.size for p in params], dtype=np.int64).tolist()]
        n_grads = self.p_off[-1]
        self.b_off = [n_grads, *(n_grads + np.cumsum([b.array.size for b in buffers], dtype=np.int64)).tolist()]
        self.flags_at = self.b_off[-1]
        self.buf = np.empty(self.flags_at + len(params), dtype=dtype)


class GradientAverager:
    """Average the ``.grad`` of ``params`` over the ranks, in place, with one Allreduce per bucket.

    A parameter whose grad is None on every rank keeps None (the optimizer then skips it, as it would alone);
    one that has a grad on some ranks only gets the average with zeros for the others (as PyTorch DDP). Each
    bucket carries one presence flag per parameter after the gradients, so that costs no extra call.

    ``buffers``: floating-point tensors (BatchNorm running statistics) set to rank 0's values by the same calls.
    ``seconds`` and ``calls`` accumulate the time spent inside Allreduce (including the wait for the slowest
    rank) and the number of calls, for measurements.
    """

    def __init__(self, params: Iterable, comm=None, bucket_bytes: int = DEFAULT_BUCKET_BYTES, buffers=()):
        self.comm = comm if comm is not None else get_comm()
        seen: set[int] = set()
        self.params = [p for p in params if id(p) not in seen and not seen.add(id(p))]
        self.bucket_bytes = bucket_bytes
        layout = _flat_layout([p.array for p in self.params], bucket_bytes)
        groups = [(dtype, [self.params[i] for i in positions], []) for dtype, positions, _ in layout]
        for b in buffers:
            if b.array.dtype.kind != "f":
                raise TypeError(f"GradientAverager: buffers must be floating point, got {b.array.dtype}")
            home = next((g for g in groups if g[0] == b.array.dtype), None)
            if home is None:
                home = (b.array.dtype, [], [])
                groups.append(home)
            home[2].append(b)
        self.buckets = [_Bucket(dtype, ps, bs) for dtype, ps, bs in groups]
        self.seconds = 0.0
        self.calls = 0

    def average_(self) -> None:
        comm = self.comm
        if comm.size == 1:
            return
        for k, bucket in enumerate(self.buckets):
            buf, p_off, b_off = bucket.buf, bucket.p_off, bucket.b_off
            flags = buf[bucket.flags_at :]
            for j, (p, lo, hi) in enumerate(zip(bucket.params, p_off, p_off[1:])):
                g = p.grad
                if g is None:
                    buf[lo:hi] = 0
                    flags[j] = 0
                else:
                    if g.array.dtype != buf.dtype:
                        raise TypeError(f"GradientAverager: a gradient has dtype {g.array.dtype}, but its "
                                        f"parameter has dtype {buf.dtype}")
                    buf[lo:hi] = g.array.reshape(-1)
                    flags[j] = 1
            for b, lo, hi in zip(bucket.buffers, b_off, b_off[1:]):
                buf[lo:hi] = b.array.reshape(-1) if comm.rank == 0 else 0
            t0 = time.perf_counter()
            comm.allreduce_(buf, what=f"Allreduce of the gradients (bucket {k + 1} of {len(self.buckets)})")
            self.seconds += time.perf_counter() - t0
            self.calls += 1
            grads = buf[: p_off[-1]]
            grads /= buf.dtype.type(comm.size)
            for j, (p, lo, hi) in enumerate(zip(bucket.params, p_off, p_off[1:])):
                if flags[j] == 0:
                    continue
                avg = grads[lo:hi].reshape(p.array.shape)
                g = p.grad
                if g is not None and g.array.flags.writeable and g.array.shape == avg.shape:
                    np.copyto(g.array, avg)
                else:
                    p.grad = Tensor(avg.copy())
            for b, lo, hi in zip(bucket.buffers, b_off, b_off[1:]):
                b.array[...] = buf[lo:hi].reshape(b.array.shape)


class DistributedOptimizer(Optimizer):
    """Wrap an optimizer so that :meth:`step` first averages the gradients over the ranks (bucketed Allreduce).

    At construction, every rank's parameters (and ``model``'s buffers) are overwritten by rank 0's, so the
    replicas start equal whatever each rank's seed was. With ``model`` and ``broadcast_buffers`` (default, as
    PyTorch DDP), every step also gives all ranks rank 0's floating-point buffers (BatchNorm running
    statistics), inside the same Allreduce as the gradients, so the replicas evaluate alike; with local
    BatchNorm each rank normalises by its own batch's statistics, with :class:`~numcnn.distributed.SyncBatchNorm`
    by the statistics of the global batch.

    Everything else (``param_groups``, ``state``, ``zero_grad``, ``state_dict``, ``load_state_dict``) is the
    wrapped optimizer's: a scheduler can be built on either object, a checkpoint saved from one world size loads
    into another. Every rank must call :meth:`step` the same number of times (it is a collective).
    """

    def __init__(self, optimizer: Optimizer, *, model=None, comm=None, bucket_bytes: int = DEFAULT_BUCKET_BYTES,
                 broadcast_buffers: bool = True):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"DistributedOptimizer: expected a numcnn optimizer, got {type(optimizer).__name__}")
        if isinstance(optimizer, DistributedOptimizer):
            raise TypeError("DistributedOptimizer: the optimizer is already distributed")
        # Optimizer.__init__ is not called: the wrapped optimizer owns the groups and the state.
        self.optimizer = optimizer
        self.comm = comm if comm is not None else get_comm()
        params = [p for g in optimizer.param_groups for p in g["params"]]
        buffers = [b for _, b in model.named_buffers() if b is not None] if model is not None else []
        # Float buffers (running statistics) follow rank 0's inside the gradient Allreduce; integer ones
        # (num_batches_tracked) advance alike on every rank and are only broadcast here.
        synced = [b for b in buffers if b.array.dtype.kind == "f"] if broadcast_buffers else []
        self.averager = GradientAverager(params, self.comm, bucket_bytes, buffers=synced)
        broadcast_tensors_(self.averager.params + buffers, self.comm, what="Bcast of the parameters from rank 0")

    # The wrapped optimizer's attributes, read and written through (load_state_dict replaces its lists).
    @property
    def param_groups(self):
        return self.optimizer.param_groups

    @param_groups.setter
    def param_groups(self, value):
        self.optimizer.param_groups = value

    @property
    def state(self):
        return self.optimizer.state

    @state.setter
    def state(self, value):
        self.optimizer.state = value

    @property
    def defaults(self):
        return self.optimizer.defaults

    def step(self, closure=None):
        """Run ``closure`` (if any), average the gradients over the ranks (rank 0's buffers come along), update."""
        loss = closure() if closure is not None else None
        self.averager.average_()
        self.optimizer.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none)

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.optimizer.load_state_dict(state_dict)

    def add_param_group(self, param_group: dict) -> None:
        raise NotImplementedError("DistributedOptimizer: add the parameter groups to the optimizer before wrapping "
                                  "it (every rank must agree on the buckets)")

    def __repr__(self) -> str:
        return (f"DistributedOptimizer({type(self.optimizer).__name__}, ranks={self.comm.size}, "
                f"buckets={len(self.averager.buckets)})")

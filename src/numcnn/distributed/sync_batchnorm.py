"""SyncBatchNorm: batch normalization by the statistics of the global batch (all ranks), as torch.nn.SyncBatchNorm.

With plain (local) BatchNorm each rank normalises by its own per-rank batch, so N ranks with batch B do not
compute what one process with batch N*B computes, and small per-rank batches give noisy statistics.
SyncBatchNorm gathers every rank's per-channel (count, mean, sum of squared deviations) in training, so the
forward and the gradients are those of the global batch; it costs one Allgather of 2C+1 numbers per layer in
forward and one Allreduce of 2C in backward. In eval mode, or in a world of one, it is BatchNorm.
"""

from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..kernels import norm as K
from ..nn.modules.normalization import _BatchNorm
from .comm import get_comm


def _channels_last_fold(x: np.ndarray) -> tuple[int, int, int]:
    """(N, C, *) -> (N, C, prod(*)): the (A, C, B) view the batch-norm reductions use."""
    return x.shape[0], x.shape[1], int(np.prod(x.shape[2:], dtype=np.int64))


class _SyncBatchNormTrain(Function):
    """Training forward/backward over the global batch. Each rank reduces its shard in x's dtype (as BatchNorm);
    the (C,) per-rank statistics travel and are combined in float64 (exact counts; Chan's formula, in rank
    order, so every rank gets the same bits), then cast back to x's dtype."""

    node_name = "SyncBatchNormBackward"

    @staticmethod
    def forward(ctx, x, w, b, eps, comm, stats):
        shape3 = _channels_last_fold(x)
        _, c, _ = shape3
        x3 = x.reshape(shape3)
        n_local = x3.shape[0] * x3.shape[2]
        packed = np.zeros(2 * c + 1, dtype=np.float64)
        packed[0] = n_local
        if n_local > 0:  # a rank may hold an empty shard; it then contributes nothing
            local_mean = x3.sum(axis=(0, 2)) / x.dtype.type(n_local)
            d = x3 - local_mean[:, None]
            packed[1 : c + 1] = local_mean
            packed[c + 1 :] = np.einsum("acb,acb->c", d, d)
        g = comm.allgather(packed, what="Allgather of SyncBatchNorm statistics")
        counts, means, m2s = g[:, 0], g[:, 1 : c + 1], g[:, c + 1 :]
        n = counts.sum()
        if n <= 1:
            raise ValueError(f"SyncBatchNorm: expected more than 1 value per channel over all ranks when training, "
                             f"got {int(n)}")
        mean64 = (counts[:, None] * means).sum(axis=0) / n
        var64 = (m2s.sum(axis=0) + (counts[:, None] * (means - mean64) ** 2).sum(axis=0)) / n
        f = x.dtype.type
        mean = mean64.astype(x.dtype)
        var = var64.astype(x.dtype)
        invstd = f(1) / np.sqrt(var + f(eps))
        scale = invstd if w is None else invstd * w
        y = x3 - mean[:, None]
        y *= scale[:, None]
        if b is not None:
            y += b[:, None]
        ctx.save_for_backward(x, mean, invstd, w)
        ctx.n, ctx.comm = n, comm
        stats.extend((mean, var, int(n)))
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        x, mean, invstd, w = ctx.saved_tensors
        shape3 = _channels_last_fold(x)
        c = shape3[1]
        g3 = grad.reshape(shape3)
        xc = x.reshape(shape3) - mean[:, None]
        sum_dy = g3.sum(axis=(0, 2))
        sum_dy_xc = np.einsum("acb,acb->c", g3, xc)
        nx, nw, nb = ctx.needs_input_grad[:3]
        dx = None
        if nx:
            # dL/dx needs the sums over the global batch; gamma's and beta's gradients stay local (the gradient
            # averaging over the ranks then gives the global batch's values).
            packed = np.concatenate([sum_dy, sum_dy_xc]).astype(np.float64)
            ctx.comm.allreduce_(packed, what="Allreduce of SyncBatchNorm gradients")
            mean_dy = (packed[:c] / ctx.n).astype(x.dtype)
            mean_dy_xc = (packed[c:] / ctx.n).astype(x.dtype)
            k = invstd if w is None else invstd * w
            xc *= (-invstd * invstd * mean_dy_xc)[:, None]
            xc -= mean_dy[:, None]
            xc += g3
            xc *= k[:, None]
            dx = xc.reshape(x.shape)
        dw = sum_dy_xc * invstd if nw else None
        db = sum_dy if nb else None
        return dx, dw, db


class SyncBatchNorm(_BatchNorm):
    """Batch norm over (N, C, *) whose training statistics are those of the batch of all ranks together.

    Same arguments, parameters, buffers and state_dict keys as BatchNorm1d/2d (so a checkpoint moves freely
    between the two); ``process_group``: a communicator (default: :func:`numcnn.distributed.init`'s).
    Running statistics are updated with the global mean and the global unbiased variance, so every rank
    holds the same ones. Every rank must call forward and backward together (they are collectives).
    """

    _ndims = (2, 3, 4, 5)

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, process_group=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype=dtype)
        self.process_group = process_group

    def forward(self, x):
        comm = self.process_group if self.process_group is not None else get_comm()
        if not self.training or comm.size == 1:
            return super().forward(x)
        name = f"SyncBatchNorm({self.num_features})"
        if not isinstance(x, Tensor) or x.ndim < 2:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name}: expected at least 2-D input (N, C, *), got shape {shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{name}: expected input with {self.num_features} channels, got shape {tuple(x.shape)}")
        for p in (self.weight, self.bias):
            if p is not None and p.dtype != x.dtype:
                raise TypeError(f"{name}: input has dtype {x.dtype}, but the layer's parameters have {p.dtype}")
        stats: list = []
        y = _SyncBatchNormTrain.apply(x, self.weight, self.bias, float(self.eps), comm, stats)
        if self.track_running_stats:
            self.num_batches_tracked.array += 1
            momentum = 1.0 / float(self.num_batches_tracked.array) if self.momentum is None else self.momentum
            mean, var, n = stats
            K.batch_norm_update_running(self.running_mean.array, self.running_var.array, mean, var, n, momentum)
        return y

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """``module`` with every BatchNorm1d/2d (at any depth) replaced by a SyncBatchNorm holding the same
        Parameter objects and buffers (an optimizer built before still updates them). Returns the module, or
        the new layer when ``module`` itself is a batch norm."""
        if isinstance(module, _BatchNorm) and not isinstance(module, cls):
            ref = module.weight if module.weight is not None else module.running_mean
            new = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats,
                      process_group=process_group, dtype=ref.dtype if ref is not None else None)
            if module.affine:
                new.weight, new.bias = module.weight, module.bias
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                new.register_buffer(name, getattr(module, name))
            new.train(module.training)
            return new
        for name, child in list(module.named_children()):
            converted = cls.convert_sync_batchnorm(child, process_group)
            if converted is not child:
                setattr(module, name, converted)
        return module

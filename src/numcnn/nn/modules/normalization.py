"""BatchNorm1d/2d (PyTorch's momentum, unbiased running variance, num_batches_tracked) and LayerNorm."""

from __future__ import annotations

import numpy as np

from ... import _config
from ...autograd.tensor import Tensor
from .. import functional as F
from .. import init
from ..functional.normalization import _batch_norm_eval_relu
from ..parameter import Parameter
from .module import Module


class _BatchNorm(Module):
    _ndims: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype=None):
        super().__init__()
        if not isinstance(num_features, int) or num_features <= 0:
            raise ValueError(f"{type(self).__name__}: num_features must be a positive int, got {num_features!r}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        dt = np.dtype(dtype or _config.DEFAULT_DTYPE)
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=dt))
            self.bias = Parameter(np.zeros(num_features, dtype=dt))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=dt)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, dtype=dt)))
            self.register_buffer("num_batches_tracked", Tensor(np.zeros((), dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.array[...] = 0
            self.running_var.array[...] = 1
            self.num_batches_tracked.array[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def _check_input(self, x) -> None:
        if not isinstance(x, Tensor) or x.ndim not in self._ndims:
            name = f"{type(self).__name__}({self.num_features})"
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            want = " or ".join(f"{d}-D" for d in self._ndims)
            raise ValueError(f"{name}: expected {want} input, got shape {shape}")
        if x.shape[1] != self.num_features:
            name = f"{type(self).__name__}({self.num_features})"
            raise ValueError(f"{name}: expected input with {self.num_features} channels, got shape {tuple(x.shape)}")

    def forward(self, x):
        self._check_input(x)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.array += 1
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked.array)
        use_batch_stats = self.training or not self.track_running_stats
        return F.batch_norm(
            x,
            self.running_mean if not self.training or self.track_running_stats else None,
            self.running_var if not self.training or self.track_running_stats else None,
            self.weight, self.bias, use_batch_stats, momentum, self.eps,
        )

    def _fusable_with_relu(self) -> bool:
        """Whether ``relu(self(x))`` may run as one pass (``nn.Sequential`` asks, with grad mode off): eval mode with
        running statistics, no hooks (nothing else sees the batch norm's output), forward not overridden."""
        return (not self.training and self.track_running_stats and self.running_mean is not None
                and self.running_var is not None and not self._forward_hooks
                and not self._forward_pre_hooks and type(self).forward is _BatchNorm.forward)

    def _forward_relu(self, x):
        """``relu(self.forward(x))`` for eval mode with running statistics (see ``_fusable_with_relu``)."""
        self._check_input(x)
        return _batch_norm_eval_relu(x, self.running_mean, self.running_var, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L)."""

    _ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W): one mean and variance per channel."""

    _ndims = (4,)


class LayerNorm(Module):
    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 dtype=None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps, self.elementwise_affine = shape, eps, elementwise_affine
        dt = np.dtype(dtype or _config.DEFAULT_DTYPE)
        if elementwise_affine:
            self.weight = Parameter(np.ones(shape, dtype=dt))
            if bias:
                self.bias = Parameter(np.zeros(shape, dtype=dt))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"

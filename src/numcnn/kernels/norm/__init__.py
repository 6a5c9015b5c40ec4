"""Normalization kernels, forward and backward, PyTorch conventions, read in this order:

1. ``channels.py``  a batch-norm input as per-channel rows: any (N, C, ...) shape folded into (A, C, B), a
                    channel-major one into (1, C, N*H*W); cache-sized channel blocks; per-channel sums
2. ``batch.py``     batch normalization: training (batch statistics, running-statistics update, backward through
                    the statistics) and inference (fixed statistics: one multiply-add per element)
3. ``batch_compiled.py`` training batch norm compiled (Numba): per channel, statistics then normalise, and the
                    backward's two sums then dx, optionally through the ReLU that followed (``relu_out``: the
                    engine's fused backward); ``batch.py`` calls it when the runtime's backend is "numba"
4. ``layer.py``     layer normalization over the last axes of each sample

Statistics are reduced in the input's dtype (float32 stays float32). Variance is computed in two passes
(mean first, then the sum of squared deviations), which avoids the cancellation of E[x^2] - E[x]^2.
"""

from __future__ import annotations

from .batch import (
    batch_norm_backward,
    batch_norm_eval_backward,
    batch_norm_eval_forward,
    batch_norm_train_forward,
    batch_norm_update_running,
)
from .layer import layer_norm_backward, layer_norm_forward

__all__ = [
    "batch_norm_backward", "batch_norm_eval_backward", "batch_norm_eval_forward", "batch_norm_train_forward",
    "batch_norm_update_running", "layer_norm_backward", "layer_norm_forward",
]

"""batch_norm (training batch statistics, eval running statistics) and layer_norm over kernels/norm.py."""

from __future__ import annotations

from ...autograd.activation_ops import ReLU
from ...autograd.function import Function
from ...autograd.tensor import Tensor
from ...kernels import norm as K
from ._checks import check_same_dtype, check_tensor


class _BatchNormTrain(Function):
    node_name = "NativeBatchNormBackward0"

    # When this batch norm's output goes to a ReLU and nowhere else, the engine hands the ReLU output's gradient
    # here (autograd/engine.py, "Fused backwards"): Conv-BN-ReLU's backward skips the ReLU's pass and its array.
    fused_backward = {ReLU: "backward_after_relu"}

    @staticmethod
    def forward(ctx, x, w, b, eps, axes, stats):
        y, mean, invstd, var = K.batch_norm_train_forward(x, w, b, eps, axes, return_var=True)
        ctx.save_for_backward(x, mean, invstd, w)
        ctx.axes = axes
        stats.extend((mean, var))  # the batch statistics, for the running averages
        return y

    @staticmethod
    def backward(ctx, g):
        x, mean, invstd, w = ctx.saved_tensors
        dx, dw, db = K.batch_norm_backward(g, x, mean, invstd, w, ctx.axes)
        nx, nw, nb = ctx.needs_input_grad[:3]
        return dx if nx else None, dw if nw else None, db if nb else None

    @staticmethod
    def backward_after_relu(ctx, relu_ctx, g):
        """``backward(ctx, ReLU.backward(relu_ctx, g))``, the same bits, with the ReLU's selection read inside the
        batch-norm kernel's passes."""
        x, mean, invstd, w = ctx.saved_tensors
        dx, dw, db = K.batch_norm_backward(g, x, mean, invstd, w, ctx.axes, relu_out=relu_ctx.saved_tensors[0])
        nx, nw, nb = ctx.needs_input_grad[:3]
        return dx if nx else None, dw if nw else None, db if nb else None


class _BatchNormEval(Function):
    node_name = "NativeBatchNormBackward0"

    @staticmethod
    def forward(ctx, x, w, b, running_mean, running_var, eps, axes):
        if any(ctx.needs_input_grad):  # (no backward can run otherwise: no copies of the statistics to keep)
            ctx.save_for_backward(x, running_mean.copy(), running_var.copy(), w)
            ctx.eps, ctx.axes = eps, axes
        return K.batch_norm_eval_forward(x, running_mean, running_var, w, b, eps, axes)

    @staticmethod
    def backward(ctx, g):
        x, rm, rv, w = ctx.saved_tensors
        dx, dw, db = K.batch_norm_eval_backward(g, x, rm, rv, w, ctx.eps, ctx.axes)
        nx, nw, nb = ctx.needs_input_grad[:3]
        return dx if nx else None, dw if nw else None, db if nb else None


class _BatchNormEvalReLU(Function):
    """relu(batch_norm(x)) with running statistics in one pass, for ``nn.Sequential`` under ``no_grad`` only (no
    graph is recorded there, so no backward ever runs)."""

    @staticmethod
    def forward(ctx, x, w, b, running_mean, running_var, eps, axes):
        return K.batch_norm_eval_forward(x, running_mean, running_var, w, b, eps, axes, relu=True)

    @staticmethod
    def backward(ctx, g):  # pragma: no cover - applied with grad mode off only
        raise RuntimeError("_BatchNormEvalReLU has no backward: it runs with grad mode off only")


def _bn_axes(ndim: int) -> tuple[int, ...]:
    return (0,) + tuple(range(2, ndim))


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None = None,
               bias: Tensor | None = None, training: bool = False, momentum: float = 0.1,
               eps: float = 1e-5) -> Tensor:
    """input (N, C, *). In training the batch statistics normalise (biased variance) and the running
    statistics, when given, are updated in place: running = (1 - momentum) * running + momentum * batch,
    with the unbiased variance, as PyTorch does."""
    fn = "batch_norm"
    _check_batch_norm(fn, input, running_mean, running_var, weight, bias)
    C = input.shape[1]
    axes = _bn_axes(input.ndim)
    if training:
        n = input.array.size // C
        if n <= 1:
            raise ValueError(f"{fn}: expected more than 1 value per channel when training, got input shape "
                             f"{tuple(input.shape)}")
        stats: list = []
        y = _BatchNormTrain.apply(input, weight, bias, float(eps), axes, stats)
        if running_mean is not None and running_var is not None:
            mean, var = stats
            K.batch_norm_update_running(running_mean.array, running_var.array, mean, var, n, float(momentum))
        return y
    if running_mean is None or running_var is None:
        raise ValueError(f"{fn}: running_mean and running_var are required in eval mode")
    return _BatchNormEval.apply(input, weight, bias, running_mean.array, running_var.array, float(eps), axes)


def _check_batch_norm(fn, input, running_mean, running_var, weight, bias) -> None:
    check_tensor(input, fn, ndims=(2, 3, 4, 5))
    C = input.shape[1]
    for name, t in (("weight", weight), ("bias", bias), ("running_mean", running_mean), ("running_var", running_var)):
        if t is not None:
            if tuple(t.shape) != (C,):
                raise ValueError(f"{fn}: expected {name} of shape ({C},) for input shape {tuple(input.shape)}, "
                                 f"got {tuple(t.shape)}")
            check_same_dtype(input, t, fn, name)


def _batch_norm_eval_relu(input: Tensor, running_mean: Tensor, running_var: Tensor, weight: Tensor | None,
                          bias: Tensor | None, eps: float) -> Tensor:
    """``relu(batch_norm(input, running_mean, running_var, weight, bias, training=False, eps=eps))`` in one pass over
    memory, the same bits; only with grad mode off (``nn.Sequential`` checks). Same checks and messages as
    ``batch_norm``."""
    _check_batch_norm("batch_norm", input, running_mean, running_var, weight, bias)
    return _BatchNormEvalReLU.apply(input, weight, bias, running_mean.array, running_var.array, float(eps),
                                    _bn_axes(input.ndim))


class _LayerNorm(Function):
    node_name = "NativeLayerNormBackward0"

    @staticmethod
    def forward(ctx, x, w, b, k, eps):
        y, mean, invstd = K.layer_norm_forward(x, k, w, b, eps)
        ctx.save_for_backward(x, mean, invstd, w)
        ctx.k = k
        return y

    @staticmethod
    def backward(ctx, g):
        x, mean, invstd, w = ctx.saved_tensors
        dx, dw, db = K.layer_norm_backward(g, x, mean, invstd, w, ctx.k)
        nx, nw, nb = ctx.needs_input_grad[:3]
        return dx if nx else None, dw if nw else None, db if nb else None


def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    fn = "layer_norm"
    check_tensor(input, fn)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if tuple(input.shape[input.ndim - k :]) != shape or input.ndim < k:
        raise ValueError(f"{fn}: expected input with trailing shape {shape}, got shape {tuple(input.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None:
            if tuple(t.shape) != shape:
                raise ValueError(f"{fn}: expected {name} of shape {shape}, got {tuple(t.shape)}")
            check_same_dtype(input, t, fn, name)
    return _LayerNorm.apply(input, weight, bias, k, float(eps))

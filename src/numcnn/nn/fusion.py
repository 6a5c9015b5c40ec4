"""Batch-norm folding for inference: ``fuse(model)`` folds every BatchNorm into the convolution or Linear layer
right before it, as ``torch.nn.utils.fusion.fuse_conv_bn_eval`` / ``fuse_linear_bn_eval`` do.

In eval mode a BatchNorm is the per-channel affine map y = (x - mean) * gamma / sqrt(var + eps) + beta, so after
a convolution (or Linear) with weight W and bias b it can be absorbed into that layer:

    s  = gamma / sqrt(running_var + eps)          one scale per output channel
    W' = W * s   (scaling output channel o)        b' = (b - running_mean) * s + beta

and the BatchNorm becomes ``nn.Identity``. The fused network gives the same outputs up to float rounding and
runs one layer fewer per pair. Batch statistics (train mode, or ``track_running_stats=False``) cannot be folded.
"""

from __future__ import annotations

import copy

import numpy as np

from .modules.container import Identity, Sequential
from .modules.conv import Conv1d, Conv2d
from .modules.linear import Linear
from .modules.module import Module
from .modules.normalization import BatchNorm1d, BatchNorm2d
from .parameter import Parameter

# (layer type, the BatchNorm type that may follow it in a Sequential)
_SEQUENTIAL_PAIRS = ((Conv2d, BatchNorm2d), (Conv1d, BatchNorm1d), (Linear, BatchNorm1d))


def _bn_name(bn) -> str:
    return f"{type(bn).__name__}({bn.num_features})"


def _check_eval(layer: Module, layer_name: str, bn, what: str) -> None:
    for m, name in ((layer, layer_name), (bn, _bn_name(bn))):
        if m.training:
            raise ValueError(f"{what}: {name} is in training mode; call .eval() first (a layer that normalises "
                             f"with batch statistics cannot be folded)")
    if not bn.track_running_stats or bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"{what}: {_bn_name(bn)} has track_running_stats=False, so it normalises with batch "
                         f"statistics even in eval mode and has no running mean/variance to fold")


def _bn_scale_shift(bn):
    """The BatchNorm's arrays as (running_mean, rsqrt(var + eps), gamma, beta), gamma=1 and beta=0 without
    affine. Each (C,) in its own dtype: arithmetic is left to NumPy's promotion, as torch does."""
    rm, rv = bn.running_mean.array, bn.running_var.array
    gamma = bn.weight.array if bn.weight is not None else np.ones_like(rm)
    beta = bn.bias.array if bn.bias is not None else np.zeros_like(rm)
    # rv + eps keeps rv's dtype (NumPy 2 does not upcast for a Python float).
    inv_std = 1.0 / np.sqrt(rv + bn.eps)
    return rm, inv_std, gamma, beta


def _set_weight_bias(fused: Module, layer: Module, w: np.ndarray, b: np.ndarray) -> Module:
    wdt = layer.weight.array.dtype
    bdt = layer.bias.array.dtype if layer.bias is not None else wdt
    grad = layer.weight.requires_grad
    fused.weight = Parameter(w.astype(wdt, copy=False), requires_grad=grad)
    fused.bias = Parameter(b.astype(bdt, copy=False), requires_grad=grad)
    return fused


def fuse_conv_bn_eval(conv: Conv2d, bn: BatchNorm2d) -> Conv2d:
    """A new convolution equal to ``bn(conv(x))`` for both in eval mode.

    conv: Conv2d (or Conv1d) with weight (C_out, C_in / groups, *k) and bias (C_out,) or None.
    bn: BatchNorm2d (BatchNorm1d after a Conv1d) with num_features == C_out and running statistics.
    Returns a deep copy of ``conv`` (same stride, padding, dilation, groups, algorithm, hooks) whose weight is
    W * s[:, None, ...] and whose bias is (b - running_mean) * s + beta, with s = gamma / sqrt(running_var + eps);
    it always has a bias, even when ``conv`` had none. The results keep ``conv``'s dtypes (float32 stays float32,
    float64 stays float64) and both require grad when ``conv.weight`` does. Neither input is modified.

    Raises TypeError for a layer that is not Conv1d/Conv2d (ConvTranspose2d is not supported) or a ``bn`` that
    is not a BatchNorm, and ValueError when either module is in training mode, when ``bn`` has
    ``track_running_stats=False``, or when the channel counts differ.
    """
    if not isinstance(conv, (Conv1d, Conv2d)):
        raise TypeError(f"fuse_conv_bn_eval: expected a Conv2d or Conv1d, got {type(conv).__name__}")
    if not isinstance(bn, (BatchNorm1d, BatchNorm2d)):
        raise TypeError(f"fuse_conv_bn_eval: expected a BatchNorm2d or BatchNorm1d, got {type(bn).__name__}")
    name = conv._name()
    _check_eval(conv, name, bn, "fuse_conv_bn_eval")
    if conv.out_channels != bn.num_features:
        raise ValueError(f"fuse_conv_bn_eval: {name} has {conv.out_channels} output channels but "
                         f"{_bn_name(bn)} normalises {bn.num_features}")
    rm, inv_std, gamma, beta = _bn_scale_shift(bn)
    w = conv.weight.array
    b = conv.bias.array if conv.bias is not None else np.zeros_like(rm)
    # Same operation order as torch's fuse_conv_bn_weights, so the two agree to the last few ulps.
    fused_w = w * (gamma * inv_std).reshape((-1,) + (1,) * (w.ndim - 1))
    fused_b = (b - rm) * inv_std * gamma + beta
    return _set_weight_bias(copy.deepcopy(conv), conv, fused_w, fused_b)


def fuse_linear_bn_eval(linear: Linear, bn: BatchNorm1d) -> Linear:
    """A new Linear equal to ``bn(linear(x))`` for both in eval mode.

    linear: weight (out_features, in_features), bias (out_features,) or None.
    bn: BatchNorm1d with num_features == out_features, or num_features == 1 (one scale for every output, as
    torch allows: a (N, 1, L) input whose last dim the Linear maps).
    Returns a deep copy of ``linear`` with weight W * s[:, None] and bias (b - running_mean) * s + beta,
    s = gamma / sqrt(running_var + eps); it always has a bias of shape (out_features,). dtypes as ``linear``'s.

    Raises TypeError for a wrong module type, ValueError for a module in training mode, a BatchNorm with
    ``track_running_stats=False``, or mismatched feature counts.
    """
    if not isinstance(linear, Linear):
        raise TypeError(f"fuse_linear_bn_eval: expected a Linear, got {type(linear).__name__}")
    if not isinstance(bn, BatchNorm1d):
        raise TypeError(f"fuse_linear_bn_eval: expected a BatchNorm1d, got {type(bn).__name__}")
    name = linear._name()
    _check_eval(linear, name, bn, "fuse_linear_bn_eval")
    if bn.num_features not in (linear.out_features, 1):
        raise ValueError(f"fuse_linear_bn_eval: {name} has {linear.out_features} output features but "
                         f"{_bn_name(bn)} normalises {bn.num_features} (they must be equal, or the BatchNorm "
                         f"must have 1 feature)")
    rm, inv_std, gamma, beta = _bn_scale_shift(bn)
    w = linear.weight.array
    b = linear.bias.array if linear.bias is not None else np.zeros(linear.out_features, dtype=w.dtype)
    scale = gamma * inv_std
    fused_w = w * scale[:, None]
    fused_b = (b - rm) * scale + beta  # (out_features,): b has that shape even when the BatchNorm has 1 feature
    return _set_weight_bias(copy.deepcopy(linear), linear, fused_w, fused_b)


def _fuse_pair(layer: Module, bn: Module) -> Module | None:
    """The fused layer, or None when (layer, bn) is not one of the foldable pairs."""
    for layer_type, bn_type in _SEQUENTIAL_PAIRS:
        if type(layer) is layer_type and type(bn) is bn_type:
            if layer_type is Linear:
                return fuse_linear_bn_eval(layer, bn)
            return fuse_conv_bn_eval(layer, bn)
    return None


def _fuse_sequential(seq: Sequential) -> None:
    names = list(seq._modules)
    i = 0
    while i < len(names) - 1:
        a, b = seq._modules[names[i]], seq._modules[names[i + 1]]
        fused = _fuse_pair(a, b) if a is not None and b is not None else None
        if fused is None:
            i += 1
            continue
        seq._modules[names[i]] = fused
        seq._modules[names[i + 1]] = Identity()
        i += 2


def _fuse_named(module: Module) -> None:
    pairs = getattr(type(module), "_fusable", ())
    cls = type(module).__name__
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(n, str) for n in pair)):
            raise TypeError(f"fuse: {cls}._fusable must hold (layer_name, bn_name) pairs of strings, got {pair!r}")
        layer_name, bn_name = pair
        for n in pair:
            if module._modules.get(n) is None:
                raise ValueError(f"fuse: {cls}._fusable names '{n}', but {cls} has no child module '{n}'")
        layer, bn = module._modules[layer_name], module._modules[bn_name]
        if isinstance(bn, Identity):  # already folded (fuse applied twice)
            continue
        fused = _fuse_pair(layer, bn)
        if fused is None:
            raise TypeError(f"fuse: {cls}._fusable pairs '{layer_name}' ({type(layer).__name__}) with '{bn_name}' "
                            f"({type(bn).__name__}); expected Conv2d + BatchNorm2d, Conv1d + BatchNorm1d or "
                            f"Linear + BatchNorm1d")
        module._modules[layer_name] = fused
        module._modules[bn_name] = Identity()


def fuse(model: Module, inplace: bool = False) -> Module:
    """Fold every BatchNorm into the layer right before it, for inference.

    Returns a deep copy of ``model`` (``model`` itself when ``inplace``) put in eval mode, in which each fused
    BatchNorm is replaced by ``nn.Identity`` and the layer before it by the result of
    :func:`fuse_conv_bn_eval` / :func:`fuse_linear_bn_eval`. ``fuse`` calls ``.eval()`` itself (on the copy, or
    on ``model`` when ``inplace``), so a model in training mode is accepted; the result is meant for inference
    only. In eval mode it gives the same outputs as ``model`` up to float rounding.

    Pairs folded:

    - consecutive children of any ``nn.Sequential`` at any depth: Conv2d then BatchNorm2d, Conv1d then
      BatchNorm1d, Linear then BatchNorm1d (exact types, not subclasses);
    - in any other module, the children named by a class attribute
      ``_fusable = (("conv1", "bn1"), ("conv2", "bn2"), ...)``, which promises that ``forward`` feeds the
      first child's output to the second and uses it nowhere else.

    A BatchNorm after anything else (a ReLU, a pooling layer) is left as it is. The fused model's state_dict
    holds each fused layer's ``weight`` and ``bias`` (a ``bias`` key appears for a conv that had none) and no
    entries for the folded BatchNorms, so it loads only into a model fused the same way. Forward hooks on a
    folded BatchNorm are dropped; a fused layer keeps the hooks of the layer it replaces.

    Raises TypeError when ``model`` is not a Module, and the errors of ``fuse_conv_bn_eval`` when a pair cannot
    be folded (e.g. a BatchNorm with ``track_running_stats=False``).
    """
    if not isinstance(model, Module):
        raise TypeError(f"fuse: expected an nn.Module, got {type(model).__name__}")
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    for m in list(model.modules()):
        if isinstance(m, Sequential):
            _fuse_sequential(m)
        _fuse_named(m)
    return model

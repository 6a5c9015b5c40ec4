"""The numbers behind the textbook's pictures: activation curves and their derivatives, learned filters,
feature maps. Plain arrays out; drawing them is the caller's business (the CLI uses matplotlib)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor
from ..nn import functional as F
from ..nn.modules.conv import Conv2d

__all__ = ["ACTIVATIONS", "activation_curves", "conv_feature_maps", "first_conv"]

#: name -> (label for a plot, function of a Tensor). LeakyReLU uses slope 0.1 (PyTorch's default is 0.01) so that
#: the leak is visible on a plot.
ACTIVATIONS: dict[str, tuple[str, Callable[[Tensor], Tensor]]] = {
    "relu": ("ReLU", F.relu),
    "leaky_relu": ("LeakyReLU (slope 0.1)", lambda x: F.leaky_relu(x, 0.1)),
    "sigmoid": ("Sigmoid", F.sigmoid),
    "tanh": ("Tanh", F.tanh),
    "elu": ("ELU", F.elu),
    "gelu": ("GELU", F.gelu),
}


def activation_curves(x: np.ndarray, names=None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{name: (f(x), f'(x))}`` for the activations ``names`` (default: all of :data:`ACTIVATIONS`).

    ``x``: float array of any shape (float32 or float64, kept). The derivative comes from numcnn's autograd,
    the backward of ``sum(f(x))`` (each output depends on its own input only), not from a hand formula, so the
    plot shows what training uses, including the value chosen at kinks (ReLU'(0) = 0, as PyTorch).
    """
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise TypeError(f"activation_curves: expected a float array, got {x.dtype}")
    out = {}
    for name in names or ACTIVATIONS:
        if name not in ACTIVATIONS:
            raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
        t = Tensor(x.copy(), requires_grad=True)
        y = ACTIVATIONS[name][1](t)
        y.sum().backward()
        out[name] = (y.array.copy(), t.grad.array.copy())
    return out


def first_conv(model) -> Conv2d:
    """The first Conv2d of ``model`` in registration order (the layer that sees the pixels)."""
    for m in model.modules():
        if isinstance(m, Conv2d):
            return m
    raise ValueError(f"{type(model).__name__} has no Conv2d layer")


def conv_feature_maps(model, x) -> list[tuple[str, np.ndarray]]:
    """The output of every Conv2d of ``model`` for the batch ``x`` (N, C, H, W) float32, in the order they run:
    ``[(layer name, (N, out_channels, H', W') array), ...]``. The model runs in eval mode without gradients; its
    mode is restored afterwards. A layer called twice appears twice."""
    names = {id(m): n for n, m in model.named_modules()}
    maps: list[tuple[str, np.ndarray]] = []

    def hook(module, inputs, output):
        maps.append((names.get(id(module), "?"), output.array.copy()))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, Conv2d)]
    if not handles:
        raise ValueError(f"{type(model).__name__} has no Conv2d layer")
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            model(x if isinstance(x, Tensor) else Tensor(np.asarray(x)))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return maps


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or None when matplotlib (the [cli] extra) is not
    installed: for scripts and tutorials that draw figures only when they can."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt

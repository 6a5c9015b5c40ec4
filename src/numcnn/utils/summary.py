"""``summary(model, input_shape)``: each layer's output shape, parameter count and multiply-accumulates."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor


@dataclass
class LayerInfo:
    name: str
    kind: str
    output_shape: tuple
    params: int
    macs: int


@dataclass
class Summary:
    layers: list[LayerInfo] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    total_macs: int = 0
    input_shape: tuple = ()

    def __str__(self) -> str:
        rows = [("Layer (type)", "Output Shape", "Param #", "MACs")]
        rows += [(f"{l.name} ({l.kind})", str(list(l.output_shape)), f"{l.params:,}", f"{l.macs:,}")
                 for l in self.layers]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        line = "-" * (sum(widths) + 6)

        def fmt(r):
            return f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:>{widths[3]}}"

        out = [line, fmt(rows[0]), "=" * len(line)] + [fmt(r) for r in rows[1:]] + ["=" * len(line)]
        out += [f"Input shape: {list(self.input_shape)}",
                f"Total params: {self.total_params:,}",
                f"Trainable params: {self.trainable_params:,}",
                f"Non-trainable params: {self.total_params - self.trainable_params:,}",
                f"Total MACs per image: {self.total_macs:,}", line]
        return "\n".join(out)


def _macs(module, inputs, output) -> int:
    """Multiply-accumulates per image of one layer (0 for layers without a weight product)."""
    kind = type(module).__name__
    if kind in ("Conv2d", "Conv1d"):
        k = int(np.prod(module.kernel_size))
        spatial = int(np.prod(output.shape[2:]))
        return k * (module.in_channels // module.groups) * module.out_channels * spatial
    if kind == "ConvTranspose2d":
        k = int(np.prod(module.kernel_size))
        spatial = int(np.prod(inputs[0].shape[2:]))
        return k * (module.out_channels // module.groups) * module.in_channels * spatial
    if kind == "Linear":
        rows = int(np.prod(output.shape[1:-1])) if output.ndim > 2 else 1
        return module.in_features * module.out_features * rows
    return 0


def summary(model, input_shape, dtype=np.float32, print_fn=print) -> Summary:
    """Run one forward of a batch of 1 with shape ``(1, *input_shape)`` (``input_shape`` without the batch dim,
    e.g. ``(1, 28, 28)``) and report every leaf layer. The model's train/eval mode is left as it was."""
    input_shape = tuple(input_shape)
    result = Summary(input_shape=(1, *input_shape))
    names = {id(m): n for n, m in model.named_modules()}
    handles = []

    def hook(module, inputs, output):
        if not isinstance(output, Tensor):
            output = output[0] if isinstance(output, (tuple, list)) else output
        params = sum(p.numel() for p in module.parameters(recurse=False))
        result.layers.append(LayerInfo(names.get(id(module), "?"), type(module).__name__, tuple(output.shape),
                                       params, _macs(module, inputs, output)))

    for m in model.modules():
        if not any(True for _ in m.children()):
            handles.append(m.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            model(Tensor(np.zeros((1, *input_shape), dtype=dtype)))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    result.total_params = sum(p.numel() for p in model.parameters())
    result.trainable_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    result.total_macs = sum(l.macs for l in result.layers)
    if print_fn is not None:
        print_fn(str(result))
    return result

"""Convolution layers: Conv1d, Conv2d, ConvTranspose2d (PyTorch's constructors, initialisation and keys)."""

from __future__ import annotations

import math

import numpy as np

from ... import _config
from ...kernels.conv import GeometryError
from .. import functional as F
from .. import init
from ..functional._checks import as_tuple
from ..parameter import Parameter
from .module import Module


class _ConvNd(Module):
    _nd = 2
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                 algorithm, dtype, output_padding=0):
        super().__init__()
        name = type(self).__name__
        n = self._nd
        for arg, v in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{name}: {arg} must be a positive int, got {v!r}")
        if in_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) must be divisible by groups ({groups})")
        if out_channels % groups:
            raise ValueError(f"{name}: out_channels ({out_channels}) must be divisible by groups ({groups})")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = as_tuple(kernel_size, n, name, "kernel_size", minimum=1)
        self.stride = as_tuple(stride, n, name, "stride", minimum=1)
        self.dilation = as_tuple(dilation, n, name, "dilation", minimum=1)
        if isinstance(padding, str):
            if self._transposed or padding not in ("same", "valid"):
                allowed = "an int or a tuple" if self._transposed else "an int, a tuple, 'same' or 'valid'"
                raise ValueError(f"{name}: padding must be {allowed}, got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{name}: padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = as_tuple(padding, n, name, "padding", minimum=0)
        self.output_padding = as_tuple(output_padding, n, name, "output_padding", minimum=0)
        if algorithm not in F.conv.ALGORITHMS:
            raise ValueError(f"{name}: algorithm must be one of {F.conv.ALGORITHMS}, got {algorithm!r}")
        self.algorithm = algorithm
        dt = np.dtype(dtype or _config.DEFAULT_DTYPE)
        if self._transposed:
            wshape = (in_channels, out_channels // groups) + self.kernel_size
        else:
            wshape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(np.empty(wshape, dtype=dt))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype=dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # PyTorch: kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the bias the same bound.
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def _check_input(self, x, spatial: int):
        if not hasattr(x, "ndim") or x.ndim not in (spatial + 1, spatial + 2):
            shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
            raise ValueError(f"{self._name()}: expected a {spatial + 2}-D input (N, C, ...) or a {spatial + 1}-D "
                             f"unbatched one, got shape {shape}")

    def _call(self, fn, *args):
        """``fn(*args)``, its shape errors (channels, sizes) reported under this layer's name."""
        try:
            return fn(*args)
        except GeometryError as e:
            raise e.named(self._name()) from None

    def _name(self) -> str:
        return f"{type(self).__name__}({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size})"

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self._nd:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._nd:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self._nd:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.algorithm != "auto":
            s += f", algorithm={self.algorithm!r}"
        return s


class Conv2d(_ConvNd):
    """2-D convolution over (N, C, H, W). ``algorithm``: "auto" (default: a fixed rule of the layer's shapes per
    pass, see numcnn/kernels/conv/dispatch.py), "im2col", "rowshift" (stride 1 only), "gemm" or "reference" (the
    seven loops; old name "naive"). All give the same numbers to float rounding."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, algorithm: str = "auto", dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         algorithm, dtype)

    def forward(self, x):
        self._check_input(x, 2)
        return self._call(F.conv2d, x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                          self.groups, self.algorithm)


class Conv1d(_ConvNd):
    """1-D convolution over (N, C, L)."""

    _nd = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, algorithm: str = "auto", dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         algorithm, dtype)

    def forward(self, x):
        self._check_input(x, 1)
        pad = self.padding if isinstance(self.padding, str) else self.padding[0]
        return self._call(F.conv1d, x, self.weight, self.bias, self.stride[0], pad, self.dilation[0], self.groups,
                          self.algorithm)


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution (the gradient of a Conv2d with respect to its input)."""

    _transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, algorithm: str = "auto", dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         algorithm, dtype, output_padding)

    def forward(self, x):
        self._check_input(x, 2)
        return self._call(F.conv_transpose2d, x, self.weight, self.bias, self.stride, self.padding,
                          self.output_padding, self.groups, self.dilation, self.algorithm)

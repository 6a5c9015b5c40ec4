"""The shape arithmetic of a convolution, validated once: :class:`ConvGeometry`.

A conv2d of x (N, C, H, W) with w (K, C/G, R, S), stride (sh, sw), padding ((top, bottom), (left, right)),
dilation (dh, dw) and G groups has output size (PyTorch's formula, floor division)

    Ho = (H + top + bottom - dh*(R-1) - 1) // sh + 1          (Wo likewise)

Output channel k sees only the C/G input channels of its group. Every kernel, the autograd Function and the
layer share one geometry object instead of passing these numbers around and checking them again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Pair = tuple[int, int]
Padding2d = tuple[Pair, Pair]

__all__ = ["ConvGeometry", "GeometryError", "Padding2d", "Pair", "conv_output_size", "same_padding",
           "transposed_geometry"]


class GeometryError(ValueError):
    """Shapes that do not make a convolution. ``reason`` says what was expected and what was given; callers name
    themselves in front of it with :meth:`named` (``conv2d: ...``, ``Conv2d(3, 16, kernel_size=(3, 3)): ...``)."""

    def __init__(self, reason: str, who: str = "conv2d"):
        super().__init__(f"{who}: {reason}")
        self.reason = reason

    def named(self, who: str) -> GeometryError:
        return GeometryError(self.reason, who)


def conv_output_size(size: int, kernel: int, stride: int, pad_total: int, dilation: int) -> int:
    """Number of output positions along one axis; may be <= 0 when the dilated kernel does not fit."""
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


def same_padding(kernel_size: Pair, dilation: Pair = (1, 1)) -> Padding2d:
    """Explicit ((top, bottom), (left, right)) padding for PyTorch's ``padding='same'`` at stride 1: the total
    d*(k-1) split with the smaller half first (an even kernel puts the extra row at the bottom)."""
    pads = []
    for k, d in zip(kernel_size, dilation, strict=True):
        total = d * (k - 1)
        pads.append((total // 2, total - total // 2))
    return (pads[0], pads[1])


@dataclass(frozen=True)
class ConvGeometry:
    """Shapes and hyper-parameters of one conv2d, checked when made; sizes derived from them as attributes.

    x_shape (N, C, H, W), w_shape (K, C/G, R, S), stride, padding ((top, bottom), (left, right)), dilation,
    groups. Derived: ``out_hw`` (Ho, Wo), ``padded_hw`` (Hp, Wp), ``taps`` R*S, ``rows`` C*R*S (im2col rows).
    """

    x_shape: tuple[int, int, int, int]
    w_shape: tuple[int, int, int, int]
    stride: Pair = (1, 1)
    padding: Padding2d = ((0, 0), (0, 0))
    dilation: Pair = (1, 1)
    groups: int = 1
    out_hw: Pair = field(init=False)
    padded_hw: Pair = field(init=False)

    def __post_init__(self):
        xs, ws, g = tuple(self.x_shape), tuple(self.w_shape), self.groups
        if len(xs) != 4 or len(ws) != 4:
            raise GeometryError(f"expected 4-D x (N, C, H, W) and w (K, C/groups, R, S), got {xs}, {ws}")
        if not isinstance(g, int) or isinstance(g, bool) or g < 1:
            raise GeometryError(f"groups must be a positive int, got {g!r}")
        if ws[1] * g != xs[1]:
            raise GeometryError(f"expected input with {ws[1] * g} channels (weight {ws}, groups={g}), got shape {xs}")
        if ws[0] % g:
            raise GeometryError(f"out_channels {ws[0]} must be divisible by groups {g}")
        (top, bottom), (left, right) = self.padding
        padded = (xs[2] + top + bottom, xs[3] + left + right)
        extent = (self.dilation[0] * (ws[2] - 1) + 1, self.dilation[1] * (ws[3] - 1) + 1)
        if extent[0] > padded[0] or extent[1] > padded[1]:
            raise GeometryError(f"kernel size {extent} (dilated) is larger than the padded input size {padded} "
                                f"(input shape {xs})")
        out = tuple(conv_output_size(xs[2 + i], ws[2 + i], self.stride[i], padded[i] - xs[2 + i], self.dilation[i])
                    for i in range(2))
        for name, value in (("x_shape", xs), ("w_shape", ws), ("out_hw", out), ("padded_hw", padded)):
            object.__setattr__(self, name, value)

    @classmethod
    def of(cls, x_shape, w_shape, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1):
        """A geometry from loose arguments (lists, NumPy ints)."""
        pair = lambda v: (int(v[0]), int(v[1]))  # noqa: E731
        return cls(tuple(int(v) for v in x_shape), tuple(int(v) for v in w_shape), pair(stride),
                   (pair(padding[0]), pair(padding[1])), pair(dilation), int(groups))

    # sizes by their textbook letters
    n = property(lambda self: self.x_shape[0])
    c = property(lambda self: self.x_shape[1])
    k = property(lambda self: self.w_shape[0])
    cg = property(lambda self: self.w_shape[1])  # input channels per group
    kg = property(lambda self: self.w_shape[0] // self.groups)  # output channels per group
    r = property(lambda self: self.w_shape[2])
    s = property(lambda self: self.w_shape[3])
    kernel_size = property(lambda self: self.w_shape[2:])
    taps = property(lambda self: self.w_shape[2] * self.w_shape[3])
    rows = property(lambda self: self.x_shape[1] * self.w_shape[2] * self.w_shape[3])
    height = property(lambda self: self.x_shape[2])
    width = property(lambda self: self.x_shape[3])
    top = property(lambda self: self.padding[0][0])
    left = property(lambda self: self.padding[1][0])
    hp = property(lambda self: self.padded_hw[0])
    wp = property(lambda self: self.padded_hw[1])
    ho = property(lambda self: self.out_hw[0])
    wo = property(lambda self: self.out_hw[1])
    dh = property(lambda self: self.dilation[0])
    dw = property(lambda self: self.dilation[1])
    y_shape = property(lambda self: (self.x_shape[0], self.w_shape[0], *self.out_hw))
    unit_stride = property(lambda self: self.stride == (1, 1))

    def with_batch(self, n: int) -> ConvGeometry:
        """The same layer on a batch of ``n``."""
        return ConvGeometry((n, *self.x_shape[1:]), self.w_shape, self.stride, self.padding, self.dilation,
                            self.groups)

    def grad_hw(self, dy_shape: tuple[int, ...]) -> Pair:
        """The (Ho, Wo) of an output gradient: a transposed conv with output_padding >= stride feeds a dy smaller
        than the full output (the missing positions have zero gradient); a larger one is refused."""
        ho, wo = dy_shape[2:]
        if ho > self.out_hw[0] or wo > self.out_hw[1]:
            raise GeometryError(f"dy spatial size {(ho, wo)} exceeds the conv output size {self.out_hw}",
                                "conv2d backward")
        return ho, wo


def transposed_geometry(x_shape, w_shape, stride: Pair, padding: Pair, output_padding: Pair, dilation: Pair,
                        groups: int) -> ConvGeometry:
    """The conv2d whose input gradient a conv_transpose2d is: x (N, Cin, H, W) lives where that conv's output
    lives, y (N, Cout, Hout, Wout) where its input lives, w (Cin, Cout/G, R, S) is its weight, and
    Hout = (H-1)*sh - 2*ph + dh*(R-1) + oph + 1."""
    xs, ws = tuple(x_shape), tuple(w_shape)
    who = "conv_transpose2d"
    if len(xs) != 4 or len(ws) != 4:
        raise GeometryError(f"expected 4-D x (N, Cin, H, W) and w (Cin, Cout/groups, R, S), got {xs}, {ws}", who)
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise GeometryError(f"groups must be a positive int, got {groups!r}", who)
    if xs[1] != ws[0]:
        raise GeometryError(f"expected input with {ws[0]} channels (weight {ws}), got shape {xs}", who)
    if ws[0] % groups:
        raise GeometryError(f"in_channels {ws[0]} must be divisible by groups {groups}", who)
    for i in range(2):
        if not 0 <= output_padding[i] < max(stride[i], dilation[i]):
            raise GeometryError(f"output_padding must be smaller than either stride or dilation, got output_padding "
                                f"{tuple(output_padding)}, stride {tuple(stride)}, dilation {tuple(dilation)}", who)
    out_hw = [(xs[2 + i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (ws[2 + i] - 1) + output_padding[i] + 1
              for i in range(2)]
    if out_hw[0] <= 0 or out_hw[1] <= 0:
        raise GeometryError(f"the output size would be {tuple(out_hw)}, not positive, for input shape {xs}", who)
    y_shape = (xs[0], ws[1] * groups, out_hw[0], out_hw[1])
    pads = ((padding[0], padding[0]), (padding[1], padding[1]))
    return ConvGeometry.of(y_shape, ws, stride, pads, dilation, groups)

"""The public convolution kernels: one entry point per pass, each choosing the algorithm that runs it.

An ``algorithm`` names a way to compute all three passes of a layer:

=============  ==================================================================================================
``reference``  the seven loops of ``reference.py`` (old name: ``naive``)
``gemm``       ``gemm.py``: whole-batch im2col, one matrix product, col2im
``im2col``     ``chunked.py``: im2col + GEMM in cache-sized batch chunks over threads; grad-input runs
               col2im for strided layers and the padded grid (``grid.py``) for stride 1
``rowshift``   ``rowshift.py``: row copies and squarer GEMMs on a row grid (stride 1 only)
``direct``     ``direct.py``: compiled direct convolution, the taps as constant offsets on a padded grid; at stride
               > 1 ``direct_strided.py`` runs the same kernels on the input's phases (needs Numba)
``auto``       the default: a fixed rule of the shapes picks per pass (:func:`choose`); with the compiled
               backend, depthwise layers at stride 1 run ``depthwise.py`` for all three passes, and the passes
               :func:`direct_passes` names run direct (small layers at stride 1; strided layers' grad-input)
=============  ==================================================================================================

What each pass runs is named by a :class:`Plan` (``plan(geo, "im2col")`` is ``Plan("im2col", "grid", "im2col")``
at stride 1). Every choice is a function of the shapes (and the runtime's memory budget and algorithm table, see
``autotune.py``), never of timings taken on the fly or the thread count: the same model computes the same bits.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import jit, workspace
from . import chunked, depthwise, direct, direct_strided, direct_weight, gemm, grid, reference, rowshift
from .chunked import Columns
from .geometry import ConvGeometry, GeometryError

__all__ = ["ALGORITHMS", "ALIASES", "PASSES", "Plan", "backward_input", "backward_weight", "canonical", "choose",
           "direct_passes",
           "conv1d_backward_input", "conv1d_backward_weight", "conv1d_forward", "conv2d_backward_bias",
           "conv2d_backward_input", "conv2d_backward_weight", "conv2d_forward", "forward", "plan"]

ALGORITHMS = ("auto", "reference", "gemm", "im2col", "rowshift", "direct")
ALIASES = {"naive": "reference"}  # names used before the kernels were reorganised; they keep working
PASSES = ("forward", "input", "weight")


# The module whose ``backward_input`` (and, for the first three, ``backward_weight``) each kernel name runs.
_INPUT_KERNELS = {"reference": reference, "gemm": gemm, "depthwise": depthwise, "rowshift": rowshift, "grid": grid,
                  "col2im": chunked, "direct": direct}


class Plan(NamedTuple):
    """The kernel each pass runs: forward in {reference, gemm, im2col, rowshift, depthwise, direct}, grad-input in
    {reference, gemm, col2im, grid, rowshift, depthwise, direct}, grad-weight in {reference, gemm, im2col,
    rowshift, depthwise, direct}."""

    forward: str
    input: str
    weight: str


def canonical(algorithm: str) -> str:
    """The algorithm's current name ("naive" -> "reference"); a ValueError for an unknown one."""
    name = ALIASES.get(algorithm, algorithm)
    if name not in ALGORITHMS:
        raise ValueError(f"unknown convolution algorithm {algorithm!r}; expected one of {ALGORITHMS} "
                         f"(or the old name 'naive' for 'reference')")
    return name


def choose(geo: ConvGeometry, pass_: str) -> str:
    """What ``"auto"`` runs for one pass. Strided layers take im2col / col2im; at stride 1:

    - forward: rowshift when its GEMM is wide enough (C/G*R and K/G*S at least 16) and the padding columns it also
      computes are few (Wp <= 1.3 Wo: 3x3 'same' on 7x7, 5x5 on 14x14 and larger), else im2col;
    - grad-input: rowshift unless the layer is 1x1, depthwise-like (C/G < 2) or its GEMM too narrow (K/G*R < 8),
      else the padded grid;
    - grad-weight: im2col, whose GEMM reduces over the batch in one product where rowshift needs S of them over
      Wp/Wo times the positions. (A training forward that can keep its im2col columns builds them instead of
      running rowshift: see :func:`forward`.)
    """
    if pass_ not in PASSES:
        raise ValueError(f"choose: pass_ must be one of {PASSES}, got {pass_!r}")
    if pass_ == "weight":
        return "im2col"
    if not geo.unit_stride:
        return "im2col" if pass_ == "forward" else "col2im"
    if geo.taps == 1:
        return "im2col" if pass_ == "forward" else "grid"
    if pass_ == "input":
        return "rowshift" if geo.cg >= 2 and geo.kg * geo.r >= 8 else "grid"
    wide = geo.cg * geo.r >= 16 and geo.kg * geo.s >= 16
    return "rowshift" if wide and 0 < geo.wo and geo.wp <= 1.3 * geo.wo else "im2col"


def direct_passes(geo: ConvGeometry) -> tuple[str, ...]:
    """The passes ``"auto"`` gives to ``direct.py`` (``direct_strided.py`` at stride > 1) with the compiled backend:
    grad-input for strided layers of more than one tap (below), and all three for stride-1 layers with 3x3 or larger
    kernels whose grid computes at most 1.5 positions per output (``direct.grid_overhead``: 1.04 for
    3x3 'same' on 28x28, 1.31 on 7x7, 1.44 for lenet5's unpadded C3; one output position, lenet5's C5, is 16).

    Since the direct kernel keeps its output tile's sums in registers (95-105 GFLOP/s per core), it wins or ties
    against im2col and rowshift + OpenBLAS on every such layer measured. Batch 100, float32, 2 threads, medians of
    25 in one process (forward / grad-input / grad-weight, ms):

    ========================  ==================  ==================  ==================
    layer (3x3 'same')        direct              im2col              rowshift
    ========================  ==================  ==================  ==================
    1->16 on 28x28 (stem)     0.74 / 1.53 / 1.01  0.87 / 2.42 / 2.91  1.87 / 4.27 / 5.25
    16->64 on 28x28           11.7 / 14.0 / 11.1  15.8 / 16.2 / 17.7  16.9 / 24.2 / 19.9
    48->32 on 14x14           5.96 / 6.28 / 7.49  11.7 / 10.2 / 10.5  6.89 / 5.84 / 9.60
    64->64 on 7x7             3.68 / 4.82 / 5.70  5.66 / 7.09 / 5.90  6.25 / 4.46 / 6.75
    16->16 on 7x7             0.97 / 0.61 / 0.95  0.98 / 0.96 / 1.53  0.72 / 0.76 / 1.03
    ========================  ==================  ==================  ==================

    and (another run) 3->32 on 32x32: 3.38 / 5.82 / 4.43 against auto's GEMM paths 6.96 / 14.3 / 9.74; lenet5's C3
    (6->16 5x5, no padding, 14x14): 1.38 / 2.69 / 1.76 against 2.59 / 3.43 / 2.78; 64->64 on 32x32: 81 / 84 / 106
    against 104 / 109 / 138. Left to the GEMM paths: 1x1 and 2x2 kernels (one GEMM, or few taps), one-output-position
    layers, and strided layers but for their grad-input."""
    if direct.supported(geo) and geo.taps >= 9 and direct.grid_overhead(geo) <= 1.5:
        return PASSES
    if not geo.unit_stride and geo.taps > 1:
        # Strided layers: grad-input on dx's phases (``direct_strided.backward_input``, each phase a stride-1
        # correlation) against col2im, 2 threads, min of 25 alternated: 16->32 3x3 stride 2 on 28x28 2.71 against
        # 4.25 ms, 32->64 on 14x14 2.07 against 2.89, 64->128 on 32x32 29.4 against 36.7 (2026-12-03). 1x1 layers
        # keep col2im (one phase: 1.41 against 1.15 ms on one thread).
        # Their forward and grad-weight stay with im2col: ``direct_strided`` takes 25-35% longer for those on
        # resnet's 16->32 3x3 stride 2 on 28x28 (min of 25: 7.2-8.5 against 5.7-6.6 ms) and 32->64 on 14x14
        # (6.0-6.8 against 4.7-5.5), and the whole resnet step was 0-17 ms faster without them (2026-12-03, 2
        # threads); ``algorithm="direct"`` still runs them.
        return ("input",)
    return ()


def plan(geo: ConvGeometry, algorithm: str = "auto") -> Plan:
    """The kernels ``algorithm`` runs for the three passes of the layer ``geo``."""
    algorithm = canonical(algorithm)
    if algorithm == "auto" and jit.use_compiled() and depthwise.supported(geo):
        return Plan("depthwise", "depthwise", "depthwise")  # compiled: one filter per channel, no GEMM to give BLAS
    if algorithm == "auto" and jit.use_compiled():
        passes = direct_passes(geo)
        kinds = ["direct" if p in passes else choose(geo, p) for p in PASSES]
        if geo.unit_stride and geo.taps > 1 and geo.ho * geo.wo == 1 and kinds[1] != "direct":
            # One output position per image (lenet5's C5): grad-input is one GEMM and one window added back, 0.25
            # ms against rowshift's 2.8 for (100, 16, 5, 5) -> 120. Only with the compiled backend: the NumPy
            # kernels keep the bits the golden test pinned (the product sums in another order).
            kinds[1] = "gemm"
        return Plan(*kinds)
    if algorithm == "auto":
        return Plan(*(choose(geo, p) for p in PASSES))
    if algorithm == "rowshift" and not geo.unit_stride:
        raise ValueError(f"convolution algorithm {algorithm!r} needs stride 1, got stride {geo.stride}; "
                         "use 'im2col' or 'auto'")
    if algorithm == "im2col":
        return Plan("im2col", "grid" if geo.unit_stride else "col2im", "im2col")
    return Plan(algorithm, algorithm, algorithm)


def forward(geo: ConvGeometry, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, algorithm: str = "auto",
            return_cols: bool = False):
    """y (N, K, Ho, Wo) in x's dtype, and with ``return_cols`` the columns (a ``Columns``, or None) that
    :func:`backward_weight` can reuse. With im2col and rowshift y is a transposed view of a (K, N, Ho, Wo) buffer.

    Columns come back only when the forward ran im2col (or rowshift, asked for by name) and they fit the keep limit
    (``workspace.keepable``); they are pooled memory lent to the caller: ``cols.release()`` after the backward.
    Under "auto", a forward whose grad-weight will run im2col builds im2col columns instead of running rowshift
    when they can be kept: that costs less than rowshift plus rebuilding the columns in backward.
    """
    auto = canonical(algorithm) == "auto"
    steps = plan(geo, algorithm)
    kind = steps.forward
    if auto and return_cols and kind != steps.weight == "im2col":
        if workspace.keepable(chunked.columns_bytes(geo, x.itemsize)):
            kind = "im2col"
    cols = None
    if kind == "depthwise":
        y = depthwise.forward(geo, x, w, b)
    elif kind == "direct":
        y = (direct if geo.unit_stride else direct_strided).forward(geo, x, w, b)
    elif kind in ("reference", "gemm"):
        y = (reference if kind == "reference" else gemm).forward(geo, x, w)
        if b is not None:
            y += b.astype(x.dtype, copy=False)[:, None, None]
    elif kind == "rowshift":
        keep = return_cols and steps.weight == "rowshift" and workspace.keepable(rowshift.rows_bytes(geo, x.itemsize))
        y, rows = rowshift.forward(geo, x, w, b, keep)
        cols = Columns(rows, "rowshift") if keep else None
    else:
        y, cols = chunked.forward(geo, x, w, b, return_cols and steps.weight != "direct")  # direct reads x
    return (y, cols) if return_cols else y


def backward_input(geo: ConvGeometry, dy: np.ndarray, w: np.ndarray, algorithm: str = "auto") -> np.ndarray:
    """dx (N, C, H, W) in dy's dtype: the gradient of sum(dy * forward(x, w)) with respect to x. dy may be smaller
    than the output (a transposed convolution's crop): the missing positions have zero gradient."""
    cropped = geo.grad_hw(dy.shape) != geo.out_hw
    kind = plan(geo, algorithm).input
    w = w.astype(dy.dtype, copy=False)
    if kind == "rowshift" and cropped:
        kind = "grid"  # rowshift's row grid assumes the full output
    if kind == "direct" and not geo.unit_stride:
        return direct_strided.backward_input(geo, dy, w)
    return _INPUT_KERNELS[kind].backward_input(geo, dy, w)


def backward_weight(geo: ConvGeometry, dy: np.ndarray, x: np.ndarray | None, algorithm: str = "auto",
                    cols=None) -> np.ndarray:
    """dw (K, C/G, R, S) in dy's dtype: the gradient of sum(dy * forward(x, w)) with respect to w.

    ``cols``: what :func:`forward` returned with ``return_cols`` (or one whole-batch (C*R*S, N*Ho*Wo) im2col
    matrix); it decides the kernel ("auto" runs the algorithm the columns came from) and x may then be None.
    """
    kept = cols.algorithm if isinstance(cols, Columns) else ("im2col" if cols is not None else None)
    cropped = geo.grad_hw(dy.shape) != geo.out_hw
    if canonical(algorithm) == "auto" and kept is not None:
        kind = kept  # the forward's columns or rows are already built
    else:
        kind = plan(geo, algorithm).weight
    if x is None and (kept is None or kind in ("reference", "gemm", "depthwise", "direct")):
        raise ValueError("conv2d_backward_weight: x may be None only with the forward's cols given (not with "
                         f"the {kind!r} algorithm)")
    if kind == "direct":
        return (direct_weight if geo.unit_stride else direct_strided).backward_weight(geo, dy, x)
    if kind in ("reference", "gemm", "depthwise"):  # they read x itself, never the forward's columns
        return _INPUT_KERNELS[kind].backward_weight(geo, dy, x)
    if kept is not None and kept != kind:
        raise ValueError(f"conv2d_backward_weight: cols come from the {kept!r} algorithm, not {kind!r}")
    if kind == "rowshift" and not cropped:
        return rowshift.backward_weight(geo, dy, x, cols)
    if kind == "rowshift":  # a transposed conv's cropped dy: im2col handles it, from x
        cols = None
    return chunked.backward_weight(geo, dy, x, cols)


def geometry_from_output(dy_shape, w_shape, stride, padding, dilation, groups) -> ConvGeometry:
    """A geometry for a grad-weight given only dy (the forward's columns stand in for x): the smallest input that
    gives dy's size (exact for stride 1, where the input size follows from the output size)."""
    n, _, ho, wo = dy_shape
    k, cg, r, s = w_shape
    hw = [(o - 1) * st + d * (kk - 1) + 1 - sum(p) for o, st, d, kk, p in
          zip((ho, wo), stride, dilation, (r, s), padding, strict=True)]
    try:
        return ConvGeometry.of((n, cg * groups, *hw), w_shape, stride, padding, dilation, groups)
    except GeometryError as e:
        raise e.named("conv2d_backward_weight") from None


# ----------------------------------------------------------------------------------------------------------------
# The same entry points with loose arguments (PyTorch's functional form): they make the geometry and go above.


def _geometry(x_shape, w_shape, stride, padding, dilation, groups, who: str) -> ConvGeometry:
    try:
        return ConvGeometry.of(x_shape, w_shape, stride, padding, dilation, groups)
    except GeometryError as e:
        raise e.named(who) from None


def conv2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride=(1, 1),
                   padding=((0, 0), (0, 0)), dilation=(1, 1), groups: int = 1, algorithm: str = "auto",
                   return_cols: bool = False):
    """2-D cross-correlation, as torch.nn.functional.conv2d: x (N, C, H, W), w (K, C/groups, R, S), b (K,) or None
    -> y (N, K, Ho, Wo) in x's dtype. padding is explicit ((top, bottom), (left, right)). See :func:`forward`."""
    geo = _geometry(x.shape, w.shape, stride, padding, dilation, groups, "conv2d")
    return forward(geo, x, w, b, algorithm, return_cols)


def conv2d_backward_input(dy: np.ndarray, w: np.ndarray, x_shape, stride, padding, dilation, groups: int,
                          algorithm: str = "auto") -> np.ndarray:
    """dy (N, K, Ho, Wo), w (K, C/groups, R, S), x_shape (N, C, H, W) -> dx (N, C, H, W) in dy's dtype."""
    geo = _geometry(x_shape, w.shape, stride, padding, dilation, groups, "conv2d")
    return backward_input(geo, dy, w, algorithm)


def conv2d_backward_weight(dy: np.ndarray, x: np.ndarray | None, w_shape, stride, padding, dilation, groups: int,
                           algorithm: str = "auto", cols=None) -> np.ndarray:
    """dy (N, K, Ho, Wo), x (N, C, H, W) or None when ``cols`` is given, w_shape (K, C/groups, R, S) -> dw w_shape
    in dy's dtype. See :func:`backward_weight`."""
    if x is None:
        geo = geometry_from_output(dy.shape, w_shape, stride, padding, dilation, groups)
    else:
        geo = _geometry(x.shape, w_shape, stride, padding, dilation, groups, "conv2d")
    return backward_weight(geo, dy, x, algorithm, cols)


def conv2d_backward_bias(dy: np.ndarray) -> np.ndarray:
    """dy (N, K, Ho, Wo) -> db (K,): the gradient of sum(dy * conv2d_forward(x, w, b)) with respect to b."""
    return dy.sum(axis=(0, 2, 3))


def conv1d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride: int = 1,
                   padding: tuple[int, int] = (0, 0), dilation: int = 1, groups: int = 1,
                   algorithm: str = "auto") -> np.ndarray:
    """1-D cross-correlation, as torch.nn.functional.conv1d: x (N, C, L), w (K, C/groups, S), b (K,) or None,
    padding (left, right) -> y (N, K, Lo). It is a conv2d of height 1."""
    y = conv2d_forward(x[:, :, None], w[:, :, None], b, (1, stride), ((0, 0), tuple(padding)), (1, dilation), groups,
                       algorithm)
    return y[:, :, 0]


def conv1d_backward_input(dy: np.ndarray, w: np.ndarray, x_shape, stride: int, padding: tuple[int, int],
                          dilation: int, groups: int, algorithm: str = "auto") -> np.ndarray:
    """dy (N, K, Lo), w (K, C/groups, S), x_shape (N, C, L) -> dx (N, C, L)."""
    n, c, length = x_shape
    dx = conv2d_backward_input(dy[:, :, None], w[:, :, None], (n, c, 1, length), (1, stride),
                               ((0, 0), tuple(padding)), (1, dilation), groups, algorithm)
    return dx[:, :, 0]


def conv1d_backward_weight(dy: np.ndarray, x: np.ndarray, w_shape, stride: int, padding: tuple[int, int],
                           dilation: int, groups: int, algorithm: str = "auto") -> np.ndarray:
    """dy (N, K, Lo), x (N, C, L), w_shape (K, C/groups, S) -> dw w_shape."""
    k, cg, s = w_shape
    dw = conv2d_backward_weight(dy[:, :, None], x[:, :, None], (k, cg, 1, s), (1, stride), ((0, 0), tuple(padding)),
                                (1, dilation), groups, algorithm)
    return dw[:, :, 0]

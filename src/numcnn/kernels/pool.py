"""Pooling kernels: max, average and adaptive average pooling over NCHW arrays, forward and backward.

All functions follow PyTorch's CPU semantics (output-size rule, ``ceil_mode``, padding, tie-breaking and
index layout of ``max_pool2d(return_indices=True)``). Loops run over kernel offsets only; every step
inside is a whole-array NumPy operation. The result dtype is the input dtype.
"""

from __future__ import annotations

import numpy as np

from . import parallel

IntPair = tuple[int, int]


def pool_output_size(
    size: int, kernel: int, stride: int, pad: int, dilation: int = 1, ceil_mode: bool = False
) -> int:
    """Number of pooling windows along one spatial axis, by PyTorch's rule.

    ``floor((size + 2*pad - dilation*(kernel-1) - 1) / stride) + 1`` (``ceil`` with ``ceil_mode``); in
    ``ceil_mode`` the last window must start inside the input or the left padding, else it is dropped.
    Raises ``ValueError`` for non-positive kernel/stride/dilation, negative padding, ``pad > kernel // 2``
    or an output smaller than 1.
    """
    if kernel < 1 or stride < 1 or dilation < 1:
        raise ValueError(
            f"pooling: kernel, stride and dilation must be positive, got kernel={kernel}, "
            f"stride={stride}, dilation={dilation}"
        )
    if pad < 0 or pad > kernel // 2:
        raise ValueError(
            f"pooling: padding must be between 0 and half the kernel size, got padding={pad} "
            f"for kernel={kernel}"
        )
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    if ceil_mode:
        span += stride - 1
    out = span // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    if out < 1:
        raise ValueError(
            f"pooling: input size {size} is too small for kernel={kernel}, stride={stride}, "
            f"padding={pad}, dilation={dilation} (output size {out})"
        )
    return out


def _window_view(a: np.ndarray, start_h: int, start_w: int, out_hw: IntPair, stride: IntPair) -> np.ndarray:
    """Strided view ``a[..., start_h + sh*i, start_w + sw*j]`` of shape ``(..., Ho, Wo)``."""
    (ho, wo), (sh, sw) = out_hw, stride
    return a[..., start_h : start_h + sh * (ho - 1) + 1 : sh, start_w : start_w + sw * (wo - 1) + 1 : sw]


def _pad_plane(x: np.ndarray, pad: IntPair, padded_hw: IntPair, fill: float) -> np.ndarray:
    """x (N, C, H, W) padded to ``padded_hw`` with ``pad`` rows/cols in front; x itself if nothing to pad."""
    (ph, pw), (hp, wp) = pad, padded_hw
    h, w = x.shape[-2:]
    if ph == 0 and pw == 0 and hp == h and wp == w:
        return x
    xp = np.full(x.shape[:-2] + (hp, wp), fill, dtype=x.dtype)
    xp[..., ph : ph + h, pw : pw + w] = x
    return xp


def _check_4d(x_shape: tuple[int, ...], name: str) -> None:
    if len(x_shape) != 4:
        raise ValueError(f"{name}: expected an (N, C, H, W) input, got shape {tuple(x_shape)}")


def _geometry(
    x_shape: tuple[int, ...],
    kernel_size: IntPair,
    stride: IntPair,
    padding: IntPair,
    dilation: IntPair,
    ceil_mode: bool,
) -> tuple[IntPair, IntPair]:
    """Output size (Ho, Wo) and the padded plane size (Hp, Wp) that holds every window."""
    out, padded = [], []
    for n, k, s, p, d in zip(x_shape[-2:], kernel_size, stride, padding, dilation, strict=True):
        o = pool_output_size(n, k, s, p, d, ceil_mode)
        out.append(o)
        # With ceil_mode the last window may reach past the right padding; pad far enough to slice it.
        padded.append(max(n + 2 * p, (o - 1) * s + d * (k - 1) + 1))
    return (out[0], out[1]), (padded[0], padded[1])


def max_pool2d_forward(
    x: np.ndarray,
    kernel_size: IntPair,
    stride: IntPair,
    padding: IntPair,
    dilation: IntPair = (1, 1),
    ceil_mode: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """2-D max pooling.

    x: (N, C, H, W) float. Returns ``y`` (N, C, Ho, Wo) in x's dtype and ``indices`` (N, C, Ho, Wo) int64,
    the flat position ``h * W + w`` of each maximum inside its input plane, exactly as
    ``torch.nn.functional.max_pool2d(..., return_indices=True)``: padding never wins, ties go to the first
    maximum in window raster order, a NaN is the maximum (the last NaN of the window gives the index).
    """
    _check_4d(x.shape, "max_pool2d")
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    (ho, wo), padded_hw = _geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    H, W = x.shape[-2:]
    xp = _pad_plane(x, (ph, pw), padded_hw, -np.inf)
    offsets = [(i * dh, j * dw) for i in range(kh) for j in range(kw)]
    views = [_window_view(xp, oi, oj, (ho, wo), (sh, sw)) for oi, oj in offsets]

    y = views[0].copy()
    for v in views[1:]:
        np.maximum(y, v, out=y)  # NaN-propagating, like PyTorch's `val > max || isnan(val)`

    # Offset number of the first element equal to the maximum, in raster order (PyTorch's tie rule).
    code_dtype = np.uint8 if len(offsets) < 256 else np.int32
    code = np.zeros(y.shape, dtype=code_dtype)
    not_found = np.ones(y.shape, dtype=bool)
    hit = np.empty(y.shape, dtype=bool)
    for o, v in enumerate(views):
        np.equal(v, y, out=hit)
        hit &= not_found
        not_found ^= hit
        if o:
            code += hit * code_dtype(o)
    if np.isnan(y).any():
        # PyTorch keeps replacing the max by every NaN it meets, so the last NaN's offset wins.
        for o, v in enumerate(views):
            code[np.isnan(v)] = o

    row0 = np.arange(ho) * sh - ph  # top-left corner of each window in input coordinates
    col0 = np.arange(wo) * sw - pw
    offset_flat = np.array([oi * W + oj for oi, oj in offsets], dtype=np.int64)
    indices = offset_flat[code]
    indices += row0[:, None] * W + col0[None, :]

    neg_inf = y == -np.inf
    if neg_inf.any():
        # A window whose valid elements are all -inf (or that has none) reports its first valid
        # position, as PyTorch does, rather than a padding position.
        first_r = row0 + np.maximum(-row0 + dh - 1, 0) // dh * dh
        first_c = col0 + np.maximum(-col0 + dw - 1, 0) // dw * dw
        first = first_r[:, None] * W + first_c[None, :]
        np.copyto(indices, np.broadcast_to(first, indices.shape), where=neg_inf)
    return y, indices


def max_pool2d_values(
    x: np.ndarray,
    kernel_size: IntPair,
    stride: IntPair,
    padding: IntPair,
    dilation: IntPair = (1, 1),
    ceil_mode: bool = False,
) -> np.ndarray:
    """The maxima of 2-D max pooling without their positions: y (N, C, Ho, Wo) in x's dtype, equal to
    ``max_pool2d_forward(...)[0]``. A running ``np.maximum`` over the kh*kw strided window views; the
    result keeps x's memory order. Pair it with ``max_pool2d_backward_from_values`` for training.
    """
    _check_4d(x.shape, "max_pool2d")
    (kh, kw), (dh, dw) = kernel_size, dilation
    (ho, wo), padded_hw = _geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    axis, blocks = _plane_blocks(x)
    y = _empty_planes(x, (ho, wo), axis)
    lead = (slice(None),) * axis

    def block(bounds):
        sl = lead + (slice(*bounds),)
        xp = _pad_plane(x[sl], padding, padded_hw, -np.inf)
        views = [_window_view(xp, i * dh, j * dw, (ho, wo), stride) for i in range(kh) for j in range(kw)]
        out = y[sl]
        if len(views) == 1:
            np.copyto(out, views[0])
            return
        np.maximum(views[0], views[1], out=out)
        for v in views[2:]:
            np.maximum(out, v, out=out)  # NaN-propagating, like PyTorch's `val > max || isnan(val)`

    parallel.run(block, blocks, blas=False)
    return y


def _plane_blocks(x: np.ndarray) -> tuple[int, list[tuple[int, int]]]:
    """The outer memory axis of x (N, C, H, W) (1 for a (C, N, H, W) buffer seen as NCHW, else 0) and ranges
    of it of about ``parallel.CACHE_BLOCK_BYTES`` of input each, so that the kernel's several passes over a
    block (one per window offset, more in backward) find it in a core's L2 cache. Per-plane work: blocks never
    change a bit."""
    axis = 1 if x.shape[0] > 1 and x.shape[1] > 1 and x.strides[1] > x.strides[0] else 0
    return axis, parallel.cache_blocks(x.shape[axis], x.size // max(1, x.shape[axis]) * x.itemsize)


def _empty_planes(x: np.ndarray, hw: IntPair, axis: int, dtype=None) -> np.ndarray:
    """An uninitialised (N, C, *hw) array laid out like x's planes ((C, N, ...) memory when axis == 1)."""
    n, c = x.shape[:2]
    dtype = x.dtype if dtype is None else dtype
    if axis == 1:
        return np.empty((c, n, *hw), dtype=dtype).transpose(1, 0, 2, 3)
    return np.empty((n, c, *hw), dtype=dtype)


_MASK_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def max_pool2d_backward_from_values(
    dy: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    kernel_size: IntPair,
    stride: IntPair,
    padding: IntPair,
    dilation: IntPair = (1, 1),
    ceil_mode: bool = False,
) -> np.ndarray:
    """Gradient of max pooling recomputed from its input x and output y, without stored indices.

    dy, y: (N, C, Ho, Wo); x: (N, C, H, W). Returns dx like x (fresh, in x's memory order), equal to
    ``max_pool2d_backward(dy, max_pool2d_forward(x, ...)[1], x.shape)``: each window's gradient goes to the
    first element equal to its maximum in raster order. Windows whose maximum is NaN (PyTorch picks the
    last NaN) or, with padding, -inf (PyTorch skips padding positions) fall back to the index path.
    """
    _check_4d(x.shape, "max_pool2d_backward")
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    if np.isnan(y).any() or ((ph or pw) and (y == -np.inf).any()):
        _, idx = max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode)
        return max_pool2d_backward(dy, idx, x.shape)
    (ho, wo), padded_hw = _geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    h, w = x.shape[-2:]
    offsets = [(i * dh, j * dw) for i in range(kh) for j in range(kw)]
    # Windows tile the input without overlap when each stride covers its dilated kernel: every input
    # element then gets at most one gradient, and each offset's share can be written instead of added.
    tiled = sh >= dh * (kh - 1) + 1 and sw >= dw * (kw - 1) + 1 and (dh, dw) == (1, 1)
    exact = tiled and (ph, pw) == (0, 0) and (sh, sw) == (kh, kw) and (h, w) == (ho * kh, wo * kw)
    uint = _MASK_UINT[dy.dtype.itemsize]
    axis, blocks = _plane_blocks(x)
    dx = _empty_planes(x, (h, w), axis, dy.dtype)
    lead = (slice(None),) * axis

    def block(bounds):
        sl = lead + (slice(*bounds),)
        xp = _pad_plane(x[sl], padding, padded_hw, -np.inf)
        yb, dy_bits = y[sl], dy[sl].view(uint)
        # every element is written below when windows tile x exactly; else a zeroed padded buffer
        dxp = dx[sl] if exact else np.zeros(xp.shape, dtype=dy.dtype)
        unseen = None
        for o, (oi, oj) in enumerate(offsets):
            # First maximum in raster order: a window hits at the first offset whose value equals its max.
            if o == len(offsets) - 1 and unseen is not None:
                hit = unseen  # no NaN: some offset holds the max, and it is the only one left
            else:
                hit = np.equal(_window_view(xp, oi, oj, (ho, wo), (sh, sw)), yb)
                if unseen is None:
                    unseen = np.logical_not(hit)
                else:
                    hit &= unseen
                    unseen ^= hit
            # dy where hit, else +0.0, as bit masks: exact for every value and no per-element branch.
            mask = hit.view(np.uint8).astype(uint)
            np.negative(mask, out=mask)
            target = _window_view(dxp, oi, oj, (ho, wo), (sh, sw))
            if tiled:
                np.bitwise_and(mask, dy_bits, out=target.view(uint))
            else:
                target += np.bitwise_and(mask, dy_bits, out=mask).view(dy.dtype)
        if not exact:
            dx[sl] = dxp[..., ph : ph + h, pw : pw + w]

    parallel.run(block, blocks, blas=False)
    return dx


def max_pool2d_backward(dy: np.ndarray, indices: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
    """Gradient of max pooling: each ``dy`` element is added to the input position its index names.

    dy: (N, C, Ho, Wo); indices: (N, C, Ho, Wo) int64 from ``max_pool2d_forward``; x_shape: (N, C, H, W).
    Returns dx (N, C, H, W) in dy's dtype; overlapping windows accumulate.
    """
    _check_4d(x_shape, "max_pool2d_backward")
    n, c, h, w = x_shape
    plane = h * w
    idx = indices.reshape(n * c, -1)
    flat = idx + (np.arange(n * c, dtype=np.int64) * plane)[:, None]
    dx = np.zeros(n * c * plane, dtype=dy.dtype)
    g = dy.reshape(n * c, -1)
    inside = (idx >= 0) & (idx < plane)
    if not inside.all():
        # A dilated window lying wholly in the padding has no input element (its max is -inf): no gradient.
        flat, g = flat[inside], g[inside]
    # ufunc.at accumulates repeated indices (unlike fancy assignment) and stays in dy's dtype.
    np.add.at(dx, flat.ravel(), g.reshape(-1))
    return dx.reshape(x_shape)


def _avg_divisor(
    x_shape: tuple[int, ...],
    out_hw: IntPair,
    kernel_size: IntPair,
    stride: IntPair,
    padding: IntPair,
    count_include_pad: bool,
    divisor_override: int | None,
    dtype: np.dtype,
) -> np.ndarray:
    """Divisor of each output window, (Ho, Wo) in ``dtype`` (or a 0-d array when it is uniform)."""
    if divisor_override is not None:
        if divisor_override == 0:
            raise ValueError("avg_pool2d: divisor_override must not be zero")
        return np.asarray(divisor_override, dtype=dtype)
    counts = []
    for n, o, k, s, p in zip(x_shape[-2:], out_hw, kernel_size, stride, padding, strict=True):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)  # PyTorch clips windows at the end of the right padding
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, n)
        counts.append(end - start)
    div = counts[0][:, None] * counts[1][None, :]
    if (div == div.flat[0]).all():
        return np.asarray(div.flat[0], dtype=dtype)
    return div.astype(dtype)


def avg_pool2d_forward(
    x: np.ndarray,
    kernel_size: IntPair,
    stride: IntPair,
    padding: IntPair,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> np.ndarray:
    """2-D average pooling. x: (N, C, H, W) float -> y (N, C, Ho, Wo), same dtype.

    Same divisor rules as ``torch.nn.functional.avg_pool2d``: the window size clipped to the padded input
    (``count_include_pad=True``), the number of real input elements (``False``), or ``divisor_override``.
    """
    _check_4d(x.shape, "avg_pool2d")
    (kh, kw), (sh, sw) = kernel_size, stride
    (ho, wo), (hp, wp) = _geometry(x.shape, kernel_size, stride, padding, (1, 1), ceil_mode)
    xp = _pad_plane(x, padding, (hp, wp), 0.0)
    # Separable window sum: kh adds over rows, then kw adds over columns (kh + kw passes, not kh * kw).
    # Without padding the views are the reshape x.reshape(N, C, Ho, kh, Wo, kw) itself: no copy.
    rows = xp[..., 0 : sh * (ho - 1) + 1 : sh, :].copy()
    for i in range(1, kh):
        rows += xp[..., i : i + sh * (ho - 1) + 1 : sh, :]
    y = _window_view(rows, 0, 0, (ho, wo), (1, sw)).copy()
    for j in range(1, kw):
        y += _window_view(rows, 0, j, (ho, wo), (1, sw))
    y /= _avg_divisor(
        x.shape, (ho, wo), kernel_size, stride, padding, count_include_pad, divisor_override, x.dtype
    )
    return y


def avg_pool2d_backward(
    dy: np.ndarray,
    x_shape: tuple[int, ...],
    kernel_size: IntPair,
    stride: IntPair,
    padding: IntPair,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> np.ndarray:
    """Gradient of ``avg_pool2d_forward``. dy: (N, C, Ho, Wo) -> dx with shape x_shape, dy's dtype."""
    _check_4d(x_shape, "avg_pool2d_backward")
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    h, w = x_shape[-2:]
    (ho, wo), (hp, wp) = _geometry(x_shape, kernel_size, stride, padding, (1, 1), ceil_mode)
    g = dy / _avg_divisor(
        x_shape, (ho, wo), kernel_size, stride, padding, count_include_pad, divisor_override, dy.dtype
    )
    nc = tuple(x_shape[:2])
    if (kh, kw) == (sh, sw) and (ph, pw) == (0, 0) and (h, w) == (ho * kh, wo * kw):
        # Non-overlapping tiling: every input pixel receives exactly one g value.
        tiled = np.broadcast_to(g[:, :, :, None, :, None], nc + (ho, kh, wo, kw))
        return tiled.reshape(x_shape)
    # Transpose of the separable sum: spread over columns, then over rows.
    rows = np.zeros(nc + (ho, wp), dtype=dy.dtype)
    for j in range(kw):
        _window_view(rows, 0, j, (ho, wo), (1, sw))[...] += g
    dxp = np.zeros(nc + (hp, wp), dtype=dy.dtype)
    for i in range(kh):
        dxp[..., i : i + sh * (ho - 1) + 1 : sh, :] += rows
    if (hp, wp) == (h, w):
        return dxp
    return np.ascontiguousarray(dxp[..., ph : ph + h, pw : pw + w])


def _adaptive_bins(n: int, out: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """0/1 membership matrix (out, n) of PyTorch's adaptive bins and the bin lengths (out,)."""
    i = np.arange(out)
    start = (i * n) // out
    end = -((-(i + 1) * n) // out)  # ceil((i + 1) * n / out)
    pos = np.arange(n)
    member = (pos[None, :] >= start[:, None]) & (pos[None, :] < end[:, None])
    return member.astype(dtype), (end - start)


def _adaptive_out(x_shape: tuple[int, ...], output_size: tuple[int | None, int | None]) -> IntPair:
    h, w = x_shape[-2:]
    oh = h if output_size[0] is None else output_size[0]
    ow = w if output_size[1] is None else output_size[1]
    if oh < 1 or ow < 1:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be positive, got {tuple(output_size)}")
    return oh, ow


def adaptive_avg_pool2d_forward(x: np.ndarray, output_size: tuple[int | None, int | None]) -> np.ndarray:
    """Adaptive average pooling. x: (N, C, H, W) -> (N, C, oh, ow), same dtype.

    Bin i along H covers rows ``floor(i*H/oh)`` to ``ceil((i+1)*H/oh)`` (exclusive), as in PyTorch; a
    ``None`` entry of output_size keeps that input size.
    """
    _check_4d(x.shape, "adaptive_avg_pool2d")
    n, c, h, w = x.shape
    oh, ow = _adaptive_out(x.shape, output_size)
    if (oh, ow) == (1, 1):
        return (x.reshape(n, c, h * w).sum(axis=2) / x.dtype.type(h * w)).reshape(n, c, 1, 1)
    bins_h, len_h = _adaptive_bins(h, oh, x.dtype)
    bins_w, len_w = _adaptive_bins(w, ow, x.dtype)
    # Bin sums as two GEMMs with 0/1 matrices: (N*C*H, W) @ (W, ow), then (oh, H) @ (N*C, H, ow).
    cols = (x.reshape(n * c * h, w) @ bins_w.T).reshape(n * c, h, ow)
    y = np.matmul(bins_h, cols).reshape(n, c, oh, ow)
    y /= (len_h[:, None] * len_w[None, :]).astype(x.dtype)
    return y


def adaptive_avg_pool2d_backward(dy: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
    """Gradient of ``adaptive_avg_pool2d_forward``. dy: (N, C, oh, ow) -> dx with shape x_shape."""
    _check_4d(x_shape, "adaptive_avg_pool2d_backward")
    n, c, h, w = x_shape
    oh, ow = dy.shape[-2:]
    if (oh, ow) == (1, 1):
        g = dy.reshape(n, c, 1, 1) / dy.dtype.type(h * w)
        return np.broadcast_to(g, x_shape).copy()
    bins_h, len_h = _adaptive_bins(h, oh, dy.dtype)
    bins_w, len_w = _adaptive_bins(w, ow, dy.dtype)
    g = dy / (len_h[:, None] * len_w[None, :]).astype(dy.dtype)
    cols = (g.reshape(n * c * oh, ow) @ bins_w).reshape(n * c, oh, w)
    return np.matmul(bins_h.T, cols).reshape(x_shape)

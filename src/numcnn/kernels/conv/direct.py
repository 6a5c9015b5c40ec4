"""Direct convolution, compiled, for stride 1 (any padding, dilation and groups): no im2col, no GEMM.

Lay each image's zero-padded input planes out flat, row after row at a fixed ``pitch``, and index the outputs on
the same grid: output (oh, ow) sits at q = oh*pitch + ow. Tap (c, r, s) of the kernel then reads the input a
*constant* distance past q, ``off[c, r, s] = c*plane + r*dh*pitch + s*dw``, so the textbook's sum becomes, for
every output channel k and every grid position q at once::

    y[k, q] = b[k] + sum over taps t = (c, r, s) of  w[k, t] * xpad[q + off[t]]

a plain unit-stride multiply-add over q per tap, which LLVM's loop vectoriser compiles to packed FMAs. The
grid also holds pitch - Wo columns right of each output row (computed, then dropped). A row needs no margins of
its own, the zeros right of one row are the zeros left of the next, so the pitch is W + max(left, right), not
W + left + right: 1.07x the useful work for 5x5 'same' on 28x28, 1.14x on 14x14.

- forward: the sum above, per image, in tiles of four output channels x ``TILE`` positions. A tile's running
  sums live in a stack array (``jit.stack_array``), which aliases nothing, so LLVM keeps them in eight vector
  registers for the whole loop over taps: each tap is two loads of x, four broadcasts of w and eight FMAs, no
  loads or stores of sums (95-105 GFLOP/s on one AVX-512 core for 16->32 5x5, 70 for 1->16 5x5, whose 25 taps
  leave the write-out a larger share; about 45 with the sums in memory, as before). Every
  output is summed in the textbook's order, bias first and then tap after tap, ((b + w0*x0) + w1*x1) + ..., one
  rounding per FMA, whatever the tiling. The tile then goes to y a row's run at a time, one masked vector copy
  (``jit.copy_run``) per run, dropping the grid's extra columns. Layers of ``EIGHT_TAPS`` or more taps with
  groups of 8k channels take eight output channels per tile (``_correlate8``: sixteen registers of sums).
- grad-input: the same kernel on dy, placed at (dh*(R-1) - top, dw*(S-1) - left), with the weights turned around
  (w[k, c, r, s] read as a filter from channel k to channel c at tap (R-1-r, S-1-s)).
- grad-weight: ``direct_weight.py``, on the same grid.

Output channels go four at a time; a group with K/G not a multiple of four gets zero filters whose outputs are
dropped. Loops over positions run in whole vectors (``VECTOR``), tiles in whole tiles (the last one moved back
over its neighbour, or, on a map smaller than a tile, past the outputs): the planes end in zeros that they may read.

Threads: a padding pass and the forward and grad-input split the batch, grad-weight splits the output channels
into blocks of four; every output element is computed by one item from the same operands in the same order, so
1, 2 or 16 threads give the same bits. Scratch (padded planes, grids) is NumPy memory taken from the workspace
and passed in; the kernels allocate nothing on the heap.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from .. import parallel, workspace
from ..jit import copy_run, kernel, stack_array
from .geometry import ConvGeometry

__all__ = ["TILE", "backward_input", "correlate_all", "correlator", "forward", "grid_overhead", "supported"]

VECTOR = 16  # loops over grid positions run in whole multiples of this (a vector register of float32)
TILE = 32  # grid positions of the forward's output tile (x four output channels: eight vector registers of sums;
# one thread, interleaved: 16 is 1.3-1.7x slower; 48 and 64 win 5-10% on 1->16 5x5 and 3->32 3x3 but lose as much
# on 16->32 5x5 and 32->32 3x3 (a 14x14 map's 224 positions are seven tiles of 32, with 48 or 64 the last overlaps)
SUMS = 4 * TILE  # a tile's numbers (the size of its stack array)
SUMS8 = 8 * TILE  # the same for eight output channels (``_correlate8``)
SLACK = TILE  # zeros past each image's planes, which a tile past the last output may read


@kernel
def _pad_planes(x, top, left, out, hp, pitch, n0, n1):
    """out[n] = the planes of x[n] (any strides) laid out for the grid, for n0 <= n < n1: x[n, c, ih, iw] at
    c*plane + (top + ih)*pitch + left + iw, plane = (Hp + 1)*pitch, zeros everywhere else (the Hp rows' margins,
    one more row below them, and the slack past the last plane that loops in whole vectors read)."""
    _, c_all, h, w = x.shape
    plane = (hp + 1) * pitch
    j0 = min(pitch, max(0, left))  # columns j0..j1 of a row hold x, the rest are zeros
    j1 = max(j0, min(pitch, left + w))
    for n in range(n0, n1):
        o = out[n]
        for i in range(o.shape[0]):
            o[i] = 0
        for c in range(c_all):
            for ih in range(max(0, -top), min(h, hp - top)):
                src, dst = x[n, c, ih, j0 - left :], o[c * plane + (top + ih) * pitch + j0 :]
                for j in range(j1 - j0):
                    dst[j] = src[j]


@kernel(inline=True)
def _write_tile(a, y, q0, wo, pitch):
    """y[j, oh*Wo + ow] = a[j*TILE + q - q0] for the outputs (oh, ow) at grid positions q0 <= q = oh*pitch + ow <
    q0 + TILE, j < len(y): a tile of sums to the output, a row's run at a time, one masked vector copy per run
    (``jit.copy_run``), dropping the grid's extra columns. y (channels, Ho*Wo)."""
    ho = y.shape[1] // wo
    oh = q0 // pitch  # the row of qv (kept up to date without dividing)
    for qv in range(q0, q0 + TILE, VECTOR):  # each vector's runs in rows
        while (oh + 1) * pitch <= qv:
            oh += 1
        r = oh
        while r < ho and r * pitch < qv + VECTOR:
            lo, hi = max(0, r * pitch - qv), min(VECTOR, r * pitch + wo - qv)
            for j in range(y.shape[0] if hi > lo else 0):
                copy_run(y[j], qv - r * (pitch - wo) + lo, a, j * TILE + qv - q0 + lo, hi - lo)
            r += 1


@kernel(fastmath={"contract"})
def _correlate(xpad, plane, wt, offs, bias, y, wo, pitch, n0, n1):
    """y[n, k, oh*Wo + ow] = bias[k] + sum_t wt[k, t] * xpad[n, g*Cg*plane + oh*pitch + ow + offs[t]], n0 <= n < n1.

    xpad (N, C*plane + SLACK): each image's planes on the grid (``_pad_planes``); g: the group of channel k.
    wt (G*Kg4, T), bias (G*Kg4): each group's filters, taps in the order of offs, Kg rounded up to a multiple of
    four with zero filters. y (N, K, Ho*Wo).
    """
    _, k_all, hw = y.shape
    ho, taps = hw // wo, offs.shape[0]
    cg = offs[taps - 1] // plane + 1  # the planes of one group (its last tap reads its last plane)
    groups = (xpad.shape[1] - SLACK) // (cg * plane)
    kg, kg4 = k_all // groups, wt.shape[0] // groups
    length = -(-((ho - 1) * pitch + wo) // VECTOR) * VECTOR  # grid positions of the outputs, whole vectors
    a = stack_array(SUMS, y.dtype)  # the tile's running sums: in registers for the whole loop over taps
    for n, g in np.ndindex(n1 - n0, groups):
        xg = xpad[n0 + n, g * cg * plane :]  # the group's input planes
        for k in range(g * kg4, (g + 1) * kg4, 4):  # four output channels share each load of x
            w0, w1, w2, w3, real = wt[k], wt[k + 1], wt[k + 2], wt[k + 3], min(4, kg - (k - g * kg4))
            c = k - g * (kg4 - kg)  # y's channel of filter k
            for q0 in range(0, length, TILE):
                q0 = min(q0, max(0, length - TILE))  # the last tile moved back over its neighbour (same bits)
                xs, u0, u1, u2, u3 = xg[q0 + offs[0] :], w0[0], w1[0], w2[0], w3[0]
                # bias first, then the taps in order, one FMA per tap and output; the first tap's loop also sets the
                # sums (a loop of TILE plain stores would be unrolled into scalar stores before it is vectorised)
                for i in range(TILE):
                    v = xs[i]
                    a[i], a[TILE + i] = bias[k] + u0 * v, bias[k + 1] + u1 * v
                    a[2 * TILE + i], a[3 * TILE + i] = bias[k + 2] + u2 * v, bias[k + 3] + u3 * v
                for t in range(1, taps):
                    xs, u0, u1, u2, u3 = xg[q0 + offs[t] :], w0[t], w1[t], w2[t], w3[t]
                    for i in range(TILE):
                        v = xs[i]
                        a[i], a[TILE + i] = a[i] + u0 * v, a[TILE + i] + u1 * v
                        a[2 * TILE + i], a[3 * TILE + i] = a[2 * TILE + i] + u2 * v, a[3 * TILE + i] + u3 * v
                # out, as _write_tile does (written here: the call measured 3-5% slower on 1->16 and 16->16 layers)
                oh = q0 // pitch  # the row of qv (kept up to date without dividing)
                for qv in range(q0, q0 + TILE, VECTOR):  # each vector's runs in rows, one masked copy each
                    while (oh + 1) * pitch <= qv:
                        oh += 1
                    r = oh
                    while r < ho and r * pitch < qv + VECTOR:
                        lo, hi = max(0, r * pitch - qv), min(VECTOR, r * pitch + wo - qv)
                        for j in range(real if hi > lo else 0):
                            copy_run(y[n0 + n, c + j], qv - r * (pitch - wo) + lo, a, j * TILE + qv - q0 + lo, hi - lo)
                        r += 1


@kernel(fastmath={"contract"})
def _correlate8(xpad, plane, wp, offs, bias, y, wo, pitch, n0, n1):
    """``_correlate`` eight output channels at a time, for groups of a multiple of eight channels: sixteen vector
    registers of sums per tile, each load of x feeding eight FMAs instead of four (one thread: 16->32 5x5 forward
    and grad-input 17-20% faster, 64->64 3x3 on 7x7 3-20%; layers of fewer than ``EIGHT_TAPS`` taps, whose tiles
    are written out more often per tap, measured faster by four). The same sums in the same order: the same bits.
    wp (G*Kg/8, T, 8): each block's filters, tap by tap."""
    _, k_all, hw = y.shape
    ho, taps = hw // wo, offs.shape[0]
    cg = offs[taps - 1] // plane + 1
    groups = (xpad.shape[1] - SLACK) // (cg * plane)
    kg = k_all // groups
    length = -(-((ho - 1) * pitch + wo) // VECTOR) * VECTOR
    a = stack_array(SUMS8, y.dtype)
    for n, g in np.ndindex(n1 - n0, groups):
        xg = xpad[n0 + n, g * cg * plane :]
        for k in range(g * kg, (g + 1) * kg, 8):
            wk, b = wp[k // 8], bias[k:]
            for q0 in range(0, length, TILE):
                q0 = min(q0, max(0, length - TILE))
                xs, w = xg[q0 + offs[0] :], wk[0]
                for i in range(TILE):
                    v = xs[i]
                    a[i], a[TILE + i] = b[0] + w[0] * v, b[1] + w[1] * v
                    a[2 * TILE + i], a[3 * TILE + i] = b[2] + w[2] * v, b[3] + w[3] * v
                    a[4 * TILE + i], a[5 * TILE + i] = b[4] + w[4] * v, b[5] + w[5] * v
                    a[6 * TILE + i], a[7 * TILE + i] = b[6] + w[6] * v, b[7] + w[7] * v
                for t in range(1, taps):
                    xs, w = xg[q0 + offs[t] :], wk[t]
                    u0, u1, u2, u3, u4, u5, u6, u7 = w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]
                    for i in range(TILE):
                        v = xs[i]
                        a[i], a[TILE + i] = a[i] + u0 * v, a[TILE + i] + u1 * v
                        a[2 * TILE + i], a[3 * TILE + i] = a[2 * TILE + i] + u2 * v, a[3 * TILE + i] + u3 * v
                        a[4 * TILE + i], a[5 * TILE + i] = a[4 * TILE + i] + u4 * v, a[5 * TILE + i] + u5 * v
                        a[6 * TILE + i], a[7 * TILE + i] = a[6 * TILE + i] + u6 * v, a[7 * TILE + i] + u7 * v
                _write_tile(a, y[n0 + n, k : k + 8], q0, wo, pitch)


def supported(geo: ConvGeometry) -> bool:
    """Stride 1 (any padding, dilation, groups): the taps must be constant offsets on the output grid."""
    return geo.unit_stride


def grid_overhead(geo: ConvGeometry) -> float:
    """Grid positions the forward computes per output, the last row rounded up to whole vectors: 1.04 for 3x3
    'same' on 28x28, 1.08 for 5x5 'same' on 28x28, 1.14 for 3x3 or 5x5 'same' on 14x14, 1.31 for 3x3 'same' on
    7x7; 1.44 for 5x5 without padding on 14x14, 16 for the same on 5x5 (one output)."""
    return _forward_grid(geo).length(geo.ho, geo.wo) / (geo.ho * geo.wo)


def _check(geo: ConvGeometry) -> None:
    if not supported(geo):
        raise ValueError(f"convolution algorithm 'direct' needs stride 1, got stride {geo.stride}; use 'im2col' "
                         "or 'auto'")


class _Grid(NamedTuple):
    """Where the padded planes and the outputs lie: row ``pitch`` (Wp, or less: see :func:`_grid`), ``hp`` rows
    of input per plane, ``plane`` = (Hp + 1)*pitch numbers per channel (one more zero row under the last)."""

    hp: int
    pitch: int
    plane: int

    def offsets(self, channels: int, r: int, s: int, dh: int, dw: int) -> np.ndarray:
        """off[(c, r, s)] = c*plane + r*dh*pitch + s*dw: where tap (c, r, s) reads, past an output's grid position.
        Computed once per layout (a small table, reused by every call: the kernels only read it)."""
        return _offsets(self, channels, r, s, dh, dw)

    def length(self, ho: int, wo: int) -> int:
        """Grid positions from the first output to the last, rounded up to whole vectors."""
        return -(-((ho - 1) * self.pitch + wo) // VECTOR) * VECTOR


@functools.lru_cache(maxsize=256)
def _offsets(grid: _Grid, channels: int, r: int, s: int, dh: int, dw: int) -> np.ndarray:
    c_, r_, s_ = np.meshgrid(np.arange(channels), np.arange(r), np.arange(s), indexing="ij")
    return (c_ * grid.plane + r_ * (dh * grid.pitch) + s_ * dw).reshape(-1).astype(np.int64)


def _grid(hp: int, w_in: int, left: int, right: int, w_out: int) -> _Grid:
    """The layout of an input of width ``w_in`` padded by (left, right) for ``w_out`` output columns.

    A row needs no margins of its own: the zeros right of one row's data also serve as the zeros left of the next
    row's, so a pitch of w_in + max(left, right) suffices (16 instead of 18 for 5x5 'same' on 14x14: 1.14x the
    useful positions instead of 1.29x). With a negative margin (a crop) rows keep the full width Wp."""
    pitch = left + w_in + right
    if left >= 0 and right >= 0:
        pitch = max(w_in + max(left, right), w_out)
    return _Grid(hp, pitch, (hp + 1) * pitch)


@functools.lru_cache(maxsize=64)
def _image_ranges(n: int) -> tuple[tuple[int, int], ...]:
    """The batch in up to 4 ranges (a rule of the size only; each image's outputs are its own anyway): few calls,
    as each costs some microseconds of argument checks. Cached (a tuple: read only)."""
    return tuple(parallel.split(n, min(n, 4)))


def _aligned(shape: tuple[int, ...], dtype) -> tuple[np.ndarray, np.ndarray]:
    """(buffer, view): pooled scratch of ``shape`` whose first element sits on a 64-byte boundary (a cache line,
    so that the grid rows' vector loads never straddle two)."""
    itemsize = np.dtype(dtype).itemsize
    size = math.prod(shape)
    buf = workspace.take((size + 64 // itemsize,), dtype)
    skip = (-buf.__array_interface__["data"][0] % 64) // itemsize  # (``.ctypes.data`` costs 5 us a call)
    return buf, buf[skip : skip + size].reshape(shape)


def _padded(a: np.ndarray, top: int, left: int, grid: _Grid, even: bool = False):
    """(out, lay): pooled scratch (N, C*plane + SLACK) for every image's planes of a (N, C, H, W), any strides,
    placed at (top, left) on ``grid``, flat (the caller gives it back), and ``lay(b)``, which lays out the images of
    the range b = (n0, n1). The caller runs ``lay`` in the same parallel region as the kernel that reads the planes,
    each range just before its own computation: one region fewer (each costs some 0.1 ms of thread wake-up on a
    small VM) and the planes still in the core's cache when read. ``even``: one more image of zeros when N is odd."""
    n = a.shape[0]
    out = workspace.take((n + (n % 2 if even else 0), a.shape[1] * grid.plane + SLACK), a.dtype)
    out[n:] = 0
    return out, lambda b: _pad_planes(a, top, left, out, grid.hp, grid.pitch, b[0], b[1])


def _in_fours(a: np.ndarray) -> np.ndarray:
    """(G, k, T) per-group filters -> (G*k4, T) with k4 = k rounded up to a multiple of four, zeros in the added
    rows: the kernels work on four output channels at a time. With k a multiple of four and ``a`` contiguous and
    writable: a view of ``a`` itself (no copy per call, and nothing cached: the kernel reads the current weights)."""
    g, k, t = a.shape
    if k % 4 == 0 and a.flags.c_contiguous and a.flags.writeable:
        return a.reshape(-1, t)
    out = np.zeros((g, -(-k // 4) * 4, t), dtype=a.dtype)
    out[:, :k] = a
    return out.reshape(-1, t)


EIGHT_TAPS = 256  # taps per output (C/G*R*S) from which ``_correlate8`` runs, for groups of 8k output channels


def correlator(xpad, plane: int, pitch: int, wt, offs, bias, y3: np.ndarray, wo: int, groups: int):
    """``run(b)``: y3 (N, K, Ho*Wo) = ``_correlate`` of xpad (``_correlate8`` where it wins) for the images of the range
    b = (n0, n1), to be called from a parallel region."""
    if offs.size >= EIGHT_TAPS and y3.shape[1] // groups % 8 == 0:
        wp = np.ascontiguousarray(wt.reshape(-1, 8, offs.size).transpose(0, 2, 1))  # (blocks, T, 8), 50-600 kB
        return lambda b: _correlate8(xpad, plane, wp, offs, bias, y3, wo, pitch, b[0], b[1])
    return lambda b: _correlate(xpad, plane, wt, offs, bias, y3, wo, pitch, b[0], b[1])


def correlate_all(xpad, plane: int, pitch: int, wt, offs, bias, y: np.ndarray, groups: int, lay) -> np.ndarray:
    """y (N, K, Ho, Wo) = ``_correlate`` of xpad (``_correlate8`` where it wins), over the batch on the kernel
    threads; ``lay(b)`` first lays out xpad's images of each range b (see ``_padded``)."""
    run = correlator(xpad, plane, pitch, wt, offs, bias, y.reshape(*y.shape[:2], -1), y.shape[3], groups)
    parallel.run(lambda b: (lay(b), run(b)), _image_ranges(y.shape[0]), blas=False)
    return y


def _run_correlate(a, top, left, grid: _Grid, wt, offs, bias, y, groups):
    """y = ``_correlate`` of a placed at (top, left) on ``grid``, over the batch on the kernel threads."""
    xpad, lay = _padded(a, top, left, grid)
    correlate_all(xpad, grid.plane, grid.pitch, wt, offs, bias, y, groups, lay)
    workspace.give(xpad)
    return y


def _forward_grid(geo: ConvGeometry) -> _Grid:
    (_, _), (left, right) = geo.padding
    return _grid(geo.hp, geo.width, left, right, geo.wo)


def forward(geo: ConvGeometry, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """y (N, K, Ho, Wo) in x's dtype."""
    _check(geo)
    wt, bias = _filters(geo, w, b, x.dtype)
    grid = _forward_grid(geo)
    offs = grid.offsets(geo.cg, geo.r, geo.s, geo.dh, geo.dw)
    y = np.empty(geo.y_shape, dtype=x.dtype)
    return _run_correlate(x, geo.top, geo.left, grid, wt, offs, bias, y, geo.groups)


def backward_input(geo: ConvGeometry, dy: np.ndarray, w: np.ndarray) -> np.ndarray:
    """dx (N, C, H, W) in dy's dtype: dy (which may be cropped) padded by (dh*(R-1) - top, dw*(S-1) - left) and
    correlated with the turned-around weights wt[c, (k, r, s)] = w[k, c, R-1-r, S-1-s] (within each group)."""
    _check(geo)
    dt = dy.dtype
    g, kg, cg, r, s = geo.groups, geo.kg, geo.cg, geo.r, geo.s
    w5 = w.astype(dt, copy=False).reshape(g, kg, cg, r, s)[:, :, :, ::-1, ::-1]
    wt = _in_fours(w5.transpose(0, 2, 1, 3, 4).reshape(g, cg, kg * r * s))
    top, left = geo.dh * (r - 1) - geo.top, geo.dw * (s - 1) - geo.left
    wp = geo.width + geo.dw * (s - 1)  # dx's width plus the taps' reach
    grid = _grid(geo.height + geo.dh * (r - 1), dy.shape[3], left, wp - left - dy.shape[3], geo.width)
    offs = grid.offsets(kg, r, s, geo.dh, geo.dw)
    dx = np.empty(geo.x_shape, dtype=dt)
    return _run_correlate(dy, top, left, grid, wt, offs, np.zeros(wt.shape[0], dtype=dt), dx, geo.groups)


def _filters(geo: ConvGeometry, w: np.ndarray, b: np.ndarray | None, dt) -> tuple[np.ndarray, np.ndarray]:
    """(wt, bias) as ``_correlate`` reads them: each group's filters (and biases, zero without b) in fours."""
    wt = _in_fours(w.astype(dt, copy=False).reshape(geo.groups, geo.kg, -1))
    bias = np.zeros(geo.k, dt) if b is None else b.astype(dt, copy=False)
    return wt, _in_fours(bias.reshape(geo.groups, geo.kg, 1)).reshape(-1)

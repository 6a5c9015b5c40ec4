"""Direct convolution, compiled, for stride > 1: the stride-1 kernels of ``direct.py`` run on the input's phases.

``direct.py`` works because at stride 1 every tap of the kernel reads the padded input a *constant* distance past
the output's grid position. At stride (sh, sw) it does not: output (oh, ow) reads row sh*oh + r*dh, and the step
from one output to the next is sh rows, not one. Split the padded input into its sh*sw *phases*, the sub-images
of every sh-th row and every sw-th column::

    phase (a, b) = xpad[a::sh, b::sw]          so that
    xpad[sh*oh + r*dh, sw*ow + s*dw] = phase((r*dh) % sh, (s*dw) % sw)[oh + (r*dh)//sh, ow + (s*dw)//sw]

Tap (r, s) reads one phase at a fixed shift, with output (oh, ow) at (oh, ow) of that phase: the phase is a
stride-1 input. Lay every phase plane out flat on one grid of pitch P, one after the other, output (oh, ow) at
q = oh*P + ow, and each tap is again a constant offset::

    off[c, r, s] = c*plane + phase*pp + ((r*dh)//sh)*P + (s*dw)//sw

(pp = (rows + 1)*P: a phase plane and one spare zero row; plane = phases*pp: one channel). That is the contract of
``direct._correlate`` and ``direct_weight._weight_grad`` with "plane" read as the distance between channels, so both
run unchanged: y[k, q] = b[k] + sum_t w[k, t] * xphased[q + off[t]], dw[k, t] = sum_q dy[k, q] * xphased[q + off[t]].

A worked example: 3x3, stride 2, padding 1 on a 6x6 input. The padded input is 8x8, the output 3x3. Rows: r = 0
reads phase 0 at shift 0, r = 1 phase 1 at shift 0, r = 2 phase 0 at shift 1 (2 = 2*1 + 0); columns alike. A phase
needs Ho + 1 = 4 rows and Wo + 1 = 4 columns (the largest shift, 1, past the last output), so P = 4, pp = 5*4 =
20, and the four phases (0,0), (0,1), (1,0), (1,1) of channel 0 start at 0, 20, 40, 60::

    tap (r, s):  (0,0) (0,1) (0,2) (1,0) (1,1) (1,2) (2,0) (2,1) (2,2)
    offset:        0    20     1    40    60    41     4    24     5

Output (1, 2), at q = 1*4 + 2 = 6, reads tap (2, 1) at 6 + 24 = 30: phase (0, 1), row 2, column 2, which is
xpad[0 + 2*2, 1 + 2*2] = xpad[4, 5] = xpad[2*1 + 2, 2*2 + 1], as the textbook says.

Only the phases some tap reads are laid out: a 1x1 kernel at stride 2 (resnet's downsample) reads phase (0, 0)
alone, so its layout is x[:, :, ::2, ::2] on a grid of pitch Wo, a quarter of the input copied, and its forward
is a stride-1 1x1 convolution of that. Phase rows and columns hold only what the outputs read (Ho plus the
largest row shift, Wo plus the largest column shift: never more than a phase's ceil(Wp/sw) columns, never fewer
than Wo), so the grid computes P/Wo = 1 + shift/Wo positions per output before the last row is rounded up to
whole vectors: 15/14 for 3x3 stride 2 on 28x28, 1 for 1x1 (see :func:`grid_overhead`).

The stride-1 kernels find the channels per group and the groups from the layout (``cg = offs[-1] // plane + 1``,
``groups = (row length - SLACK) // (cg*plane)``): the last tap of a channel must land inside that channel's
phases (it does: shift*P + shift < pp), and each image's row must be C*plane numbers and then SLACK zeros, which
whole vectors and tiles past the last output may read.

Threads and bits as in ``direct.py``: the padding pass and the forward split the batch, grad-weight the output
channels in fours, and every output is summed by one item in a fixed order: 1, 2 or 3 threads give the same bits.
The phase planes are pooled scratch; the padding kernel writes every number of them (zeros included).

Grad-input takes the phases the other way round (:func:`backward_input`): the rows of dx split by i + top mod sh, and
row phase a of dx gathers only the taps r with r*dh = a mod sh, reading dy row u - (r*dh)//sh for dx row sh*u + a -
top. Each phase of dx is then a stride-1 correlation of dy, padded once, with a smaller kernel: 2x2, 2x1, 1x2 and 1x1
taps for 3x3 at stride 2, and no multiply by an inserted zero, as col2im's GEMM makes none either.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from .. import parallel, workspace
from ..jit import kernel
from . import direct, direct_weight
from .geometry import ConvGeometry

__all__ = ["backward_input", "backward_weight", "forward", "grid_overhead", "supported"]


@kernel
def _pad_phases(x, top, left, hp, wp, sh, sw, rows, cols, hq, pitch, out, n0, n1):
    """out[n] = the phases of image n of x (any strides) laid out for the grid, for n0 <= n < n1.

    Phase (rows[i], cols[j]) of channel c starts at c*plane + (i*len(cols) + j)*pp, pp = (hq + 1)*pitch, plane =
    len(rows)*len(cols)*pp; its row u, column v holds xpad[a + u*sh, b + v*sw] (a, b = rows[i], cols[j]) of the
    input padded to hp x wp by (top, left), that is x[n, c, a + u*sh - top, b + v*sw - left], or zero outside x
    (and outside the padded input: a negative bottom or right margin crops). Row hq of each phase is zeros, and
    so is everything past the last channel (the slack that the stride-1 kernels' whole tiles may read). The image
    is zeroed first, then x's numbers copied in: one vectorised fill beats skipping the zeros row by row (the
    phase rows are short: 1.2 instead of 1.55 ms for (100, 16, 28, 28) at stride 2 on one thread).
    """
    _, c_all, h, w = x.shape
    na, nb = rows.shape[0], cols.shape[0]
    pp = (hq + 1) * pitch
    plane = na * nb * pp
    hmax, wmax = min(h, hp - top), min(w, wp - left)  # x's rows and columns that lie inside the padded input
    for n in range(n0, n1):
        o = out[n]
        for k in range(o.shape[0]):
            o[k] = 0
        for c, i, j in np.ndindex(c_all, na, nb):
            a, b = rows[i], cols[j]
            u0 = max(0, -((a - top) // sh))  # rows u0..u1 and columns v0..v1 of the phase come from x
            u1 = min(hq, max(u0, -((a - top - hmax) // sh)))
            v0 = min(pitch, max(0, -((b - left) // sw)))
            v1 = min(pitch, max(v0, -((b - left - wmax) // sw)))
            base = c * plane + (i * nb + j) * pp + v0
            for u in range(u0, u1):
                src, dst = x[n, c, a + u * sh - top, b + v0 * sw - left :], o[base + u * pitch :]
                for v in range(v1 - v0):
                    dst[v] = src[v * sw]


class _Phases(NamedTuple):
    """The layout of one strided layer's input: the phase rows and columns some tap reads (sorted), the stride,
    ``hq`` rows per phase (Ho plus the largest row shift), ``pitch`` P (Wo plus the largest column shift)."""

    rows: tuple[int, ...]
    cols: tuple[int, ...]
    sh: int
    sw: int
    hq: int
    pitch: int

    @property
    def pp(self) -> int:
        """Numbers per phase plane: its hq rows and one spare zero row."""
        return (self.hq + 1) * self.pitch

    @property
    def plane(self) -> int:
        """Numbers per channel, all its phases: what the stride-1 kernels call ``plane``."""
        return len(self.rows) * len(self.cols) * self.pp

    def length(self, ho: int, wo: int) -> int:
        """Grid positions from the first output to the last, rounded up to whole vectors (as ``direct._Grid``)."""
        return -(-((ho - 1) * self.pitch + wo) // direct.VECTOR) * direct.VECTOR

    def offsets(self, channels: int, r: int, s: int, dh: int, dw: int) -> np.ndarray:
        """off[(c, r, s)]: where tap (c, r, s) reads past an output's grid position. Cached per layout."""
        return _offsets(self, channels, r, s, dh, dw)


@functools.lru_cache(maxsize=256)
def _layout(sh: int, sw: int, r: int, s: int, dh: int, dw: int, ho: int, wo: int) -> _Phases:
    rows = tuple(sorted({(i * dh) % sh for i in range(r)}))
    cols = tuple(sorted({(j * dw) % sw for j in range(s)}))
    return _Phases(rows, cols, sh, sw, ho + (r - 1) * dh // sh, wo + (s - 1) * dw // sw)


@functools.lru_cache(maxsize=256)
def _offsets(ph: _Phases, channels: int, r: int, s: int, dh: int, dw: int) -> np.ndarray:
    c_, r_, s_ = np.meshgrid(np.arange(channels), np.arange(r) * dh, np.arange(s) * dw, indexing="ij")
    row_phase = np.searchsorted(ph.rows, r_ % ph.sh)  # the index of tap r's phase among those laid out
    col_phase = np.searchsorted(ph.cols, s_ % ph.sw)
    off = (c_ * ph.plane + (row_phase * len(ph.cols) + col_phase) * ph.pp + (r_ // ph.sh) * ph.pitch
           + s_ // ph.sw)
    return off.reshape(-1).astype(np.int64)


@functools.lru_cache(maxsize=256)
def _phase_index(ph: _Phases) -> tuple[np.ndarray, np.ndarray]:
    return np.array(ph.rows, dtype=np.int64), np.array(ph.cols, dtype=np.int64)


def _phases(geo: ConvGeometry) -> _Phases:
    return _layout(*geo.stride, geo.r, geo.s, geo.dh, geo.dw, geo.ho, geo.wo)


def supported(geo: ConvGeometry) -> bool:
    """Stride > 1 on either axis, any padding (asymmetric too), dilation and groups."""
    return not geo.unit_stride


def grid_overhead(geo: ConvGeometry) -> float:
    """Grid positions the forward computes per output: P/Wo per row, the last row rounded up to whole vectors.
    At stride 2: 1.14 for 3x3 'same' on 28x28 (P = 15 for Wo = 14), 1.31 on 14x14 (P = 8, Wo = 7: the rounding
    of 55 positions up to 64 weighs), 1.06 on 32x32; 1x1 (P = Wo): 1.06 on 28x28, 1.31 on 14x14."""
    ph = _phases(geo)
    return ph.length(geo.ho, geo.wo) / (geo.ho * geo.wo)


def _check(geo: ConvGeometry) -> None:
    if not supported(geo):
        raise ValueError(f"direct_strided needs a stride > 1, got stride {geo.stride}; use direct.py for stride 1")


def _phased(x: np.ndarray, geo: ConvGeometry, ph: _Phases, even: bool = False):
    """(out, lay): pooled scratch (N, C*plane + SLACK) for every image's phases of x (N, C, H, W), any strides (the
    caller gives it back), and ``lay(b)``, which lays out the images of the range b, run by the kernel's own region
    (as ``direct._padded``). ``even``: one more image of zeros when N is odd (``_weight_grad`` takes images in
    pairs)."""
    n = x.shape[0]
    out = workspace.take((n + (n % 2 if even else 0), x.shape[1] * ph.plane + direct.SLACK), x.dtype)
    out[n:] = 0
    rows, cols = _phase_index(ph)
    hp, wp = geo.padded_hw

    def lay(b):
        _pad_phases(x, geo.top, geo.left, hp, wp, ph.sh, ph.sw, rows, cols, ph.hq, ph.pitch, out, b[0], b[1])

    return out, lay


def forward(geo: ConvGeometry, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """y (N, K, Ho, Wo) in x's dtype: ``direct._correlate`` on the phases."""
    _check(geo)
    dt = x.dtype
    wt, bias = direct._filters(geo, w, b, dt)
    ph = _phases(geo)
    offs = ph.offsets(geo.cg, geo.r, geo.s, geo.dh, geo.dw)
    xpad, lay = _phased(x, geo, ph)
    y = np.empty(geo.y_shape, dtype=dt)
    direct.correlate_all(xpad, ph.plane, ph.pitch, wt, offs, bias, y, geo.groups, lay)
    workspace.give(xpad)
    return y


def backward_weight(geo: ConvGeometry, dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dw (K, C/G, R, S) in dy's dtype: ``direct_weight._weight_grad`` on the phases, dy laid on the phase grid (pitch
    P). dy may be cropped (a transposed convolution's)."""
    _check(geo)
    dt = dy.dtype
    ph = _phases(geo)
    offs = ph.offsets(geo.cg, geo.r, geo.s, geo.dh, geo.dw)
    xpad, lay = _phased(x.astype(dt, copy=False), geo, ph, even=True)
    dw = direct_weight.run_weight_grad(geo, dy, xpad, ph.plane, ph.length(*geo.grad_hw(dy.shape)), offs,
                                       direct_weight.with_grid_rows(lay, dy, geo.groups, ph.pitch))
    workspace.give(xpad)
    return dw


class _InputPhase(NamedTuple):
    """One phase of dx in :func:`backward_input`: dx rows i0, i0 + sh, ... (``hu`` of them) and columns j0, j0 + sw,
    ... (``wv``), and the taps that reach it: kernel rows ``rs`` read dy ``roffs`` rows below the phase's output row
    on the padded grid, kernel columns ``ss`` ``coffs`` columns right of it."""

    i0: int
    j0: int
    hu: int
    wv: int
    rs: tuple[int, ...]
    roffs: tuple[int, ...]
    ss: tuple[int, ...]
    coffs: tuple[int, ...]


def _axis_phases(st: int, k: int, d: int, pad: int, size: int) -> tuple[list, int]:
    """Along one axis (stride st, k taps of dilation d, padding pad, dx length size): per phase a, (first dx index,
    count, taps, each tap's dy shift m = (tap*d)//st, first output u0), and the dy margin that makes every read
    u - m, u >= u0, land at or past 0 on the padded grid."""
    out = []
    for a in range(st):
        u0, u1 = -((a - pad) // st), -((a - pad - size) // st)  # dx index st*u + a - pad in [0, size)
        taps = [t for t in range(k) if (t * d) % st == a]
        out.append((st * u0 + a - pad, max(0, u1 - u0), taps, [(t * d) // st for t in taps], u0))
    margin = max([m - u0 for _, _, taps, ms, u0 in out for m in ms] + [0])
    return out, margin


@functools.lru_cache(maxsize=128)
def _input_layout(stride, r: int, s: int, dh: int, dw: int, top: int, left: int, hw: tuple, dy_hw: tuple):
    """(grid top margin, left margin, direct._Grid, phases with taps): where dy lies and which stride-1
    correlation makes each phase of dx."""
    rows, mt = _axis_phases(stride[0], r, dh, top, hw[0])
    cols, ml = _axis_phases(stride[1], s, dw, left, hw[1])
    phases = []
    reach_r, reach_c = mt + dy_hw[0], ml + dy_hw[1]  # the grid's rows and columns: dy and what is read
    for (i0, hu, rs, mr, u0), (j0, wv, ss, mc, v0) in ((a, b) for a in rows for b in cols):
        if hu and wv and rs and ss:
            roffs, coffs = tuple(u0 - m + mt for m in mr), tuple(v0 - m + ml for m in mc)
            reach_r, reach_c = max(reach_r, hu + max(roffs)), max(reach_c, wv + max(coffs))
            phases.append(_InputPhase(i0, j0, hu, wv, tuple(rs), roffs, tuple(ss), coffs))
    grid = direct._Grid(reach_r, reach_c, (reach_r + 1) * reach_c)
    return mt, ml, grid, tuple(phases)


@kernel
def _interleave(parts, starts, i0, j0, hu, wv, sh, sw, dx, n0, n1):
    """dx[n, c, i0[p] + sh*u, j0[p] + sw*v] = phase p's output (n, c, u, v), which lies in ``parts`` (flat) at
    starts[p] + ((n*C + c)*hu[p] + u)*wv[p] + v, and zero where no phase reaches, for n0 <= n < n1."""
    _, c_all, h, w = dx.shape
    for n in range(n0, n1):
        for c in range(c_all):
            d = dx[n, c]
            for i in range(h):
                for j in range(w):
                    d[i, j] = 0
            for p in range(i0.shape[0]):
                size = hu[p] * wv[p]
                src = parts[starts[p] + (n * c_all + c) * size :]
                for u in range(hu[p]):
                    row, part = d[i0[p] + sh * u], src[u * wv[p] :]
                    for v in range(wv[p]):
                        row[j0[p] + sw * v] = part[v]


def backward_input(geo: ConvGeometry, dy: np.ndarray, w: np.ndarray) -> np.ndarray:
    """dx (N, C, H, W) in dy's dtype: per phase of dx, ``direct._correlate`` of dy (padded once; it may be cropped)
    with that phase's taps, then the phases interleaved into dx. Same threads and bits rule as forward."""
    _check(geo)
    dt = dy.dtype
    g, kg, cg = geo.groups, geo.kg, geo.cg
    mt, ml, grid, phases = _input_layout(geo.stride, geo.r, geo.s, geo.dh, geo.dw, geo.top, geo.left,
                                         (geo.height, geo.width), tuple(dy.shape[2:]))
    w5 = w.astype(dt, copy=False).reshape(g, kg, cg, geo.r, geo.s)
    sizes = [geo.n * geo.c * ph.hu * ph.wv for ph in phases]
    starts = np.cumsum([0, *sizes])[:-1].astype(np.int64)
    dypad, lay = direct._padded(dy, mt, ml, grid)
    parts = workspace.take((max(1, sum(sizes)),), dt)
    runs = []
    for ph, start, size in zip(phases, starts, sizes, strict=True):
        wt = direct._in_fours(w5[:, :, :, list(ph.rs)][..., list(ph.ss)].transpose(0, 2, 1, 3, 4).reshape(g, cg, -1))
        k_, r_, s_ = np.meshgrid(np.arange(kg), np.array(ph.roffs), np.array(ph.coffs), indexing="ij")
        offs = (k_ * grid.plane + r_ * grid.pitch + s_).reshape(-1).astype(np.int64)
        y3 = parts[start : start + size].reshape(geo.n, geo.c, ph.hu * ph.wv)
        runs.append(direct.correlator(dypad, grid.plane, grid.pitch, wt, offs, np.zeros(wt.shape[0], dt), y3, ph.wv,
                                      g))
    meta = [np.array([getattr(ph, f) for ph in phases], dtype=np.int64) for f in ("i0", "j0", "hu", "wv")]
    dx = np.empty(geo.x_shape, dtype=dt)

    def item(b):
        lay(b)
        for run in runs:
            run(b)
        _interleave(parts, starts, *meta, *geo.stride, dx, b[0], b[1])

    parallel.run(item, direct._image_ranges(geo.n), blas=False)
    workspace.give(dypad)
    workspace.give(parts)
    return dx

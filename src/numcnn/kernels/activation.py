"""Elementwise activations and their gradients, matching torch.nn.functional.

Every function works on arrays of any shape and returns x's dtype (float32 stays float32). A backward
takes the upstream gradient ``dy`` and whatever the derivative is cheapest to compute from: the forward
input ``x``, the forward output ``y``, or both.
"""

from __future__ import annotations

import math

import numpy as np

from . import activation_compiled, jit, parallel
from .jit import kernel

_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def _where(cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.where(cond, a, b)`` for float arrays of one dtype, selected with bit masks.

    np.where branches per element, and on an unpredictable mix such as an activation's sign pattern it
    runs several times slower than an arithmetic pass; this stays exact (NaN and -0.0 included).
    """
    uint = _UINT[a.dtype.itemsize]
    mask = cond.astype(uint)
    np.negative(mask, out=mask)  # all ones where cond, zero elsewhere
    out = np.bitwise_and(mask, a.view(uint))
    np.invert(mask, out=mask)
    mask &= b.view(uint)
    out |= mask
    return out.view(a.dtype)


def _zero_where(cond: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``np.where(cond, 0, a)`` for a float array, branch-free like ``_where``."""
    uint = _UINT[a.dtype.itemsize]
    mask = cond.astype(uint)
    mask -= uint(1)  # zero where cond, all ones elsewhere
    mask &= a.view(uint)
    return mask.view(a.dtype)


# ---------------------------------------------------------------------------------------------------
# ReLU family
# ---------------------------------------------------------------------------------------------------


# The compiled ReLU (backend "numba"): one pass each way over the arrays' memory, in parts of _PART elements shared
# out over numcnn's kernel threads (elementwise: any cut gives the same bits). The parts are large: the pass is
# memory-bound, and on 2 busy cores two halves of a 1.25M-element array took longer than one thread doing both
# (0.25 vs 0.18 ms). Arrays smaller than _COMPILED_MIN run NumPy's call, which costs less than the dispatch.
_PART = 1 << 21
_COMPILED_MIN = 1 << 16


@kernel
def _relu_part(x, y, i0, i1):
    xs, ys = x[i0:i1], y[i0:i1]  # slices first: an index that starts at 0 needs no wraparound test, and vectorises
    for i in range(xs.shape[0]):
        v = xs[i]
        ys[i] = v if (v > 0) | (v != v) else 0  # np.maximum(x, 0): NaN stays, -0.0 becomes 0


@kernel
def _relu_backward_part(dy, y, dx, i0, i1):
    gs, ys, ds = dy[i0:i1], y[i0:i1], dx[i0:i1]
    for i in range(gs.shape[0]):
        ds[i] = 0 if ys[i] <= 0 else gs[i]


def _dense_order(a: np.ndarray) -> tuple[int, ...] | None:
    """The axis order in which ``a`` is C-contiguous (a view of dense memory: NCHW, channel-major, ...), or None."""
    if a.flags.c_contiguous:
        return tuple(range(a.ndim))
    order = tuple(sorted(range(a.ndim), key=lambda i: -a.strides[i]))
    return order if a.transpose(order).flags.c_contiguous else None


def _compiled_order(*arrays: np.ndarray) -> tuple[int, ...] | None:
    """The memory order the compiled elementwise kernels can run the arrays in (all dense in the first one's order,
    one float dtype, large enough), or None: the NumPy kernels run then."""
    a = arrays[0]
    if (a.size < _COMPILED_MIN or a.dtype not in (np.float32, np.float64) or not jit.use_compiled()
            or any(b.dtype != a.dtype or b.shape != a.shape for b in arrays[1:])):
        return None
    order = _dense_order(a)
    if order is None or not all(b.transpose(order).flags.c_contiguous for b in arrays[1:]):
        return None
    return order


def _elementwise(fn, order: tuple[int, ...], *arrays: np.ndarray) -> np.ndarray:
    """out laid out like arrays[0]; fn(*flat arrays, flat out, i0, i1) over parts of the memory order."""
    flat = [a.transpose(order).reshape(-1) for a in arrays]
    out = np.empty(arrays[0].transpose(order).shape, dtype=arrays[0].dtype)
    out_flat = out.reshape(-1)
    n = out_flat.size
    parallel.run(lambda b: fn(*flat, out_flat, *b), [(i, min(n, i + _PART)) for i in range(0, n, _PART)], blas=False)
    return out.transpose(np.argsort(order))


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0); NaN stays NaN. Laid out like x."""
    order = _compiled_order(x)
    if order is not None:
        return _elementwise(_relu_part, order, x)
    return np.maximum(x, x.dtype.type(0))


def relu_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dy where y > 0, else 0 (PyTorch's ``threshold_backward``: zero where y <= 0, even a NaN dy)."""
    order = _compiled_order(dy, y)
    if order is not None:
        return _elementwise(_relu_backward_part, order, dy, y)
    return _zero_where(y <= 0, dy)


def leaky_relu(x: np.ndarray, negative_slope: float = 0.01) -> np.ndarray:
    """x if x > 0 else negative_slope * x."""
    scaled = x * x.dtype.type(negative_slope)
    # For slope <= 1 the larger of x and slope*x is the right branch on both sides of 0; for slope > 1
    # the smaller one is. Either way one arithmetic pass, NaN-propagating.
    if negative_slope <= 1:
        return np.maximum(x, scaled, out=scaled)
    return np.minimum(x, scaled, out=scaled)


def leaky_relu_backward(dy: np.ndarray, x: np.ndarray, negative_slope: float = 0.01) -> np.ndarray:
    """dy if x > 0 else negative_slope * dy."""
    return _where(x > 0, dy, dy * dy.dtype.type(negative_slope))


def elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """x if x > 0 else alpha * (exp(x) - 1), with expm1 for accuracy near 0."""
    f = x.dtype.type
    # max(x, 0) + alpha * expm1(min(x, 0)): one side is exactly 0 on each side of the kink, and expm1
    # never sees a positive argument, so nothing overflows.
    neg = np.minimum(x, f(0))
    np.expm1(neg, out=neg)
    neg *= f(alpha)
    neg += np.maximum(x, f(0))
    return neg


def elu_backward(dy: np.ndarray, x: np.ndarray, y: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """dy if x > 0 else dy * alpha * exp(x), where alpha * exp(x) = y + alpha is read off the output."""
    f = y.dtype.type
    neg = np.minimum(y, f(0))  # keeps the unused x > 0 branch finite
    neg += f(alpha)
    neg *= dy
    return _where(x > 0, dy, neg)


# ---------------------------------------------------------------------------------------------------
# Sigmoid, tanh
# ---------------------------------------------------------------------------------------------------


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), evaluated without overflow for any |x|.

    With e = exp(-|x|) <= 1: sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0.
    """
    e = np.abs(x)
    np.negative(e, out=e)
    np.exp(e, out=e)
    den = e + x.dtype.type(1)
    # numerator: 1 where x >= 0, else e; as e <= 1 that is max(e, x >= 0), a branch-free select
    num = np.maximum(e, x >= 0, out=e)
    num /= den
    return num


def sigmoid_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dy * y * (1 - y)."""
    if activation_compiled.supported(_COMPILED_MIN, y, dy) and jit.use_compiled():
        return activation_compiled.backward("sigmoid", dy, y)  # one pass, the same bits
    return dy * (y.dtype.type(1) - y) * y


def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent."""
    return np.tanh(x)


def tanh_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dy * (1 - y**2)."""
    if activation_compiled.supported(_COMPILED_MIN, y, dy) and jit.use_compiled():
        return activation_compiled.backward("tanh", dy, y)  # one pass, the same bits
    return dy * (y.dtype.type(1) - y * y)


# ---------------------------------------------------------------------------------------------------
# erf
#
# Rational approximations from FreeBSD msun s_erf.c (double) and s_erff.c (float):
#   Copyright (C) 1993 by Sun Microsystems, Inc. All rights reserved.
#   Developed at SunPro, a Sun Microsystems, Inc. business.
#   Permission to use, copy, modify, and distribute this software is freely granted, provided that
#   this notice is preserved.
# The float set has lower degree and is evaluated in float32; the double set is evaluated in float64.
# Regions: |x| < 0.84375: erf(x) = x + x * P(x^2)/Q(x^2); |x| < 1.25: erx + P(s)/Q(s) with s = |x| - 1;
# larger |x|: 1 - exp(-x^2 - 0.5625 + R(1/x^2)/S(1/x^2)) / |x|, with x^2 split exactly in two parts.
# ---------------------------------------------------------------------------------------------------

_ERF64 = {
    "erx": 8.45062911510467529297e-01,
    "pp": (1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
           -5.77027029648944159157e-03, -2.37630166566501626084e-05),
    "qq": (1.0, 3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
           1.32494738004321644526e-04, -3.96022827877536812320e-06),
    "pa": (-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
           3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
           -2.16637559486879084300e-03),
    "qa": (1.0, 1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
           1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02),
    "ra": (-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e+01,
           -6.23753324503260060396e+01, -1.62396669462573470355e+02, -1.84605092906711035994e+02,
           -8.12874355063065934246e+01, -9.81432934416914548592e+00),
    "sa": (1.0, 1.96512716674392571292e+01, 1.37657754143519042600e+02, 4.34565877475229228821e+02,
           6.45387271733267880336e+02, 4.29008140027567833386e+02, 1.08635005541779435134e+02,
           6.57024977031928170135e+00, -6.04244152148580987438e-02),
    "rb": (-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e+01,
           -1.60636384855821916062e+02, -6.37566443368389627722e+02, -1.02509513161107724954e+03,
           -4.83519191608651397019e+02),
    "sb": (1.0, 3.03380607434824582924e+01, 3.25792512996573918826e+02, 1.53672958608443695994e+03,
           3.19985821950859553908e+03, 2.55305040643316442583e+03, 4.74528541206955367215e+02,
           -2.24409524465858183362e+01),
    "split": 1 / 0.35,  # ra/sa below, rb/sb above
    "one_above": 6.0,   # erf(x) rounds to 1 beyond this
    "uint": np.uint64,
    "hi_mask": 0xFFFFFFFF00000000,  # keep the high 32 bits: z*z is then exact
}

_ERF32 = {
    "erx": 8.42697144e-01,
    "pp": (1.28379166e-01, -3.36030394e-01, -1.86260219e-03),
    "qq": (1.0, 3.12324286e-01, 2.16070302e-02, -1.98859419e-03),
    "pa": (3.64939137e-06, 4.15109694e-01, -1.65179938e-01, 1.10914491e-01),
    "qa": (1.0, 6.02074385e-01, 5.35934687e-01, 1.68576106e-01, 5.62181212e-02),
    "ra": (-9.87132732e-03, -5.53605914e-01, -2.17589188e+00, -1.43268085e+00),
    "sa": (1.0, 5.45995426e+00, 6.69798088e+00, 1.43113089e+00, -5.77397496e-02),
    "rb": (-9.86494310e-03, -6.25171244e-01, -6.16498327e+00, -1.66696873e+01, -9.53764343e+00),
    "sb": (1.0, 1.26884899e+01, 4.51839523e+01, 4.72810211e+01, 8.93033314e+00),
    "split": 1 / 0.35,
    "one_above": 4.0,
    "uint": np.uint32,
    "hi_mask": 0xFFFFE000,  # keep 11 significand bits: z*z is then exact in float32
}


def _poly(coeffs: tuple[float, ...], t: np.ndarray) -> np.ndarray:
    """Horner evaluation of sum(coeffs[k] * t**k) in t's dtype."""
    f = t.dtype.type
    acc = np.full_like(t, f(coeffs[-1]))
    for c in reversed(coeffs[:-1]):
        acc *= t
        acc += f(c)
    return acc


def _erf_region(a: np.ndarray, region: int, k: dict) -> np.ndarray:
    """erf(a) for a = |x| (1-D) all inside one region: 0 [0, 0.84375), 1 [0.84375, 1.25),
    2 [1.25, 1/0.35), 3 [1/0.35, inf]."""
    f = a.dtype.type
    if region == 0:
        z = a * a
        return a + a * (_poly(k["pp"], z) / _poly(k["qq"], z))
    if region == 1:
        s = a - f(1)
        return f(k["erx"]) + _poly(k["pa"], s) / _poly(k["qa"], s)
    # Beyond one_above erf rounds to 1 in this precision; clamping keeps 1/a^2 inside the fitted range.
    t = np.minimum(a, f(k["one_above"]))
    s = f(1) / (t * t)
    if region == 2:
        r_over_s = _poly(k["ra"], s) / _poly(k["sa"], s)
    else:
        r_over_s = _poly(k["rb"], s) / _poly(k["sb"], s)
    # exp(-t^2) = exp(-z^2) * exp((z - t)(z + t)) with z = t cut to half its significand: z^2 is exact,
    # so the large exponent loses no accuracy.
    z = (t.view(k["uint"]) & k["uint"](k["hi_mask"])).view(a.dtype)
    r = np.exp(-z * z - f(0.5625))
    r *= np.exp((z - t) * (z + t) + r_over_s)
    r /= t
    return f(1) - r


def erf(x: np.ndarray) -> np.ndarray:
    """Error function, elementwise, in x's dtype (float32 or float64; float16 is computed in float32).

    Accuracy: within 1 ulp in float32 and about 1 ulp in float64 (fdlibm's rational approximations).
    erf(+-inf) = +-1, erf(nan) = nan.
    """
    x = np.asarray(x)
    if x.dtype == np.float64:
        k = _ERF64
    elif x.dtype == np.float32:
        k = _ERF32
    elif x.dtype == np.float16:
        return erf(x.astype(np.float32)).astype(np.float16)
    else:
        raise TypeError(f"erf: expected a float16/32/64 array, got dtype {x.dtype}")
    a = np.abs(x.reshape(-1))
    # Region number 0..3 per element (NaN compares false everywhere: region 0, where it propagates).
    region = (a >= 0.84375).view(np.uint8)
    region += a >= 1.25
    region += a >= k["split"]
    out = np.empty_like(a)
    # Gather each region with integer indices: boolean masks and np.where branch per element and are
    # several times slower on mixed-region data.
    for r in range(4):
        idx = np.flatnonzero(region == r)
        if idx.size:
            out.put(idx, _erf_region(a.take(idx), r, k))
    np.copysign(out, x.reshape(-1), out=out)
    return out.reshape(x.shape)


# ---------------------------------------------------------------------------------------------------
# GELU
# ---------------------------------------------------------------------------------------------------

_SQRT1_2 = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TANH_BETA = math.sqrt(2.0 / math.pi)
_TANH_KAPPA = 0.044715
_GELU_CLIP = 1e10  # beyond this every GELU term has saturated, in float32 and float64 alike


def _check_approximate(approximate: str) -> None:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def _tanh_inner(xc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """tanh(sqrt(2/pi) * (x + 0.044715 x^3)) and x^2, for the (clipped) input xc."""
    f = xc.dtype.type
    x_sq = xc * xc
    th = x_sq * f(_TANH_KAPPA)
    th += f(1)
    th *= xc
    th *= f(_TANH_BETA)
    np.tanh(th, out=th)
    return th, x_sq


def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """GELU: x * Phi(x) with the exact normal CDF ("none") or PyTorch's tanh approximation ("tanh")."""
    _check_approximate(approximate)
    f = x.dtype.type
    if approximate == "none":
        cdf = erf(x * f(_SQRT1_2))
    else:
        # Clipping keeps x^3 finite and changes nothing: tanh has saturated long before.
        cdf, _ = _tanh_inner(np.clip(x, f(-_GELU_CLIP), f(_GELU_CLIP)))
    cdf += f(1)
    cdf *= f(0.5)
    cdf *= x
    return cdf


def gelu_backward(dy: np.ndarray, x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """Gradient of ``gelu``: dy * (Phi(x) + x * phi(x)), or the derivative of the tanh form."""
    _check_approximate(approximate)
    f = x.dtype.type
    xc = np.clip(x, f(-_GELU_CLIP), f(_GELU_CLIP))  # squares stay finite; see gelu
    if approximate == "none":
        grad = erf(x * f(_SQRT1_2))
        grad += f(1)
        grad *= f(0.5)
        pdf = np.multiply(xc, xc, out=xc)
        pdf *= f(-0.5)
        np.exp(pdf, out=pdf)
        pdf *= f(_INV_SQRT_2PI)
        pdf *= x
        grad += pdf
        grad *= dy
        return grad
    # d/dx [0.5 x (1 + th)] = 0.5 (1 + th) + 0.5 x (1 - th^2) * beta * (1 + 3 kappa x^2)
    #                       = 0.5 (1 + th) * (1 + beta * x * (1 - th) * (1 + 3 kappa x^2)),
    # and (1 - th)(1 + th) keeps the digits that 1 - th^2 loses where th is near -1 or 1.
    th, x_sq = _tanh_inner(xc)
    one_plus = th + f(1)
    factor = np.subtract(f(1), th, out=th)
    x_sq *= f(3 * _TANH_KAPPA)
    x_sq += f(1)
    factor *= x_sq
    factor *= xc
    factor *= f(_TANH_BETA)
    factor += f(1)
    factor *= one_plus
    factor *= f(0.5)
    factor *= dy
    return factor

"""Elementwise activations and their gradients, matching torch.nn.functional.

Every function works on arrays of any shape and returns x's dtype (float32 stays float32). A backward
takes the upstream gradient ``dy`` and whatever the derivative is cheapest to compute from: the forward
input ``x``, the forward output ``y``, or both.
"""

from __future__ import annotations

import math

import numpy as np

# ---------------------------------------------------------------------------------------------------
# ReLU family
# ---------------------------------------------------------------------------------------------------


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0); NaN stays NaN."""
    return np.maximum(x, x.dtype.type(0))


def relu_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dy where y > 0, else 0 (PyTorch's ``threshold_backward``: zero where y <= 0)."""
    return np.where(y <= 0, dy.dtype.type(0), dy)


def leaky_relu(x: np.ndarray, negative_slope: float = 0.01) -> np.ndarray:
    """x if x > 0 else negative_slope * x."""
    return np.where(x > 0, x, x * x.dtype.type(negative_slope))


def leaky_relu_backward(dy: np.ndarray, x: np.ndarray, negative_slope: float = 0.01) -> np.ndarray:
    """dy if x > 0 else negative_slope * dy."""
    return np.where(x > 0, dy, dy * dy.dtype.type(negative_slope))


def elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """x if x > 0 else alpha * (exp(x) - 1), with expm1 for accuracy near 0."""
    # expm1 only ever sees x <= 0, so large positive inputs cannot overflow.
    neg = np.expm1(np.minimum(x, x.dtype.type(0)))
    neg *= x.dtype.type(alpha)
    return np.where(x > 0, x, neg)


def elu_backward(dy: np.ndarray, x: np.ndarray, y: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """dy if x > 0 else dy * alpha * exp(x), where alpha * exp(x) = y + alpha is read off the output."""
    return np.where(x > 0, dy, dy * (y + y.dtype.type(alpha)))


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
    num = np.where(x >= 0, x.dtype.type(1), e)
    num /= den
    return num


def sigmoid_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dy * y * (1 - y)."""
    return dy * (y.dtype.type(1) - y) * y


def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent."""
    return np.tanh(x)


def tanh_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dy * (1 - y**2)."""
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


def _erf_abs(a: np.ndarray, k: dict) -> np.ndarray:
    """erf(a) for a = |x| >= 0 (1-D, no NaN), in a's dtype, with the coefficient set k."""
    f = a.dtype.type
    out = np.empty_like(a)

    small = a < 0.84375
    t = a[small]
    z = t * t
    out[small] = t + t * (_poly(k["pp"], z) / _poly(k["qq"], z))

    mid = ~small & (a < 1.25)
    s = a[mid] - f(1)
    out[mid] = f(k["erx"]) + _poly(k["pa"], s) / _poly(k["qa"], s)

    big = a >= k["one_above"]
    out[big] = f(1)

    tail = ~(small | mid | big)
    t = a[tail]
    s = f(1) / (t * t)
    lower = t < k["split"]
    r_over_s = np.where(lower, _poly(k["ra"], s) / _poly(k["sa"], s), _poly(k["rb"], s) / _poly(k["sb"], s))
    # exp(-t^2) = exp(-z^2) * exp((z - t)(z + t)) with z = t rounded to half the bits: z^2 is exact,
    # so the large exponent loses no accuracy.
    z = (t.view(k["uint"]) & k["uint"](k["hi_mask"])).view(a.dtype)
    r = np.exp(-z * z - f(0.5625)) * np.exp((z - t) * (z + t) + r_over_s)
    out[tail] = f(1) - r / t
    return out


def erf(x: np.ndarray) -> np.ndarray:
    """Error function, elementwise, in x's dtype (float32 or float64; float16 is computed in float32).

    Accuracy: about 1 ulp in float32 and ~1e-16 relative in float64 (fdlibm's rational approximations).
    erf(+-inf) = +-1, erf(nan) = nan.
    """
    x = np.asarray(x)
    if x.dtype == np.float64:
        k, work = _ERF64, x
    elif x.dtype == np.float32:
        k, work = _ERF32, x
    elif x.dtype == np.float16:
        return erf(x.astype(np.float32)).astype(np.float16)
    else:
        raise TypeError(f"erf: expected a float16/32/64 array, got dtype {x.dtype}")
    flat = work.reshape(-1)
    a = np.abs(flat)
    finite = ~np.isnan(a)
    out = np.full_like(flat, np.nan)
    out[finite] = _erf_abs(a[finite], k)
    np.copysign(out, flat, out=out)
    return out.reshape(x.shape)


# ---------------------------------------------------------------------------------------------------
# GELU
# ---------------------------------------------------------------------------------------------------

_SQRT1_2 = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TANH_BETA = math.sqrt(2.0 / math.pi)
_TANH_KAPPA = 0.044715


def _check_approximate(approximate: str) -> None:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """GELU: x * Phi(x) with the exact normal CDF ("none") or PyTorch's tanh approximation ("tanh")."""
    _check_approximate(approximate)
    f = x.dtype.type
    if approximate == "none":
        cdf = erf(x * f(_SQRT1_2))
    else:
        with np.errstate(over="ignore"):  # x**3 overflows to inf for huge |x|; tanh(inf) = 1 is right
            cdf = np.tanh(f(_TANH_BETA) * (x + f(_TANH_KAPPA) * x * x * x))
    cdf += f(1)
    cdf *= f(0.5)
    cdf *= x
    return cdf


def gelu_backward(dy: np.ndarray, x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """Gradient of ``gelu``: dy * (Phi(x) + x * phi(x)), or the derivative of the tanh form."""
    _check_approximate(approximate)
    f = x.dtype.type
    if approximate == "none":
        cdf = erf(x * f(_SQRT1_2))
        cdf += f(1)
        cdf *= f(0.5)
        with np.errstate(over="ignore"):  # x*x = inf for huge |x| gives pdf 0, which is right
            pdf = np.exp(f(-0.5) * x * x)
        pdf *= f(_INV_SQRT_2PI)
        pdf *= x
        cdf += pdf
        cdf *= dy
        return cdf
    with np.errstate(over="ignore"):
        x_sq = x * x
        inner = f(_TANH_BETA) * (x + f(_TANH_KAPPA) * x_sq * x)
    th = np.tanh(inner)
    left_derivative = f(0.5) * (f(1) + th)
    with np.errstate(over="ignore", invalid="ignore"):
        right_derivative = (f(0.5) * x) * (f(1) - th * th) * f(_TANH_BETA)
        right_derivative *= f(1) + f(3 * _TANH_KAPPA) * x_sq
    # For huge |x|, 0 * inf appears above; the true derivative there is 0 (x < 0) or 1 (x > 0).
    right_derivative = np.where(np.isfinite(x_sq), right_derivative, f(0))
    return dy * (left_derivative + right_derivative)

"""SGD, RMSprop and Adagrad on one float32 parameter compiled (backend "numba"): one pass per parameter.

Like ``adam_compiled``: a small network's update costs its NumPy calls (two to a dozen per parameter, most with a
temporary), not its arithmetic. Each kernel does its NumPy update's float32 operations in the same order with the
same float32 constants, with no FMA contraction, so the bits equal the NumPy path's. A Python float meeting a float32
array is rounded to float32 first; the kernels take the Python floats (double) and round them the same way
(``np.float32(x)``, to nearest), and scalars the NumPy path computes in double (``1 - dampening``, Adagrad's decayed
learning rate) are computed in double here too before that rounding. The options travel as one int of flags: the
fewer and simpler the arguments, the cheaper Numba's call, which is most of the time a small parameter takes.
Every option is covered; other dtypes and layouts, and mismatched shapes, run the NumPy update.
"""

from __future__ import annotations

import numpy as np

from ..kernels.jit import kernel

__all__ = ["adagrad_update_f32", "gradient", "lerp", "rmsprop_update_f32", "sgd_update_f32", "supported"]

_F32 = np.dtype(np.float32)
_NO_ARRAY = np.empty(0, np.float32)  # stands for a state array an option does without (never read)

# the flags' bits
MAXIMIZE, DECAY, MOMENTUM, FIRST, NESTEROV, CENTERED, SMALL_W = 1, 2, 4, 8, 16, 32, 64


def supported(param: np.ndarray, *others: np.ndarray | None) -> bool:
    """float32, one shape, all C-contiguous (``others``: the gradient and the state arrays; None ones are skipped)."""
    shape = param.shape
    for a in (param, *others):
        if a is not None and (a.dtype != _F32 or not a.flags.c_contiguous or a.shape != shape):
            return False
    return True


# ---- what the updates share (compiled into each kernel)


@kernel(inline=True)
def gradient(grad, param, i, maximize, decay, wd):
    """The gradient an update uses at element i: grad[i], negated to maximize, plus wd * param[i] with weight decay
    added to the gradient (the NumPy updates' order: ``g = -g``, then ``g = g + wd * p``)."""
    g = -grad[i] if maximize else grad[i]
    return g + wd * param[i] if decay else g


@kernel(inline=True)
def lerp(a, g, w, small_w):
    """torch.lerp(a, g, w) in float32, as ``a.lerp_(g, w)`` computes it: a + (g - a) * w where |w| < 0.5 (``small_w``),
    else g - (g - a) * (1 - w)."""
    return a + (g - a) * w if small_w else g - (g - a) * (np.float32(1) - w)


# ---- SGD


@kernel
def _sgd_f32(param, grad, buf, weight_decay, momentum_, dampening, lr_, flags):
    wd, momentum, lr = np.float32(weight_decay), np.float32(momentum_), np.float32(lr_)
    damp_w = np.float32(1 - dampening)  # (1 - dampening) * grad: the difference in double, then float32
    maximize, decay, use_momentum = (flags & MAXIMIZE) != 0, (flags & DECAY) != 0, (flags & MOMENTUM) != 0
    first, nesterov = (flags & FIRST) != 0, (flags & NESTEROV) != 0
    for i in range(param.shape[0]):
        g, p = gradient(grad, param, i, maximize, decay, wd), param[i]
        if use_momentum:
            if first:
                b = g  # torch: the first step's buffer is the gradient, undamped
            else:
                b = buf[i] * momentum + damp_w * g
            buf[i] = b
            if nesterov:
                g = g + momentum * b
            else:
                g = b
        param[i] = p - lr * g


def sgd_update_f32(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov,
                   maximize) -> np.ndarray | None:
    """``sgd.sgd_update`` for what :func:`supported` accepts, in place; returns the buffer to keep."""
    use_momentum = momentum != 0
    first = use_momentum and momentum_buffer is None
    buf = np.empty_like(param) if first else momentum_buffer
    flags = (MAXIMIZE * bool(maximize) | DECAY * (weight_decay != 0) | MOMENTUM * use_momentum | FIRST * first
             | NESTEROV * bool(nesterov))
    _sgd_f32(param.ravel(), grad.ravel(), buf.ravel() if use_momentum else _NO_ARRAY, float(weight_decay),
             float(momentum), float(dampening), float(lr), flags)
    return buf if use_momentum else None


# ---- RMSprop


@kernel
def _rmsprop_f32(param, grad, square_avg, grad_avg, buf, weight_decay, alpha_, eps_, momentum_, lr_, flags):
    wd, alpha, eps, momentum = np.float32(weight_decay), np.float32(alpha_), np.float32(eps_), np.float32(momentum_)
    lr, neg_lr, c = np.float32(lr_), np.float32(-lr_), np.float32(1 - alpha_)
    maximize, decay, use_momentum = (flags & MAXIMIZE) != 0, (flags & DECAY) != 0, (flags & MOMENTUM) != 0
    centered, small_w = (flags & CENTERED) != 0, (flags & SMALL_W) != 0
    for i in range(param.shape[0]):
        g, p = gradient(grad, param, i, maximize, decay, wd), param[i]
        s = square_avg[i] * alpha + (g * c) * g  # addcmul_(g, g, value=c) evaluates (c * g) * g
        square_avg[i] = s
        if centered:
            a = lerp(grad_avg[i], g, c, small_w)  # weight c = 1 - alpha
            grad_avg[i] = a
            avg = np.sqrt(s - a * a)
        else:
            avg = np.sqrt(s)
        avg = avg + eps
        if use_momentum:
            b = buf[i] * momentum + g / avg
            buf[i] = b
            param[i] = p - lr * b
        else:
            param[i] = p + (g * neg_lr) / avg  # addcdiv_(g, avg, value=-lr) evaluates (-lr * g) / avg


def rmsprop_update_f32(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, eps, weight_decay, momentum,
                       centered, maximize) -> None:
    """``rmsprop.rmsprop_update`` for what :func:`supported` accepts, in place."""
    use_momentum = momentum > 0
    flags = (MAXIMIZE * bool(maximize) | DECAY * (weight_decay != 0) | MOMENTUM * use_momentum
             | CENTERED * bool(centered) | SMALL_W * bool(abs(np.float32(1 - alpha)) < 0.5))
    _rmsprop_f32(param.ravel(), grad.ravel(), square_avg.ravel(), grad_avg.ravel() if centered else _NO_ARRAY,
                 momentum_buffer.ravel() if use_momentum else _NO_ARRAY, float(weight_decay), float(alpha),
                 float(eps), float(momentum), float(lr), flags)


# ---- Adagrad


@kernel
def _adagrad_f32(param, grad, state_sum, weight_decay, eps_, neg_clr_, flags):
    wd, eps, neg_clr = np.float32(weight_decay), np.float32(eps_), np.float32(neg_clr_)
    maximize, decay = (flags & MAXIMIZE) != 0, (flags & DECAY) != 0
    for i in range(param.shape[0]):
        g, p = gradient(grad, param, i, maximize, decay, wd), param[i]
        s = state_sum[i] + g * g
        state_sum[i] = s
        param[i] = p + (g * neg_clr) / (np.sqrt(s) + eps)  # addcdiv_(g, std, value=-clr): (-clr * g) / std


def adagrad_update_f32(param, grad, state_sum, step, lr, lr_decay, weight_decay, eps, maximize) -> None:
    """``adagrad.adagrad_update`` for what :func:`supported` accepts, in place."""
    clr = lr / (1 + (step - 1) * lr_decay)  # in double, as the NumPy path
    _adagrad_f32(param.ravel(), grad.ravel(), state_sum.ravel(), float(weight_decay), float(eps), float(-clr),
                 MAXIMIZE * bool(maximize) | DECAY * (weight_decay != 0))

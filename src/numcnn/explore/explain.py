"""One output pixel of a layer, recomputed in float64 the way the textbook writes it, next to the float32 value the
real forward pass produced (recorded by a forward hook).

- Convolution: the input patch the pixel sees (its group's input channels, R x S taps, stride, padding and dilation
  applied, 0 on the padding), the kernel, their products, and their sum computed by the naive reference kernel
  (numcnn/kernels/conv/reference.py) in float64, plus the bias.
- Pooling: the window (None on padding), which element won (max) or the divisor (average).
- Batch norm (eval mode): (x - running_mean) / sqrt(running_var + eps) * gamma + beta.

``difference`` = |result - activation|; ``relative`` = difference / the magnitude of the terms summed (for a
convolution: sum |products| + |bias|), the scale float32 rounding errors are proportional to; ``within`` says
whether relative <= TOLERANCE. Each function also gives the layer's geometry, which the static export stores so
that the page can do the arithmetic itself (:func:`geometry`).
"""

from __future__ import annotations

import math

import numpy as np

from .. import nn
from ..kernels.conv import reference, same_padding
from ..kernels.conv.geometry import ConvGeometry

TOLERANCE = 1e-4


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


def conv_padding(module) -> tuple[tuple[int, int], tuple[int, int]]:
    """The layer's padding as ((top, bottom), (left, right)), 'same' and 'valid' resolved as conv2d does."""
    if module.padding == "valid":
        return ((0, 0), (0, 0))
    if module.padding == "same":
        return same_padding(tuple(module.kernel_size), tuple(module.dilation))
    ph, pw = _pair(module.padding)
    return ((ph, ph), (pw, pw))


def geometry(module) -> dict:
    """The hyper-parameters the arithmetic of ``module``'s pixels needs (JSON)."""
    if isinstance(module, nn.Conv2d):
        return {"kernel_size": list(module.kernel_size), "stride": list(module.stride),
                "padding": [list(p) for p in conv_padding(module)], "dilation": list(module.dilation),
                "groups": module.groups}
    if isinstance(module, nn.MaxPool2d):
        return {"kernel_size": list(_pair(module.kernel_size)), "stride": list(_pair(module.stride)),
                "padding": list(_pair(module.padding)), "dilation": list(_pair(module.dilation)),
                "ceil_mode": bool(module.ceil_mode)}
    if isinstance(module, nn.AvgPool2d):
        return {"kernel_size": list(_pair(module.kernel_size)), "stride": list(_pair(module.stride)),
                "padding": list(_pair(module.padding)), "ceil_mode": bool(module.ceil_mode),
                "count_include_pad": bool(module.count_include_pad), "divisor_override": module.divisor_override}
    if isinstance(module, nn.AdaptiveAvgPool2d):
        size = module.output_size
        return {"output_size": [size, size] if isinstance(size, int) else [None if v is None else int(v)
                                                                            for v in size]}
    if isinstance(module, nn.BatchNorm2d):
        return {"eps": float(module.eps)}
    return {}


def _compare(answer: dict, result: float, activation: float, scale: float) -> dict:
    difference = abs(result - activation)
    relative = difference / scale if scale > 0 else (0.0 if difference == 0 else math.inf)
    answer.update(result=result, activation=activation, difference=difference, relative=relative,
                  tolerance=TOLERANCE, within=bool(relative <= TOLERANCE))
    return answer


def explain_conv(module, x: np.ndarray, activation: float, k: int, y: int, x_: int) -> dict:
    """Output pixel (k, y, x_) of Conv2d ``module`` whose input (one image, (C, H, W)) was ``x``."""
    w = module.weight.array
    kout, cg, r, s = w.shape
    (sh, sw), (dh, dw), g = _pair(module.stride), _pair(module.dilation), module.groups
    (top, _), (left, _) = conv_padding(module)
    first = (k // (kout // g)) * cg  # the first input channel of output channel k's group
    patch = np.zeros((cg, r, s), dtype=np.float64)
    inside = np.zeros((r, s), dtype=bool)
    for i in range(r):  # the textbook's indices, as reference.taps writes them
        ih = y * sh - top + i * dh
        for j in range(s):
            iw = x_ * sw - left + j * dw
            if 0 <= ih < x.shape[1] and 0 <= iw < x.shape[2]:
                patch[:, i, j] = x[first:first + cg, ih, iw]
                inside[i, j] = True
    kernel = w[k].astype(np.float64)
    one = ConvGeometry.of((1, cg, r, s), (1, cg, r, s))  # the receptive field alone: a 1x1 output
    total = float(reference.forward(one, patch[None], kernel[None])[0, 0, 0, 0])
    products = patch * kernel
    bias = None if module.bias is None else float(module.bias.array[k])
    answer = {"kind": "conv", "channel": k, "y": y, "x": x_, **geometry(module),
              "input_channels": list(range(first, first + cg)), "origin": [y * sh - top, x_ * sw - left],
              "in_image": inside.tolist(), "patch": patch.tolist(), "kernel": kernel.tolist(),
              "products": products.tolist(), "sum": total, "bias": bias}
    scale = float(np.abs(products).sum()) + abs(bias or 0.0)
    return _compare(answer, total + (bias or 0.0), activation, scale)


def _window(plane: np.ndarray, starts: tuple[int, int], size: tuple[int, int], step: tuple[int, int]):
    """The values of a pooling window (None outside the plane) as nested lists."""
    (y0, x0), (kh, kw), (dh, dw) = starts, size, step
    h, w = plane.shape
    return [[float(plane[y0 + i * dh, x0 + j * dw]) if 0 <= y0 + i * dh < h and 0 <= x0 + j * dw < w else None
             for j in range(kw)] for i in range(kh)]


def explain_maxpool(module, x: np.ndarray, activation: float, c: int, y: int, x_: int) -> dict:
    (kh, kw), (sh, sw), (ph, pw) = _pair(module.kernel_size), _pair(module.stride), _pair(module.padding)
    dil = _pair(module.dilation)
    window = _window(x[c], (y * sh - ph, x_ * sw - pw), (kh, kw), dil)
    best, winner = None, None
    for i, row in enumerate(window):  # the first largest value wins, the first NaN beats everything (PyTorch's)
        for j, v in enumerate(row):
            if v is not None and (best is None or (not math.isnan(best) and (v > best or math.isnan(v)))):
                best, winner = v, [i, j]
    answer = {"kind": "maxpool", "channel": c, "y": y, "x": x_, **geometry(module),
              "origin": [y * sh - ph, x_ * sw - pw], "window": window, "winner": winner}
    result = best if best is not None else -math.inf
    return _compare(answer, result, activation, abs(result) if math.isfinite(result) else 0.0)


def _avg_divisor(module, y0: int, x0: int, h: int, w: int) -> int:
    """PyTorch's divisor of an AvgPool2d window starting at (y0, x0) (padding start, ceil_mode windows clipped)."""
    (kh, kw), (ph, pw) = _pair(module.kernel_size), _pair(module.padding)
    if module.divisor_override:
        return int(module.divisor_override)
    y1, x1 = min(y0 + kh, h + ph), min(x0 + kw, w + pw)
    if module.count_include_pad:
        return (y1 - y0) * (x1 - x0)
    return (min(y1, h) - max(y0, 0)) * (min(x1, w) - max(x0, 0))


def explain_avgpool(module, x: np.ndarray, activation: float, c: int, y: int, x_: int) -> dict:
    h, w = x.shape[1:]
    if isinstance(module, nn.AdaptiveAvgPool2d):
        size = module.output_size
        oh, ow = (size, size) if isinstance(size, int) else (size[0] or h, size[1] or w)
        ys, ye = (y * h) // oh, -(-((y + 1) * h) // oh)
        xs, xe = (x_ * w) // ow, -(-((x_ + 1) * w) // ow)
        origin, size, divisor = (ys, xs), (ye - ys, xe - xs), (ye - ys) * (xe - xs)
    else:
        (kh, kw), (sh, sw), (ph, pw) = _pair(module.kernel_size), _pair(module.stride), _pair(module.padding)
        origin, size = (y * sh - ph, x_ * sw - pw), (kh, kw)
        divisor = _avg_divisor(module, *origin, h, w)
    window = _window(x[c], origin, size, (1, 1))
    values = [v for row in window for v in row if v is not None]
    total = math.fsum(values)
    answer = {"kind": "avgpool", "channel": c, "y": y, "x": x_, **geometry(module), "origin": list(origin),
              "window": window, "winner": None, "sum": total, "divisor": divisor}
    return _compare(answer, total / divisor, activation, math.fsum(abs(v) for v in values) / divisor)


def batchnorm_statistics(module, x: np.ndarray) -> dict:
    """mean, var (per channel, float64 lists), eps, gamma, beta of BatchNorm2d ``module`` in eval mode; a layer
    without running statistics normalises with the image's own (biased) statistics, as it does in eval mode."""
    if module.running_mean is not None:
        mean, var = module.running_mean.array.astype(np.float64), module.running_var.array.astype(np.float64)
    else:
        mean, var = x.astype(np.float64).mean(axis=(1, 2)), x.astype(np.float64).var(axis=(1, 2))
    c = x.shape[0]
    gamma = module.weight.array.astype(np.float64) if module.weight is not None else np.ones(c)
    beta = module.bias.array.astype(np.float64) if module.bias is not None else np.zeros(c)
    return {"mean": mean.tolist(), "var": var.tolist(), "eps": float(module.eps), "gamma": gamma.tolist(),
            "beta": beta.tolist()}


def explain_batchnorm(module, x: np.ndarray, activation: float, c: int, y: int, x_: int) -> dict:
    stats = batchnorm_statistics(module, x)
    value, mean, var = float(x[c, y, x_]), stats["mean"][c], stats["var"][c]
    eps, gamma, beta = stats["eps"], stats["gamma"][c], stats["beta"][c]
    std = math.sqrt(var + eps)
    normalised = (value - mean) / std
    answer = {"kind": "batchnorm", "channel": c, "y": y, "x": x_, "value": value, "mean": mean, "var": var,
              "eps": eps, "std": std, "normalized": normalised, "gamma": gamma, "beta": beta}
    return _compare(answer, normalised * gamma + beta, activation, abs(normalised * gamma) + abs(beta))


def explain_pixel(module, x: np.ndarray, output: np.ndarray, c: int, y: int, x_: int) -> dict:
    """The explanation of output pixel (c, y, x_) of ``module``, whose input was ``x`` and output ``output`` (one
    image each, batch dimension dropped)."""
    activation = float(output[c, y, x_])
    if isinstance(module, nn.Conv2d):
        return explain_conv(module, x, activation, c, y, x_)
    if isinstance(module, nn.MaxPool2d):
        return explain_maxpool(module, x, activation, c, y, x_)
    if isinstance(module, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
        return explain_avgpool(module, x, activation, c, y, x_)
    if isinstance(module, nn.BatchNorm2d):
        return explain_batchnorm(module, x, activation, c, y, x_)
    raise TypeError(f"explain_pixel: no explanation for {type(module).__name__} layers")

"""Where the model looks: the saliency map and Grad-CAM of one class score, by numcnn's own autograd.

- Saliency (Simonyan et al. 2014): |d score_k / d pixel| for every input pixel (pixels in [0, 1], before the
  normalization, which is part of the graph), the largest over the channels, divided by its maximum.
- Grad-CAM (Selvaraju et al. 2017) on the last Conv2d the forward pass calls: with A (K, h, w) that layer's output
  and G = d score_k / d A, each map's weight is the spatial mean of its gradient, alpha_k = mean(G_k); the map is
  ReLU(sum_k alpha_k A_k), resized to the input's size bilinearly (PyTorch's ``interpolate(mode="bilinear",
  align_corners=False)``) and divided by its maximum.

The score is the model's output for class k before any softmax (the logit). A map that is zero everywhere stays
zero (nothing to scale).
"""

from __future__ import annotations

import numpy as np

from .. import nn
from ..autograd import Tensor


def _coordinates(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output index: the two input indices it mixes and the weight of the second (align_corners=False)."""
    src = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, src - i0


def resize_bilinear(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) -> ``size`` (H, W) by bilinear interpolation, as torch's interpolate(align_corners=False)."""
    r0, r1, fr = _coordinates(size[0], a.shape[0])
    c0, c1, fc = _coordinates(size[1], a.shape[1])
    rows = a[r0] * (1 - fr)[:, None] + a[r1] * fr[:, None]
    return rows[:, c0] * (1 - fc)[None, :] + rows[:, c1] * fc[None, :]


def _array(g) -> np.ndarray:
    return g.array if isinstance(g, Tensor) else np.asarray(g)


def _scaled(a: np.ndarray) -> np.ndarray:
    top = float(a.max()) if a.size else 0.0
    return (a / top if top > 0 else np.zeros_like(a)).astype(np.float32)


def gradcam_map(activation: np.ndarray, gradient: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Grad-CAM from one image's conv output A (K, h, w) and d score / d A (same shape), float32 (H, W) in [0, 1]."""
    alpha = gradient.astype(np.float64).mean(axis=(1, 2))
    cam = np.maximum(np.tensordot(alpha, activation.astype(np.float64), axes=1), 0.0)
    return _scaled(resize_bilinear(cam, size))


def saliency_maps(model, recorder, pixels: np.ndarray, mean: np.ndarray, std: np.ndarray, k: int) -> dict:
    """``{"saliency", "gradcam", "gradcam_layer"}`` for class ``k`` and one image ``pixels`` (C, H, W) float32 in
    [0, 1]; ``mean``, ``std``: float32 (C, 1, 1), the run's normalization. The model's parameters should not
    require gradients (the explorer turns them off: nothing is accumulated into them)."""
    p = Tensor(pixels[None], requires_grad=True)
    with recorder.record() as rec:
        out = model((p - mean) / std)
    convs = [c for c in rec.calls if isinstance(c.module, nn.Conv2d) and c.tensor.requires_grad]
    last = convs[-1] if convs else None
    if last is not None:
        last.tensor.retain_grad()
    out[0, k].backward()
    grad = _array(p.grad)[0] if p.grad is not None else np.zeros_like(pixels)  # None: the output does not depend on it
    saliency = _scaled(np.abs(grad).max(axis=0))
    gradcam = None
    if last is not None and last.tensor.grad is not None:
        gradcam = gradcam_map(last.tensor.array[0], _array(last.tensor.grad)[0], pixels.shape[1:])
    return {"saliency": saliency, "gradcam": gradcam, "gradcam_layer": last.name if gradcam is not None else None}

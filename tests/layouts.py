"""Array layouts the compiled kernels must handle, shared by their tests: NCHW, channel-major (a conv output's
(C, N, H, W) buffer seen as NCHW) and strided (dense in no order)."""

import numpy as np


def channel_major(a: np.ndarray) -> np.ndarray:
    """``a``'s values in a (C, N, H, W) buffer, seen as (N, C, H, W)."""
    return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


def in_layout(a: np.ndarray, layout: str) -> np.ndarray:
    """``a``'s values in ``layout``: "nchw" (as given), "channel_major" (4-D only) or "strided" (a slice of a
    wider array)."""
    if layout == "channel_major" and a.ndim == 4:
        return channel_major(a)
    if layout == "strided":
        wide = np.zeros(a.shape[:-1] + (a.shape[-1] * 2 + 1,), dtype=a.dtype)
        wide[..., : 2 * a.shape[-1] : 2] = a
        return wide[..., : 2 * a.shape[-1] : 2]
    return a

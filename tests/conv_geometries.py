"""A hypothesis strategy of convolution geometries and their drawn operands, shared by the compiled convolutions'
tests: groups, channels that cross the blocks of four output channels, kernels up to 4x4, dilation, padding
(asymmetric), odd small maps."""

import numpy as np
from hypothesis import strategies as st

from numcnn.kernels import conv as K


@st.composite
def conv_geometries(draw, strides=((1, 1),), max_pad: int = 4, max_hw: int = 9):
    """A ``ConvGeometry`` with a stride drawn from ``strides``, each margin 0..``max_pad`` and maps up to ``max_hw``
    (at least what the dilated kernel needs once padded)."""
    groups = draw(st.integers(1, 3))
    cg, kg = draw(st.integers(1, 3)), draw(st.integers(1, 9))  # kg crosses the blocks of four output channels
    r, s = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.sampled_from(strides))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pads = [draw(st.integers(0, max_pad)) for _ in range(4)]
    h = draw(st.integers(max(1, dh * (r - 1) + 1 - pads[0] - pads[1]), max_hw))
    w = draw(st.integers(max(1, dw * (s - 1) + 1 - pads[2] - pads[3]), max_hw))
    n = draw(st.integers(1, 3))
    return K.ConvGeometry.of((n, cg * groups, h, w), (kg * groups, cg, r, s), (sh, sw),
                             ((pads[0], pads[1]), (pads[2], pads[3])), (dh, dw), groups)


def operands(geo, seed: int, crop: bool):
    """x, w, b and dy (float64 normals) for ``geo``; with ``crop`` (and an output larger than one row and column)
    dy loses its last row and column, as a transposed convolution's output gradient does."""
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal(geo.x_shape), rng.standard_normal(geo.w_shape), rng.standard_normal(geo.k)
    dy = rng.standard_normal(geo.y_shape)
    if crop and min(geo.out_hw) > 1:
        dy = dy[:, :, :-1, :-1]
    return x, w, b, dy

"""2-D convolution, read in the order the data flows (shapes are PyTorch's, NCHW):

1. ``geometry.py``   the shape arithmetic of a convolution, checked once (:class:`ConvGeometry`)
2. ``reference.py``  the textbook's seven loops: the definition every other algorithm is tested against
3. ``unfold.py``     im2col and col2im: every receptive field as a column, and back
4. ``gemm.py``       the convolution as three matrix products over the whole batch
5. ``chunked.py``    the same products over cache-sized batch chunks on several threads (what "im2col" runs)
6. ``grid.py``       stride-1 grad-input on the padded grid (col2im as R*S long slice-adds)
7. ``rowshift.py``   stride-1 passes as row copies and squarer GEMMs on a row grid
8. ``depthwise.py``  one filter per channel, compiled (Numba): each output row a sum of shifted input rows
9. ``direct.py``     stride-1 direct convolution, compiled (Numba): every tap a constant offset on a padded grid
10. ``direct_weight.py`` its grad-weight, on the same grid
11. ``direct_strided.py`` stride > 1: the same kernels on the input's phases, and grad-input on dx's phases
12. ``dispatch.py``  the public entry points: which algorithm runs each pass (a fixed rule of the shapes)
13. ``autotune.py``  opt-in: time the candidates once per layer shape, remember the fastest
14. ``transposed.py`` the transposed convolution as a convolution's passes swapped

A convolution with G groups splits the C input and K output channels into G equal groups; output channel k sees
only the C/G input channels of its group, so w has shape (K, C/G, R, S). Depthwise is G == C. Every kernel keeps
the dtype of its main input (float32 stays float32).
"""

from __future__ import annotations

from . import autotune
from .chunked import Columns
from .dispatch import (
    ALGORITHMS,
    ALIASES,
    PASSES,
    Plan,
    backward_input,
    backward_weight,
    canonical,
    choose,
    conv1d_backward_input,
    conv1d_backward_weight,
    conv1d_forward,
    conv2d_backward_bias,
    conv2d_backward_input,
    conv2d_backward_weight,
    conv2d_forward,
    forward,
    plan,
)
from .geometry import ConvGeometry, GeometryError, conv_output_size, same_padding, transposed_geometry
from .transposed import conv_transpose2d_backward_input, conv_transpose2d_backward_weight, conv_transpose2d_forward
from .unfold import col2im, im2col

__all__ = [
    "ALGORITHMS", "ALIASES", "Columns", "PASSES", "ConvGeometry", "GeometryError", "Plan", "autotune", "backward_input",
    "backward_weight", "canonical", "choose", "col2im", "conv1d_backward_input", "conv1d_backward_weight",
    "conv1d_forward", "conv2d_backward_bias", "conv2d_backward_input",
    "conv2d_backward_weight", "conv2d_forward", "conv_output_size", "conv_transpose2d_backward_input",
    "conv_transpose2d_backward_weight", "conv_transpose2d_forward", "forward", "im2col", "plan", "same_padding",
    "transposed_geometry",
]

"""ConvGeometry (the one place a convolution's shapes are checked and its sizes derived), the per-pass plans of
the dispatch, and the 1-d entry points, against hand-computed values and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
from numcnn.kernels import conv as K
from numcnn.kernels.conv import ConvGeometry, GeometryError, Plan


def test_geometry_derives_the_textbook_sizes():
    geo = ConvGeometry.of((8, 6, 14, 13), (4, 3, 5, 3), (2, 1), ((2, 1), (1, 1)), (1, 2), 2)
    # Ho = (14 + 3 - 1*(5-1) - 1) // 2 + 1 = 7; Wo = (13 + 2 - 2*(3-1) - 1) // 1 + 1 = 11
    assert geo.out_hw == (7, 11) and geo.padded_hw == (17, 15)
    assert (geo.n, geo.c, geo.k, geo.cg, geo.kg, geo.r, geo.s) == (8, 6, 4, 3, 2, 5, 3)
    assert geo.taps == 15 and geo.rows == 90 and geo.y_shape == (8, 4, 7, 11)
    assert geo.with_batch(1).y_shape == (1, 4, 7, 11)
    with pytest.raises(AttributeError):
        geo.groups = 3  # frozen


@pytest.mark.parametrize("x_shape, w_shape, kwargs, message", [
    ((2, 4, 5, 5), (2, 3, 3, 3), {"groups": 2}, "expected input with 6 channels (weight (2, 3, 3, 3), groups=2), "
                                                 "got shape (2, 4, 5, 5)"),
    ((2, 6, 5, 5), (3, 3, 3, 3), {"groups": 2}, "out_channels 3 must be divisible by groups 2"),
    ((2, 3, 2, 5), (4, 3, 3, 3), {}, "kernel size (3, 3) (dilated) is larger than the padded input size (2, 5)"),
    ((2, 3, 5, 5), (4, 3, 3, 3), {"dilation": (3, 1)}, "kernel size (7, 3) (dilated)"),
    ((2, 3, 5), (4, 3, 3, 3), {}, "expected 4-D x"),
    ((2, 3, 5, 5), (4, 3, 3, 3), {"groups": 0}, "groups must be a positive int, got 0"),
])
def test_geometry_refuses_what_is_not_a_convolution(x_shape, w_shape, kwargs, message):
    with pytest.raises(GeometryError) as info:
        ConvGeometry.of(x_shape, w_shape, **kwargs)
    assert message in str(info.value) and str(info.value).startswith("conv2d: ")
    assert str(info.value.named("Conv2d(3, 4)")) == f"Conv2d(3, 4): {info.value.reason}"


def test_transposed_geometry_is_the_adjoint_conv():
    # conv_transpose2d of x (2, 6, 5, 5) with w (6, 2, 3, 3), stride 2, padding 1, output_padding 1, groups 2:
    # Hout = (5-1)*2 - 2 + 2 + 1 + 1 = 10; the adjoint conv2d maps (2, 4, 10, 10) back to (2, 6, 5, 5).
    geo = K.transposed_geometry((2, 6, 5, 5), (6, 2, 3, 3), (2, 2), (1, 1), (1, 1), (1, 1), 2)
    assert geo.x_shape == (2, 4, 10, 10) and geo.out_hw == (5, 5)
    with pytest.raises(GeometryError, match="conv_transpose2d: expected input with 6 channels"):
        K.transposed_geometry((2, 5, 5, 5), (6, 2, 3, 3), (2, 2), (1, 1), (1, 1), (1, 1), 2)


def test_plans_name_what_runs():
    same = ((1, 1), (1, 1))
    s1 = ConvGeometry.of((8, 32, 14, 14), (32, 32, 3, 3), (1, 1), same)
    s2 = ConvGeometry.of((8, 32, 14, 14), (32, 32, 3, 3), (2, 2), same)
    assert K.plan(s1, "im2col") == Plan("im2col", "grid", "im2col")
    assert K.plan(s2, "im2col") == Plan("im2col", "col2im", "im2col")
    with numcnn.runtime.scoped(backend="numpy"):  # the NumPy kernels' rule (kernels/conv/dispatch.py: choose)
        assert K.plan(s1, "auto") == Plan("rowshift", "rowshift", "im2col")
    with numcnn.runtime.scoped(backend="numba"):  # compiled: direct_passes takes all three
        assert K.plan(s1, "auto") == Plan("direct", "direct", "direct")
    assert K.plan(s1, "naive") == K.plan(s1, "reference") == Plan("reference", "reference", "reference")
    assert K.plan(s2, "gemm") == Plan("gemm", "gemm", "gemm")
    with pytest.raises(ValueError, match="'rowshift' needs stride 1"):
        K.plan(s2, "rowshift")


def test_every_plan_computes_the_reference_numbers():
    """Each algorithm by name against the seven loops (float64), including a transposed conv's cropped dy."""
    rng = np.random.default_rng(0)
    geo = ConvGeometry.of((3, 4, 7, 6), (6, 2, 3, 2), (1, 1), ((1, 1), (0, 1)), (2, 1), 2)
    x, w = rng.standard_normal(geo.x_shape), rng.standard_normal(geo.w_shape)
    dy = rng.standard_normal(geo.y_shape)
    ref = (K.forward(geo, x, w, None, "reference"), K.backward_input(geo, dy, w, "reference"),
           K.backward_weight(geo, dy, x, "reference"))
    for algorithm in ("gemm", "im2col", "rowshift", "auto"):
        got = (K.forward(geo, x, w, None, algorithm), K.backward_input(geo, dy, w, algorithm),
               K.backward_weight(geo, dy, x, algorithm))
        for a, b in zip(got, ref, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=algorithm)
    cropped = dy[:, :, :-1, :-1]  # output positions a transposed conv does not produce: zero gradient there
    padded = np.zeros_like(dy)
    padded[:, :, :-1, :-1] = cropped
    for algorithm in ("reference", "gemm", "im2col", "rowshift"):
        np.testing.assert_allclose(K.backward_input(geo, cropped, w, algorithm), ref_dx := K.backward_input(
            geo, padded, w, "reference"), atol=1e-12, err_msg=algorithm)
        np.testing.assert_allclose(K.backward_weight(geo, cropped, x, algorithm),
                                   K.backward_weight(geo, padded, x, "reference"), atol=1e-12, err_msg=algorithm)
    assert ref_dx.shape == geo.x_shape


def test_conv1d_kernels_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((4, 6, 23), (8, 3, 5), (8,)))
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv1d(xt, wt, bt, stride=2, padding=2, dilation=2, groups=2)
    dy = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.from_numpy(dy))
    args = (2, (2, 2), 2, 2)
    np.testing.assert_allclose(K.conv1d_forward(x, w, b, *args), yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(K.conv1d_backward_input(dy, w, x.shape, *args), xt.grad.numpy(), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(K.conv1d_backward_weight(dy, x, w.shape, *args), wt.grad.numpy(), rtol=1e-4,
                               atol=1e-4)

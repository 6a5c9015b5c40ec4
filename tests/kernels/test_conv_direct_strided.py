"""The compiled direct convolution for stride > 1 (kernels/conv/direct_strided.py): forward, grad-input and grad-weight
against the seven-loop reference in float64 on drawn shapes (strides 2 and 3, stride past the kernel, 1x1 kernels,
asymmetric padding, dilation, groups, batch 1, odd and tiny maps, non-contiguous inputs, cropped output gradients),
the phase layout written in full over stale NaN, against PyTorch in float32, and the same bits for 1, 2 and 3
threads."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("numba")

from conv_geometries import conv_geometries, operands  # noqa: E402
from layouts import channel_major, in_layout  # noqa: E402
from numcnn.kernels import conv as K  # noqa: E402
from numcnn.kernels.conv import direct_strided, reference  # noqa: E402
from numcnn.kernels.runtime import runtime  # noqa: E402
from thread_bits import assert_same_bits_for_1_2_and_3_threads  # noqa: E402

# strides 2 and 3, one axis only, and 4 (past any kernel drawn); margins up to 3, maps up to 11
GEOMETRIES = conv_geometries(((2, 2), (3, 3), (2, 1), (1, 3), (2, 3), (4, 4)), max_pad=3, max_hw=11)


def _check_against_reference(geo, seed, layout, crop):
    x, w, b, dy = operands(geo, seed, crop)
    y_ref = reference.forward(geo, x, w) + b[:, None, None]
    dw_ref = reference.backward_weight(geo, dy, x)
    dx_ref = reference.backward_input(geo, dy, w)
    with runtime.scoped(backend="numba", memory_budget=4096):
        first = (direct_strided.forward(geo, in_layout(x, layout), w, b),
                 direct_strided.backward_weight(geo, in_layout(dy, layout), in_layout(x, layout)),
                 direct_strided.backward_input(geo, in_layout(dy, layout), w))
        for p in runtime.pool.arrays():
            p.fill(np.nan)  # stale pooled memory (phases, the dy grid, dx's phases) must not leak into a second call
        y = direct_strided.forward(geo, in_layout(x, layout), w, b)
        dw = direct_strided.backward_weight(geo, in_layout(dy, layout), in_layout(x, layout))
        dx = direct_strided.backward_input(geo, in_layout(dy, layout), w)
    for got, ref, again in ((y, y_ref, first[0]), (dw, dw_ref, first[1]), (dx, dx_ref, first[2])):
        assert got.dtype == np.float64 and got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)
        np.testing.assert_array_equal(got, again)


@settings(max_examples=80, deadline=None)
@given(geo=GEOMETRIES, seed=st.integers(0, 2**16), layout=st.sampled_from(["nchw", "channel_major", "strided"]),
       crop=st.booleans())
def test_strided_direct_matches_the_seven_loops_float64(geo, seed, layout, crop):
    _check_against_reference(geo, seed, layout, crop)


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation, groups", [
    ((2, 4, 28, 28), (6, 4, 3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), 1),  # resnet's stage 2, 3x3 (fewer channels)
    ((1, 16, 28, 28), (8, 16, 1, 1), (2, 2), ((0, 0), (0, 0)), (1, 1), 1),  # resnet's downsample, batch 1
    ((3, 8, 14, 14), (10, 8, 1, 1), (2, 2), ((0, 0), (0, 0)), (1, 1), 1),
    ((1, 3, 7, 9), (5, 3, 2, 2), (3, 3), ((0, 0), (0, 0)), (1, 1), 1),  # stride past the kernel: columns unread
    ((2, 4, 5, 5), (6, 4, 1, 1), (3, 2), ((1, 0), (0, 2)), (1, 1), 1),  # 1x1 reading padding, asymmetric
    ((2, 6, 13, 11), (9, 2, 3, 3), (2, 3), ((2, 0), (1, 3)), (2, 2), 3),  # dilation and groups
    ((1, 1, 1, 1), (3, 1, 1, 1), (2, 2), ((0, 0), (0, 0)), (1, 1), 1),  # one pixel
    ((1, 1, 2, 2), (2, 1, 3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), 1),  # tiny map, padding on every side
    ((2, 2, 9, 9), (4, 2, 3, 3), (2, 2), ((0, 0), (0, 0)), (4, 4), 1),  # dilation a multiple of the stride
    ((2, 2, 8, 30), (4, 2, 3, 5), (1, 2), ((1, 1), (2, 2)), (1, 1), 1),  # stride on one axis only
])
def test_strided_direct_named_layers_float64(x_shape, w_shape, stride, padding, dilation, groups):
    geo = K.ConvGeometry.of(x_shape, w_shape, stride, padding, dilation, groups)
    for layout in ("nchw", "strided"):
        _check_against_reference(geo, sum(x_shape), layout, crop=False)


@settings(max_examples=20, deadline=None)
@given(geo=GEOMETRIES, seed=st.integers(0, 99))
def test_the_phase_layout_is_written_in_full(geo, seed):
    """``_pad_phases`` writes every number of its output (stale NaN in the buffer must not survive): each phase is
    xpad[a::sh, b::sw] cut to the rows and columns the outputs read, a zero row under it, zeros past the end."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(geo.x_shape)
    ph = direct_strided._phases(geo)
    out = np.full((geo.n, geo.c * ph.plane + 5), np.nan)
    rows, cols = direct_strided._phase_index(ph)
    with runtime.scoped(backend="numba"):
        direct_strided._pad_phases(in_layout(x, "strided"), geo.top, geo.left, *geo.padded_hw, ph.sh, ph.sw, rows,
                                   cols, ph.hq, ph.pitch, out, 0, geo.n)
    (top, bottom), (left, right) = geo.padding
    xpad = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    big = np.zeros((*xpad.shape[:2], xpad.shape[2] + 8 * ph.sh, xpad.shape[3] + 8 * ph.sw))
    big[:, :, : xpad.shape[2], : xpad.shape[3]] = xpad
    want = np.zeros_like(out)
    planes = want[:, : geo.c * ph.plane].reshape(geo.n, geo.c, len(ph.rows), len(ph.cols), ph.hq + 1, ph.pitch)
    for i, a in enumerate(ph.rows):
        for j, b in enumerate(ph.cols):
            planes[:, :, i, j, : ph.hq] = big[:, :, a::ph.sh, b::ph.sw][:, :, : ph.hq, : ph.pitch]
    np.testing.assert_array_equal(out, want)


def test_offsets_of_the_worked_example():
    """The module docstring's table: 3x3, stride 2, padding 1 on 6x6."""
    geo = K.ConvGeometry.of((1, 1, 6, 6), (1, 1, 3, 3), (2, 2), ((1, 1), (1, 1)))
    ph = direct_strided._phases(geo)
    assert (ph.hq, ph.pitch, ph.pp, ph.plane) == (4, 4, 20, 80)
    assert ph.offsets(1, 3, 3, 1, 1).tolist() == [0, 20, 1, 40, 60, 41, 4, 24, 5]
    one = direct_strided._phases(K.ConvGeometry.of((1, 16, 28, 28), (32, 16, 1, 1), (2, 2)))
    assert (one.rows, one.cols, one.pitch, one.plane) == ((0,), (0,), 14, 15 * 14)  # x[::2, ::2] alone


RESNET = [  # (x_shape, w_shape, padding): resnet's strided layers, at stride 2
    ((4, 16, 28, 28), (32, 16, 3, 3), 1), ((3, 32, 14, 14), (64, 32, 3, 3), 1),
    ((4, 16, 28, 28), (32, 16, 1, 1), 0), ((3, 32, 14, 14), (64, 32, 1, 1), 0), ((2, 64, 32, 32), (128, 64, 3, 3), 1),
]


@pytest.mark.parametrize("x_shape, w_shape, padding", [*RESNET, ((3, 6, 15, 13), (9, 6, 5, 5), 2)])
def test_strided_direct_matches_torch_float32(x_shape, w_shape, padding):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(sum(x_shape))
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in (x_shape, w_shape, (w_shape[0],)))
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv2d(xt, wt, bt, stride=2, padding=padding)
    (yt**2).sum().backward()
    geo = K.ConvGeometry.of(x_shape, w_shape, (2, 2), ((padding,) * 2,) * 2)
    with runtime.scoped(backend="numba"):
        y = direct_strided.forward(geo, x, w, b)
        dw = direct_strided.backward_weight(geo, 2 * y, x)
        dx = direct_strided.backward_input(geo, 2 * y, w)
    assert y.dtype == np.float32 and dw.dtype == np.float32 and dx.dtype == np.float32
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(dx).max())))
    scale = max(1.0, float(np.abs(wt.grad.numpy()).max()))
    np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("x_shape, w_shape, padding", [*RESNET, ((9, 6, 15, 13), (12, 3, 3, 3), 1)])
def test_strided_direct_gives_the_same_bits_for_1_2_and_3_threads(x_shape, w_shape, padding):
    rng = np.random.default_rng(1)
    x_shape = (9, *x_shape[1:])  # an odd batch: three ranges of images, an extra zero image for grad-weight
    groups = x_shape[1] // w_shape[1]
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in (x_shape, w_shape, (w_shape[0],)))
    geo = K.ConvGeometry.of(x_shape, w_shape, (2, 2), ((padding,) * 2,) * 2, (1, 1), groups)
    dy = channel_major(rng.standard_normal(geo.y_shape).astype(np.float32))
    out = []
    for threads in (1, 2, 3):
        with runtime.scoped(backend="numba", threads=threads):
            out.append((direct_strided.forward(geo, x, w, b), direct_strided.backward_weight(geo, dy, x),
                        direct_strided.backward_input(geo, dy, w)))
    for other in out[1:]:
        for a, c in zip(out[0], other, strict=True):
            np.testing.assert_array_equal(a, c)


_BITS = textwrap.dedent("""
    import numpy as np
    from numcnn.kernels.conv import direct_strided
    from numcnn.kernels.conv.geometry import ConvGeometry
    from numcnn.kernels.runtime import runtime
    from thread_bits import digest
    rng = np.random.default_rng(3)
    layers = [ConvGeometry.of((7, 16, 28, 28), (32, 16, 3, 3), (2, 2), ((1, 1), (1, 1))),
              ConvGeometry.of((5, 32, 14, 14), (64, 32, 1, 1), (2, 2))]
    data = [(g, *(rng.standard_normal(s).astype(np.float32) for s in (g.x_shape, g.w_shape, (g.k,), g.y_shape)))
            for g in layers]
    out = []
    for threads in (1, 2, 3):
        with runtime.scoped(threads=threads):
            out.append(digest(a for g, x, w, b, dy in data for a in (direct_strided.forward(g, x, w, b),
                                                                       direct_strided.backward_weight(g, dy, x),
                                                                       direct_strided.backward_input(g, dy, w))))
    print(" ".join(out))
""")


def test_strided_direct_same_bits_in_a_fresh_process():
    assert_same_bits_for_1_2_and_3_threads(_BITS)


def test_input_phases_of_a_3x3_stride_2_layer():
    """dx's four phases for 3x3, stride 2, padding 1 on 6x6 (output 3x3): dx row i reads padded row i + 1 = 2*oh + r.
    Odd dx rows (1, 3, 5: u = 1, 2, 3) take kernel rows 0 and 2: row 0 from dy row oh = u, row 2 from oh = u - 1,
    that is 1 and 0 rows past the phase's output row u' = u - 1 on the grid. Even dx rows (0, 2, 4: u = 0, 1, 2) take
    kernel row 1 alone, from dy row u. No read lands above dy, so the grid has no top or left margin."""
    top, left, grid, phases = direct_strided._input_layout((2, 2), 3, 3, 1, 1, 1, 1, (6, 6), (3, 3))
    assert (top, left, grid.pitch) == (0, 0, 4)
    by_start = {(p.i0, p.j0): p for p in phases}
    assert sorted(by_start) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    odd = by_start[(1, 1)]
    assert (odd.hu, odd.wv, odd.rs, odd.roffs, odd.ss, odd.coffs) == (3, 3, (0, 2), (1, 0), (0, 2), (1, 0))
    even = by_start[(0, 0)]
    assert (even.hu, even.wv, even.rs, even.roffs, even.ss, even.coffs) == (3, 3, (1,), (0,), (1,), (0,))


def test_strided_direct_refuses_stride_1():
    geo = K.ConvGeometry.of((1, 1, 5, 5), (1, 1, 3, 3))
    assert not direct_strided.supported(geo)
    assert direct_strided.supported(K.ConvGeometry.of((1, 1, 5, 5), (1, 1, 3, 3), (1, 2)))
    with pytest.raises(ValueError, match="stride > 1"):
        direct_strided.forward(geo, np.zeros(geo.x_shape), np.zeros(geo.w_shape), None)

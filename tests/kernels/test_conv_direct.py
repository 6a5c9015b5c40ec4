"""The compiled direct convolution (kernels/conv/direct.py): its three passes against the seven-loop reference in
float64 on drawn odd shapes (batch 1, 1x1 maps, padding past the kernel's reach, dilation, groups, non-contiguous
inputs, cropped output gradients, stale pooled memory full of NaN), against PyTorch in float32, the same bits for
1, 2 and 3 kernel threads, and where "auto" uses it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("numba")

from conv_geometries import conv_geometries, operands  # noqa: E402
from layouts import channel_major, in_layout  # noqa: E402
from numcnn.kernels import conv as K  # noqa: E402
from numcnn.kernels.conv import direct, direct_weight, reference  # noqa: E402
from numcnn.kernels.runtime import runtime  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(geo=conv_geometries(), seed=st.integers(0, 2**16), layout=st.sampled_from(["nchw", "channel_major", "strided"]),
       crop=st.booleans())
def test_direct_matches_the_seven_loops_float64(geo, seed, layout, crop):
    x, w, b, dy = operands(geo, seed, crop)
    y_ref = reference.forward(geo, x, w) + b[:, None, None]
    dx_ref = reference.backward_input(geo, dy, w)
    dw_ref = reference.backward_weight(geo, dy, x)
    with runtime.scoped(backend="numba", memory_budget=4096):
        for p in runtime.pool.arrays():
            p.fill(np.nan)  # stale pooled memory must not leak into the padded planes, grids or accumulators
        y = direct.forward(geo, in_layout(x, layout), w, b)
        dx = direct.backward_input(geo, in_layout(dy, layout), w)
        dw = direct_weight.backward_weight(geo, in_layout(dy, layout), in_layout(x, layout))
    for got, ref in ((y, y_ref), (dx, dx_ref), (dw, dw_ref)):
        assert got.dtype == np.float64 and got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("x_shape, w_shape, padding, dilation, groups", [
    ((1, 3, 1, 1), (5, 3, 1, 1), 0, 1, 1),  # one output: a tile reaching past the map (and the planes)
    ((2, 2, 3, 3), (6, 2, 3, 3), 1, 1, 1),  # 15 grid positions, under a vector
    ((1, 1, 4, 8), (4, 1, 1, 1), 0, 1, 1),  # 32 positions: exactly one tile
    ((2, 1, 5, 7), (4, 1, 1, 1), 0, 1, 1),  # 35 positions: the last tile moved back over the first
    ((2, 2, 5, 7), (7, 2, 3, 3), 1, 1, 1),  # K = 7: a block of four with one zero filter
    ((1, 4, 7, 7), (10, 2, 3, 3), 1, 1, 2),  # groups; pitch 8 on 7x7: a vector spans three rows
    ((1, 2, 3, 40), (5, 2, 3, 3), 1, 1, 1),  # rows wider than a tile
    ((2, 3, 9, 11), (6, 3, 3, 2), 2, 2, 1),  # dilation
    ((3, 1, 28, 28), (16, 1, 5, 5), 2, 1, 1), ((1, 16, 14, 14), (32, 16, 5, 5), 2, 1, 1),
    ((2, 64, 7, 7), (64, 64, 3, 3), 1, 1, 1), ((2, 6, 14, 14), (16, 6, 5, 5), 0, 1, 1),
])
def test_direct_tiles_on_odd_shapes_float64(x_shape, w_shape, padding, dilation, groups):
    """The forward's tiles (four channels x ``TILE`` positions, the last one moved back, written out a row's run
    at a time) at the edges: maps smaller than a vector or a tile, exactly a tile, K not a multiple of four, rows
    wider than a tile, several rows per vector; against the seven loops, all three passes."""
    geo = K.ConvGeometry.of(x_shape, w_shape, (1, 1), ((padding,) * 2,) * 2, (dilation,) * 2, groups)
    rng = np.random.default_rng(sum(x_shape) + sum(w_shape))
    x, w, b, dy = (rng.standard_normal(s) for s in (geo.x_shape, geo.w_shape, (geo.k,), geo.y_shape))
    with runtime.scoped(backend="numba"):
        for p in runtime.pool.arrays():
            p.fill(np.nan)
        got = direct.forward(geo, x, w, b), direct.backward_input(geo, dy, w), direct_weight.backward_weight(geo, dy, x)
    want = (reference.forward(geo, x, w) + b[:, None, None], reference.backward_input(geo, dy, w),
            reference.backward_weight(geo, dy, x))
    for g, r in zip(got, want, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("x_shape, w_shape, padding, dilation, groups", [
    ((3, 16, 14, 14), (32, 16, 5, 5), 2, 1, 1),  # convnet's second layer (grad-input: 16 channels of 800 taps)
    ((2, 32, 9, 9), (32, 16, 3, 3), 1, 1, 2),  # groups of sixteen
    ((1, 8, 1, 1), (8, 8, 1, 1), 0, 1, 1),  # one output: a tile past the map
    ((2, 3, 3, 40), (16, 3, 3, 3), 1, 2, 1),  # rows wider than a tile, dilation
    ((2, 4, 5, 7), (24, 4, 3, 3), (2, 0), 1, 1),  # 35 positions: the last tile moved back
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_eight_channel_tiles_give_the_four_channel_bits(x_shape, w_shape, padding, dilation, groups, dtype,
                                                        monkeypatch):
    """``_correlate8`` (eight output channels per tile, for layers of 256 or more taps) sums every output in the
    same order as ``_correlate``: forward and grad-input give the same bits both ways, and match the seven loops."""
    pad = padding if isinstance(padding, tuple) else (padding, padding)
    geo = K.ConvGeometry.of(x_shape, w_shape, (1, 1), ((pad[0],) * 2, (pad[1],) * 2), (dilation,) * 2, groups)
    rng = np.random.default_rng(sum(x_shape))
    x, w, b, dy = (rng.standard_normal(s).astype(dtype) for s in (geo.x_shape, geo.w_shape, (geo.k,), geo.y_shape))
    out = {}
    with runtime.scoped(backend="numba"):
        for taps in (10**9, 1):  # four channels per tile everywhere, then eight wherever a group has 8k channels
            monkeypatch.setattr(direct, "EIGHT_TAPS", taps)
            for p in runtime.pool.arrays():
                p.fill(np.nan)
            out[taps] = direct.forward(geo, x, w, b), direct.backward_input(geo, dy, w)
    for four, eight in zip(out[10**9], out[1], strict=True):
        np.testing.assert_array_equal(four, eight)
    if dtype == np.float64:
        np.testing.assert_allclose(out[1][0], reference.forward(geo, x, w) + b[:, None, None], rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(out[1][1], reference.backward_input(geo, dy, w), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("x_shape, w_shape, padding, dilation, groups", [
    ((5, 1, 28, 28), (16, 1, 5, 5), 2, 1, 1),  # convnet's first layer
    ((3, 16, 14, 14), (32, 16, 5, 5), 2, 1, 1),  # convnet's second layer
    ((1, 1, 28, 28), (16, 1, 5, 5), 2, 1, 1),  # convnet's first layer at batch 1
    ((1, 16, 14, 14), (32, 16, 5, 5), 2, 1, 1),
    ((4, 6, 14, 14), (16, 6, 5, 5), 0, 1, 1),  # lenet5's C3
    ((2, 6, 11, 9), (9, 2, 3, 3), 1, 2, 3),
    ((1, 1, 1, 1), (3, 1, 1, 1), 0, 1, 1),
    ((2, 1, 28, 28), (16, 1, 3, 3), 1, 1, 1),  # resnet's stem
    ((3, 16, 28, 28), (16, 16, 3, 3), 1, 1, 1),  # resnet's first stage
    ((3, 32, 14, 14), (32, 32, 3, 3), 1, 1, 1),  # resnet's second stage
])
def test_direct_matches_torch_float32(x_shape, w_shape, padding, dilation, groups):
    torch = pytest.importorskip("torch")
    import numcnn
    from numcnn.nn import functional as F

    rng = np.random.default_rng(sum(x_shape))
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in (x_shape, w_shape, (w_shape[0],)))
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv2d(xt, wt, bt, padding=padding, dilation=dilation, groups=groups)
    (yt**2).sum().backward()
    tx, tw, tb = (numcnn.tensor(a, requires_grad=True) for a in (x, w, b))
    with runtime.scoped(backend="numba"):
        y = F.conv2d(tx, tw, tb, padding=padding, dilation=dilation, groups=groups, algorithm="direct")
        (y**2).sum().backward()
    assert y.numpy().dtype == np.float32 and tw.grad.numpy().dtype == np.float32
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-4, atol=1e-4)
    for ours, theirs in ((tx, xt), (tw, wt), (tb, bt)):
        scale = max(1.0, float(np.abs(theirs.grad.numpy()).max()))
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("x_shape, w_shape, padding, groups", [
    ((7, 1, 28, 28), (16, 1, 5, 5), 2, 1), ((9, 16, 14, 14), (32, 16, 5, 5), 2, 1), ((5, 6, 10, 9), (9, 2, 3, 3), 1, 3),
    ((1, 1, 28, 28), (16, 1, 5, 5), 2, 1), ((100, 1, 28, 28), (6, 1, 5, 5), 2, 1),  # batch 1; lenet5's C1
    ((7, 1, 28, 28), (16, 1, 3, 3), 1, 1), ((5, 16, 28, 28), (16, 16, 3, 3), 1, 1),  # resnet's stem and stage 1
    ((9, 32, 14, 14), (32, 32, 3, 3), 1, 1), ((5, 4, 7, 7), (10, 2, 3, 3), 1, 2), ((3, 3, 1, 1), (5, 3, 1, 1), 0, 1),
])
def test_direct_gives_the_same_bits_for_1_2_and_3_threads(x_shape, w_shape, padding, groups):
    """numcnn's own kernel threads run the compiled kernels (Numba's pool is not used): work is cut by the shapes
    and each output element is summed by one item in a fixed order, so the thread count changes no bit."""
    rng = np.random.default_rng(1)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in (x_shape, w_shape, (w_shape[0],)))
    geo = K.ConvGeometry.of(x_shape, w_shape, (1, 1), ((padding,) * 2,) * 2, (1, 1), groups)
    dy = channel_major(rng.standard_normal(geo.y_shape).astype(np.float32))
    out = []
    for threads in (1, 2, 3):
        with runtime.scoped(backend="numba", threads=threads):
            out.append((direct.forward(geo, x, w, b), direct.backward_input(geo, dy, w),
                        direct_weight.backward_weight(geo, dy, x)))
    for other in out[1:]:
        for a, c in zip(out[0], other, strict=True):
            np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("x_shape, w_shape, padding, dilation, groups", [
    ((5, 64, 7, 7), (64, 64, 3, 3), (1, 1), 1, 1),  # resnet's last stage, an odd batch: an empty slot
    ((3, 16, 4, 4), (8, 16, 3, 3), (1, 1), 1, 1),  # 25 tall positions per image against 32
    ((4, 6, 7, 7), (6, 2, 3, 3), (1, 1), 1, 3),  # groups of 2 output channels: two zero rows per group
    ((1, 3, 6, 6), (5, 3, 4, 2), (3, 1), 1, 1),  # batch 1: the second half all zeros; padding wider than the gap
    ((3, 2, 4, 4), (4, 2, 1, 1), (2, 2), 1, 1),  # padding past the kernel's reach: 8 output rows per 4 input rows
])
def test_grad_weight_on_the_tall_grid(x_shape, w_shape, padding, dilation, groups, monkeypatch):
    """Small maps take grad-weight on the tall grid (half the batch stacked per "image", the padding rows shared):
    against the seven loops and the per-image grid, over stale NaN (every number of both grids is written)."""
    top, left = padding
    geo = K.ConvGeometry.of(x_shape, w_shape, (1, 1), ((top, top), (left, left)), (dilation,) * 2, groups)
    assert direct_weight._tall(geo, geo.out_hw) is not None
    assert direct_weight._tall(geo, (geo.ho - 1, geo.wo)) is None  # a cropped dy keeps the per-image grid
    rng = np.random.default_rng(sum(x_shape))
    x, dy = rng.standard_normal(geo.x_shape), channel_major(rng.standard_normal(geo.y_shape))
    out = []
    with runtime.scoped(backend="numba"):
        for rule in (direct_weight._tall, lambda geo, dy_hw: None):
            monkeypatch.setattr(direct_weight, "_tall", rule)
            for p in runtime.pool.arrays():
                p.fill(np.nan)
            out.append(direct_weight.backward_weight(geo, dy, x))
    for dw in out:
        np.testing.assert_allclose(dw, reference.backward_weight(geo, dy, x), rtol=1e-10, atol=1e-10)


def test_the_tall_grid_only_where_it_is_not_longer():
    """The rule of ``direct_weight._tall``: 3x3 'same' on 7x7 (64 grid positions per image either way), not 3x3 or
    5x5 on 14x14 (240 or 256 against 224), 28x28 maps, or negative padding."""
    def tall(x_shape, w_shape, pad):
        geo = K.ConvGeometry.of(x_shape, w_shape, (1, 1), pad)
        return direct_weight._tall(geo, geo.out_hw) is not None
    assert tall((8, 64, 7, 7), (64, 64, 3, 3), ((1, 1), (1, 1)))
    assert not tall((8, 32, 14, 14), (32, 32, 3, 3), ((1, 1), (1, 1)))
    assert not tall((8, 16, 14, 14), (32, 16, 5, 5), ((2, 2), (2, 2)))
    assert not tall((8, 16, 28, 28), (16, 16, 3, 3), ((1, 1), (1, 1)))
    assert not tall((8, 4, 9, 9), (4, 4, 3, 3), ((1, -1), (1, 1)))
    geo = K.ConvGeometry.of((5, 64, 7, 7), (64, 64, 3, 3), (1, 1), ((1, 1), (1, 1)))
    grid, rows, n_per = direct_weight._tall(geo, geo.out_hw)
    assert (grid.pitch, rows, n_per) == (8, 8, 3)  # 7 rows and a shared zero row per image, three images per half


@pytest.mark.parametrize("k", [16, 6])  # a multiple of four: the kernel reads w itself; 6: a padded copy
def test_direct_reads_weights_changed_in_place_between_calls(k):
    """Optimizers update weights in place: a second call after ``w -= ...`` (and ``b += ...``) must see the new
    values (nothing keyed on the array's identity), batch 1 and 100, C=1 5x5 'same' as convnet's first layer."""
    rng = np.random.default_rng(7)
    w, b = rng.standard_normal((k, 1, 5, 5)), rng.standard_normal(k)
    for n in (1, 100):
        geo = K.ConvGeometry.of((n, 1, 28, 28), (k, 1, 5, 5), (1, 1), ((2, 2), (2, 2)))
        x = rng.standard_normal(geo.x_shape)
        with runtime.scoped(backend="numba"):
            for _ in range(3):
                y = direct.forward(geo, x, w, b)
                np.testing.assert_allclose(y, reference.forward(geo, x, w) + b[:, None, None], rtol=1e-10,
                                           atol=1e-10)
                w -= 0.1 * rng.standard_normal(w.shape)
                b += 0.1 * rng.standard_normal(b.shape)
            frozen = w.copy()
            frozen.flags.writeable = False  # a read-only weight (np.frombuffer, a memory map) is copied, not viewed
            np.testing.assert_array_equal(direct.forward(geo, x, frozen, None), direct.forward(geo, x, w, None))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 4), k=st.integers(1, 9), hw=st.integers(1, 12), r=st.integers(1, 5), seed=st.integers(0, 99))
def test_direct_one_input_channel_float64_and_grid_rows(n, k, hw, r, seed):
    """C=1 (the first layer), batch 1 and odd sizes, 'same' padding, against the seven loops; ``_grid_rows``
    writes every number of its output (stale NaN in the buffer must not survive)."""
    geo = K.ConvGeometry.of((n, 1, hw, hw), (k, 1, r, r), (1, 1), ((r // 2, (r - 1) // 2),) * 2)
    rng = np.random.default_rng(seed)
    x, w, b, dy = (rng.standard_normal(s) for s in (geo.x_shape, geo.w_shape, (k,), geo.y_shape))
    with runtime.scoped(backend="numba"):
        y, dw = direct.forward(geo, x, w, b), direct_weight.backward_weight(geo, dy, x)
        grid = direct._forward_grid(geo)
        kg4 = -(-k // 4) * 4
        out = np.full((n, kg4, grid.length(*geo.out_hw) + 3), np.nan)
        direct_weight._grid_rows(in_layout(dy, "strided"), 1, out, grid.pitch, 0, n)
    np.testing.assert_allclose(y, reference.forward(geo, x, w) + b[:, None, None], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dw, reference.backward_weight(geo, dy, x), rtol=1e-10, atol=1e-10)
    want = np.zeros_like(out)
    for oh in range(geo.out_hw[0]):
        want[:, :k, oh * grid.pitch : oh * grid.pitch + geo.out_hw[1]] = dy[:, :, oh]
    np.testing.assert_array_equal(out, want)


def test_auto_runs_direct_where_it_is_faster_and_only_with_the_compiled_backend():
    def geo(x_shape, w_shape, pad, stride=1):
        return K.ConvGeometry.of(x_shape, w_shape, (stride, stride), ((pad, pad), (pad, pad)))

    first, second = geo((8, 1, 28, 28), (16, 1, 5, 5), 2), geo((8, 16, 14, 14), (32, 16, 5, 5), 2)
    c3, c5 = geo((8, 6, 14, 14), (16, 6, 5, 5), 0), geo((8, 16, 5, 5), (120, 16, 5, 5), 0)
    strided = geo((8, 1, 28, 28), (16, 1, 5, 5), 2, stride=2)
    with runtime.scoped(backend="numba"):
        # stride 1, 3x3 or larger, at most 1.5 grid positions per output (dispatch.direct_passes has the figures)
        wide, small = geo((8, 64, 7, 7), (64, 64, 3, 3), 1), geo((8, 16, 7, 7), (16, 16, 3, 3), 1)
        for layer in (first, second, c3, wide, small, geo((8, 1, 28, 28), (16, 1, 3, 3), 1),
                      geo((8, 3, 32, 32), (32, 3, 3, 3), 1), geo((8, 48, 14, 14), (32, 48, 3, 3), 1),
                      geo((8, 16, 28, 28), (64, 16, 3, 3), 1)):
            assert K.plan(layer) == K.Plan("direct", "direct", "direct"), layer
        assert direct.grid_overhead(c5) > 1.5
        pointwise = geo((8, 16, 14, 14), (32, 16, 1, 1), 0)
        for other in (c5, pointwise, geo((8, 16, 28, 28), (32, 16, 1, 1), 0, stride=2)):
            assert "direct" not in K.plan(other), other
        # strided layers of more than one tap: grad-input on dx's phases, forward and grad-weight with im2col
        for layer in (strided, geo((8, 16, 28, 28), (32, 16, 3, 3), 1, stride=2),
                      geo((8, 32, 14, 14), (64, 32, 3, 3), 1, stride=2)):
            assert K.plan(layer) == K.Plan("im2col", "direct", "im2col"), layer
        assert K.plan(c5, "direct") == K.Plan("direct", "direct", "direct")
        assert K.plan(strided, "direct") == K.Plan("direct", "direct", "direct")  # direct_strided.py
        with pytest.raises(ValueError, match="'rowshift' needs stride 1"):
            K.plan(strided, "rowshift")
        # a training forward under "auto" keeps no columns for a direct grad-weight: it reads x
        x = np.random.default_rng(0).standard_normal(first.x_shape).astype(np.float32)
        y, cols = K.forward(first, x, np.ones(first.w_shape, np.float32), None, return_cols=True)
        assert cols is None
        with pytest.raises(ValueError, match="x may be None only"):
            K.backward_weight(first, y, None)
        stem = geo((8, 1, 28, 28), (16, 1, 3, 3), 1)  # an im2col forward keeps no columns for grad-weight either
        y, cols = K.forward(stem, x, np.ones(stem.w_shape, np.float32), None, return_cols=True)
        assert cols is None
        dy = np.ones(stem.y_shape, np.float32)
        np.testing.assert_array_equal(K.backward_weight(stem, dy, x), K.backward_weight(stem, dy, x, "direct"))
    with runtime.scoped(backend="numpy"):
        assert "direct" not in K.plan(first) and "direct" not in K.plan(second)
    assert not direct.supported(strided)
    with pytest.raises(ValueError, match="'direct' needs stride 1"):
        direct.forward(strided, np.zeros(strided.x_shape), np.zeros(strided.w_shape), None)


def test_direct_transposed_convolution_matches_torch():
    """A transposed convolution runs a convolution's passes swapped (its forward is a grad-input, with a cropped
    output gradient when output_padding is used)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((2, 4, 6, 5)), rng.standard_normal((4, 3, 3, 3))
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    yt = torch.nn.functional.conv_transpose2d(xt, wt, padding=1)
    dy = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.from_numpy(dy))
    with runtime.scoped(backend="numba"):
        y = K.conv_transpose2d_forward(x, w, None, (1, 1), (1, 1), (0, 0), (1, 1), 1, algorithm="direct")
        dx = K.conv_transpose2d_backward_input(dy, w, x.shape, (1, 1), (1, 1), (0, 0), (1, 1), 1, algorithm="direct")
        dw = K.conv_transpose2d_backward_weight(dy, x, w.shape, (1, 1), (1, 1), (0, 0), (1, 1), 1,
                                                algorithm="direct")
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=1e-10, atol=1e-10)

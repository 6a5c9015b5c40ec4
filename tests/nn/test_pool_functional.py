"""nn.functional pooling (max_pool2d, avg_pool2d, adaptive_avg_pool2d) against torch: values, indices,
dtypes and input gradients; configurations torch refuses must be refused too (ValueError)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import numcnn
import numcnn.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _torch_accepts(fn, x: np.ndarray) -> bool:
    try:
        fn(torch.from_numpy(x))
    except RuntimeError:
        return False
    return True


@st.composite
def pool_cases(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(st.one_of(st.none(), st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    hw = (draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    batch = draw(st.sampled_from([(2, 3), (1, 1), (3,)]))  # (3,) is an unbatched (C, H, W) input
    return dict(kernel=kernel, stride=stride, padding=padding, shape=batch + hw,
                ceil_mode=draw(st.booleans()))


@given(case=pool_cases(), dilation=st.integers(1, 2), return_indices=st.booleans(), seed=st.integers(0, 2**16))
def test_max_pool2d_matches_torch(torch_check, case, dilation, return_indices, seed):
    x = np.random.default_rng(seed).standard_normal(case["shape"]).astype(np.float32)
    kw = dict(kernel_size=case["kernel"], stride=case["stride"], padding=case["padding"], dilation=dilation,
              ceil_mode=case["ceil_mode"], return_indices=return_indices)
    if not _torch_accepts(lambda t: TF.max_pool2d(t, **kw), x):
        with pytest.raises(ValueError, match="max_pool2d"):
            F.max_pool2d(numcnn.tensor(x), **kw)
        return
    # A window that lies wholly in the padding (possible with dilation) is covered by the test below.
    assume(np.isfinite(TF.max_pool2d(torch.from_numpy(x), **{**kw, "return_indices": False}).numpy()).all())
    torch_check(lambda t: F.max_pool2d(t, **kw), lambda t: TF.max_pool2d(t, **kw), x, seed=seed)


def test_max_pool2d_window_all_padding_backward(torch_check):
    x = np.array([[[[0.5]]]], dtype=np.float32)
    # Window columns -1 and 1 are both padding: torch gives -inf, index 1, and a zero gradient.
    torch_check(lambda t: F.max_pool2d(t, (1, 2), padding=(0, 1), dilation=2),
                lambda t: TF.max_pool2d(t, (1, 2), padding=(0, 1), dilation=2), x)


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_ceil_mode_window_overhanging_the_input_is_accepted_like_torch(torch_check, pool):
    """With ceil_mode the last window may hang past the input (and its padding): torch keeps it, so must we."""
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 5)).astype(np.float32)
    if pool == "max":
        kw = dict(kernel_size=(2, 3), stride=(2, 3), dilation=2, ceil_mode=True)
        torch_check(lambda t: F.max_pool2d(t, **kw), lambda t: TF.max_pool2d(t, **kw), x)
    else:
        kw = dict(kernel_size=3, stride=3, ceil_mode=True)  # a 3x3 window over 2 rows
        torch_check(lambda t: F.avg_pool2d(t, **kw), lambda t: TF.avg_pool2d(t, **kw), x)


def test_max_pool2d_ties_and_overlap_route_gradient_like_torch(torch_check):
    """Equal values in overlapping windows: the gradient goes to the first maximum, and accumulates."""
    x = np.array([[[[1, 1, 0], [1, 1, 0], [0, 2, 2]]]], dtype=np.float32)
    torch_check(lambda t: F.max_pool2d(t, 2, 1, return_indices=True),
                lambda t: TF.max_pool2d(t, 2, 1, return_indices=True), x)


@given(case=pool_cases(), count_include_pad=st.booleans(), divisor=st.one_of(st.none(), st.integers(1, 5)),
       seed=st.integers(0, 2**16))
def test_avg_pool2d_matches_torch(torch_check, case, count_include_pad, divisor, seed):
    x = np.random.default_rng(seed).standard_normal(case["shape"]).astype(np.float32)
    kw = dict(kernel_size=case["kernel"], stride=case["stride"], padding=case["padding"],
              ceil_mode=case["ceil_mode"], count_include_pad=count_include_pad, divisor_override=divisor)
    if not _torch_accepts(lambda t: TF.avg_pool2d(t, **kw), x):
        with pytest.raises(ValueError, match="avg_pool2d"):
            F.avg_pool2d(numcnn.tensor(x), **kw)
        return
    torch_check(lambda t: F.avg_pool2d(t, **kw), lambda t: TF.avg_pool2d(t, **kw), x, seed=seed)


@given(hw=st.tuples(st.integers(1, 9), st.integers(1, 9)),
       out=st.one_of(st.integers(1, 5), st.tuples(st.integers(1, 5), st.integers(1, 5)),
                     st.tuples(st.none(), st.integers(1, 4))),
       unbatched=st.booleans(), seed=st.integers(0, 2**16))
def test_adaptive_avg_pool2d_matches_torch(torch_check, hw, out, unbatched, seed):
    shape = ((3,) if unbatched else (2, 3)) + hw
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    torch_check(lambda t: F.adaptive_avg_pool2d(t, out), lambda t: TF.adaptive_avg_pool2d(t, out), x, seed=seed)


def test_adaptive_avg_pool2d_hand_computed():
    x = numcnn.tensor(np.arange(5, dtype=np.float32).reshape(1, 1, 1, 5))
    # PyTorch's bins for 5 -> 3: [0, 2), [1, 4), [3, 5)
    y = F.adaptive_avg_pool2d(x, (1, 3))
    np.testing.assert_allclose(y.numpy().ravel(), [0.5, 2.0, 3.5])
    assert y.dtype == np.float32


def test_pool_float64_stays_float64(torch_check):
    x = np.random.default_rng(0).standard_normal((2, 2, 6, 5))
    torch_check(lambda t: F.max_pool2d(t, 3, 2, 1, ceil_mode=True), lambda t: TF.max_pool2d(t, 3, 2, 1, ceil_mode=True),
                x, rtol=1e-12, atol=1e-12)
    torch_check(lambda t: F.avg_pool2d(t, 3, 2, 1, ceil_mode=True), lambda t: TF.avg_pool2d(t, 3, 2, 1, ceil_mode=True),
                x, rtol=1e-12, atol=1e-12)
    torch_check(lambda t: F.adaptive_avg_pool2d(t, 4), lambda t: TF.adaptive_avg_pool2d(t, 4), x, rtol=1e-12,
                atol=1e-12)

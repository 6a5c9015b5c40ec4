"""nn.functional convolutions (conv2d, conv1d, conv_transpose2d) against torch.nn.functional: forward values,
dtypes and gradients of input, weight and bias over random configurations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import numcnn.nn.functional as F

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel:UserWarning")
TF = torch.nn.functional


def _rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


@st.composite
def conv2d_cases(draw, tiny: bool = False):
    groups = draw(st.integers(1, 2 if tiny else 3))
    cpg, kpg = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kind = draw(st.sampled_from(["int", "pair", "same", "valid"]))
    if kind == "same":
        sh = sw = 1
        padding, (ph, pw) = "same", (0, 0)
    elif kind == "valid":
        padding, (ph, pw) = "valid", (0, 0)
    elif kind == "int":
        ph = pw = draw(st.integers(0, 2))
        padding = ph
    else:
        ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
        padding = (ph, pw)
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    top = 5 if tiny else 8
    h = draw(st.integers(max(1, eh - 2 * ph), max(1, eh - 2 * ph) + top - 2))
    w = draw(st.integers(max(1, ew - 2 * pw), max(1, ew - 2 * pw) + top))
    if kind == "same":
        h, w = draw(st.integers(1, top)), draw(st.integers(1, top))
    n = draw(st.integers(1, 2 if tiny else 3))
    bias = draw(st.booleans())
    return dict(n=n, c=groups * cpg, k=groups * kpg, groups=groups, kernel=(kh, kw), hw=(h, w),
                stride=(sh, sw) if sh != sw else sh, padding=padding, dilation=(dh, dw), bias=bias)


def _conv2d_check(torch_check, case, algorithm, seed):
    rng = np.random.default_rng(seed)
    x = _rand(rng, case["n"], case["c"], *case["hw"])
    w = _rand(rng, case["k"], case["c"] // case["groups"], *case["kernel"])
    arrays = [x, w] + ([_rand(rng, case["k"])] if case["bias"] else [])
    kw = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"], groups=case["groups"])
    torch_check(lambda x, w, b=None: F.conv2d(x, w, b, algorithm=algorithm, **kw),
                lambda x, w, b=None: TF.conv2d(x, w, b, **kw), *arrays, seed=seed)


@given(case=conv2d_cases(), seed=st.integers(0, 2**16))
def test_conv2d_im2col_matches_torch(torch_check, case, seed):
    _conv2d_check(torch_check, case, "im2col", seed)


@given(case=conv2d_cases(tiny=True), seed=st.integers(0, 2**16))
def test_conv2d_naive_matches_torch(torch_check, case, seed):
    _conv2d_check(torch_check, case, "naive", seed)


@pytest.mark.parametrize("algorithm", ["im2col", "naive"])
def test_conv2d_depthwise_and_batch1_nonsquare(torch_check, algorithm):
    rng = np.random.default_rng(1)
    x, w, b = _rand(rng, 1, 4, 5, 7), _rand(rng, 8, 1, 3, 2), _rand(rng, 8)
    torch_check(lambda x, w, b: F.conv2d(x, w, b, 2, (1, 0), 1, 4, algorithm),
                lambda x, w, b: TF.conv2d(x, w, b, 2, (1, 0), 1, 4), x, w, b)


def test_conv2d_unbatched_input(torch_check):
    rng = np.random.default_rng(2)
    x, w = _rand(rng, 3, 6, 6), _rand(rng, 4, 3, 3, 3)
    torch_check(lambda x, w: F.conv2d(x, w, padding=1), lambda x, w: TF.conv2d(x, w, padding=1), x, w)


def test_conv2d_weight_only_grad_and_no_bias_grad(close):
    """Only the weight requires grad (the first layer of a network): the input gets no gradient."""
    import numcnn

    rng = np.random.default_rng(3)
    x, w = _rand(rng, 2, 3, 5, 5), _rand(rng, 4, 3, 3, 3)
    tw = torch.from_numpy(w.copy()).requires_grad_()
    TF.conv2d(torch.from_numpy(x), tw).sum().backward()
    nx, nw = numcnn.tensor(x), numcnn.tensor(w, requires_grad=True)
    F.conv2d(nx, nw).sum().backward()
    assert nx.grad is None
    close(nw.grad.numpy(), tw.grad.numpy())


@given(seed=st.integers(0, 2**16), data=st.data())
def test_conv1d_matches_torch(torch_check, seed, data):
    groups = data.draw(st.integers(1, 3))
    c, k = groups * data.draw(st.integers(1, 2)), groups * data.draw(st.integers(1, 2))
    ks, stride, dil = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 2))
    padding = data.draw(st.one_of(st.integers(0, 2), st.sampled_from(["valid", "same"])))
    if padding == "same":
        stride = 1
    pad = padding if isinstance(padding, int) else 0
    length = data.draw(st.integers(max(1, dil * (ks - 1) + 1 - 2 * pad), 12))
    n, bias = data.draw(st.integers(1, 3)), data.draw(st.booleans())
    rng = np.random.default_rng(seed)
    arrays = [_rand(rng, n, c, length), _rand(rng, k, c // groups, ks)] + ([_rand(rng, k)] if bias else [])
    kw = dict(stride=stride, padding=padding, dilation=dil, groups=groups)
    torch_check(lambda x, w, b=None: F.conv1d(x, w, b, **kw), lambda x, w, b=None: TF.conv1d(x, w, b, **kw),
                *arrays, seed=seed)


@given(seed=st.integers(0, 2**16), data=st.data())
def test_conv_transpose2d_matches_torch(torch_check, seed, data):
    groups = data.draw(st.integers(1, 3))
    cin, cout = groups * data.draw(st.integers(1, 2)), groups * data.draw(st.integers(1, 2))
    kernel = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    stride = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    dilation = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    padding = (data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2)))
    output_padding = tuple(data.draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    hw = (data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5)))
    out = [(hw[i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (kernel[i] - 1) + output_padding[i] + 1
           for i in range(2)]
    assume(min(out) > 0)
    n, bias = data.draw(st.integers(1, 2)), data.draw(st.booleans())
    algorithm = "naive" if n * cin * cout * out[0] * out[1] * kernel[0] * kernel[1] < 400 else "im2col"
    rng = np.random.default_rng(seed)
    arrays = [_rand(rng, n, cin, *hw), _rand(rng, cin, cout // groups, *kernel)]
    arrays += [_rand(rng, cout)] if bias else []
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)
    torch_check(lambda x, w, b=None: F.conv_transpose2d(x, w, b, algorithm=algorithm, **kw),
                lambda x, w, b=None: TF.conv_transpose2d(x, w, b, **kw), *arrays, seed=seed)


def test_conv_float64_stays_float64(torch_check):
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3))
    torch_check(lambda x, w: F.conv2d(x, w, padding=1), lambda x, w: TF.conv2d(x, w, padding=1), x, w,
                rtol=1e-10, atol=1e-12)
    torch_check(lambda x, w: F.conv_transpose2d(x, w.permute(1, 0, 2, 3), stride=2),
                lambda x, w: TF.conv_transpose2d(x, w.permute(1, 0, 2, 3), stride=2), x, w[:2], rtol=1e-10,
                atol=1e-12)


def test_conv2d_accepts_numpy_int_groups(torch_check):
    rng = np.random.default_rng(5)
    x, w = _rand(rng, 1, 4, 4, 4), _rand(rng, 4, 2, 3, 3)
    torch_check(lambda x, w: F.conv2d(x, w, groups=np.int64(2)), lambda x, w: TF.conv2d(x, w, groups=2), x, w)

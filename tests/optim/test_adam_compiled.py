"""The compiled Adam(W) update (``optim/adam_compiled.py``, backend "numba"): the same bits as the NumPy update for
every option it covers, the NumPy update for the rest, and torch.optim.Adam's trajectory in float32."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

import numcnn  # noqa: E402
from numcnn.kernels.runtime import runtime  # noqa: E402
from numcnn.optim import adam_compiled  # noqa: E402
from numcnn.optim.adam import adam_update  # noqa: E402


def _state(shape, seed):
    rng = np.random.default_rng(seed)
    p, g = rng.standard_normal(shape), rng.standard_normal(shape)
    m, v = rng.standard_normal(shape) * 0.1, np.abs(rng.standard_normal(shape)) * 0.01
    return [a.astype(np.float32) for a in (p, g, m, v)]


@pytest.mark.parametrize("shape", [(6, 1, 5, 5), (120,), (84, 120), (1,)])
@pytest.mark.parametrize("weight_decay, decoupled", [(0.0, False), (0.1, False), (0.01, True)])
@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("beta1", [0.9, 0.3])  # torch's lerp switches formula at weight 0.5
def test_compiled_adam_gives_the_numpy_bits(shape, weight_decay, decoupled, maximize, beta1):
    kw = dict(lr=3e-3, beta1=beta1, beta2=0.999, eps=1e-8, weight_decay=weight_decay, amsgrad=False,
              maximize=maximize, decoupled_weight_decay=decoupled)
    ours, ref = _state(shape, sum(shape)), _state(shape, sum(shape))
    assert adam_compiled.supported(*ours, False)
    for step in (1.0, 2.0, 3.0, 50.0):
        with runtime.scoped(backend="numba"):
            adam_update(*ours[:4], None, step, **kw)
        with runtime.scoped(backend="numpy"):
            adam_update(*ref[:4], None, step, **kw)
        for a, b in zip(ours, ref, strict=True):
            np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


def test_compiled_adam_leaves_the_rest_to_numpy():
    p = np.zeros((4, 4), np.float32)
    assert not adam_compiled.supported(p, p, p, p, True)  # amsgrad
    assert not adam_compiled.supported(p.astype(np.float64), *(p.astype(np.float64),) * 3, False)
    assert not adam_compiled.supported(p.T, p.T, p.T, p.T, False)  # not C-contiguous
    assert not adam_compiled.supported(p, p[:2], p, p, False)


def test_compiled_adam_follows_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((16, 8)).astype(np.float32)
    grads = [rng.standard_normal((16, 8)).astype(np.float32) for _ in range(5)]
    with runtime.scoped(backend="numba"):
        p = numcnn.nn.Parameter(numcnn.tensor(w0.copy()))
        opt = numcnn.optim.Adam([p], lr=1e-2, weight_decay=0.01)
        for g in grads:
            p.grad = numcnn.tensor(g)
            opt.step()
    tp = torch.nn.Parameter(torch.tensor(w0))
    topt = torch.optim.Adam([tp], lr=1e-2, weight_decay=0.01)
    for g in grads:
        tp.grad = torch.tensor(g)
        topt.step()
    np.testing.assert_allclose(p.array, tp.detach().numpy(), rtol=1e-6, atol=1e-7)

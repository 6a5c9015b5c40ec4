"""Shared checkers for the nn tests, handed out as fixtures (pytest runs with --import-mode=importlib, so a
sibling helper module cannot be imported by name).

``torch_check`` is the tinygrad ``test_ops`` idea: run a numcnn callable and the equivalent torch callable on
the same arrays and compare shape, dtype, forward values and every gradient (inputs and module parameters)
for one random upstream gradient. ``gradcheck`` compares numcnn's backward with central finite differences
in float64.
"""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
from finite_diff import numgrad as _numgrad

torch = pytest.importorskip("torch")

RTOL = 1e-4
ATOL = 1e-5  # relative to the largest magnitude of the reference (so it scales with the values)


def assert_close(got, want, rtol: float = RTOL, atol: float = ATOL, what: str = "") -> None:
    """|got - want| <= atol * max(1, max|want|) + rtol * |want|, elementwise; shapes must agree."""
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != reference {want.shape}"
    finite = np.isfinite(want)
    assert np.array_equal(np.isfinite(got), finite), f"{what}: non-finite values differ\n{got}\n{want}"
    if not finite.any():
        return
    w64, g64 = want[finite].astype(np.float64), got[finite].astype(np.float64)
    tol = atol * max(1.0, float(np.abs(w64).max())) + rtol * np.abs(w64)
    err = np.abs(g64 - w64)
    bad = err > tol
    assert not bad.any(), (
        f"{what}: {bad.sum()} of {bad.size} values differ; worst abs err {err.max():.3g} "
        f"(tol there {tol[np.argmax(err - tol)]:.3g})\n got {g64[bad][:5]}\nwant {w64[bad][:5]}"
    )


_TORCH_DTYPES = {torch.float32: np.float32, torch.float64: np.float64, torch.int64: np.int64,
                 torch.bool: np.bool_, torch.int32: np.int32}


def _as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _check(nc_fn, torch_fn, *arrays, modules=None, grad: bool = True, rtol: float = RTOL, atol: float = ATOL,
           grad_rtol: float | None = None, grad_atol: float | None = None, seed: int = 0):
    """Run ``nc_fn(*numcnn tensors)`` and ``torch_fn(*torch tensors)`` on copies of ``arrays``.

    Float arrays become leaves that require grad on both sides (int arrays, e.g. class targets, do not).
    Checks, for every output: it is a numcnn Tensor, its shape, its dtype (torch's: float32 stays float32)
    and its values. With ``grad``, backpropagates one random upstream gradient through the first output and
    compares the gradient of every float input and, when ``modules=(numcnn_module, torch_module)`` is given,
    of every parameter by name (the two modules must list the same parameter names in the same order).
    Returns (numcnn outputs, torch outputs) as tuples for extra checks.
    """
    rng = np.random.default_rng([seed, 7919])  # not default_rng(seed): tests draw their inputs from that
    grad_rtol = rtol if grad_rtol is None else grad_rtol
    grad_atol = atol if grad_atol is None else grad_atol
    nc_in, t_in = [], []
    for a in arrays:
        a = np.asarray(a)
        req = grad and a.dtype.kind == "f"
        nc_in.append(numcnn.tensor(a.copy(), requires_grad=req))
        t_in.append(torch.from_numpy(a.copy()).requires_grad_(req))
    nc_out, t_out = _as_tuple(nc_fn(*nc_in)), _as_tuple(torch_fn(*t_in))
    assert len(nc_out) == len(t_out), f"{len(nc_out)} outputs, torch gives {len(t_out)}"
    for i, (o, r) in enumerate(zip(nc_out, t_out)):
        assert isinstance(o, numcnn.Tensor), f"output {i} is a {type(o).__name__}, not a numcnn Tensor"
        assert o.shape == tuple(r.shape), f"output {i}: shape {o.shape} != torch {tuple(r.shape)}"
        assert o.dtype == np.dtype(_TORCH_DTYPES[r.dtype]), f"output {i}: dtype {o.dtype} != torch {r.dtype}"
        if o.dtype.kind == "f":
            assert_close(o.numpy(), r.detach().numpy(), rtol, atol, f"output {i}")
        else:
            np.testing.assert_array_equal(o.numpy(), r.numpy(), err_msg=f"output {i}")
    if not grad:
        return nc_out, t_out
    o, r = nc_out[0], t_out[0]
    up = rng.standard_normal(o.shape).astype(o.dtype)
    o.backward(up)
    r.backward(torch.from_numpy(up.copy()))
    for i, (a, b) in enumerate(zip(nc_in, t_in)):
        if not b.requires_grad:
            continue
        if b.grad is None:
            assert a.grad is None or not a.grad.numpy().any(), f"input {i}: numcnn has a grad, torch none"
            continue
        assert a.grad is not None, f"input {i}: no gradient (torch has one)"
        assert a.grad.dtype == a.dtype, f"input {i}: gradient dtype {a.grad.dtype} != input dtype {a.dtype}"
        assert_close(a.grad.numpy(), b.grad.numpy(), grad_rtol, grad_atol, f"grad of input {i}")
    if modules is not None:
        nc_mod, t_mod = modules
        nc_named, t_named = list(nc_mod.named_parameters()), list(t_mod.named_parameters())
        assert [n for n, _ in nc_named] == [n for n, _ in t_named]
        for (name, p), (_, q) in zip(nc_named, t_named):
            assert p.grad is not None, f"parameter {name}: no gradient"
            assert p.grad.dtype == p.dtype, f"parameter {name}: gradient dtype {p.grad.dtype}"
            assert_close(p.grad.numpy(), q.grad.numpy(), grad_rtol, grad_atol, f"grad of {name}")
    return nc_out, t_out


def numerical_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    return _numgrad(f, x, eps)


def _gradcheck(nc_fn, *arrays, seed: int = 0, rtol: float = 1e-5, atol: float = 1e-6, eps: float = 1e-6):
    """numcnn's gradients of sum(nc_fn(*inputs) * u) for a random u against central differences, in float64.
    Every float array is checked."""
    arrays = [np.array(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f" else np.asarray(a) for a in arrays]
    ts = [numcnn.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    out = nc_fn(*ts)
    assert out.dtype == np.float64, f"float64 in gave {out.dtype} out"
    u = np.random.default_rng([seed, 7919]).standard_normal(out.shape)
    out.backward(u)

    def f():
        with numcnn.no_grad():
            return float((nc_fn(*[numcnn.tensor(a) for a in arrays]).numpy() * u).sum())

    for i, (a, t) in enumerate(zip(arrays, ts)):
        if a.dtype.kind != "f":
            continue
        num = numerical_grad(f, a, eps)
        assert t.grad is not None, f"input {i}: no gradient"
        assert t.grad.dtype == np.float64
        assert_close(t.grad.numpy(), num, rtol, atol, f"gradcheck input {i}")


@pytest.fixture(scope="session")
def torch_check():
    return _check


@pytest.fixture(scope="session")
def gradcheck():
    return _gradcheck


@pytest.fixture(scope="session")
def close():
    return assert_close


@pytest.fixture(scope="session")
def numgrad():
    return numerical_grad

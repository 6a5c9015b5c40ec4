"""The compiled SGD, RMSprop and Adagrad updates (``optim/updates_compiled.py``, backend "numba"): the same bits as
the NumPy updates for every option, the NumPy updates for other dtypes and layouts, and torch.optim's trajectories in
float32."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

pytest.importorskip("numba")

from numcnn.kernels import jit  # noqa: E402
from numcnn.kernels.runtime import runtime  # noqa: E402
from numcnn.optim import SGD, Adagrad, RMSprop, updates_compiled  # noqa: E402
from numcnn.optim.adagrad import adagrad_update  # noqa: E402
from numcnn.optim.rmsprop import rmsprop_update  # noqa: E402
from numcnn.optim.sgd import sgd_update  # noqa: E402
from param_standins import Grad, Param  # noqa: E402

SHAPES = [(6, 1, 5, 5), (120,), (84, 120), (1,), (16, 3, 3, 3), ()]
STEPS = 4


def _grid(**options):
    keys = list(options)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*options.values())]


SGD_CONFIGS = [kw for kw in _grid(lr=[0.05], momentum=[0.0, 0.9], dampening=[0.0, 0.3], weight_decay=[0.0, 0.01],
                                  nesterov=[False, True], maximize=[False, True])
               if not (kw["nesterov"] and (kw["momentum"] == 0 or kw["dampening"] != 0))]
RMSPROP_CONFIGS = _grid(lr=[0.01], alpha=[0.99, 0.3], weight_decay=[0.0, 0.1], momentum=[0.0, 0.5],
                        centered=[False, True], maximize=[False, True])
ADAGRAD_CONFIGS = _grid(lr=[0.1], lr_decay=[0.0, 0.05], weight_decay=[0.0, 0.1], initial_accumulator_value=[0.0, 0.5],
                        eps=[1e-10, 1e-3], maximize=[False, True])
CONFIGS = ([("SGD", kw) for kw in SGD_CONFIGS] + [("RMSprop", kw) for kw in RMSPROP_CONFIGS]
           + [("Adagrad", kw) for kw in ADAGRAD_CONFIGS])
OURS = {"SGD": SGD, "RMSprop": RMSprop, "Adagrad": Adagrad}


def _ids(config):
    name, kw = config
    return name + "-" + "-".join(f"{k}={v}" for k, v in kw.items())


def _inits(seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    inits = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(STEPS)]
    return inits, grads


def _run(name, kw, backend, inits, grads, threads=None):
    params = [Param(a) for a in inits]
    with runtime.scoped(backend=backend, threads=threads):
        opt = OURS[name](params, **kw)
        for step_grads in grads:
            for p, g in zip(params, step_grads, strict=True):
                p.grad = Grad(np.array(g, copy=True))
            opt.step()
    return params, opt


def _assert_same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a.view(np.uint32 if a.dtype == np.float32 else np.uint64),
                                  b.view(np.uint32 if b.dtype == np.float32 else np.uint64))


def _assert_same_state(ours, opt, theirs, topt):
    for p, q in zip(ours, theirs, strict=True):
        _assert_same_bits(p.array, q.array)
        state, tstate = opt.state[p], topt.state[q]
        assert state.keys() == tstate.keys()
        for key, value in state.items():
            if isinstance(value, np.ndarray):
                _assert_same_bits(value, tstate[key])
            else:
                assert value == tstate[key]


def _assert_close_f32(actual, desired):
    # float32 rounding, relative to the array's scale: a sum of terms cancels to a value far below them (torch may
    # also contract a*b + c into an FMA)
    np.testing.assert_allclose(actual, desired, rtol=1e-5, atol=1e-6 * max(1.0, float(np.abs(desired).max())))


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_compiled_update_gives_the_numpy_bits_and_follows_torch(config):
    name, kw = config
    inits, grads = _inits(seed=len(kw) + int(kw.get("maximize", 0)))
    ours, opt = _run(name, kw, "numba", inits, grads)
    ref, ref_opt = _run(name, kw, "numpy", inits, grads)
    _assert_same_state(ours, opt, ref, ref_opt)
    kernel = {"SGD": "_sgd_f32", "RMSprop": "_rmsprop_f32", "Adagrad": "_adagrad_f32"}[name]
    assert any(k.startswith(kernel) for k in jit.compile_report())  # the compiled update did run

    torch = pytest.importorskip("torch")
    theirs = [torch.tensor(a, requires_grad=True) for a in inits]
    topt = getattr(torch.optim, name)(theirs, foreach=False, **kw)
    for step_grads in grads:
        for t, g in zip(theirs, step_grads, strict=True):
            t.grad = torch.tensor(g)
        topt.step()
    for p, t in zip(ours, theirs, strict=True):
        _assert_close_f32(p.array, t.detach().numpy())
        for key, value in opt.state[p].items():
            if isinstance(value, np.ndarray):
                _assert_close_f32(value, topt.state[t][key].numpy())


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("name, kw", [("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
                                      ("RMSprop", {"lr": 0.01, "momentum": 0.5, "centered": True}),
                                      ("Adagrad", {"lr": 0.1, "lr_decay": 0.05, "initial_accumulator_value": 0.5})])
def test_compiled_update_bits_do_not_depend_on_threads(name, kw, threads):
    inits, grads = _inits(seed=threads)
    ours, opt = _run(name, kw, "numba", inits, grads, threads=threads)
    ref, ref_opt = _run(name, kw, "numpy", inits, grads, threads=1)
    _assert_same_state(ours, opt, ref, ref_opt)


def test_sgd_first_step_buffer_is_the_gradient_and_a_new_array():
    rng = np.random.default_rng(3)
    p, g = rng.standard_normal((5, 7)).astype(np.float32), rng.standard_normal((5, 7)).astype(np.float32)
    with runtime.scoped(backend="numba"):
        buf = sgd_update(p, g, None, lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.0, nesterov=False,
                         maximize=False)
    assert buf is not g and buf.flags.c_contiguous and buf.dtype == np.float32
    np.testing.assert_array_equal(buf, g)  # undamped, as torch
    with runtime.scoped(backend="numba"):
        assert sgd_update(p, g, None, lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                          maximize=False) is None


def test_supported_leaves_the_rest_to_numpy():
    p = np.zeros((4, 4), np.float32)
    assert updates_compiled.supported(p, p, None, p)
    assert not updates_compiled.supported(p.astype(np.float64), p.astype(np.float64))
    assert not updates_compiled.supported(p.T, p.T)  # not C-contiguous
    assert not updates_compiled.supported(p, p[:2])
    assert not updates_compiled.supported(p, p, p.astype(np.float64))


def _views(rng, shape, dtype, transpose, n):
    arrays = [rng.standard_normal(shape).astype(dtype) for _ in range(n)]
    return [a.T if transpose else a for a in arrays]


def _call(name, arrays, step):
    if name == "SGD":
        p, g, buf = arrays
        return sgd_update(p, g, buf, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01, nesterov=False,
                          maximize=True)
    if name == "RMSprop":
        p, g, sq, ga, buf = arrays
        return rmsprop_update(p, g, sq, ga, buf, lr=0.01, alpha=0.9, eps=1e-8, weight_decay=0.1,
                              momentum=0.5, centered=True, maximize=False)
    p, g, s = arrays
    return adagrad_update(p, g, s, step, lr=0.1, lr_decay=0.05, weight_decay=0.1, eps=1e-10,
                          maximize=True)


@pytest.mark.parametrize("name, n", [("SGD", 3), ("RMSprop", 5), ("Adagrad", 3)])
@pytest.mark.parametrize("dtype, transpose", [(np.float64, False), (np.float32, True), (np.float64, True)])
def test_float64_and_non_contiguous_take_the_numpy_path_and_still_match(name, n, dtype, transpose):
    rng = np.random.default_rng(7)
    ours = _views(rng, (12, 9), dtype, transpose, n)
    if name != "SGD":  # accumulators of squares are positive; RMSprop's mean gradient is below their root
        np.abs(ours[2], out=ours[2])
        ours[2] += 1
        if name == "RMSprop":
            ours[3] *= 0.1
    ref = [np.array(a, copy=True) for a in ours]  # C-contiguous copies, the same values
    assert not updates_compiled.supported(*ours)
    for step in (1.0, 2.0, 3.0):
        with runtime.scoped(backend="numba"):
            _call(name, ours, step)
        with runtime.scoped(backend="numpy"):
            _call(name, ref, step)
        for a, b in zip(ours, ref, strict=True):
            _assert_same_bits(np.ascontiguousarray(a), b)
    if dtype == np.float32:  # and the compiled update on the contiguous copies gives the same bits again
        again = [np.array(a, copy=True) for a in ref]
        with runtime.scoped(backend="numba"):
            _call(name, again, 4.0)
        with runtime.scoped(backend="numpy"):
            _call(name, ref, 4.0)
        for a, b in zip(again, ref, strict=True):
            _assert_same_bits(a, b)

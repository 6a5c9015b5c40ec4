"""The Tensor methods of autograd/tensor_methods.py and the factories scripts use, against PyTorch: values, dtypes,
gradients where they flow, and in-place updates that really change the tensor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import numcnn

RNG = np.random.default_rng(7)
X = RNG.standard_normal((4, 6, 3)).astype(np.float32)

# name, args, does the gradient flow
DIFFERENTIABLE = [
    ("square", ()), ("reciprocal", ()), ("flip", ((0, 2),)), ("narrow", (1, 2, 3)), ("index_select", (1, [4, 0, 4])),
    ("masked_fill", (X > 0.5, -1.5)), ("type_as", (np.zeros(1, np.float32),)), ("expand_as", None),
]
PLAIN = [
    ("topk", (3, 1)), ("topk", (2, -1, False)), ("sort", (1,)), ("sort", (0, True)), ("argsort", (2,)),
    ("argsort", (1, True)), ("any", ()), ("all", (1,)), ("isnan", ()), ("isfinite", ()), ("round", ()), ("floor", ()),
    ("ceil", ()), ("sign", ()), ("cumsum", (1,)), ("prod", (2,)), ("nonzero", ()), ("new_zeros", ((2, 3),)),
    ("new_ones", (5,)), ("new_full", ((2,), 3.5)), ("new_tensor", ([1.0, 2.0],)), ("element_size", ()),
    ("nelement", ()), ("is_contiguous", ()), ("stride", ()),
]


def both(value):
    """The same argument for numcnn and for torch."""
    if isinstance(value, np.ndarray):
        return numcnn.tensor(value), torch.from_numpy(value)
    if isinstance(value, list) and value and isinstance(value[0], int):
        return numcnn.tensor(value), torch.tensor(value)
    return value, value


def compare(ours, theirs):
    if isinstance(theirs, tuple):  # topk / sort: (values, indices)
        assert len(ours) == len(theirs)
        for o, t in zip(ours, theirs):
            compare(o, t)
        return
    if not isinstance(theirs, torch.Tensor):
        assert ours == theirs
        return
    assert ours.dtype.name == str(theirs.dtype).removeprefix("torch."), (ours.dtype, theirs.dtype)
    if ours.dtype.is_floating_point:  # sums (cumsum, prod) may round in another order: float32 tolerance
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-6)
    else:
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@pytest.mark.parametrize("name, args", PLAIN, ids=[f"{n}{a}" for n, a in PLAIN])
def test_methods_without_gradient_equal_pytorch(name, args):
    x = X.copy()
    x[0, 0, 0] = 0.0  # ties and zeros: argsort must break them as torch's stable sort
    x[1, 2] = x[1, 1]
    pairs = [both(a) for a in args]
    compare(getattr(numcnn.tensor(x), name)(*[p[0] for p in pairs]),
            getattr(torch.from_numpy(x), name)(*[p[1] for p in pairs]))


@pytest.mark.parametrize("name, args", DIFFERENTIABLE, ids=[n for n, _ in DIFFERENTIABLE])
def test_methods_built_from_differentiable_ops_carry_pytorchs_gradient(name, args):
    x = np.abs(X) + 0.5
    ours, theirs = numcnn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    if args is None:  # expand_as
        a = np.zeros((2, 4, 6, 3), np.float32)
        pairs = [both(a)]
        ours_in, theirs_in = ours[:1], theirs[:1]
    else:
        pairs = [both(a) for a in args]
        ours_in, theirs_in = ours, theirs
    out = getattr(ours_in, name)(*[p[0] for p in pairs])
    ref = getattr(theirs_in, name)(*[p[1] for p in pairs])
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-6)
    weights = RNG.standard_normal(ref.shape).astype(np.float32)
    (out * numcnn.tensor(weights)).sum().backward()
    (ref * torch.from_numpy(weights)).sum().backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("how", ["chunk", "split", "split-sizes", "unbind"])
def test_pieces_are_pytorchs_and_gradients_join(how):
    ours, theirs = numcnn.tensor(X, requires_grad=True), torch.tensor(X, requires_grad=True)
    call = {"chunk": lambda t: t.chunk(4, 1), "split": lambda t: t.split(4, 1),
            "split-sizes": lambda t: t.split([1, 5], 1), "unbind": lambda t: t.unbind(2)}[how]
    a, b = call(ours), call(theirs)
    assert [p.shape for p in a] == [tuple(p.shape) for p in b]
    sum((p * (i + 1)).sum() for i, p in enumerate(a)).backward()
    sum((p * (i + 1)).sum() for i, p in enumerate(b)).backward()
    np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())


def test_t_mm_bmm_and_their_function_forms():
    a, b = RNG.standard_normal((3, 4)).astype(np.float32), RNG.standard_normal((4, 2)).astype(np.float32)
    np.testing.assert_allclose(numcnn.mm(numcnn.tensor(a), numcnn.tensor(b)).numpy(), a @ b, rtol=1e-6)
    assert numcnn.tensor(a).t().shape == (4, 3) and numcnn.t(numcnn.tensor(a)).shape == (4, 3)
    c = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(numcnn.bmm(numcnn.tensor(c), numcnn.tensor(c).transpose(1, 2)).numpy(),
                               torch.bmm(torch.from_numpy(c), torch.from_numpy(c).transpose(1, 2)).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="t\\(\\) expects a tensor with <= 2 dimensions"):
        numcnn.tensor(c).t()


def test_hand_written_sgd_step_updates_the_parameter_in_place():
    """The tutorials' loop: ``with torch.no_grad(): w -= lr * w.grad; w.grad.zero_()``."""
    x, y = RNG.standard_normal((8, 3)).astype(np.float32), RNG.standard_normal(8).astype(np.float32)
    w0 = RNG.standard_normal(3).astype(np.float32)
    results = []
    for lib, make in ((numcnn, numcnn.tensor), (torch, torch.tensor)):
        w = make(w0.copy(), requires_grad=True)
        for _ in range(3):
            loss = ((make(x) @ w - make(y)) ** 2).mean()
            loss.backward()
            with lib.no_grad():
                w -= 0.1 * w.grad
                w.grad.zero_()
        results.append(w.detach().numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-7)


def test_in_place_methods_equal_pytorchs_and_are_refused_on_leaves_needing_grad():
    for name, args in (("add_", (2.0,)), ("sub_", (1.0,)), ("mul_", (3.0,)), ("div_", (2.0,)),
                       ("clamp_", (-0.5, 0.5)), ("masked_fill_", (X > 0, 0.0))):
        ours, theirs = numcnn.tensor(X.copy()), torch.from_numpy(X.copy())
        pairs = [both(a) for a in args]
        assert getattr(ours, name)(*[p[0] for p in pairs]) is ours
        getattr(theirs, name)(*[p[1] for p in pairs])
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)
    t = numcnn.ones(3)
    t.add_(numcnn.ones(3), alpha=2)
    assert t.numpy().tolist() == [3.0, 3.0, 3.0]
    same = t
    t += 1
    assert t is same and t.numpy().tolist() == [4.0, 4.0, 4.0]
    leaf = numcnn.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="cannot be modified in place while grad is enabled"):
        leaf += 1
    out = leaf * 3  # ResNet's `out += identity` inside the graph: PyTorch's values and gradients
    out += leaf
    out.sum().backward()
    assert out.numpy().tolist() == [4.0, 4.0] and leaf.grad.numpy().tolist() == [4.0, 4.0]
    numcnn.manual_seed(0)
    n = numcnn.zeros(10000).normal_(2.0, 0.5)
    u = numcnn.zeros(10000).uniform_(-1.0, 3.0)
    assert abs(float(n.mean()) - 2.0) < 0.02 and abs(float(n.std()) - 0.5) < 0.02
    assert u.numpy().min() >= -1.0 and u.numpy().max() < 3.0 and n.dtype == numcnn.float32


def test_factories_scripts_use():
    a = np.arange(6, dtype=np.float32)
    t = numcnn.from_numpy(a)
    a[0] = 9.0
    assert t.numpy()[0] == 9.0 and numcnn.as_tensor(t) is t and numcnn.as_tensor([1, 2]).dtype == numcnn.int64
    numcnn.manual_seed(3)
    p = numcnn.randperm(10)
    assert sorted(p.numpy().tolist()) == list(range(10)) and p.dtype == numcnn.int64
    np.testing.assert_array_equal(numcnn.linspace(0, 1, 5).numpy(), torch.linspace(0, 1, 5).numpy())
    np.testing.assert_array_equal(numcnn.eye(3, 2).numpy(), torch.eye(3, 2).numpy())
    for name in ("empty_like", "rand_like", "randn_like"):
        assert getattr(numcnn, name)(t).shape == (6,)
    assert numcnn.full_like(t, 2.5).numpy().tolist() == [2.5] * 6
    assert numcnn.allclose(t, t + 1e-9) and numcnn.equal(t, t.clone()) and not numcnn.equal(t, t[:3])
    assert numcnn.is_floating_point(t) and numcnn.get_default_dtype() == numcnn.float32
    with pytest.raises(TypeError, match="from_numpy"):
        numcnn.from_numpy([1, 2])


def test_set_grad_enabled_and_inference_mode_as_pytorch():
    x = numcnn.ones(2, requires_grad=True)
    with numcnn.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad
    with numcnn.inference_mode():
        assert not (x * 2).requires_grad

    @numcnn.set_grad_enabled(False)
    def f():
        return (x * 2).requires_grad

    assert f() is False and numcnn.is_grad_enabled()
    numcnn.set_grad_enabled(False)
    assert not numcnn.is_grad_enabled()
    numcnn.set_grad_enabled(True)
    assert numcnn.is_grad_enabled()

"""The surface PyTorch scripts touch outside the math, against PyTorch itself: devices, ``.to``, the function forms of
Tensor methods (``torch.max(x, 1)``), comparisons as methods, ``type()``, ``Size``, tensor printing and ``grad_fn``
graph nodes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import numcnn
import numcnn.backends.cudnn
from numcnn.autograd.function_forms import METHOD_FORMS


def same_text(ours: str, theirs: str) -> None:
    assert ours == theirs.replace("torch.", "numcnn."), (ours, theirs)


# -- devices ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [("cpu",), ("cuda",), ("cuda:1",), ("cuda", 0), ("mps",), ("cpu", 0)])
def test_device_is_made_and_printed_as_pytorch(args):
    ours, theirs = numcnn.device(*args), torch.device(*args)
    assert (ours.type, ours.index, str(ours)) == (theirs.type, theirs.index, str(theirs))
    same_text(repr(ours), repr(theirs))
    assert ours == numcnn.device(str(ours)) and hash(ours) == hash(numcnn.device(str(ours)))
    assert (ours == "cpu") == (theirs == "cpu")  # a device is not equal to its name, in PyTorch either


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "cpu:-1"])
def test_unknown_devices_are_refused_like_pytorch(bad):
    with pytest.raises(RuntimeError):
        torch.device(bad)
    with pytest.raises(RuntimeError, match="device"):
        numcnn.device(bad)


def test_device_generic_code_picks_the_cpu_and_runs():
    device = numcnn.device("cuda" if numcnn.cuda.is_available() else "cpu")
    assert device == numcnn.device("cpu") and not numcnn.backends.mps.is_available()
    assert numcnn.accelerator.current_accelerator() is None and numcnn.cuda.device_count() == 0
    numcnn.backends.cudnn.benchmark = True  # accepted, changes nothing
    model = numcnn.nn.Linear(3, 2).to(device)
    x = numcnn.ones(4, 3, device=device).to(device)
    assert model(x).device == device and x.is_cuda is False and x.cpu() is x and model.cpu() is model


def test_asking_for_a_gpu_is_a_clear_error():
    x = numcnn.ones(2)
    for call in (lambda: x.cuda(), lambda: x.to("cuda"), lambda: x.to("mps"), lambda: numcnn.nn.Linear(2, 2).cuda(),
                 lambda: numcnn.zeros(2, device="cuda:0"), lambda: numcnn.tensor([1.0], device="cuda")):
        with pytest.raises(RuntimeError, match="numcnn computes on the CPU only"):
            call()


def test_to_takes_pytorch_arguments():
    x, t = numcnn.ones(2, 3), torch.ones(2, 3)
    cases = [(("cpu",), {}), ((numcnn.float32,), {}), ((numcnn.float64,), {}), (("cpu", numcnn.float64), {}),
             ((), {"device": "cpu", "dtype": numcnn.float64}), ((numcnn.zeros(1, dtype=numcnn.float64),), {}),
             ((numcnn.float32,), {"copy": True}), (("cpu",), {"non_blocking": True})]
    for args, kwargs in cases:
        targs = [getattr(torch, a.name) if isinstance(a, numcnn.dtype) else torch.zeros(1, dtype=torch.float64)
                 if isinstance(a, numcnn.Tensor) else a for a in args]
        tkw = {k: getattr(torch, v.name) if isinstance(v, numcnn.dtype) else v for k, v in kwargs.items()}
        ours, theirs = x.to(*args, **kwargs), t.to(*targs, **tkw)
        assert ours.dtype.name == str(theirs.dtype).removeprefix("torch.")
        assert (ours is x) == (theirs is t), (args, kwargs)
    with pytest.raises(TypeError, match="unexpected keyword"):
        x.to(dtpye=numcnn.float64)


def test_module_to_casts_floats_and_refuses_integer_dtypes():
    m = numcnn.nn.Linear(2, 2)
    assert m.to("cpu", numcnn.float64) is m and m.weight.dtype == np.float64
    with pytest.raises(TypeError, match="only accepts floating point dtypes"):
        m.to(numcnn.int64)


def test_factories_take_size_and_device_keywords():
    numcnn.manual_seed(0)
    a = numcnn.rand(size=(2, 3), device="cpu")
    numcnn.manual_seed(0)
    assert np.array_equal(a.numpy(), numcnn.rand(2, 3).numpy())
    assert numcnn.zeros(size=(2, 3)).shape == numcnn.ones((2, 3)).shape == numcnn.empty(2, 3).shape == (2, 3)
    assert numcnn.randint(5, (3,)).numpy().max() < 5 and numcnn.randint(2, 4, (10,)).numpy().min() >= 2
    with pytest.raises(TypeError, match="by position or as size="):
        numcnn.zeros(2, size=(2,))
    with pytest.raises(TypeError, match="unexpected keyword argument 'shape'"):
        numcnn.ones(shape=(2,))


# -- function forms, comparisons, type, Size ----------------------------------------------------------------------

FORM_ARGS = {"add": (2.0,), "sub": (1.5,), "mul": (3.0,), "div": (2.0,), "pow": (2.0,), "clamp": (-0.5, 0.5),
             "eq": (0.0,), "ne": (0.0,), "lt": (0.1,), "le": (0.1,), "gt": (0.1,), "ge": (0.1,), "matmul": None,
             "reshape": ((6, 4),), "permute": ((1, 0, 2),), "transpose": (0, 2), "unsqueeze": (1,), "softmax": (1,),
             "log_softmax": (1,), "flatten": (1,), "argmax": (1,), "argmin": (2,), "sum": (1,), "mean": (2,),
             "var": (1,), "std": (2,), "squeeze": (), "log": None, "sqrt": None,
             "chunk": (2, 2), "split": (3, 2), "unbind": (1,), "narrow": (2, 1, 2), "flip": ((0, 2),), "sort": (1,),
             "topk": (2, 2), "cumsum": (1,), "index_select": (2, np.array([3, 0, 3])),
             "masked_fill": (np.random.default_rng(3).random((2, 3, 4)) > 0.5, 0.5)}
TWO_D = {"mm": (np.ones((4, 5), np.float32),), "t": ()}  # forms of 2-D (or batched 3-D) matrix products
ONE_D = {"outer": (np.arange(3, dtype=np.float32) - 1.5,)}

@pytest.mark.parametrize("name", METHOD_FORMS)
def test_function_forms_equal_pytorch(name):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    if name in ("log", "sqrt"):
        x = np.abs(x) + 0.1
    args = FORM_ARGS.get(name) or ()
    if name in ("matmul", "bmm"):
        args = (rng.standard_normal((2, 4, 5)).astype(np.float32),)
    if name in TWO_D:
        x, args = x[0], TWO_D[name]
    if name in ONE_D:
        x, args = x[0, 0], ONE_D[name]
    ours = getattr(numcnn, name)(numcnn.tensor(x), *[numcnn.tensor(a) if isinstance(a, np.ndarray) else a
                                                    for a in args])
    theirs = getattr(torch, name)(torch.from_numpy(x), *[torch.from_numpy(a) if isinstance(a, np.ndarray) else a
                                                        for a in args])
    if name == "numel":
        assert ours == theirs
        return
    pieces = (ours, theirs) if isinstance(theirs, tuple) else ((ours,), (theirs,))  # sort, topk, chunk, ...
    assert len(pieces[0]) == len(pieces[1])
    for o, t in zip(*pieces):
        np.testing.assert_allclose(np.asarray(o.numpy(), dtype=np.float64), t.numpy().astype(np.float64),
                                   rtol=1e-6, atol=1e-6)
        assert o.dtype.name == str(t.dtype).removeprefix("torch.")


def test_max_and_min_forms_as_scripts_use_them():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2, 5, 3)).astype(np.float32)
    values, indices = numcnn.max(numcnn.tensor(a), 1)
    tv, ti = torch.max(torch.from_numpy(a), 1)
    assert np.array_equal(values.numpy(), tv.numpy()) and np.array_equal(indices.numpy(), ti.numpy())
    assert float(numcnn.min(numcnn.tensor(a))) == float(torch.min(torch.from_numpy(a)))
    x, y = numcnn.tensor(a, requires_grad=True), numcnn.tensor(b, requires_grad=True)
    tx, ty = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    (numcnn.max(x, y) * 2).sum().backward()
    (torch.max(tx, ty) * 2).sum().backward()
    assert np.array_equal(x.grad.numpy(), tx.grad.numpy()) and np.array_equal(y.grad.numpy(), ty.grad.numpy())
    correct = (numcnn.tensor(a).argmax(axis=1) == numcnn.tensor([0, 1, 2, 0, 1])).sum().item()
    assert correct == (torch.from_numpy(a).argmax(axis=1) == torch.tensor([0, 1, 2, 0, 1])).sum().item()


def test_comparison_methods_and_type():
    a = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    for name in ("eq", "ne", "lt", "le", "gt", "ge", "greater", "less", "not_equal"):
        ours = getattr(numcnn.tensor(a), name)(numcnn.tensor([2.0, 2.0, 2.0]))
        theirs = getattr(torch.from_numpy(a), name)(torch.tensor([2.0, 2.0, 2.0]))
        assert ours.numpy().tolist() == theirs.numpy().tolist()
    for dtype in (np.float32, np.float64, np.int64, np.uint8, np.bool_):
        same_text(numcnn.tensor(np.zeros(2, dtype)).type(), torch.from_numpy(np.zeros(2, dtype)).type())
    assert numcnn.ones(2).type(numcnn.float64).dtype == np.float64
    assert numcnn.ones(2).type("torch.LongTensor").dtype == np.int64


@pytest.mark.parametrize("name", ["float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"])
def test_dtypes_print_as_pytorchs_and_work_as_numpys(name):
    ours, theirs = getattr(numcnn, name), getattr(torch, name)
    same_text(repr(ours), repr(theirs))
    same_text(str(numcnn.zeros(2, dtype=ours).dtype), str(torch.zeros(2, dtype=theirs).dtype))
    np_dtype = np.dtype(name)
    assert ours == np_dtype and ours == name and hash(ours) == hash(np_dtype) and np.zeros(1, ours).dtype == np_dtype
    assert ours.is_floating_point == theirs.is_floating_point and ours.itemsize == theirs.itemsize
    assert (numcnn.float, numcnn.double, numcnn.long, numcnn.half) == (numcnn.float32, numcnn.float64, numcnn.int64,
                                                                       numcnn.float16)


def test_size_prints_and_behaves_as_torch_size():
    x, t = numcnn.zeros(2, 3, 4), torch.zeros(2, 3, 4)
    same_text(repr(x.shape), repr(t.shape))
    same_text(repr(x.size()), repr(t.size()))
    assert x.shape == (2, 3, 4) and x.shape[1:] == t.shape[1:] and x.size(1) == 3 and x.shape.numel() == 24


# -- printing -----------------------------------------------------------------------------------------------------

def _printing_cases():
    g = torch.Generator().manual_seed(0)
    return [torch.tensor([[1.5, 2], [3, 4]]), torch.tensor([1, 2]), torch.tensor([1e-5, 1e5]), torch.tensor(3.0),
            torch.tensor([0.1, 0.25]), torch.tensor([1.0, -2.0]), torch.tensor([float("nan"), 1.5, float("inf")]),
            torch.tensor([1e9, 1.0]), torch.randn(4, 5, generator=g), torch.arange(2000.0),
            torch.randn(30, 40, generator=g), torch.zeros(2, 3, dtype=torch.float64), torch.tensor([True, False]),
            torch.zeros(0), torch.zeros(2, 0), torch.arange(12).reshape(2, 2, 3), torch.tensor([1e-3, 2e-2]),
            torch.randn(3, 3, generator=g) * 1e-6, torch.tensor([255, 0], dtype=torch.uint8)]


@pytest.mark.parametrize("i", range(len(_printing_cases())))
def test_tensors_print_as_pytorch_prints_them(i):
    t = _printing_cases()[i]
    same_text(repr(numcnn.tensor(t.numpy())), repr(t))


def test_requires_grad_and_grad_fn_in_print():
    same_text(repr(numcnn.tensor([1.0, 2.0], requires_grad=True)), repr(torch.tensor([1.0, 2.0], requires_grad=True)))
    same_text(repr(numcnn.tensor([1.0, 2.0], requires_grad=True) * 2),
              repr(torch.tensor([1.0, 2.0], requires_grad=True) * 2))


# -- grad_fn as a graph ---------------------------------------------------------------------------------------------

def walk(node, depth=0) -> list:
    """(depth, name) of every node under ``node``, in next_functions order (PyTorch's autograd tutorial does this)."""
    if node is None:
        return [(depth, None)]
    out = [(depth, node.name())]
    for child, _ in node.next_functions:
        out += walk(child, depth + 1)
    return out


def test_grad_fn_graph_walks_as_pytorchs():
    def build(lib, x, w, b):
        return ((x * w + b).exp() / 2 - x.neg()).pow(2).sum()

    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(3).astype(np.float32) for _ in range(3)]
    ours = build(numcnn, *[numcnn.tensor(a, requires_grad=i > 0) for i, a in enumerate(arrays)])
    theirs = build(torch, *[torch.tensor(a, requires_grad=i > 0) for i, a in enumerate(arrays)])
    assert walk(ours.grad_fn) == walk(theirs.grad_fn)
    leaf = ours.grad_fn.next_functions[0][0]
    while leaf.name() != "torch::autograd::AccumulateGrad":
        leaf = next(n for n, _ in leaf.next_functions if n is not None)
    assert leaf.variable.shape == (3,) and leaf.variable.requires_grad
    ours.backward()
    assert ours.grad_fn.name() == "SumBackward0"  # the node keeps its name after backward freed its values


NODE_CASES = {  # PyTorch's node name for each operation a CNN script records
    "conv2d": lambda L, x, a: L.nn.functional.conv2d(x, L.ones(4, 3, 3, 3)),
    "conv_transpose2d": lambda L, x, a: L.nn.functional.conv_transpose2d(x, L.ones(3, 2, 3, 3)),
    "linear": lambda L, x, a: L.nn.functional.linear(a, L.ones(3, 4), L.ones(3)),
    "linear, no bias": lambda L, x, a: L.nn.functional.linear(a, L.ones(3, 4)),
    "matmul": lambda L, x, a: a @ L.ones(4, 2),
    "max_pool2d": lambda L, x, a: L.nn.functional.max_pool2d(x, 2),
    "avg_pool2d": lambda L, x, a: L.nn.functional.avg_pool2d(x, 2),
    "adaptive_avg_pool2d": lambda L, x, a: L.nn.functional.adaptive_avg_pool2d(x, (2, 2)),
    "batch_norm": lambda L, x, a: L.nn.functional.batch_norm(x, L.zeros(3), L.ones(3), training=True),
    "layer_norm": lambda L, x, a: L.nn.functional.layer_norm(x, (8,)),
    "relu": lambda L, x, a: L.nn.functional.relu(x),
    "leaky_relu": lambda L, x, a: L.nn.functional.leaky_relu(x),
    "elu": lambda L, x, a: L.nn.functional.elu(x),
    "gelu": lambda L, x, a: L.nn.functional.gelu(x),
    "dropout": lambda L, x, a: L.nn.functional.dropout(x, 0.5, True),
    "cross_entropy": lambda L, x, a: L.nn.functional.cross_entropy(a, L.tensor([0, 1, 2, 3, 0])),
    "nll_loss": lambda L, x, a: L.nn.functional.nll_loss(a, L.tensor([0, 1, 2, 3, 0])),
    "view": lambda L, x, a: x.view(2, -1),
    "flatten": lambda L, x, a: x.flatten(1),
    "x[0]": lambda L, x, a: x[0],
    "x[:, 1:]": lambda L, x, a: x[:, 1:],
    "x[[0, 1]]": lambda L, x, a: x[[0, 1]],
    "double": lambda L, x, a: x.double(),
    "sum": lambda L, x, a: x.sum(),
    "sum(1)": lambda L, x, a: x.sum(1),
    "mean": lambda L, x, a: x.mean(),
    "mean(1)": lambda L, x, a: x.mean(1),
    "max": lambda L, x, a: x.max(),
    "max(1)": lambda L, x, a: x.max(1)[0],
    "min": lambda L, x, a: x.min(),
    "clamp": lambda L, x, a: x.clamp(0, 1),
    "x ** 2": lambda L, x, a: x**2,
    "x ** x": lambda L, x, a: x.abs() ** x,
    "2 ** x": lambda L, x, a: 2**x,
}


@pytest.mark.parametrize("case", sorted(NODE_CASES))
def test_grad_fn_names_are_pytorchs(case):
    rng = np.random.default_rng(0)
    x, a = rng.standard_normal((2, 3, 8, 8)).astype(np.float32), rng.standard_normal((5, 4)).astype(np.float32)
    names = [NODE_CASES[case](L, L.tensor(x, requires_grad=True), L.tensor(a, requires_grad=True)).grad_fn.name()
             for L in (numcnn, torch)]
    assert names[0] == names[1]


# -- generators, outer, format ------------------------------------------------------------------------------------

def test_generator_seeds_and_states_as_pytorchs():
    ours, theirs = numcnn.Generator(), torch.Generator()
    assert ours.initial_seed() == theirs.initial_seed() == 67280421310721
    assert ours.manual_seed(42) is ours and theirs.manual_seed(42) is theirs
    for seed in (0, 2**64 - 1, -1, -2**63):
        assert ours.manual_seed(seed).initial_seed() == theirs.manual_seed(seed).initial_seed()
    for bad in (2**64, -2**63 - 1):
        with pytest.raises(RuntimeError, match="seed must be within the range"):
            ours.manual_seed(bad)
    with pytest.raises(TypeError, match="expected an int seed, got float"):
        ours.manual_seed(1.5)
    assert ours.device == numcnn.device("cpu")
    with pytest.raises(RuntimeError, match="CPU only"):
        numcnn.Generator("cuda")
    # Same seed, same draws (NumPy's PCG64: not torch's numbers); a saved state continues the stream exactly.
    a = numcnn.randn(5, generator=numcnn.Generator().manual_seed(3))
    np.testing.assert_array_equal(a.numpy(), np.random.default_rng(3).standard_normal(5, dtype=np.float32))
    g = numcnn.Generator().manual_seed(9)
    numcnn.rand(7, generator=g)
    state = g.get_state()
    assert state.dtype == numcnn.uint8 and tuple(state.shape) == (40,)
    first = numcnn.randperm(10, generator=g)
    assert g.set_state(state) is g
    np.testing.assert_array_equal(numcnn.randperm(10, generator=g).numpy(), first.numpy())
    with pytest.raises(TypeError, match="uint8 Tensor of 40 bytes"):
        g.set_state(numcnn.zeros(40))
    with pytest.raises(ValueError, match="not a state that get_state returned"):
        g.set_state(numcnn.zeros(40, dtype=numcnn.uint8))


def test_generator_drives_every_generator_argument():
    def draws(g):
        split = numcnn.utils.data.random_split(range(10), [7, 3], generator=g)
        loader = numcnn.utils.data.DataLoader(range(6), batch_size=6, shuffle=True, generator=g)
        return [list(split[0].indices), next(iter(loader)).tolist(), numcnn.nn.init.uniform_(numcnn.empty(3),
                                                                                               generator=g).tolist()]

    assert draws(numcnn.Generator().manual_seed(5)) == draws(np.random.default_rng(5))


def test_global_rng_state_round_trip_and_seed():
    numcnn.manual_seed(4)
    state = numcnn.get_rng_state()
    first = numcnn.rand(4)
    numcnn.set_rng_state(state)
    np.testing.assert_array_equal(numcnn.rand(4).numpy(), first.numpy())
    assert numcnn.initial_seed() == 4
    s = numcnn.seed()
    assert numcnn.initial_seed() == s and 0 <= s < 2**64
    np.testing.assert_array_equal(numcnn.rand(3).numpy(), np.random.default_rng(s).random(3, dtype=np.float32))
    numcnn.manual_seed(0)


def test_outer_values_and_gradients_equal_pytorch():
    a, b = np.array([1.5, -2.0, 0.25], np.float32), np.array([3.0, -1.0], np.float32)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    na, nb = numcnn.tensor(a, requires_grad=True), numcnn.tensor(b, requires_grad=True)
    w = np.arange(6, dtype=np.float32).reshape(3, 2)
    (torch.outer(ta, tb) * torch.tensor(w)).sum().backward()
    out = na.outer(nb)
    (out * numcnn.tensor(w)).sum().backward()
    np.testing.assert_array_equal(out.detach().numpy(), torch.outer(ta, tb).detach().numpy())
    np.testing.assert_array_equal(na.grad.numpy(), ta.grad.numpy())
    np.testing.assert_array_equal(nb.grad.numpy(), tb.grad.numpy())
    with pytest.raises(RuntimeError, match="expected two 1-D tensors, got 2-D and 1-D"):
        numcnn.outer(numcnn.ones(2, 2), nb)


def test_format_spec_on_one_element_tensors_as_pytorch():
    for value in (3.14159, -0.5, 12345.678):
        for spec in (".4f", "8.2f", ".3e", "", ">10.1f"):
            assert format(numcnn.tensor(value), spec) == format(torch.tensor(value), spec)
    assert f"{numcnn.tensor(7)}" == f"{torch.tensor(7)}" and f"{numcnn.tensor(7):03d}" == f"{torch.tensor(7):03d}"
    assert f"{numcnn.tensor([1.0, 2.0])}" == f"{torch.tensor([1.0, 2.0])}"
    with pytest.raises(TypeError, match="unsupported format string passed to Tensor.__format__"):
        f"{numcnn.tensor([1.0, 2.0]):.2f}"
    with pytest.raises(TypeError, match="unsupported format string passed to Tensor.__format__"):
        f"{torch.tensor([1.0, 2.0]):.2f}"

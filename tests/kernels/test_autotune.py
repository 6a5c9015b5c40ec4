"""kernels.conv.autotune: the algorithm table behind conv2d's algorithm="auto" (kept in ``runtime.algorithms``),
autotuning, loading and validating tables.

Timings are real in one test and faked (``autotune._time_candidate`` patched) where a test needs a known winner.
Every test runs inside ``runtime.scoped(autotune=False, algorithms={})``: nothing it sets leaks into other tests."""

from __future__ import annotations

import inspect
import threading

import numpy as np
import pytest

import numcnn
import numcnn.nn.functional as F
from numcnn.kernels import conv as K
from numcnn.kernels.conv import autotune
from numcnn.kernels.runtime import runtime

torch = pytest.importorskip("torch")
TF = torch.nn.functional

TINY = "x=2x3x6x6 w=4x3x3x3 s=1x1 p=1,1,1,1 d=1x1 g=1 float32"
PASSES = ("forward", "input", "weight")


@pytest.fixture(autouse=True)
def _fresh_runtime():
    """Autotune off and an empty table for the test; everything (budget and threads too) restored afterwards."""
    with runtime.scoped(autotune=False, algorithms={}):
        yield


def geometry(x_shape=(2, 3, 6, 6), w_shape=(4, 3, 3, 3), stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1),
             groups=1):
    return K.ConvGeometry.of(x_shape, w_shape, stride, padding, dilation, groups)


def fake_timings(monkeypatch, ms: dict[str, float]) -> list[str]:
    """Make ``ms[candidate]`` the measured time of each candidate; returns the list of candidates timed."""
    timed = []

    def fake(geo, algorithm, x, w, b, dy):
        timed.append(algorithm)
        return ms.get(algorithm, 100.0)  # a candidate the test does not name ("auto") is the slowest

    monkeypatch.setattr(autotune, "_time_candidate", fake)
    return timed


def record_kernel_algorithms(monkeypatch) -> list[tuple[str, str]]:
    """Wrap the three conv kernels conv2d calls (K.forward, K.backward_input, K.backward_weight) to log
    (kernel, algorithm) of every call."""
    calls = []
    for name in ("forward", "backward_input", "backward_weight"):
        original = getattr(K, name)
        signature = inspect.signature(getattr(K.dispatch, name))  # original may be an earlier wrapper

        def wrapper(*args, _original=original, _name=name, _signature=signature, **kwargs):
            bound = _signature.bind(*args, **kwargs)
            bound.apply_defaults()
            calls.append((_name, bound.arguments["algorithm"]))
            return _original(*args, **kwargs)

        monkeypatch.setattr(K, name, wrapper)
    return calls


def arrays(rng, x_shape=(2, 3, 6, 6), w_shape=(4, 3, 3, 3)):
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    return x, w, b


def conv_with_grads(x, w, b, **kw):
    """(y, dx, dw, db) of numcnn's conv2d for the upstream gradient cos(y)."""
    xt, wt, bt = (numcnn.tensor(a.copy(), requires_grad=True) for a in (x, w, b))
    y = F.conv2d(xt, wt, bt, **kw)
    y.backward(np.cos(y.numpy()).astype(np.float32))
    return y.numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


def torch_conv_with_grads(x, w, b, stride=1, padding=0, dilation=1, groups=1):
    xt, wt, bt = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (x, w, b))
    y = TF.conv2d(xt, wt, bt, stride, padding, dilation, groups)
    y.backward(torch.cos(y.detach()))
    return y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


def test_autotune_measures_each_candidate_and_keeps_the_fastest(rng):
    x, w, b = arrays(rng)
    runtime.autotune = True
    got = conv_with_grads(x, w, b, padding=1)
    with numcnn.no_grad():
        F.conv2d(numcnn.tensor(x), numcnn.tensor(w), numcnn.tensor(b), padding=1)
    table, report = runtime.algorithms, runtime.timings
    assert set(table) == {f"{TINY} train", f"{TINY} infer"}
    for key, alg in table.items():
        times = report[key]
        assert set(times) == {"auto", "im2col", "rowshift"}  # one time per candidate, "reference"/"gemm" never
        assert all(0 < t < 1e4 for t in times.values()), times
        assert alg == min(times, key=times.get)
    want = torch_conv_with_grads(x, w, b, padding=1)
    for g, t, name in zip(got, want, ("y", "dx", "dw", "db")):
        np.testing.assert_allclose(g, t, rtol=1e-4, atol=1e-5, err_msg=name)


def test_the_key_spells_out_the_call():
    # the example of the module's docstring: a train-mode 5x5 'same' conv on 14x14
    key = "x=100x16x14x14 w=32x16x5x5 s=1x1 p=2,2,2,2 d=1x1 g=1 float32 train"
    geo = geometry((100, 16, 14, 14), (32, 16, 5, 5), padding=((2, 2), (2, 2)))
    assert autotune.key(geo, np.float32, True) == key
    runtime.load_algorithms({key: "rowshift"})
    assert K.choose(geo, "weight") == "im2col"  # the rule alone would mix algorithms
    assert autotune.select(geo, np.float32, backward=True) == "rowshift"
    # the "infer" key is another entry; without an entry the kernels decide per pass ("auto")
    assert autotune.select(geo, np.float32, backward=False) == "auto"
    assert autotune.select(geo, np.float64, backward=True) == "auto"


@pytest.mark.parametrize("fastest", ["im2col", "rowshift"])
def test_autotuned_outputs_and_gradients_match_the_default_and_torch(rng, monkeypatch, fastest):
    slow = "rowshift" if fastest == "im2col" else "im2col"
    cases = [dict(padding=1), dict(padding=(2, 0), dilation=2), dict(groups=2, padding=1)]
    for kw in cases:
        x, w, b = arrays(rng, (2, 4, 7, 6), (4, 4 // kw.get("groups", 1), 3, 3))
        default = conv_with_grads(x, w, b, **kw)
        want = torch_conv_with_grads(x, w, b, **kw)
        with runtime.scoped(autotune=True, algorithms={}):  # each case tunes its own table
            fake_timings(monkeypatch, {fastest: 1.0, slow: 2.0})
            calls = record_kernel_algorithms(monkeypatch)
            got = conv_with_grads(x, w, b, **kw)
            monkeypatch.undo()
        assert not runtime.autotune and runtime.algorithms == {}
        assert {a for _, a in calls} == {fastest}, kw
        assert len(calls) == 3  # forward, grad-input and grad-weight, all with the one choice
        for g, d, t, name in zip(got, default, want, ("y", "dx", "dw", "db")):
            np.testing.assert_allclose(g, d, rtol=1e-5, atol=1e-5, err_msg=f"{name} {kw}")
            np.testing.assert_allclose(g, t, rtol=1e-4, atol=1e-5, err_msg=f"{name} {kw}")


def test_a_table_entry_forces_the_algorithm_bit_for_bit(rng, monkeypatch):
    monkeypatch.setattr(runtime, "backend", "numpy")  # the NumPy kernels' fixed rule (compiled: direct for all)
    x, w, b = arrays(rng)
    geo = geometry(x.shape, w.shape)
    assert K.choose(geo, "forward") == "im2col"
    # what "auto" runs without an entry, pass by pass, and what the entry makes it run
    assert K.plan(geo) == K.Plan("im2col", "rowshift", "im2col")
    assert K.plan(geo, "im2col") == K.Plan("im2col", "grid", "im2col")
    assert K.plan(geo, "rowshift") == K.Plan("rowshift", "rowshift", "rowshift")
    explicit = conv_with_grads(x, w, b, padding=1, algorithm="rowshift")
    fixed_rule = conv_with_grads(x, w, b, padding=1)
    runtime.load_algorithms({f"{TINY} train": "rowshift"})
    monkeypatch.setattr(autotune, "measure", lambda *a: pytest.fail("a table entry must not be measured"))
    for tune in (False, True):  # a loaded table wins with autotune off and on
        runtime.autotune = tune
        calls = record_kernel_algorithms(monkeypatch)
        got = conv_with_grads(x, w, b, padding=1)
        assert calls == [("forward", "rowshift"), ("backward_input", "rowshift"), ("backward_weight", "rowshift")]
        for g, e, name in zip(got, explicit, ("y", "dx", "dw", "db")):
            np.testing.assert_array_equal(g, e, err_msg=name)
    # and the two algorithms do not give the same bits here, so the entry is what decided
    assert any(not np.array_equal(a, e) for a, e in zip(fixed_rule, explicit))


def test_without_table_or_autotune_the_fixed_rule_decides(monkeypatch, rng):
    monkeypatch.setattr(autotune, "measure", lambda *a: pytest.fail("autotune is off"))
    cases = [((1, 32, 14, 14), (32, 32, 3, 3), (1, 1), ((1, 1), (1, 1))),  # the rule's rowshift case
             ((1, 16, 14, 14), (32, 16, 5, 5), (1, 1), ((2, 2), (2, 2))),
             ((1, 32, 14, 14), (32, 32, 3, 3), (2, 2), ((1, 1), (1, 1)))]
    geos = [geometry(xs, ws, s, p) for xs, ws, s, p in cases]
    # "auto" goes down to the kernels, which apply the fixed rule pass by pass
    assert [autotune.select(geo, np.float32, True) for geo in geos] == ["auto"] * 3
    runtime.load_algorithms({"some other key": "im2col"})  # a table without this key: still the rule
    assert autotune.select(geos[0], np.float32, True) == "auto"
    calls = record_kernel_algorithms(monkeypatch)
    x, w, b = arrays(rng, (2, 32, 14, 14), (32, 32, 3, 3))
    conv_with_grads(x, w, b, padding=1)
    assert {a for _, a in calls} == {"auto"}
    assert [K.choose(geometry((2, 32, 14, 14), (32, 32, 3, 3)), p) for p in PASSES] == ["rowshift", "rowshift",
                                                                                        "im2col"]
    # the strided case: im2col forward and grad-weight, col2im grad-input
    assert [K.choose(geos[2], p) for p in PASSES] == ["im2col", "col2im", "im2col"]


def test_stride_2_layers_never_get_rowshift(rng, monkeypatch):
    timed = fake_timings(monkeypatch, {"im2col": 5.0, "rowshift": 0.1})
    runtime.autotune = True
    x, w, b = arrays(rng, (2, 3, 9, 9))
    y, dx, dw, db = conv_with_grads(x, w, b, stride=2, padding=1)
    conv_with_grads(x, w, b, stride=(1, 2), padding=1)
    table = runtime.algorithms
    assert table == {"x=2x3x9x9 w=4x3x3x3 s=2x2 p=1,1,1,1 d=1x1 g=1 float32 train": "im2col",
                     "x=2x3x9x9 w=4x3x3x3 s=1x2 p=1,1,1,1 d=1x1 g=1 float32 train": "im2col"}
    assert timed == ["im2col", "im2col"]  # rowshift was never even timed
    assert set(runtime.timings["x=2x3x9x9 w=4x3x3x3 s=2x2 p=1,1,1,1 d=1x1 g=1 float32 train"]) == {"im2col"}
    want = torch_conv_with_grads(x, w, b, stride=2, padding=1)
    for g, t in zip((y, dx, dw, db), want):
        np.testing.assert_allclose(g, t, rtol=1e-4, atol=1e-5)


def test_conv1d_goes_through_the_table(rng, monkeypatch):
    fake_timings(monkeypatch, {"im2col": 2.0, "rowshift": 1.0})
    runtime.autotune = True
    x, w = rng.standard_normal((2, 3, 9)).astype(np.float32), rng.standard_normal((4, 3, 3)).astype(np.float32)
    xt, wt = numcnn.tensor(x, requires_grad=True), numcnn.tensor(w, requires_grad=True)
    y = F.conv1d(xt, wt, padding=1)
    assert runtime.algorithms == {"x=2x3x1x9 w=4x3x1x3 s=1x1 p=0,0,1,1 d=1x1 g=1 float32 train": "rowshift"}
    np.testing.assert_allclose(y.numpy(), TF.conv1d(torch.from_numpy(x), torch.from_numpy(w), padding=1).numpy(),
                               rtol=1e-4, atol=1e-5)


def test_float64_is_timed_and_keyed_as_float64(rng, monkeypatch):
    seen = []

    def fake(geo, algorithm, x, w, b, dy):
        seen.append((x.dtype, w.dtype, b.dtype, dy.dtype))
        return 1.0

    monkeypatch.setattr(autotune, "_time_candidate", fake)
    runtime.autotune = True
    x, w, b = (a.astype(np.float64) for a in arrays(rng))
    xt = numcnn.tensor(x, requires_grad=True)
    y = F.conv2d(xt, numcnn.tensor(w), numcnn.tensor(b), padding=1)
    assert y.dtype == np.float64 and seen == [(np.float64,) * 4] * len(autotune.CANDIDATES)
    assert list(runtime.algorithms) == [TINY.replace("float32", "float64") + " train"]
    want = TF.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), padding=1).numpy()
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({f"{TINY} train": "naive"}, "got 'naive'"),
        ({f"{TINY} train": "reference"}, "got 'reference'"),
        ({f"{TINY} train": "autotune"}, "got 'autotune'"),
        ({f"{TINY} train": 1}, "got 1"),
        ({3: "im2col"}, "keys must be strings, got 3"),
        ({"x=2x3x9x9 w=4x3x3x3 s=2x2 p=1,1,1,1 d=1x1 g=1 float32 train": "rowshift"}, "needs stride 1x1"),
        ({"x=2x3x9x9 w=4x3x3x3 s=1x2 p=1,1,1,1 d=1x1 g=1 float32 infer": "rowshift"}, "has stride 1x2"),
        (["im2col"], "expected a dict"),
    ],
)
def test_invalid_tables_are_refused_and_leave_the_table_alone(table, message):
    before = {f"{TINY} infer": "rowshift"}
    runtime.load_algorithms(before)
    with pytest.raises(ValueError, match="algorithm table") as e:
        runtime.load_algorithms({f"{TINY} train": "im2col", **table} if isinstance(table, dict) else table)
    assert message in str(e.value)
    if isinstance(table, dict):
        assert repr(next(iter(table))) in str(e.value)  # names the bad entry
    assert runtime.algorithms == before


def test_check_entry_is_the_check_the_runtime_applies():
    autotune.check_entry(f"{TINY} train", "rowshift")
    autotune.check_entry("not a key of ours: s=2x2", "rowshift")  # keys we cannot parse get the value check only
    with pytest.raises(ValueError, match="needs stride 1x1"):
        autotune.check_entry("x=2x3x9x9 w=4x3x3x3 s=2x2 p=1,1,1,1 d=1x1 g=1 float32 train", "rowshift")
    with pytest.raises(ValueError, match="got 'winograd'"):
        autotune.check_entry(f"{TINY} train", "winograd")


def test_loading_replaces_the_table_and_keys_we_cannot_parse_get_the_value_check_only():
    runtime.load_algorithms({"a": "im2col"})
    loaded = {"from another version: s=2x2": "rowshift", f"{TINY} train": "im2col"}
    runtime.load_algorithms(loaded)
    assert runtime.algorithms == {"from another version: s=2x2": "rowshift", f"{TINY} train": "im2col"}
    loaded["b"] = "rowshift"  # the table is a copy of what was loaded: editing that changes nothing
    saved = runtime.state_dict()["algorithms"]
    saved["c"] = "rowshift"  # and what a checkpoint saves is a copy too
    assert "b" not in runtime.algorithms and "c" not in runtime.algorithms and runtime.timings == {}
    runtime.load_algorithms({})
    assert runtime.algorithms == {}


def test_loading_a_table_drops_the_timings_of_measured_entries(rng, monkeypatch):
    fake_timings(monkeypatch, {"im2col": 1.0, "rowshift": 2.0})
    runtime.autotune = True
    conv_with_grads(*arrays(rng), padding=1)
    assert runtime.algorithms == {f"{TINY} train": "im2col"}
    assert runtime.timings == {f"{TINY} train": {"auto": 100.0, "im2col": 1.0, "rowshift": 2.0}}
    runtime.load_algorithms({f"{TINY} train": "rowshift"})  # not measured here: no timings behind it
    assert runtime.timings == {}


def test_threads_autotuning_one_key_agree(monkeypatch):
    winners = iter(["im2col", "rowshift"] * 8)  # each thread's own measurement would pick another winner
    lock = threading.Lock()

    def fake_measure(geo, dtype, backward):
        with lock:
            w = next(winners)
        return {"im2col": 1.0 if w == "im2col" else 2.0, "rowshift": 1.0 if w == "rowshift" else 2.0}

    monkeypatch.setattr(autotune, "measure", fake_measure)
    runtime.autotune = True
    barrier = threading.Barrier(8)
    got = []

    def work():
        barrier.wait()
        got.append(autotune.select(geometry(), np.float32, True))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    table = runtime.algorithms
    assert len(got) == 8 and set(got) == {table[f"{TINY} train"]}

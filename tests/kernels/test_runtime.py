"""kernels.runtime: the one object holding the kernels' process-wide state (threads, memory budget, pool, algorithm
table, autotune flag). Its state round-trips through state_dict / load_state_dict (and JSON), bad state is refused
whole, scoped() restores everything even after an exception, and the settings really act: the BLAS pool follows
``threads``, the pool empties when the budget changes, and a small budget cuts a convolution into other chunks without
changing its result beyond float rounding.

Every test runs inside ``runtime.scoped()``: nothing it sets leaks into other tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import numcnn
import numcnn.nn.functional as F
from numcnn.kernels import conv as K
from numcnn.kernels import workspace
from numcnn.kernels.conv import autotune
from numcnn.kernels.runtime import Runtime, runtime

TRAIN = "x=2x3x6x6 w=4x3x3x3 s=1x1 p=1,1,1,1 d=1x1 g=1 float32 train"
INFER = "x=2x3x6x6 w=4x3x3x3 s=1x1 p=1,1,1,1 d=1x1 g=1 float32 infer"
STRIDE_2 = "x=2x3x9x9 w=4x3x3x3 s=2x2 p=1,1,1,1 d=1x1 g=1 float32 train"
MIB = 1 << 20


@pytest.fixture(autouse=True)
def _restore_runtime():
    with runtime.scoped():
        yield


def _blas_threads() -> list[int]:
    return [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]


def _known_state() -> dict:
    """Put the runtime in a known state (not the defaults) and return it."""
    runtime.memory_budget = MIB
    runtime.autotune = False
    runtime.load_algorithms({INFER: "rowshift"})
    return _state()


def _strip(state: dict) -> dict:
    """A state without its backend (the backend's own tests are below)."""
    return {k: v for k, v in state.items() if k != "backend"}


def _state() -> dict:
    return _strip(runtime.state_dict())


def test_the_runtime_is_one_object():
    assert numcnn.runtime is runtime and isinstance(runtime, Runtime)


def test_state_dict_round_trips_through_json():
    runtime.memory_budget = 3 * MIB
    runtime.autotune = True
    runtime.load_algorithms({TRAIN: "rowshift", INFER: "im2col"})
    state = runtime.state_dict()
    assert _strip(state) == {"memory_budget": 3 * MIB, "algorithms": {TRAIN: "rowshift", INFER: "im2col"},
                             "autotune": True}
    text = json.dumps(state)  # plain JSON values: what a checkpoint's state.json holds

    runtime.load_state_dict({"memory_budget": 8 * MIB, "algorithms": {}, "autotune": False})
    assert _state() == {"memory_budget": 8 * MIB, "algorithms": {}, "autotune": False}
    assert runtime.memory_budget == 8 * MIB and runtime.algorithms == {} and not runtime.autotune

    runtime.load_state_dict(json.loads(text))
    assert runtime.state_dict() == state
    assert runtime.memory_budget == 3 * MIB and runtime.autotune
    assert runtime.algorithms == {TRAIN: "rowshift", INFER: "im2col"} and runtime.timings == {}

    copy = runtime.state_dict()
    copy["algorithms"]["another key"] = "im2col"  # a copy: editing it changes nothing
    assert "another key" not in runtime.algorithms


def test_load_state_dict_keeps_what_the_state_lacks_and_never_touches_threads():
    state = _known_state()
    threads = runtime.threads
    runtime.load_state_dict({"autotune": True})
    assert _state() == {**state, "autotune": True}
    runtime.load_state_dict({"memory_budget": 2 * MIB})
    assert _state() == {**state, "autotune": True, "memory_budget": 2 * MIB}
    runtime.load_state_dict({"algorithms": {TRAIN: "im2col"}})
    assert _state() == {"memory_budget": 2 * MIB, "algorithms": {TRAIN: "im2col"}, "autotune": True}
    runtime.load_state_dict({})
    assert _state() == {"memory_budget": 2 * MIB, "algorithms": {TRAIN: "im2col"}, "autotune": True}
    assert "threads" not in runtime.state_dict() and runtime.threads == threads  # results never depend on it


VALID = {"memory_budget": 4096, "algorithms": {TRAIN: "im2col"}, "autotune": True}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"threads": 2}, "unknown keys ['threads']"),
        ({"conv_algorithms": {}}, "unknown keys ['conv_algorithms']"),
        ({"memory_budget": 0}, "expected a positive int, got 0"),
        ({"memory_budget": -4096}, "expected a positive int, got -4096"),
        ({"memory_budget": 1.5 * MIB}, "expected a positive int, got 1572864.0"),
        ({"memory_budget": "8388608"}, "expected a positive int, got '8388608'"),
        ({"memory_budget": True}, "expected a positive int, got True"),
        ({"autotune": 1}, "autotune must be true or false, got 1"),
        ({"autotune": "yes"}, "autotune must be true or false, got 'yes'"),
        ({"autotune": None}, "autotune must be true or false, got None"),
        ({"algorithms": {"k": "winograd"}},
         "entry 'k': expected one of ('auto', 'im2col', 'rowshift'), got 'winograd'"),
        ({"algorithms": {STRIDE_2: "rowshift"}}, f"entry {STRIDE_2!r}: 'rowshift' needs stride 1x1"),
        ({"algorithms": {TRAIN: "im2col", 7: "im2col"}}, "keys must be strings, got 7"),
        ({"algorithms": ["im2col"]}, "expected a dict of key -> algorithm, got list"),
    ],
)
def test_load_state_dict_refuses_bad_state_and_changes_nothing(bad, message):
    before = _known_state()
    threads = runtime.threads
    a = workspace.take((50, 40), np.float32)
    workspace.give(a)
    pooled = runtime.pool.nbytes
    assert pooled >= a.nbytes == 8000
    # every other entry valid (and different from the current state): still nothing may change
    with pytest.raises(ValueError) as e:
        runtime.load_state_dict({**VALID, **bad})
    assert message in str(e.value)
    assert _state() == before and runtime.threads == threads
    assert runtime.pool.nbytes == pooled  # not even the pool was emptied (the budget did not change)


@pytest.mark.parametrize("bad", [["memory_budget"], None, "autotune", 3])
def test_load_state_dict_refuses_a_state_that_is_not_a_dict(bad):
    before = _known_state()
    with pytest.raises(ValueError, match="runtime state: expected a dict"):
        runtime.load_state_dict(bad)
    assert _state() == before


def test_scoped_applies_its_settings_and_restores_everything_after_an_exception(monkeypatch):
    runtime.threads = 2
    before = _known_state()
    assert runtime.threads == 2 and _blas_threads() and set(_blas_threads()) == {2}
    monkeypatch.setattr(autotune, "measure", lambda geo, dtype, backward: {"im2col": 2.0, "rowshift": 1.0})
    geo = K.ConvGeometry.of((2, 3, 6, 6), (4, 3, 3, 3), (1, 1), ((1, 1), (1, 1)))

    with pytest.raises(RuntimeError, match="boom"):
        with runtime.scoped(threads=1, memory_budget=4096, autotune=True, algorithms={INFER: "im2col"}) as rt:
            assert rt is runtime
            assert runtime.threads == 1 and numcnn.get_num_threads() == 1 and set(_blas_threads()) == {1}
            assert _state() == {"memory_budget": 4096, "algorithms": {INFER: "im2col"}, "autotune": True}
            assert runtime.pool_limit() == 4 * 4096
            # changes made inside the block are undone too: a measured entry and its timings, another budget
            assert autotune.select(geo, np.float32, True) == "rowshift"
            assert runtime.algorithms == {INFER: "im2col", TRAIN: "rowshift"}
            assert runtime.timings == {TRAIN: {"im2col": 2.0, "rowshift": 1.0}}
            runtime.memory_budget = 8192
            raise RuntimeError("boom")

    assert _state() == before and runtime.timings == {}
    assert runtime.threads == 2 and numcnn.get_num_threads() == 2 and set(_blas_threads()) == {2}
    assert runtime.pool_limit() == 4 * MIB


def test_scoped_with_a_bad_setting_raises_and_restores_what_it_had_applied():
    runtime.threads = 2
    before = _known_state()
    with pytest.raises(ValueError, match="got 'winograd'"):
        with runtime.scoped(threads=1, memory_budget=4096, autotune=True, algorithms={"k": "winograd"}):
            pytest.fail("the block must not run")
    assert _state() == before and runtime.threads == 2 and set(_blas_threads()) == {2}
    with pytest.raises(ValueError, match="memory_budget"):
        with runtime.scoped(memory_budget=0):
            pytest.fail("the block must not run")
    assert _state() == before


def test_scoped_nests_and_keeps_an_empty_table_empty():
    runtime.load_algorithms({})
    runtime.memory_budget = MIB
    with runtime.scoped(memory_budget=2 * MIB, algorithms={TRAIN: "rowshift"}):
        with runtime.scoped(memory_budget=4096, autotune=True):
            assert _state() == {"memory_budget": 4096, "algorithms": {TRAIN: "rowshift"},
                                            "autotune": True}
            runtime.load_algorithms({INFER: "im2col"})
        assert _state() == {"memory_budget": 2 * MIB, "algorithms": {TRAIN: "rowshift"},
                                        "autotune": False}
    assert _state() == {"memory_budget": MIB, "algorithms": {}, "autotune": False}


def test_setting_the_memory_budget_empties_the_pool():
    runtime.memory_budget = MIB
    a = workspace.take((100, 100), np.float32)
    workspace.give(a)
    assert runtime.pool.nbytes == 40_000
    runtime.memory_budget = 2 * MIB
    assert runtime.pool.nbytes == 0 and runtime.pool_limit() == 8 * MIB
    assert workspace.take((100, 100), np.float32) is not a  # it was dropped, not kept for reuse

    b = workspace.take((100, 100), np.float32)
    workspace.give(b)
    assert runtime.pool.nbytes == 40_000
    with pytest.raises(ValueError, match="memory_budget"):
        runtime.memory_budget = 0
    assert runtime.memory_budget == 2 * MIB and runtime.pool.nbytes == 40_000  # a refused budget changes nothing

    with runtime.scoped(memory_budget=10_000):  # entering a scope with another budget empties the pool ...
        assert runtime.pool.nbytes == 0 and runtime.pool_limit() == 40_000
        c = workspace.take((100, 100), np.float32)
        workspace.give(c)
        assert runtime.pool.nbytes == 40_000
        workspace.give(workspace.take((101, 100), np.float32))  # 40,400 bytes: more than the pool may hold
        assert runtime.pool.nbytes == 40_000
    assert runtime.pool.nbytes == 0 and runtime.memory_budget == 2 * MIB  # ... and so does leaving it


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2", None])
def test_threads_limit_the_blas_pool_and_refuse_non_positive_ints(bad):
    runtime.threads = 1
    assert runtime.threads == 1 and _blas_threads() and set(_blas_threads()) == {1}
    runtime.threads = 2
    assert runtime.threads == 2 and set(_blas_threads()) == {2}
    with runtime.scoped(threads=1):
        assert runtime.threads == 1 and set(_blas_threads()) == {1}
    assert runtime.threads == 2 and set(_blas_threads()) == {2}
    runtime.threads = np.int64(1)  # NumPy ints are ints
    assert runtime.threads == 1 and type(runtime.threads) is int and set(_blas_threads()) == {1}
    with pytest.raises(ValueError, match="threads: expected a positive int"):
        runtime.threads = bad
    assert runtime.threads == 1 and set(_blas_threads()) == {1}


def test_set_num_threads_is_runtime_threads():
    numcnn.set_num_threads(1)
    assert numcnn.get_num_threads() == runtime.threads == 1 and set(_blas_threads()) == {1}
    runtime.threads = 2
    assert numcnn.get_num_threads() == 2 and set(_blas_threads()) == {2}


_BLAS_SCRIPT = textwrap.dedent("""
    from threadpoolctl import threadpool_info
    from numcnn.kernels.runtime import runtime

    def blas():
        return [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]

    before = blas()
    assert before == [1], before  # OPENBLAS_NUM_THREADS=1, while runtime.threads is the CPU count
    with runtime.scoped(threads={threads}):
        pass
    print(before, blas())
    assert blas() == before, f"BLAS pool {{before}} before runtime.scoped(threads={threads}), {{blas()}} after"
""")


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs runtime.threads (the CPU count) > 1")
@pytest.mark.parametrize("threads", ["1", "runtime.threads"])
def test_scoped_restores_a_blas_pool_that_runtime_threads_never_limited(threads):
    # A fresh process whose BLAS pool starts at 1 thread: scoped(threads=...) must leave it at 1.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", _BLAS_SCRIPT.format(threads=threads)], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_a_small_budget_cuts_a_convolution_into_other_chunks_with_the_same_result(rng, monkeypatch):
    monkeypatch.setattr(runtime, "backend", "numpy")  # the chunked im2col forward (compiled: direct, no chunks)
    x = rng.standard_normal((8, 3, 10, 10)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    geo = K.ConvGeometry.of(x.shape, w.shape, (1, 1), ((1, 1), (1, 1)))
    assert K.choose(geo, "forward") == "im2col"  # "auto" runs the chunked im2col forward here
    per_item = geo.rows * geo.ho * geo.wo * x.itemsize  # one image's columns: 27 rows x 100 positions x 4 bytes
    assert per_item == 10_800

    chunks = []
    original = workspace.batch_chunks

    def record(n, bytes_per_item):
        out = original(n, bytes_per_item)
        chunks.append(out)
        return out

    monkeypatch.setattr(workspace, "batch_chunks", record)

    def conv(algorithm="auto"):
        with numcnn.no_grad():
            return F.conv2d(numcnn.tensor(x), numcnn.tensor(w), numcnn.tensor(b), padding=1,
                            algorithm=algorithm).numpy()

    want = conv("reference")  # the seven loops: no chunks
    assert chunks == []
    with runtime.scoped(memory_budget=8 * MIB):
        assert workspace.batch_chunks(8, per_item) == [(0, 8)]  # the whole batch fits
        chunks.clear()
        large = conv()
        assert chunks == [[(0, 8)]]
    with runtime.scoped(memory_budget=3 * per_item):
        # 3 images per chunk -> 3 chunks -> made even: 4 chunks of 2
        assert workspace.chunk_size(8, per_item) == 3
        assert workspace.batch_chunks(8, per_item) == [(0, 2), (2, 4), (4, 6), (6, 8)]
        chunks.clear()
        small = conv()
        assert chunks == [[(0, 2), (2, 4), (4, 6), (6, 8)]]
    with runtime.scoped(memory_budget=per_item - 1):  # less than one image: one image per chunk
        assert workspace.batch_chunks(8, per_item) == [(i, i + 1) for i in range(8)]
    assert workspace.batch_chunks(8, per_item) == original(8, per_item)  # the budget was restored

    np.testing.assert_allclose(large, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(small, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(small, large, rtol=1e-6, atol=1e-6)


def test_a_small_budget_changes_how_grad_weight_sums_but_not_beyond_rounding(rng):
    x = rng.standard_normal((8, 3, 10, 10)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((8, 4, 10, 10)).astype(np.float32)
    geo = K.ConvGeometry.of(x.shape, w.shape, (1, 1), ((1, 1), (1, 1)))
    want = K.backward_weight(geo, dy, x, "reference")
    got = {}
    for budget in (8 * MIB, 3 * 10_800, 10_000):
        with runtime.scoped(memory_budget=budget):
            got[budget] = K.backward_weight(geo, dy, x, "im2col")
    for budget, dw in got.items():
        np.testing.assert_allclose(dw, want, rtol=1e-4, atol=1e-4, err_msg=f"budget {budget}")
    # the same budget gives the same bits (a pure function of the shapes and the budget)
    with runtime.scoped(memory_budget=10_000):
        np.testing.assert_array_equal(K.backward_weight(geo, dy, x, "im2col"), got[10_000])


def test_backend_is_part_of_the_state_and_taken_over_unless_asked_for():
    pytest.importorskip("numba")
    with runtime.scoped(backend="numba"):
        runtime.backend_explicit = False  # as when nobody set NUMCNN_KERNELS or runtime.backend
        runtime.load_state_dict({"backend": "numpy"})  # a checkpoint computed by the NumPy kernels
        assert runtime.backend == "numpy" and runtime.state_dict()["backend"] == "numpy"
    with runtime.scoped(backend="numba"):  # asked for explicitly: a checkpoint of the other kernels is refused
        with pytest.raises(ValueError, match="computed with the 'numpy' kernels, but the 'numba' kernels were asked"):
            runtime.load_state_dict({"backend": "numpy", "autotune": True})
        assert runtime.backend == "numba" and not runtime.autotune  # nothing changed
    with pytest.raises(ValueError, match="backend: expected one of"):
        runtime.backend = "cuda"

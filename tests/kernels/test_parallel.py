"""kernels/parallel.py: parts shared out over threads give what a serial loop gives, bit for bit."""

import os
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from numcnn.kernels import conv as K
from numcnn.kernels import parallel, workspace
from numcnn.kernels.runtime import runtime


@pytest.fixture
def threads():
    def set_threads(n):
        runtime.threads = n

    with runtime.scoped():
        yield set_threads


def _blas_threads():
    """Thread counts of NumPy's own BLAS (another library's, e.g. SciPy's loaded by Numba, is not numcnn's)."""
    return [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"
            and ("numpy" in i["filepath"] or os.path.basename(i["filepath"]).startswith("libscipy_openblas64_"))]


def test_run_keeps_item_order_and_runs_items_at_once(threads):
    threads(2)
    assert parallel.run(lambda i: i * i, list(range(40))) == [i * i for i in range(40)]
    # Two items that each wait for the other: only two threads running at the same time get past the barrier.
    barrier = threading.Barrier(2, timeout=10)
    idents = parallel.run(lambda i: (barrier.wait(), threading.get_ident())[1], [0, 1])
    assert len(set(idents)) == 2 and threading.get_ident() in idents  # the caller works too


def test_run_raises_a_worker_error_and_restores_blas(threads):
    threads(2)
    before = _blas_threads()

    def work(i):
        if i == 3:
            raise KeyError("item 3")
        return i

    with pytest.raises(KeyError, match="item 3"):
        parallel.run(work, range(6))
    assert _blas_threads() == before
    assert parallel.run(lambda i: i * 2, range(4)) == [0, 2, 4, 6]  # the pool still works


def test_parts_run_single_threaded_blas_and_nested_runs_are_serial(threads):
    threads(2)
    inner = []

    def work(i):
        inner.append(_blas_threads())
        return parallel.run(lambda j: (i, j), range(3))  # nested: runs in this thread, in order

    out = parallel.run(work, range(2))
    assert out == [[(0, 0), (0, 1), (0, 2)], [(1, 0), (1, 1), (1, 2)]]
    assert all(counts == [1] * len(counts) for counts in inner)


def test_blas_serial_restores_the_pool():
    before = _blas_threads()
    with parallel.blas_serial():
        with parallel.blas_serial():
            assert all(n == 1 for n in _blas_threads())
        assert all(n == 1 for n in _blas_threads())
    assert _blas_threads() == before


def test_matmul_runs_small_products_on_one_blas_thread(monkeypatch):
    """parallel.matmul, and through it a user's ``a @ b`` (autograd MatMul) and adaptive pooling's bin sums: BLAS at
    one thread below SERIAL_GEMM_MACS, at its own count above, and np.matmul's bits either way."""
    from numcnn import tensor
    from numcnn.nn import functional as F

    seen = []
    real = np.matmul

    def spy(a, b, out=None):
        seen.append(max(_blas_threads()))
        return real(a, b, out=out)

    monkeypatch.setattr(parallel.np, "matmul", spy)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 32), dtype=np.float32), rng.standard_normal((32, 16), dtype=np.float32)
    assert np.array_equal(parallel.matmul(a, b), real(a, b))
    big = rng.standard_normal((512, 256), dtype=np.float32)  # 512*256*256 = 32M multiply-adds
    assert np.array_equal(parallel.matmul(big, big[:256].T.copy()), real(big, big[:256].T))
    ta, tb = tensor(a, requires_grad=True), tensor(b, requires_grad=True)
    (ta @ tb).sum().backward()  # forward and both gradients
    F.adaptive_avg_pool2d(tensor(rng.standard_normal((2, 3, 9, 9), dtype=np.float32)), (2, 4))
    assert np.array_equal(tb.grad.numpy(), real(a.T, np.ones((64, 16), np.float32)))
    before = max(_blas_threads())
    assert seen == [1, before, 1, 1, 1, 1, 1], seen  # small, big, a @ b and its two gradients, the two bin sums


def test_split_and_batch_chunks_cover_the_range():
    assert parallel.split(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert parallel.split(2, 5) == [(0, 1), (1, 2)]
    with runtime.scoped(memory_budget=1000):
        assert workspace.batch_chunks(10, 300) == [(0, 3), (3, 6), (6, 8), (8, 10)]  # 3 per chunk fit -> 4 chunks
        assert workspace.batch_chunks(1, 10**9) == [(0, 1)]
        runtime.memory_budget = 1 << 30
        # Work above SPLIT_BYTES is cut in two even when the budget holds it all, so two threads can share it.
        assert workspace.batch_chunks(10, workspace.SPLIT_BYTES // 4) == [(0, 5), (5, 10)]
        assert workspace.batch_chunks(10, 10) == [(0, 10)]


@pytest.mark.parametrize("stride, groups", [((1, 1), 1), ((2, 2), 1), ((1, 1), 4)])
def test_conv_kernels_give_the_same_bits_with_any_thread_count(threads, stride, groups):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 8, 15, 15)).astype(np.float32)
    w = rng.standard_normal((8, 8 // groups, 3, 3)).astype(np.float32)
    g = (stride, ((1, 1), (1, 1)), (1, 1), groups)
    with runtime.scoped(memory_budget=20_000):  # several chunks
        results = []
        for n in (1, 2, 3):
            threads(n)
            y, cols = K.conv2d_forward(x, w, None, *g, return_cols=True)
            dy = np.cos(y)
            results.append([y, K.conv2d_backward_input(dy, w, x.shape, *g),
                            K.conv2d_backward_weight(dy, x, w.shape, *g),
                            K.conv2d_backward_weight(dy, x, w.shape, *g, cols=cols)])
        ref = [K.conv2d_forward(x.astype(np.float64), w.astype(np.float64), None, *g, algorithm="naive")]
        np.testing.assert_allclose(results[0][0], ref[0], rtol=1e-4, atol=1e-4)
        for other in results[1:]:
            for a, b in zip(results[0], other, strict=True):
                np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(results[0][2], results[0][3])  # kept columns = rebuilt columns


def test_blocked_pool_and_batch_norm_give_the_same_bits_with_any_thread_count(threads):
    """Max-pool and batch norm work in L2-sized blocks (several here: 2 MB of input) shared out over threads;
    blocks are per plane or per channel, so 1, 2 or 3 threads give identical results, equal to the reference."""
    from numcnn.kernels import norm, pool

    rng = np.random.default_rng(3)
    x = np.maximum(rng.standard_normal((16, 8, 64, 64)).astype(np.float32), 0).transpose(1, 0, 2, 3)  # (C,N) memory
    gamma, beta = rng.standard_normal(16).astype(np.float32), rng.standard_normal(16).astype(np.float32)
    results = []
    for n in (1, 2, 3):
        threads(n)
        y = pool.max_pool2d_values(x, (2, 2), (2, 2), (0, 0))
        dy = np.cos(y)
        dx = pool.max_pool2d_backward_from_values(dy, x, y, (2, 2), (2, 2), (0, 0))
        bn_y, mean, invstd, var = norm.batch_norm_train_forward(x, gamma, beta, 1e-5, (0, 2, 3), return_var=True)
        bn_back = norm.batch_norm_backward(np.sin(bn_y), x, mean, invstd, gamma, (0, 2, 3))
        bn_eval = norm.batch_norm_eval_forward(x, mean, var, gamma, beta, 1e-5, (0, 2, 3))
        results.append([y, dx, bn_y, mean, invstd, var, *bn_back, bn_eval])
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            np.testing.assert_array_equal(a, b)
    y, dx = results[0][:2]
    _, idx = pool.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0))
    np.testing.assert_array_equal(y, pool.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0))[0])
    np.testing.assert_array_equal(dx, pool.max_pool2d_backward(np.cos(y), idx, x.shape))  # the index path
    x64 = x.astype(np.float64)
    mean64 = x64.mean(axis=(0, 2, 3))
    np.testing.assert_allclose(results[0][3], mean64, rtol=1e-5, atol=1e-6)
    ref = (x64 - mean64[:, None, None]) / np.sqrt(x64.var(axis=(0, 2, 3)) + 1e-5)[:, None, None]
    np.testing.assert_allclose(results[0][2], ref * gamma[:, None, None] + beta[:, None, None], rtol=1e-4, atol=1e-4)


def test_blas_serial_in_another_thread_leaves_the_pool_alone():
    """OpenBLAS ignores thread-count changes from threads other than the main one once it has run, so only the
    main thread toggles the pool; a kernel called from another thread neither changes nor breaks it."""
    a = np.ones((64, 64), np.float32)
    _ = a @ a  # OpenBLAS has run
    before = _blas_threads()
    seen = []

    def other():
        with parallel.blas_serial():
            seen.append(_blas_threads())
        seen.append(_blas_threads())

    t = threading.Thread(target=other)
    t.start()
    t.join(10)
    assert seen == [before, before] and _blas_threads() == before
    with parallel.blas_serial():  # the main thread still can
        assert all(n == 1 for n in _blas_threads())
    assert _blas_threads() == before


def test_a_forked_child_gets_its_own_workers(threads):
    """The parent's worker threads do not exist in a forked child (a DataLoader worker): its first parallel region
    starts new ones instead of waiting for the parent's, and still runs items on two threads at once."""
    threads(2)
    assert parallel.run(lambda i: i + 1, [0, 1]) == [1, 2]  # the parent's pool exists
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            barrier = threading.Barrier(2, timeout=10)
            idents = parallel.run(lambda i: (barrier.wait(), threading.get_ident())[1], [0, 1])
            code = 0 if len(set(idents)) == 2 and parallel.run(lambda i: -i, range(5)) == [0, -1, -2, -3, -4] else 4
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_caller_waits_for_a_worker_that_runs_past_the_spin(threads, monkeypatch):
    """The caller spins for ``WAIT_SPIN_S`` and then sleeps on the worker's lock: a worker item longer than that is
    still waited for, and its result kept."""
    threads(2)
    monkeypatch.setattr(parallel, "WAIT_SPIN_S", 1e-4)
    _new_pool()  # one made with the short spin
    started = threading.Event()

    def work(i):
        if threading.current_thread() is threading.main_thread():
            started.wait(10)
            return ("main", i)
        started.set()
        threading.Event().wait(0.05)  # well past the caller's spin
        return ("worker", i)

    out = parallel.run(work, [0, 1])
    assert sorted(o[0] for o in out) == ["main", "worker"] and [o[1] for o in out] == [0, 1]
    monkeypatch.undo()
    _new_pool()


def _new_pool():
    if parallel._state["pool"] is not None:
        parallel._state["pool"].shutdown()
        parallel._state["pool"] = None


def test_wait_while_returns_when_another_thread_writes_the_flag_or_the_spins_run_out():
    pytest.importorskip("numba")
    flags = np.zeros(16, np.int64)
    assert parallel._spin(flags, 8, 0, 1000) == 0  # nobody writes: 1000 spins, then the value it still holds
    timer = threading.Timer(0.02, lambda: flags.__setitem__(8, 7))
    timer.start()
    assert parallel._spin(flags, 8, 0, 1 << 40) == 7  # returns the new value as soon as it is written
    timer.join()
    flags[3] = 5
    assert parallel._spin(flags, 3, 0, 1 << 40) == 5  # already different: returns at once

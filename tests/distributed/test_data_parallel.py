"""Gradient averaging, broadcasts, DistributedOptimizer and metric reduction on ranks run as threads."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn as nc
import numcnn.nn as nn
from numcnn import models, optim
from numcnn.data import DataLoader, TensorDataset
from numcnn.distributed import (
    DistributedError,
    DistributedOptimizer,
    DistributedSampler,
    GradientAverager,
    SelfCommunicator,
    broadcast_parameters,
    check_replicas,
    reduce_eval_result,
    reduce_record,
)
from numcnn.nn.parameter import Parameter
from numcnn.training import evaluate

SHAPES = [(3, 4), (5,), (2, 2, 2), (7,)]


def _params(rank: int):
    rng = np.random.default_rng(rank)
    ps = [Parameter(rng.standard_normal(s).astype(np.float32)) for s in SHAPES]
    ps.append(Parameter(rng.standard_normal(3)))  # float64: a bucket of its own
    return ps


def test_gradients_are_averaged_in_few_buckets(run_ranks):
    n = 3
    grads = [[np.random.default_rng(10 + r).standard_normal(p.shape).astype(p.dtype) for p in _params(0)]
             for r in range(n)]

    def rank(comm):
        ps = _params(comm.rank)
        for i, p in enumerate(ps):
            if i == 1 or (i == 2 and comm.rank == 1):  # param 1: no grad anywhere; param 2: none on rank 1
                continue
            p.grad = nc.tensor(grads[comm.rank][i].copy())
        # 64 bytes per bucket: float32 params of 12, 5+8 (=13 floats is 52 bytes) and 7 values -> 3 buckets, +1 float64
        avg = GradientAverager(ps, comm, bucket_bytes=64)
        avg.average_()
        return [None if p.grad is None else p.grad.numpy() for p in ps], len(avg.buckets), comm.calls

    results = run_ranks(n, rank)
    for got, n_buckets, calls in results:
        assert n_buckets == 4 and len(calls) == 4  # one Allreduce per bucket per step
        assert got[1] is None
        for i in (0, 3, 4):
            np.testing.assert_allclose(got[i], np.mean([grads[r][i] for r in range(n)], axis=0), rtol=1e-6)
            assert got[i].dtype == grads[0][i].dtype
        # missing on rank 1: averaged with zeros there, as PyTorch DDP does, and present on every rank after
        np.testing.assert_allclose(got[2], (grads[0][2] + grads[2][2]) / 3, rtol=1e-6)
    for i in (0, 2, 3, 4):
        assert all(np.array_equal(results[0][0][i], res[0][i]) for res in results)


def test_a_convnet_is_one_bucket_one_call_per_step():
    avg = GradientAverager(models.get("convnet").parameters(), SelfCommunicator())
    assert len(avg.buckets) == 1


def _bn_model(rank: int):
    nc.manual_seed(rank)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    model[1].running_mean.data[...] = rank  # buffers differ too
    return model


def test_distributed_optimizer_broadcasts_averages_and_syncs_buffers(run_ranks):
    n = 2
    rank0 = {k: v.numpy().copy() for k, v in _bn_model(0).state_dict().items()}
    x = np.random.default_rng(5).standard_normal((n, 6, 4)).astype(np.float32)
    replicas = [_bn_model(r) for r in range(n)]  # built here: the threads share numcnn's global generator

    def rank(comm):
        model = replicas[comm.rank]
        inner = optim.SGD(model.parameters(), lr=0.1)
        opt = DistributedOptimizer(inner, model=model, comm=comm)
        start = {k: v.numpy().copy() for k, v in model.state_dict().items()}
        sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)  # a scheduler accepts the wrapper
        loss = model(nc.tensor(x[comm.rank])).sum()
        opt.zero_grad()
        loss.backward()
        local = [p.grad.numpy().copy() for p in model.parameters()]
        before = len(comm.calls)
        opt.step()
        assert comm.calls[before:] == ["allreduce:Allreduce of the gradients (bucket 1 of 1)"]  # buffers included
        sched.step()
        return start, local, {k: v.numpy().copy() for k, v in model.state_dict().items()}, inner.param_groups[0]["lr"]

    results = run_ranks(n, rank)
    for start, _, _, lr in results:
        for k, v in rank0.items():
            np.testing.assert_array_equal(start[k], v)  # rank 0's weights and buffers, whatever the rank's seed
        assert lr == pytest.approx(0.05)
    names = [k for k in rank0 if k.endswith(("weight", "bias"))]
    mean_grads = [np.mean([res[1][i] for res in results], axis=0) for i in range(len(names))]
    for _, _, end, _ in results:
        for name, g in zip(names, mean_grads):
            np.testing.assert_allclose(end[name], rank0[name] - 0.1 * g, rtol=1e-6, atol=1e-7)
        # after the step, every rank holds rank 0's running statistics (PyTorch DDP's broadcast_buffers)
        np.testing.assert_array_equal(end["1.running_mean"], results[0][2]["1.running_mean"])
    # rank 0's running mean saw only rank 0's batch: 0.9 * 0 + 0.1 * mean of its batch's BN inputs
    assert not np.array_equal(results[0][2]["1.running_mean"], rank0["1.running_mean"])


def test_distributed_optimizer_is_its_optimizer_for_state_and_checkpoints():
    model = nn.Linear(3, 2)
    inner = optim.Adam(model.parameters(), lr=1e-2)
    opt = DistributedOptimizer(inner, model=model)
    model(nc.ones(4, 3)).sum().backward()
    opt.step()
    sd = opt.state_dict()
    assert sd["state"][0]["step"] == 1
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"], inner.state_dict()["state"][0]["exp_avg"])
    fresh = optim.Adam(nn.Linear(3, 2).parameters(), lr=1.0)
    fresh_opt = DistributedOptimizer(fresh, comm=SelfCommunicator())
    fresh_opt.load_state_dict(sd)
    assert fresh.param_groups[0]["lr"] == 1e-2 and fresh_opt.param_groups is fresh.param_groups
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(TypeError, match="already distributed"):
        DistributedOptimizer(opt)


def test_reduce_record_weights_ranks_by_their_images(run_ranks):
    # rank 0 trained on 30 images in 2 s, rank 1 on 10 in 4 s; validation shards of 7 and 3 images
    recs = [dict(epoch=1, train_loss=1.0, train_accuracy=0.5, val_loss=2.0, val_accuracy=0.4, lr=0.1,
                 epoch_time=2.0, images_per_s=15.0),
            dict(epoch=1, train_loss=3.0, train_accuracy=0.9, val_loss=4.0, val_accuracy=0.1, lr=0.1,
                 epoch_time=4.0, images_per_s=2.5)]
    out = run_ranks(2, lambda comm: reduce_record(dict(recs[comm.rank]), comm, val_samples=(7, 3)[comm.rank]))
    for r in out:
        assert r["train_loss"] == pytest.approx((30 * 1.0 + 10 * 3.0) / 40)
        assert r["train_accuracy"] == pytest.approx((30 * 0.5 + 10 * 0.9) / 40)
        assert r["val_loss"] == pytest.approx((7 * 2.0 + 3 * 4.0) / 10)
        assert r["val_accuracy"] == pytest.approx((7 * 0.4 + 3 * 0.1) / 10)
        assert r["epoch_time"] == 4.0 and r["images_per_s"] == pytest.approx(40 / 4.0)
    assert out[0] == out[1]


def test_reduce_eval_result_equals_evaluate_on_all_images(run_ranks):
    nc.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    rng = np.random.default_rng(3)
    ds = TensorDataset(rng.standard_normal((23, 1, 4, 4)).astype(np.float32), rng.integers(0, 4, 23))
    whole = evaluate(model, DataLoader(ds, batch_size=5), num_classes=4)

    def rank(comm):
        shard = DataLoader(ds, batch_size=5, sampler=DistributedSampler(ds, comm.size, comm.rank, pad=False))
        return reduce_eval_result(evaluate(model, shard, num_classes=4), comm)

    for res in run_ranks(3, rank):
        assert res.n == 23 and res.accuracy == whole.accuracy
        assert res.loss == pytest.approx(whole.loss, rel=1e-6)
        np.testing.assert_array_equal(res.confusion, whole.confusion)
        np.testing.assert_array_equal(res.per_class_accuracy, whole.per_class_accuracy)


def test_check_replicas_names_the_rank_that_differs(run_ranks):
    nc.manual_seed(0)
    replicas = [nn.Linear(2, 2) for _ in range(3)]
    for m in replicas[1:]:
        m.load_state_dict(replicas[0].state_dict())

    def rank(comm):
        model = replicas[comm.rank]
        if comm.rank == 2:
            model.bias.data[0] += 1e-7
        with pytest.raises(DistributedError, match=r"rank\(s\) \[2\] hold other parameters"):
            check_replicas(model, comm=comm)
        with pytest.raises(DistributedError, match=r"different epochs \[3, 3, 4\]"):
            check_replicas(model, comm=comm, epoch=3 + (comm.rank == 2))
        return True

    assert run_ranks(3, rank) == [True] * 3


def test_broadcast_parameters_copies_roots_weights_and_buffers(run_ranks):
    replicas = [_bn_model(r) for r in range(3)]
    for r, m in enumerate(replicas):
        m[1].num_batches_tracked.data[...] = 10 + r  # an int64 buffer rides in its own bucket
    root = {k: v.numpy().copy() for k, v in replicas[2].state_dict().items()}

    def rank(comm):
        broadcast_parameters(replicas[comm.rank], comm, root=2)
        return {k: v.numpy().copy() for k, v in replicas[comm.rank].state_dict().items()}, comm.calls

    for state, calls in run_ranks(3, rank):
        assert calls == ["bcast:Bcast of the parameters from rank 2"] * 2  # float32 and int64
        for k, v in root.items():
            np.testing.assert_array_equal(state[k], v)
            assert state[k].dtype == v.dtype

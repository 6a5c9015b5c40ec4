"""SyncBatchNorm on ranks run as threads: forward, gradients and running statistics equal torch.nn.BatchNorm on the
concatenated global batch."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn as nc
import numcnn.nn as nn
from numcnn.distributed import SyncBatchNorm

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("shape,sizes", [((2, 3, 4, 5), (4, 2, 3)), ((2, 3), (5, 1)), ((1, 2, 6), (3, 3, 1, 2))])
@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-5), (np.float64, 1e-11)])
def test_sync_batchnorm_equals_torch_batchnorm_on_the_global_batch(run_ranks, shape, sizes, dtype, tol):
    rng = np.random.default_rng(0)
    c = shape[1]
    n = sum(sizes)
    x = (rng.standard_normal((n, *shape[1:])) * 2 + 0.5).astype(dtype)
    gy = rng.standard_normal(x.shape).astype(dtype)
    w = rng.uniform(0.5, 1.5, c).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    cuts = np.cumsum((0, *sizes))

    def rank(comm):
        layer = SyncBatchNorm(c, momentum=0.2, process_group=comm, dtype=dtype)
        layer.weight.data[...] = w
        layer.bias.data[...] = b
        xs = nc.tensor(x[cuts[comm.rank] : cuts[comm.rank + 1]].copy(), requires_grad=True)
        y = layer(xs)
        (y * nc.tensor(gy[cuts[comm.rank] : cuts[comm.rank + 1]])).sum().backward()
        return (y.numpy(), xs.grad.numpy(), layer.weight.grad.numpy(), layer.bias.grad.numpy(),
                layer.running_mean.numpy(), layer.running_var.numpy(), int(layer.num_batches_tracked.numpy()))

    got = run_ranks(len(sizes), rank)

    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    ref = (torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d)(c, momentum=0.2, dtype=tdtype)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(w))
        ref.bias.copy_(torch.from_numpy(b))
    tx = torch.from_numpy(x).requires_grad_(True)
    ty = ref(tx)
    (ty * torch.from_numpy(gy)).sum().backward()

    np.testing.assert_allclose(np.concatenate([g[0] for g in got]), ty.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(np.concatenate([g[1] for g in got]), tx.grad.numpy(), rtol=tol, atol=tol)
    # gamma's and beta's gradients are each rank's share: their sum (what averaging over N ranks of N shares
    # of the loss gives, times N) is the global batch's gradient.
    np.testing.assert_allclose(sum(g[2] for g in got), ref.weight.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(sum(g[3] for g in got), ref.bias.grad.numpy(), rtol=tol, atol=tol)
    for g in got:  # every rank holds the same running statistics: the global batch's
        np.testing.assert_allclose(g[4], ref.running_mean.numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(g[5], ref.running_var.numpy(), rtol=tol, atol=tol)
        assert g[6] == 1
        assert g[0].dtype == dtype and g[1].dtype == dtype
    assert all(np.array_equal(g[4], got[0][4]) and np.array_equal(g[5], got[0][5]) for g in got)


def test_a_world_of_one_and_eval_mode_are_batchnorm():
    """Without a process group of several ranks, or in eval, SyncBatchNorm computes exactly what BatchNorm2d does."""
    rng = np.random.default_rng(1)
    x = nc.tensor(rng.standard_normal((4, 3, 5, 5)).astype(np.float32))
    sync, plain = SyncBatchNorm(3), nn.BatchNorm2d(3)
    np.testing.assert_array_equal(sync(x).numpy(), plain(x).numpy())
    np.testing.assert_array_equal(sync.running_var.numpy(), plain.running_var.numpy())
    sync.eval()
    plain.eval()
    np.testing.assert_array_equal(sync(x).numpy(), plain(x).numpy())


def test_convert_sync_batchnorm_keeps_parameters_buffers_and_keys():
    nc.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Sequential(nn.BatchNorm2d(4)))
    model[1].running_mean.data[...] = np.arange(4, dtype=np.float32)
    model.eval()
    weight, before = model[1].weight, {k: v.numpy().copy() for k, v in model.state_dict().items()}
    converted = SyncBatchNorm.convert_sync_batchnorm(model)
    assert converted is model
    assert isinstance(model[1], SyncBatchNorm) and isinstance(model[3][0], SyncBatchNorm)
    assert model[1].weight is weight and not model[1].training  # the optimizer's Parameter, the module's mode
    after = model.state_dict()
    assert list(after) == list(before)
    for k, v in before.items():
        np.testing.assert_array_equal(after[k].numpy(), v)
    assert isinstance(SyncBatchNorm.convert_sync_batchnorm(nn.BatchNorm1d(3)), SyncBatchNorm)


def test_sync_batchnorm_refuses_bad_input(run_ranks):
    def rank(comm):
        layer = SyncBatchNorm(3, process_group=comm)
        with pytest.raises(ValueError, match=r"SyncBatchNorm\(3\): expected input with 3 channels, got shape"):
            layer(nc.zeros(2, 4, 5))
        return True

    assert run_ranks(2, rank) == [True, True]

"""one_hot_mse_loss against torch's mse_loss on one-hot targets (value and gradient); get_loss by name."""

import numpy as np
import pytest

import numcnn as nc
import numcnn.nn.functional as F
from numcnn.training.losses import get_loss, one_hot_mse_loss

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_matches_torch(dtype, reduction):
    rng = np.random.default_rng(0)
    x = rng.random((6, 4)).astype(dtype)
    y = rng.integers(0, 4, 6)
    t = nc.tensor(x, requires_grad=True)
    loss = one_hot_mse_loss(t, nc.tensor(y), reduction=reduction)
    loss.backward()
    tx = torch.tensor(x, requires_grad=True)
    tl = torch.nn.functional.mse_loss(tx, torch.nn.functional.one_hot(torch.tensor(y), 4).to(tx.dtype),
                                      reduction=reduction)
    tl.backward()
    assert loss.dtype == dtype and t.grad.dtype == dtype
    np.testing.assert_allclose(loss.item(), tl.item(), rtol=1e-6)
    np.testing.assert_allclose(t.grad.numpy(), tx.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_validation_and_names():
    x = nc.zeros(3, 4)
    with pytest.raises(ValueError, match=r"in \[0, 4\)"):
        one_hot_mse_loss(x, nc.tensor(np.array([0, 4, 1])))
    with pytest.raises(ValueError, match="shape \\(3,\\)"):
        one_hot_mse_loss(x, nc.tensor(np.array([0, 1])))
    assert get_loss("cross_entropy") is F.cross_entropy and get_loss("mse") is one_hot_mse_loss
    with pytest.raises(ValueError, match="known losses: cross_entropy, mse"):
        get_loss("hinge")

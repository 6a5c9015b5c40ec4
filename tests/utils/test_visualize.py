"""activation_curves against torch autograd; conv_feature_maps against a torch model with the same weights."""

import numpy as np
import pytest

import numcnn as nc
import numcnn.nn as nn
from numcnn.utils.visualize import ACTIVATIONS, activation_curves, conv_feature_maps, first_conv

torch = pytest.importorskip("torch")

TORCH = {
    "relu": torch.relu,
    "leaky_relu": lambda x: torch.nn.functional.leaky_relu(x, 0.1),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "elu": torch.nn.functional.elu,
    "gelu": torch.nn.functional.gelu,
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_curves_match_torch_autograd(dtype):
    x = np.linspace(-4, 4, 81, dtype=dtype)  # includes 0, the kink of ReLU / LeakyReLU / ELU
    curves = activation_curves(x)
    assert list(curves) == list(ACTIVATIONS)
    for name, (y, dy) in curves.items():
        tx = torch.tensor(x, requires_grad=True)
        ty = TORCH[name](tx)
        ty.sum().backward()
        assert y.dtype == dtype and dy.dtype == dtype, name
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(dy, tx.grad.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        activation_curves(x, ["swish"])


def test_conv_feature_maps_match_torch():
    nc.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 2 * 2, 2))
    model.train()
    ref = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.BatchNorm2d(3), torch.nn.ReLU(),
                              torch.nn.MaxPool2d(2), torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(),
                              torch.nn.Linear(16, 2))
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    state["1.running_mean"][:] = [0.1, -0.2, 0.3]  # eval mode must use these, not the batch statistics
    state["1.running_var"][:] = [0.5, 2.0, 1.5]
    model.load_state_dict(state)
    ref.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    ref.eval()
    x = np.random.default_rng(1).standard_normal((2, 1, 8, 8)).astype(np.float32)
    maps = conv_feature_maps(model, x)
    assert model.training  # mode restored
    assert [name for name, _ in maps] == ["0", "4"]
    with torch.no_grad():
        tx = torch.tensor(x)
        want0 = ref[0](tx)
        want4 = ref[4](ref[3](ref[2](ref[1](want0))))
    np.testing.assert_allclose(maps[0][1], want0.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(maps[1][1], want4.numpy(), rtol=1e-5, atol=1e-5)
    assert first_conv(model) is model[0]
    with pytest.raises(ValueError, match="no Conv2d"):
        first_conv(nn.Sequential(nn.Linear(2, 2)))

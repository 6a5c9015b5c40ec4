"""The torch_check helper (conftest.py) is not vacuous: it catches a wrong value, a wrong gradient, a float64
leak and a missing parameter gradient, and passes on a correct pair."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
import numcnn.nn as nn

torch = pytest.importorskip("torch")

X = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)


def test_passes_on_a_correct_pair(torch_check):
    out, ref = torch_check(lambda x: x * 2 + 1, lambda x: x * 2 + 1, X)
    np.testing.assert_array_equal(out[0].numpy(), ref[0].detach().numpy())


def test_catches_a_wrong_value(torch_check):
    with pytest.raises(AssertionError, match="output 0"):
        torch_check(lambda x: x * 2.001, lambda x: x * 2, X)


def test_catches_a_wrong_gradient(torch_check):
    with pytest.raises(AssertionError, match="grad of input 0"):
        torch_check(lambda x: x.detach() * 2 + x * 0.5, lambda x: x * 2.5, X)


def test_catches_a_float64_leak(torch_check):
    with pytest.raises(AssertionError, match="dtype numcnn.float64"):
        torch_check(lambda x: x.double() * 2, lambda x: x * 2, X)


def test_catches_a_missing_parameter_gradient(torch_check):
    nc, ref = nn.Linear(3, 2), torch.nn.Linear(3, 2)
    nc.load_state_dict({k: v.detach().numpy().copy() for k, v in ref.state_dict().items()})

    def detached_bias(x):
        return x @ nc.weight.T + nc.bias.detach()

    with pytest.raises(AssertionError, match="bias"):
        torch_check(detached_bias, ref, X, modules=(nc, ref))


def test_close_scales_atol_with_magnitude(close):
    close(np.float32(1e6 + 5), 1e6)  # 5 < 1e-5 * 1e6 + 1e-4 * 1e6
    with pytest.raises(AssertionError):
        close(np.float32(1.0 + 1e-3), 1.0)
    with pytest.raises(AssertionError, match="non-finite"):
        close(np.array([np.nan]), np.array([0.0]))
    assert numcnn.tensor(X).dtype == np.float32

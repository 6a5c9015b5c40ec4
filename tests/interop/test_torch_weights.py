"""PyTorch weights both ways, for every zoo model: numcnn safetensors -> torch ``load_state_dict`` (strict,
unchanged keys) -> the same logits, and a torch state_dict -> safetensors -> numcnn -> the same logits (1e-5)."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
import numcnn.models

torch = pytest.importorskip("torch")
st_torch = pytest.importorskip("safetensors.torch")

ZOO = [(name, {}) for name in numcnn.models.names()] + [
    ("lenet5", {"batchnorm": True, "dropout": 0.3}),
    ("resnet", {"blocks_per_stage": 1, "bottleneck": True}),
]
ZOO_IDS = [f"{n}-{'-'.join(o) or 'default'}" for n, o in ZOO]


def _assert_logits(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype == np.float32
    err = float(np.abs(got - want).max())
    assert err <= 1e-5 * max(1.0, float(np.abs(want).max())), f"{what}: logits differ by {err:.3g}"


def _logits(model, twin, x):
    with numcnn.no_grad(), torch.no_grad():
        return model(numcnn.tensor(x)).numpy(), twin(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("case", range(len(ZOO)), ids=ZOO_IDS)
def test_numcnn_safetensors_load_into_torch(case, tmp_path, twins):
    name, options = ZOO[case]
    model = twins.zoo_model(name, options)
    path = tmp_path / "model.safetensors"
    numcnn.save(model.state_dict(), path)
    twin = twins.torch_twin(model).eval()
    result = twin.load_state_dict(st_torch.load_file(path))  # strict: every key, unchanged
    assert not result.missing_keys and not result.unexpected_keys
    x = np.random.default_rng(case).standard_normal((4, 1, 28, 28)).astype(np.float32)
    got, want = _logits(model, twin, x)
    _assert_logits(got, want, f"{name} {options}")


@pytest.mark.parametrize("case", range(len(ZOO)), ids=ZOO_IDS)
def test_torch_state_dict_loads_into_numcnn(case, tmp_path, twins):
    name, options = ZOO[case]
    model = twins.zoo_model(name, options, seed=1)
    twin = twins.torch_twin(model).eval()
    g = torch.Generator().manual_seed(case)
    with torch.no_grad():
        for key, t in twin.state_dict().items():
            if key.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif key.endswith("num_batches_tracked"):
                t.fill_(11)
            else:
                t.copy_(0.3 * torch.randn(t.shape, generator=g))
    path = tmp_path / "torch.safetensors"
    st_torch.save_file(twin.state_dict(), path)
    model.load_state_dict(numcnn.load(path))  # strict
    for key, t in twin.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[key].numpy(), t.numpy(), err_msg=key)
    x = np.random.default_rng(case).standard_normal((4, 1, 28, 28)).astype(np.float32)
    got, want = _logits(model, twin, x)
    _assert_logits(got, want, f"{name} {options}")

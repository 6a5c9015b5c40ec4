"""detect_anomaly: the first forward output or backward gradient holding NaN/Inf raises, naming the operation, the
module path and, inside fit, the epoch and batch. The references are hand-placed faults (we know which layer we
broke), PyTorch's own anomaly mode for the failing backward op, and plain runs that show the NaN otherwise
passes silently."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
import numcnn.models
import numcnn.nn.functional as F
from numcnn import nn
from numcnn.autograd import engine, function
from numcnn.autograd.anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled
from numcnn.training import fit

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the NaNs and Infs are the point


def _resnet():
    numcnn.manual_seed(0)
    return numcnn.models.get("resnet", blocks_per_stage=1)


def _x(n=2, seed=0):
    return numcnn.tensor(np.random.default_rng(seed).standard_normal((n, 1, 28, 28)).astype(np.float32))


def test_nan_weight_is_named_with_its_layer_path():
    model = _resnet()
    model.layer2[0].conv1.weight.data[0, 0, 0, 0] = np.nan
    assert np.isnan(model(_x()).numpy()).all()  # without anomaly mode it passes silently
    with pytest.raises(AnomalyError) as e, detect_anomaly(model):
        model(_x())
    err = e.value
    assert (err.op, err.phase, err.module) == ("Conv2d", "forward", "layer2.0.conv1")
    assert "parameter 'layer2.0.conv1.weight'" in str(err)
    assert str(err).startswith("forward of Conv2d (in module 'layer2.0.conv1')")


def test_first_operation_producing_nan_from_finite_inputs():
    model = _resnet().eval()
    model.layer3[0].bn2.running_var.data[3] = -1.0  # sqrt of a negative variance inside BatchNorm
    with pytest.raises(AnomalyError) as e, detect_anomaly(model):
        model(_x())
    assert (e.value.op, e.value.module) == ("BatchNormEval", "layer3.0.bn2")
    assert "from finite inputs" in str(e.value)


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.act = _Sqrt()

    def forward(self, x):
        return self.act(self.fc(x))


class _Sqrt(nn.Module):
    def forward(self, x):
        # Finite forward; where x == 0 the gradient reaching sqrt is 0 and its backward computes 0 / 0.
        return (x * x).sqrt() * 0.0


@pytest.mark.filterwarnings("ignore:Error detected in SqrtBackward0")
@pytest.mark.filterwarnings("ignore:Anomaly Detection has been enabled")
def test_backward_nan_names_the_op_like_torch_does():
    torch = pytest.importorskip("torch")
    model = nn.Sequential()
    model.add_module("block", _Block())
    with numcnn.no_grad():
        model.block.fc.weight.data[...] = 0.0
        model.block.fc.bias.data[...] = 0.0
    x = numcnn.tensor(np.ones((2, 3), np.float32))
    with pytest.raises(AnomalyError) as e, detect_anomaly(model):
        model(x).sum().backward()
    assert (e.value.op, e.value.phase, e.value.module) == ("Sqrt", "backward", "block.act")
    # The reference: torch's anomaly mode stops at the same operation's backward.
    w = torch.zeros(3, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match="SqrtBackward0"), torch.autograd.detect_anomaly():
        (((torch.ones(2, 3) @ w) ** 2).sqrt() * 0.0).sum().backward()
    # Without anomaly mode the gradient is silently NaN (0 * inf).
    model.zero_grad()
    model(x).sum().backward()
    assert np.isnan(model.block.fc.weight.grad.numpy()).all()


def test_without_a_model_the_op_is_still_named_and_state_is_restored():
    a = numcnn.tensor(np.array([1.0, -1.0], np.float32), requires_grad=True)
    assert not is_anomaly_enabled()
    with pytest.raises(AnomalyError) as e, detect_anomaly():
        assert is_anomaly_enabled()
        a.log()
    assert (e.value.op, e.value.module) == ("Log", None)
    assert "outside any module of the model" in str(e.value)
    assert not is_anomaly_enabled()
    assert function._forward_hook is None and engine._backward_hook is None


def test_anomaly_mode_does_not_change_results():
    model = _resnet()
    x = _x(3)
    out = model(x)
    out.sum().backward()
    grads = {k: p.grad.numpy().copy() for k, p in model.named_parameters()}
    model.zero_grad()
    numcnn.manual_seed(0)
    with detect_anomaly(model):
        out2 = model(x)
        out2.sum().backward()
    np.testing.assert_array_equal(out2.numpy(), out.numpy())
    for k, p in model.named_parameters():
        np.testing.assert_array_equal(p.grad.numpy(), grads[k], err_msg=k)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


class _Loader:
    """4 batches of 8 images; epoch ``bad_epoch``'s batch ``bad_batch`` holds an infinite pixel."""

    def __init__(self, bad_epoch: int, bad_batch: int):
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((4, 8, 1, 28, 28)).astype(np.float32)
        self.y = rng.integers(0, 10, (4, 8))
        self.bad, self.epoch = (bad_epoch, bad_batch), 0

    def __len__(self):
        return 4

    def __iter__(self):
        self.epoch += 1
        for b in range(4):
            x = self.x[b].copy()
            if (self.epoch, b + 1) == self.bad:
                x[3, 0, 5, 5] = np.inf
            yield numcnn.tensor(x), numcnn.tensor(self.y[b])


def test_fit_names_epoch_batch_and_module():
    numcnn.manual_seed(0)
    model = numcnn.models.get("simplecnn", channels=2, hidden=8)
    opt = numcnn.optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(AnomalyError) as e:
        fit(model, _Loader(2, 3), epochs=3, optimizer=opt, verbose=False, detect_anomaly=True)
    err = e.value
    assert (err.epoch, err.batch, err.op, err.module) == (2, 3, "Conv2d", "conv")
    assert str(err).startswith("epoch 2, batch 3: forward of Conv2d (in module 'conv')")
    assert "input 0 (data or a constant from outside the graph) already held NaN/Inf" in str(err)
    assert function._forward_hook is None and engine._backward_hook is None


def test_fit_without_detect_anomaly_reports_only_the_loss():
    numcnn.manual_seed(0)
    model = numcnn.models.get("simplecnn", channels=2, hidden=8)
    opt = numcnn.optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(numcnn.training.TrainingDiverged, match="epoch 1, batch 2"):
        fit(model, _Loader(1, 2), epochs=1, optimizer=opt, verbose=False, loss_fn=F.cross_entropy)

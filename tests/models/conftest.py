"""Shared checks for the model zoo, handed out through the ``zoo`` fixture (pytest runs with
--import-mode=importlib, so a sibling helper module cannot be imported by name).

The oracle is an equivalent PyTorch module (a "twin") that each test file builds by hand: same layers,
same names. ``zoo.match_twin`` ports the twin's weights into the numcnn model and compares state_dict keys,
logits (eval and train mode), BatchNorm running statistics and every parameter gradient.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import numcnn
import numcnn.models
import numcnn.nn.functional as F

try:
    import torch
except ImportError:  # the registry tests still run; the ``zoo`` fixture skips whoever asks for it
    torch = None

RTOL, ATOL = 1e-4, 1e-5


def assert_close(got, want, rtol: float = RTOL, atol: float = ATOL, what: str = "") -> None:
    """|got - want| <= atol * max(1, max|want|) + rtol * |want| elementwise (atol scales with the values)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != reference {want.shape}"
    tol = atol * max(1.0, float(np.abs(want).max(initial=0.0))) + rtol * np.abs(want)
    err = np.abs(got - want)
    assert (err <= tol).all(), f"{what}: {(err > tol).sum()} of {err.size} values differ, worst {err.max():.3g}"


def randomize_batchnorm(twin, seed: int = 0) -> None:
    """Give every torch BatchNorm non-trivial affine parameters and running statistics, so that eval mode
    actually tests the running-statistics path (fresh ones are 1, 0, 0, 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in twin.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
                m.num_batches_tracked.fill_(3)


def port(twin, model) -> None:
    """torch state_dict -> NumPy arrays -> numcnn ``load_state_dict`` (strict)."""
    model.load_state_dict({k: v.detach().numpy().copy() for k, v in twin.state_dict().items()})


def _dropout_off(model, twin) -> None:
    # Dropout draws from different generators in the two libraries; switching it off keeps the train-mode
    # comparison about BatchNorm's batch statistics, which is what differs between the modes.
    for m in model.modules():
        if isinstance(m, numcnn.nn.Dropout):
            m.eval()
    for m in twin.modules():
        if isinstance(m, torch.nn.Dropout):
            m.eval()


def _forward_backward(model, twin, x, y, dtype, what):
    """Train-mode forward and cross-entropy backward on both; compares logits, gradients, running stats."""
    rtol, atol = (RTOL, ATOL) if dtype == np.float32 else (1e-9, 1e-11)
    got, want = model(numcnn.tensor(x.astype(dtype))), twin(torch.from_numpy(x.astype(dtype)))
    assert got.dtype == dtype
    assert_close(got.numpy(), want.detach().numpy(), rtol, atol, f"{what} train-mode logits")
    F.cross_entropy(got, numcnn.tensor(y)).backward()
    torch.nn.functional.cross_entropy(want, torch.from_numpy(y)).backward()
    t_params = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient"
        assert p.grad.dtype == dtype, f"{name}: gradient dtype {p.grad.dtype}"
        if dtype == np.float64:
            assert_close(p.grad.numpy(), t_params[name].grad.numpy(), rtol, atol, f"grad of {name}")
    # The train-mode forward also moved BatchNorm's running statistics; they must have moved the same way.
    nc_sd, t_sd = model.state_dict(), twin.state_dict()
    for k in t_sd:
        assert_close(nc_sd[k].numpy(), t_sd[k].numpy(), rtol, atol, f"{what} {k} after a train-mode forward")


def match_twin(model, twin, in_channels: int, batch: int = 4, seed: int = 0) -> None:
    """Check that ``model`` (numcnn) and ``twin`` (torch) are the same network, number for number.

    float32: eval-mode and train-mode logits within rtol 1e-4 / atol 1e-5, float32 gradients, running statistics.
    float64: the same, and every parameter gradient of the cross-entropy, within 1e-9. Gradients are compared
    in float64 because in float32 a pre-activation within ~1e-7 of a ReLU's kink can land on the other side
    of it in either library (round-off, not a bug) and move that element's gradient by O(1): it happened on one
    of the first two ResNet batches tried (a BN output of 7.8e-8), while in float64 the two agree to ~1e-15.
    """
    # The twin's tensors are tiny: torch's intra-op threads only add overhead (and stall on a busy machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _match_twin(model, twin, in_channels, batch, seed)
    finally:
        torch.set_num_threads(threads)


def _match_twin(model, twin, in_channels: int, batch: int, seed: int) -> None:
    nc_sd, t_sd = model.state_dict(), twin.state_dict()
    assert list(nc_sd) == list(t_sd), "state_dict keys (or their order) differ from the torch twin"
    for k in t_sd:
        assert nc_sd[k].shape == tuple(t_sd[k].shape), f"{k}: {nc_sd[k].shape} != torch {tuple(t_sd[k].shape)}"
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in twin.parameters())

    randomize_batchnorm(twin, seed)
    port(twin, model)
    start = {k: v.detach().clone() for k, v in twin.state_dict().items()}
    rng = np.random.default_rng([seed, 31])
    x = rng.standard_normal((batch, in_channels, 28, 28))
    y = rng.integers(0, model_classes(twin), batch)

    for dtype, tdtype in ((np.float32, torch.float32), (np.float64, torch.float64)):
        twin.load_state_dict(start)
        twin.to(tdtype)
        port(twin, model)
        model.to(dtype)
        what = np.dtype(dtype).name
        rtol, atol = (RTOL, ATOL) if dtype == np.float32 else (1e-9, 1e-11)
        model.eval()
        twin.eval()
        with numcnn.no_grad(), torch.no_grad():
            got, want = model(numcnn.tensor(x.astype(dtype))), twin(torch.from_numpy(x.astype(dtype)))
        assert got.dtype == dtype
        assert_close(got.numpy(), want.numpy(), rtol, atol, f"{what} eval-mode logits")
        model.train()
        twin.train()
        _dropout_off(model, twin)
        _forward_backward(model, twin, x, y, dtype, what)
        model.zero_grad()
        twin.zero_grad()
    model.float()


def model_classes(twin) -> int:
    last = [m for m in twin.modules() if isinstance(m, torch.nn.Linear)][-1]
    return last.out_features


def overfit(model, in_channels: int, steps: int, lr: float, num_classes: int = 10, loss: str = "cross_entropy",
            batch: int = 16, seed: int = 0) -> tuple[float, float, float]:
    """Adam on one fixed batch of random images with random labels. Returns (first loss, last loss, training
    accuracy); the accuracy is of the trained network in train mode (batch statistics) with dropout off."""
    numcnn.manual_seed(seed)
    rng = np.random.default_rng([seed, 53])
    x = numcnn.tensor(rng.standard_normal((batch, in_channels, 28, 28)).astype(np.float32))
    y = rng.integers(0, num_classes, batch)
    target = numcnn.tensor(np.eye(num_classes, dtype=np.float32)[y]) if loss == "mse" else numcnn.tensor(y)
    loss_fn = F.mse_loss if loss == "mse" else F.cross_entropy
    opt = numcnn.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        out = loss_fn(model(x), target)
        opt.zero_grad()
        out.backward()
        opt.step()
        losses.append(out.item())
    for m in model.modules():
        if isinstance(m, numcnn.nn.Dropout):
            m.eval()
    with numcnn.no_grad():
        acc = float((model(x).numpy().argmax(1) == y).mean())
    return losses[0], losses[-1], acc


def torch_macs(twin, in_channels: int) -> int:
    """Multiply-accumulates per image counted independently of numcnn: torch forward hooks on every Conv2d
    (out elements x in_channels/groups x kernel area) and Linear (in x out)."""
    total = 0

    def hook(m, inp, out):
        nonlocal total
        if isinstance(m, torch.nn.Conv2d):
            total += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        else:
            total += m.in_features * m.out_features

    handles = [m.register_forward_hook(hook) for m in twin.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    twin.eval()
    with torch.no_grad():
        twin(torch.zeros(1, in_channels, 28, 28))
    for h in handles:
        h.remove()
    return total


def check_shapes(name: str, options: dict) -> None:
    """(N, C, 28, 28) -> (N, num_classes) float32 for C in {1, 3}, num_classes in {10, 5}, train and eval."""
    rng = np.random.default_rng(5)
    for c in (1, 3):
        for k in (10, 5):
            numcnn.manual_seed(0)
            model = numcnn.models.get(name, in_channels=c, num_classes=k, **options)
            x = numcnn.tensor(rng.standard_normal((3, c, 28, 28)).astype(np.float32))
            for mode in (True, False):
                model.train(mode)
                out = model(x)
                assert out.shape == (3, k), f"{name} C={c} classes={k}: shape {out.shape}"
                assert out.dtype == np.float32
                assert np.isfinite(out.numpy()).all()


@pytest.fixture(scope="session")
def zoo():
    pytest.importorskip("torch")
    return SimpleNamespace(assert_close=assert_close, match_twin=match_twin, overfit=overfit,
                           torch_macs=torch_macs, check_shapes=check_shapes, port=port)

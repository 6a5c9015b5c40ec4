"""Several training steps of a small CNN give PyTorch's parameters, for every optimizer and a scheduler."""

import numpy as np
import pytest

import numcnn as nc
import numcnn.nn as nn
import numcnn.nn.functional as F
from numcnn.optim import lr_scheduler

torch = pytest.importorskip("torch")


def nets():
    # No conv bias before BatchNorm: its true gradient is 0 and what is left is rounding noise, which Adam-like
    # optimizers would amplify into different (equally valid) values.
    nc_net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    t_net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1, bias=False),
                                torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 3))
    nc_net.load_state_dict({k: v.detach().numpy() for k, v in t_net.state_dict().items()})
    return nc_net, t_net


CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1)),
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, weight_decay=1e-2, amsgrad=True)),
    ("AdamW", dict(lr=1e-2)),
    ("RMSprop", dict(lr=1e-2, momentum=0.5, centered=True)),
    ("Adagrad", dict(lr=0.1, lr_decay=1e-3)),
]


@pytest.mark.parametrize("name,kw", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_small_cnn_steps_match_torch(name, kw):
    torch.manual_seed(0)
    nc_net, t_net = nets()
    opt = getattr(nc.optim, name)(nc_net.parameters(), **kw)
    t_opt = getattr(torch.optim, name)(t_net.parameters(), **kw)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=kw["lr"], total_steps=6) if name == "SGD" else None
    t_sched = torch.optim.lr_scheduler.OneCycleLR(t_opt, max_lr=kw["lr"], total_steps=6) if name == "SGD" else None
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.standard_normal((8, 1, 8, 8)).astype(np.float32)
        y = rng.integers(0, 3, 8)
        loss = F.cross_entropy(nc_net(nc.tensor(x)), nc.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        t_loss = torch.nn.functional.cross_entropy(t_net(torch.tensor(x)), torch.tensor(y))
        t_opt.zero_grad()
        t_loss.backward()
        t_opt.step()
        if sched is not None:
            sched.step()
            t_sched.step()
        np.testing.assert_allclose(loss.item(), t_loss.item(), rtol=1e-4)
    for (k, v), (tk, tv) in zip(nc_net.state_dict().items(), t_net.state_dict().items()):
        assert k == tk
        np.testing.assert_allclose(v.numpy(), tv.detach().numpy(), rtol=1e-4, atol=1e-5, err_msg=k)
    assert opt.param_groups[0]["lr"] == pytest.approx(t_opt.param_groups[0]["lr"], rel=1e-12)

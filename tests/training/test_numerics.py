"""Numerics of fit: DivergenceWatch flags a loss that explodes without becoming NaN; Checkpoint keeps the last epoch
whose validation loss was finite, so a NaN stop leaves a checkpoint worth resuming."""

import numpy as np
import pytest

import numcnn as nc
import numcnn.nn as nn
from numcnn.data import DataLoader, TensorDataset
from numcnn.nn import functional as F
from numcnn.training import Checkpoint, History, Run, TrainingDiverged, fit
from numcnn.training import loop as loop_mod
from numcnn.training.callbacks import DivergenceWatch
from numcnn.training.checkpoint import checkpoint_epoch


def setup():
    nc.manual_seed(0)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((32, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, 32)
    loader = DataLoader(TensorDataset(X, y), batch_size=16, shuffle=False)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3))
    return model, nc.optim.SGD(model.parameters(), lr=1e-2), loader


def watch_run(first_loss=None):
    run = Run(None, None, None, None, None, None, epochs=4, history=History())
    if first_loss is not None:
        run.extra["first_loss"] = first_loss
    return run


def feed(watch, run, records):
    for r in records:
        run.epoch = r["epoch"]
        run.history.append(r)
        watch.on_epoch_end(run, run.history.last)


def test_divergence_watch_flags_growth_and_nonfinite_losses_and_nothing_else():
    lines = []
    watch = DivergenceWatch(log=lines.append)
    run = watch_run(first_loss=2.3)
    feed(watch, run, [{"epoch": 1, "train_loss": 1.2, "val_loss": 0.9},
                      {"epoch": 2, "train_loss": 0.6, "val_loss": 1.1}])
    assert watch.diverged is None and lines == []  # a falling loss, a val loss that rises a little: sane
    feed(watch, run, [{"epoch": 3, "train_loss": 77686.0, "val_loss": 5.0}])
    assert watch.diverged_epoch == 3 and len(lines) == 1
    assert lines[0].startswith("warning: epoch 3: train loss 77686") and "1.2" in lines[0]  # both losses named
    assert "val loss" not in lines[0]  # 5.0 is under 10x the start (1.2)
    feed(watch, run, [{"epoch": 4, "train_loss": 0.5, "val_loss": float("inf")}])
    assert "val loss inf" in lines[1] and watch.diverged_epoch == 3  # the first diverged epoch is kept


def test_divergence_watch_uses_the_first_batch_when_epoch_one_already_exploded():
    lines = []
    watch = DivergenceWatch(log=lines.append)
    feed(watch, watch_run(first_loss=2.3), [{"epoch": 1, "train_loss": 5e4, "val_loss": None}])
    assert watch.diverged_epoch == 1 and "2.3" in lines[0]
    with pytest.raises(ValueError):
        DivergenceWatch(factor=1)


def test_explosion_without_nan_is_reported_by_fit():
    model, _, loader = setup()
    opt = nc.optim.SGD(model.parameters(), lr=1e3)
    lines = []
    watch = DivergenceWatch(log=lines.append)
    with np.errstate(all="ignore"):
        try:
            fit(model, loader, loader, epochs=3, optimizer=opt, callbacks=[watch], verbose=False)
        except TrainingDiverged:
            pass  # a NaN later on is fine: the explosion before it must have been flagged
    assert watch.diverged_epoch == 1 and lines and lines[0].startswith("warning: epoch 1:")


def test_nan_stop_keeps_the_last_checkpoint_whose_val_loss_was_finite(tmp_path, monkeypatch):
    model, opt, loader = setup()
    real_evaluate, epoch = loop_mod.evaluate, {"n": 0}

    def evaluate(*args, **kwargs):  # the validation loss is Inf after epoch 2
        epoch["n"] += 1
        res = real_evaluate(*args, **kwargs)
        if epoch["n"] >= 2:
            res.loss = float("inf")
        return res

    def loss_fn(out, y):  # the training loss becomes NaN in epoch 3
        loss = F.cross_entropy(out, y)
        return loss * float("nan") if epoch["n"] >= 2 else loss

    monkeypatch.setattr(loop_mod, "evaluate", evaluate)
    ckpt = Checkpoint(tmp_path / "ckpt")
    with pytest.raises(TrainingDiverged, match="epoch 3, batch 1"):
        fit(model, loader, loader, epochs=4, optimizer=opt, loss_fn=loss_fn, callbacks=[ckpt], verbose=False)
    assert checkpoint_epoch(tmp_path / "ckpt") == 1  # not epoch 2, whose validation loss was Inf
    assert ckpt.saved_epoch == 1 and ckpt.skipped == [2]

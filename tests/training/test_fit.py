"""fit / evaluate / predict / callbacks / checkpoints on small synthetic data."""

import json

import numpy as np
import pytest

import numcnn as nc
import numcnn.nn as nn
from numcnn.data import DataLoader, RandomCrop, TensorDataset
from numcnn.optim.lr_scheduler import OneCycleLR, StepLR
from numcnn.training import (
    BestCheckpoint,
    Callback,
    Checkpoint,
    EarlyStopping,
    TrainingDiverged,
    evaluate,
    fit,
    load_checkpoint,
    predict,
    resume,
    save_checkpoint,
)


def data(n=64, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, 8, 8)).astype(np.float32), rng.integers(0, classes, n)


def small_net(classes=3, dropout=0.3):
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(dropout), nn.Flatten(),
                         nn.Linear(144, classes))


def setup(seed=0, epochs=4, augment=False):
    nc.manual_seed(seed)
    X, y = data()
    ds = TensorDataset(X, y)
    loader = DataLoader(ds, batch_size=16, shuffle=True, seed=1,
                        transform=RandomCrop(8, padding=1) if augment else None)
    m = small_net()
    opt = nc.optim.Adam(m.parameters(), lr=1e-2)
    sch = OneCycleLR(opt, max_lr=1e-2, total_steps=epochs * len(loader))
    return m, opt, sch, loader


def weights(m):
    return {k: v.numpy().copy() for k, v in m.state_dict().items()}


def test_fit_records_history_and_loss_falls():
    m, opt, sch, loader = setup()
    h = fit(m, loader, loader, epochs=4, optimizer=opt, scheduler=sch, verbose=False)
    assert len(h) == 4 and h["epoch"] == [1, 2, 3, 4]
    assert h["train_loss"][-1] < h["train_loss"][0]
    for r in h.records:
        assert 0 <= r["train_accuracy"] <= 1 and 0 <= r["val_accuracy"] <= 1 and r["images_per_s"] > 0
    # OneCycle steps per batch: the last batch of 4 epochs x 4 batches ran at the schedule's final lr
    assert h["lr"][-1] == pytest.approx(1e-2 / 25 / 1e4, rel=1e-6)
    assert max(h["lr"]) < 1e-2
    assert "epoch,train_loss" in h.to_csv().splitlines()[0]


def test_epoch_scheduler_steps_once_per_epoch():
    m, _, _, loader = setup()
    opt = nc.optim.Adam(m.parameters(), lr=1e-2)
    sch = StepLR(opt, step_size=1, gamma=0.5)
    h = fit(m, loader, epochs=3, optimizer=opt, scheduler=sch, verbose=False)
    assert h["lr"] == pytest.approx([1e-2, 5e-3, 2.5e-3])


def test_overfits_one_batch_to_full_accuracy():
    nc.manual_seed(0)
    X, y = data(n=16, classes=4)
    loader = DataLoader(TensorDataset(X, y), batch_size=16)
    m = small_net(classes=4, dropout=0.0)
    opt = nc.optim.Adam(m.parameters(), lr=3e-2)
    h = fit(m, loader, epochs=30, optimizer=opt, verbose=False)
    assert evaluate(m, loader).accuracy == 1.0 and h["train_loss"][-1] < 0.05


def test_modes_are_switched_and_restored():
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(self.training)
            return x

    m, opt, _, loader = setup()
    m.add_module("probe", Probe())
    val = DataLoader(TensorDataset(*data(16)), batch_size=16)
    m.eval()
    fit(m, loader, val, epochs=1, optimizer=opt, verbose=False)
    assert seen == [True] * 4 + [False]  # 4 training batches, then 1 validation batch
    assert m.training  # fit leaves the model in training mode; evaluate restores the mode it found
    m.eval()
    evaluate(m, val)
    assert not m.training


def test_resume_is_bit_identical(tmp_path):
    m, opt, sch, loader = setup(augment=True)
    fit(m, loader, epochs=4, optimizer=opt, scheduler=sch, verbose=False)
    reference = weights(m)

    m, opt, sch, loader = setup(augment=True)
    fit(m, loader, epochs=2, optimizer=opt, scheduler=sch, callbacks=[Checkpoint(tmp_path / "ck")], verbose=False)
    # a fresh process would build everything again from another seed; the checkpoint restores all of it
    m, opt, sch, loader = setup(seed=99, augment=True)
    history = resume(tmp_path / "ck", model=m, optimizer=opt, scheduler=sch, train_loader=loader)
    assert len(history) == 2
    h = fit(m, loader, epochs=4, optimizer=opt, scheduler=sch, history=history, verbose=False)
    assert h["epoch"] == [1, 2, 3, 4]
    got = weights(m)
    for k in reference:
        np.testing.assert_array_equal(got[k], reference[k], err_msg=k)


def test_nan_loss_stops_with_epoch_and_batch_and_keeps_last_checkpoint(tmp_path):
    m, opt, _, loader = setup()
    calls = {"n": 0}

    def loss_fn(out, y):
        calls["n"] += 1
        loss = nn.functional.cross_entropy(out, y)
        return loss * float("nan") if calls["n"] == 7 else loss  # epoch 2, batch 3

    ck = tmp_path / "ck"
    with pytest.raises(TrainingDiverged, match="epoch 2, batch 3"):
        fit(m, loader, epochs=3, optimizer=opt, loss_fn=loss_fn, callbacks=[Checkpoint(ck)], verbose=False)
    state = json.loads((ck / "state.json").read_text())
    assert state["epoch"] == 1
    m2 = small_net()
    epoch, _ = load_checkpoint(ck, model=m2)
    assert epoch == 1 and all(np.isfinite(v.numpy()).all() for v in m2.state_dict().values())


def test_evaluate_confusion_and_per_class():
    class Fixed(nn.Module):
        def forward(self, x):  # predicts class (first pixel > 0)
            z = nc.zeros(x.shape[0], 2).numpy()
            z[np.arange(x.shape[0]), (x.numpy()[:, 0, 0, 0] > 0).astype(int)] = 5.0
            return nc.tensor(z)

    X = np.array([1, -1, 1, 1, -1], dtype=np.float32).reshape(5, 1, 1, 1)
    y = np.array([1, 0, 0, 1, 1])
    res = evaluate(Fixed(), DataLoader(TensorDataset(X, y), batch_size=2))
    np.testing.assert_array_equal(res.confusion, [[1, 1], [1, 2]])  # rows: true, columns: predicted
    np.testing.assert_allclose(res.per_class_accuracy, [0.5, 2 / 3])
    assert res.accuracy == pytest.approx(3 / 5) and res.n == 5


def test_predict_returns_softmax_probabilities():
    m, *_ = setup()
    X, _ = data(10)
    p = predict(m, X, batch_size=4)
    m.eval()
    logits = m(nc.tensor(X)).numpy()
    e = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(p, e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)
    assert p.dtype == np.float32
    with pytest.raises(TypeError, match="float32"):
        predict(m, X.astype(np.float64))


def test_early_stopping_stops_after_patience():
    m, _, _, loader = setup()
    opt = nc.optim.SGD(m.parameters(), lr=0.0)  # nothing changes: val_loss never improves after epoch 1
    m.eval()  # and BN statistics would change in train mode, so freeze BN by dropping momentum
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.momentum = 0.0
    es = EarlyStopping(monitor="val_loss", patience=2, min_delta=1e-4)  # batch order changes float sums
    h = fit(m, loader, loader, epochs=10, optimizer=opt, callbacks=[es], verbose=False)
    assert len(h) == 3 and es.stopped_epoch == 3 and es.best_epoch == 1


def test_best_checkpoint_keeps_the_best_epoch(tmp_path):
    m, opt, sch, loader = setup()
    snapshots = {}

    class Snap(Callback):
        def on_epoch_end(self, run, record):
            snapshots[run.epoch] = weights(run.model)

    best = BestCheckpoint(tmp_path / "best.safetensors", monitor="val_accuracy")
    h = fit(m, loader, loader, epochs=4, optimizer=opt, scheduler=sch, callbacks=[best, Snap()], verbose=False)
    accs = h["val_accuracy"]
    assert best.best_epoch == 1 + int(np.argmax(accs))  # first epoch reaching the max
    saved = nc.load(tmp_path / "best.safetensors")
    for k, v in snapshots[best.best_epoch].items():
        np.testing.assert_array_equal(saved[k].numpy(), v)


def test_checkpoint_swap_survives_a_crash_between_renames(tmp_path):
    m, opt, sch, loader = setup()
    ck = tmp_path / "ck"
    save_checkpoint(ck, model=m, optimizer=opt, scheduler=sch, epoch=1)
    ck.rename(tmp_path / ".ck.old")  # as if the process died after moving the old folder aside
    epoch, _ = load_checkpoint(ck, model=small_net())
    assert epoch == 1


def test_corrupt_checkpoint_is_refused(tmp_path):
    m, opt, sch, loader = setup()
    ck = tmp_path / "ck"
    save_checkpoint(ck, model=m, epoch=1)
    (ck / "state.json").write_text("{not json")
    with pytest.raises(ValueError, match="state.json: not valid JSON"):
        load_checkpoint(ck, model=small_net())
    (ck / "state.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a numcnn checkpoint"):
        load_checkpoint(ck, model=small_net())
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing", model=small_net())


def test_fit_validates_arguments():
    m, opt, _, loader = setup()
    with pytest.raises(ValueError, match="epochs"):
        fit(m, loader, epochs=0, optimizer=opt)
    with pytest.raises(ValueError, match="monitor"):
        EarlyStopping(monitor="val_acc")

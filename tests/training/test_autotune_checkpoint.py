"""Checkpoints carry the convolution algorithm table and the autotune flag; resume restores them, so a run that
autotuned continues bit for bit. Timings are faked (conv_select._time_candidate patched) so that autotune picks
"rowshift" where the fixed rule picks "im2col": the test then sees which of the two a resumed run used."""

from __future__ import annotations

import json

import numpy as np
import pytest

from numcnn.kernels import conv as K
from numcnn.nn.functional import conv_select
from numcnn.training import Checkpoint, fit, load_checkpoint, resume, save_checkpoint
from training import test_fit as helpers  # setup(): a seeded conv net, Adam, OneCycleLR and a shuffling loader


def prefer(monkeypatch, fastest: str | None) -> None:
    """Autotune's timings say ``fastest`` wins; None: any timing fails the test (everything must be in the table)."""

    def fake(algorithm, *args):
        if fastest is None:
            pytest.fail("a convolution was timed although the table should hold its choice")
        return 1.0 if algorithm == fastest else 2.0

    monkeypatch.setattr(conv_select, "_time_candidate", fake)


def record_forward_algorithms(monkeypatch) -> list[str]:
    seen = []
    original = K.conv2d_forward

    def wrapper(*args, **kwargs):
        seen.append(kwargs.get("algorithm"))
        return original(*args, **kwargs)

    monkeypatch.setattr(K, "conv2d_forward", wrapper)
    return seen


def train(epochs: int, seed: int = 0, callbacks=(), history=None, objects=None):
    m, opt, sch, loader = objects or helpers.setup(seed=seed, augment=True)
    fit(m, loader, loader, epochs=epochs, optimizer=opt, scheduler=sch, callbacks=callbacks, history=history,
        verbose=False)
    return m


def test_resume_restores_the_autotuned_table_bit_for_bit(tmp_path, monkeypatch):
    prefer(monkeypatch, "rowshift")
    conv_select.set_autotune(True)
    reference = helpers.weights(train(epochs=4))
    table = conv_select.algorithm_table()
    # the net's one conv (1 -> 4, 3x3 on 8x8), in training and for validation: rowshift, not the fixed rule's im2col
    assert sorted(table) == ["x=16x1x8x8 w=4x1x3x3 s=1x1 p=0,0,0,0 d=1x1 g=1 float32 infer",
                             "x=16x1x8x8 w=4x1x3x3 s=1x1 p=0,0,0,0 d=1x1 g=1 float32 train"]
    assert set(table.values()) == {"rowshift"}
    assert K.choose_algorithm((16, 1, 8, 8), (4, 1, 3, 3), (1, 1), ((0, 0), (0, 0))) == "im2col"

    conv_select.clear_algorithm_table()
    train(epochs=2, callbacks=[Checkpoint(tmp_path / "ck")])
    state = json.loads((tmp_path / "ck" / "state.json").read_text())
    assert state["conv_algorithms"] == table and state["conv_autotune"] is True

    # a fresh process: autotune off, an empty table, timings that would now pick im2col (never asked: see below)
    conv_select.set_autotune(False)
    conv_select.clear_algorithm_table()
    prefer(monkeypatch, None)
    objects = helpers.setup(seed=99, augment=True)
    history = resume(tmp_path / "ck", model=objects[0], optimizer=objects[1], scheduler=objects[2],
                     train_loader=objects[3])
    assert conv_select.algorithm_table() == table and conv_select.is_autotune_enabled()
    seen = record_forward_algorithms(monkeypatch)
    got = helpers.weights(train(epochs=4, history=history, objects=objects))
    assert set(seen) == {"rowshift"} and len(seen) == 2 * (4 + 4)  # 2 epochs x (4 training + 4 validation)
    for k in reference:
        np.testing.assert_array_equal(got[k], reference[k], err_msg=k)


def test_without_the_table_the_continuation_would_differ(tmp_path, monkeypatch):
    # The control for the test above: the same resume on the fixed rule gives other bits.
    prefer(monkeypatch, "rowshift")
    conv_select.set_autotune(True)
    reference = helpers.weights(train(epochs=3))
    conv_select.clear_algorithm_table()
    train(epochs=2, callbacks=[Checkpoint(tmp_path / "ck")])
    state_file = tmp_path / "ck" / "state.json"
    state = json.loads(state_file.read_text())
    del state["conv_algorithms"], state["conv_autotune"]  # what a checkpoint from before the table looks like
    state_file.write_text(json.dumps(state))
    conv_select.set_autotune(False)
    conv_select.clear_algorithm_table()
    objects = helpers.setup(seed=99, augment=True)
    history = resume(tmp_path / "ck", model=objects[0], optimizer=objects[1], scheduler=objects[2],
                     train_loader=objects[3])
    assert conv_select.algorithm_table() == {} and not conv_select.is_autotune_enabled()  # old checkpoints load
    seen = record_forward_algorithms(monkeypatch)
    got = helpers.weights(train(epochs=3, history=history, objects=objects))
    assert set(seen) == {"auto"}  # no table: the kernels' fixed per-pass rule
    assert not all(np.array_equal(got[k], reference[k]) for k in reference)
    # the same numbers to rounding (the conv's bias, whose gradient through BatchNorm is rounding noise, aside)
    np.testing.assert_allclose(got["0.weight"], reference["0.weight"], rtol=1e-4, atol=1e-6)


def test_a_checkpoint_without_autotune_saves_the_table_and_does_not_turn_it_on(tmp_path):
    m, opt, sch, loader = helpers.setup()
    loaded = {"x=16x1x8x8 w=4x1x3x3 s=1x1 p=0,0,0,0 d=1x1 g=1 float32 train": "rowshift"}
    conv_select.load_algorithm_table(loaded)
    save_checkpoint(tmp_path / "ck", model=m, optimizer=opt, scheduler=sch, epoch=1)
    saved = helpers.weights(m)
    conv_select.clear_algorithm_table()
    m2, opt2, sch2, _ = helpers.setup(seed=5)
    epoch, _ = load_checkpoint(tmp_path / "ck", model=m2, optimizer=opt2, scheduler=sch2)
    assert epoch == 1 and conv_select.algorithm_table() == loaded and not conv_select.is_autotune_enabled()
    for k, v in helpers.weights(m2).items():
        np.testing.assert_array_equal(v, saved[k], err_msg=k)


def test_a_checkpoint_with_a_bad_table_is_refused(tmp_path):
    m, opt, sch, _ = helpers.setup()
    save_checkpoint(tmp_path / "ck", model=m, optimizer=opt, scheduler=sch, epoch=1)
    state_file = tmp_path / "ck" / "state.json"
    state = json.loads(state_file.read_text())
    bad_key = "x=16x1x8x8 w=4x1x3x3 s=2x2 p=0,0,0,0 d=1x1 g=1 float32 train"
    state["conv_algorithms"] = {bad_key: "rowshift"}
    state_file.write_text(json.dumps(state))
    with pytest.raises(ValueError, match="cannot restore this checkpoint") as e:
        load_checkpoint(tmp_path / "ck", model=m, optimizer=opt, scheduler=sch)
    assert bad_key in str(e.value) and "stride 1x1" in str(e.value)
    assert conv_select.algorithm_table() == {}

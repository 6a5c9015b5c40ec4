"""Checkpoints carry the kernels' runtime state (``runtime.state_dict()``: memory budget, convolution algorithm table,
autotune flag); resume restores it, so a run that autotuned continues bit for bit. Timings are faked
(``kernels.conv.autotune._time_candidate`` patched) so that autotune picks "rowshift" where the fixed rule picks
"im2col": the test then sees which of the two a resumed run used. Checkpoints written before the runtime object
(table under "conv_algorithms", flag under "conv_autotune", or neither) still load.

Every test runs inside ``runtime.scoped(autotune=False, algorithms={})``: nothing it sets leaks into other tests."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

from autotune_helpers import fresh_process, fresh_runtime, prefer  # noqa: F401 - fresh_runtime: autouse
from numcnn.kernels import conv as K
from numcnn.kernels.runtime import runtime
from numcnn.training import Checkpoint, fit, load_checkpoint, resume, save_checkpoint
from training import test_fit as helpers  # setup(): a seeded conv net, Adam, OneCycleLR and a shuffling loader

TRAIN_KEY = "x=16x1x8x8 w=4x1x3x3 s=1x1 p=0,0,0,0 d=1x1 g=1 float32 train"
INFER_KEY = "x=16x1x8x8 w=4x1x3x3 s=1x1 p=0,0,0,0 d=1x1 g=1 float32 infer"


def record_forward_algorithms(monkeypatch) -> list[str]:
    """Log the algorithm of every K.forward call (what conv2d's forward runs)."""
    seen = []
    original = K.forward
    signature = inspect.signature(K.dispatch.forward)

    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        seen.append(bound.arguments["algorithm"])
        return original(*args, **kwargs)

    monkeypatch.setattr(K, "forward", wrapper)
    return seen


def to_old_format(state_file, keep_table: bool = True) -> dict:
    """Rewrite a checkpoint's state.json as one written before the runtime object: the table under
    "conv_algorithms" and the flag under "conv_autotune" (``keep_table``), or neither (before the table existed)."""
    state = json.loads(state_file.read_text())
    saved = state.pop("runtime")
    if keep_table:
        state["conv_algorithms"], state["conv_autotune"] = saved["algorithms"], saved["autotune"]
    state_file.write_text(json.dumps(state))
    return saved


def train(epochs: int, seed: int = 0, callbacks=(), history=None, objects=None):
    m, opt, sch, loader = objects or helpers.setup(seed=seed, augment=True)
    fit(m, loader, loader, epochs=epochs, optimizer=opt, scheduler=sch, callbacks=callbacks, history=history,
        verbose=False)
    return m


@pytest.mark.parametrize("fmt", ["runtime", "old keys"])
def test_resume_restores_the_autotuned_table_bit_for_bit(tmp_path, monkeypatch, fmt):
    if fmt == "old keys":  # checkpoints from before the runtime object were computed by the NumPy kernels
        runtime.backend = "numpy"
    prefer(monkeypatch, "rowshift")
    runtime.autotune = True
    reference = helpers.weights(train(epochs=4))
    table = dict(runtime.algorithms)
    # the net's one conv (1 -> 4, 3x3 on 8x8), in training and for validation: rowshift, not the fixed rule's im2col
    assert sorted(table) == [INFER_KEY, TRAIN_KEY]
    assert set(table.values()) == {"rowshift"}
    assert K.choose(K.ConvGeometry.of((16, 1, 8, 8), (4, 1, 3, 3), (1, 1), ((0, 0), (0, 0))), "forward") == "im2col"

    runtime.load_algorithms({})
    train(epochs=2, callbacks=[Checkpoint(tmp_path / "ck")])
    state_file = tmp_path / "ck" / "state.json"
    state = json.loads(state_file.read_text())
    assert "conv_algorithms" not in state and "conv_autotune" not in state
    assert state["runtime"] == {"backend": runtime.backend, "memory_budget": runtime.memory_budget, "algorithms": table,
                                "autotune": True}
    if fmt == "old keys":  # a checkpoint written before the runtime object: the same table under the old keys
        to_old_format(state_file)
        assert json.loads(state_file.read_text())["conv_algorithms"] == table

    # a fresh process: autotune off, an empty table, timings that would now pick im2col (never asked: see below)
    fresh_process()
    prefer(monkeypatch, None)
    objects = helpers.setup(seed=99, augment=True)
    history = resume(tmp_path / "ck", model=objects[0], optimizer=objects[1], scheduler=objects[2],
                     train_loader=objects[3])
    assert runtime.algorithms == table and runtime.autotune
    seen = record_forward_algorithms(monkeypatch)
    got = helpers.weights(train(epochs=4, history=history, objects=objects))
    assert set(seen) == {"rowshift"} and len(seen) == 2 * (4 + 4)  # 2 epochs x (4 training + 4 validation)
    for k in reference:
        np.testing.assert_array_equal(got[k], reference[k], err_msg=k)


def test_without_the_table_the_continuation_would_differ(tmp_path, monkeypatch):
    # The control for the test above: the same resume on the fixed rule gives other bits.
    prefer(monkeypatch, "rowshift")
    runtime.autotune = True
    reference = helpers.weights(train(epochs=3))
    runtime.load_algorithms({})
    train(epochs=2, callbacks=[Checkpoint(tmp_path / "ck")])
    state_file = tmp_path / "ck" / "state.json"
    to_old_format(state_file, keep_table=False)  # what a checkpoint from before the table looks like
    state = json.loads(state_file.read_text())
    assert not {"runtime", "conv_algorithms", "conv_autotune"} & set(state)
    fresh_process()
    objects = helpers.setup(seed=99, augment=True)
    history = resume(tmp_path / "ck", model=objects[0], optimizer=objects[1], scheduler=objects[2],
                     train_loader=objects[3])
    assert runtime.algorithms == {} and not runtime.autotune  # old checkpoints load
    seen = record_forward_algorithms(monkeypatch)
    got = helpers.weights(train(epochs=3, history=history, objects=objects))
    assert set(seen) == {"auto"}  # no table: the kernels' fixed per-pass rule
    assert not all(np.array_equal(got[k], reference[k]) for k in reference)
    # the same numbers to rounding (the conv's bias, whose gradient through BatchNorm is rounding noise, aside)
    np.testing.assert_allclose(got["0.weight"], reference["0.weight"], rtol=1e-4, atol=1e-6)


def test_a_checkpoint_without_autotune_saves_the_table_and_does_not_turn_it_on(tmp_path):
    m, opt, sch, loader = helpers.setup()
    loaded = {TRAIN_KEY: "rowshift"}
    runtime.load_algorithms(loaded)
    save_checkpoint(tmp_path / "ck", model=m, optimizer=opt, scheduler=sch, epoch=1)
    saved = helpers.weights(m)
    runtime.load_algorithms({})
    m2, opt2, sch2, _ = helpers.setup(seed=5)
    epoch, _ = load_checkpoint(tmp_path / "ck", model=m2, optimizer=opt2, scheduler=sch2)
    assert epoch == 1 and runtime.algorithms == loaded and not runtime.autotune
    for k, v in helpers.weights(m2).items():
        np.testing.assert_array_equal(v, saved[k], err_msg=k)


def test_loading_turns_autotune_on_if_saved_on_but_never_off(tmp_path):
    m, opt, sch, _ = helpers.setup()
    save_checkpoint(tmp_path / "off", model=m, optimizer=opt, scheduler=sch, epoch=1)
    with runtime.scoped(autotune=True):
        save_checkpoint(tmp_path / "on", model=m, optimizer=opt, scheduler=sch, epoch=1)
    assert not runtime.autotune
    load_checkpoint(tmp_path / "on", model=m, optimizer=opt, scheduler=sch)
    assert runtime.autotune  # saved on: turned on
    load_checkpoint(tmp_path / "off", model=m, optimizer=opt, scheduler=sch)
    assert runtime.autotune  # saved off: left on
    to_old_format(tmp_path / "off" / "state.json")
    load_checkpoint(tmp_path / "off", model=m, optimizer=opt, scheduler=sch)
    assert runtime.autotune  # the old format likewise


def test_the_checkpoint_restores_the_memory_budget_and_old_checkpoints_keep_the_current_one(tmp_path):
    m, opt, sch, _ = helpers.setup()
    with runtime.scoped(memory_budget=123_456):
        save_checkpoint(tmp_path / "ck", model=m, optimizer=opt, scheduler=sch, epoch=1)
    default = runtime.memory_budget
    assert default != 123_456
    assert json.loads((tmp_path / "ck" / "state.json").read_text())["runtime"]["memory_budget"] == 123_456
    with runtime.scoped():
        load_checkpoint(tmp_path / "ck", model=m, optimizer=opt, scheduler=sch)
        assert runtime.memory_budget == 123_456  # the batch chunks, hence the bits, of the saved run
    assert runtime.memory_budget == default
    to_old_format(tmp_path / "ck" / "state.json")  # the old format saved no budget
    load_checkpoint(tmp_path / "ck", model=m, optimizer=opt, scheduler=sch)
    assert runtime.memory_budget == default


@pytest.mark.parametrize("fmt", ["runtime", "old keys"])
def test_a_checkpoint_with_a_bad_table_is_refused(tmp_path, fmt):
    m, opt, sch, _ = helpers.setup()
    save_checkpoint(tmp_path / "ck", model=m, optimizer=opt, scheduler=sch, epoch=1)
    state_file = tmp_path / "ck" / "state.json"
    if fmt == "old keys":
        to_old_format(state_file)
    state = json.loads(state_file.read_text())
    bad_key = "x=16x1x8x8 w=4x1x3x3 s=2x2 p=0,0,0,0 d=1x1 g=1 float32 train"
    if fmt == "runtime":
        state["runtime"]["algorithms"] = {bad_key: "rowshift"}
    else:
        state["conv_algorithms"] = {bad_key: "rowshift"}
    state_file.write_text(json.dumps(state))
    before = runtime.state_dict()
    with pytest.raises(ValueError, match="cannot restore this checkpoint") as e:
        load_checkpoint(tmp_path / "ck", model=m, optimizer=opt, scheduler=sch)
    assert bad_key in str(e.value) and "stride 1x1" in str(e.value)
    assert runtime.algorithms == {} and runtime.state_dict() == before


def test_the_checkpoint_records_its_backend_and_resume_keeps_it(tmp_path):
    pytest.importorskip("numba")
    m, opt, sch, _ = helpers.setup()
    with runtime.scoped(backend="numba"):
        save_checkpoint(tmp_path / "ck", model=m, optimizer=opt, scheduler=sch, epoch=1)
    assert json.loads((tmp_path / "ck" / "state.json").read_text())["runtime"]["backend"] == "numba"
    with runtime.scoped(backend="numpy"):  # asked for explicitly: continuing on other kernels is refused
        with pytest.raises(ValueError, match="computed with the 'numba' kernels, but the 'numpy' kernels were asked"):
            load_checkpoint(tmp_path / "ck", model=m, optimizer=opt, scheduler=sch)
        assert runtime.backend == "numpy"
    with runtime.scoped(backend="numpy"):
        runtime.backend_explicit = False  # nobody asked: the checkpoint's kernels are taken over
        load_checkpoint(tmp_path / "ck", model=m, optimizer=opt, scheduler=sch)
        assert runtime.backend == "numba"

"""A hand-edited or damaged run folder (config.json, the checkpoint's state.json) is refused when it is read, before
any model is built or any epoch runs, in one line naming the file, the field, the value and what was expected."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from numcnn._schema import MAX_DEPTH, SchemaError, check, describe, read_json
from numcnn.training.run_config import CONFIG_SCHEMA


@pytest.fixture(scope="module")
def step_run(tmp_path_factory, data_dir) -> Path:
    """One epoch of a run whose step schedule lets --resume --epochs 2 go on (so resume really would train)."""
    from numcnn.cli.main import main

    out = tmp_path_factory.mktemp("schema") / "run"
    assert main(["train", "--data-dir", str(data_dir), "--limit", "60", "--epochs", "1", "--scheduler", "step",
                 "--quiet", "--out", str(out)]) == 0
    return out


def damaged(step_run: Path, tmp_path: Path, file: str, field: str, value) -> Path:
    """A copy of the run whose ``file`` has ``field`` (dotted) set to ``value`` (``...``: deleted); the checkpoint's
    copy of the config is damaged alike, so no copy can stand in for the other."""
    run = tmp_path / "run"
    shutil.copytree(step_run, run)
    state = run / "checkpoint/state.json"
    paths = [run / "config.json", state] if file == "config" else [state]
    for path in paths:
        doc = json.loads(path.read_text())
        node = doc["extra"]["config"] if file == "config" and path.name == "state.json" else doc
        *parents, last = field.split(".")
        for key in parents:
            node = node[int(key) if isinstance(node, list) else key]
        if value is ...:
            del node[last]
        else:
            node[int(last) if isinstance(node, list) else last] = value
        path.write_text(json.dumps(doc))
    return run


CONFIG_FAULTS = [  # field, value, the words the one-line refusal must hold
    ("dataset.classes", [], 'dataset.classes is [], expected a list of 1 to 10000 class names'),
    ("dataset.classes", ["a", 2], "dataset.classes.1 is 2, expected a string"),
    ("normalization.std", [0], "normalization.std.0 is 0, expected a number > 0"),
    ("normalization.mean", "0.5", 'normalization.mean is "0.5", expected a list of 1 to 64 numbers'),
    ("recipe.loss", "hinge", 'recipe.loss is "hinge", expected one of "cross_entropy", "mse"'),
    ("recipe.batch_size", 0, "recipe.batch_size is 0, expected an integer from 1 to"),
    ("recipe.batch_size", -5, "recipe.batch_size is -5, expected an integer from 1 to"),
    ("recipe.batch_size", "100", 'recipe.batch_size is "100", expected an integer from 1 to'),
    ("recipe.epochs", "x", 'recipe.epochs is "x", expected an integer'),
    ("recipe.lr", -1, "recipe.lr is -1, expected a number > 0"),
    ("recipe.optimizer", "lbfgs", 'recipe.optimizer is "lbfgs", expected one of "adadelta", "adagrad"'),
    ("recipe.scheduler", "zzz", 'recipe.scheduler is "zzz", expected null or one of "onecycle"'),
    ("recipe.augment", "no", 'recipe.augment is "no", expected true or false'),
    ("recipe.optimizer_kwargs", {"betas": "x"}, 'recipe.optimizer_kwargs.betas is "x", expected a number'),
    ("recipe", ..., "recipe is missing, expected an object (the training recipe)"),
    ("seed", "x", 'seed is "x", expected an integer from 0 to'),
    ("model.num_classes", 400000, "model.num_classes is 400000, expected an integer from 1 to 10000"),
    ("model.num_classes", 3, "model.num_classes is 3, expected 10 (one per class name in dataset.classes)"),
    ("model.in_channels", 0, "model.in_channels is 0, expected an integer from 1 to 64"),
    ("model.options", [1], "model.options is [1], expected an object"),
    ("dataset.image_shape", [1, 100000, 100000], "dataset.image_shape.1 is 100000, expected an integer from 1 to 4096"),
    ("dataset.image_shape", [3, 4096, 4096], "dataset.image_shape is [3, 4096, 4096], expected at most"),
    ("dataset.root", 5, "dataset.root is 5, expected null or a string"),
    ("dataset.limit", -1, "dataset.limit is -1, expected null or an integer >= 1"),
    ("autotune", "yes", 'autotune is "yes", expected true or false'),
]


def refused(r, path: Path, needle: str) -> None:
    lines = r.err.strip().splitlines()
    assert r.rc == 2 and len(lines) == 1 and "Traceback" not in r.err, (r.rc, r.err)
    assert str(path) in lines[0] and needle in lines[0], (needle, lines[0])
    assert not any(line.startswith("test accuracy") for line in r.lines)


@pytest.mark.parametrize("field, value, needle", CONFIG_FAULTS, ids=[f"{f}={v!r}" for f, v, _ in CONFIG_FAULTS])
def test_a_damaged_config_is_refused_by_every_command(cli, step_run, tmp_path, data_dir, field, value, needle):
    run = damaged(step_run, tmp_path, "config", field, value)
    config = run / "config.json"
    refused(cli("evaluate", run, "--data-dir", data_dir, "--out", tmp_path), config, needle)
    refused(cli("export", run, tmp_path / "m.onnx"), config, needle)
    refused(cli("predict", run, tmp_path / "no-such.png"), config, needle)
    refused(cli("train", "--resume", "--out", run, "--epochs", "2", "--data-dir", data_dir), config, needle)
    assert len(json.loads((run / "metrics.json").read_text())["epochs"]) == 1  # no epoch ran
    refused(cli("evaluate", run / "checkpoint", "--data-dir", data_dir, "--out", tmp_path),
            run / "checkpoint/state.json", needle)


STATE_FAULTS = [
    ("scheduler.last_epoch", "x", 'scheduler.last_epoch is "x", expected an integer >= -1'),
    ("epoch", "x", 'epoch is "x", expected an integer >= 0'),
    ("epoch", -3, "epoch is -3, expected an integer >= 0"),
    ("history", 5, "history is 5, expected null or an object (the history)"),
    ("history.records", [{"epoch": "x"}], 'history.records.0.epoch is "x", expected an integer >= 1'),
    ("optimizer.param_groups", [], "optimizer.param_groups is [], expected a list of at least 1 parameter groups"),
    ("optimizer.param_groups.0.lr", "fast", 'optimizer.param_groups.0.lr is "fast", expected a number >= 0'),
    ("rng", None, "rng is null, expected an object (random generator states"),
    ("rng", ..., "rng is missing"),
    ("runtime.memory_budget", "x", 'runtime.memory_budget is "x", expected an integer >= 1'),
    ("runtime.backend", "cuda", 'runtime.backend is "cuda", expected one of "numpy", "numba"'),
]


@pytest.mark.parametrize("field, value, needle", STATE_FAULTS, ids=[f"{f}={v!r}" for f, v, _ in STATE_FAULTS])
def test_a_damaged_checkpoint_state_is_refused_before_an_epoch_runs(cli, step_run, tmp_path, data_dir, field, value,
                                                                    needle):
    run = damaged(step_run, tmp_path, "state", field, value)
    start = time.perf_counter()
    r = cli("train", "--resume", "--out", run, "--epochs", "2", "--data-dir", data_dir)
    refused(r, run / "checkpoint/state.json", needle)
    assert len(json.loads((run / "metrics.json").read_text())["epochs"]) == 1
    assert time.perf_counter() - start < 30  # a refusal, not an epoch of training


def test_deep_nesting_and_huge_files_are_refused_before_parsing(cli, step_run, tmp_path, data_dir):
    run = damaged(step_run, tmp_path, "config", "model.options", {})
    config = run / "config.json"
    config.write_text('{"format": "numcnn-run/1", "model": ' + "[" * 100_000 + "]" * 100_000 + "}")
    refused(cli("evaluate", run, "--data-dir", data_dir), config, "not valid JSON")
    config.write_text('{"format": "numcnn-run/1", "model": ' + "[" * 40 + "]" * 40 + "}")
    refused(cli("evaluate", run, "--data-dir", data_dir), config, f"nested more than {MAX_DEPTH} levels deep")
    with config.open("wb") as f:  # a sparse 2 GB file: refused by its size, never read
        f.truncate(2 << 30)
    refused(cli("evaluate", run, "--data-dir", data_dir), config, "2,147,483,648 bytes, more than the 1,048,576")


def test_the_intact_run_passes_its_schemas(step_run):
    """The schemas accept what numcnn writes (the harness of the tests above)."""
    from numcnn.training.checkpoint_schema import STATE_SCHEMA

    check(read_json(step_run / "config.json"), CONFIG_SCHEMA, "config.json")
    check(read_json(step_run / "checkpoint/state.json", 1 << 26), STATE_SCHEMA, "state.json")


def test_messages_read_as_the_schema():
    """describe() on hand-made errors: the field path, the value as JSON, the leaf's own wording of 'expected'."""
    schema = {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "integer",
                                                                               "description": "an integer"}}},
              "required": ["a", "b"]}
    with pytest.raises(SchemaError, match=r'^f.json: a.1 is "2", expected an integer$'):
        check({"a": [1, "2"], "b": 0}, schema, "f.json")
    with pytest.raises(SchemaError, match=r"^f.json: b is missing, expected a value$"):
        check({"a": []}, schema, "f.json")
    import jsonschema

    error = next(jsonschema.Draft202012Validator({"maximum": 3}).iter_errors(4))
    assert describe(error) == "the file is 4, expected 4 is greater than the maximum of 3"

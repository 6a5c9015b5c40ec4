"""Reading a trained run for the explorer: its config, its model with the trained weights, its test images.

Runs are read as the command line reads them (numcnn/training/run_config.py: a run folder, a checkpoint folder or a
run's ``.safetensors``; ONNX files are graphs, not modules, and have no layers to hook). Every failure is an
:class:`ExploreError` in one line, which the command line prints with exit status 2.
"""

from __future__ import annotations

from pathlib import Path

from ..training.run_config import DATASETS, MODEL_SCHEMA, RunError, TrainedRun, load_trained_run
from ..training.run_config import check_config as _check_config
from .errors import ExploreError


def check_config(config, where: str) -> dict:
    """``config`` when it describes a model as a run config does (a recipe and seed are not needed), else
    ExploreError (the schema's one-line message)."""
    try:
        return _check_config(config, where, MODEL_SCHEMA)
    except RunError as e:
        raise ExploreError(str(e)) from None


def load_run(path) -> TrainedRun:
    """The trained model of a run folder, a checkpoint folder or a run's ``.safetensors`` file, in eval mode."""
    path = Path(path)
    if path.is_file() and path.suffix != ".safetensors":
        raise ExploreError(f"{path}: expected a run folder, a checkpoint folder or a run's .safetensors file (an "
                           ".onnx file is a graph without layers to show)")
    try:
        return load_trained_run(path)
    except RunError as e:
        raise ExploreError(str(e)) from None


def load_test_set(config: dict, data_dir=None):
    """``(test dataset, None)``, or ``(None, why not)`` when its files are not found: the explorer then still
    takes drawings and uploads. ``data_dir`` overrides the folder the run was trained from."""
    ds = config["dataset"]
    name, root = ds.get("name"), data_dir if data_dir is not None else ds.get("root")
    if name not in DATASETS:
        return None, f"the run's dataset {name!r} is not one explore can read ({', '.join(DATASETS)})"
    try:
        test = DATASETS[name](root=root, train=False)
    except (OSError, RuntimeError, ValueError) as e:
        why = " ".join(str(e).split())
        return None, f"{why} (give the folder with --data-dir DIR)"
    x = test.arrays[0]
    shape = (1, *x.shape[1:]) if x.ndim == 3 else tuple(x.shape[1:])
    if shape != tuple(ds["image_shape"]):
        return None, f"the test images have shape {shape}, the run takes {tuple(ds['image_shape'])}"
    return test, None

"""PyTorch training scripts run on numcnn, two ways (issue 13, "How it is checked", first bullet).

Every script in this folder is written as a public PyTorch script or tutorial is (its header names which one). Each
is run here (a) unchanged through ``python -m numcnn run script.py ARGS`` and (b) as a copy with its imports changed
to numcnn (``import torch`` -> ``import numcnn as torch``, ``torchvision`` -> ``numcnn.vision``, see
:func:`numcnn_imports`) under plain ``python``. Each must finish, print the lines its checks expect (values it
verifies itself, e.g. a reloaded model's outputs equal the saved one's, a grid's size from make_grid's formula), and
end with ``accuracy: X``.

The accuracy rule compares like with like: numcnn's median over seeds 1, 2, 3 must lie in PyTorch's range over the
same seeds for the same script and arguments, widened by 0.01 on both sides. (numcnn's random numbers are not
torch's, so a seed is one more draw from the same spread; a single draw falls inside the range of three others only
half the time even when both libraries train identically, and one of the scripts, d2l's LeNet, has a seed spread of
0.017 after two epochs. Its arguments were then chosen by PyTorch's spread alone: four epochs, where PyTorch's
seeds 1-5 lie within 0.014 of each other.) Way (b) runs seed 1 only: it is the same numcnn code with the same seed,
so it must give way (a)'s accuracy to the last digit.

PyTorch's figures (``TORCH``) were measured on this machine with torch 2.13.0+cpu and the torchvision stand-in of
``torchvision_standin/`` first on ``sys.path``, with the data that ``conftest.py`` writes::

    python tests/scripts/test_scripts.py --measure      # prints the TORCH table below

This module never imports torch.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SEEDS = (1, 2, 3)  # numcnn's and PyTorch's
WIDEN = 0.01


@dataclass(frozen=True)
class Case:
    script: str  # file name without .py
    args: tuple[str, ...]  # reduced epochs / data; --data-dir and --seed are added
    data: str = ""  # subfolder of the test data folder passed as --data-dir
    expect: tuple[str, ...] = ()  # substrings the output must contain


CASES = [
    Case("mnist_example", ("--epochs", "1", "--limit", "3000", "--test-limit", "1000", "--log-interval", "20")),
    Case("cifar10_tutorial", ("--epochs", "1", "--lr", "0.004"),
         expect=("grid (3, 36, 138)", "Finished Training")),
    Case("fashion_quickstart", ("--epochs", "2", "--lr", "0.05", "--limit", "8000", "--test-limit", "2000"),
         expect=("Shape of X [N, C, H, W]:", "[64, 1, 28, 28]", "Using cpu device", "Done!")),
    Case("autograd_tutorial", ("--steps", "150", "--lr", "0.2", "--limit", "5000"),
         expect=("leaves are w and b: True", "b.grad is dloss/dz: True", "w.grad is x outer dloss/dz: True",
                 "graph leaves: 4 of 4 parameters", "after freezing conv: 2 of 4 parameters")),
    Case("checkpoint_resume", ("--epochs", "1", "--limit", "3000"),
         expect=("resumed after epoch 0", "optimizer step 47", "reloaded outputs equal: True",
                 "running_mean restored: True")),
    Case("d2l_lenet", ("--batch-norm", "--epochs", "4", "--limit", "6000", "--batch-size", "64", "--lr", "0.1"),
         expect=("output shape: (2, 10)", "training on cpu")),
    Case("custom_dataset", ("--epochs", "3", "--limit", "3000"),
         expect=("2400 training samples, 600 validation samples", "'image': (32, 1, 28, 28), 'label': (32,)")),
    Case("transfer_folder", ("--epochs", "3"), data="hymenoptera",
         expect=("{'train': 360, 'val': 300} ['coat', 'shirt', 'trouser']", "grid: (3, 70, 274)",
                 "saved: 274x70 RGB")),
]

#: PyTorch's accuracy for seeds 1, 2, 3 (see the module docstring for how they were measured).
TORCH = {  # measured 2026-12-02, torch 2.13.0+cpu, 2 CPUs, `python tests/scripts/test_scripts.py --measure`
    "mnist_example": (0.7530, 0.7680, 0.7610),
    "cifar10_tutorial": (0.8630, 0.8620, 0.8540),
    "fashion_quickstart": (0.7345, 0.6650, 0.7150),
    "autograd_tutorial": (0.7645, 0.7672, 0.7726),
    "checkpoint_resume": (0.8140, 0.8127, 0.8367),
    "d2l_lenet": (0.7740, 0.7803, 0.7880),
    "custom_dataset": (0.6910, 0.7730, 0.7490),
    "transfer_folder": (0.8667, 0.8333, 0.8333),
}

# PyTorch module -> the numcnn module a user imports instead (longest prefix first).
IMPORT_RENAMES = (("torch.utils.data", "numcnn.utils.data"), ("torchvision", "numcnn.vision"), ("torch", "numcnn"))


def _rename(module: str) -> str:
    for torch_name, ours in IMPORT_RENAMES:
        if module == torch_name or module.startswith(torch_name + "."):
            return ours + module[len(torch_name):]
    return module


def numcnn_imports(source: str) -> str:
    """The script with its imports changed to numcnn, as a user would: ``import torch`` -> ``import numcnn as
    torch``, ``import torch.nn as nn`` -> ``import numcnn.nn as nn``, ``from torchvision import datasets`` -> ``from
    numcnn.vision import datasets``; nothing else changes."""
    def plain(m: re.Match) -> str:
        ours = _rename(m["module"])
        return m[0] if ours == m["module"] else f"{m['indent']}import {ours} as {m['module']}"

    def aliased(m: re.Match) -> str:
        return f"{m['indent']}import {_rename(m['module'])} as {m['alias']}"

    def from_import(m: re.Match) -> str:
        return f"{m['indent']}from {_rename(m['module'])} import {m['names']}"

    source = re.sub(r"^(?P<indent>[ \t]*)import (?P<module>[\w.]+) as (?P<alias>\w+)[ \t]*$", aliased, source,
                    flags=re.M)
    source = re.sub(r"^(?P<indent>[ \t]*)import (?P<module>torch|torchvision)[ \t]*$", plain, source, flags=re.M)
    return re.sub(r"^(?P<indent>[ \t]*)from (?P<module>[\w.]+) import (?P<names>.+)$", from_import, source, flags=re.M)


def command(case: Case, way: str, data_dir: Path, seed: int, workdir: Path) -> list[str]:
    """The command line of one run: ``way`` is "run" (numcnn run), "imports" (a numcnn copy) or "torch"."""
    script = HERE / f"{case.script}.py"
    args = [*case.args, "--data-dir", str(data_dir / case.data), "--seed", str(seed)]
    if way == "run":
        return [sys.executable, "-m", "numcnn", "run", str(script), *args]
    if way == "imports":
        copy = workdir / f"{case.script}.py"
        copy.write_text(numcnn_imports(script.read_text()))
        return [sys.executable, str(copy), *args]
    return [sys.executable, str(script), *args]


def accuracy_of(output: str) -> float:
    lines = output.strip().splitlines()
    match = re.fullmatch(r"accuracy: (\d\.\d{4})", lines[-1].strip()) if lines else None
    if match is None:
        raise AssertionError(f"the run's last line is not 'accuracy: 0.XXXX': {lines[-1:] or 'no output'}")
    return float(match[1])


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
    """``runs(case, way, seed)``: that run's stdout (each run once per module), after checking it exited with
    status 0 and printed every line ``case.expect`` names."""
    done: dict[tuple[str, str, int], str] = {}

    def run(case: Case, way: str, seed: int = SEEDS[0]) -> str:
        key = (case.script, way, seed)
        if key not in done:
            workdir = tmp_path_factory.mktemp(f"{case.script}-{way}-{seed}")
            proc = subprocess.run(command(case, way, data_dir, seed, workdir), cwd=workdir,
                                  capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, (f"{case.script} ({way}, seed {seed}) exited with status "
                                          f"{proc.returncode}:\n{proc.stderr[-3000:]}")
            missing = [e for e in case.expect if e not in proc.stdout]
            assert not missing, f"{case.script} ({way}, seed {seed}): output lacks {missing}"
            done[key] = proc.stdout
        return done[key]

    return run


def test_numcnn_imports_rewrites_only_imports():
    source = ("import torch\nimport torch.nn as nn\nfrom torch.utils.data import DataLoader\nimport torchvision\n"
              "from torchvision import datasets\nimport torchvision.transforms as T\n    from torch import nn\n"
              "import numpy as np\nx = torch.ones(2)  # import torch\n")
    assert numcnn_imports(source) == (
        "import numcnn as torch\nimport numcnn.nn as nn\nfrom numcnn.utils.data import DataLoader\n"
        "import numcnn.vision as torchvision\nfrom numcnn.vision import datasets\n"
        "import numcnn.vision.transforms as T\n"
        "    from numcnn import nn\nimport numpy as np\nx = torch.ones(2)  # import torch\n")


def test_every_script_has_a_case_and_torch_figures():
    scripts = {p.stem for p in HERE.glob("*.py") if p.stem not in {"conftest", "test_scripts"}}
    assert scripts == {c.script for c in CASES} == set(TORCH)
    assert all(len(v) == len(SEEDS) and all(isinstance(a, float) for a in v) for v in TORCH.values())


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.script)
def test_script_trains_like_pytorch(case, runs):
    """``numcnn run``, seeds 1-3: the median accuracy lies in PyTorch's range over the same seeds, widened."""
    accuracies = sorted(accuracy_of(runs(case, "run", seed)) for seed in SEEDS)
    median = accuracies[len(accuracies) // 2]
    low, high = min(TORCH[case.script]) - WIDEN, max(TORCH[case.script]) + WIDEN
    assert low <= median <= high, (f"{case.script}: numcnn's median accuracy {median:.4f} (of {accuracies}) outside "
                                   f"PyTorch's {TORCH[case.script]} widened to [{low:.4f}, {high:.4f}]")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.script)
def test_imports_changed_to_numcnn_give_the_same_numbers(case, runs):
    """The imports-changed copy under plain python is the same numcnn code with the same seed as ``numcnn run``:
    it runs, prints what the script checks, and gives the same accuracy to the last digit."""
    assert accuracy_of(runs(case, "imports")) == accuracy_of(runs(case, "run"))


def test_cifar10_per_class_counts_add_up(runs):
    """The tutorial's per-class loop (zip over label / prediction tensors) counts what the overall loop counts."""
    output = runs(next(c for c in CASES if c.script == "cifar10_tutorial"), "run")
    total = int(re.search(r"per-class total: (\d+)", output)[1])
    assert total == round(accuracy_of(output) * 1000)  # the synthetic test batch holds 1000 images


def measure_torch(data_dir: Path) -> None:
    """Run every case with real torch (the torchvision stand-in first on the path), seeds 1-3; print TORCH."""
    import os
    import tempfile

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE / "torchvision_standin"),
                                                        os.environ.get("PYTHONPATH", "")])}
    print("TORCH = {")
    for case in CASES:
        figures = []
        for seed in SEEDS:
            with tempfile.TemporaryDirectory() as workdir:
                proc = subprocess.run(command(case, "torch", data_dir, seed, Path(workdir)), cwd=workdir, env=env,
                                      capture_output=True, text=True, check=True)
            figures.append(accuracy_of(proc.stdout))
        print(f'    "{case.script}": ({", ".join(f"{a:.4f}" for a in figures)}),', flush=True)
    print("}")


if __name__ == "__main__" and sys.argv[1:2] == ["--measure"]:
    sys.path.insert(0, str(HERE))
    from conftest import write_all

    with __import__("tempfile").TemporaryDirectory() as folder:
        measure_torch(write_all(Path(folder)))

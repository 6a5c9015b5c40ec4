"""``numcnn run script.py``: PyTorch's module names resolve to numcnn's inside the run only, the script runs as
``python script.py args`` would, and a PyTorch name numcnn lacks ends the run with one line naming it."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

import numcnn


def script(tmp_path, body: str):
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(body))
    return path


def test_torch_names_resolve_to_numcnn_modules_and_argv_is_the_scripts(cli, tmp_path):
    path = script(tmp_path, """
        import sys
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
        import torch.optim as optim
        from torch.optim.lr_scheduler import StepLR
        import torch.backends.cudnn as cudnn
        print(torch.__name__, nn.__name__, F.__name__, optim.__name__, StepLR.__module__, cudnn.__name__)
        print(__name__, sys.argv[1:], sys.path[0])
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model = nn.Linear(3, 2).to(device)
        out = model(torch.ones(4, 3, device=device))
        _, predicted = torch.max(out, 1)
        print(predicted.shape, out.device)
    """)
    r = cli("run", path, "--epochs", "2", "-v")
    assert r.rc == 0, r.err
    assert r.lines == [
        "numcnn numcnn.nn numcnn.nn.functional numcnn.optim numcnn.optim.lr_scheduler numcnn.backends.cudnn",
        f"__main__ ['--epochs', '2', '-v'] {tmp_path}", "numcnn.Size([4]) cpu"]


def test_the_real_torch_and_numcnn_are_untouched_after_a_run(cli, tmp_path):
    assert cli("run", script(tmp_path, "import torch, torch.nn\n")).rc == 0
    assert sys.modules["torch"] is torch and torch.nn.Linear is not numcnn.nn.Linear
    assert numcnn.__spec__.name == "numcnn" and numcnn.nn.__spec__.name == "numcnn.nn"


@pytest.mark.parametrize("body, name, line", [
    ("import torch\nx = torch.ones(2)\ntorch.frobnicate(x)\n", "torch.frobnicate", 3),
    ("import torch\nfrom torch import nonexistent\n", "torch.nonexistent", 2),
    ("import torch.distributions\n", "torch.distributions", 1),
    ("import torch\n\nx = torch.ones(2)\nx.frob()\n", "torch.Tensor.frob", 4),
    ("import torch.nn as nn\nnn.Transformerish(3)\n", "torch.nn.Transformerish", 2),
])
def test_a_missing_pytorch_name_is_one_line_naming_it_and_the_scripts_line(cli, tmp_path, body, name, line):
    r = cli("run", script(tmp_path, body))
    lines = r.err.strip().splitlines()
    assert r.rc == 1 and len(lines) == 1, r.err
    assert lines[0].startswith(f"numcnn run: train.py:{line}: {name} is not in numcnn (yet)") and "docs/pytorch.md" in \
        lines[0]


def test_the_scripts_own_errors_and_exit_codes(cli, tmp_path, capsys):
    r = cli("run", script(tmp_path, "import torch\nraise ValueError('mine')\n"))
    assert r.rc == 1 and r.err.splitlines()[-1] == "ValueError: mine" and "cli/run.py" not in r.err
    assert cli("run", script(tmp_path, "import sys\nsys.exit(3)\n")).rc == 3
    r = cli("run", tmp_path / "nope.py")
    assert r.rc == 2 and "nope.py: no such script" in r.err

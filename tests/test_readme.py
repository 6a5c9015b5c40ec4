"""The README's training loop runs as written and its loss falls."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_training_loop_loss_falls(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    loop = next(b for b in blocks if "loss.backward()" in b)
    monkeypatch.chdir(tmp_path)
    exec(compile(loop, "README.md", "exec"), {})
    losses = [float(line.split()[1]) for line in capsys.readouterr().out.splitlines()]
    assert len(losses) == 20
    assert losses[-1] < 0.5 * losses[0]
    assert np.isfinite(losses).all()
    import numcnn as nc

    saved = nc.load(tmp_path / "convnet.safetensors")
    assert saved["0.weight"].shape == (16, 1, 5, 5) and saved["0.weight"].dtype == np.float32

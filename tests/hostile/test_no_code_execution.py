"""No file can make numcnn run code: no pickle outside the allow-list unpicklers (``RESTRICTED_UNPICKLERS``, whose
refusals tests/hostile/test_pth_files.py and tests/data test), np.load only with allow_pickle=False, and
a pickle bomb handed to every loader is refused without running. Saves are atomic: a crash mid-save leaves the
previous file whole."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

import numcnn
import numcnn.onnx
from numcnn.data import read_idx

SRC = Path(numcnn.__file__).parent
#: The only modules that may use pickle: PyTorch checkpoints and CIFAR's Python files, each read by an Unpickler
#: whose find_class allows a short list of names and whose opcodes are scanned before anything is unpickled.
RESTRICTED_UNPICKLERS = {"pth/read.py", "data/safe_pickle.py"}
PICKLE_PATTERNS = (r"\bimport (c?pickle|marshal|shelve|dill|joblib)\b", r"\bpickle\.")


def _sources():
    return sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("pattern", [
    r"\bimport (c?pickle|marshal|shelve|dill|joblib)\b", r"\bpickle\.", r"torch\.load\(", r"\byaml\.(unsafe_)?load\(",
    r"(?<!def )(?<![.\w])(eval|exec)\((?!\))",  # the builtins (always with an argument), not Module.eval()
])
def test_no_deserializer_that_runs_code(pattern):
    sources = [p for p in _sources()
               if pattern not in PICKLE_PATTERNS or str(p.relative_to(SRC)) not in RESTRICTED_UNPICKLERS]
    hits = [f"{p.relative_to(SRC)}:{i}" for p in sources for i, line in enumerate(p.read_text().splitlines(), 1)
            if re.search(pattern, line) and not line.lstrip().startswith("#")]
    assert not hits, f"{pattern} found in {hits}"


def test_every_np_load_refuses_pickles():
    calls = [(p, line) for p in _sources() for line in p.read_text().splitlines() if re.search(r"np\.load\(", line)]
    assert calls, "expected the npz dataset reader to use np.load"
    for p, line in calls:
        assert "allow_pickle=False" in line, f"{p.relative_to(SRC)}: {line.strip()}"


class _Bomb:
    def __reduce__(self):
        return (Path.touch, (Path(os.environ["NUMCNN_BOMB"]),))


def test_pickle_files_are_refused_without_running(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    monkeypatch.setenv("NUMCNN_BOMB", str(marker))
    bomb = tmp_path / "weights.pt"
    bomb.write_bytes(pickle.dumps({"w": _Bomb()}))
    with pytest.raises(ValueError):
        numcnn.load(bomb)
    with pytest.raises(ValueError):
        numcnn.onnx.load(bomb)
    with pytest.raises(ValueError):
        read_idx(bomb)
    npz = tmp_path / "data.npz"
    np.savez(npz, images=np.array([_Bomb()], dtype=object))
    with np.load(npz, allow_pickle=False) as f, pytest.raises(ValueError, match="allow_pickle=False"):
        f["images"]
    assert not marker.exists()
    pickle.loads(bomb.read_bytes())  # the bomb is real: unpickling it does run
    assert marker.exists()


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    numcnn.save({"w": np.arange(3, dtype=np.float32)}, path)
    before = path.read_bytes()

    def crash(fd):
        raise OSError("power cut")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="power cut"):
        numcnn.save({"w": np.zeros(1000, np.float32)}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["w.safetensors"]
    np.testing.assert_array_equal(numcnn.load(path)["w"].numpy(), [0, 1, 2])


def test_every_file_write_goes_through_the_one_atomic_helper():
    writers = [f"{p.relative_to(SRC)}" for p in _sources()
               if re.search(r"os\.fdopen\(|open\([^)]*['\"][wax]b?\+?['\"]|\.write_(bytes|text)\(", p.read_text())]
    assert writers == ["_io.py"]

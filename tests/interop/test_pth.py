"""PyTorch's own checkpoint files both ways, with PyTorch 2.13 as the oracle: every zoo model's state_dict written by
``torch.save`` loads into numcnn bit for bit (and gives the twin's logits), numcnn's ``.pth`` files load into
``torch.load`` (weights_only=True, its default) and the twin; every dtype both NumPy and torch hold; views, shared
storages, 0-d and empty tensors; the checkpoint dicts the tutorials save; ``torch.load``'s keywords."""

from __future__ import annotations

import io
import mmap
import os
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import numcnn
import numcnn.models

torch = pytest.importorskip("torch")

ZOO = [(name, {}) for name in numcnn.models.names()] + [
    ("lenet5", {"batchnorm": True, "dropout": 0.3}),
    ("resnet", {"blocks_per_stage": 1, "bottleneck": True}),
]
ZOO_IDS = [f"{n}-{'-'.join(o) or 'default'}" for n, o in ZOO]
DTYPES = [torch.float32, torch.float64, torch.float16, torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8,
          torch.bool, torch.complex64, torch.complex128, torch.uint16, torch.uint32, torch.uint64]


def _logits(model, twin, seed: int):
    x = np.random.default_rng(seed).standard_normal((3, 1, 28, 28)).astype(np.float32)
    with numcnn.no_grad(), torch.no_grad():
        got, want = model(numcnn.tensor(x)).numpy(), twin(torch.from_numpy(x)).numpy()
    assert got.dtype == want.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * max(1.0, float(np.abs(want).max())))


def _same(got, want, where: str = "the object") -> None:
    """``got`` (numcnn.load's) equals ``want`` (torch's): tensors in dtype, shape and every bit, the rest by value."""
    if isinstance(want, torch.Tensor):
        assert isinstance(got, numcnn.Tensor), f"{where}: {type(got).__name__}"
        w = want.detach().resolve_neg().resolve_conj().numpy()
        assert got.dtype == w.dtype and got.shape == w.shape, f"{where}: {got.dtype}{got.shape} != {w.dtype}{w.shape}"
        assert got.numpy().tobytes() == w.tobytes(), where
        assert got.requires_grad == want.requires_grad, where
    elif isinstance(want, dict):
        assert type(got) is type(want) and list(got) == list(want), where
        for k in want:
            _same(got[k], want[k], f"{where}[{k!r}]")
    elif isinstance(want, (list, tuple)):
        kind = tuple if isinstance(want, tuple) else list  # torch.Size: a tuple
        assert isinstance(got, kind) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            _same(g, w, f"{where}[{i}]")
    elif isinstance(want, torch.dtype):
        assert got == torch.empty(0, dtype=want).numpy().dtype, where
    else:
        assert type(got) is type(want) and got == want, f"{where}: {got!r} != {want!r}"


def _torch_save(obj, path):
    torch.save(obj, path)
    return path


# ------------------------------------------------------------------------------------------------ the zoo


@pytest.mark.parametrize("case", range(len(ZOO)), ids=ZOO_IDS)
def test_torch_saved_state_dict_loads_into_numcnn(case, tmp_path, twins):
    name, options = ZOO[case]
    model = twins.zoo_model(name, options, seed=1)
    twin = twins.torch_twin(model).eval()
    g = torch.Generator().manual_seed(case)
    with torch.no_grad():
        for key, t in twin.state_dict().items():
            if key.endswith("num_batches_tracked"):
                t.fill_(11)
            else:
                t.copy_(0.5 + torch.rand(t.shape, generator=g) if key.endswith("running_var")
                        else 0.3 * torch.randn(t.shape, generator=g))
    path = _torch_save(twin.state_dict(), tmp_path / "model.pth")
    loaded = numcnn.load(path)
    _same(loaded, torch.load(path))
    result = model.load_state_dict(loaded)  # strict: every key, unchanged
    assert not result.missing_keys and not result.unexpected_keys
    for key, t in twin.state_dict().items():
        assert model.state_dict()[key].numpy().tobytes() == t.numpy().tobytes(), key
    _logits(model, twin, case)


@pytest.mark.parametrize("case", range(len(ZOO)), ids=ZOO_IDS)
def test_numcnn_pth_loads_into_torch(case, tmp_path, twins):
    name, options = ZOO[case]
    model = twins.zoo_model(name, options)
    path = tmp_path / "model.pth"
    numcnn.save(model.state_dict(), path)
    for state in (torch.load(path), torch.load(path, weights_only=True, mmap=True)):
        twin = twins.torch_twin(model).eval()
        result = twin.load_state_dict(state)  # strict
        assert not result.missing_keys and not result.unexpected_keys
        for key, t in model.state_dict().items():
            assert state[key].dtype == torch.from_numpy(t.numpy()).dtype
            assert state[key].numpy().tobytes() == t.numpy().tobytes(), key
        _logits(model, twin, case)


# ------------------------------------------------------------------------------------------------ tensors


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_dtypes_both_ways(dtype, tmp_path):
    values = torch.tensor([[0, 1, 2], [3, 250, 7]]).to(dtype)
    if dtype.is_floating_point or dtype.is_complex:
        values = values * 1.5 - 0.25
    path = _torch_save({"x": values, "scalar": values[1, 1].clone()}, tmp_path / "t.pth")
    got = numcnn.load(path)
    _same(got, {"x": values, "scalar": values[1, 1].clone()})
    numcnn.save(got, tmp_path / "n.pth")
    back = torch.load(tmp_path / "n.pth")
    assert back["x"].dtype == dtype and torch.equal(back["x"], values) and torch.equal(back["scalar"], values[1, 1])


def test_views_shared_storages_and_odd_shapes(tmp_path):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    obj = {"base": base, "t": base.t(), "slice": base[1:3, 2::2], "row": base[2],
           "expanded": torch.ones(3).expand(4, 3), "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 5),
           "neg": torch.tensor([1 + 2j]).conj().imag,
           "param": torch.nn.Parameter(torch.full((2,), 3.0)), "same": base}
    path = _torch_save(obj, tmp_path / "views.pth")
    got = numcnn.load(path)
    _same(got, torch.load(path))
    assert got["t"].numpy().strides == (4, 24) and got["expanded"].numpy().strides == (0, 4)
    assert np.shares_memory(got["t"].numpy(), got["base"].numpy())  # one storage in the file: one buffer
    assert np.shares_memory(got["slice"].numpy(), got["base"].numpy())
    assert got["same"] is got["base"]  # one object in the pickle: one Tensor, as torch.load gives
    numcnn.save(got, tmp_path / "back.pth")
    back = torch.load(tmp_path / "back.pth")
    for k, v in obj.items():
        assert torch.equal(back[k], v.detach().resolve_neg()), k
    assert back["param"].requires_grad and not back["base"].requires_grad


def test_storages_saved_big_endian_are_read_in_order(tmp_path):
    """A file from a big-endian machine (its byteorder record says 'big'): forged by swapping every storage's bytes;
    torch.load reads it too, and is the oracle."""
    obj = {"w": torch.linspace(-1, 1, 7, dtype=torch.float64), "i": torch.arange(5, dtype=torch.int32),
           "h": torch.tensor([1.5, -2.0], dtype=torch.float16), "b": torch.tensor([True, False])}
    little = _torch_save(obj, tmp_path / "little.pth")
    big = tmp_path / "big.pth"
    with zipfile.ZipFile(little) as src, zipfile.ZipFile(big, "w") as dst:
        kinds = {"0": "<f8", "1": "<i4", "2": "<f2", "3": "?"}
        for info in src.infolist():
            data = src.read(info)
            key = info.filename.rsplit("/", 1)[-1]
            if "/data/" in info.filename:
                data = np.frombuffer(data, kinds[key]).byteswap().tobytes()
            dst.writestr(info.filename, b"big" if info.filename.endswith("/byteorder") else data)
    want = torch.load(big)
    assert torch.equal(want["w"], obj["w"])  # the forgery is what torch calls big-endian
    _same(numcnn.load(big), want)


# ------------------------------------------------------------------------------------------------ checkpoints


def _train_torch_step(net, opt):
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    loss = torch.nn.functional.cross_entropy(net(x), torch.tensor([1, 2, 3, 4]))
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_tutorial_checkpoint_dict_from_torch(optimizer, tmp_path, twins):
    """The "saving and loading a general checkpoint" recipe: epoch, model and optimizer state_dicts, loss."""
    model = twins.zoo_model("convnet", {})
    net = twins.torch_twin(model).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9) if optimizer == "SGD" else \
        torch.optim.Adam(net.parameters(), lr=1e-3)
    loss = _train_torch_step(net, opt)
    checkpoint = {"epoch": 5, "model_state_dict": net.state_dict(), "optimizer_state_dict": opt.state_dict(),
                  "loss": loss.item(), "note": "run 1", "history": [0.5, 0.25], "shape": torch.Size([1, 28, 28])}
    path = _torch_save(checkpoint, tmp_path / "checkpoint.tar")
    got = numcnn.load(path)
    _same(got, torch.load(path))
    model.load_state_dict(got["model_state_dict"])
    _logits(model.eval(), net.eval(), 3)
    assert got["optimizer_state_dict"]["param_groups"][0]["lr"] == opt.param_groups[0]["lr"]


def test_numcnn_checkpoint_dict_loads_in_torch(tmp_path, twins):
    model = twins.zoo_model("lenet5", {})
    opt = numcnn.optim.Adam(model.parameters(), lr=1e-3)
    x = numcnn.tensor(np.random.default_rng(0).standard_normal((4, 1, 28, 28)).astype(np.float32))
    loss = numcnn.nn.functional.cross_entropy(model(x), numcnn.tensor(np.array([1, 2, 3, 4])))
    loss.backward()
    opt.step()
    checkpoint = {"epoch": 2, "model_state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict(),
                  "loss": loss.item(), "accuracy": np.float64(0.75), "tags": ("a", b"raw", None, True),
                  "dt": np.float32}
    path = tmp_path / "checkpoint.pt"
    numcnn.save(checkpoint, path)
    got = torch.load(path)  # weights_only=True
    assert got["epoch"] == 2 and got["loss"] == loss.item()
    assert got["accuracy"] == 0.75 and type(got["accuracy"]) is float
    assert got["tags"] == ("a", b"raw", None, True) and got["dt"] is torch.float32
    sd = opt.state_dict()
    assert got["optimizer_state_dict"]["param_groups"] == sd["param_groups"]
    for i, state in sd["state"].items():
        for k, v in state.items():
            saved = got["optimizer_state_dict"]["state"][i][k]
            assert (saved.numpy().tobytes() == v.tobytes()) if isinstance(v, np.ndarray) else saved == v, (i, k)
    twin = twins.torch_twin(model).eval()
    twin.load_state_dict(got["model_state_dict"])
    _logits(model.eval(), twin, 0)
    _same(numcnn.load(path)["model_state_dict"], got["model_state_dict"])  # and back


# ------------------------------------------------------------------------------------------------ keywords


def _gpu_file(tmp_path):
    """A file as saved from tensors on 'cuda:0' (its storages' location says so; the bytes are the same)."""
    path = _torch_save({"w": torch.arange(6.0).reshape(2, 3)}, tmp_path / "cpu.pth")
    gpu = tmp_path / "gpu.pth"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(gpu, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data.pkl"):
                assert data.count(b"X\x03\x00\x00\x00cpu") == 1
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            dst.writestr(info.filename, data)
    return gpu


@pytest.mark.parametrize("where", ["cpu", "cpu:0", torch.device("cpu"), {"cuda:0": "cpu"}, None,
                                   lambda storage, location: storage], ids=repr)
def test_map_location_to_the_cpu(where, tmp_path):
    path = _gpu_file(tmp_path)
    want = torch.load(path, map_location="cpu")
    assert torch.equal(want["w"], torch.arange(6.0).reshape(2, 3))
    _same(numcnn.load(path, map_location=where), want)
    _same(numcnn.load(path, where, weights_only=True), want)


@pytest.mark.parametrize("where", ["cuda", "cuda:1", "mps", torch.device("cuda"), {"cpu": "cuda:0"}], ids=repr)
def test_map_location_naming_a_gpu_is_refused(where, tmp_path):
    path = _torch_save({"w": torch.ones(2)}, tmp_path / "w.pth")
    with pytest.raises(ValueError, match="numcnn runs on the CPU only"):
        numcnn.load(path, map_location=where)


def test_map_location_function_that_moves_storages_is_refused(tmp_path):
    path = _torch_save({"w": torch.ones(2)}, tmp_path / "w.pth")
    with pytest.raises(ValueError, match=r"w.pth: map_location\(storage, location\) must return the storage"):
        numcnn.load(path, map_location=lambda storage, location: None)


def test_weights_only_false_is_refused(tmp_path):
    path = _torch_save({"w": torch.ones(2)}, tmp_path / "w.pth")
    with pytest.raises(ValueError, match="numcnn never runs pickled code"):
        numcnn.load(path, weights_only=False)
    with pytest.raises(TypeError, match="weights_only must be True, False or None"):
        numcnn.load(path, weights_only="yes")
    np.testing.assert_array_equal(numcnn.load(path, weights_only=True)["w"].numpy(), [1, 1])


def _mapped(arr) -> bool:
    """Whether ``arr``'s memory comes from a memory-mapped file (follows the chain of bases)."""
    while arr is not None:
        if isinstance(arr, (np.memmap, mmap.mmap)):
            return True
        arr = getattr(arr, "base", None)
    return False


def test_mmap_maps_storages_copy_on_write(tmp_path):
    obj = {"w": torch.arange(12.0).reshape(3, 4), "b": torch.arange(3)}
    path = _torch_save(obj, tmp_path / "w.pth")
    before = path.read_bytes()
    got = numcnn.load(path, mmap=True)
    _same(got, obj)
    assert _mapped(got["w"].numpy()) and not _mapped(numcnn.load(path)["w"].numpy())
    got["w"].numpy()[0, 0] = 99.0  # copy-on-write: the file is untouched
    assert path.read_bytes() == before
    mine = tmp_path / "mine.pth"
    numcnn.save(numcnn.load(path), mine)
    _same(numcnn.load(mine, mmap=True), obj)


def test_a_pth_file_loads_whatever_its_name(tmp_path):
    path = _torch_save({"w": torch.ones(2)}, tmp_path / "pytorch_model.bin")
    _same(numcnn.load(path), {"w": torch.ones(2)})


def test_suffix_picks_the_format_when_saving(tmp_path):
    state = {"w": np.arange(3, dtype=np.float32)}
    for name in ("a.pt", "b.PTH", "c.tar"):
        numcnn.save(state, tmp_path / name)
        assert zipfile.is_zipfile(tmp_path / name) and torch.equal(torch.load(tmp_path / name)["w"], torch.arange(3.0))
    numcnn.save(state, tmp_path / "d.safetensors")
    assert not zipfile.is_zipfile(tmp_path / "d.safetensors")
    with pytest.raises(TypeError, match="metadata is a safetensors header"):
        numcnn.save(state, tmp_path / "e.pth", metadata={"epoch": "1"})
    with pytest.raises(TypeError, match="save nested checkpoints to a .pt or .pth file"):
        numcnn.save({"model": state}, tmp_path / "f.safetensors")


def test_what_a_pth_file_cannot_hold_is_named(tmp_path):
    with pytest.raises(TypeError, match=r"save\(\): the object\['opt'\]\['fn'\] is a function"):
        numcnn.save({"opt": {"fn": lambda: 0}}, tmp_path / "a.pth")
    with pytest.raises(TypeError, match=r"has dtype <U1, which torch tensors cannot hold"):
        numcnn.save({"names": np.array(["a"])}, tmp_path / "a.pth")
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match="nested deeper than 64 levels or contains itself"):
        numcnn.save({"loop": loop}, tmp_path / "a.pth")
    assert not os.path.exists(tmp_path / "a.pth")


def test_check_finite_names_nested_tensors(tmp_path):
    w = torch.ones(3)
    w[1] = float("nan")
    path = _torch_save({"model": OrderedDict(fc=w, ok=torch.ones(1)), "epoch": 1}, tmp_path / "nan.pth")
    assert np.isnan(numcnn.load(path)["model"]["fc"].numpy()[1])
    with pytest.raises(ValueError, match=r"nan.pth: tensor\(s\) model.fc hold NaN or Inf"):
        numcnn.load(path, check_finite=True)


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "w.pth"
    numcnn.save({"w": np.arange(3, dtype=np.float32)}, path)
    before = path.read_bytes()

    def crash(fd):
        raise OSError("power cut")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="power cut"):
        numcnn.save({"w": np.zeros(1000, np.float32)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["w.pth"]
    assert torch.equal(torch.load(io.BytesIO(before))["w"], torch.arange(3.0))


def _adam_run(reload_at: int | None, path):
    numcnn.manual_seed(0)
    model = numcnn.models.get("convnet")
    opt = numcnn.optim.Adam(model.parameters(), lr=1e-2)
    x = numcnn.tensor(np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32))
    y = numcnn.tensor(np.array([1, 2]))
    for step in range(3):
        opt.zero_grad()
        numcnn.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if step == reload_at:
            numcnn.save({"optimizer_state_dict": opt.state_dict()}, path)
            opt = numcnn.optim.Adam(model.parameters(), lr=1e-2)
            opt.load_state_dict(numcnn.load(path)["optimizer_state_dict"])
    return [p.numpy().copy() for p in model.parameters()]


def test_optimizer_resumes_exactly_from_a_pth_checkpoint(tmp_path):
    for want, got in zip(_adam_run(None, None), _adam_run(0, tmp_path / "opt.pth")):
        np.testing.assert_array_equal(got, want)

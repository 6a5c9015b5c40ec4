"""Forged PyTorch checkpoint files: numcnn.load refuses each with one ValueError line naming the file (and, for a
pickle asking for code, naming the global), never runs the code a pickle asks for, and never allocates more than
the file could back. Every forgery starts from a file that both torch.load and numcnn.load read equal, so each
refusal is caused by the one field the test forges."""

from __future__ import annotations

import io
import os
import pickle
import struct
import time
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numcnn

torch = pytest.importorskip("torch")


class Storage:
    """A persistent id, pickled as torch.save does: ('storage', torch.FloatStorage, key, location, numel)."""

    def __init__(self, key: str = "0", numel: int = 6, kind=None, location: str = "cpu"):
        self.pid = ("storage", kind or torch.FloatStorage, key, location, numel)


class View:
    """A tensor, pickled as torch.save does: torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)."""

    def __init__(self, storage=None, offset=0, size=(2, 3), stride=(3, 1), requires_grad=False, hooks=None):
        hooks = OrderedDict() if hooks is None else hooks
        self.args = (storage or Storage(), offset, size, stride, requires_grad, hooks)

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, self.args


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, Storage) else None


def forge(path: Path, obj, records=None, *, pkl: bytes | None = None, method=zipfile.ZIP_STORED, protocol=2) -> Path:
    """A zip laid out as torch.save writes it: archive/data.pkl (the pickle of ``obj``), byteorder, data/<key>."""
    if pkl is None:
        buf = io.BytesIO()
        _Pickler(buf, protocol=protocol).dump(obj)
        pkl = buf.getvalue()
    records = {"0": np.arange(6, dtype="<f4").tobytes()} if records is None else records
    with zipfile.ZipFile(path, "w", method) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", "little")
        for key, data in records.items():
            z.writestr(f"archive/data/{key}", data)
        z.writestr("archive/version", "3\n")
    return path


def refused(path: Path, match: str) -> str:
    with pytest.raises(ValueError, match=match) as e:
        numcnn.load(path)
    message = str(e.value)
    assert str(path) in message and "\n" not in message
    return message


def test_the_forger_writes_what_torch_reads(tmp_path):
    path = forge(tmp_path / "ok.pth", {"w": View(), "t": View(size=(3, 2), stride=(1, 3)), "epoch": 1})
    want = torch.load(path)
    got = numcnn.load(path)
    assert torch.equal(want["w"], torch.arange(6.0).reshape(2, 3)) and want["epoch"] == got["epoch"] == 1
    for k in ("w", "t"):
        np.testing.assert_array_equal(got[k].numpy(), want[k].numpy())


# ------------------------------------------------------------------------------------------------ code


class _System:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _Touch:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return Path.touch, (self.path,)


@pytest.mark.filterwarnings("ignore:TypedStorage is deprecated", "ignore:Detected pickle protocol 4")
@pytest.mark.parametrize("protocol", [2, 4])
def test_reduce_payload_is_refused_without_running(protocol, tmp_path):
    marker = tmp_path / "ran"
    payload = {"model_state_dict": {"w": View()}, "x": _System(f"touch {marker}")}
    buf = io.BytesIO()
    _Pickler(buf, protocol=protocol).dump(payload)
    path = forge(tmp_path / "bomb.pth", None, pkl=buf.getvalue())
    message = refused(path, r"refusing to load: the pickle asks for posix.system, which is not a tensor")
    assert "never code" in message
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)  # torch's weights_only unpickler refuses it too
    assert not marker.exists()
    unpickler = pickle.Unpickler(io.BytesIO(buf.getvalue()))
    unpickler.persistent_load = lambda pid: torch.storage.TypedStorage(6, dtype=torch.float32)
    unpickler.load()  # the payload is real: unpickling it runs the command
    assert marker.exists()


@pytest.mark.parametrize("obj, name", [
    (_Touch(Path("/nonexistent/x")), "builtins.getattr"),  # (Path.touch is pickled as getattr(Path, 'touch'))
    (np.float64(1.0), "numpy"),  # torch's weights_only refuses NumPy values too
    (torch.nn.Linear(2, 2), "torch.nn.modules.linear.Linear"),  # torch.save(model): a whole module, i.e. code
    (argparse_ns := __import__("argparse").Namespace(lr=0.1), "argparse.Namespace"),
    (eval, "builtins.eval"),
    (getattr, "builtins.getattr"),
])
def test_globals_outside_the_allow_list_are_refused(obj, name, tmp_path):
    path = tmp_path / "g.pth"
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump({"w": View(), "extra": obj})
    forge(path, None, pkl=buf.getvalue())
    refused(path, rf"refusing to load: the pickle asks for {name}")


def _ops(*parts: bytes) -> bytes:
    return b"\x80\x02" + b"".join(parts) + b"."


@pytest.mark.parametrize("pkl, match", [
    (_ops(b"(X\x02\x00\x00\x00idios\nsystem\n"), "opcode INST"),  # INST: a class called without find_class's say
    (_ops(b"ccollections\nOrderedDict\n)\x81"), "opcode NEWOBJ"),
    (_ops(b"\x82\x01"), "opcode EXT1"),
    (_ops(b"]r\x00\x00\x00\x40"), "memo slot 1073741824"),  # the C unpickler would allocate a 16 GiB memo
    (_ops(b"ctorch\nFloatStorage\n}b"), "sets the state of a StorageType"),
    (_ops(b"ctorch\nFloatStorage\n"), "holds a _StorageType outside a tensor"),
    (_ops(b"ctorch\nFloatStorage\n)R"), "not a valid pickle of weights"),  # a storage type is not callable
    (_ops(b"}(X\x01\x00\x00\x00a", b"ccollections\nOrderedDict\n)R", b"u", b"}b"), "not a valid pickle of weights"),
    (_ops(b"ccollections\nOrderedDict\nX\x01\x00\x00\x00a\x85R"), r"collections.OrderedDict is called with \('str',\)"),
    (_ops(b"c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R"), "_codecs.encode is called with"),
    (_ops(b"]" * 200 + b"a" * 199), "nested deeper than 64 levels"),
    (_ops(b"]q\x00h\x00a"), "contains itself"),
    (_ops(b"\x8a\x04\x00\x00\x00"), "not a valid pickle"),  # truncated
    (b"", "not a valid pickle"),
])
def test_malformed_pickles_are_refused(pkl, match, tmp_path, peak_below):
    path = forge(tmp_path / "p.pth", None, pkl=pkl)
    with peak_below(1 << 20):
        refused(path, match)


# ------------------------------------------------------------------------------------------------ sizes


@pytest.mark.parametrize("view, match", [
    (View(Storage(numel=2**60)), r"declared as 1152921504606846976 elements of FloatStorage \(4611686018427387904 "
                                 r"bytes\), but its record holds 24 bytes"),
    (View(Storage(numel=7)), "declared as 7 elements"),
    (View(Storage(key="9")), "refers to the record 'data/9', which the archive does not hold"),
    (View(Storage(kind=torch.DoubleStorage)), "declared as 6 elements of DoubleStorage"),
    (View(size=(2**40, 2**40), stride=(0, 0)), "more than any file holds"),
    (View(size=(2**40,), stride=(0,)), r"repeats the 6 elements of storage '0' 1099511627776 times over"),
    (View(size=(2, 4)), r"reads element 6 of storage '0', which holds 6"),
    (View(offset=1), r"offset 1 reads element 6"),
    (View(size=(3, 3), stride=(2, 1)), "reads element 6"),
    (View(size=(2, 3), stride=(3, 2**62)), "reads element"),
    (View(size=(-1, 3)), "non-negative ints"),
    (View(stride=(3, -1)), "non-negative ints"),
    (View(offset=-1), "geometry is inconsistent"),
    (View(stride=(1,)), "geometry is inconsistent"),
    (View(size=(1,) * 65, stride=(1,) * 65), "at most 64 non-negative ints"),
    (View(size=[2, 3]), "must be a tuple"),
    (View(requires_grad=1), "requires_grad that is not a bool"),
    (View(hooks=OrderedDict(a=1)), "backward hooks"),
    (View(Storage(kind=torch.BFloat16Storage, numel=12)), "dtype NumPy cannot hold"),
    (View(Storage(kind=torch.LongStorage, numel=3), requires_grad=True, size=(3,), stride=(1,)),
     "only floating point tensors can"),
])
def test_forged_sizes_are_refused_before_any_allocation(view, match, tmp_path, peak_below):
    path = forge(tmp_path / "s.pth", {"w": view})
    start = time.perf_counter()
    with peak_below(1 << 20):
        refused(path, match)
    assert time.perf_counter() - start < 1.0


def test_views_repeating_elements_load_as_torch_gives_them(tmp_path):
    """Stride 0 (what expand() saves): a view larger than its storage is fine up to 1 GiB, as the same view."""
    path = forge(tmp_path / "e.pth", {"w": View(size=(1000, 3), stride=(0, 1), offset=3)})
    got, want = numcnn.load(path)["w"].numpy(), torch.load(path)["w"]
    assert got.strides == (0, 4) and want.stride() == (0, 1) and got[999, 2] == 5
    np.testing.assert_array_equal(got, want.numpy())


def test_deeply_nested_tuple_key_is_refused(tmp_path):
    key = ()
    for _ in range(200):
        key = (key,)
    buf = io.BytesIO()
    pickle.Pickler(buf, protocol=2).dump({key: 1})
    refused(forge(tmp_path / "k.pth", None, pkl=buf.getvalue()), "a dict has a key of type tuple")


def test_storage_record_larger_than_the_file(tmp_path, peak_below):
    """The zip's central directory declares 4 GiB for a stored record of 24 bytes: refused from the directory."""
    path = forge(tmp_path / "big.pth", {"w": View(Storage(numel=2**30 - 1))})
    raw = bytearray(path.read_bytes())
    at = raw.find(b"PK\x01\x02", raw.find(b"PK\x01\x02", raw.find(b"PK\x01\x02") + 4) + 4)  # third entry: data/0
    assert raw[at + 46 : at + 60] == b"archive/data/0"
    raw[at + 20 : at + 28] = struct.pack("<II", 2**32 - 4, 2**32 - 4)  # compressed and uncompressed sizes
    path.write_bytes(bytes(raw))
    with peak_below(1 << 20):
        refused(path, r"record 'data/0' declares 4294967292 bytes at offset \d+, but the file has \d+ bytes")


def test_zip_bomb_is_refused_unread(tmp_path, peak_below):
    """A deflated storage record (16 MiB of zeros in 16 KiB) that the pickle asks for whole: torch.save never
    compresses, so it is refused from the directory, nothing read or inflated."""
    bomb = tmp_path / "bomb.pth"
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump({"w": View(Storage(numel=2**22), size=(2**22,), stride=(1,))})
    with zipfile.ZipFile(bomb, "w") as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/data/0", bytes(2**24), zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 2**16
    with peak_below(1 << 20):
        refused(bomb, r"record 'data/0' is compressed or encrypted \(method 8\)")
    refused(forge(tmp_path / "deflated.pth", {"w": View()}, method=zipfile.ZIP_DEFLATED), "is compressed or encrypted")


# ------------------------------------------------------------------------------------------------ files


def _valid(tmp_path) -> Path:
    path = tmp_path / "valid.pth"
    torch.save({"w": torch.arange(12.0).reshape(3, 4), "b": torch.ones(3, dtype=torch.int64), "epoch": 2}, path)
    return path


def test_truncated_files_are_refused(tmp_path, peak_below):
    raw = _valid(tmp_path).read_bytes()
    path = tmp_path / "cut.pth"
    for cut in range(0, len(raw), 7):
        path.write_bytes(raw[:cut])
        with peak_below(1 << 20):
            refused(path, "cut.pth")


def test_not_a_zip_nor_a_checkpoint(tmp_path):
    path = tmp_path / "w.pth"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    refused(path, "not a PyTorch checkpoint: not a zip archive as torch.save writes")
    path.write_bytes(pickle.dumps({"w": np.zeros(3)}))
    refused(path, "not a zip archive")


def test_legacy_format_is_named(tmp_path):
    path = tmp_path / "old.pth"
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    assert torch.equal(torch.load(path)["w"], torch.ones(2))
    refused(path, r"torch.save's legacy format \(PyTorch < 1.6\), which numcnn does not read; re-save it")


def test_corrupt_storage_bytes_are_refused(tmp_path):
    path = _valid(tmp_path)
    raw = bytearray(path.read_bytes())
    start = raw.find(np.arange(12.0, dtype="<f4").tobytes())
    raw[start + 5] ^= 0xFF
    path.write_bytes(bytes(raw))
    refused(path, r"record 'data/0' is truncated or corrupt \(its CRC does not match\)")


def test_a_tensor_as_a_dict_key_is_refused(tmp_path):
    refused(forge(tmp_path / "k.pth", {View(): 1}), "a dict has a key of type _View")


@pytest.mark.parametrize("protocol", [2, 4])  # set(list) calls, or the EMPTY_SET and ADDITEMS opcodes
def test_a_tensor_in_a_set_is_refused(protocol, tmp_path):
    refused(forge(tmp_path / "s.pth", {"s": {View(), 1}}, protocol=protocol), "a set holds something other than")


def test_a_tensor_in_a_state_dicts_attributes_becomes_a_tensor(tmp_path):
    """BUILD sets attributes of an OrderedDict (torch sets ``_metadata``): what they hold is rebuilt too."""
    state = OrderedDict(w=View())
    state._metadata = OrderedDict(extra=View(size=(3,), stride=(2,)))
    got = numcnn.load(forge(tmp_path / "m.pth", state))
    np.testing.assert_array_equal(got._metadata["extra"].numpy(), [0, 2, 4])
    assert torch.equal(torch.load(tmp_path / "m.pth")._metadata["extra"], torch.tensor([0.0, 2.0, 4.0]))


def test_one_storage_declared_with_two_types(tmp_path):
    obj = {"a": View(), "b": View(Storage(numel=3, kind=torch.DoubleStorage), size=(3,), stride=(1,))}
    refused(forge(tmp_path / "d.pth", obj), "storage '0' is declared twice with different types or sizes")


def test_two_archives_in_one_zip(tmp_path):
    path = forge(tmp_path / "two.pth", {"w": View()})
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("other/data.pkl", b"\x80\x02N.")
    refused(path, "expected one <archive>/data.pkl record as torch.save writes, found 2")


@settings(max_examples=150, deadline=None)
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4))
def test_bit_flips_give_the_values_or_a_refusal(flips, scratch, peak_below):
    """Any damage to a valid file: numcnn.load refuses it (ValueError naming it) or returns the values the file held
    (damage to what it does not read, e.g. the version record), never other values or another error, and never
    allocates beyond the file. (torch.load may return damaged values: it does not check CRCs.)"""
    path = scratch / "valid.pth"
    if not path.exists():
        torch.save({"w": torch.arange(12.0).reshape(3, 4).t(), "n": torch.tensor([3, 4]), "e": 2}, path)
    raw = bytearray(path.read_bytes())
    for at, mask in flips:
        raw[at % len(raw)] ^= mask
    bad = scratch / "flipped.pth"
    bad.write_bytes(bytes(raw))
    try:
        with peak_below(1 << 20):
            got = numcnn.load(bad)
    except ValueError as e:
        assert str(bad) in str(e)
        return
    want = torch.load(path)
    assert set(got) == set(want) and got["e"] == want["e"]
    for k in ("w", "n"):
        assert got[k].dtype == want[k].numpy().dtype
        np.testing.assert_array_equal(got[k].numpy(), want[k].numpy())

"""Devices as PyTorch names them, for a library that computes on the CPU only.

``numcnn.device("cpu")``, ``numcnn.device("cuda:0")`` and ``numcnn.device("cuda", 0)`` are made as in PyTorch, so
device-generic scripts (``device = torch.device("cuda" if torch.cuda.is_available() else "cpu")``) run as
written: ``numcnn.cuda.is_available()`` is False, they pick the CPU, and ``.to(device)`` is then a no-op. Asking for
an accelerator (``.cuda()``, ``.to("cuda")``, ``.to("mps")``) is a clear error, never a silent fallback: a script
that insists on a GPU should learn it has none.
"""

from __future__ import annotations

import re

#: Device types PyTorch knows (its error message lists them); only "cpu" holds numcnn tensors.
KNOWN_TYPES = ("cpu", "cuda", "mps", "xpu", "ipu", "hip", "meta", "xla", "lazy", "vulkan", "mtia", "hpu", "maia",
               "fpga", "ve", "opengl", "opencl", "ideep", "mkldnn", "privateuseone")
_SPEC = re.compile(r"([a-z_]+)(?::(\d+))?")


class device:  # noqa: N801 - torch.device
    """A device name: ``type`` ("cpu", "cuda", ...) and ``index`` (None or an int), immutable and hashable."""

    __slots__ = ("type", "index")

    def __init__(self, type, index: int | None = None):  # noqa: A002 - torch's parameter name
        if isinstance(type, device):
            type, index = type.type, type.index if index is None else index
        elif isinstance(type, int) and not isinstance(type, bool):  # torch.device(0): the current accelerator
            type, index = "cuda", type
        if not isinstance(type, str):
            raise TypeError(f"device(): expected a string like 'cpu' or 'cuda:0', got {type!r}")
        m = _SPEC.fullmatch(type.strip())
        if m is None or m.group(1) not in KNOWN_TYPES:
            raise RuntimeError(f"Expected one of {', '.join(KNOWN_TYPES)} device type at start of device string: "
                               f"{type}")
        if m.group(2) is not None:
            if index is not None:
                raise RuntimeError(f"device(): the index is given twice ({type!r} and {index})")
            index = int(m.group(2))
        if index is not None and (not isinstance(index, int) or isinstance(index, bool) or index < 0):
            raise RuntimeError(f"Device index must not be negative, got {index!r}")
        object.__setattr__(self, "type", m.group(1))
        object.__setattr__(self, "index", index)

    def __setattr__(self, name, value):
        raise AttributeError("device is immutable")

    def __eq__(self, other) -> bool:
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type={self.type!r}{index})"

    def __reduce__(self):
        return device, (self.type, self.index)


CPU = device("cpu")


def is_device_spec(x) -> bool:
    """Whether ``x`` names a device (a device, or a string like "cpu" / "cuda:0"), not a dtype."""
    if isinstance(x, device):
        return True
    m = _SPEC.fullmatch(x.strip()) if isinstance(x, str) else None
    return m is not None and m.group(1) in KNOWN_TYPES


def check_cpu(x, what: str = "tensor") -> device:
    """``x`` as a device; RuntimeError when it is not the CPU (numcnn has no other)."""
    d = device(x)
    if d.type != "cpu":
        raise RuntimeError(f"cannot move a {what} to {d}: numcnn computes on the CPU only (numcnn.cuda.is_available() "
                           "is False); use 'cpu', or device-generic code that picks the CPU when no GPU is available")
    return d

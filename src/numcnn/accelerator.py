"""``numcnn.accelerator``: PyTorch's device-agnostic accelerator API, on a library with no accelerator."""

from __future__ import annotations


def is_available() -> bool:
    return False


def device_count() -> int:
    return 0


def current_accelerator(check_available: bool = False):  # noqa: ARG001
    """None: there is no accelerator (``torch.accelerator.current_accelerator()`` without one)."""
    return None

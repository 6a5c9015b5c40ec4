"""Whether operations record a graph: ``no_grad`` / ``enable_grad`` as context managers or decorators."""

from __future__ import annotations

import functools
import threading


class _GradState(threading.local):
    """Per thread, as in PyTorch: a no_grad block in one thread never switches recording off in another."""

    enabled = True


_GradMode = _GradState()


def is_grad_enabled() -> bool:
    return _GradMode.enabled


class _SetGrad:
    _value = True

    def __enter__(self):
        self._prev = _GradMode.enabled
        _GradMode.enabled = self._value
        return self

    def __exit__(self, *exc):
        _GradMode.enabled = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_SetGrad):
    """Inside ``with numcnn.no_grad():`` no graph is recorded and results never require grad."""

    _value = False


class enable_grad(_SetGrad):
    """Turn graph recording back on inside a ``no_grad`` block."""

    _value = True


class set_grad_enabled(_SetGrad):
    """``set_grad_enabled(mode)``: record a graph or not, as a context manager, a decorator or a plain call (which
    switches it from then on), as in PyTorch."""

    def __init__(self, mode: bool):
        self._value = bool(mode)
        self._prev = _GradMode.enabled
        _GradMode.enabled = self._value  # a plain call takes effect at once; __exit__ puts the old mode back

    def __enter__(self):
        return self

    def __call__(self, fn):
        _GradMode.enabled = self._prev  # used as a decorator: only inside the function
        mode = self._value

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return wrapper


class inference_mode(_SetGrad):
    """PyTorch's faster ``no_grad`` for inference; in numcnn the same as ``no_grad`` (``inference_mode(False)``:
    recording stays as it is)."""

    def __init__(self, mode: bool = True):
        self._value = False if mode else _GradMode.enabled

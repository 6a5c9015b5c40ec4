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

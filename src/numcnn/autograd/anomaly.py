"""Anomaly detection: stop at the first operation whose forward output or backward gradient holds NaN or Inf.

    with detect_anomaly(model):          # model is optional; with it, errors name the module path
        loss = F.cross_entropy(model(x), y)
        loss.backward()

raises :class:`AnomalyError` naming the operation (``Conv2d``, ``Log``...), whether it happened in forward or
backward, the module path where the operation ran (``layer2.0.conv1``, found through ``named_modules`` and forward
hooks) and, inside ``fit(..., detect_anomaly=True)``, the epoch and batch. Every operation's output is scanned, so
this is for debugging, not for production runs; outside the context manager the autograd code pays one global
lookup per operation.
"""

from __future__ import annotations

import numpy as np

from . import engine, function

_state = {"depth": 0}


class AnomalyError(RuntimeError):
    """A NaN/Inf appeared. ``op``, ``phase`` ("forward" or "backward"), ``module`` (path or None), ``detail``,
    and ``epoch``/``batch`` (set by ``fit``, else None) say where."""

    def __init__(self, op: str, phase: str, module: str | None, detail: str):
        super().__init__(op, phase, module, detail)
        self.op, self.phase, self.module, self.detail = op, phase, module, detail
        self.epoch: int | None = None
        self.batch: int | None = None

    def __str__(self) -> str:
        where = f"in module '{self.module}'" if self.module is not None else "outside any module of the model"
        s = f"{self.phase} of {self.op} ({where}) {self.detail}"
        if self.epoch is not None:
            s = f"epoch {self.epoch}, batch {self.batch}: " + s
        return s


def is_anomaly_enabled() -> bool:
    return _state["depth"] > 0


def _op_name(cls) -> str:
    return cls.__name__.lstrip("_")


def _bad(arr) -> str | None:
    """'nan' / 'inf' / 'nan and inf' with a count, for a float array that is not all finite; else None."""
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fc" or np.isfinite(arr).all():
        return None
    nan = int(np.isnan(arr).sum())
    inf = int(np.isinf(arr).sum())
    kind = " and ".join(k for k, n in (("nan", nan), ("inf", inf)) if n)
    return f"{kind} ({nan + inf} of {arr.size} values)"


class detect_anomaly:  # noqa: N801 - a context manager named like torch.autograd.detect_anomaly
    """Context manager (re-entrant) that turns the first NaN/Inf in a forward output or a backward gradient
    into an :class:`AnomalyError`. ``model``: a Module whose ``named_modules()`` give the paths in the error."""

    def __init__(self, model=None):
        self.model = model
        self._handles: list = []
        self._stack: list[str] = []
        self._names: dict[int, str] = {}
        self._prev = (None, None)

    # ------------------------------------------------------------ module paths
    def _install_module_hooks(self) -> None:
        root = self.model
        for name, m in root.named_modules():
            label = name or type(m).__name__

            def pre(mod, args, label=label, is_root=m is root):
                if is_root:  # a previous forward that raised may have left names on the stack
                    self._stack.clear()
                self._stack.append(label)

            def post(mod, args, out):
                if self._stack:
                    self._stack.pop()

            self._handles.append(m.register_forward_pre_hook(pre))
            self._handles.append(m.register_forward_hook(post))
        for kind, members in (("parameter", root.named_parameters()), ("buffer", root.named_buffers())):
            for name, t in members:
                self._names[id(t)] = self._names[id(t.array)] = f"{kind} '{name}'"

    def _where(self) -> str | None:
        return self._stack[-1] if self._stack else None

    def _describe_input(self, i: int, a) -> str:
        from .tensor import Tensor

        arr = a.array if isinstance(a, Tensor) else a
        name = self._names.get(id(a)) or self._names.get(id(arr))
        what = name or ("the output of another operation" if isinstance(a, Tensor) and a._ctx is not None
                        else "data or a constant from outside the graph")
        return f"input {i} ({what})"

    # ------------------------------------------------------------ the checks
    def _forward(self, cls, args, kwargs, ctx, result) -> None:
        where = self._where()
        ctx.anomaly_where = where  # backward runs after the module hooks are gone: remember the path now
        bad = _bad(result.array)
        if bad is None:
            return
        from .tensor import Tensor

        arrays = [a.array if isinstance(a, Tensor) else a for a in args]
        culprits = [self._describe_input(i, a) for i, (a, arr) in enumerate(zip(args, arrays)) if _bad(arr)]
        if culprits:
            detail = f"produced {bad} in its output because its {', '.join(culprits)} already held NaN/Inf"
        else:
            detail = f"produced {bad} in its output from finite inputs"
        raise AnomalyError(_op_name(cls), "forward", where, detail)

    def _backward(self, ctx, in_grads) -> None:
        for i, g in enumerate(in_grads):
            bad = _bad(g)
            if bad is not None:
                where = ctx.__dict__.get("anomaly_where")
                raise AnomalyError(_op_name(ctx.fn), "backward", where,
                                   f"produced {bad} in the gradient of its input {i}")

    # ------------------------------------------------------------ context manager
    def __enter__(self) -> detect_anomaly:
        if self.model is not None:
            self._install_module_hooks()
        self._prev = (function._forward_hook, engine._backward_hook)
        prev_fwd = self._prev[0]

        def fwd(cls, args, kwargs, ctx, result):
            if prev_fwd is not None:
                prev_fwd(cls, args, kwargs, ctx, result)
            self._forward(cls, args, kwargs, ctx, result)

        function._forward_hook = fwd
        engine._backward_hook = self._backward
        _state["depth"] += 1
        return self

    def __exit__(self, *exc) -> None:
        function._forward_hook, engine._backward_hook = self._prev
        _state["depth"] -= 1
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._stack.clear()

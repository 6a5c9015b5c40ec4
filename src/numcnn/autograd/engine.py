"""The backward pass: reverse topological order over the recorded graph, iterative (no recursion limit)."""

from __future__ import annotations

import numpy as np

# ``hook(ctx, in_grads)`` after every Function's backward, or None; set only by anomaly detection.
_backward_hook = None


def _topological(root) -> list:
    """Tensors that have a recorded Function, ordered so that every tensor comes before its inputs."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        if id(t) in visited:
            continue
        visited.add(id(t))
        stack.append((t, True))
        for p in t._ctx.parents:
            if p is not None and p._ctx is not None and id(p) not in visited:
                stack.append((p, False))
    order.reverse()
    return order


def _accumulate(t, g: np.ndarray, stored: set) -> None:
    if g.shape != t.array.shape:  # pragma: no cover - a Function's backward bug, not a user error
        raise RuntimeError(f"internal error: gradient of shape {g.shape} for a tensor of shape {t.array.shape}")
    if g.dtype != t.array.dtype:
        g = g.astype(t.array.dtype)
    if t.grad is None:
        # One backward may hand the same array to several inputs (x + x): each stored grad owns its memory.
        if id(g) in stored or not g.flags.owndata or not g.flags.writeable:
            g = g.copy()
        stored.add(id(g))
        t.grad = type(t)._make(g, False)
    else:
        t.grad.array = t.grad.array + g


def run_backward(root, grad: np.ndarray, retain_graph: bool = False) -> None:
    stored: set = set()
    if root._ctx is None:
        _accumulate(root, grad, stored)
        return
    grads = {id(root): grad}
    for t in _topological(root):
        g = grads.pop(id(t), None)
        if g is None:
            continue
        ctx = t._ctx
        if t._retain:
            _accumulate(t, g, stored)
        if ctx.fn is None:
            raise RuntimeError(
                "Trying to backward through the graph a second time: its saved values were freed after the "
                "first backward. Pass retain_graph=True to the first backward() if you need to."
            )
        in_grads = ctx.fn.backward(ctx, g)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        if _backward_hook is not None:
            _backward_hook(ctx, in_grads)
        for p, pg in zip(ctx.parents, in_grads):
            if p is None or pg is None:
                continue
            if p._ctx is None:
                _accumulate(p, pg, stored)
            else:
                prev = grads.get(id(p))
                grads[id(p)] = pg if prev is None else prev + pg
        if not retain_graph:
            ctx.free()

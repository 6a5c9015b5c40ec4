"""The backward pass: reverse topological order over the recorded graph, iterative (no recursion limit).

Fused backwards. A Function ``P`` may declare that, when its output's only consumer is a Function ``C`` of one
input, it computes its own input gradients straight from the gradient of ``C``'s output, without ``C``'s gradient
array being made (batch norm then ReLU: the kernel reads ReLU's saved output and the incoming gradient in its own
passes)::

    class P(Function):
        fused_backward = {C: "backward_after_c"}   # consumer Function class -> name of a static method of P

        @staticmethod
        def backward_after_c(ctx, consumer_ctx, grad):   # grad: of C's output; returns what P.backward returns
            ...

It must give exactly the bits of ``P.backward(ctx, C.backward(consumer_ctx, grad))``. When the engine reaches a node
of class ``C`` whose one input ``p`` was made by a ``P`` that declares ``C`` (exact classes), has received no
gradient yet and does not ``retain_grad``, it holds ``grad`` for ``p`` instead of running ``C.backward``. Every
consumer of ``p`` comes before ``p`` in the order: if another one hands ``p`` a gradient, ``C.backward`` runs then
and the two are added as without fusion; if none does, ``p`` had no other consumer and its turn runs the fused
backward, where ``P.backward`` would have run, so the gradients reach ``P``'s inputs in the same order: the same
bits. Nothing is fused while a backward hook is installed (anomaly detection sees every node) or ``FUSE`` is False.
"""

from __future__ import annotations

import numpy as np

from .function import Context

# ``hook(ctx, in_grads)`` after every Function's backward, or None; set only by anomaly detection.
_backward_hook = None

#: Switch for the fused backwards (tests compare fused with unfused runs).
FUSE = True


def _topological(root: Context) -> list:
    """The nodes under ``root`` (Contexts: the graph holds nodes, not the tensors between them), ordered so that
    every node comes before the nodes of its inputs."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for p in node.parents:
            if type(p) is Context and id(p) not in visited:
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


class _Held:
    """The gradient of a consumer's output, held for its input until that input's turn (see the docstring)."""

    __slots__ = ("ctx", "grad", "method")

    def __init__(self, ctx, grad, method):
        self.ctx, self.grad, self.method = ctx, grad, method

    def unfused(self, retain_graph: bool) -> np.ndarray:
        """The consumer's own backward, when its input turned out to have another consumer."""
        g = self.ctx.fn.backward(self.ctx, self.grad)
        if not retain_graph:
            self.ctx.free()
        return g


def _fused_method(ctx, grads: dict):
    """The name of the fused backward to hold ``ctx``'s gradient for, or None (``ctx`` has exactly one parent)."""
    p = ctx.parents[0]
    if type(p) is not Context or p.retained is not None or id(p) in grads or p.fn is None:
        return None
    return p.fn.fused_backward.get(ctx.fn)


def run_backward(root, grad: np.ndarray, retain_graph: bool = False) -> None:
    """Gradients from ``root`` (a Tensor) with ``grad`` back to the leaves (and the tensors that retain_grad)."""
    stored: set = set()
    if root._ctx is None:
        _accumulate(root, grad, stored)
        return
    grads = {id(root._ctx): grad}
    fuse = FUSE and _backward_hook is None
    for ctx in _topological(root._ctx):
        g = grads.pop(id(ctx), None)
        if g is None:
            continue
        if ctx.retained is not None:
            _accumulate(ctx.retained, g, stored)
        if ctx.fn is None:
            raise RuntimeError(
                "Trying to backward through the graph a second time: its saved values were freed after the "
                "first backward. Pass retain_graph=True to the first backward() if you need to."
            )
        if type(g) is _Held:  # no other consumer gave this node a gradient: the fused backward
            in_grads = getattr(ctx.fn, g.method)(ctx, g.ctx, g.grad)
            if not retain_graph:
                g.ctx.free()
        else:
            if fuse and len(ctx.parents) == 1:
                method = _fused_method(ctx, grads)
                if method is not None:
                    grads[id(ctx.parents[0])] = _Held(ctx, g, method)
                    continue
            in_grads = ctx.fn.backward(ctx, g)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        if _backward_hook is not None:
            _backward_hook(ctx, in_grads)
        for p, pg in zip(ctx.parents, in_grads):
            if p is None or pg is None:
                continue
            if type(p) is not Context:  # a leaf
                _accumulate(p, pg, stored)
            else:
                prev = grads.get(id(p))
                if prev is None:
                    grads[id(p)] = pg
                else:
                    if type(prev) is _Held:
                        prev = prev.unfused(retain_graph)
                    grads[id(p)] = prev + pg
        if not retain_graph:
            ctx.free()

"""The autograd Function: a forward on raw ndarrays and a backward that says how the gradient flows back.

A Function subclass implements two static methods::

    forward(ctx, *inputs, **options) -> ndarray          # inputs are ndarrays where Tensors were passed
    backward(ctx, grad) -> ndarray | tuple[ndarray|None] # one gradient per positional input, None where not needed

``ctx`` carries what backward needs (``ctx.save_for_backward(...)`` or plain attributes) and
``ctx.needs_input_grad`` tells backward which gradients somebody asked for, so it can skip the rest.
Everything is saved on the context of the call, never on the Function or a module: a layer used twice in one
graph keeps two contexts.

A forward may save memory it has to hand back, rather than let the garbage collector take it (convolution keeps
pooled im2col columns for its grad-weight): ``ctx.on_free(release)`` registers ``release()``, called exactly once
when the graph frees this context's saved values, i.e. after its backward unless ``retain_graph=True``. If no
backward ever runs, ``release`` is never called and the memory is simply freed with the graph.
"""

from __future__ import annotations

import numpy as np

from .grad_mode import _GradMode

# The Tensor class, registered by autograd/tensor.py when it defines it (tensor.py imports this module, so importing
# it back from here would close a cycle).
Tensor = None


def register_tensor_type(cls) -> None:
    global Tensor
    Tensor = cls


# ``hook(cls, args, kwargs, ctx, result)`` after every forward, or None. Set only while anomaly detection
# (autograd/anomaly.py) or ONNX export tracing is on, so the normal path pays one global lookup.
_forward_hook = None


class Context:
    """Per-call storage for backward, and the node of the autograd graph that a result's ``grad_fn`` is: it has
    PyTorch's ``name()`` ("MulBackward0") and ``next_functions`` (one ``(node, 0)`` per input: the input's own
    ``grad_fn``, an ``AccumulateGrad`` for a leaf that requires grad, ``None`` otherwise), so a script can walk
    the graph as the autograd tutorial does."""

    __slots__ = ("saved_tensors", "needs_input_grad", "parents", "fn", "_releases", "_name", "_tensors", "__dict__")

    #: The output Tensor, set only when it ``retain_grad()``-s (the engine stores its gradient there). The graph
    #: holds nodes, not the Tensors between them: an intermediate result's memory is freed as soon as nothing else
    #: (a saved value, the user) holds it, as in PyTorch.
    retained = None

    def name(self) -> str:
        return self._name

    @property
    def next_functions(self) -> tuple:
        return tuple((_node_of(p), 0) for p, t in zip(self.parents, self._tensors) if t)

    def __repr__(self) -> str:
        return f"<{self._name} object at {id(self):#x}>"

    def save_for_backward(self, *arrays) -> None:
        self.saved_tensors = arrays

    def on_free(self, release) -> None:
        """Call ``release()`` once when the saved values are freed (see the module docstring)."""
        if getattr(self, "_releases", None) is None:
            self._releases = []
        self._releases.append(release)

    def free(self) -> None:
        """Drop everything saved for backward, running the ``on_free`` callbacks first (the engine calls this)."""
        releases, self._releases = getattr(self, "_releases", None) or (), None
        for release in releases:
            release()
        self.__dict__.clear()
        self.saved_tensors = ()
        self.fn = None


class AccumulateGrad:
    """The graph node that adds a gradient into a leaf's ``.grad`` (``variable`` is the leaf)."""

    __slots__ = ("variable",)

    def __init__(self, variable):
        self.variable = variable

    def name(self) -> str:
        return "torch::autograd::AccumulateGrad"

    @property
    def next_functions(self) -> tuple:
        return ()

    def __repr__(self) -> str:
        return f"<AccumulateGrad object at {id(self):#x}>"


def _node_of(p):
    """The graph node of a ``Context.parents`` entry: None, a Context, or a leaf Tensor (its AccumulateGrad)."""
    return p if p is None or type(p) is Context else AccumulateGrad(p)


def _edge(a, needs: bool):
    """What ``Context.parents`` holds for input ``a``: its node (a Context) when ``a`` was computed, ``a`` itself
    when it is a leaf that requires grad, None when no gradient flows to it."""
    if not needs:
        return None
    return a if a._ctx is None else a._ctx


def backward_name(cls) -> str:
    """PyTorch's name for the backward of Function ``cls``: ``Mul`` -> ``MulBackward0``."""
    name = cls.__name__.lstrip("_")
    for suffix in ("Function", "Op"):
        if name.endswith(suffix) and name != suffix:
            name = name[: -len(suffix)]
    return f"{name}Backward0"


class Function:
    #: How many leading arguments are inputs even when they are Python scalars (``x / 2``): Add, Sub, Mul, Div.
    n_inputs = 0
    #: Consumer Function class -> name of a static method ``(ctx, consumer_ctx, grad)`` that gives this Function's
    #: input gradients from the gradient of the consumer's output (autograd/engine.py, "Fused backwards"). Read only.
    fused_backward: dict = {}
    #: ``grad_fn.name()`` of this Function's nodes: PyTorch's name for the same operation ("ConvolutionBackward0"),
    #: or, when unset, the class name with "Backward0" (``backward_name``). Where PyTorch's name depends on the
    #: call (a sum over everything or along a dim), a function of the Tensors and options ``apply`` was given.
    node_name = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("node_name") is None:
            cls.node_name = backward_name(cls)

    @staticmethod
    def forward(ctx: Context, *args, **kwargs):  # pragma: no cover - interface
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad):  # pragma: no cover - interface
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        if not _GradMode.enabled:  # nothing is recorded: no per-input bookkeeping beyond what forward reads
            ctx = Context()
            ctx.needs_input_grad = (False,) * len(args)
            out = cls.forward(ctx, *[a.array if isinstance(a, Tensor) else a for a in args], **kwargs)
            result = Tensor._make(out, False)
            if _forward_hook is not None:
                _forward_hook(cls, args, kwargs, ctx, result)
            return result
        raw = []
        needs = []
        any_grad = False
        for a in args:
            if isinstance(a, Tensor):
                raw.append(a.array)
                needs.append(a.requires_grad)
                any_grad = any_grad or a.requires_grad
            else:
                raw.append(a)
                needs.append(False)
        ctx = Context()
        record = any_grad and _GradMode.enabled
        ctx.needs_input_grad = tuple(needs) if record else (False,) * len(needs)
        out = cls.forward(ctx, *raw, **kwargs)
        result = Tensor._make(out, record)
        if record:
            ctx.fn = cls
            name = cls.node_name
            ctx._name = name if name.__class__ is str else name(*args, **kwargs)
            ctx._tensors = tuple(isinstance(a, (Tensor, np.ndarray)) or i < cls.n_inputs for i, a in enumerate(args))
            ctx.parents = tuple(_edge(a, n) for a, n in zip(args, needs))
            result._ctx = ctx
        if _forward_hook is not None:
            _forward_hook(cls, args, kwargs, ctx, result)
        return result

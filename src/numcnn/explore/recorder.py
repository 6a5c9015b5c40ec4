"""Every layer's output, recorded by forward hooks, for models of any shape (Sequential or not).

A :class:`Recorder` puts one forward hook on every module of a model, once. A hook records only while the
thread that runs the model is inside :meth:`Recorder.record`, so several requests (browser tabs) can run the same
model at once, each in its own thread, each with its own record. What is recorded, in the order the calls end:

- every call of a leaf module (Conv2d, ReLU, ...): a module called twice in one forward (resnet's blocks use their
  ``relu`` twice) gives two layers, ``name`` and ``name#2``;
- every call of a module with children whose output is a new tensor: the add of a residual block, the concatenation
  of an inception block. A container whose output is its last child's output (Sequential, BasicConv2d) adds
  nothing new and is left out.

Outputs are copied as they are recorded (a later in-place operation cannot change them); the layer's input is kept
for the layers named in ``inputs_of`` (the explanation of one pixel needs it).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .. import nn
from ..autograd import Tensor


def explain_kind(module, shape: tuple) -> str | None:
    """"conv", "pool" or "batchnorm" for the layers whose pixels can be explained (2-D maps only), else None."""
    if len(shape) != 3:
        return None
    if isinstance(module, nn.Conv2d):
        return "conv"
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
        return "pool"
    if isinstance(module, nn.BatchNorm2d):
        return "batchnorm"
    return None


@dataclass
class Call:
    """One recorded layer: its name, module, output tensor and a copy of its output for the first image (batch
    dimension dropped), where its input came from, and its input (first image) when asked for."""

    name: str
    module: object
    tensor: Tensor
    output: np.ndarray
    reads: str | None
    input: np.ndarray | None = None

    @property
    def type(self) -> str:
        return type(self.module).__name__

    @property
    def explain(self) -> str | None:
        return explain_kind(self.module, self.output.shape)

    def describe(self) -> dict:
        return {"name": self.name, "type": self.type, "shape": list(self.output.shape), "explain": self.explain,
                "reads": self.reads}


@dataclass
class Record:
    """The layers of one forward pass, in the order their calls ended."""

    inputs_of: frozenset
    image: Tensor | None = None
    calls: list[Call] = field(default_factory=list)
    counts: dict = field(default_factory=dict)

    def get(self, name: str) -> Call | None:
        return next((c for c in self.calls if c.name == name), None)

    def _source(self, x) -> str | None:
        if x is self.image:
            return "input"
        return next((c.name for c in reversed(self.calls) if c.tensor is x), None)


class Recorder:
    """Forward hooks on every module of ``model`` (registered once; see the module docstring)."""

    def __init__(self, model):
        self._local = threading.local()
        self._names = {}
        self._composite = set()
        for name, module in model.named_modules():
            self._names[id(module)] = name or "output"
            if any(True for _ in module.children()):
                self._composite.add(id(module))
            module.register_forward_hook(self._hook)

    @contextmanager
    def record(self, image: Tensor | None = None, inputs_of=()):
        """Inside the block, this thread's forward passes are recorded into the yielded :class:`Record`;
        ``image`` is the model's input tensor (so that a layer reading it says "input")."""
        rec = Record(frozenset(inputs_of), image)
        previous = getattr(self._local, "record", None)
        self._local.record = rec
        try:
            yield rec
        finally:
            self._local.record = previous

    def _hook(self, module, inputs, output) -> None:
        rec = getattr(self._local, "record", None)
        if rec is None or not isinstance(output, Tensor):
            return
        if id(module) in self._composite and any(c.tensor is output for c in rec.calls):
            return  # a container handing on its last child's output
        base = self._names.get(id(module), type(module).__name__)
        rec.counts[base] = rec.counts.get(base, 0) + 1
        name = base if rec.counts[base] == 1 else f"{base}#{rec.counts[base]}"
        x = inputs[0] if inputs else None
        reads = rec._source(x) if isinstance(x, Tensor) else None
        kept = np.array(x.array[0], copy=True) if name in rec.inputs_of and isinstance(x, Tensor) else None
        rec.calls.append(Call(name, module, output, np.array(output.array[0], dtype=np.float32, copy=True), reads,
                              kept))

"""numcnn's Tensor: an ndarray plus what autograd needs (``requires_grad``, ``grad``, the Function that made it)."""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from . import activation_ops, function, ops, printing, reduction_ops
from .conversion import ConversionMethods, Size
from .device import check_cpu
from .dtype import as_dtype, dtype
from .engine import run_backward
from .grad_mode import _GradMode
from .tensor_methods import TensorMethods

DEFAULT_FLOAT = np.dtype(np.float32)

MaxMinResult = namedtuple("MaxMinResult", ["values", "indices"])

def to_array(data, dtype=None) -> np.ndarray:
    """``data`` as an ndarray: ndarrays keep their dtype (no copy); Python floats become float32, Python ints
    int64 and bools bool, as PyTorch does."""
    if isinstance(data, Tensor):
        arr = data.array
    elif isinstance(data, (np.ndarray, np.generic)):
        arr = np.asarray(data)
    else:
        if isinstance(data, (list, tuple)) and any(isinstance(d, Tensor) for d in data):
            data = [d.array if isinstance(d, Tensor) else d for d in data]
        arr = np.asarray(data)
        if arr.dtype.kind == "f":
            arr = arr.astype(DEFAULT_FLOAT)
        elif arr.dtype.kind in "iu":
            arr = arr.astype(np.int64)
        elif arr.dtype.kind not in "b":
            raise TypeError(f"tensor(): cannot make a tensor from {type(data).__name__} of dtype {arr.dtype}")
    if dtype is not None and arr.dtype != np.dtype(dtype):
        arr = arr.astype(dtype)
    return arr


def _is_float(dtype) -> bool:
    return dtype.kind == "f"


def check_floating(x: Tensor, fn: str, name: str = "input") -> None:
    """Refuse a tensor that is not floating point, naming the function (also nn.functional's check)."""
    if not _is_float(x.array.dtype):
        raise TypeError(
            f"{fn}: expected {name} to be a floating point tensor, got dtype {x.dtype} (call .float() on it)"
        )


def _index(idx):
    """Replace Tensors inside an index by their arrays."""
    if isinstance(idx, Tensor):
        return idx.array
    if isinstance(idx, tuple):
        return tuple(_index(i) for i in idx)
    if isinstance(idx, list) and any(isinstance(i, Tensor) for i in idx):
        return [_index(i) for i in idx]
    return idx


def _shape_arg(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


class Tensor(ConversionMethods, TensorMethods):
    """An n-dimensional array that records the operations done on it when it requires grad.

    ``Tensor(data, requires_grad=False, dtype=None)`` wraps ``data`` like :func:`numcnn.tensor`.
    """

    __slots__ = ("array", "requires_grad", "grad", "_ctx", "__weakref__")
    __array_priority__ = 1000  # ndarray <op> Tensor defers to Tensor's reflected operator

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        arr = to_array(data, dtype)
        if requires_grad and not _is_float(arr.dtype):
            raise TypeError(f"only floating point tensors can require gradients, got dtype {arr.dtype}")
        self.array = arr
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._ctx = None

    @staticmethod
    def _make(arr, requires_grad: bool) -> Tensor:
        t = object.__new__(Tensor)
        t.array = arr if isinstance(arr, np.ndarray) else np.asarray(arr)
        t.requires_grad = requires_grad
        t.grad = None
        t._ctx = None
        return t

    # ------------------------------------------------------------ properties
    @property
    def data(self) -> Tensor:
        """This tensor's values as a new Tensor that shares their memory and is outside the autograd graph, as
        PyTorch's ``.data`` (``torch.max(outputs.data, 1)``). ``t.data = other`` gives ``t`` other's values (a
        Tensor or anything ``numcnn.tensor`` takes). The ndarray itself is ``t.array`` (also ``t.numpy()``)."""
        return Tensor._make(self.array, False)

    @data.setter
    def data(self, value) -> None:
        arr = value.array if isinstance(value, Tensor) else to_array(value)
        if self.requires_grad and not _is_float(arr.dtype):
            raise TypeError(f"data: a tensor that requires grad needs floating point values, got dtype {arr.dtype}")
        self.array = arr

    @property
    def shape(self) -> Size:
        return Size(self.array.shape)

    @property
    def dtype(self) -> dtype:
        """The data type, printed as PyTorch's (``numcnn.float32``); NumPy takes it as a dtype (autograd/dtype.py)."""
        return as_dtype(self.array.dtype)

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self):
        """The graph node that made this tensor (see autograd/function.py), None for a leaf."""
        return self._ctx

    @property
    def T(self) -> Tensor:
        return self.permute(*reversed(range(self.ndim)))

    def size(self, dim: int | None = None):
        return Size(self.array.shape) if dim is None else self.array.shape[dim]

    def dim(self) -> int:
        return self.array.ndim

    def numel(self) -> int:
        return self.array.size

    def __len__(self) -> int:
        if self.array.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.array.shape[0]

    def __repr__(self) -> str:
        return printing.tensor_repr(self)

    def __array__(self, dtype=None, copy=None):
        return self.array if dtype is None else self.array.astype(dtype)

    def __hash__(self):
        return id(self)

    def __bool__(self) -> bool:
        if self.array.size != 1:
            raise RuntimeError(f"Boolean value of a tensor with {self.array.size} values is ambiguous")
        return bool(self.array)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.array.dtype.kind not in "iu" or self.array.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.array)

    # ------------------------------------------------------------ autograd
    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` that requires grad."""
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad and has no grad_fn")
        if gradient is None:
            if self.array.size != 1:
                raise RuntimeError(
                    f"backward(): grad can be implicitly created only for scalar outputs, got shape {self.shape}"
                )
            grad = np.ones(self.array.shape, dtype=self.array.dtype)
        else:
            grad = to_array(gradient)
            if grad.shape != self.array.shape:
                raise ValueError(f"backward(): gradient of shape {grad.shape} for a tensor of shape {self.shape}")
            grad = grad.astype(self.array.dtype, copy=True)
        run_backward(self, grad, retain_graph)

    def detach(self) -> Tensor:
        return Tensor._make(self.array, False)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and not _is_float(self.array.dtype):
            raise TypeError(f"only floating point tensors can require gradients, got dtype {self.array.dtype}")
        self.requires_grad = requires_grad
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        if self._ctx is not None:
            self._ctx.retained = self  # the graph's node holds no tensor otherwise

    # ------------------------------------------------------------ conversion
    def numpy(self) -> np.ndarray:
        return self.array

    def item(self):
        if self.array.size != 1:
            raise ValueError(f"item(): a tensor with {self.array.size} elements cannot be converted to a number")
        return self.array.item()

    def tolist(self):
        return self.array.tolist()

    def clone(self) -> Tensor:
        return ops.Reshape.apply(self, self.shape) if self.requires_grad else Tensor._make(self.array.copy(), False)

    def contiguous(self) -> Tensor:
        return self

    # ------------------------------------------------------------ in place (no graph)
    def _check_inplace(self, name: str) -> None:
        if self.requires_grad and _GradMode.enabled:
            raise RuntimeError(
                f"{name}: a tensor that requires grad cannot be modified in place while grad is enabled "
                "(wrap it in numcnn.no_grad())"
            )

    def zero_(self) -> Tensor:
        self._check_inplace("zero_()")
        self.array[...] = 0
        return self

    def fill_(self, value) -> Tensor:
        self._check_inplace("fill_()")
        self.array[...] = value
        return self

    def copy_(self, src) -> Tensor:
        self._check_inplace("copy_()")
        src = to_array(src)
        if np.broadcast_shapes(src.shape, self.shape) != self.shape:
            raise ValueError(f"copy_(): cannot copy shape {src.shape} into shape {self.shape}")
        self.array[...] = src
        return self

    def __setitem__(self, idx, value) -> None:
        self._check_inplace("__setitem__")
        self.array[_index(idx)] = to_array(value) if isinstance(value, Tensor) else value

    # ------------------------------------------------------------ arithmetic
    def _operands(self, other, name: str, reflected: bool = False):
        """Both operands of a binary op with PyTorch's dtype rules, except that mixing two float dtypes is
        an error instead of a silent upcast."""
        a = self
        if isinstance(other, Tensor) or isinstance(other, np.ndarray):
            b = other if isinstance(other, Tensor) else Tensor._make(other, False)
            da, db = a.array.dtype, b.array.dtype
            if da != db:
                fa, fb = _is_float(da), _is_float(db)
                if fa and fb:
                    raise TypeError(
                        f"{name}: expected both operands to have the same dtype, got {da} and {db}; "
                        "numcnn never upcasts silently: call .float() on the float64 operand"
                    )
                if fa:
                    b = b.to(da)
                elif fb:
                    a = a.to(db)
        elif isinstance(other, (bool, int, float, np.number)):
            if isinstance(other, (float, np.floating)):
                b = float(other)
                if not _is_float(a.array.dtype):
                    a = a.float()
            elif isinstance(other, (bool, np.bool_)):
                b = bool(other)
            else:
                b = int(other)
        else:
            return NotImplemented
        return (b, a) if reflected else (a, b)

    def _binary(self, fn, other, name, reflected=False):
        pair = self._operands(other, name, reflected)
        if pair is NotImplemented:
            return NotImplemented
        return fn.apply(*pair)

    def __add__(self, o):
        return self._binary(ops.Add, o, "add")

    def __radd__(self, o):
        return self._binary(ops.Add, o, "add", True)

    def __sub__(self, o):
        return self._binary(ops.Sub, o, "sub")

    def __rsub__(self, o):
        return self._binary(ops.Sub, o, "sub", True)

    def __mul__(self, o):
        return self._binary(ops.Mul, o, "mul")

    def __rmul__(self, o):
        return self._binary(ops.Mul, o, "mul", True)

    def __truediv__(self, o):
        x = self if _is_float(self.array.dtype) else self.float()
        return x._binary(ops.Div, o, "div")

    def __rtruediv__(self, o):
        x = self if _is_float(self.array.dtype) else self.float()
        return x._binary(ops.Div, o, "div", True)

    def __pow__(self, o):
        return self._binary(ops.Pow, o, "pow")

    def __rpow__(self, o):
        return self._binary(ops.Pow, o, "pow", True)

    def __matmul__(self, o):
        return self._binary(ops.MatMul, o, "matmul")

    def __rmatmul__(self, o):
        return self._binary(ops.MatMul, o, "matmul", True)

    def __neg__(self):
        return ops.Neg.apply(self)

    def __pos__(self):
        return self

    def _compare(self, other, np_op):
        o = other.array if isinstance(other, Tensor) else other
        return Tensor._make(np.asarray(np_op(self.array, o)), False)

    def __eq__(self, o):
        return self._compare(o, np.equal)

    def __ne__(self, o):
        return self._compare(o, np.not_equal)

    def __lt__(self, o):
        return self._compare(o, np.less)

    def __le__(self, o):
        return self._compare(o, np.less_equal)

    def __gt__(self, o):
        return self._compare(o, np.greater)

    def __ge__(self, o):
        return self._compare(o, np.greater_equal)

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__
    greater, less, greater_equal, less_equal, not_equal = __gt__, __lt__, __ge__, __le__, __ne__

    def add(self, o):
        return self + o

    def sub(self, o):
        return self - o

    def mul(self, o):
        return self * o

    def div(self, o):
        return self / o

    def pow(self, o):
        return self**o

    def matmul(self, o):
        return self @ o

    def neg(self):
        return -self

    # ------------------------------------------------------------ elementwise math
    def _float_op(self, name: str):
        if not _is_float(self.array.dtype):
            raise TypeError(f"{name}(): expected a floating point tensor, got dtype {self.array.dtype}")

    def exp(self):
        self._float_op("exp")
        return ops.Exp.apply(self)

    def log(self):
        self._float_op("log")
        return ops.Log.apply(self)

    def sqrt(self):
        self._float_op("sqrt")
        return ops.Sqrt.apply(self)

    def abs(self):
        return ops.Abs.apply(self)

    def clamp(self, min=None, max=None):  # noqa: A002 - torch's names
        if min is None and max is None:
            raise ValueError("clamp(): at least one of min and max must be given")
        return ops.Clamp.apply(self, min, max)

    clip = clamp

    # Activations: the Functions of nn.functional's relu, sigmoid, ... (autograd/activation_ops.py), same checks.
    def relu(self):
        check_floating(self, "relu")
        return activation_ops.ReLU.apply(self)

    def sigmoid(self):
        check_floating(self, "sigmoid")
        return activation_ops.Sigmoid.apply(self)

    def tanh(self):
        check_floating(self, "tanh")
        return activation_ops.Tanh.apply(self)

    def softmax(self, dim: int):
        check_floating(self, "softmax")
        return activation_ops.Softmax.apply(self, activation_ops.softmax_dim(self, dim, "softmax"))

    def log_softmax(self, dim: int):
        check_floating(self, "log_softmax")
        return activation_ops.LogSoftmax.apply(self, activation_ops.softmax_dim(self, dim, "log_softmax"))

    # ------------------------------------------------------------ reductions
    def sum(self, dim=None, keepdim: bool = False):
        return reduction_ops.Sum.apply(self, dim, keepdim)

    def mean(self, dim=None, keepdim: bool = False):
        self._float_op("mean")
        return reduction_ops.Mean.apply(self, dim, keepdim)

    def var(self, dim=None, keepdim: bool = False, unbiased: bool = True, correction=None):
        self._float_op("var")
        c = (1 if unbiased else 0) if correction is None else correction
        return reduction_ops.Var.apply(self, dim, keepdim, c)

    def std(self, dim=None, keepdim: bool = False, unbiased: bool = True):
        return self.var(dim, keepdim, unbiased).sqrt()

    def _maxmin(self, dim, keepdim, is_max):
        out = reduction_ops.MaxMin.apply(self, dim, keepdim, is_max)
        if dim is None:
            return out
        pick = np.argmax if is_max else np.argmin
        idx = pick(self.array, axis=dim, keepdims=keepdim)
        return MaxMinResult(out, Tensor._make(np.asarray(idx, dtype=np.int64), False))

    def max(self, dim: int | None = None, keepdim: bool = False):
        """Without ``dim``: the largest element. With ``dim``: ``(values, indices)`` along ``dim``."""
        return self._maxmin(dim, keepdim, True)

    def min(self, dim: int | None = None, keepdim: bool = False):
        return self._maxmin(dim, keepdim, False)

    def argmax(self, dim: int | None = None, keepdim: bool = False, *, axis: int | None = None) -> Tensor:
        dim = dim if axis is None else axis
        return Tensor._make(np.asarray(np.argmax(self.array, axis=dim, keepdims=keepdim), dtype=np.int64), False)

    def argmin(self, dim: int | None = None, keepdim: bool = False, *, axis: int | None = None) -> Tensor:
        dim = dim if axis is None else axis
        return Tensor._make(np.asarray(np.argmin(self.array, axis=dim, keepdims=keepdim), dtype=np.int64), False)

    # ------------------------------------------------------------ shapes
    def reshape(self, *shape) -> Tensor:
        shape = tuple(int(s) for s in _shape_arg(shape))
        size = self.array.size
        known = int(np.prod([s for s in shape if s != -1]))
        if shape.count(-1) == 1 and known != 0 and size % known == 0:
            shape = tuple(size // known if s == -1 else s for s in shape)
        if -1 in shape or any(s < 0 for s in shape) or int(np.prod(shape)) != size:
            raise ValueError(f"reshape(): shape {shape} is invalid for a tensor of shape {self.shape}")
        return ops.Reshape.apply(self, shape)

    view = reshape

    def view_as(self, other: Tensor) -> Tensor:
        return self.reshape(other.shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        if self.ndim == 0:
            return self.reshape(1)
        s, e = start_dim % self.ndim, end_dim % self.ndim
        shape = self.shape[:s] + (math.prod(self.shape[s : e + 1]),) + self.shape[e + 1 :]
        return ops.Reshape.apply(self, shape)

    def permute(self, *dims) -> Tensor:
        dims = _shape_arg(dims)
        if sorted(d % max(self.ndim, 1) for d in dims) != list(range(self.ndim)):
            raise ValueError(f"permute(): dims {dims} are not a permutation of the {self.ndim} dims of {self.shape}")
        return ops.Permute.apply(self, tuple(d % self.ndim for d in dims))

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return ops.Permute.apply(self, tuple(axes))

    def squeeze(self, dim: int | None = None) -> Tensor:
        if dim is None:
            shape = tuple(s for s in self.shape if s != 1)
        else:
            d = dim % max(self.ndim, 1)
            shape = self.shape if self.ndim == 0 or self.shape[d] != 1 else self.shape[:d] + self.shape[d + 1 :]
        return ops.Reshape.apply(self, shape)

    def unsqueeze(self, dim: int) -> Tensor:
        d = dim % (self.ndim + 1)
        return ops.Reshape.apply(self, self.shape[:d] + (1,) + self.shape[d:])

    def expand(self, *sizes) -> Tensor:
        sizes = _shape_arg(sizes)
        lead = len(sizes) - self.ndim
        shape = tuple(self.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
        return ops.Expand.apply(self, shape)

    def __getitem__(self, idx) -> Tensor:
        return ops.GetItem.apply(self, _index(idx))


Tensor.__module__ = "numcnn"


function.register_tensor_type(Tensor)  # Function.apply wraps its outputs in Tensors


def tensor(data, requires_grad: bool = False, dtype=None, device=None) -> Tensor:
    """Make a Tensor. An ndarray keeps its dtype and is wrapped without a copy (so int64 labels stay int64);
    Python floats become float32, Python ints int64, as in PyTorch. ``device``: the CPU (autograd/device.py)."""
    if device is not None:
        check_cpu(device)
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def _tensors(seq, name: str) -> list[Tensor]:
    ts = [t if isinstance(t, Tensor) else Tensor(t) for t in seq]
    if not ts:
        raise ValueError(f"{name}(): expected a non-empty sequence of tensors")
    dtypes = {t.dtype for t in ts}
    if len(dtypes) > 1:
        raise TypeError(f"{name}(): expected tensors of one dtype, got {sorted(str(d) for d in dtypes)}")
    return ts


def cat(tensors, dim: int = 0) -> Tensor:
    """Concatenate along an existing dim (``torch.cat``)."""
    ts = _tensors(tensors, "cat")
    ref = ts[0].shape
    d = dim % len(ref)
    for t in ts[1:]:
        if t.ndim != len(ref) or t.shape[:d] + t.shape[d + 1 :] != ref[:d] + ref[d + 1 :]:
            raise ValueError(f"cat(): sizes must match except in dim {dim}, got {ref} and {t.shape}")
    return ops.Cat.apply(d, *ts)


def stack(tensors, dim: int = 0) -> Tensor:
    """Stack along a new dim (``torch.stack``)."""
    ts = _tensors(tensors, "stack")
    for t in ts[1:]:
        if t.shape != ts[0].shape:
            raise ValueError(f"stack(): expected tensors of one shape, got {ts[0].shape} and {t.shape}")
    return ops.Stack.apply(dim % (ts[0].ndim + 1), *ts)


def where(condition, input, other) -> Tensor:  # noqa: A002
    cond = condition.array if isinstance(condition, Tensor) else np.asarray(condition)
    a = input if isinstance(input, Tensor) else Tensor(input)
    pair = a._operands(other, "where")
    return ops.Where.apply(cond.astype(bool), *pair)

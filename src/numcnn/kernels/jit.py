"""Compiled kernels: the textbook's loops, compiled by Numba the first time they run.

A compiled kernel is written as plain loops over arrays and declared with :func:`kernel`; it takes the range of the
independent items (planes, channels) it should do, and the caller shares ranges out over numcnn's kernel threads
exactly as for the NumPy kernels (``parallel.run``)::

    @kernel
    def relu_rows(x, y, i0, i1):
        for i in range(i0, i1):
            for j in range(x.shape[1]):
                y[i, j] = max(x[i, j], 0)

    parallel.run(lambda b: relu_rows(x, y, *b), parallel.cache_blocks(len(x), x[0].nbytes), blas=False)

Compiled code releases the GIL (``nogil``), so those threads run it at once. Numba's own thread pool is not used:
one pool for every kernel means threads never oversubscribe the cores or spin while another library's threads
need them, a forked child (a DataLoader worker) can run any kernel, and results stay independent of the thread
count by the same rule as everywhere in numcnn: work is cut by the shapes, each range writes its own outputs, and
sums run in a fixed order inside a range.

Nothing is compiled when numcnn is imported: Numba itself is imported, and each kernel compiled (per dtype and
layout of its arguments), on the kernel's first call, and the compiled code is cached on disk (``cache=True``:
next to the source, or in the user's cache folder when the installation is read-only), so later processes load it
in milliseconds. :func:`compile_report` says which kernels were compiled and how long each took.

Three helpers compile to a few LLVM instructions (import them from here; called from Python they raise):

- ``a = stack_array(64, np.float32)`` (the size a literal int, the dtype a NumPy type or ``x.dtype``): a 1-D
  array on the kernel's stack, taken once when the kernel starts (a call inside a loop gives the same memory each
  time, its contents undefined until written; two calls give two arrays). It aliases no argument, so LLVM may keep
  its elements in vector registers across a loop that reads and writes the same few of them (an output tile's
  running sums, for one), where an array passed in could be the input the loop reads: loaded and stored each pass.
- ``copy_run(dst, i, src, j, n)``: dst[i : i + n] = src[j : j + n] for n <= 16 floats, as masked vector copies.
- ``wait_while(flags, i, value, spins)``: spin while an int64 flag another thread writes still holds ``value``
  (``parallel``'s caller waiting for its workers with no GIL held).

``Kernel._compile`` hands them to a kernel whose code names them (a copy of the function with the intrinsics in
its globals); Numba's on-disk cache does not see changes to their code (clear it after editing them). A kernel may
also call another kernel (a helper that several share): it gets the helper's compiled code the same way, and the
same caveat holds for the helper's code.
"""

from __future__ import annotations

import threading
import time
import types
import warnings
from collections.abc import Callable

from .runtime import runtime

__all__ = ["available", "compile_report", "copy_run", "kernel", "stack_array", "use_compiled", "wait_while"]

_state: dict = {"numba": None, "warned": False}
_compiled: dict[str, float] = {}  # "kernel(types)" -> seconds spent compiling (or loading from the cache)
_intrinsics: dict = {}  # name -> Numba intrinsic, made on first use (importing numcnn imports no Numba)


def _numba():
    """The numba module, imported on first use; False when it cannot be (said once, as a warning)."""
    if _state["numba"] is None:
        try:
            import numba

            _state["numba"] = numba
        except Exception as e:  # an unsupported Python or NumPy: ImportError, or an error while numba loads
            _state["numba"] = False
            if not _state["warned"]:
                _state["warned"] = True
                warnings.warn(f"numcnn: the compiled kernels are off ({type(e).__name__}: {e}); running the NumPy "
                              "kernels (NUMCNN_KERNELS=numpy silences this)", RuntimeWarning, stacklevel=3)
    return _state["numba"]


def stack_array(size, dtype):
    """Inside a compiled kernel: an uninitialised 1-D array of ``size`` (a literal int) ``dtype`` numbers in the
    kernel's stack frame, 64-byte aligned (see the module docstring). Not callable from Python."""
    raise RuntimeError("stack_array works only inside a compiled kernel")


def _stack_array():
    """The Numba intrinsic that compiled kernels call as ``stack_array``: an ``alloca`` in the function's entry block
    viewed as a C-contiguous array. (Numba's on-disk cache of a kernel does not track changes to the code of this
    intrinsic or of ``_copy_run``: clear the cache, the ``__pycache__`` folders, after editing them.)"""
    from numba import types as nt
    from numba.extending import intrinsic

    @intrinsic
    def stack_array_intrinsic(typingctx, size, dtype):
        if not isinstance(size, nt.IntegerLiteral) or not isinstance(dtype, (nt.NumberClass, nt.DType)):
            return None
        array = nt.Array(dtype.dtype, 1, "C")

        def codegen(context, builder, signature, args):
            data_type, n = context.get_data_type(dtype.dtype), context.get_constant(nt.intp, size.literal_value)
            with builder.goto_entry_block():
                data = builder.alloca(data_type, size=n)
                data.align = 64
            itemsize = context.get_constant(nt.intp, context.get_abi_sizeof(data_type))
            a = context.make_array(array)(context, builder)
            context.populate_array(a, data=data, shape=[n], strides=[itemsize], itemsize=itemsize, meminfo=None)
            return a._getvalue()

        return array(size, dtype), codegen

    return stack_array_intrinsic


def copy_run(dst, i, src, j, n):
    """Inside a compiled kernel: dst[i : i + n] = src[j : j + n] for 0 <= n <= 16 (src of dst's dtype), as one
    masked load and store of 16 lanes (one vector register of float32; two, each masked, of float64): a short run
    copied without a loop (LLVM unrolls a loop of 16 into 16 scalar copies, Numba not running its SLP
    vectoriser). Not callable from Python."""
    raise RuntimeError("copy_run works only inside a compiled kernel")


def _copy_run():
    """The Numba intrinsic behind ``copy_run``: llvm.masked.load and llvm.masked.store, lanes [0, n) enabled."""
    from numba import types as nt
    from numba.core import cgutils
    from numba.extending import intrinsic

    ir = cgutils.ir  # llvmlite's IR builder, as Numba's own code generation uses it (numcnn imports Numba only)

    @intrinsic
    def copy_run_intrinsic(typingctx, dst, i, src, j, n):
        if not (isinstance(dst, nt.Array) and isinstance(src, nt.Array) and dst.dtype == src.dtype
                and isinstance(dst.dtype, nt.Float)):
            return None

        def codegen(context, builder, signature, args):
            element, size = context.get_data_type(dst.dtype), context.get_abi_sizeof(context.get_data_type(dst.dtype))
            lanes = 64 // size  # a vector register per masked load and store
            vector, index = ir.VectorType(element, lanes), ir.VectorType(ir.IntType(64), lanes)
            d, s = (context.make_array(t)(context, builder, a) for t, a in ((dst, args[0]), (src, args[2])))
            count = builder.insert_element(index(ir.Undefined), args[4], ir.Constant(ir.IntType(32), 0))
            count = builder.shuffle_vector(count, count, ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes))
            name, align = f"v{lanes}f{8 * size}.p0", ir.Constant(ir.IntType(32), size)
            load = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
                vector, [vector.as_pointer(), align.type, ir.VectorType(ir.IntType(1), lanes), vector]),
                f"llvm.masked.load.{name}")
            store = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
                ir.VoidType(), [vector, vector.as_pointer(), align.type, ir.VectorType(ir.IntType(1), lanes)]),
                f"llvm.masked.store.{name}")
            for first in range(0, 16, lanes):
                to, frm = (builder.bitcast(builder.gep(a.data, [builder.add(k, ir.Constant(k.type, first))]),
                                           vector.as_pointer()) for a, k in ((d, args[1]), (s, args[3])))
                mask = builder.icmp_signed("<", ir.Constant(index, list(range(first, first + lanes))), count)
                builder.call(store, [builder.call(load, [frm, align, mask, vector(ir.Undefined)]), to, align, mask])
            return context.get_dummy_value()

        return nt.none(dst, nt.intp, src, nt.intp, nt.intp), codegen

    return copy_run_intrinsic


def wait_while(flags, i, value, spins):
    """Inside a compiled kernel: spin while ``flags[i] == value`` (an int64 array that another thread writes), at
    most ``spins`` times (one atomic load each, and on x86 one ``pause``); returns the last value read. Not callable
    from Python."""
    raise RuntimeError("wait_while works only inside a compiled kernel")


def _wait_while():
    """The Numba intrinsic behind ``wait_while``: a loop of acquire loads (which LLVM may not hoist out of the loop,
    as it would a plain load) with x86's spin-wait hint."""
    import platform

    from numba import types as nt
    from numba.core import cgutils
    from numba.extending import intrinsic

    ir = cgutils.ir
    pause = platform.machine().lower() in ("x86_64", "amd64")

    @intrinsic
    def wait_while_intrinsic(typingctx, flags, i, value, spins):
        if not (isinstance(flags, nt.Array) and flags.dtype == nt.int64 and flags.ndim == 1):
            return None

        def codegen(context, builder, signature, args):
            i64 = ir.IntType(64)
            ptr = builder.gep(context.make_array(flags)(context, builder, args[0]).data, [args[1]])
            count = cgutils.alloca_once_value(builder, ir.Constant(i64, 0))
            seen = cgutils.alloca_once_value(builder, builder.load_atomic(ptr, "acquire", 8))
            loop, done = builder.append_basic_block("spin"), builder.append_basic_block("spun")

            def again():
                return builder.and_(builder.icmp_signed("==", builder.load(seen), args[2]),
                                    builder.icmp_signed("<", builder.load(count), args[3]))

            builder.cbranch(again(), loop, done)
            builder.position_at_end(loop)
            if pause:
                builder.call(cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                            "llvm.x86.sse2.pause"), [])
            builder.store(builder.load_atomic(ptr, "acquire", 8), seen)
            builder.store(builder.add(builder.load(count), ir.Constant(i64, 1)), count)
            builder.cbranch(again(), loop, done)
            builder.position_at_end(done)
            return builder.load(seen)

        return nt.int64(flags, nt.intp, nt.int64, nt.int64), codegen

    return wait_while_intrinsic


_MAKERS = {"stack_array": _stack_array, "copy_run": _copy_run, "wait_while": _wait_while}


def _names(code) -> set[str]:
    """The global names a code object (or one nested in it) reads."""
    return set(code.co_names).union(*(_names(c) for c in code.co_consts if isinstance(c, types.CodeType)))


def _with_intrinsics(fn: Callable) -> Callable:
    """fn, or a copy of it whose globals map ``stack_array`` and ``copy_run`` to their intrinsics and other kernels
    to their compiled code, where it names them (made once each)."""
    names = _names(fn.__code__)
    used = names & _MAKERS.keys()
    helpers = {name: fn.__globals__[name] for name in names if isinstance(fn.__globals__.get(name), Kernel)}
    if not used and not helpers:
        return fn
    for name in used - _intrinsics.keys():
        _intrinsics[name] = _MAKERS[name]()
    compiled = {name: helper._compile() for name, helper in helpers.items()}
    new = types.FunctionType(fn.__code__, {**fn.__globals__, **{name: _intrinsics[name] for name in used}, **compiled},
                             fn.__name__, fn.__defaults__, fn.__closure__)
    new.__qualname__, new.__module__, new.__doc__ = fn.__qualname__, fn.__module__, fn.__doc__
    return new


def available() -> bool:
    """Whether compiled kernels can run here (imports Numba the first time)."""
    return bool(_numba())


def use_compiled() -> bool:
    """Whether kernels should run their compiled version now: ``runtime.backend`` asks for it and Numba works."""
    return runtime.backend == "numba" and available()


class Kernel:
    """A function compiled on its first call; called like the function."""

    def __init__(self, fn: Callable, fastmath=None, inline: bool = False):
        self.fn, self.name = fn, fn.__name__
        self.fastmath = fastmath  # Numba's fastmath flags, e.g. {"contract"}: a*b + c as one FMA (deterministic)
        self.inline = inline  # a helper compiled into each kernel that calls it (Numba's inline="always")
        self._dispatcher = None
        self._lock = threading.Lock()  # two threads making the first call compile once

    def _compile(self):
        with self._lock:
            if self._dispatcher is None:
                numba = _numba()
                if not numba:
                    raise RuntimeError(f"{self.name}: the compiled kernels are not available here")
                options = {} if self.fastmath is None else {"fastmath": self.fastmath}
                if self.inline:
                    options["inline"] = "always"
                self._dispatcher = numba.njit(cache=True, nogil=True, error_model="numpy", **options)(
                    _with_intrinsics(self.fn))
        return self._dispatcher

    def __call__(self, *args):
        dispatcher = self._dispatcher or self._compile()
        before = len(dispatcher.overloads)  # (a dict: cheaper than .signatures, which builds a list per call)
        t0 = time.perf_counter()
        out = dispatcher(*args)
        if len(dispatcher.overloads) != before:  # this call compiled (or loaded from the cache) a new signature
            _compiled[f"{self.name}{dispatcher.signatures[-1]}"] = time.perf_counter() - t0
        return out


def kernel(fn: Callable | None = None, *, fastmath=None, inline: bool = False):
    """Declare a compiled kernel (see the module docstring): ``@kernel``, or ``@kernel(fastmath={"contract"})`` to
    pass Numba's fastmath flags (``"contract"`` fuses a*b + c into one FMA: the same bits on every call and thread
    count; ``"reassoc"`` lets a sum be split into vector lanes: fixed by the compiled code, so also the same bits
    whatever the thread count, but not the textbook's left-to-right order). ``inline=True``: a helper that other
    kernels call, compiled into each of them (no call in their loops)."""
    if fn is None:
        return lambda f: Kernel(f, fastmath, inline)
    return Kernel(fn, fastmath, inline)


def compile_report() -> dict[str, float]:
    """{"kernel(argument types)": seconds} for every compiled signature this process compiled or loaded so far
    (including the first run of the kernel, which the compile dominates)."""
    return dict(_compiled)

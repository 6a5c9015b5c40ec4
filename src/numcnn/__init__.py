"""numcnn: convolutional neural networks in NumPy, with PyTorch's interface and numbers."""

import numpy as _np

from ._config import manual_seed, tune_malloc_from_env
from ._version import __version__  # noqa: F401 - numcnn.__version__
from .autograd import Tensor, cat, enable_grad, is_grad_enabled, no_grad, stack, tensor, where
from .autograd.conversion import Size
from .autograd.creation import (
    arange,
    as_tensor,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    zeros,
    zeros_like,
)
from .autograd.device import device
from .autograd.dtype import as_dtype, dtype
from .autograd.function_forms import *  # noqa: F403 - numcnn.max(x, 1), numcnn.flatten(x, 1), ... (PyTorch's forms)
from .autograd.function_forms import FORMS as _FORMS
from .autograd.generator import Generator, get_rng_state, initial_seed, seed, set_rng_state
from .autograd.grad_mode import inference_mode, set_grad_enabled
from .serialization import load, save

tune_malloc_from_env()  # see numcnn/_config/malloc.py: freed activations stay mapped for the next step

float32 = as_dtype(_np.float32)
float64 = as_dtype(_np.float64)
float16 = half = as_dtype(_np.float16)
int64 = as_dtype(_np.int64)
int32 = as_dtype(_np.int32)
int16 = short = as_dtype(_np.int16)
int8 = as_dtype(_np.int8)
uint8 = as_dtype(_np.uint8)
bool_ = as_dtype(_np.bool_)
bool = bool_  # noqa: A001 - torch.bool
float = float32  # noqa: A001 - torch.float is float32
double = float64
long = int64

from . import accelerator, backends, cuda, models, nn, optim, utils  # noqa: E402  (they import the names above)
from .kernels.runtime import runtime  # noqa: E402


def get_default_dtype():
    """float32: numcnn's default floating point type (fixed; ``set_default_dtype`` is not offered)."""
    return float32


def set_num_threads(n: int) -> None:
    """Use ``n`` threads: numcnn's kernels share their batch chunks out over ``n`` threads (each running
    single-threaded GEMMs), and NumPy's BLAS pool is limited to ``n`` for the large GEMMs it runs itself.
    Results do not depend on ``n`` (see numcnn/kernels/parallel.py). Default: the CPUs this process may use.
    The same as ``numcnn.runtime.threads = n``."""
    runtime.threads = n


def get_num_threads() -> int:
    """The number of threads numcnn's kernels use, and the limit of NumPy's BLAS pool once set."""
    return runtime.threads


def __getattr__(name: str):
    # numcnn.onnx needs the optional `onnx` package: imported on first use, not by `import numcnn`.
    if name == "onnx":
        import importlib

        return importlib.import_module(".onnx", __name__)
    raise AttributeError(f"module 'numcnn' has no attribute {name!r}")


__all__ = [*_FORMS,
    "Generator", "Size", "Tensor", "accelerator", "backends", "cuda", "device", "dtype", "arange", "cat", "empty",
    "enable_grad", "full", "get_num_threads", "is_grad_enabled", "load", "manual_seed", "models", "nn", "no_grad",
    "ones", "ones_like", "optim", "rand", "randint", "randn", "runtime", "save", "set_num_threads", "stack", "tensor",
    "utils", "where", "zeros", "zeros_like", "as_tensor", "empty_like", "eye", "from_numpy", "full_like",
    "linspace", "rand_like", "randn_like", "randperm", "inference_mode", "set_grad_enabled", "get_default_dtype",
    "get_rng_state", "initial_seed", "seed", "set_rng_state",
]

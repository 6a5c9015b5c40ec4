"""``numcnn.cuda``: what ``torch.cuda`` answers on a machine without a GPU, so that device-generic scripts
(``"cuda" if torch.cuda.is_available() else "cpu"``) pick the CPU and run. Seeding calls are accepted and do
nothing (numcnn's generator is seeded by ``numcnn.manual_seed``); anything that needs a GPU is a clear error."""

from __future__ import annotations


def is_available() -> bool:
    return False


def device_count() -> int:
    return 0


def is_initialized() -> bool:
    return False


def manual_seed(seed: int) -> None:  # noqa: ARG001 - no GPU generator to seed
    """Accepted and ignored, as PyTorch does without CUDA."""


manual_seed_all = manual_seed


def synchronize(device=None) -> None:  # noqa: ARG001
    """Nothing to wait for on the CPU."""


def empty_cache() -> None:
    """No GPU memory to give back."""


def _no_gpu(name: str):
    def refuse(*args, **kwargs):
        raise RuntimeError(f"numcnn.cuda.{name}(): numcnn computes on the CPU only (numcnn.cuda.is_available() is "
                           "False)")

    refuse.__name__ = name
    return refuse


current_device = _no_gpu("current_device")
get_device_name = _no_gpu("get_device_name")
set_device = _no_gpu("set_device")
memory_allocated = _no_gpu("memory_allocated")

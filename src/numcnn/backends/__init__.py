"""``numcnn.backends``: PyTorch's backend switches as a CPU-only library answers them (``mps`` and ``cudnn`` are not
available; ``import torch.backends.cudnn as cudnn`` works, see the submodules)."""

from . import cudnn, mps

__all__ = ["cudnn", "mps"]

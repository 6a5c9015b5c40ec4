"""torchvision.transforms stand-in: the transforms the test scripts use, on PIL images and torch tensors."""

import numbers

import numpy as np
import torch
from PIL import Image

__all__ = ["CenterCrop", "Compose", "Normalize", "RandomHorizontalFlip", "RandomRotation", "Resize", "ToTensor"]


class Compose:
    """Apply ``transforms`` in order."""

    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img


class ToTensor:
    """PIL image or uint8 ndarray (H, W[, C]) -> float32 tensor (C, H, W) in [0, 1]."""

    def __call__(self, pic):
        arr = np.array(pic, dtype=np.uint8, copy=True)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        return torch.from_numpy(arr.transpose(2, 0, 1).copy()).float().div(255)


class Normalize:
    """``(x - mean[c]) / std[c]`` per channel of a (C, H, W) tensor."""

    def __init__(self, mean, std):
        self.mean, self.std = mean, std

    def __call__(self, tensor):
        mean = torch.as_tensor(self.mean, dtype=tensor.dtype).view(-1, 1, 1)
        std = torch.as_tensor(self.std, dtype=tensor.dtype).view(-1, 1, 1)
        return (tensor - mean) / std


def _output_size(size, w, h):
    """torchvision's Resize size rule: an int sets the smaller edge (aspect kept), a pair is (h, w)."""
    if isinstance(size, numbers.Number) or len(size) == 1:
        s = int(size if isinstance(size, numbers.Number) else size[0])
        if w <= h:
            return s, int(s * h / w)
        return int(s * w / h), s
    return int(size[1]), int(size[0])


class Resize:
    """PIL resize, bilinear by default (torchvision's default for PIL images)."""

    def __init__(self, size, interpolation=Image.BILINEAR):
        self.size, self.interpolation = size, interpolation

    def __call__(self, img):
        return img.resize(_output_size(self.size, *img.size), self.interpolation)


class CenterCrop:
    """The central (h, w) crop; torchvision rounds the offsets: ``int(round((H - h) / 2))``."""

    def __init__(self, size):
        self.size = (size, size) if isinstance(size, numbers.Number) else tuple(size)

    def __call__(self, img):
        th, tw = self.size
        w, h = img.size
        top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
        return img.crop((left, top, left + tw, top + th))


class RandomRotation:
    """Rotate by an angle drawn uniformly from (-degrees, degrees) with torch's generator (nearest, fill 0)."""

    def __init__(self, degrees, fill=0):
        self.degrees = (-degrees, degrees) if isinstance(degrees, numbers.Number) else tuple(degrees)
        self.fill = fill

    def __call__(self, img):
        angle = float(torch.empty(1).uniform_(float(self.degrees[0]), float(self.degrees[1])).item())
        fill = tuple([self.fill] * len(img.getbands())) if len(img.getbands()) > 1 else self.fill
        return img.rotate(angle, Image.NEAREST, expand=False, fillcolor=fill)


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p`` (drawn with torch's generator)."""

    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, img):
        if torch.rand(1) < self.p:
            return img.transpose(Image.FLIP_LEFT_RIGHT)
        return img

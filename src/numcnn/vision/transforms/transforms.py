"""torchvision.transforms: transform objects over the functions of ``functional`` (PIL images and Tensors).

Random transforms draw from the calling DataLoader worker's generator (``get_worker_info().rng``, seeded per
worker) inside a worker, else from numcnn's global generator (``numcnn.manual_seed``): NumPy streams, so the
same seed gives the same augmentations run after run, not torch's.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from numcnn._config import default_generator
from numcnn.autograd.tensor import Tensor
from numcnn.data.workers import worker_rng
from numcnn.vision.transforms import functional as F
from numcnn.vision.transforms.functional import InterpolationMode

__all__ = [
    "CenterCrop", "ColorJitter", "Compose", "Grayscale", "Lambda", "Normalize", "PILToTensor", "Pad", "RandomApply",
    "RandomCrop", "RandomHorizontalFlip", "RandomResizedCrop", "RandomRotation", "RandomVerticalFlip", "Resize",
    "ToPILImage", "ToTensor", "batch_pipeline",
]


def _rng() -> np.random.Generator:
    g = worker_rng()
    return g if g is not None else default_generator()


def _size(name: str, size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, numbers.Number):
        return int(size), int(size)
    if len(size) == 1:
        return int(size[0]), int(size[0])
    if len(size) != 2:
        raise ValueError(f"{name}: please provide only two dimensions (h, w) for size, got {size!r}")
    return int(size[0]), int(size[1])


class _Transform:
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


class Compose(_Transform):
    """Apply ``transforms`` one after the other."""

    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)

    def __call__(self, img: Any) -> Any:
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        return "Compose(" + "".join(f"\n    {t}" for t in self.transforms) + "\n)"


class ToTensor(_Transform):
    """PIL image or ndarray (H, W, C) uint8 -> float32 Tensor (C, H, W) in [0, 1]."""

    def __call__(self, pic: Any) -> Tensor:
        return F.to_tensor(pic)

    @staticmethod
    def batch(x: np.ndarray) -> np.ndarray:
        """A stack of raw dataset images, (N, H, W) gray or (N, H, W, C), as ``to_tensor`` makes each."""
        chw = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
        return np.divide(chw, np.float32(255), dtype=np.float32) if chw.dtype == np.uint8 else np.ascontiguousarray(chw)


class PILToTensor(_Transform):
    """PIL image -> Tensor (C, H, W) of its dtype, unscaled."""

    def __call__(self, pic: Any) -> Tensor:
        return F.pil_to_tensor(pic)


class ToPILImage(_Transform):
    def __init__(self, mode: str | None = None) -> None:
        self.mode = mode

    def __call__(self, pic: Any) -> Any:
        return F.to_pil_image(pic, self.mode)


class Normalize(_Transform):
    """``(x - mean[c]) / std[c]`` on a float Tensor (C, H, W)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> None:
        self.mean, self.std, self.inplace = mean, std, inplace

    def __call__(self, tensor: Any) -> Any:
        return F.normalize(tensor, self.mean, self.std, self.inplace)

    def batch(self, x: np.ndarray) -> np.ndarray:
        return F.normalize(x, self.mean, self.std, inplace=True)

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}"


class Lambda(_Transform):
    def __init__(self, lambd: Callable) -> None:
        if not callable(lambd):
            raise TypeError(f"Lambda: argument lambd should be callable, got {type(lambd).__name__}")
        self.lambd = lambd

    def __call__(self, img: Any) -> Any:
        return self.lambd(img)


class Resize(_Transform):
    """Resize to (h, w), or the shorter side to ``size`` keeping the aspect ratio (the longer side truncated)."""

    def __init__(self, size: int | Sequence[int], interpolation: InterpolationMode = InterpolationMode.BILINEAR,
                 max_size: int | None = None, antialias: bool | None = True) -> None:
        if not isinstance(size, int | Sequence) or (isinstance(size, Sequence) and len(size) not in (1, 2)):
            raise TypeError(f"Resize: size should be an int or a sequence of 1 or 2 ints, got {size!r}")
        self.size, self.interpolation, self.max_size, self.antialias = size, interpolation, max_size, antialias

    def __call__(self, img: Any) -> Any:
        return F.resize(img, self.size, self.interpolation, self.max_size, self.antialias)

    def extra_repr(self) -> str:
        return f"size={self.size}, interpolation={self.interpolation.value}, max_size={self.max_size}"


class CenterCrop(_Transform):
    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _size("CenterCrop", size)

    def __call__(self, img: Any) -> Any:
        return F.center_crop(img, self.size)

    def extra_repr(self) -> str:
        return f"size={self.size}"


class Pad(_Transform):
    def __init__(self, padding: int | Sequence[int], fill: float = 0, padding_mode: str = "constant") -> None:
        F._ltrb(padding)  # checked now, not at the first image
        if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
            raise ValueError(f"Pad: padding_mode should be constant, edge, reflect or symmetric, got {padding_mode!r}")
        self.padding, self.fill, self.padding_mode = padding, fill, padding_mode

    def __call__(self, img: Any) -> Any:
        return F.pad(img, self.padding, self.fill, self.padding_mode)


class Grayscale(_Transform):
    def __init__(self, num_output_channels: int = 1) -> None:
        self.num_output_channels = num_output_channels

    def __call__(self, img: Any) -> Any:
        return F.rgb_to_grayscale(img, self.num_output_channels)


class RandomHorizontalFlip(_Transform):
    """Mirror left-right when ``rng.random() < p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, img: Any) -> Any:
        return F.hflip(img) if _rng().random() < self.p else img


class RandomVerticalFlip(_Transform):
    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, img: Any) -> Any:
        return F.vflip(img) if _rng().random() < self.p else img


class RandomCrop(_Transform):
    """Pad (optionally), then crop ``size`` at ``i = rng.integers(0, H - h + 1)``, ``j = rng.integers(0, W - w + 1)``
    (``pad_if_needed`` pads a too-small image up to ``size`` first)."""

    def __init__(self, size: int | Sequence[int], padding: int | Sequence[int] | None = None,
                 pad_if_needed: bool = False, fill: float = 0, padding_mode: str = "constant") -> None:
        self.size = _size("RandomCrop", size)
        self.padding, self.pad_if_needed, self.fill, self.padding_mode = padding, pad_if_needed, fill, padding_mode

    def __call__(self, img: Any) -> Any:
        if self.padding is not None:
            img = F.pad(img, self.padding, self.fill, self.padding_mode)
        _, h, w = F.get_dimensions(img)
        th, tw = self.size
        if self.pad_if_needed and w < tw:
            img = F.pad(img, [tw - w, 0], self.fill, self.padding_mode)
        if self.pad_if_needed and h < th:
            img = F.pad(img, [0, th - h], self.fill, self.padding_mode)
        _, h, w = F.get_dimensions(img)
        if h < th or w < tw:
            raise ValueError(f"RandomCrop: required crop size {(th, tw)} is larger than input image size {(h, w)}")
        g = _rng()
        i, j = int(g.integers(0, h - th + 1)), int(g.integers(0, w - tw + 1))
        return F.crop(img, i, j, th, tw)

    def extra_repr(self) -> str:
        return f"size={self.size}, padding={self.padding}"


class RandomRotation(_Transform):
    """Rotate by an angle drawn uniformly from ``degrees`` ((-d, d) for a number d)."""

    def __init__(self, degrees: float | Sequence[float], interpolation: InterpolationMode = InterpolationMode.NEAREST,
                 expand: bool = False, center: Sequence[int] | None = None, fill: Any = 0) -> None:
        if isinstance(degrees, numbers.Number):
            if degrees < 0:
                raise ValueError("RandomRotation: if degrees is a single number, it must be positive")
            degrees = (-float(degrees), float(degrees))
        elif len(degrees) != 2:
            raise ValueError("RandomRotation: if degrees is a sequence, it must be of len 2")
        self.degrees = (float(degrees[0]), float(degrees[1]))
        self.interpolation, self.expand, self.center, self.fill = interpolation, expand, center, fill

    def __call__(self, img: Any) -> Any:
        angle = float(_rng().uniform(self.degrees[0], self.degrees[1]))
        return F.rotate(img, angle, self.interpolation, self.expand, self.center, self.fill)

    def extra_repr(self) -> str:
        return f"degrees={self.degrees}, interpolation={self.interpolation.value}, expand={self.expand}"


class RandomResizedCrop(_Transform):
    """A random window (area ``scale`` of the image, aspect ``ratio``; torchvision's 10 tries, then the central
    crop) resized to ``size``."""

    def __init__(self, size: int | Sequence[int], scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
                 interpolation: InterpolationMode = InterpolationMode.BILINEAR, antialias: bool | None = True) -> None:
        self.size = _size("RandomResizedCrop", size)
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            raise ValueError(f"RandomResizedCrop: scale and ratio should be of kind (min, max), got {scale}, {ratio}")
        self.scale, self.ratio, self.interpolation, self.antialias = scale, ratio, interpolation, antialias

    def get_params(self, height: int, width: int, g: np.random.Generator) -> tuple[int, int, int, int]:
        area, log_ratio = height * width, (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = area * g.uniform(self.scale[0], self.scale[1])
            aspect = math.exp(g.uniform(log_ratio[0], log_ratio[1]))
            w, h = int(round(math.sqrt(target_area * aspect))), int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return int(g.integers(0, height - h + 1)), int(g.integers(0, width - w + 1)), h, w
        in_ratio = width / height
        if in_ratio < min(self.ratio):
            w, h = width, int(round(width / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            h, w = height, int(round(height * max(self.ratio)))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img: Any) -> Any:
        _, height, width = F.get_dimensions(img)
        i, j, h, w = self.get_params(height, width, _rng())
        return F.resize(F.crop(img, i, j, h, w), list(self.size), self.interpolation, antialias=self.antialias)

    def extra_repr(self) -> str:
        return f"size={self.size}, scale={self.scale}, ratio={self.ratio}"


class RandomApply(_Transform):
    """Apply all of ``transforms`` with probability ``p`` (one draw for the list)."""

    def __init__(self, transforms: Sequence[Callable], p: float = 0.5) -> None:
        self.transforms, self.p = list(transforms), p

    def __call__(self, img: Any) -> Any:
        if _rng().random() >= self.p:
            return img
        for t in self.transforms:
            img = t(img)
        return img


def _jitter_range(name: str, value: float | Sequence[float], center: float = 1.0,
                  bound: tuple[float, float] = (0, float("inf"))) -> tuple[float, float] | None:
    if isinstance(value, numbers.Number):
        if value < 0:
            raise ValueError(f"ColorJitter: if {name} is a single number, it must be non negative, got {value}")
        value = (center - float(value), center + float(value))
        if name != "hue":
            value = (max(value[0], 0.0), value[1])
    elif len(value) != 2:
        raise TypeError(f"ColorJitter: {name} should be a single number or a list/tuple with length 2")
    if not bound[0] <= value[0] <= value[1] <= bound[1]:
        raise ValueError(f"ColorJitter: {name} values should be between {bound}, got {value}")
    return None if value[0] == value[1] == center else (float(value[0]), float(value[1]))


class ColorJitter(_Transform):
    """Random brightness, contrast, saturation and hue, applied in a random order (as torchvision)."""

    def __init__(self, brightness: float | Sequence[float] = 0, contrast: float | Sequence[float] = 0,
                 saturation: float | Sequence[float] = 0, hue: float | Sequence[float] = 0) -> None:
        self.brightness = _jitter_range("brightness", brightness)
        self.contrast = _jitter_range("contrast", contrast)
        self.saturation = _jitter_range("saturation", saturation)
        self.hue = _jitter_range("hue", hue, center=0.0, bound=(-0.5, 0.5))

    def __call__(self, img: Any) -> Any:
        g = _rng()
        ops = [(self.brightness, F.adjust_brightness), (self.contrast, F.adjust_contrast),
               (self.saturation, F.adjust_saturation), (self.hue, F.adjust_hue)]
        for k in g.permutation(4):
            bounds, op = ops[k]
            if bounds is not None:
                img = op(img, float(g.uniform(bounds[0], bounds[1])))
        return img

    def extra_repr(self) -> str:
        return f"brightness={self.brightness}, contrast={self.contrast}, saturation={self.saturation}, hue={self.hue}"


def batch_pipeline(transform: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """``f(raw images stacked) -> batch`` equal to stacking ``transform(image)`` of each image, when ``transform``
    is ToTensor, or a Compose of ToTensor then Normalize steps; else None (the images are transformed one by one)."""
    steps = transform.transforms if isinstance(transform, Compose) else [transform]
    if not steps or type(steps[0]) is not ToTensor or any(type(s) is not Normalize for s in steps[1:]):
        return None

    def run(x: np.ndarray) -> np.ndarray:
        for s in steps:
            x = s.batch(x)
        return x

    return run

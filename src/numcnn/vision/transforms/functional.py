"""torchvision.transforms.functional: the image operations behind the transforms, on PIL images and on Tensors.

A PIL image goes through Pillow as torchvision does it (Pillow is torchvision's own backend for PIL images, so the
pixels are the same). A Tensor (or an ndarray, returned as an ndarray) is ``(..., C, H, W)``; the arithmetic
follows torchvision's tensor code (float32 stays float32; uint8 results are truncated as ``.to(torch.uint8)``).
Resizing and rotating a Tensor go through Pillow channel by channel (mode "F" for floats, "L" for uint8): the
same antialiased filters as torchvision's tensor path up to float rounding, not bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

import numpy as np

from numcnn.autograd.tensor import Tensor

__all__ = [
    "InterpolationMode", "adjust_brightness", "adjust_contrast", "adjust_hue", "adjust_saturation", "center_crop",
    "crop", "get_dimensions", "hflip", "normalize", "pad", "pil_to_tensor", "resize", "rgb_to_grayscale", "rotate",
    "to_grayscale", "to_pil_image", "to_tensor", "vflip",
]


class InterpolationMode(Enum):
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def _pil():
    try:
        from PIL import Image
    except ImportError as err:  # pragma: no cover - the [cli] extra brings it
        raise ImportError("numcnn.vision works on PIL images with Pillow: pip install pillow") from err
    return Image


def _is_pil(img: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return False
    return isinstance(img, Image.Image)


def _resample(mode: InterpolationMode | int):
    Image = _pil()
    if isinstance(mode, int):
        return mode
    names = {InterpolationMode.NEAREST_EXACT: "NEAREST"}
    return getattr(Image.Resampling, names.get(mode, mode.name))


def _unwrap(name: str, img: Any) -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    """(array (..., C, H, W), how to give the result back the input's type)."""
    if isinstance(img, Tensor):
        arr, wrap = img.numpy(), Tensor
    elif isinstance(img, np.ndarray):
        arr, wrap = img, (lambda a: a)
    else:
        raise TypeError(f"{name}: img should be a PIL Image or a Tensor, got {type(img).__name__}")
    if arr.ndim < 2:
        raise ValueError(f"{name}: expected a tensor (..., C, H, W) or (H, W), got shape {arr.shape}")
    return arr, wrap


def get_dimensions(img: Any) -> list[int]:
    """``[channels, height, width]``."""
    if _is_pil(img):
        return [len(img.getbands()), img.height, img.width]
    arr, _ = _unwrap("get_dimensions", img)
    return [1 if arr.ndim == 2 else arr.shape[-3], arr.shape[-2], arr.shape[-1]]


# -- conversion --------------------------------------------------------------------------------------------------


def to_tensor(pic: Any) -> Tensor:
    """PIL image or ndarray (H, W[, C]) -> Tensor (C, H, W); uint8 -> float32 divided by 255, others kept."""
    if _is_pil(pic):
        nptype = {"I": np.int32, "I;16": np.int16, "F": np.float32}.get(pic.mode, np.uint8)
        arr = np.array(pic, dtype=nptype, copy=True)
        if pic.mode == "1":
            arr = 255 * arr
        arr = arr.reshape(pic.height, pic.width, len(pic.getbands()))
    elif isinstance(pic, np.ndarray):
        if pic.ndim not in (2, 3):
            raise ValueError(f"to_tensor: pic should be 2 or 3 dimensional, got {pic.ndim} dimensions")
        arr = pic[:, :, None] if pic.ndim == 2 else pic
    else:
        raise TypeError(f"to_tensor: pic should be a PIL Image or ndarray, got {type(pic).__name__}")
    chw = np.ascontiguousarray(arr.transpose(2, 0, 1))
    if chw.dtype == np.uint8:
        chw = np.divide(chw, np.float32(255), dtype=np.float32)
    return Tensor(chw)


def pil_to_tensor(pic: Any) -> Tensor:
    """PIL image -> Tensor (C, H, W) of its own dtype (uint8 for "L"/"RGB"), not scaled."""
    if not _is_pil(pic):
        raise TypeError(f"pil_to_tensor: pic should be a PIL Image, got {type(pic).__name__}")
    arr = np.array(pic, copy=True)
    arr = arr.reshape(pic.height, pic.width, len(pic.getbands()))
    return Tensor(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def to_pil_image(pic: Any, mode: str | None = None):
    """Tensor (C, H, W) or ndarray (H, W, C) -> PIL image; float tensors are multiplied by 255 and truncated."""
    Image = _pil()
    if isinstance(pic, Tensor):
        arr = pic.numpy()
        arr = arr[None] if arr.ndim == 2 else arr
        if arr.dtype.kind == "f" and mode != "F":
            arr = (arr * np.float32(255)).astype(np.uint8)
        arr = arr.transpose(1, 2, 0)
    elif isinstance(pic, np.ndarray):
        arr = pic[:, :, None] if pic.ndim == 2 else pic
    else:
        raise TypeError(f"to_pil_image: pic should be a Tensor or ndarray, got {type(pic).__name__}")
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"to_pil_image: expected 1 to 4 channels, got shape {arr.shape}")
    if arr.shape[2] == 1:
        arr = arr[:, :, 0]
        mode = mode or {np.dtype(np.uint8): "L", np.dtype(np.int16): "I;16", np.dtype(np.int32): "I",
                        np.dtype(np.float32): "F"}.get(arr.dtype)
    else:
        mode = mode or {2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
    if mode is None:
        raise TypeError(f"to_pil_image: input type {arr.dtype} is not supported")
    return Image.fromarray(np.ascontiguousarray(arr), mode=mode)


def normalize(tensor: Any, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> Any:
    """``(tensor - mean[c]) / std[c]`` in the tensor's float dtype (torchvision's normalize)."""
    arr, wrap = _unwrap("normalize", tensor)
    if arr.dtype.kind != "f":
        raise TypeError(f"normalize: input tensor should be a float tensor, got {arr.dtype} (apply ToTensor first)")
    mean = np.asarray(mean, dtype=arr.dtype).reshape(-1, 1, 1)
    std = np.asarray(std, dtype=arr.dtype).reshape(-1, 1, 1)
    if np.any(std == 0):
        raise ValueError(f"normalize: std evaluated to zero after conversion to {arr.dtype}, leading to division by "
                         f"zero")
    out = np.subtract(arr, mean, out=arr if inplace else None)
    return wrap(np.divide(out, std, out=out))


# -- geometry -----------------------------------------------------------------------------------------------------


def resized_size(height: int, width: int, size: int | Sequence[int], max_size: int | None = None) -> tuple[int, int]:
    """The (height, width) torchvision's resize produces: an int (or [int]) is the shorter side's new length."""
    if isinstance(size, int | np.integer) or len(size) == 1:
        requested = int(size if isinstance(size, int | np.integer) else size[0])
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = requested, int(requested * long / short)
        if max_size is not None:
            if max_size <= requested:
                raise ValueError(f"resize: max_size = {max_size} must be strictly greater than the requested size "
                                 f"for the smaller edge size = {size}")
            if new_long > max_size:
                new_short, new_long = int(max_size * new_short / new_long), max_size
        return (new_long, new_short) if width <= height else (new_short, new_long)
    if max_size is not None:
        raise ValueError("resize: max_size should only be passed if size specifies the length of the smaller edge")
    return int(size[0]), int(size[1])


def _per_channel(arr: np.ndarray, op: Callable) -> np.ndarray:
    """Apply a Pillow operation ``op(image) -> image`` to every (H, W) plane of ``arr`` (..., H, W)."""
    Image = _pil()
    planes = arr.reshape(-1, *arr.shape[-2:])
    uint8 = arr.dtype == np.uint8
    out = [np.asarray(op(Image.fromarray(p if uint8 else p.astype(np.float32), mode="L" if uint8 else "F")))
           for p in planes]
    stacked = np.stack(out).astype(arr.dtype if uint8 or arr.dtype.kind == "f" else np.float32, copy=False)
    return stacked.reshape(*arr.shape[:-2], *stacked.shape[-2:])


def resize(img: Any, size: int | Sequence[int], interpolation: InterpolationMode = InterpolationMode.BILINEAR,
           max_size: int | None = None, antialias: bool | None = True) -> Any:
    """Resize to ``size`` ((h, w), or the shorter side's length, see resized_size)."""
    h, w = get_dimensions(img)[1:]
    new_h, new_w = resized_size(h, w, size, max_size)
    if (new_h, new_w) == (h, w):
        return img
    resample = _resample(interpolation)
    if _is_pil(img):
        return img.resize((new_w, new_h), resample)
    arr, wrap = _unwrap("resize", img)
    return wrap(_per_channel(arr, lambda p: p.resize((new_w, new_h), resample)))


def crop(img: Any, top: int, left: int, height: int, width: int) -> Any:
    """The ``height`` x ``width`` window at (top, left); outside the image is 0 (as torchvision)."""
    if _is_pil(img):
        return img.crop((left, top, left + width, top + height))
    arr, wrap = _unwrap("crop", img)
    h, w = arr.shape[-2:]
    pads = [max(0, -top), max(0, top + height - h), max(0, -left), max(0, left + width - w)]
    if any(pads):
        arr = np.pad(arr, [(0, 0)] * (arr.ndim - 2) + [(pads[0], pads[1]), (pads[2], pads[3])])
        top, left = top + pads[0], left + pads[2]
    return wrap(np.ascontiguousarray(arr[..., top:top + height, left:left + width]))


def center_crop(img: Any, output_size: int | Sequence[int]) -> Any:
    """The centred ``output_size`` window; offsets ``round((H - h) / 2)`` (Python's round, as torchvision),
    padding with 0 first when the window is larger than the image."""
    th, tw = (output_size, output_size) if isinstance(output_size, int) else (
        (output_size[0], output_size[0]) if len(output_size) == 1 else tuple(output_size))
    _, h, w = get_dimensions(img)
    if th > h or tw > w:
        ltrb = [(tw - w) // 2 if tw > w else 0, (th - h) // 2 if th > h else 0,
                (tw - w + 1) // 2 if tw > w else 0, (th - h + 1) // 2 if th > h else 0]
        img = pad(img, ltrb, fill=0)
        _, h, w = get_dimensions(img)
        if (th, tw) == (h, w):
            return img
    return crop(img, int(round((h - th) / 2.0)), int(round((w - tw) / 2.0)), th, tw)


def _ltrb(padding: int | Sequence[int]) -> tuple[int, int, int, int]:
    p = [padding] if isinstance(padding, int | np.integer) else list(padding)
    if len(p) not in (1, 2, 4):
        raise ValueError(f"pad: padding must be an int or a 1, 2 or 4 element sequence, got {padding!r}")
    p = p * 4 if len(p) == 1 else [p[0], p[1], p[0], p[1]] if len(p) == 2 else p
    return int(p[0]), int(p[1]), int(p[2]), int(p[3])


def pad(img: Any, padding: int | Sequence[int], fill: float = 0, padding_mode: str = "constant") -> Any:
    """Pad by ``padding`` (int, (left/right, top/bottom) or (left, top, right, bottom)); modes constant, edge,
    reflect (edge not repeated), symmetric (edge repeated)."""
    if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
        raise ValueError(f"pad: padding_mode should be constant, edge, reflect or symmetric, got {padding_mode!r}")
    left, top, right, bottom = _ltrb(padding)
    if _is_pil(img):
        Image = _pil()
        arr = np.asarray(img)
        widths = [(top, bottom), (left, right)] + [(0, 0)] * (arr.ndim - 2)
        kw = {"constant_values": fill} if padding_mode == "constant" else {}
        out = Image.fromarray(np.pad(arr, widths, mode=padding_mode, **kw), mode=img.mode)
        if img.mode == "P":
            out.putpalette(img.getpalette())
        return out
    arr, wrap = _unwrap("pad", img)
    widths = [(0, 0)] * (arr.ndim - 2) + [(top, bottom), (left, right)]
    kw = {"constant_values": fill} if padding_mode == "constant" else {}
    return wrap(np.pad(arr, widths, mode=padding_mode, **kw))


def hflip(img: Any) -> Any:
    if _is_pil(img):
        return img.transpose(_pil().Transpose.FLIP_LEFT_RIGHT)
    arr, wrap = _unwrap("hflip", img)
    return wrap(np.ascontiguousarray(arr[..., ::-1]))


def vflip(img: Any) -> Any:
    if _is_pil(img):
        return img.transpose(_pil().Transpose.FLIP_TOP_BOTTOM)
    arr, wrap = _unwrap("vflip", img)
    return wrap(np.ascontiguousarray(arr[..., ::-1, :]))


def _fill_for(img: Any, fill: Any) -> Any:
    bands = len(img.getbands())
    if isinstance(fill, int | float) and bands > 1:
        return tuple([int(fill) if img.mode != "F" else fill] * bands)
    return fill


def rotate(img: Any, angle: float, interpolation: InterpolationMode = InterpolationMode.NEAREST, expand: bool = False,
           center: Sequence[int] | None = None, fill: Any = None) -> Any:
    """Rotate by ``angle`` degrees counter-clockwise (Pillow's rotate, as torchvision does for PIL images)."""
    resample = _resample(interpolation)
    center = None if center is None else tuple(center)
    if _is_pil(img):
        return img.rotate(angle, resample, expand, center, fillcolor=_fill_for(img, 0 if fill is None else fill))
    arr, wrap = _unwrap("rotate", img)
    value = 0 if fill is None else fill
    return wrap(_per_channel(arr, lambda p: p.rotate(angle, resample, expand, center, fillcolor=value)))


# -- colour -------------------------------------------------------------------------------------------------------


def rgb_to_grayscale(img: Any, num_output_channels: int = 1) -> Any:
    """PIL: ``convert("L")`` (ITU-R 601-2 luma); Tensor: ``0.2989 r + 0.587 g + 0.114 b`` in float, cast back."""
    if num_output_channels not in (1, 3):
        raise ValueError(f"rgb_to_grayscale: num_output_channels should be either 1 or 3, got {num_output_channels}")
    if _is_pil(img):
        Image = _pil()
        gray = img.convert("L")
        if num_output_channels == 3:
            return Image.fromarray(np.dstack([np.asarray(gray)] * 3), "RGB")
        return gray
    arr, wrap = _unwrap("rgb_to_grayscale", img)
    if arr.shape[-3] == 3:
        dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float32)
        r, g, b = (arr[..., c, :, :].astype(dtype, copy=False) for c in range(3))
        gray = dtype.type(0.2989) * r + dtype.type(0.587) * g + dtype.type(0.114) * b
        gray = gray.astype(arr.dtype)[..., None, :, :]
    elif arr.shape[-3] == 1:
        gray = arr.copy()
    else:
        raise TypeError(f"rgb_to_grayscale: input image tensor should have 1 or 3 channels, got {arr.shape[-3]}")
    shape = (*arr.shape[:-3], num_output_channels, *arr.shape[-2:])
    return wrap(np.ascontiguousarray(np.broadcast_to(gray, shape)))


to_grayscale = rgb_to_grayscale


def _blend(a: np.ndarray, b: np.ndarray | float, ratio: float) -> np.ndarray:
    """torchvision's ``(ratio * a + (1.0 - ratio) * b).clamp(0, max).to(a.dtype)``: float32 arithmetic for uint8."""
    dtype = a.dtype if a.dtype.kind == "f" else np.dtype(np.float32)
    bound = 1.0 if a.dtype.kind == "f" else 255.0
    out = dtype.type(ratio) * a.astype(dtype, copy=False) + dtype.type(1.0 - ratio) * np.asarray(b, dtype=dtype)
    return np.clip(out, dtype.type(0), dtype.type(bound)).astype(a.dtype)


def _enhance(img: Any, name: str, factor: float, tensor_op: Callable) -> Any:
    if factor < 0:
        raise ValueError(f"adjust_{name}: factor ({factor}) is not non-negative")
    if _is_pil(img):
        from PIL import ImageEnhance

        cls = {"brightness": ImageEnhance.Brightness, "contrast": ImageEnhance.Contrast,
               "saturation": ImageEnhance.Color}[name]
        return cls(img).enhance(factor)
    arr, wrap = _unwrap(f"adjust_{name}", img)
    return wrap(tensor_op(arr, float(factor)))


def adjust_brightness(img: Any, brightness_factor: float) -> Any:
    """PIL: ImageEnhance.Brightness; Tensor: ``clamp(factor * img, 0, max)``."""
    return _enhance(img, "brightness", brightness_factor, lambda a, f: _blend(a, 0.0, f))


def _gray_mean(a: np.ndarray) -> np.ndarray:
    dtype = a.dtype if a.dtype.kind == "f" else np.float32
    gray = rgb_to_grayscale(a) if a.shape[-3] == 3 else a
    return np.mean(gray.astype(dtype), axis=(-3, -2, -1), keepdims=True, dtype=dtype)


def adjust_contrast(img: Any, contrast_factor: float) -> Any:
    """PIL: ImageEnhance.Contrast; Tensor: blend with the mean of the grayscale image."""
    return _enhance(img, "contrast", contrast_factor, lambda a, f: _blend(a, _gray_mean(a), f))


def adjust_saturation(img: Any, saturation_factor: float) -> Any:
    """PIL: ImageEnhance.Color; Tensor: blend with the grayscale image (1 channel: unchanged)."""
    return _enhance(img, "saturation", saturation_factor,
                    lambda a, f: a if a.shape[-3] == 1 else _blend(a, rgb_to_grayscale(a), f))


def adjust_hue(img: Any, hue_factor: float) -> Any:
    """Shift the hue by ``hue_factor`` in [-0.5, 0.5] of a turn (PIL images: torchvision's HSV round trip)."""
    if not -0.5 <= hue_factor <= 0.5:
        raise ValueError(f"adjust_hue: hue_factor ({hue_factor}) is not in [-0.5, 0.5]")
    if not _is_pil(img):
        raise TypeError("adjust_hue: numcnn shifts the hue of PIL images only (apply ColorJitter before ToTensor)")
    Image = _pil()
    if img.mode in {"L", "1", "I", "F"}:
        return img
    h, s, v = img.convert("HSV").split()
    np_h = np.array(h, dtype=np.uint8)
    np_h += np.int32(hue_factor * 255).astype(np.uint8)  # uint8 arithmetic: the hue wraps around
    return Image.merge("HSV", (Image.fromarray(np_h, "L"), s, v)).convert(img.mode)

"""An uploaded picture, prepared exactly as ``numcnn predict`` prepares photos (numcnn.data.photo.load_photo), with
one line per step for the page to show.

Bounded before anything is decoded: at most MAX_UPLOAD_BYTES of file, at most MAX_PIXELS pixels (read from the
header, so a decompression bomb -- a small file that decodes to gigabytes -- is refused unopened).
"""

from __future__ import annotations

import io

import numpy as np

from ..data import ToTensor
from ..data.photo import load_photo
from .arrays import pack
from .errors import ExploreError

MAX_UPLOAD_BYTES = 10 * 2**20
MAX_PIXELS = 40_000_000  # a 48-megapixel phone photo is refused, a 12-megapixel one (4032 x 3024) is not
INVERT = {"auto": None, "yes": True, "no": False}
FITS = ("dataset", "stretch")


def _header(data: bytes) -> tuple[str, str, tuple[int, int], bool]:
    """(format, mode, (width, height), transparent) read from the image's header; 413 or 415 when refused."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt, mode, size = im.format or "image", im.mode, im.size
            transparent = mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info)
    except Image.DecompressionBombError:
        raise ExploreError("the image has too many pixels (a decompression bomb?)", 413) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ExploreError("the file is not an image Pillow can read (PNG, JPEG, GIF, BMP, WebP, ...)", 415) from None
    if size[0] * size[1] > MAX_PIXELS:
        raise ExploreError(f"the image is {size[0]} x {size[1]} pixels; at most {MAX_PIXELS:,} pixels are read", 413)
    return fmt, mode, size, transparent


def _fit_step(fit: str, shape: tuple[int, int]) -> str:
    h, w = shape
    if fit == "stretch":
        return f"resized to {w}x{h} (Lanczos), ignoring the aspect ratio"
    if fit == "mnist":
        return (f"trimmed the uniform border, scaled the object so that its longer side is {round(h * 20 / 28)} px "
                f"(aspect kept), placed its centre of mass at the centre of {w}x{h} (as MNIST was made)")
    return (f"trimmed the uniform border, scaled the object so that its longer side fits {w}x{h} (aspect kept), "
            "centred and padded with the background (as Fashion-MNIST was made)")


def prepare_upload(data: bytes, config: dict, invert: str = "auto", fit: str = "dataset") -> dict:
    """``{"pixels", "steps", "inverted"}`` for an uploaded file's bytes and a run config; ``invert`` "auto" (when
    the border is bright), "yes" or "no"; ``fit`` "dataset" (as the run's dataset was made) or "stretch"."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise ExploreError(f"the file is {len(data):,} bytes; at most {MAX_UPLOAD_BYTES:,} are read", 413)
    if invert not in INVERT:
        raise ExploreError(f"invert must be one of {', '.join(INVERT)}, got {invert!r}")
    if fit not in FITS:
        raise ExploreError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    channels, h, w = config["dataset"]["image_shape"]
    if channels != 1:
        raise ExploreError(f"uploads are read as gray images; this run's model takes {channels}-channel images")
    fmt, mode, size, transparent = _header(data)
    fit = "stretch" if fit == "stretch" else ("mnist" if config["dataset"].get("name") == "mnist" else "fashion-mnist")
    try:
        gray, inverted = load_photo(io.BytesIO(data), (h, w), invert=INVERT[invert], fit=fit)
    except (OSError, ValueError) as e:
        raise ExploreError(f"cannot read the image: {' '.join(str(e).split())}", 415) from None
    steps = [f"read a {fmt} image of {size[0]}x{size[1]} pixels (mode {mode})"]
    if transparent:
        steps.append("transparent pixels count as white paper")
    steps.append("converted to gray (ITU-R 601 luma)" if mode != "L" else "already gray")
    steps.append(_fit_step(fit, (h, w)))
    why = {"auto": "the border is bright: dark on light" if inverted else "the border is dark: light on dark already",
           "yes": "asked for", "no": "asked for"}[invert]
    steps.append(f"{'inverted' if inverted else 'not inverted'} ({why}; the dataset is light on dark)")
    norm = config["normalization"]
    steps.append("scaled to [0, 1] (x / 255); the model then gets (x - mean) / std with the run's mean "
                 f"{', '.join(f'{m:.4f}' for m in norm['mean'])} and std {', '.join(f'{s:.4f}' for s in norm['std'])}")
    pixels = ToTensor()(gray[None])
    return {"pixels": pack(pixels.astype(np.float32)), "steps": steps, "inverted": bool(inverted)}

"""``numcnn explore RUN --export DIR``: the page as a static site, precomputed for a few test images.

DIR gets ``index.html`` and ``static/`` (the page's files, as the live app serves them), ``data/<key>.js`` files
(each calls ``window.numcnnStatic(key, answer)`` with the answer the live server gives for that key; a ``/`` in the
key is a ``-`` in the file name) and the marker ``.numcnn-explore``. The keys: ``run`` (``"mode": "static"``, and
``"static_images"``: the exported test indices), ``metrics``, ``examples`` (all exported images), ``forward/<i>``,
``saliency/<i>/<class>`` for every class, and ``explain/<i>`` (see Explorer.arithmetic).

DIR must be new, empty, or an earlier export (it holds the marker): a folder with anything else is refused and
nothing in it is touched. Files are written atomically; nothing is ever deleted.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .._io import atomic_write
from .._schema import clean_json
from .._version import __version__
from .errors import ExploreError
from .explorer import Explorer

MARKER = ".numcnn-explore"
FORMAT = "numcnn-explore-site/1"
STATIC = Path(__file__).resolve().parent / "static"


def _is_export(folder: Path) -> bool:
    try:
        return json.loads((folder / MARKER).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError, RecursionError):
        return False


def check_folder(out: Path) -> None:
    """Refuse a path that is a file, or a non-empty folder not written by an earlier export."""
    if out.exists() and not out.is_dir():
        raise ExploreError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not _is_export(out):
        raise ExploreError(f"{out} is not empty and was not written by 'numcnn explore --export': choose a new or "
                           "empty folder (nothing in it was changed)")


def choose_images(labels: np.ndarray, preds: np.ndarray, n: int) -> list[int]:
    """``n`` test indices: up to a quarter misclassified ones, then the first of each class, the second of each
    class, ... (so that every class shows), ascending."""
    chosen = {int(i) for i in np.flatnonzero(preds != labels)[: n // 4]}
    by_class = [np.flatnonzero(labels == k) for k in range(int(labels.max()) + 1 if labels.size else 0)]
    depth = 0
    while len(chosen) < min(n, len(labels)):
        for idx in by_class:
            if depth < len(idx) and len(chosen) < n:
                chosen.add(int(idx[depth]))
        depth += 1
    return sorted(chosen)


def _script(key: str, answer) -> bytes:
    text = json.dumps(clean_json(answer), separators=(",", ":"), allow_nan=False)
    return f"window.numcnnStatic({json.dumps(key)}, {text});\n".encode()


def data_file(key: str) -> str:
    """The file (relative to the site) holding the answer for ``key``."""
    return f"data/{key.replace('/', '-')}.js"


def _copy_static(static: Path, out: Path) -> list[str]:
    if not (static / "index.html").is_file():
        raise ExploreError(f"the page's files are missing from this numcnn installation ({static / 'index.html'})")
    written = []
    for path in sorted(static.rglob("*")):
        if path.is_file() and not path.is_symlink() and "__pycache__" not in path.parts:
            rel = path.relative_to(static).as_posix()
            atomic_write(out / "static" / rel, path.read_bytes())
            written.append(f"static/{rel}")
    atomic_write(out / "index.html", (static / "index.html").read_bytes())
    return ["index.html", *written]


def export_site(source, out_dir, images: int = 20, data_dir=None, static_dir=None) -> list[str]:
    """Write the static site of ``source`` (a run folder, checkpoint, .safetensors, or an Explorer) into
    ``out_dir`` for ``images`` test images; returns the files written (relative paths)."""
    out = Path(out_dir)
    check_folder(out)
    if not isinstance(images, int) or isinstance(images, bool) or images < 1:
        raise ExploreError(f"images must be a positive integer, got {images!r}")
    explorer = source if isinstance(source, Explorer) else Explorer.open(source, data_dir)
    if explorer.test is None:
        raise ExploreError(f"the static site shows test images, and there are none: {explorer.test_error}")
    norm = explorer.config["normalization"]
    preds = explorer.test.predictions(explorer.model, norm)
    chosen = choose_images(explorer.test.labels, preds, images)
    atomic_write(out / MARKER, (json.dumps({"format": FORMAT, "numcnn_version": __version__,
                                            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n").encode())
    written = _copy_static(Path(static_dir) if static_dir is not None else STATIC, out)
    answers = {"run": {**explorer.info(mode="static"), "static_images": chosen}, "metrics": explorer.metrics(),
               "examples": {"total": len(chosen), "items": [explorer.example(i, preds) for i in chosen]}}
    for key, answer in answers.items():
        written.append(_write(out, key, answer))
    for i in chosen:
        written.append(_write(out, f"forward/{i}", explorer.forward({"input": {"test": i}})))
        written.append(_write(out, f"explain/{i}", explorer.arithmetic(i)))
        for k in range(len(explorer.classes)):
            written.append(_write(out, f"saliency/{i}/{k}", explorer.saliency({"input": {"test": i}, "class": k})))
    return written


def _write(out: Path, key: str, answer) -> str:
    rel = data_file(key)
    atomic_write(out / rel, _script(key, answer))
    return rel

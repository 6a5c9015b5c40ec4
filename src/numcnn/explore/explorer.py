"""The explorer: one trained model and its test images, answering the page's questions (docs/explore-api.md).

:class:`Explorer` holds no per-request state: every answer recomputes the forward pass for the image the request
names (an *input spec*: ``{"test": i}`` or ``{"pixels": packed float32 (C, H, W) in [0, 1]}``), recording the layers
with the forward hooks of :mod:`numcnn.explore.recorder`, so that several browser tabs can ask at once. The model's
parameters are set not to require gradients (explore never trains; saliency needs the input's gradient only).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..autograd import Tensor, no_grad
from ..nn import functional as F
from .arrays import pack, unpack
from .errors import ExploreError
from .explain import TOLERANCE, batchnorm_statistics, explain_pixel, geometry
from .loading import check_config, load_run, load_test_set
from .recorder import Recorder
from .saliency import saliency_maps
from .testset import TestSet, page_of


class Explorer:
    """``Explorer(model, config, ...)``: ``model`` a numcnn Module (put in eval mode, its parameters set not to
    require gradients), ``config`` a run config (config.json: model, dataset classes and image shape,
    normalization); ``dataset`` the test split (anything with ``arrays`` = (uint8 images, labels)) or None, with
    ``test_error`` saying why. :meth:`open` reads all of it from a run folder."""

    def __init__(self, model, config: dict, *, source: str = "", run_folder=None, dataset=None,
                 test_error: str | None = None, name: str | None = None):
        self.config = check_config(config, "config")
        self.model = model
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self.recorder = Recorder(model)
        ds, norm = config["dataset"], config["normalization"]
        self.classes, self.image_shape = list(ds["classes"]), tuple(ds["image_shape"])
        channels = self.image_shape[0]
        self.mean = np.broadcast_to(np.asarray(norm["mean"], np.float32), (channels,)).reshape(-1, 1, 1).copy()
        self.std = np.broadcast_to(np.asarray(norm["std"], np.float32), (channels,)).reshape(-1, 1, 1).copy()
        self.source, self.run_folder = source, Path(run_folder) if run_folder is not None else None
        self.name = name or (self.run_folder.name if self.run_folder is not None else Path(source).stem)
        self.test = TestSet(dataset, self.classes) if dataset is not None else None
        self.test_error = None if dataset is not None else (test_error or "no test images were given")
        self.layers = self._probe()

    @classmethod
    def open(cls, path, data_dir=None) -> Explorer:
        """The explorer of a run folder, a checkpoint folder or a run's .safetensors; ``data_dir``: where the test
        images are (default: where the run was trained from)."""
        run = load_run(path)
        dataset, why = load_test_set(run.config, data_dir)
        return cls(run.model, run.config, source=run.source, run_folder=run.run_folder, dataset=dataset,
                   test_error=why)

    # -- running the model -----------------------------------------------------------------------------------

    def _run(self, pixels: np.ndarray, inputs_of=()):
        """(record, logits (classes,)) of one image ``pixels`` (C, H, W) in [0, 1]."""
        image = Tensor(((pixels - self.mean) / self.std)[None])
        with no_grad(), self.recorder.record(image, inputs_of) as rec:
            out = self.model(image)
        return rec, out

    def _probe(self) -> list[dict]:
        """The layer list, from one forward pass of a blank image; the model must give one score per class."""
        try:
            rec, out = self._run(np.zeros(self.image_shape, dtype=np.float32))
        except (ValueError, TypeError, IndexError) as e:
            raise ExploreError(f"{self.source}: the model cannot run on the run's {self.image_shape} images: "
                               f"{' '.join(str(e).split())}") from None
        if tuple(out.shape) != (1, len(self.classes)):
            raise ExploreError(f"{self.source}: the model gives an output of shape {tuple(out.shape)[1:]} per "
                               f"image, but the run names {len(self.classes)} classes")
        return [c.describe() for c in rec.calls]

    def _layer(self, name) -> dict:
        if not isinstance(name, str):
            raise ExploreError(f"layer must be a layer's name (a string), got {json.dumps(name)[:40]}")
        layer = next((d for d in self.layers if d["name"] == name), None)
        if layer is None:
            shown = ", ".join(d["name"] for d in self.layers[:8]) + (", ..." if len(self.layers) > 8 else "")
            raise ExploreError(f"no layer named {name!r} (the layers are {shown})", 404)
        return layer

    def input_of(self, spec) -> tuple[np.ndarray, int | None]:
        """``(pixels float32 (C, H, W) in [0, 1], label or None)`` of an input spec."""
        if not isinstance(spec, dict) or len(spec) != 1 or not set(spec) <= {"test", "pixels"}:
            got = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
            raise ExploreError(f"input must be {{\"test\": index}} or {{\"pixels\": packed float32 array}}, got {got}")
        if "test" in spec:
            if self.test is None:
                raise ExploreError(f"no test images: {self.test_error}", 404)
            i = _index(spec, "test", len(self.test), "input.test")
            return self.test.pixels(i), int(self.test.labels[i])
        pixels = unpack(spec["pixels"], "input.pixels")
        if pixels.dtype != np.float32 or pixels.shape != self.image_shape:
            raise ExploreError(f"input.pixels: expected float32 of shape {list(self.image_shape)}, got "
                               f"{pixels.dtype} of shape {list(pixels.shape)}")
        if not np.isfinite(pixels).all() or pixels.min() < 0 or pixels.max() > 1:
            raise ExploreError("input.pixels: values must be finite and in [0, 1]")
        return pixels, None

    # -- the answers -----------------------------------------------------------------------------------------

    def info(self, mode: str = "live") -> dict:
        """GET /api/run."""
        answer = {"mode": mode, "run": self.name, "source": self.source, "model": self.config["model"]["name"],
                  "classes": self.classes, "image_shape": list(self.image_shape),
                  "normalization": {"mean": self.mean.ravel().tolist(), "std": self.std.ravel().tolist()},
                  "layers": self.layers, "test_images": len(self.test) if self.test is not None else 0}
        if self.test is None:
            answer["test_error"] = self.test_error
        return answer

    def metrics(self) -> dict:
        """GET /api/metrics: the run's metrics.json records and the test set's confusion matrix."""
        records, test = [], None
        path = self.run_folder / "metrics.json" if self.run_folder is not None else None
        if path is not None and path.is_file():
            try:
                saved = json.loads(path.read_text())
                records, test = list(saved.get("epochs", [])), saved.get("test")
            except (OSError, ValueError, AttributeError, TypeError, RecursionError):
                records, test = [], None
        confusion = self.test.confusion(self.model, self.config["normalization"]) if self.test is not None else None
        return {"epochs": records, "test": test, "confusion": confusion}

    def examples(self, query: dict) -> dict:
        """GET /api/examples: test images by label, misclassified, or one confusion cell; paged."""
        if self.test is None:
            raise ExploreError(f"no test images: {self.test_error}", 404)
        chosen = self.test.select(query, self.model, self.config["normalization"])
        offset, limit = page_of(query, len(chosen))
        preds = self.test.predictions(self.model, self.config["normalization"])
        return {"total": len(chosen), "items": [self.example(int(i), preds) for i in chosen[offset:offset + limit]]}

    def example(self, i: int, preds: np.ndarray) -> dict:
        return {"index": i, "label": int(self.test.labels[i]), "pred": int(preds[i]),
                "image": pack(self.test.images[i])}

    def forward(self, body: dict) -> dict:
        """POST /api/forward: every layer's output for the image, and the class probabilities."""
        pixels, label = self.input_of(_field(body, "input"))
        rec, out = self._run(pixels)
        probabilities = F.softmax(out, dim=1).array[0]
        layers = [{"name": c.name, "type": c.type, "shape": list(c.output.shape),
                   "min": float(c.output.min()) if c.output.size else 0.0,
                   "max": float(c.output.max()) if c.output.size else 0.0, "data": pack(c.output)}
                  for c in rec.calls]
        return {"input": pack(pixels), "label": label, "probabilities": probabilities.tolist(),
                "predicted": int(np.argmax(probabilities)), "layers": layers}

    def explain(self, body: dict) -> dict:
        """POST /api/explain: one output pixel of a convolution, pooling or batch-norm layer, recomputed."""
        pixels, _ = self.input_of(_field(body, "input"))
        name = _field(body, "layer")
        layer = self._layer(name)
        if layer["explain"] is None:
            raise ExploreError(f"layer {name!r} ({layer['type']}) has no pixel explanation: only convolution, "
                               "pooling and batch-norm layers with 2-D maps have one")
        c_, h, w = layer["shape"]
        c, y, x = (_index(body, "channel", c_), _index(body, "y", h), _index(body, "x", w))
        rec, _ = self._run(pixels, inputs_of={name})
        call = rec.get(name)
        answer = explain_pixel(call.module, call.input, call.output, c, y, x)
        return {"layer": name, "type": layer["type"], **answer}

    def saliency(self, body: dict) -> dict:
        """POST /api/saliency: saliency map and Grad-CAM of one class score."""
        pixels, _ = self.input_of(_field(body, "input"))
        k = _index(body, "class", len(self.classes))
        maps = saliency_maps(self.model, self.recorder, pixels, self.mean, self.std, k)
        return {"class": k, "saliency": pack(maps["saliency"]),
                "gradcam": pack(maps["gradcam"]) if maps["gradcam"] is not None else None,
                "gradcam_layer": maps["gradcam_layer"]}

    def arithmetic(self, i: int) -> dict:
        """What the static page needs to explain any pixel of test image ``i`` itself: for each explainable layer,
        its input for that image, its geometry and its weights (convolution) or statistics (batch norm)."""
        names = {d["name"] for d in self.layers if d["explain"]}
        rec, _ = self._run(self.test.pixels(i), inputs_of=names)
        layers = {}
        for call in rec.calls:
            if call.name not in names:
                continue
            entry = {"kind": call.explain, "type": call.type, **geometry(call.module), "input": pack(call.input)}
            if call.explain == "conv":
                bias = call.module.bias
                entry.update(weight=pack(call.module.weight.array), bias=pack(bias.array) if bias is not None else None)
            elif call.explain == "batchnorm":
                entry.update(batchnorm_statistics(call.module, call.input))
            layers[call.name] = entry
        return {"index": i, "tolerance": TOLERANCE, "layers": layers}


def _field(body, key: str):
    if not isinstance(body, dict):
        raise ExploreError(f"the request body must be a JSON object, got {type(body).__name__}")
    if key not in body:
        raise ExploreError(f"the request has no {key!r} field")
    return body[key]


def _index(body: dict, key: str, n: int, what: str | None = None) -> int:
    """``body[key]`` as an int in [0, n); ExploreError (400) naming ``what`` otherwise."""
    value, what = _field(body, key), what or key
    if not isinstance(value, int) or isinstance(value, bool):
        raise ExploreError(f"{what} must be an integer, got {json.dumps(value)[:40]}")
    if not 0 <= value < n:
        raise ExploreError(f"{what} must be between 0 and {n - 1}, got {value}")
    return value

"""The run's test images: as model inputs, their predictions and confusion matrix (computed once, on first use,
then shared by every request), and the filtered lists the page browses (by label, misclassified, one cell).
"""

from __future__ import annotations

import threading

import numpy as np

from ..autograd import Tensor, no_grad
from ..data import Normalize, ToTensor
from .errors import ExploreError

CHUNK = 200  # images per forward pass while predicting the whole test set (the batch size of numcnn evaluate)
MAX_LIMIT = 500  # most images one /api/examples answer holds


class TestSet:
    """The test split of a run's dataset: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,)."""

    __test__ = False  # not a pytest test class

    def __init__(self, dataset, classes: list[str]):
        x, y = dataset.arrays
        self.images = x[:, None] if x.ndim == 3 else x
        self.labels = np.asarray(y, dtype=np.int64)
        self.classes = classes
        self._lock = threading.Lock()
        self._predictions: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def pixels(self, i: int) -> np.ndarray:
        """Image ``i`` as float32 (C, H, W) in [0, 1] (x / 255, as ToTensor)."""
        return ToTensor()(self.images[i])

    def predictions(self, model, normalization: dict) -> np.ndarray:
        """The model's predicted class for every test image (computed by the first caller, under a lock; the
        others wait for it and share it)."""
        with self._lock:
            if self._predictions is None:
                norm = Normalize(normalization["mean"], normalization["std"])
                preds = []
                with no_grad():
                    for i in range(0, len(self), CHUNK):
                        x = norm(ToTensor()(self.images[i:i + CHUNK]))
                        preds.append(model(Tensor(x)).array.argmax(axis=1))
                self._predictions = np.concatenate(preds).astype(np.int64)
            return self._predictions

    def confusion(self, model, normalization: dict) -> dict:
        """``{"classes", "matrix" (true x predicted counts), "accuracy"}`` over the whole test set."""
        pred, k = self.predictions(model, normalization), len(self.classes)
        matrix = np.zeros((k, k), dtype=np.int64)
        np.add.at(matrix, (self.labels, pred), 1)
        return {"classes": self.classes, "matrix": matrix.tolist(), "accuracy": float((pred == self.labels).mean())}

    def select(self, query: dict, model, normalization: dict) -> np.ndarray:
        """The indices (ascending) a query picks: ``label=K``, ``misclassified=1``, ``true=I&pred=J``, or all."""
        keys = {k for k in ("label", "misclassified", "true", "pred") if k in query}
        if keys not in (set(), {"label"}, {"misclassified"}, {"true", "pred"}):
            raise ExploreError(f"examples: give one of label=K, misclassified=1 or true=I&pred=J, got "
                               f"{', '.join(sorted(keys))}")
        k = len(self.classes)
        if keys == {"label"}:
            return np.flatnonzero(self.labels == _int(query, "label", 0, k - 1))
        if not keys:
            return np.arange(len(self))
        pred = self.predictions(model, normalization)
        if keys == {"misclassified"}:
            if _int(query, "misclassified", 0, 1) == 0:
                return np.flatnonzero(pred == self.labels)
            return np.flatnonzero(pred != self.labels)
        true, guess = _int(query, "true", 0, k - 1), _int(query, "pred", 0, k - 1)
        return np.flatnonzero((self.labels == true) & (pred == guess))


def _int(query: dict, key: str, low: int, high: int) -> int:
    """Query parameter ``key`` as an int in [low, high]; ExploreError (400) otherwise."""
    raw = query.get(key)
    try:
        value = int(raw) if isinstance(raw, str) and raw.strip().lstrip("-").isdigit() else None
    except ValueError:
        value = None
    if value is None:
        raise ExploreError(f"{key} must be an integer, got {raw!r}")
    if not low <= value <= high:
        raise ExploreError(f"{key} must be between {low} and {high}, got {value}")
    return value


def page_of(query: dict, total: int) -> tuple[int, int]:
    """``(offset, limit)`` of a query (defaults 0 and 48; limit at most MAX_LIMIT)."""
    offset = _int(query, "offset", 0, max(total, 0)) if "offset" in query else 0
    limit = _int(query, "limit", 1, MAX_LIMIT) if "limit" in query else 48
    return offset, limit

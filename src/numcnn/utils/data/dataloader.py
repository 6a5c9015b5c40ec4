"""torch.utils.data.dataloader: DataLoader with torch's default batches (``default_collate``)."""

from __future__ import annotations

from collections.abc import Callable

from numcnn.data import loader
from numcnn.data.collate import default_collate, default_convert
from numcnn.data.workers import get_worker_info

__all__ = ["DataLoader", "default_collate", "default_convert", "get_worker_info"]


class DataLoader(loader.DataLoader):
    """``numcnn.data.DataLoader`` with torch's batches: ``collate_fn`` defaults to ``default_collate``, so a
    batch of ``(image, label)`` items is a list ``[images, labels]`` of Tensors with the items' dtypes, dicts
    stay dicts, and ``batch_size=None`` yields single items. Arguments and their meanings: see
    ``numcnn.data.DataLoader``."""

    @staticmethod
    def _default_collate() -> Callable:
        return default_collate

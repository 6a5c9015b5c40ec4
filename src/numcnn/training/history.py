"""History: one record per epoch (train/validation loss and accuracy, learning rate, time, images/s)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

FIELDS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "epoch_time", "images_per_s")


@dataclass
class History:
    records: list[dict] = field(default_factory=list)

    def append(self, record: dict) -> None:
        self.records.append({k: record.get(k) for k in FIELDS})

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: str) -> list:
        """A column: ``history["val_accuracy"]`` -> one value per epoch (None where not measured)."""
        if key not in FIELDS:
            raise KeyError(f"History has no column {key!r}; columns: {', '.join(FIELDS)}")
        return [r[key] for r in self.records]

    @property
    def last(self) -> dict:
        return self.records[-1] if self.records else {}

    def to_dict(self) -> dict:
        return {"records": [dict(r) for r in self.records]}

    @classmethod
    def from_dict(cls, d: dict) -> History:
        h = cls()
        for r in d.get("records", []):
            h.append(r)
        return h

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
        w.writeheader()
        for r in self.records:
            w.writerow({k: ("" if r[k] is None else r[k]) for k in FIELDS})
        return buf.getvalue()

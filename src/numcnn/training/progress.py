"""Progress for an epoch: a tqdm bar on a terminal, one line per epoch otherwise (logs, CI, pipes)."""

from __future__ import annotations

import sys


class EpochProgress:
    def __init__(self, total: int, epoch: int, epochs: int, enabled: bool = True, stream=None):
        self.stream = stream or sys.stderr
        self.bar = None
        if enabled and getattr(self.stream, "isatty", lambda: False)():
            try:
                from tqdm import tqdm
            except ImportError:  # the [cli] extra is not installed: plain lines then
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=True,
                                file=self.stream, dynamic_ncols=True)

    def update(self, loss: float, acc: float, images_per_s: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", acc=f"{acc:.4f}", img_s=f"{images_per_s:.0f}", refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

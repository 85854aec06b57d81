"""Per-epoch logs: a CSV rewritten atomically from the run history (consistent after a resume) and
TensorBoard scalars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdnas.utils.io import atomic_write_csv


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, float | int | str]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "/"))
        elif isinstance(value, (int, float, str)) or value is None:
            out[name] = value
    return out


class RunLogger:
    def __init__(self, out_dir: Path, enabled: bool = True, tensorboard: bool = True, purge_step: int | None = None):
        self.out_dir, self.enabled = Path(out_dir), enabled
        self.writer = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=purge_step)

    def log_epoch(self, history: list[dict[str, Any]]) -> None:
        if not self.enabled or not history:
            return
        rows = [flatten(h) for h in history]
        atomic_write_csv(self.out_dir / "metrics.csv", rows)
        if self.writer is not None:
            last = rows[-1]
            for key, value in last.items():
                if isinstance(value, (int, float)) and key != "epoch" and value is not None:
                    self.writer.add_scalar(key, value, global_step=int(last["epoch"]))
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

"""Run logs: the per-step JSONL log, the loss-curve PNG and the sample grids (rank 0 only)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

from ..extras import require
from ..io import atomic_write_bytes, atomic_write_text

LOG_NAME = "train_log.jsonl"
PLOT_NAME = "loss.png"


class JsonlLog:
    """One JSON object per optimizer step, appended and flushed; resuming drops lines after the resume step.

    A fresh run's log is made by its first record, so that a run refused before its first step leaves no file."""

    def __init__(self, path: str | Path, resume_step: int | None) -> None:
        self.path = Path(path)
        self.file = None
        if resume_step is not None:
            atomic_write_text(
                self.path,
                "".join(json.dumps(r) + "\n" for r in read_log(self.path) if r["step"] <= resume_step),
            )
            self.file = open(self.path, "a")

    def write(self, record: dict) -> None:
        if self.file is None:  # a fresh run: start the file (emptying a log left by an earlier run)
            atomic_write_text(self.path, "")
            self.file = open(self.path, "a")
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def close(self) -> None:
        if self.file is None:
            return
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()


def read_log(path: str | Path) -> list[dict]:
    """The records of a JSONL log (a torn last line, from a killed run, is ignored)."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


def plot_losses(log_path: str | Path, png_path: str | Path) -> Path | None:
    """Loss per step (and a running mean) from the JSONL log -> PNG (matplotlib, Agg)."""
    records = read_log(log_path)
    if not records:
        return None
    matplotlib = require("matplotlib", "train", "the loss plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in records]
    losses = [r["loss"] for r in records]
    window = max(1, len(losses) // 20)
    smooth = [
        sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1])
        for i in range(len(losses))
    ]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps, losses, lw=0.6, alpha=0.5, label="loss")
    ax.plot(steps, smooth, lw=1.5, label=f"running mean ({window})")
    ax.set_xlabel("step")
    ax.set_ylabel("rectified-flow MSE")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(png_path, buf.getvalue())
    return Path(png_path)

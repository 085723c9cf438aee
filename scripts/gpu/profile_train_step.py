"""Where a training step's time goes: torch.profiler over a few steps of a training config, after warm-up.

    python3 scripts/gpu/profile_train_step.py configs/shapes_multiview_gpu.yaml --out /tmp/profile.txt [--steps 10]
        [--set --model.attention full ...]

On the H100 an earlier Shapes multi-view model took 259.5 s of step time for 2,769 steps
(docs/results/ablations/h100_shift_off/); this tells whether
the time is the GPU's (kernels) or the host's (Python, data, launches). Eager (train.compile false), so the table
names our modules' operators; writes the top operators by device and by host time and the mean step time.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ptdit.io import atomic_write_text  # noqa: E402
from ptdit.training import TrainConfig  # noqa: E402
from ptdit.training.loop import Trainer  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=10, help="profiled steps (after 5 warm-up steps)")
    p.add_argument(
        "--set", nargs=argparse.REMAINDER, default=[], help="config overrides, e.g. --model.attention full"
    )
    args = p.parse_args()
    run_dir = Path(tempfile.mkdtemp(prefix="profile_run_"))
    overrides = ["--data.num_items", "2048", "--train.compile", "false", "--checkpoint.dir", str(run_dir)]
    overrides += ["--checkpoint.every", "0", "--checkpoint.export", "false", "--log.sample_every", "0"]
    overrides += ["--log.plot_every", "0", "--log.progress", "false", "--train.steps", "5", *args.set]
    cfg = TrainConfig.from_yaml(args.config, overrides)
    trainer = Trainer(cfg)
    trainer.run(progress=False)  # warm-up: allocator, cuDNN/cuBLAS heuristics, caption embeddings
    cfg.train.steps = 5 + args.steps
    activities = [torch.profiler.ProfilerActivity.CPU]
    if trainer.device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    start = time.perf_counter()
    with torch.profiler.profile(activities=activities) as prof:
        trainer.run(progress=False)
    per_step = (time.perf_counter() - start) / args.steps * 1e3
    device_sort = "cuda_time_total" if trainer.device.type == "cuda" else "cpu_time_total"
    text = [
        f"{args.config} {' '.join(args.set)}: {per_step:.1f} ms per step (profiled, eager, {args.steps} steps, "
        f"batch {cfg.train.batch_size}, device {trainer.device})",
        "",
        "## by device time",
        prof.key_averages().table(sort_by=device_sort, row_limit=30),
        "## by host (self CPU) time",
        prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30),
    ]
    atomic_write_text(Path(args.out), "\n".join(text) + "\n")
    shutil.rmtree(run_dir, ignore_errors=True)
    print(text[0])


if __name__ == "__main__":
    main()

"""Datasets and encoders for tests/test_reliability.py (importable by subprocesses: tests/ is put on PYTHONPATH)."""

from __future__ import annotations

import os
import signal

import torch
from torch import Tensor
from train_fixtures import TinyDataset


class SignalAt(TinyDataset):
    """TinyDataset that sends `signum` to its own process at item read number `at` (0 = never).

    The trainer reads item 0 once to probe the size, then batch_size items per step: with batch_size 2, at=6
    falls in the batch of step 3, so a run stopped by the signal stops after step 3, on any machine."""

    def __init__(self, at: int = 0, signum: int = signal.SIGTERM, slurm: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.at, self.signum, self.slurm, self.reads = at, signum, slurm, 0

    def __getitem__(self, index: int) -> dict:
        self.reads += 1
        if self.reads == self.at:
            if self.slurm:  # read in a DataLoader worker: signal the main process too, as Slurm signals all
                os.kill(os.getppid(), self.signum)
            os.kill(os.getpid(), self.signum)
        return super().__getitem__(index)


def make_signal_dataset(**kwargs) -> SignalAt:
    return SignalAt(**kwargs)


class EmptyMaskEncoder:
    """A contract-2 encoder (dim 16) whose mask keeps no token for the prompts that contain `empty_for`."""

    dim, max_length = 16, 4

    def __init__(self, empty_for: str, device: torch.device | str = "cpu") -> None:
        self.empty_for, self.device = empty_for, torch.device(device)

    def __call__(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        emb = torch.ones(len(prompts), self.max_length, self.dim)
        mask = torch.tensor([[self.empty_for not in p] * self.max_length for p in prompts])
        return emb, mask

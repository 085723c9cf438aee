"""Stopping a training run cleanly on SIGTERM (what Slurm and Kubernetes send before they kill a job) and SIGINT.

While the loop runs, either signal only sets a flag: the loop finishes the optimizer step it is in, writes a
checkpoint at that step (atomically, as the periodic ones) and returns; `ptdit train` then prints how to resume
and exits with 128 + the signal number (143 for SIGTERM, 130 for SIGINT). A second SIGINT ends the run at once
(KeyboardInterrupt, no checkpoint). DataLoader workers leave both signals to the main process, which shuts them
down when the loop ends.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

import torch

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Catches SIGTERM and SIGINT between `install()` and `restore()` (main thread only: elsewhere a no-op)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self.signum is not None:  # Ctrl-C again: stop now, no checkpoint
            self.restore()
            raise KeyboardInterrupt
        self.signum = self.signum or signum  # no printing here: the handler may interrupt a write to stderr


def agreed_signal(local: int | None, distributed: bool, device: torch.device) -> int | None:
    """The stop signal any rank received (the highest number), so that all ranks stop at the same step."""
    if not distributed:
        return local
    import torch.distributed as dist

    flag = torch.tensor(float(local or 0), device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item()) or None


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def _worker_sigterm(signum: int, frame: FrameType | None) -> None:
    """A worker's first SIGTERM (Slurm signals every process of a job) is left to the main process; a second
    one (the main process ending a worker that did not stop in time) ends it as usual."""
    global _worker_sigterm_seen
    if _worker_sigterm_seen:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
    _worker_sigterm_seen = True


_worker_sigterm_seen = False


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: a worker leaves SIGINT (Ctrl-C reaches the whole process group) and a first
    SIGTERM to the main process, which stops cleanly and then shuts the workers down, instead of dying, which
    would end the run with a DataLoader error and no checkpoint."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_sigterm)

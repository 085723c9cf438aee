"""Clocks and memory: median-ready times (CUDA events or a CPU clock), peak memory, OOM, the matmul ceiling."""

from __future__ import annotations

import contextlib
import gc
import platform
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CPU_TIMERS = {"wall": time.perf_counter, "process": time.process_time}
_CPU_TIMER = ["wall"]


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def set_cpu_timer(name: str) -> None:
    """CPU timing clock: "wall" (time.perf_counter) or "process" (CPU seconds of this process: steadier on a
    busy machine when torch runs one thread, since time spent descheduled is not counted)."""
    if name not in CPU_TIMERS:
        raise ValueError(f"unknown CPU timer {name!r}; use one of {sorted(CPU_TIMERS)}")
    _CPU_TIMER[0] = name


def time_ms(fn: Callable[[], Any], device: torch.device, warmup: int = 2, repeats: int = 5) -> list[float]:
    """Run fn warmup times, then `repeats` timed times; returns the times in ms (CUDA events on a GPU,
    the clock chosen by `set_cpu_timer` on a CPU)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            clock = CPU_TIMERS[_CPU_TIMER[0]]
            t0 = clock()
            fn()
            times.append(1000 * (clock() - t0))
    return times


def _rss_peak_gb() -> float | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(m.group(1)) * 1024 / 1e9 if m else None


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak: CUDA allocator peak on a GPU, the process's peak RSS (VmHWM) on a CPU."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")


def peak_memory_gb(device: torch.device) -> float | None:
    """GB (1e9 bytes): peak CUDA memory allocated on a GPU; peak resident set of the whole process on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    return _rss_peak_gb()


def is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def sdpa_backend(
    device: torch.device, dtype: torch.dtype, shape: tuple[int, int, int] | None, head_dim: int
) -> str:
    """The SDPA kernel torch's dispatcher picks for the model's main attention (batch 2), e.g. 'CUDNN_ATTENTION'."""
    if shape is None or head_dim == 0:
        return "n/a"
    try:
        seqs, heads, length = shape
        q = torch.empty(2 * seqs, heads, length, head_dim, device=device, dtype=dtype)
        choice = torch._fused_sdp_choice(q, q, q)
        return torch.nn.attention.SDPBackend(choice).name
    except Exception as e:  # a probe only: never fail a benchmark over it
        return f"unknown ({type(e).__name__})"


def matmul_tflops(
    device: torch.device | str, dtype: torch.dtype, size: int | None = None, repeats: int = 10
) -> float:
    """Achieved TFLOP/s of a dense size^3 matmul (default 8192 on a GPU, 1024 on a CPU): the ceiling to compare to."""
    device = torch.device(device)
    size = size or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    ms = statistics.median(time_ms(lambda: a @ b, device, warmup=3, repeats=repeats))
    return 2 * size**3 / (ms / 1000) / 1e12

"""The steady protocol: named callables timed interleaved in one process, warmed up until steady, measured twice.

`steady_table(groups, ...)` takes groups of named callables (one group: the rows that are compared, e.g. PT-DiT
and PixArt-alpha at one size and phase) and, for each group:

1. warm-up in rounds: each round calls the callables interleaved (A, B, A, B, ...) `k` times each; a callable is
   steady once the medians of its last two rounds agree within `tol` (3 %); rounds go on until every callable
   of the group is steady or `max_rounds` is reached (the row then says so);
2. measurement: `repeats` calls per callable, interleaved (A, B, A, B, ...); median, min and max per callable.

The whole table (every group, warm-up and measurement) is measured twice (`passes`); a row is flagged when the
medians of its passes differ by more than `flag` (10 %): max / min - 1 > flag.

Timing goes through `timer(fn) -> ms` (`cuda_timer` / `cpu_timer`, or a fake clock in tests): nothing here
reads a clock itself, so the protocol is tested without timing anything.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

Timer = Callable[[Callable[[], Any]], float]


def cpu_timer(clock: Callable[[], float] = time.perf_counter) -> Timer:
    """ms of one call, by `clock` (seconds)."""

    def timer(fn: Callable[[], Any]) -> float:
        t0 = clock()
        fn()
        return 1000 * (clock() - t0)

    return timer


def cuda_timer(device: torch.device | str | None = None) -> Timer:
    """ms of one call between two CUDA events (waits for the end event)."""

    def timer(fn: Callable[[], Any]) -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)

    return timer


def device_timer(device: torch.device | str) -> Timer:
    """CUDA events on a GPU, time.perf_counter elsewhere."""
    device = torch.device(device)
    return cuda_timer(device) if device.type == "cuda" else cpu_timer()


def agree(a: float, b: float, tol: float) -> bool:
    """Two times agree within `tol`: max / min - 1 <= tol (both > 0)."""
    lo, hi = min(a, b), max(a, b)
    return lo > 0 and hi / lo - 1 <= tol


@dataclass
class SteadyRow:
    """One callable of one group: per-pass times (ms) and the warm-up it took."""

    group: str
    name: str
    passes: list[list[float]] = field(default_factory=list)  # passes x repeats, ms
    warmup_rounds: list[int] = field(default_factory=list)  # per pass
    steady: list[bool] = field(default_factory=list)  # per pass: the warm-up converged
    error: str | None = None

    @property
    def times(self) -> list[float]:
        return [t for p in self.passes for t in p]

    def pass_medians(self) -> list[float]:
        return [statistics.median(p) for p in self.passes if p]

    def pass_spread(self) -> float | None:
        """max / min - 1 of the pass medians (None before two passes)."""
        m = self.pass_medians()
        return max(m) / min(m) - 1 if len(m) > 1 and min(m) > 0 else None

    def as_dict(self, flag: float) -> dict[str, Any]:
        """JSON-ready: median / min / max over every timed call, per-pass medians, spread, flag."""
        times, spread = self.times, self.pass_spread()
        return {
            "group": self.group,
            "name": self.name,
            "median_ms": statistics.median(times) if times else None,
            "min_ms": min(times) if times else None,
            "max_ms": max(times) if times else None,
            "pass_medians_ms": self.pass_medians(),
            "pass_spread": spread,
            "flagged": spread is not None and spread > flag,
            "warmup_rounds": self.warmup_rounds,
            "steady": all(self.steady) if self.steady else None,
            "times_ms": [[round(t, 4) for t in p] for p in self.passes],
            "error": self.error,
        }


def _error(e: BaseException) -> str:
    """One line: the exception's type and the start of its message."""
    return f"{type(e).__name__}: " + " ".join(str(e).split())[:300]


def _round(
    fns: Mapping[str, Callable[[], Any]], k: int, timer: Timer, rows: dict[str, SteadyRow]
) -> dict[str, list[float]]:
    """k interleaved calls of every live callable: {name: [ms] * k}. A callable that raises is dropped."""
    out: dict[str, list[float]] = {n: [] for n in fns if rows[n].error is None}
    for _ in range(k):
        for name, fn in fns.items():
            if rows[name].error is not None:
                continue
            try:
                out[name].append(timer(fn))
            except Exception as e:  # one failing row never stops the table: it says what happened
                rows[name].error = _error(e)
                out.pop(name, None)
    return out


def warm_up(
    fns: Mapping[str, Callable[[], Any]],
    timer: Timer,
    rows: dict[str, SteadyRow],
    k: int = 3,
    tol: float = 0.03,
    max_rounds: int = 10,
) -> tuple[int, dict[str, bool]]:
    """Rounds of k interleaved calls until each callable's last two round medians agree within tol.

    Returns (rounds run, {name: steady}); stops after max_rounds (at least 2) with the unsteady ones False."""
    last: dict[str, float] = {}
    steady = {n: False for n in fns}
    rounds = 0
    while rounds < max(2, max_rounds):
        times = _round(fns, k, timer, rows)
        rounds += 1
        for name, ts in times.items():
            m = statistics.median(ts)
            if name in last and agree(last[name], m, tol):
                steady[name] = True
            last[name] = m
        if all(steady[n] for n in fns if rows[n].error is None):
            break
    return rounds, steady


def steady_table(
    groups: Sequence[tuple[str, Mapping[str, Callable[[], Any]]]],
    timer: Timer,
    k: int = 3,
    tol: float = 0.03,
    max_rounds: int = 10,
    repeats: int = 10,
    passes: int = 2,
    flag: float = 0.10,
    on_group: Callable[[int, str, list[SteadyRow]], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> list[dict[str, Any]]:
    """Time every group's callables with the steady protocol (module docstring); one dict per (group, name).

    groups: [(group label, {name: fn})], fn() runs one timed unit (a forward, a training step) and returns when
    it is done on the device; timer(fn) -> ms. on_group(pass, label, rows) is called after each group's
    measurement (to save partial results); when stop() turns true (a time budget), the groups not started yet
    are left out with error "stopped: time budget spent". Row dicts: SteadyRow.as_dict (median_ms, min_ms, max_ms,
    pass_medians_ms, pass_spread, flagged, warmup_rounds, steady, times_ms, error).
    """
    if k < 1 or repeats < 1 or passes < 1:
        raise ValueError(f"k, repeats and passes must be >= 1, got {k}, {repeats}, {passes}")
    rows = {(g, n): SteadyRow(g, n) for g, fns in groups for n in fns}
    for p in range(passes):
        for label, fns in groups:
            group_rows = {n: rows[(label, n)] for n in fns}
            if stop is not None and stop():
                for r in group_rows.values():
                    r.error = r.error or "stopped: time budget spent"
                continue
            rounds, steady = warm_up(fns, timer, group_rows, k, tol, max_rounds)
            for n, r in group_rows.items():
                r.warmup_rounds.append(rounds)
                r.steady.append(steady[n])
                if r.error is None:
                    r.passes.append([])
            for _ in range(repeats):
                for n, fn in fns.items():
                    r = group_rows[n]
                    if r.error is not None:
                        continue
                    try:
                        r.passes[-1].append(timer(fn))
                    except Exception as e:
                        r.error = _error(e)
            if on_group is not None:
                on_group(p, label, list(group_rows.values()))
    return [r.as_dict(flag) for r in rows.values()]

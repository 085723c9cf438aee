"""The steady protocol (ptdit.bench.steady) and the peers table (ptdit.bench.peers), with fake clocks: nothing is
timed for real, so nothing here depends on the machine's speed."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch

from ptdit.bench import peers, steady
from ptdit.bench.cases import TINY_PRESET
from ptdit.config import PRESETS


class FakeClock:
    """Each fake callable 'takes' the next time of its own sequence (ms); the timer records the call order."""

    def __init__(self, **times: Iterator[float] | Callable[[int], float]) -> None:
        self.times = times
        self.calls: list[str] = []
        self.counts: dict[str, int] = {n: 0 for n in times}

    def fn(self, name: str) -> Callable[[], str]:
        return lambda: name

    def timer(self, fn: Callable[[], str]) -> float:
        name = fn()
        self.calls.append(name)
        i = self.counts[name]
        self.counts[name] += 1
        t = self.times[name]
        return t(i) if callable(t) else next(t)


def test_calls_are_interleaved_and_steady_callables_stop_warming_up():
    clock = FakeClock(A=lambda i: 10.0, B=lambda i: 20.0)
    rows = steady.steady_table(
        [("g", {"A": clock.fn("A"), "B": clock.fn("B")})], clock.timer, k=3, repeats=4, passes=2
    )
    # per pass: 2 warm-up rounds of 3 interleaved calls (the medians agree at once), then 4 interleaved repeats
    assert clock.calls == ["A", "B"] * (2 * (2 * 3 + 4))
    a, b = rows
    assert (a["name"], a["median_ms"], a["min_ms"], a["max_ms"]) == ("A", 10.0, 10.0, 10.0)
    assert b["median_ms"] == 20.0 and a["warmup_rounds"] == [2, 2] and a["steady"] is True
    assert a["pass_medians_ms"] == [10.0, 10.0] and a["pass_spread"] == 0 and not a["flagged"]
    assert len(a["times_ms"]) == 2 and len(a["times_ms"][0]) == 4


def test_warm_up_runs_until_two_round_medians_agree_within_tol():
    # A: a slow start, 100 -> 50 -> 30 -> 20.5 -> 20 (steady: 20.5 vs 20 is within 3 %); B steady from the start
    start = [100.0, 50.0, 30.0, 20.5]
    clock = FakeClock(A=lambda i: start[i // 3] if i // 3 < len(start) else 20.0, B=lambda i: 5.0)
    rows = steady.steady_table(
        [("g", {"A": clock.fn("A"), "B": clock.fn("B")})], clock.timer, k=3, repeats=2, passes=1
    )
    assert rows[0]["warmup_rounds"] == [5] and rows[0]["steady"] is True
    assert rows[0]["median_ms"] == 20.0  # the warm-up is not in the result


def test_warm_up_is_capped_and_says_so():
    clock = FakeClock(A=lambda i: 10.0 * 1.1**i)  # 10 % slower every call: never steady
    rows = steady.steady_table(
        [("g", {"A": clock.fn("A")})], clock.timer, k=2, max_rounds=4, repeats=1, passes=1
    )
    assert rows[0]["warmup_rounds"] == [4] and rows[0]["steady"] is False
    assert clock.counts["A"] == 4 * 2 + 1


def test_whole_table_is_measured_twice_and_rows_whose_passes_differ_are_flagged():
    second = {"A": 0}

    def a_time(i: int) -> float:
        return 10.0 if second["A"] == 0 else 11.5  # +15 % in the second pass: flagged

    order: list[tuple[int, str]] = []
    clock = FakeClock(A=a_time, B=lambda i: 10.0, C=lambda i: 30.0)

    def on_group(p: int, label: str, rows: list) -> None:
        order.append((p, label))
        if (p, label) == (0, "g2"):
            second["A"] = 1

    groups = [("g1", {"A": clock.fn("A"), "B": clock.fn("B")}), ("g2", {"C": clock.fn("C")})]
    rows = {r["name"]: r for r in steady.steady_table(groups, clock.timer, k=1, repeats=3, on_group=on_group)}
    assert order == [(0, "g1"), (0, "g2"), (1, "g1"), (1, "g2")]  # pass 1 over the whole table, then pass 2
    assert rows["A"]["pass_medians_ms"] == [10.0, 11.5] and rows["A"]["flagged"]
    assert rows["A"]["pass_spread"] == pytest.approx(0.15)
    assert (rows["A"]["min_ms"], rows["A"]["max_ms"]) == (10.0, 11.5)
    assert not rows["B"]["flagged"] and not rows["C"]["flagged"] and rows["C"]["group"] == "g2"


def test_a_failing_callable_is_recorded_and_the_others_go_on():
    def boom() -> str:
        raise RuntimeError("CUDA error:\n  something")

    clock = FakeClock(A=lambda i: 1.0)

    def timer(fn: Callable[[], str]) -> float:
        return clock.timer(fn)

    rows = steady.steady_table([("g", {"A": clock.fn("A"), "X": boom})], timer, k=1, repeats=2, passes=2)
    x = next(r for r in rows if r["name"] == "X")
    assert x["error"] == "RuntimeError: CUDA error: something" and x["median_ms"] is None
    assert next(r for r in rows if r["name"] == "A")["median_ms"] == 1.0


def test_stop_leaves_the_remaining_groups_out():
    clock = FakeClock(A=lambda i: 1.0, B=lambda i: 1.0)
    groups = [("g1", {"A": clock.fn("A")}), ("g2", {"B": clock.fn("B")})]
    rows = steady.steady_table(
        groups, clock.timer, k=1, repeats=1, passes=1, stop=lambda: clock.counts["A"] > 0
    )
    assert rows[1]["error"] == "stopped: time budget spent" and clock.counts["B"] == 0


def test_agree_and_cpu_timer():
    assert (
        steady.agree(100, 102.9, 0.03) and not steady.agree(100, 103.5, 0.03) and not steady.agree(0, 0, 0.03)
    )
    ticks = iter([1.0, 1.25])
    assert steady.cpu_timer(lambda: next(ticks))(lambda: None) == 250.0
    with pytest.raises(ValueError, match=">= 1"):
        steady.steady_table([], lambda fn: 0.0, repeats=0)


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(PRESETS, *TINY_PRESET)


def test_peer_table_modes_share_one_module_and_give_ratios(tiny, one_thread):
    """Eager and compiled rows of both models (dynamo, eager backend), CUDA graphs skipped with a reason on a CPU, ratios with
    the FLOP ratio; the time comes from a fake timer that still runs each call (so every path executes)."""
    calls: list[str] = []

    def timer(fn: Callable[[], object]) -> float:
        fn()
        calls.append("x")
        return 2.0 if len(calls) % 2 else 4.0  # interleaved: PT-DiT (first) 2 ms, PixArt 4 ms

    rows = peers.peer_table(["PT-DiT-T", "PixArt-alpha-T"], [128], compile_kwargs={"backend": "eager"},
                            timer=timer, k=1, max_rounds=2, repeats=2, passes=2)  # fmt: skip
    timed = [r for r in rows if not r["skipped"]]
    assert {(r["phase"], r["mode"]) for r in timed} == {
        (p, m) for p in peers.PHASES for m in ("eager", "compiled")
    }
    assert all(r["error"] is None and r["median_ms"] > 0 and r["gmacs"] > 0 for r in timed)
    graph = [r for r in rows if r["mode"] == "graph"]
    assert len(graph) == 4 and all("CUDA" in r["skipped"] for r in graph)
    ratio = {r["phase"]: r for r in peers.ratios(rows, "PixArt-alpha-T")}
    assert ratio["forward"]["compiled_ratio"] == 0.5 and ratio["train"]["eager_ratio"] == 0.5
    assert 0 < ratio["forward"]["flop_ratio"] < 1 and ratio["forward"]["best_ratio"] == 0.5
    md = peers.markdown(rows, list(ratio.values()))
    assert "skipped: ValueError: CUDA graphs need a CUDA device" in md and "| 0.500 |" in md


def test_eager_mode_switches_compiled_entry_points_off_and_back(tiny):
    from ptdit.bench import Case, build

    built = build(Case("PT-DiT-T", 128, 128), "cpu", torch.float32)
    peers.compile_module(built.module, "model", backend="eager")
    with peers.eager_mode(built.module):
        assert "_compiled_run" not in built.module.__dict__
    assert "_compiled_run" in built.module.__dict__
    pixart = build(Case("PixArt-alpha-T", 128, 128), "cpu", torch.float32).module
    peers.compile_module(pixart, "blocks", backend="eager")
    with peers.eager_mode(pixart):
        assert all(b._compiled_call_impl is None for b in pixart.transformer_blocks)
    assert all(b._compiled_call_impl is not None for b in pixart.transformer_blocks)
    other = build(Case("PT-DiT-T", 256, 256), "cpu", torch.float32).module
    peers.share_parameters(other, built.module)
    assert all(p is q for p, q in zip(other.parameters(), built.module.parameters()))
    with pytest.raises(ValueError, match="modes="):
        peers.peer_table(["PT-DiT-T+compile"], [128])

"""`ptdit ablate GRID.yaml`: run every (variant, seed) of a grid that has no result JSON yet, spread over worker
processes (one CPU thread group or one GPU each), then write the table, the verdicts and the plots."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..options import add_list_option
from .grid import Grid, RunSpec, load_grid
from .report import costs_markdown, refill_markdown, table_markdown, write_report


def pending(grid: Grid) -> list[RunSpec]:
    """The runs without a result JSON (finished runs are never redone)."""
    return [s for s in grid.runs() if not grid.result_path(s).is_file()]


def _launch(grid: Grid, spec: RunSpec, threads: int, gpu: str | None) -> tuple[RunSpec, int, float]:
    run_dir = grid.run_dir(spec)
    run_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    cmd = [sys.executable, "-m", "ptdit.ablate.run", str(grid.path), spec.key, "--threads", str(threads)]
    start = time.time()
    with open(run_dir / "worker.log", "a") as log:
        code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, check=False).returncode
    return spec, code, time.time() - start


def run_grid(grid: Grid, workers: int = 1, threads: int = 1, gpus: list[str] | None = None,
             inline: bool = False) -> list[tuple[str, int]]:  # fmt: skip
    """Run the pending runs; `inline` runs them one by one in this process (tests), else `workers` processes
    (`threads` torch threads each; with `gpus`, worker i sees only GPU gpus[i % len(gpus)])."""
    todo = pending(grid)
    print(
        f"ptdit ablate: {grid.name}: {len(grid.runs()) - len(todo)} runs done, {len(todo)} to run", flush=True
    )
    outcomes = []
    if inline:
        from .run import run_one

        for spec in todo:
            run_one(grid, spec, threads)
            outcomes.append((spec.key, 0))
        return outcomes
    slots = [str(g) for g in gpus] if gpus else [None] * workers
    free = list(range(len(slots)))

    def job(spec: RunSpec) -> tuple[RunSpec, int, float]:
        slot = free.pop()
        try:
            return _launch(grid, spec, threads, slots[slot])
        finally:
            free.append(slot)

    with ThreadPoolExecutor(max_workers=len(slots)) as pool:
        for spec, code, seconds in pool.map(job, todo):
            state = "done" if code == 0 else f"failed (exit {code}, see {grid.run_dir(spec) / 'worker.log'})"
            print(f"ptdit ablate: {spec.key}: {state} in {seconds:.0f} s", flush=True)
            outcomes.append((spec.key, code))
    return outcomes


def cli_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="ptdit ablate", description=__doc__.splitlines()[0])
    p.add_argument("config", help="grid config (configs/ablations/*.yaml)")
    p.add_argument("--workers", type=int, default=1, help="runs at a time (CPU); default 1")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (train.threads); default 1")
    add_list_option(p, "--gpus", default=[], help="GPU ids (0 1 or 0,1): one run per GPU at a time")
    p.add_argument("--list", action="store_true", help="list the runs and whether each is done; run nothing")
    p.add_argument("--report", action="store_true", help="only write the table and plots from finished runs")
    p.add_argument(
        "--measure",
        type=int,
        metavar="STEPS",
        help="write costs.json (FLOPs per step per variant; with STEPS > 0 also a timed run of STEPS steps each) "
        "and run nothing else",
    )
    p.add_argument("--markdown", help="also refill the <!-- ablate:NAME --> block of this Markdown file")
    args = p.parse_args(argv)
    if args.workers < 1 or args.threads < 0:
        raise ValueError(f"--workers must be >= 1 and --threads >= 0, got {args.workers} and {args.threads}")
    grid = load_grid(args.config)
    if args.list:
        for spec in grid.runs():
            print(f"{spec.key:<24} {'done' if grid.result_path(spec).is_file() else 'to do'}")
        return 0
    if args.measure is not None:
        from .run import measure_costs

        measure_costs(grid, args.measure, args.threads)
        print(f"ptdit ablate: wrote {grid.results_dir / 'costs.json'}")
        return 0
    failed = []
    if not args.report:
        gpus = list(args.gpus) or None
        failed = [key for key, code in run_grid(grid, args.workers, args.threads, gpus) if code]
    summary = write_report(grid)
    if args.markdown:
        refill_markdown(Path(args.markdown), grid.name, table_markdown(summary))
        costs = grid.results_dir / "costs.json"
        if costs.is_file() and f"<!-- ablate:{grid.name}:costs -->" in Path(args.markdown).read_text():
            refill_markdown(
                Path(args.markdown), f"{grid.name}:costs", costs_markdown(json.loads(costs.read_text()))
            )
    print(
        f"ptdit ablate: {summary['runs_done']} / {summary['runs_total']} runs done; wrote {grid.results_dir}"
    )
    if failed:
        print(f"ptdit ablate: error: {len(failed)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0

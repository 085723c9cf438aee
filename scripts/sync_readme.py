"""Fill README.md's benchmark tables from the JSON files that hold the measurements.

Each table sits between `<!-- sync_readme: NAME -->` and `<!-- /sync_readme: NAME -->`:

  cpu-table  benchmarks/results/cpu_quick.json (`ptdit bench --quick ...`, the command in cpu_quick.md)
  gpu-table  benchmarks/results/gpu_check_h100.json (python benchmarks/gpu_check.py on an H100)

The prose around them is written by hand; tests/test_readme.py checks the numbers it quotes against their JSON.

usage: python scripts/sync_readme.py            # rewrite the tables
       python scripts/sync_readme.py --check    # write nothing; exit 1 when a table is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_doc import fill, table, update  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BENCH = ROOT / "benchmarks" / "results"


def cpu_table() -> list[str]:
    rows = [r for r in json.loads((BENCH / "cpu_quick.json").read_text())
            if r["model"].startswith(("PT-DiT-S", "PixArt-alpha-S"))]  # fmt: skip
    ref = {r["height"]: r["forward_ms"] for r in rows if r["model"] == "PixArt-alpha-S"}
    spread = max(
        (max(r[k]) - min(r[k])) / min(r[k]) for r in rows for k in ("forward_ms_all", "train_ms_all")
    )
    r0 = rows[0]
    setup = [r0["device_name"], r0["threads"], r0["torch"], r0["dtype"], r0["batch"], r0["timer"],
             len(r0["forward_ms_all"]), f"{spread:.0%}"]  # fmt: skip
    head = [
        "CPU",
        "threads",
        "torch",
        "dtype",
        "batch",
        "timer",
        "runs per row",
        "largest spread of a row's runs",
    ]
    timings = [[f"{r['height']}²", r["model"], f"{r['params'] / 1e6:.1f}", f"{r['forward_ms']:,.1f}",
                f"{r['train_ms']:,.1f}", f"{r['forward_ms'] / ref[r['height']]:.2f}"] for r in rows]  # fmt: skip
    head2 = ["size", "model", "params (M)", "forward ms", "train ms", "fwd / PixArt-alpha-S"]
    return table(head, [setup]) + [""] + table(head2, timings)


def gpu_table() -> list[str]:
    report = json.loads((BENCH / "gpu_check_h100.json").read_text())
    env = report["environment"]
    setup = [env["device_name"], env["torch"], env["dtype"], env["timer"], f"{env['matmul_tflops']:.0f}"]
    targets = [[t["target"], f"{t['value']:.3f}", t["threshold"], t["result"]] for t in report["targets"]]
    return (
        table(["GPU", "torch", "dtype", "timer", "measured matmul TFLOP/s"], [setup])
        + [""]
        + table(["target", "measured", "threshold", "result"], targets)
    )


TABLES = {"cpu-table": cpu_table, "gpu-table": gpu_table}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 when a table is stale")
    args = ap.parse_args(argv)
    new = fill(README.read_text(), lambda name: TABLES[name](), "sync_readme")
    return update(README, new, args.check, "scripts/sync_readme.py")


if __name__ == "__main__":
    sys.exit(main())

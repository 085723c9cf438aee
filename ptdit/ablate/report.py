"""The per-run JSONs of a grid -> summary.json, a Markdown table (mean ± std over seeds per variant), the
ordering verdicts (holds / reversed / unresolved at two standard errors) and curves against FLOPs and time."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from ..io import atomic_write_text
from .grid import Grid

SHOWN = ("classifier_accuracy", "fid", "accuracy", "heldout_loss")  # table columns, where a run has them


def load_results(grid: Grid) -> dict[str, list[dict[str, Any]]]:
    """variant -> its finished runs (in seed order), only the variants and seeds the grid names."""
    wanted = {s.key for s in grid.runs()}
    out: dict[str, list[dict[str, Any]]] = {v.name: [] for v in grid.variants}
    for path in sorted((grid.results_dir / "runs").glob("*.json")):
        if path.stem in wanted:
            record = json.loads(path.read_text())
            out[record["variant"]].append(record)
    for runs in out.values():
        runs.sort(key=lambda r: r["seed"])
    return out


def mean_std(values: list[float]) -> tuple[float, float, int]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return math.nan, math.nan, 0
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan, len(values)


def verdict(better: list[float], worse: list[float], direction: str) -> dict[str, Any]:
    """Does `better` beat `worse`? holds: the gap in the better direction exceeds two standard errors of the
    difference of the means over seeds; reversed: it exceeds them the other way; else (or < 2 seeds) unresolved."""
    (ma, sa, na), (mb, sb, nb) = mean_std(better), mean_std(worse)
    gap = (ma - mb) if direction == "higher" else (mb - ma)  # > 0: the claimed order
    if na < 2 or nb < 2:
        return {"gap": gap, "two_se": math.nan, "verdict": "unresolved"}
    two_se = 2 * math.sqrt(sa**2 / na + sb**2 / nb)
    result = "holds" if gap > two_se else "reversed" if -gap > two_se else "unresolved"
    return {"gap": gap, "two_se": two_se, "verdict": result}


def summarise(grid: Grid) -> dict[str, Any]:
    results = load_results(grid)
    metrics = [m for m in SHOWN if any(m in r["scores"] for runs in results.values() for r in runs)]
    rows = []
    for v in grid.variants:
        runs = results[v.name]
        row: dict[str, Any] = {
            "variant": v.name,
            "label": v.label,
            "seeds_done": len(runs),
            "seeds": len(v.seeds),
        }
        if runs:
            row["steps"] = sorted({r["steps"] for r in runs})
            row["train_gflops_per_step"] = runs[0]["train_flops_per_step"] / 1e9
            row["tokens"] = runs[0]["tokens"]
            row["ms_per_step"] = 1000 * statistics.median(r["step_seconds_median"] for r in runs)
        for m in metrics:
            mean, std, n = mean_std([r["scores"].get(m) for r in runs])
            row[m] = {"mean": mean, "std": std, "n": n}
        rows.append(row)
    orderings = []
    for o in grid.orderings:
        m = o["metric"]
        v = verdict([r["scores"].get(m) for r in results[o["better"]]],
                    [r["scores"].get(m) for r in results[o["worse"]]], grid.metrics[m])  # fmt: skip
        orderings.append({**o, **v})
    done = sum(len(r) for r in results.values())
    finished = [r for runs in results.values() for r in runs]
    core_hours = {  # one core per thread: a run's summed step times and its final evaluation, times its threads
        key: sum(r.get(f"{key}_seconds", 0.0) * r.get("threads", 1) for r in finished) / 3600
        for key in ("train", "eval")
    }
    return {"grid": grid.name, "runs_done": done, "runs_total": len(grid.runs()), "core_hours": core_hours,
            "budget": grid.budget, "metrics": metrics, "rows": rows, "orderings": orderings,
            "sizing": grid.raw.get("sizing")}  # fmt: skip


def _fmt(value: float, digits: int = 3) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def table_markdown(summary: dict[str, Any]) -> str:
    metrics = summary["metrics"]
    head = ["variant", "seeds", "steps", "tokens", "train GFLOP/step", "ms/step", *metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in summary["rows"]:
        cells = [row["label"], f"{row['seeds_done']}/{row['seeds']}", ",".join(map(str, row.get("steps", []))) or "–",
                 str(row.get("tokens", "–")), _fmt(row.get("train_gflops_per_step", math.nan), 2),
                 _fmt(row.get("ms_per_step", math.nan), 0)]  # fmt: skip
        for m in metrics:
            s = row[m]
            cells.append("–" if not s["n"] else f"{_fmt(s['mean'])} ± {_fmt(s['std'])}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    hours = summary["core_hours"]
    lines.append(
        f"runs done: {summary['runs_done']} / {summary['runs_total']}; core-hours: training steps "
        f"{hours['train']:.2f}, final evaluations {hours['eval']:.2f}"
    )
    if summary["orderings"]:
        lines += [
            "",
            "| claim (better > worse) | metric | gap | 2 SE | verdict | paper |",
            "|---|---|---|---|---|---|",
        ]
        for o in summary["orderings"]:
            lines.append(f"| {o['better']} > {o['worse']} | {o['metric']} | {_fmt(o['gap'], 4)} | "
                         f"{_fmt(o['two_se'], 4)} | {o['verdict']} | {o.get('paper', '')} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def curve_style(i: int) -> dict[str, Any]:
    """Matplotlib style of the i-th curve: tab10's colours, then the same colours dashed with another marker, so
    that no two of a grid's curves look alike."""
    return {
        "color": f"C{i % 10}",
        "linestyle": ("-", "--", ":", "-.")[(i // 10) % 4],
        "marker": ("o", "s", "^", "D")[(i // 10) % 4],
    }


def plot_curves(grid: Grid, results: dict[str, list[dict[str, Any]]], out_dir: Path) -> list[Path]:
    """Held-out loss against training FLOPs and against training seconds: one curve (mean over seeds) per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for x_key, x_label, name in (("flops", "training FLOPs", "curve_flops.png"),
                                 ("train_seconds", "training seconds (sum of step times)", "curve_time.png")):  # fmt: skip
        fig, ax = plt.subplots(figsize=(7, 4.5))
        drawn = 0
        for i, v in enumerate(grid.variants):
            points: dict[int, list[tuple[float, float]]] = {}
            for r in results[v.name]:
                for c in r["curve"]:
                    points.setdefault(c["step"], []).append((c[x_key], c["heldout_loss"]))
            if not points:
                continue
            steps = sorted(points)
            xs = [statistics.fmean(p[0] for p in points[s]) for s in steps]
            ys = [statistics.fmean(p[1] for p in points[s]) for s in steps]
            n = len(results[v.name])
            ax.plot(xs, ys, ms=3, label=f"{v.label} ({n} seed{'s' * (n != 1)})", **curve_style(i))
            drawn += 1
        ax.set_xlabel(x_label)
        ax.set_ylabel("held-out loss (mean over seeds)")
        ax.set_title(grid.name)
        if drawn:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def project_costs(grid: Grid, costs: dict[str, Any]) -> dict[str, Any]:
    """costs.json's budget-dependent fields (steps, projected core-seconds) from the grid's current budget and
    seeds and the measured step times, so that the sizing follows the config."""
    total = 0.0
    for row in costs["variants"]:
        variant = next((v for v in grid.variants if v.name == row["variant"]), None)
        row["seeds"] = len(variant.seeds) if variant else row["seeds"]
        row.pop("steps", None)
        row.pop("projected_train_core_seconds", None)
        if "steps" in grid.budget:
            row["steps"] = int(grid.budget["steps"])
        elif "flops" in grid.budget:
            row["steps"] = max(1, math.floor(grid.budget["flops"] / row["train_flops_per_step"]))
        if "steps" in row and row.get("step_seconds_median") is not None:
            threads = max(int(costs.get("threads", 1)), 1)
            row["projected_train_core_seconds"] = (
                row["steps"] * row["step_seconds_median"] * row["seeds"] * threads
            )
            total += row["projected_train_core_seconds"]
    costs["budget"] = grid.budget
    costs["projected_train_core_hours"] = total / 3600 if total else None
    return costs


def write_report(grid: Grid, plots: bool = True) -> dict[str, Any]:
    """summary.json, table.md and the two plots into grid.results_dir (and costs.json's projection refreshed)."""
    summary = summarise(grid)
    out = grid.results_dir
    out.mkdir(parents=True, exist_ok=True)
    costs = out / "costs.json"
    if costs.is_file():
        atomic_write_text(
            costs, json.dumps(project_costs(grid, json.loads(costs.read_text())), indent=1) + "\n"
        )
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, default=str) + "\n")
    atomic_write_text(out / "table.md", table_markdown(summary))
    if plots:
        plot_curves(grid, load_results(grid), out)
    return summary


def refill_markdown(path: Path, name: str, text: str) -> bool:
    """Replace the block between `<!-- ablate:NAME -->` and `<!-- /ablate:NAME -->` of a Markdown file."""
    start, end = f"<!-- ablate:{name} -->", f"<!-- /ablate:{name} -->"
    doc = path.read_text()
    if start not in doc or end not in doc:
        raise ValueError(f"{path} has no {start} ... {end} block")
    head, rest = doc.split(start, 1)
    _, tail = rest.split(end, 1)
    new = f"{head}{start}\n{text}{end}{tail}"
    if new != doc:
        atomic_write_text(path, new)
    return new != doc


def costs_markdown(costs: dict[str, Any]) -> str:
    """The sizing table of costs.json (`ptdit ablate --measure`)."""
    head = ["variant", "tokens", "text tokens", "train GFLOP/step", "× first row", "steps", "ms/step (measured)",
            "load (1 min)", "seeds", "projected train core-h"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in costs["variants"]:
        sec = r.get("step_seconds_median")
        proj = r.get("projected_train_core_seconds")
        lines.append("| " + " | ".join([
            r["variant"], str(r["tokens"]), str(r["text_len"]), _fmt(r["train_flops_per_step"] / 1e9, 2),
            _fmt(r["flops_ratio_to_first"], 3), str(r.get("steps", "–")),
            _fmt(1000 * sec, 0) if sec is not None else "–", _fmt(r.get("load_average_1min", math.nan), 1),
            str(r["seeds"]),
            _fmt(proj / 3600, 2) if proj is not None else "–",
        ]) + " |")  # fmt: skip
    total = costs.get("projected_train_core_hours")
    lines += ["", f"commit {costs['commit'][:10]}{' (+ local changes)' if costs['dirty'] else ''}, "
              f"{costs['threads']} thread(s), torch {costs['torch']}"
              + (f"; projected training, all runs: {total:.1f} core-hours" if total is not None else "")]  # fmt: skip
    return "\n".join(lines) + "\n"

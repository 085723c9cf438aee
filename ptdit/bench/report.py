"""Benchmark outputs: the markdown table and setup line, the time-vs-resolution plot, JSON/markdown files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..extras import require
from ..io import atomic_write_bytes, atomic_write_text
from .cases import Case


def _fmt(x: Any, digits: int = 1) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return str(x)


def markdown_table(rows: Sequence[dict[str, Any]], reference: str | None = None) -> str:
    """One row per model and size; `reference` adds a forward-time ratio column against that model."""
    ref = {
        (r["height"], r["width"], r["frames"]): r.get("forward_ms") for r in rows if r["model"] == reference
    }
    head = [
        "size",
        "model",
        "params (M)",
        "tokens",
        "forward ms",
        "train ms",
        "peak GB",
        "tokens/s",
        "fwd TFLOP/s",
    ]
    head += ["train TFLOP/s"] + ([f"fwd / {reference}"] if reference else []) + ["notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        size = (
            f"{r['height']}²"
            if r["height"] == r["width"] and r["frames"] == 1
            else Case("", r["height"], r["width"], r["frames"]).label
        )
        ratio = None
        base = ref.get((r["height"], r["width"], r["frames"]))
        if reference and base and r.get("forward_ms"):
            ratio = r["forward_ms"] / base
        cells = [
            size,
            r["model"],
            _fmt(r.get("params") and r["params"] / 1e6),
            _fmt(r.get("tokens")),
            _fmt(r.get("forward_ms")),
            _fmt(r.get("train_ms")),
            _fmt(r.get("peak_mem_gb"), 2),
            _fmt(r.get("tokens_per_s"), 0),
            _fmt(r.get("forward_tflops"), 3 if r["device"] == "cpu" else 1),
            _fmt(r.get("train_tflops"), 3 if r["device"] == "cpu" else 1),
        ]
        cells += [_fmt(ratio, 2)] if reference else []
        cells += [r.get("notes") or ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def setup_line(rows: Sequence[dict[str, Any]]) -> str:
    """One sentence: device, torch, dtype, threads, batch, SDPA backends seen."""
    if not rows:
        return ""
    r = rows[0]
    backends = sorted({x.get("sdpa_backend") for x in rows if x.get("sdpa_backend")})
    return (
        f"{r['device_name']} ({r['device']}, {r['threads']} threads, {r.get('timer', 'wall')} clock), torch {r['torch']}"
        + (f" (CUDA {r['cuda']})" if r.get("cuda") else "")
        + f", forward in {r['dtype']} at batch {r['batch']}, training step at batch {r.get('train_batch')}, "
        f"SDPA backend(s) picked for the main attention: {', '.join(backends)}"
    )


def plot(
    rows: Sequence[dict[str, Any]], path: str | Path, key: str = "forward_ms", title: str | None = None
) -> None:
    """Time against resolution (pixels per sample), log-log, one line per model; written atomically as PNG."""
    import io as _io

    matplotlib = require("matplotlib", "bench", "the plot of ptdit bench")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    for model in dict.fromkeys(r["model"] for r in rows):
        pts = sorted(
            (r["height"] * r["width"] * r["frames"], r[key])
            for r in rows
            if r["model"] == model and r.get(key)
        )
        if pts:
            ax.plot(
                *zip(*pts),
                marker="o",
                label=model,
                linestyle="--" if "full" in model or "PixArt" in model else "-",
            )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("pixels per sample (height x width x frames)")
    ax.set_ylabel(f"{key.replace('_ms', '')} time (ms, median)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title is None and rows:
        r = rows[0]
        title = f"{r['device_name']}, {r['threads']} thread(s), {r['dtype']}, batch {r['batch']}, torch {r['torch']}"
    ax.set_title(title or "", fontsize=8)
    fig.tight_layout()
    buf = _io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write_outputs(
    rows: Sequence[dict[str, Any]],
    json_path: str | Path | None = None,
    markdown_path: str | Path | None = None,
    plot_path: str | Path | None = None,
    reference: str | None = None,
    command: str | None = None,
) -> str:
    """Write the JSON rows, a markdown report (setup + table) and the plot; returns the markdown."""
    md = f"Setup: {setup_line(rows)}.\n\n" + markdown_table(rows, reference)
    if command:
        md = f"Command: `{command}`\n\n" + md
    if json_path:
        atomic_write_text(json_path, json.dumps(list(rows), indent=1) + "\n")
    if markdown_path:
        atomic_write_text(markdown_path, md)
    if plot_path:
        plot(rows, plot_path)
    return md

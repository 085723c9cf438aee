"""Plain-text and markdown tables of counts: the default cases, number formats and the per-model row."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .costs import IMAGE_SIZES, VIDEO_FRAMES, VIDEO_SIZES
from .counts import Count
from .registry import IMAGE_ONLY, MODEL_NAMES, canonical_name


def default_cases(models: Sequence[str] | None = None) -> list[tuple[str, int, int]]:
    """(model, size, frames): images at IMAGE_SIZES, video (48 latent frames) at VIDEO_SIZES."""
    models = [canonical_name(m) for m in models] if models else list(MODEL_NAMES)
    cases = [(m, s, 1) for m in models if m != "CogVideoX-2B" for s in IMAGE_SIZES]
    cases += [(m, s, VIDEO_FRAMES) for m in models if m not in IMAGE_ONLY for s in VIDEO_SIZES]
    return cases


def _fmt(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def _pct(x: float) -> str:
    return f"{x:+.2f}%"


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], markdown: bool = False) -> str:
    rows = [[str(c) for c in r] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(headers, widths)))
    body = [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows
    ]
    return "\n".join([line, "-" * len(line), *body])


ROW_HEADERS = (
    "model",
    "size",
    "frames",
    "window",
    "params (M)",
    "GMACs linear",
    "GMACs total",
    "attn share",
    "attn / full",
    "paper",
    "vs paper",
)


def row_cells(c: Count) -> list[str]:
    r = c.row()
    paper = f"{_fmt(r['paper_gmacs'])} ({r['paper_convention']})" if "paper_gmacs" in r else ""
    return [
        c.model,
        f"{c.height}x{c.width}",
        str(c.frames),
        "x".join(map(str, c.window)) if c.window else "",
        _fmt(c.params / 1e6),
        _fmt(c.linear / 1e9),
        _fmt(c.total / 1e9),
        f"{100 * c.attention_share:.1f}%",
        f"{100 * c.attention_vs_full:.2f}%",
        paper,
        _pct(r["paper_error_pct"]) if paper else "",
    ]

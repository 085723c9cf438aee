"""Plain-text and markdown tables of counts: the default cases, number formats, the per-model row, and the
marked blocks (`<!-- NAME -->` ... `<!-- /NAME -->`) of a hand-written page that hold its generated tables."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
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


_BLOCK = re.compile(r"(<!-- ([a-z0-9-]+) -->\n)(.*?)(<!-- /\2 -->)", re.S)


def blocks(text: str) -> dict[str, str]:
    """The body of every block of `text`, by name."""
    return {m.group(2): m.group(3) for m in _BLOCK.finditer(text)}


def fill_blocks(text: str, tables: Mapping[str, str]) -> str:
    """`text` with the body of every block `<!-- NAME -->` ... `<!-- /NAME -->` replaced by `tables[NAME]`.

    Raises ValueError for a block without a table or a table without a block, so that neither is lost silently.
    """
    seen: set[str] = set()

    def body(m: re.Match[str]) -> str:
        name = m.group(2)
        if name not in tables:
            raise ValueError(f"block <!-- {name} --> has no generated table (known: {', '.join(tables)})")
        seen.add(name)
        return m.group(1) + tables[name].rstrip("\n") + "\n" + m.group(4)

    out = _BLOCK.sub(body, text)
    if missing := [name for name in tables if name not in seen]:
        raise ValueError(f"no block for table(s) {', '.join(missing)}: add <!-- NAME --> ... <!-- /NAME -->")
    return out


def stale_blocks(text: str, tables: Mapping[str, str]) -> list[str]:
    """Names of the blocks of `text` whose body differs from their table."""
    old, new = blocks(text), blocks(fill_blocks(text, tables))
    return [name for name in new if old.get(name) != new[name]]

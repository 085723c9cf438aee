"""The figure of docs/complexity.png: GMACs against resolution, our counts and the paper's numbers."""

from __future__ import annotations

import io
from collections.abc import Sequence

from ..extras import require
from .counts import Count
from .paper import PAPER_EXTRA, PAPER_GMACS


def plot(counts: Sequence[Count], path: str) -> None:
    """GMACs (the paper's 'GFLOPs') against resolution, log scale: images and video, linear and total."""
    require("matplotlib", "bench", "the plot of ptdit flops")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..io import atomic_write_bytes

    video = any(c.frames > 1 for c in counts)
    rows = 2 if video else 1
    fig = Figure(figsize=(13, 5.2 * rows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 2, squeeze=False)
    models = list(dict.fromkeys(c.model for c in counts))
    colours = {m: f"C{i % 10}" for i, m in enumerate(m for m in models if not m.endswith("-lean"))}
    for r, is_video in enumerate([False, True][:rows]):
        for k, convention in enumerate(("linear", "total")):
            ax = axes[r][k]
            for m in models:
                pts = sorted(
                    (c.height, getattr(c, convention) / 1e9)
                    for c in counts
                    if c.model == m and (c.frames > 1) == is_video and c.height == c.width
                )
                if not pts:
                    continue
                base = m[: -len("-lean")] if m.endswith("-lean") else m
                ax.plot(
                    *zip(*pts),
                    marker="o",
                    ms=3,
                    color=colours.get(base, "k"),
                    ls="--" if m.endswith("-lean") else "-",
                    label=m,
                )
            refs = [
                (size, v)
                for (m, size, f), (v, conv) in {**PAPER_GMACS, **PAPER_EXTRA}.items()
                if conv == convention and (f > 1) == is_video and m in models
            ]
            if refs:
                ax.plot(*zip(*refs), ls="none", marker="x", ms=7, color="k", label="paper's numbers")
            sizes = sorted({c.height for c in counts if (c.frames > 1) == is_video})
            frames = next((c.frames for c in counts if c.frames > 1), 0)
            what = f"video, {frames} latent frames" if is_video else "images"
            ax.set(
                xscale="log",
                yscale="log",
                xlabel="resolution (pixels per side)",
                ylabel="GMACs per sample (the paper's 'GFLOPs')",
                title=f"{what}: {convention} convention",
            )
            ax.set_xscale("log", base=2)
            ax.set_xticks(sizes, [str(v) for v in sizes])
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7, ncol=2)
    fig.suptitle("Analytic cost per forward pass (dashed: PT-DiT lean block)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())

"""The generated tables of docs/complexity.md: every number of that page is computed here, the text is written by hand.

docs/complexity.md holds each table between `<!-- NAME -->` and `<!-- /NAME -->`; `markdown_report` refills them
(`ptdit flops --markdown docs/complexity.md`) and `stale_tables` names those that are out of date
(`ptdit flops --markdown docs/complexity.md --verify`, run by tests/test_complexity.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .costs import IMAGE_SIZES, VIDEO_FRAMES, VIDEO_SIZES
from .counts import Count
from .measurement import measure_model, reference_count
from .paper import PAPER_EXTRA, PAPER_GMACS, PAPER_PARAMS_M, PAPER_SHARES, attention_share_formula
from .registry import IMAGE_ONLY, MODEL_NAMES, count_model
from .tables import _fmt, _pct, blocks, fill_blocks, format_table, stale_blocks

REGENERATE = "python -m ptdit.complexity --markdown docs/complexity.md --plot docs/complexity.png"


def _change(a: float, b: float) -> str:
    return _pct(100 * (a / b - 1))


def _size(size: int, frames: int) -> str:
    return f"{size}²" if frames == 1 else f"{size}² x {frames}"


def _peer(frames: int) -> str:
    """The full-attention peer of the paper's comparisons: PixArt-alpha for images, CogVideoX-2B for video."""
    return "PixArt-alpha" if frames == 1 else "CogVideoX-2B"


def _lean_slope(preset: str, block: str) -> float:
    """Linear MACs per latent token per block, in D^2 (from two sizes with the same 64 windows)."""
    a = count_model(f"{preset}{'-lean' if block == 'lean' else ''}", 256)
    b = count_model(f"{preset}{'-lean' if block == 'lean' else ''}", 2048)

    def blocks(c: Count) -> int:
        return sum(v.linear for k, v in c.modules.items() if k.startswith("blocks"))

    return (blocks(b) - blocks(a)) / ((b.tokens - a.tokens) * a.depth * a.hidden_size**2)


def summary_table() -> str:
    """Every PT-DiT number of the paper against the lean and released blocks, and both against the peer."""
    rows = []
    for (name, size, frames), (value, _) in {**PAPER_GMACS, **PAPER_EXTRA}.items():
        if not name.startswith("PT-DiT"):
            continue
        lean = count_model(name, size, frames=frames).linear / 1e9
        released = count_model(name[: -len("-lean")], size, frames=frames).linear / 1e9
        peer = count_model(_peer(frames), size, frames=frames).linear / 1e9
        inferred = " (inferred series)" if (name, size, frames) in PAPER_EXTRA else ""
        rows.append(
            [
                name[: -len("-lean")] + inferred,
                _size(size, frames),
                _fmt(value),
                _fmt(lean),
                _change(lean, value),
                _fmt(released),
                _change(released, value),
                _peer(frames),
                f"{lean / peer:.2f}",
                f"{released / peer:.2f}",
            ]
        )
    headers = ["model", "size", "paper", "lean block", "lean vs paper", "released block", "released vs paper"]
    return format_table(headers + ["peer", "lean / peer", "released / peer"], rows, True)


def cross_check_table() -> str:
    """Analytic counts against FlopCounterMode on the real modules (ours, and diffusers' ports of the peers)."""
    rows = []
    for name, size, frames in (
        ("DiT-XL/2", 256, 1),
        ("DiT-B/2", 512, 1),
        ("PixArt-alpha", 256, 1),
        ("PixArt-alpha", 1024, 1),
        ("CogVideoX-2B", 256, 48),
        ("PT-DiT-XL", 1024, 1),
        ("PT-DiT-XL-lean", 1024, 1),
        ("PT-DiT-L-lean", 2048, 1),
        ("PT-DiT-XL", 256, 48),
        ("PT-DiT-XL-lean", 512, 48),
    ):
        a = reference_count(name, size, frames=frames)
        m = measure_model(name, size, frames=frames).cost
        worst = max(abs(a.linear / m.linear - 1), abs(a.total / m.total - 1), abs(a.params / m.params - 1))
        rows.append(
            [
                name,
                _size(size, frames),
                _fmt(m.linear / 1e9, 3),
                _fmt(m.total / 1e9, 3),
                _fmt(m.params / 1e6, 3),
                _pct(100 * worst),
            ]
        )
    headers = ["model", "size", "GMACs linear", "GMACs total", "params (M)", "ours vs measured, worst"]
    return format_table(headers, rows, True)


def peer_anchors_table() -> str:
    rows = []
    for (name, size, frames), (value, conv) in PAPER_GMACS.items():
        if name.startswith("PT-DiT"):
            continue
        ours = getattr(count_model(name, size, frames=frames), conv) / 1e9
        rows.append([name, _size(size, frames), conv, _fmt(value), _fmt(ours), _change(ours, value)])
    return format_table(["model", "size", "convention", "paper", "ours", "ours vs paper"], rows, True)


def slope_table() -> str:
    rows = [
        [label, f"{_lean_slope('PT-DiT-XL', block):.2f}"]
        for label, block in (("lean", "lean"), ("released", "official"))
    ]
    return format_table(["block", "linear MACs per latent token per block (D²)"], rows, True)


def params_table() -> str:
    rows = []
    for preset, paper_m in PAPER_PARAMS_M.items():
        off, lean = count_model(preset, 256).params / 1e6, count_model(f"{preset}-lean", 256).params / 1e6
        rows.append(
            [
                preset,
                _fmt(paper_m, 0),
                _fmt(off),
                _change(off, paper_m),
                _fmt(lean),
                _change(lean, paper_m),
                "released" if abs(off - paper_m) < abs(lean - paper_m) else "lean",
            ]
        )
    headers = ["preset", "Table 4 (M)", "released (M)", "vs Table 4", "lean (M)", "vs Table 4", "nearer"]
    return format_table(headers, rows, True)


def terms_table() -> str:
    """Which text length and which proxy terms reproduce the paper's PT-DiT numbers (lean block, linear)."""
    rows = []
    for name, size, frames in (
        ("PT-DiT-L-lean", 256, 1),
        ("PT-DiT-L-lean", 2048, 1),
        ("PT-DiT-H-lean", 256, 1),
        ("PT-DiT-XL-lean", 256, 48),
        ("PT-DiT-XL-lean", 1024, 48),
    ):
        value = PAPER_GMACS[(name, size, frames)][0]
        base = count_model(name, size, frames=frames)
        D2 = base.hidden_size**2
        proxy_terms = sum(
            v.linear
            for k, v in base.modules.items()
            if k.startswith("blocks.proxy_attn")
            or k in ("blocks.visual_attn.to_k", "blocks.visual_attn.to_v")
        )
        m64 = base.linear - proxy_terms + base.depth * 6 * 64 * D2
        rows.append(
            [
                name,
                _size(size, frames),
                _fmt(value),
                _change(base.linear / 1e9, value),
                _change(count_model(name, size, frames=frames, text_len=200).linear / 1e9, value),
                _change((base.linear - proxy_terms) / 1e9, value),
                _change(m64 / 1e9, value) if frames > 1 else "–",
                _fmt(proxy_terms / base.depth / D2, 0),
            ]
        )
    headers = [
        "model",
        "size",
        "paper",
        "120 text tokens",
        "200 text tokens",
        "no proxy terms",
        "64 proxies in all",
    ]
    return format_table(headers + ["6·M per block (D²)"], rows, True)


def attention_share_table() -> str:
    rows = []
    for size in (256, 512, 1024, 2048):
        off, lean = count_model("PT-DiT-XL", size), count_model("PT-DiT-XL-lean", size)
        p = math.prod(off.window)
        rows.append(
            [
                f"{size}²",
                "x".join(map(str, off.window)),
                off.tokens,
                f"{100 * attention_share_formula(p, off.tokens):.2f}%",
                f"{100 * off.attention_vs_full:.2f}%",
                f"{100 * lean.attention_vs_full:.2f}%",
                f"{PAPER_SHARES[size]}%",
                f"{100 * attention_share_formula(64, off.tokens):.2f}%",
            ]
        )
    headers = [
        "size",
        "window",
        "N",
        "1/p²+1/p+2p/N",
        "released (counted)",
        "lean (counted)",
        "paper (printed)",
    ]
    return format_table(headers + ["formula, p = 64"], rows, True)


# (comparison, PT-DiT preset, peer, size, latent frames): the paper's headline comparisons
HEADLINES = (
    ("PT-DiT-B vs DiT-B/2", "PT-DiT-B", "DiT-B/2", 1024, 1),
    ("PT-DiT-L vs PixArt-alpha", "PT-DiT-L", "PixArt-alpha", 512, 1),
    ("PT-DiT-L vs PixArt-alpha", "PT-DiT-L", "PixArt-alpha", 2048, 1),
    ("PT-DiT-XL vs CogVideoX-2B", "PT-DiT-XL", "CogVideoX-2B", 1024, VIDEO_FRAMES),
    ("PT-DiT-H vs CogVideoX-2B", "PT-DiT-H", "CogVideoX-2B", 1024, VIDEO_FRAMES),
)


def headline_table() -> str:
    """Change in MACs of each headline comparison: from the paper's own numbers, then from ours in three ways."""
    rows = []
    for label, preset, peer, size, frames in HEADLINES:
        paper_pt, _ = (
            PAPER_GMACS.get((f"{preset}-lean", size, frames)) or PAPER_EXTRA[(f"{preset}-lean", size, frames)]
        )
        paper_peer, peer_conv = PAPER_GMACS.get((peer, size, frames)) or PAPER_EXTRA[(peer, size, frames)]
        lean, off = (count_model(m, size, frames=frames) for m in (f"{preset}-lean", preset))
        other = count_model(peer, size, frames=frames)
        rows.append(
            [
                label,
                _size(size, frames),
                f"linear vs {peer_conv}",
                _change(paper_pt, paper_peer),
                _change(lean.linear, getattr(other, peer_conv)),
                _change(lean.linear, other.linear),
                _change(lean.total, other.total),
                _change(off.linear, other.linear),
                _change(off.total, other.total),
            ]
        )
    headers = [
        "comparison",
        "size",
        "paper's conventions",
        "paper",
        "lean, paper's conventions",
        "lean, linear",
    ]
    return format_table(headers + ["lean, total", "released, linear", "released, total"], rows, True)


def equal_width_table() -> str:
    """PT-DiT-XL (D = 1152, 28 blocks) against PixArt-alpha and DiT-XL/2, which have the same width and depth."""
    rows = []
    for size in IMAGE_SIZES:
        off, lean, pix, dit = (
            count_model(m, size) for m in ("PT-DiT-XL", "PT-DiT-XL-lean", "PixArt-alpha", "DiT-XL/2")
        )
        rows.append(
            [
                f"{size}²",
                _fmt(off.total / 1e9),
                _fmt(lean.total / 1e9),
                _fmt(pix.total / 1e9),
                _fmt(dit.total / 1e9),
                f"{off.linear / pix.linear:.2f}",
                f"{off.total / pix.total:.2f}",
                f"{lean.linear / pix.linear:.2f}",
                f"{lean.total / pix.total:.2f}",
            ]
        )
    headers = ["size", "XL released, total", "XL lean, total", "PixArt-alpha, total", "DiT-XL/2, total"]
    headers += ["released / PixArt, linear", "released / PixArt, total", "lean / PixArt, linear"]
    return format_table(headers + ["lean / PixArt, total"], rows, True)


def all_models_table(frames: int) -> str:
    """GMACs linear / total of every model at the default sizes (images, or video with `frames` latent frames)."""
    sizes = IMAGE_SIZES if frames == 1 else VIDEO_SIZES
    models = [m for m in MODEL_NAMES if (m != "CogVideoX-2B" if frames == 1 else m not in IMAGE_ONLY)]
    rows = []
    for m in models:
        counts = [count_model(m, s, frames=frames) for s in sizes]
        cells = [f"{_fmt(c.linear / 1e9)} / {_fmt(c.total / 1e9)}" for c in counts]
        rows.append([m, _fmt(counts[0].params / 1e6), *cells])
    return format_table(["model", "params (M)", *(_size(s, frames) for s in sizes)], rows, True)


# the table builders of docs/complexity.md, by block name
TABLES: dict[str, Callable[[], str]] = {
    "summary": summary_table,
    "cross-check": cross_check_table,
    "peer-anchors": peer_anchors_table,
    "slope": slope_table,
    "params": params_table,
    "terms": terms_table,
    "attention-share": attention_share_table,
    "headlines": headline_table,
    "equal-width": equal_width_table,
    "all-images": lambda: all_models_table(1),
    "all-video": lambda: all_models_table(VIDEO_FRAMES),
}


def _built(template: str, check: bool) -> dict[str, str]:
    """The tables of the blocks that `template` has. `check=False` keeps the cross-check table as it stands
    (its FlopCounterMode runs take a while and need diffusers for the peers)."""
    built = {}
    for name, body in blocks(template).items():
        if name == "cross-check" and not check:
            built[name] = body
        elif name in TABLES:
            built[name] = TABLES[name]()
    return built  # a block without a builder is left out, so that fill_blocks names it


def markdown_report(template: str, check: bool = True) -> str:
    """`template` (the text of docs/complexity.md) with every generated table refilled from the counts."""
    return fill_blocks(template, _built(template, check))


def stale_tables(template: str, check: bool = True) -> list[str]:
    """The block names of `template` whose tables differ from what the counts give now."""
    return stale_blocks(template, _built(template, check))

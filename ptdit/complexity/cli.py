"""`ptdit flops` (= `python -m ptdit.complexity`): counts, breakdowns, FlopCounterMode checks, plot, report."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from collections.abc import Sequence
from typing import Any

from ..config import PTDiTConfig
from ..options import add_list_option
from .costs import IMAGE_SIZES, VIDEO_FRAMES, VIDEO_SIZES
from .figure import plot
from .measurement import measure_model, reference_count
from .registry import IMAGE_ONLY, MODEL_NAMES, canonical_name, count_model
from .report import markdown_report, stale_tables
from .tables import ROW_HEADERS, _fmt, _pct, format_table, row_cells


def _parse_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)(?:[x×](\d+))?", text.strip())
    if not m:
        raise ValueError(f"size {text!r} is not N or HxW in pixels (e.g. 1024 or 512x768)")
    h = int(m.group(1))
    return h, int(m.group(2) or h)


def _parse_window(text: str) -> tuple[int, int, int]:
    try:
        window = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        window = ()
    if len(window) != 3 or min(window) < 1:
        raise ValueError(f"window {text!r} must be three positive ints p_f p_h p_w (e.g. 1 8 8)")
    return window  # type: ignore[return-value]


def _parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    defaults = PTDiTConfig()
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not hasattr(defaults, key):
            raise ValueError(
                f"--set {item!r}: expected FIELD=VALUE with a PTDiTConfig field "
                f"({', '.join(f.name for f in dataclasses.fields(PTDiTConfig))})"
            )
        current = getattr(defaults, key)
        if isinstance(current, bool):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"--set {item!r}: {key} takes true or false")
            out[key] = value.lower() in ("true", "1")
        elif isinstance(current, int):
            out[key] = int(value)
        elif isinstance(current, float):
            out[key] = float(value)
        elif isinstance(current, tuple):
            out[key] = _parse_window(value)
        else:
            out[key] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="ptdit flops",
        description="Analytic MACs (the paper's 'GFLOPs') and parameters of PT-DiT and its peers, per sample, in "
        "the linear (weights only) and total (+ attention matmuls) conventions.",
    )
    add_list_option(ap, "--models", metavar="NAME", help=f"models (default: all): {', '.join(MODEL_NAMES)}")
    add_list_option(
        ap,
        "--sizes",
        metavar="N|HxW",
        help=f"pixel sizes (default: images {IMAGE_SIZES}, video {VIDEO_SIZES})",
    )
    add_list_option(
        ap,
        "--frames",
        type=int,
        metavar="F",
        help=f"latent frames, 1 = image (default: 1 and {VIDEO_FRAMES}); image-only models skip F > 1",
    )
    add_list_option(
        ap,
        "--window",
        type=int,
        length=3,
        metavar="P",
        help="PT-DiT window p_f p_h p_w, e.g. 1 8 8 (default: ratio_for_size, 64 windows)",
    )
    ap.add_argument("--text-len", type=int, help="text tokens (default: 120; CogVideoX 226)")
    ap.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="FIELD=VALUE",
        help="PTDiTConfig overrides for the PT-DiT rows, e.g. use_giim=false attention=full",
    )
    ap.add_argument("--json", action="store_true", help="print a JSON list of rows")
    ap.add_argument("--breakdown", action="store_true", help="also print the cost of every module")
    ap.add_argument(
        "--check",
        action="store_true",
        help="also run each model under torch's FlopCounterMode on the meta device and compare",
    )
    ap.add_argument("--plot", metavar="FILE.png", help="write GMACs against resolution (log scale)")
    ap.add_argument(
        "--markdown",
        metavar="FILE.md",
        help="refill the generated tables of FILE.md (docs/complexity.md), each between <!-- NAME --> and "
        "<!-- /NAME -->",
    )
    ap.add_argument(
        "--verify",
        action="store_true",
        help="with --markdown: write nothing; exit 1 and name the tables of FILE.md that are out of date",
    )
    return ap


def _cases(args: argparse.Namespace) -> list[tuple[str, int, int, int]]:
    """(model, height, width, frames) rows. Without --frames: images for DiT / PixArt, 48 latent frames for
    CogVideoX, both for PT-DiT (images only when --sizes is given)."""
    models = [canonical_name(m) for m in args.models] if args.models else list(MODEL_NAMES)
    sizes = [_parse_size(s) for s in args.sizes] if args.sizes else None
    cases = []
    for m in models:
        if args.frames:
            frames = [f for f in args.frames if not (m in IMAGE_ONLY and f != 1)]
        elif m in IMAGE_ONLY:
            frames = [1]
        elif m == "CogVideoX-2B":
            frames = [VIDEO_FRAMES]
        else:
            frames = [1] if sizes else [1, VIDEO_FRAMES]
        for f in frames:
            for h, w in sizes or [(s, s) for s in (IMAGE_SIZES if f == 1 else VIDEO_SIZES)]:
                cases.append((m, h, w, f))
    if not cases:
        raise ValueError(
            f"none of {models} can be counted at frames {args.frames} (DiT and PixArt are image models)"
        )
    frame_order = {f: i for i, f in enumerate(sorted({c[3] for c in cases}))}
    return sorted(cases, key=lambda c: frame_order[c[3]])  # images first, models in the order given


def cli_main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    window = _parse_window(",".join(map(str, args.window))) if args.window else None
    overrides = _parse_overrides(args.set)
    if args.text_len is not None and args.text_len < 1:
        raise ValueError(f"--text-len must be >= 1, got {args.text_len}")
    if args.verify and not args.markdown:
        raise ValueError("--verify checks the tables of a --markdown FILE.md")
    if args.markdown:
        from pathlib import Path

        from ..io import atomic_write_text

        template = Path(args.markdown).read_text()
        if args.verify:
            if stale := stale_tables(template):
                print(
                    f"{args.markdown}: out of date: {', '.join(stale)} (rerun without --verify)",
                    file=sys.stderr,
                )
                return 1
            return 0
        atomic_write_text(args.markdown, markdown_report(template))
    cases = _cases(args)
    counts = [count_model(m, h, w, f, window, args.text_len, overrides) for m, h, w, f in cases]
    rows = [c.row() for c in counts]
    if args.check:
        for (m, h, w, f), row in zip(cases, rows):
            kw = dict(window=window, text_len=args.text_len, overrides=overrides)
            ref = reference_count(m, h, w, f, **kw).cost
            got = measure_model(m, h, w, f, **kw).cost
            row.update(
                measured_gmacs_linear=got.linear / 1e9,
                measured_gmacs_total=got.total / 1e9,
                measured_params=got.params,
                check_max_deviation_pct=100
                * max(
                    abs(ref.linear / got.linear - 1),
                    abs(ref.total / got.total - 1),
                    abs(ref.params / got.params - 1),
                ),
            )
    if args.plot:
        plot(counts, args.plot)
    if args.json:
        print(json.dumps(rows, indent=1))
    elif not (args.markdown and not (args.models or args.sizes or args.frames)):
        headers = list(ROW_HEADERS) + (["FlopCounter dev."] if args.check else [])
        body = [
            row_cells(c) + ([_pct(r["check_max_deviation_pct"])] if args.check else [])
            for c, r in zip(counts, rows)
        ]
        print(format_table(headers, body))
        if args.breakdown:
            for c in counts:
                print(f"\n{c.model} {c.height}x{c.width} x {c.frames} frames (window {c.window}):")
                print(
                    format_table(
                        ["module", "params", "GMACs linear", "GMACs attention"],
                        [
                            [
                                k or "(root)",
                                f"{v.params:,}",
                                _fmt(v.linear / 1e9, 4),
                                _fmt(v.attention / 1e9, 4),
                            ]
                            for k, v in c.modules.items()
                        ],
                    )
                )
    written = [path for path in (args.markdown, args.plot) if path]
    if written:  # on stderr: stdout may be --json
        print("wrote " + " and ".join(written), file=sys.stderr)
    return 0


def main() -> int:
    from ..cli import main as ptdit_main

    return ptdit_main(["flops", *sys.argv[1:]])

"""Parameter counts of the presets next to the paper's Table 4: `python -m ptdit.presets` or `ptdit presets`.

Counts are exact (the models are built on the meta device). The released block has 30 D^2 + 36 D parameters per
block; only PT-DiT-XL lands on the paper's number (1142 M vs 1131.6 M, -0.9%): the paper's smaller variants were
evidently not this structure (docs/paper.md §3), and its S model is class-conditional (ImageNet), where ours
carries a text projection.
"""

from __future__ import annotations

import argparse
import json

import torch

from .config import PRESETS, PTDiTConfig
from .model import PTDiT

# Table 4 of the paper (arXiv 2409.04005v2, A.1): parameters in millions as printed by the authors.
PAPER_PARAMS_M = {"PT-DiT-S": 32, "PT-DiT-B": 144, "PT-DiT-L": 605, "PT-DiT-XL": 1142, "PT-DiT-H": 1795}


def count_parameters(config: PTDiTConfig) -> int:
    with torch.device("meta"):
        return PTDiT(config).num_parameters()


def preset_table(**overrides) -> list[dict]:
    rows = []
    for name in PRESETS:
        for block in ("official", "lean"):
            cfg = PTDiTConfig.from_preset(name, block=block, **overrides)
            params = count_parameters(cfg)
            paper = PAPER_PARAMS_M[name]
            rows.append(
                dict(
                    preset=name,
                    block=block,
                    depth=cfg.depth,
                    hidden_size=cfg.hidden_size,
                    num_heads=cfg.num_heads,
                    params=params,
                    params_m=round(params / 1e6, 1),
                    paper_m=paper,
                    diff_pct=round(100 * (params / 1e6 - paper) / paper, 1),
                )
            )
    return rows


def cli_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ptdit presets", description=__doc__.splitlines()[0])
    parser.add_argument("--caption-channels", type=int, default=4096, help="text width (4096 = T5-XXL)")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    args = parser.parse_args(argv)
    rows = preset_table(caption_channels=args.caption_channels)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(
        f"{'preset':<10} {'block':<9} {'depth':>5} {'D':>5} {'heads':>5} {'params (M)':>11} {'paper (M)':>10} {'diff':>7}"
    )
    for r in rows:
        print(
            f"{r['preset']:<10} {r['block']:<9} {r['depth']:>5} {r['hidden_size']:>5} {r['num_heads']:>5} "
            f"{r['params_m']:>11.1f} {r['paper_m']:>10} {r['diff_pct']:>6.1f}%"
        )
    print(f"\ncaption_channels={args.caption_channels}, out_channels=8, patch 2.")
    print(" ".join(line.strip() for line in __doc__.splitlines()[2:]).strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_main())

"""What the paper reports: its GMACs ("GFLOPs"), Table 4 parameters, 3.3 attention shares and formula."""

from __future__ import annotations

from .costs import VIDEO_SIZES

# =============================================================================================== paper values
# Reported numbers (docs/paper.md §5.1-5.4 and §8.1): GMACs that the paper labels "GFLOPs".
# (model, size, latent frames) -> (value, convention). DiT's are its own fvcore numbers (total convention).
PAPER_GMACS: dict[tuple[str, int, int], tuple[float, str]] = {
    ("DiT-XL/2", 256, 1): (118.6, "total"),
    ("DiT-XL/2", 512, 1): (524.6, "total"),
    **{
        ("PixArt-alpha", s, 1): (v, "linear")
        for s, v in zip((256, 512, 1024, 2048), (142.8, 542.5, 2141.2, 8536.1))
    },
    **{("CogVideoX-2B", s, 48): (v, "linear") for s, v in zip(VIDEO_SIZES, (16624.3, 65590.2, 261454.3))},
    **{
        ("PT-DiT-L-lean", s, 1): (v, "linear")
        for s, v in zip((256, 512, 1024, 2048), (101.7, 366.1, 1423.9, 5664.9))
    },
    **{
        ("PT-DiT-H-lean", s, 1): (v, "linear")
        for s, v in zip((256, 512, 1024, 2048), (302.1, 1089.1, 4236.9, 16828.3))
    },
    **{("PT-DiT-XL-lean", s, 48): (v, "linear") for s, v in zip(VIDEO_SIZES, (7701.7, 30264.2, 120514.0))},
    ("PT-DiT-B-lean", 1024, 1): (334.2, "linear"),
}
# Not required anchors, shown for context: series assignment inferred in docs/paper.md §5.3 / §5.4.
PAPER_EXTRA: dict[tuple[str, int, int], tuple[float, str]] = {
    ("PT-DiT-B-lean", 512, 1): (86.1, "linear"),
    ("PT-DiT-H-lean", 1024, 48): (201764.7, "linear"),
    ("DiT-B/2", 512, 1): (106.1, "total"),
    ("DiT-B/2", 1024, 1): (650.5, "total"),
}
PAPER_PARAMS_M = {
    "PT-DiT-S": 32,
    "PT-DiT-B": 144,
    "PT-DiT-L": 605,
    "PT-DiT-XL": 1142,
    "PT-DiT-H": 1795,
}  # Table 4
PAPER_SHARES = {256: 34.3, 512: 9.7, 1024: 4.7, 2048: 2.3}  # printed in 3.3 for (1,2,2) ... (1,16,16)


def paper_value(model: str, size: int, frames: int) -> tuple[float, str] | None:
    return PAPER_GMACS.get((model, size, frames)) or PAPER_EXTRA.get((model, size, frames))


def attention_share_formula(p: int, tokens: int, local_attentions: int = 2) -> float:
    """Paper 3.3: PT-DiT attention / full self-attention = 1/p^2 + 1/p + 2p/N (p tokens per window, N tokens).

    `local_attentions` window attentions per block: 2 for the official block (WSA + SWSA), 1 for the lean block.
    """
    return 1 / p**2 + 1 / p + local_attentions * p / tokens

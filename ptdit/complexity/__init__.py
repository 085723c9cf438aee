"""Analytic multiply-accumulates (MACs) and parameters of PT-DiT and its peers, and the `ptdit flops` command.

Every count is per module and per sample (batch 1, one forward pass; classifier-free guidance doubles it), in two
conventions that are always shown side by side:

* ``linear``: MACs of the weight layers only, i.e. every nn.Linear and the patch-embedding convolution (a linear
  map of each patch). This is what the paper plots for PixArt-alpha, CogVideoX and PT-DiT (docs/paper.md §5.5).
* ``total``: ``linear`` plus the attention matmuls QK^T and AV (2 * Lq * Lk * D MACs per attention), DiT's
  fvcore convention.

Not counted, as in fvcore and torch.utils.flop_counter.FlopCounterMode: norms, adaLN modulation, activations,
softmax, residual adds, positional embeddings, embedding-table lookups, proxy pooling, the cyclic shift, and the
element-wise "interpolate" / "linear" proxy injections of the ablations. FlopCounterMode reports FLOPs = 2 MACs
for mm, bmm, convolution and attention alike; `measure` divides by two.

Models: PT-DiT (any preset, official or lean block, any window, ablation flags, attention="full"), PixArt-alpha
(0.6 B), DiT-XL/2 and DiT-B/2 (class-conditional, adaLN-Zero) and CogVideoX-2B. `measure` and `build_reference`
run the real modules (ours, or diffusers' ports) under FlopCounterMode on the meta device, so every analytic count
can be checked against what the code actually executes.

Layout: costs (Cost, the ledger, input grids and defaults), counts (the per-model counters), registry (model
names, `count_model`), paper (the paper's numbers), measurement (FlopCounterMode on the real modules), tables,
figure, report (docs/complexity.md) and cli (`ptdit flops`).
"""

from .cli import build_parser, cli_main, main
from .costs import (
    COG_TEXT_LEN,
    IMAGE_SIZES,
    PIXART_TEXT_LEN,
    PT_TEXT_LEN,
    VAE_FACTOR,
    VIDEO_FRAMES,
    VIDEO_SIZES,
    Cost,
    latent_size,
    linear_cost,
)
from .counts import (
    DIT_SPECS,
    CogVideoXSpec,
    Count,
    DiTSpec,
    PixArtSpec,
    count_cogvideox,
    count_dit,
    count_pixart,
    count_ptdit,
)
from .figure import plot
from .measurement import LINEAR_OPS, Measurement, build_reference, measure, measure_model, reference_count
from .paper import (
    PAPER_EXTRA,
    PAPER_GMACS,
    PAPER_PARAMS_M,
    PAPER_SHARES,
    attention_share_formula,
    paper_value,
)
from .registry import IMAGE_ONLY, MODEL_NAMES, PEERS, PTDIT_MODELS, canonical_name, count_model, ptdit_config
from .report import REGENERATE, markdown_report
from .tables import ROW_HEADERS, default_cases, format_table, row_cells

__all__ = [
    "IMAGE_SIZES",
    "VIDEO_SIZES",
    "VIDEO_FRAMES",
    "VAE_FACTOR",
    "PT_TEXT_LEN",
    "PIXART_TEXT_LEN",
    "COG_TEXT_LEN",
    "REGENERATE",
    "Cost",
    "linear_cost",
    "Count",
    "latent_size",
    "count_ptdit",
    "PixArtSpec",
    "count_pixart",
    "DiTSpec",
    "DIT_SPECS",
    "count_dit",
    "CogVideoXSpec",
    "count_cogvideox",
    "PEERS",
    "PTDIT_MODELS",
    "MODEL_NAMES",
    "IMAGE_ONLY",
    "canonical_name",
    "ptdit_config",
    "count_model",
    "attention_share_formula",
    "PAPER_GMACS",
    "PAPER_EXTRA",
    "PAPER_PARAMS_M",
    "PAPER_SHARES",
    "paper_value",
    "LINEAR_OPS",
    "Measurement",
    "measure",
    "build_reference",
    "measure_model",
    "reference_count",
    "default_cases",
    "format_table",
    "ROW_HEADERS",
    "row_cells",
    "plot",
    "markdown_report",
    "build_parser",
    "cli_main",
    "main",
]

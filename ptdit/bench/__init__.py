"""Side-by-side speed and memory of PT-DiT and its peers: `ptdit bench` (and benchmarks/ scripts).

For each model and size, in one process on one device: the forward latency of the whole transformer at batch 2
(classifier-free guidance), the training-step time (forward + backward + AdamW step), peak memory, tokens/s and
achieved TFLOP/s from the analytic MAC counts of ptdit.complexity (FLOPs = 2 MACs; a training step = 3 forwards).
Every time is the median of repeated runs after warm-up, timed with CUDA events on a GPU and
time.perf_counter on a CPU. Models are built with random weights; peers come from diffusers at their
published configs.

Model names: "PT-DiT-S|B|L|XL|H" (official block), with "-lean" (lean block) or "-full" (the full-attention,
PixArt-alpha-style mode), and any of the fast-path flags "+fuse" (fused QKV), "+split" / "+flex" (shifted
windows without a dense mask), "+fast" (= +fuse, and +split on a GPU), "+compile" (torch.compile per block), "+graph" (one CUDA
graph per forward); peers "PixArt-alpha", "PixArt-alpha-S" (scaled down to PT-DiT-S's parameters, for CPUs),
"PixArt-alpha-T" (2 blocks, smoke runs), "DiT-XL/2", "Sana-0.6B", "CogVideoX-2B" (peers take "+compile" and "+graph").

`ptdit bench --peers` is the peers table instead: each model in each mode (eager, compiled, CUDA graphs) and phase
(forward, training step), timed with the steady protocol (steady: models interleaved per repeat, warm-up until
two consecutive medians agree within 3 %, median with min-max, the whole table twice, rows flagged where the
passes differ by more than 10 %), with the time ratio against the reference beside the FLOP ratio.

Layout: cases (Case, model names and flags, windows), models (builders), timing (clocks, memory, matmul
ceiling), measure (one row: `measure_case`), steady (the protocol: `steady_table`), peers (`peer_table`,
`ratios`), report (table, plot, files) and cli (`ptdit bench`).
"""

from .cases import FLAGS, PEERS, TEMPORAL_FACTOR, VAE_FACTOR, Case, default_window, parse_model
from .cli import (
    DEFAULT_IMAGE_SIZES,
    DEFAULT_MODELS,
    DEFAULT_VIDEOS,
    DTYPES,
    QUICK_CASES,
    QUICK_SIZES,
    build_parser,
    cases_for,
    cli_main,
    parse_sizes,
)
from .measure import environment, measure_case
from .models import Built, build
from .peers import peer_table, ratios
from .report import _fmt as _fmt  # used by benchmarks/gpu_check.py
from .report import markdown_table, plot, setup_line, write_outputs
from .steady import steady_table
from .timing import (
    CPU_TIMERS,
    free_memory,
    is_oom,
    matmul_tflops,
    peak_memory_gb,
    reset_peak_memory,
    sdpa_backend,
    set_cpu_timer,
    time_ms,
)

__all__ = [
    "VAE_FACTOR",
    "TEMPORAL_FACTOR",
    "DEFAULT_IMAGE_SIZES",
    "DEFAULT_VIDEOS",
    "FLAGS",
    "PEERS",
    "DEFAULT_MODELS",
    "QUICK_CASES",
    "QUICK_SIZES",
    "DTYPES",
    "Case",
    "Built",
    "parse_model",
    "default_window",
    "build",
    "CPU_TIMERS",
    "set_cpu_timer",
    "time_ms",
    "reset_peak_memory",
    "peak_memory_gb",
    "is_oom",
    "free_memory",
    "sdpa_backend",
    "matmul_tflops",
    "environment",
    "measure_case",
    "markdown_table",
    "setup_line",
    "plot",
    "write_outputs",
    "parse_sizes",
    "build_parser",
    "cases_for",
    "cli_main",
    "steady_table",
    "peer_table",
    "ratios",
]

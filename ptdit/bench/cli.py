"""`ptdit bench` (= `python -m ptdit.bench`): arguments, default and --quick cases, the run loop."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

import torch

from ..extras import require
from ..options import add_list_option
from .cases import IMAGE_PEERS, Case, parse_model
from .measure import measure_case
from .report import _fmt, write_outputs
from .timing import CPU_TIMERS, set_cpu_timer

DEFAULT_IMAGE_SIZES = (256, 512, 1024, 2048, 4096)
DEFAULT_VIDEOS = ((49, 480, 720), (96, 512, 512))
DEFAULT_MODELS = ("PT-DiT-L", "PT-DiT-L-lean", "PT-DiT-L+fast", "PT-DiT-L-full", "PixArt-alpha")
# --quick: (model, square sizes); PT-DiT-B (154 M parameters) only at 256^2 to stay under 5 minutes on 2 cores
QUICK_CASES = (
    ("PT-DiT-S+fast", (256, 512, 1024)),
    ("PT-DiT-S-lean+fast", (256, 512, 1024)),
    ("PT-DiT-S-full", (256, 512, 1024)),
    ("PixArt-alpha-S", (256, 512, 1024)),
    ("PT-DiT-B+fast", (256,)),
    ("PT-DiT-B-full", (256,)),
)
QUICK_SIZES = (256, 512, 1024)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# the package docstring's first line
DESCRIPTION = (
    "Side-by-side speed and memory of PT-DiT and its peers: `ptdit bench` (and benchmarks/ scripts)."
)


def parse_sizes(items: str | Sequence[str]) -> list[tuple[int, int, int]]:
    """['256', '512x768', '49x480x720'] (or one comma-separated string) -> [(1, 256, 256), (1, 512, 768),
    (49, 480, 720)] (frames, height, width)."""
    if isinstance(items, str):
        items = items.split(",")
    out = []
    for item in filter(None, (s.strip() for s in items)):
        try:
            parts = [int(p) for p in item.lower().split("x")]
        except ValueError:
            raise ValueError(f"size {item!r}: use S (square image), HxW (image) or FxHxW (video)") from None
        if len(parts) == 1:
            out.append((1, parts[0], parts[0]))
        elif len(parts) == 2:
            out.append((1, parts[0], parts[1]))
        elif len(parts) == 3:
            out.append(tuple(parts))
        else:
            raise ValueError(f"size {item!r}: use S (square image), HxW (image) or FxHxW (video)")
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ptdit bench", description=DESCRIPTION)
    add_list_option(p, "--models", metavar="NAME", help=f"model names (default: {' '.join(DEFAULT_MODELS)})")
    add_list_option(
        p,
        "--sizes",
        metavar="SIZE",
        help="sizes S, HxW or FxHxW in pixels (default 256..4096 images + 2 videos)",
    )
    p.add_argument(
        "--quick", action="store_true", help="small presets on CPU (PT-DiT-S/B, full attention, PixArt-S)"
    )
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="default bf16 on GPU, fp32 on CPU")
    p.add_argument("--batch", type=int, default=2, help="forward batch (2 = classifier-free guidance)")
    p.add_argument("--train-batch", type=int, default=None, help="training-step batch (default: --batch)")
    p.add_argument(
        "--warmup", type=int, default=None, help="untimed runs before timing (default 3 GPU, 1 CPU)"
    )
    p.add_argument(
        "--repeats", type=int, default=None, help="timed runs; the median is reported (default 10 / 3)"
    )
    p.add_argument("--no-train", action="store_true", help="time the forward only")
    p.add_argument(
        "--grad-checkpointing", action="store_true", help="checkpoint PT-DiT blocks in training steps"
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads (torch.set_num_threads)")
    p.add_argument(
        "--cpu-timer",
        choices=sorted(CPU_TIMERS),
        default="wall",
        help="CPU clock: wall, or process (CPU time; with --threads 1, steady on a shared machine)",
    )
    p.add_argument("--reference", default=None, help="add a forward-time ratio column against this model")
    p.add_argument(
        "--peers",
        action="store_true",
        help="the peers table: every model in each --modes and --phases, timed with the steady protocol "
        "(interleaved, warmed up until steady, the whole table twice; ratios against --reference, default "
        "the last model, beside the FLOP ratio)",
    )
    add_list_option(p, "--modes", metavar="MODE", help="--peers: eager compiled graph (default: all three)")
    add_list_option(p, "--phases", metavar="PHASE", help="--peers: forward train (default: both)")
    p.add_argument(
        "--compile-scope", choices=("model", "blocks"), default="model", help="--peers: what is compiled"
    )
    p.add_argument("--json", dest="json_path", help="write the rows as JSON here")
    p.add_argument("--markdown", help="write the markdown table here")
    p.add_argument("--plot", help="write the time-vs-resolution plot (PNG) here")
    return p


def _validate(args: argparse.Namespace) -> None:
    for name in ("batch", "train_batch", "repeats", "threads"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    if args.warmup is not None and args.warmup < 0:
        raise ValueError(f"--warmup must be >= 0, got {args.warmup}")
    if args.device and args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")


def cases_for(models: Sequence[str], sizes: Sequence[tuple[int, int, int]]) -> list[Case]:
    """Every model at every size it takes (image peers skip videos), in size-major order."""
    cases = []
    for f, h, w in sizes:
        for m in models:
            base, _ = parse_model(m)
            if f > 1 and base in IMAGE_PEERS:
                continue
            if f == 1 and base == "CogVideoX-2B":
                continue
            cases.append(Case(m, h, w, f))
    return cases


def peers_main(args: argparse.Namespace, argv: list[str]) -> int:
    """`ptdit bench --peers`: ptdit.bench.peers.peer_table with the steady protocol; JSON rows + markdown."""
    from ..io import atomic_write_text
    from . import peers
    from .measure import environment
    from .steady import cpu_timer

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    gpu = device.type == "cuda"
    dtype = DTYPES[args.dtype or ("bf16" if gpu else "fp32")]
    models = args.models or ["PT-DiT-L", "PixArt-alpha"]
    reference = args.reference or models[-1]
    sizes = [(h, w) for f, h, w in parse_sizes(args.sizes or ["512", "1024"]) if f == 1]
    timer = None if gpu else cpu_timer(CPU_TIMERS[args.cpu_timer])

    def on_group(p: int, label: str, rows: list) -> None:
        cells = ", ".join(
            f"{r.name} {_fmt(r.pass_medians()[-1] if r.pass_medians() else None, 2)} ms" for r in rows
        )
        print(f"pass {p + 1} {label}: {cells}", flush=True)

    rows = peers.peer_table(
        models, sizes, device, dtype, args.modes or peers.MODES, args.phases or peers.PHASES, args.batch,
        args.compile_scope, timer=timer, repeats=args.repeats or 10, on_group=on_group,
    )  # fmt: skip
    ratio_rows = peers.ratios(rows, reference)
    md = f"Command: `ptdit bench {' '.join(argv)}`\n\n" + peers.markdown(rows, ratio_rows)
    if args.json_path:
        data = {"environment": environment(device, dtype), "rows": rows, "ratios": ratio_rows}
        atomic_write_text(args.json_path, json.dumps(data, indent=1, default=str) + "\n")
    if args.markdown:
        atomic_write_text(args.markdown, md)
    print(md)
    return 0


def cli_main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    _validate(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    set_cpu_timer(args.cpu_timer)
    if args.peers:
        return peers_main(args, argv)
    if args.plot:  # before the measurements, not after
        require("matplotlib", "bench", "the plot of ptdit bench")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() and not args.quick else "cpu"))
    models = args.models
    sizes = parse_sizes(args.sizes) if args.sizes else None
    for m in models or ():
        parse_model(m)  # fail early on a bad name
    if args.quick:
        reference = args.reference or "PixArt-alpha-S"
        if models is None and sizes is None:
            cases = [Case(m, s, s) for s in QUICK_SIZES for m, sizes_ in QUICK_CASES if s in sizes_]
        else:
            cases = cases_for(
                models or [m for m, _ in QUICK_CASES], sizes or [(1, s, s) for s in QUICK_SIZES]
            )
    else:
        reference = args.reference
        default_sizes = [(1, s, s) for s in DEFAULT_IMAGE_SIZES] + list(DEFAULT_VIDEOS)
        cases = cases_for(models or list(DEFAULT_MODELS), sizes or default_sizes)
    gpu = device.type == "cuda"
    dtype = DTYPES[args.dtype or ("bf16" if gpu else "fp32")]
    warmup = args.warmup if args.warmup is not None else (3 if gpu else 1)
    repeats = args.repeats or (10 if gpu else 2 if args.quick else 3)  # --quick: < 5 min on 2 CPU cores
    rows = []
    for case in cases:
        t0 = time.perf_counter()
        row = measure_case(
            case,
            device,
            dtype,
            args.batch,
            args.train_batch,
            warmup,
            repeats,
            not args.no_train,
            grad_checkpointing=args.grad_checkpointing,
        )
        rows.append(row)
        print(
            f"{case.label:>12} {case.model:<22} forward {_fmt(row['forward_ms'])} ms  train {_fmt(row['train_ms'])} ms"
            f"  peak {_fmt(row['peak_mem_gb'], 2)} GB  ({time.perf_counter() - t0:.0f} s) {row['notes']}",
            flush=True,
        )
        write_outputs(rows, args.json_path, args.markdown, None, reference)  # partial results survive a crash
    command = "ptdit bench " + " ".join(argv)
    md = write_outputs(rows, args.json_path, args.markdown, args.plot, reference, command)
    print()
    print(md)
    for path in (args.json_path, args.markdown, args.plot):
        if path:
            print(f"wrote {path}")
    return 0

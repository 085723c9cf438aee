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
"DiT-XL/2", "Sana-0.6B", "CogVideoX-2B" (peers take "+compile" and "+graph").
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .config import PRESETS, PTDiTConfig, ratio_for_size
from .io import atomic_write_bytes, atomic_write_text

VAE_FACTOR = 8
TEMPORAL_FACTOR = 4  # causal video VAEs: 1 + 4k frames -> 1 + k latent frames
DEFAULT_IMAGE_SIZES = (256, 512, 1024, 2048, 4096)
DEFAULT_VIDEOS = ((49, 480, 720), (96, 512, 512))
FLAGS = ("fuse", "split", "flex", "fast", "compile", "graph")
PEERS = ("PixArt-alpha", "PixArt-alpha-S", "DiT-XL/2", "Sana-0.6B", "CogVideoX-2B")
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


# =============================================================================================== cases
@dataclass(frozen=True)
class Case:
    """One model at one size. frames are pixel frames (1 for images); latent frames = 1 + (frames - 1) // 4."""

    model: str
    height: int
    width: int
    frames: int = 1

    @property
    def latent_frames(self) -> int:
        return 1 + (self.frames - 1) // TEMPORAL_FACTOR

    @property
    def label(self) -> str:
        size = f"{self.height}x{self.width}"
        return size if self.frames == 1 else f"{self.frames}x{size}"


@dataclass
class Built:
    """A model ready to call: `run(batch)` makes inputs; `call(inputs)` runs one forward and returns a tensor."""

    module: nn.Module
    make_inputs: Callable[[int], dict[str, Any]]
    call: Callable[[dict[str, Any]], Tensor]
    tokens: int  # latent tokens per sample
    macs: int | None  # analytic MACs per sample (one forward), None if not counted
    attention_shape: tuple[int, int, int] | None = (
        None  # (sequences per sample, heads, length) of the main attention
    )
    head_dim: int = 0
    notes: str = ""


def parse_model(name: str) -> tuple[str, set[str]]:
    """'PT-DiT-L+fuse+split' -> ('PT-DiT-L', {'fuse', 'split'}); unknown names or flags raise ValueError."""
    base, *flags = name.split("+")
    unknown = sorted(set(flags) - set(FLAGS))
    if unknown:
        raise ValueError(
            f"unknown flag(s) {unknown} in model {name!r}; flags: {', '.join('+' + f for f in FLAGS)}"
        )
    flags_set = set(flags)
    if "fast" in flags_set:  # fused QKV + the shifted-window path that is faster on the device (see build)
        flags_set |= {"fuse", "auto-windows"}
        flags_set.discard("fast")
        if flags_set & {"split", "flex"}:
            flags_set.discard("auto-windows")
    if {"split", "flex"} <= flags_set:
        raise ValueError(f"model {name!r}: choose one of +split and +flex")
    if base in PEERS:
        if flags_set - {"compile", "graph"}:
            raise ValueError(f"peer {base} takes only +compile and +graph, got {name!r}")
        return base, flags_set
    preset, _ = _ptdit_variant(base)
    if preset not in PRESETS:
        raise ValueError(
            f"unknown model {name!r}; use PT-DiT-S|B|L|XL|H with -lean or -full and +flags, or one of {PEERS}"
        )
    return base, flags_set


def _ptdit_variant(base: str) -> tuple[str, str]:
    for suffix in ("-lean", "-full"):
        if base.endswith(suffix):
            return base[: -len(suffix)], suffix[1:]
    return base, "official"


def _largest_divisor(tokens: int, cap: int = 16) -> int:
    return max(d for d in range(1, cap + 1) if tokens % d == 0)


def default_window(height: int, width: int, latent_frames: int, patch: int = 2) -> tuple[int, int, int]:
    """The paper's compression ratio (ptdit.config.ratio_for_size), made to divide the token grid.

    Images keep 8 x 8 windows per side; video takes p_f = 4 when the latent frames divide by 4, else 1; when a
    side's token count does not divide by the ratio, both sides take their largest divisor <= 16
    (49x480x720 -> (1, 15, 15), as in bench-protocol C.7).
    """
    pf, ph, pw = ratio_for_size(height, width, latent_frames)
    h, w = height // (VAE_FACTOR * patch), width // (VAE_FACTOR * patch)
    pf = pf if latent_frames % pf == 0 else 1
    if h % ph or w % pw:
        ph, pw = _largest_divisor(h), _largest_divisor(w)
    return pf, ph, pw


def _check_case(case: Case, factor: int, patch: int) -> None:
    for name, s in (("height", case.height), ("width", case.width)):
        if s < 1 or s % (factor * patch):
            raise ValueError(
                f"{case.model}: {name} {s}px must be a multiple of {factor * patch} (VAE factor {factor} x patch {patch})"
            )
    if case.frames < 1 or (case.frames - 1) % TEMPORAL_FACTOR and case.frames % TEMPORAL_FACTOR:
        raise ValueError(f"{case.model}: frames {case.frames} must be 1, 4k or 4k + 1")


# =============================================================================================== builders
def _rand(*shape: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    return torch.randn(*shape, device=device, dtype=dtype)


def _build_ptdit(
    case: Case, base: str, device: torch.device, dtype: torch.dtype, text_len: int = 120
) -> Built:
    from . import complexity
    from .model import PTDiT

    preset, variant = _ptdit_variant(base)
    _check_case(case, VAE_FACTOR, 2)
    F_, h, w = case.latent_frames, case.height // VAE_FACTOR, case.width // VAE_FACTOR
    window = default_window(case.height, case.width, F_)
    overrides: dict[str, Any] = {"window": window}
    if variant == "lean":
        overrides["block"] = "lean"
    if variant == "full":
        overrides["attention"] = "full"
    config = PTDiTConfig.from_preset(preset, **overrides)
    with torch.device(device):
        model = PTDiT(config).to(dtype)
    grid = (F_, h // 2, w // 2)
    macs = complexity.count_ptdit(config, case.height, case.width, F_, text_len).total

    def make_inputs(batch: int) -> dict[str, Any]:
        kw = dict(device=device, dtype=_param_dtype(model))
        return {
            "x": _rand(batch, config.in_channels, F_, h, w, **kw),
            "timestep": torch.rand(batch, device=device) * 1000,
            "encoder_hidden_states": _rand(batch, text_len, config.caption_channels, **kw),
            "encoder_attention_mask": torch.ones(batch, text_len, device=device, dtype=torch.bool),
        }

    N = math.prod(grid)
    n = math.prod(window)
    shape = (1, config.num_heads, N) if variant == "full" else (N // n, config.num_heads, n)
    return Built(
        model, make_inputs, lambda inp: model(**inp), N, macs, shape, config.head_dim, f"window {window}"
    )


def _param_dtype(model: nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def _build_pixart(
    case: Case, device: torch.device, dtype: torch.dtype, small: bool, text_len: int = 120
) -> Built:
    from diffusers import PixArtTransformer2DModel

    from . import complexity

    _check_case(case, VAE_FACTOR, 2)
    if case.frames != 1:
        raise ValueError("PixArt-alpha is an image model: give it image sizes, not video")
    # PixArt-XL-2-1024-MS; "-S" has PT-DiT-S's depth and parameters (D = 384 = 6 x 64 vs PT-DiT-S's 288)
    spec = complexity.PixArtSpec(depth=10, hidden_size=384, num_heads=6) if small else complexity.PixArtSpec()
    with torch.device(device):
        model = PixArtTransformer2DModel(
            num_attention_heads=spec.num_heads,
            attention_head_dim=spec.hidden_size // spec.num_heads,
            in_channels=4,
            out_channels=8,
            num_layers=spec.depth,
            cross_attention_dim=spec.hidden_size,
            caption_channels=4096,
            sample_size=128,
            use_additional_conditions=True,
        ).to(dtype)
    h, w = case.height // VAE_FACTOR, case.width // VAE_FACTOR
    macs = complexity.count_pixart(case.height, case.width, text_len, spec).total

    def make_inputs(batch: int) -> dict[str, Any]:
        kw = dict(device=device, dtype=_param_dtype(model))
        return {
            "hidden_states": _rand(batch, 4, h, w, **kw),
            "encoder_hidden_states": _rand(batch, text_len, 4096, **kw),
            "timestep": torch.rand(batch, device=device) * 1000,
            "encoder_attention_mask": torch.ones(batch, text_len, device=device),
            "added_cond_kwargs": {
                "resolution": torch.tensor([[case.height, case.width]] * batch, device=device, **_f(model)),
                "aspect_ratio": torch.tensor(
                    [[case.height / case.width]] * batch, device=device, **_f(model)
                ),
            },
            "return_dict": False,
        }

    N = (h // 2) * (w // 2)
    return Built(
        model,
        make_inputs,
        lambda inp: model(**inp)[0],
        N,
        macs,
        (1, spec.num_heads, N),
        72 if not small else 64,
    )


def _f(model: nn.Module) -> dict[str, torch.dtype]:
    return {"dtype": _param_dtype(model)}


def _build_dit(case: Case, device: torch.device, dtype: torch.dtype) -> Built:
    from diffusers import DiTTransformer2DModel

    from . import complexity

    _check_case(case, VAE_FACTOR, 2)
    if case.frames != 1:
        raise ValueError("DiT-XL/2 is an image model: give it image sizes, not video")
    with torch.device(device):
        model = DiTTransformer2DModel(
            num_attention_heads=16,
            attention_head_dim=72,
            in_channels=4,
            out_channels=8,
            num_layers=28,
            sample_size=32,
        ).to(dtype)
    h, w = case.height // VAE_FACTOR, case.width // VAE_FACTOR
    spec = complexity.DiTSpec(layout="diffusers")
    macs = complexity.count_dit(case.height, case.width, spec).total

    def make_inputs(batch: int) -> dict[str, Any]:
        return {
            "hidden_states": _rand(batch, 4, h, w, device=device, dtype=_param_dtype(model)),
            "timestep": torch.randint(0, 1000, (batch,), device=device),
            "class_labels": torch.randint(0, 1000, (batch,), device=device),
            "return_dict": False,
        }

    N = (h // 2) * (w // 2)
    return Built(model, make_inputs, lambda inp: model(**inp)[0], N, macs, (1, 16, N), 72)


def _build_sana(case: Case, device: torch.device, dtype: torch.dtype, text_len: int = 300) -> Built:
    from diffusers import SanaTransformer2DModel

    factor = 32  # DC-AE f32c32
    _check_case(case, factor, 1)
    if case.frames != 1:
        raise ValueError("Sana-0.6B is an image model: give it image sizes, not video")
    with torch.device(device):  # Sana_600M_1024px
        model = SanaTransformer2DModel(
            in_channels=32,
            out_channels=32,
            num_attention_heads=36,
            attention_head_dim=32,
            num_layers=28,
            num_cross_attention_heads=16,
            cross_attention_head_dim=72,
            cross_attention_dim=1152,
            caption_channels=2304,
            mlp_ratio=2.5,
            sample_size=32,
            patch_size=1,
        ).to(dtype)
    h, w = case.height // factor, case.width // factor

    def make_inputs(batch: int) -> dict[str, Any]:
        kw = dict(device=device, dtype=_param_dtype(model))
        return {
            "hidden_states": _rand(batch, 32, h, w, **kw),
            "encoder_hidden_states": _rand(batch, text_len, 2304, **kw),
            "timestep": torch.rand(batch, device=device) * 1000,
            "encoder_attention_mask": torch.ones(batch, text_len, device=device),
            "return_dict": False,
        }

    return Built(
        model,
        make_inputs,
        lambda inp: model(**inp)[0],
        h * w,
        None,
        None,
        32,
        "linear attention; MACs not counted",
    )


def _build_cogvideox(case: Case, device: torch.device, dtype: torch.dtype, text_len: int = 226) -> Built:
    from diffusers import CogVideoXTransformer3DModel

    from . import complexity

    _check_case(case, VAE_FACTOR, 2)
    with torch.device(device):  # CogVideoX-2B: the class defaults are the 2B config
        model = CogVideoXTransformer3DModel(sample_frames=49, sample_height=60, sample_width=90).to(dtype)
    F_, h, w = case.latent_frames, case.height // VAE_FACTOR, case.width // VAE_FACTOR
    macs = complexity.count_cogvideox(case.height, case.width, F_, text_len).total

    def make_inputs(batch: int) -> dict[str, Any]:
        kw = dict(device=device, dtype=_param_dtype(model))
        return {
            "hidden_states": _rand(batch, F_, 16, h, w, **kw),  # CogVideoX takes (B, F, C, H, W)
            "encoder_hidden_states": _rand(batch, text_len, 4096, **kw),
            "timestep": torch.randint(0, 1000, (batch,), device=device),
            "return_dict": False,
        }

    N = F_ * (h // 2) * (w // 2)
    return Built(model, make_inputs, lambda inp: model(**inp)[0], N, macs, (1, 30, N + text_len), 64)


def build(case: Case, device: torch.device | str, dtype: torch.dtype) -> Built:
    """Build `case.model` (random weights) on `device` in `dtype`, with its fast-path flags applied."""
    device = torch.device(device)
    base, flags = parse_model(case.model)
    with contextlib.suppress(
        ImportError
    ):  # diffusers warns on every .to(dtype) of a peer; keep the output readable
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.set_verbosity_error()
    if base == "PixArt-alpha" or base == "PixArt-alpha-S":
        built = _build_pixart(case, device, dtype, small=base.endswith("-S"))
    elif base == "DiT-XL/2":
        built = _build_dit(case, device, dtype)
    elif base == "Sana-0.6B":
        built = _build_sana(case, device, dtype)
    elif base == "CogVideoX-2B":
        built = _build_cogvideox(case, device, dtype)
    else:
        built = _build_ptdit(case, base, device, dtype)
    from . import fast

    if "fuse" in flags:
        fast.fuse_qkv(built.module)
    if "auto-windows" in flags and device.type == "cuda":
        # masked SDPA falls back to a slower kernel on a GPU (bench-protocol C.3); on a CPU the mask is nearly
        # free and "split" only adds work (benchmarks/results/cpu_fastpaths.md), so +fast keeps "sdpa" there
        flags = flags | {"split"}
    if "split" in flags or "flex" in flags:
        fast.set_attention_backend(built.module, "split" if "split" in flags else "flex")
    if "compile" in flags:
        if hasattr(built.module, "attention_backend"):
            built.module.attention_backend = (
                "sdpa"  # split/flex are eager-mode paths (see fast.compile_blocks)
            )
            built.notes += "; compiled blocks use masked sdpa"
            fast.compile_blocks(built.module)
        else:
            for block in built.module.transformer_blocks:
                block.compile(dynamic=False)
    return built


# =============================================================================================== timing
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CPU_TIMERS = {"wall": time.perf_counter, "process": time.process_time}
_CPU_TIMER = ["wall"]


def set_cpu_timer(name: str) -> None:
    """CPU timing clock: "wall" (time.perf_counter) or "process" (CPU seconds of this process: steadier on a
    busy machine when torch runs one thread, since time spent descheduled is not counted)."""
    if name not in CPU_TIMERS:
        raise ValueError(f"unknown CPU timer {name!r}; use one of {sorted(CPU_TIMERS)}")
    _CPU_TIMER[0] = name


def time_ms(fn: Callable[[], Any], device: torch.device, warmup: int = 2, repeats: int = 5) -> list[float]:
    """Run fn warmup times, then `repeats` timed times; returns the times in ms (CUDA events on a GPU,
    the clock chosen by `set_cpu_timer` on a CPU)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            clock = CPU_TIMERS[_CPU_TIMER[0]]
            t0 = clock()
            fn()
            times.append(1000 * (clock() - t0))
    return times


def _rss_peak_gb() -> float | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(m.group(1)) * 1024 / 1e9 if m else None


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak: CUDA allocator peak on a GPU, the process's peak RSS (VmHWM) on a CPU."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")


def peak_memory_gb(device: torch.device) -> float | None:
    """GB (1e9 bytes): peak CUDA memory allocated on a GPU; peak resident set of the whole process on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    return _rss_peak_gb()


def is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def sdpa_backend(
    device: torch.device, dtype: torch.dtype, shape: tuple[int, int, int] | None, head_dim: int
) -> str:
    """The SDPA kernel torch's dispatcher picks for the model's main attention (batch 2), e.g. 'CUDNN_ATTENTION'."""
    if shape is None or head_dim == 0:
        return "n/a"
    try:
        seqs, heads, length = shape
        q = torch.empty(2 * seqs, heads, length, head_dim, device=device, dtype=dtype)
        choice = torch._fused_sdp_choice(q, q, q)
        return torch.nn.attention.SDPBackend(choice).name
    except Exception as e:  # a probe only: never fail a benchmark over it
        return f"unknown ({type(e).__name__})"


def matmul_tflops(
    device: torch.device | str, dtype: torch.dtype, size: int | None = None, repeats: int = 10
) -> float:
    """Achieved TFLOP/s of a dense size^3 matmul (default 8192 on a GPU, 1024 on a CPU): the ceiling to compare to."""
    device = torch.device(device)
    size = size or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    ms = statistics.median(time_ms(lambda: a @ b, device, warmup=3, repeats=repeats))
    return 2 * size**3 / (ms / 1000) / 1e12


# =============================================================================================== measure
def environment(device: torch.device | str, dtype: torch.dtype) -> dict[str, Any]:
    """Device name, torch version, threads, dtype: the setup a row was measured in."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or "cpu"
        with contextlib.suppress(OSError):
            m = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
            name = m.group(1).strip() if m else name
    return {
        "device": device.type,
        "device_name": name,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "threads": torch.get_num_threads(),
        "dtype": str(dtype).replace("torch.", ""),
        "timer": "cuda events" if device.type == "cuda" else _CPU_TIMER[0],
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def measure_case(
    case: Case,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    batch: int = 2,
    train_batch: int | None = None,
    warmup: int = 2,
    repeats: int = 5,
    train: bool = True,
    forward: bool = True,
    grad_checkpointing: bool = False,
) -> dict[str, Any]:
    """Build one model, time its forward (no grad, `dtype`) and a training step; a JSON-ready row.

    Training keeps fp32 weights and AdamW states and runs the model under bf16/fp16 autocast when `dtype` is
    half precision (mixed precision, as models are trained). Out-of-memory skips the phase with a note.
    """
    device = torch.device(device)
    base, flags = parse_model(case.model)
    train_batch = batch if train_batch is None else train_batch
    row: dict[str, Any] = {
        "model": case.model,
        "height": case.height,
        "width": case.width,
        "frames": case.frames,
        **environment(device, dtype),
        "batch": batch,
        "train_batch": train_batch if train else None,
        "forward_ms": None,
        "train_ms": None,
        "peak_mem_gb": None,
        "notes": [],
    }
    built = None
    try:
        built = build(case, device, dtype)
        model = built.module
        row.update(
            params=sum(p.numel() for p in model.parameters()),
            tokens=built.tokens,
            gmacs=None if built.macs is None else built.macs / 1e9,
            sdpa_backend=sdpa_backend(device, dtype, built.attention_shape, built.head_dim),
        )
        if built.notes:
            row["notes"].append(built.notes)
        if forward:
            _measure_forward(row, built, device, batch, warmup, repeats, "graph" in flags)
        if train:
            if "graph" in flags:
                row["notes"].append("training is timed without CUDA graphs")
            _measure_train(row, built, device, dtype, train_batch, warmup, repeats, grad_checkpointing)
    except Exception as e:  # one case never stops a benchmark: the row says what happened
        row["notes"].append(
            ("out of memory" if is_oom(e) else "failed") + f": {type(e).__name__}: {str(e)[:300]}"
        )
    finally:
        del built
        free_memory(device)
    peaks = [row.get(k) for k in ("forward_peak_mem_gb", "train_peak_mem_gb")]
    peaks = [p for p in peaks if p is not None]
    row["peak_mem_gb"] = max(peaks) if peaks else None
    row["notes"] = "; ".join(row["notes"])
    return row


def _measure_forward(
    row: dict[str, Any],
    built: Built,
    device: torch.device,
    batch: int,
    warmup: int,
    repeats: int,
    graph: bool,
) -> None:
    built.module.eval()
    try:
        inputs = built.make_inputs(batch)
        if (
            graph
            and inputs.get("encoder_attention_mask") is not None
            and hasattr(built.module, "attention_backend")
        ):
            inputs["encoder_attention_mask"] = None  # all ones; PTDiT validates a mask with a host sync
            row["notes"].append("CUDA graph without the (all-ones) text mask")
        reset_peak_memory(device)
        with torch.no_grad():  # not inference_mode: shape caches built here are reused by training steps
            if graph:
                fn = _graphed_call(built, inputs, device)
            else:

                def fn() -> Tensor:
                    return built.call(inputs)

            times = time_ms(fn, device, warmup, repeats)
        ms = statistics.median(times)
        row.update(
            forward_ms=ms,
            forward_ms_all=[round(t, 3) for t in times],
            forward_peak_mem_gb=peak_memory_gb(device),
            tokens_per_s=batch * built.tokens / (ms / 1000),
            forward_tflops=None if built.macs is None else 2 * built.macs * batch / (ms / 1000) / 1e12,
        )
    except Exception as e:
        if not is_oom(e):
            raise
        row["notes"].append(f"forward out of memory at batch {batch}")
    finally:
        free_memory(device)


def _graphed_call(built: Built, inputs: dict[str, Any], device: torch.device) -> Callable[[], Tensor]:
    if device.type != "cuda":
        raise ValueError("+graph needs a CUDA device")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            built.call(inputs)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        built.call(inputs)
    return graph.replay


def _measure_train(
    row: dict[str, Any],
    built: Built,
    device: torch.device,
    dtype: torch.dtype,
    batch: int,
    warmup: int,
    repeats: int,
    grad_checkpointing: bool,
) -> None:
    model = built.module
    half = dtype in (torch.bfloat16, torch.float16)
    model.float().train()
    if grad_checkpointing:
        if hasattr(model, "enable_gradient_checkpointing"):
            model.enable_gradient_checkpointing()
        else:
            row["notes"].append("gradient checkpointing not available for this model")
    opt = None
    try:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
        opt = optimizer
        inputs = built.make_inputs(batch)
        autocast = torch.autocast(device.type, dtype=dtype) if half else contextlib.nullcontext()

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                out = built.call(inputs)
            out.float().square().mean().backward()
            optimizer.step()

        reset_peak_memory(device)
        times = time_ms(step, device, warmup, repeats)
        ms = statistics.median(times)
        row.update(
            train_ms=ms,
            train_ms_all=[round(t, 3) for t in times],
            train_peak_mem_gb=peak_memory_gb(device),
            train_dtype=("fp32 weights + " + str(dtype).replace("torch.", "") + " autocast")
            if half
            else "fp32",
            train_grad_checkpointing=grad_checkpointing,
            train_tflops=None if built.macs is None else 3 * 2 * built.macs * batch / (ms / 1000) / 1e12,
        )
    except Exception as e:
        if not is_oom(e):
            raise
        row["notes"].append(f"training step out of memory at batch {batch}")
    finally:
        del opt
        model.zero_grad(set_to_none=True)
        model.to(dtype).eval()
        free_memory(device)


# =============================================================================================== output
def _fmt(x: Any, digits: int = 1) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return str(x)


def markdown_table(rows: Sequence[dict[str, Any]], reference: str | None = None) -> str:
    """One row per model and size; `reference` adds a forward-time ratio column against that model."""
    ref = {
        (r["height"], r["width"], r["frames"]): r.get("forward_ms") for r in rows if r["model"] == reference
    }
    head = [
        "size",
        "model",
        "params (M)",
        "tokens",
        "forward ms",
        "train ms",
        "peak GB",
        "tokens/s",
        "fwd TFLOP/s",
    ]
    head += ["train TFLOP/s"] + ([f"fwd / {reference}"] if reference else []) + ["notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        size = (
            f"{r['height']}²"
            if r["height"] == r["width"] and r["frames"] == 1
            else Case("", r["height"], r["width"], r["frames"]).label
        )
        ratio = None
        base = ref.get((r["height"], r["width"], r["frames"]))
        if reference and base and r.get("forward_ms"):
            ratio = r["forward_ms"] / base
        cells = [
            size,
            r["model"],
            _fmt(r.get("params") and r["params"] / 1e6),
            _fmt(r.get("tokens")),
            _fmt(r.get("forward_ms")),
            _fmt(r.get("train_ms")),
            _fmt(r.get("peak_mem_gb"), 2),
            _fmt(r.get("tokens_per_s"), 0),
            _fmt(r.get("forward_tflops"), 3 if r["device"] == "cpu" else 1),
            _fmt(r.get("train_tflops"), 3 if r["device"] == "cpu" else 1),
        ]
        cells += [_fmt(ratio, 2)] if reference else []
        cells += [r.get("notes") or ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def setup_line(rows: Sequence[dict[str, Any]]) -> str:
    """One sentence: device, torch, dtype, threads, batch, SDPA backends seen."""
    if not rows:
        return ""
    r = rows[0]
    backends = sorted({x.get("sdpa_backend") for x in rows if x.get("sdpa_backend")})
    return (
        f"{r['device_name']} ({r['device']}, {r['threads']} threads, {r.get('timer', 'wall')} clock), torch {r['torch']}"
        + (f" (CUDA {r['cuda']})" if r.get("cuda") else "")
        + f", forward in {r['dtype']} at batch {r['batch']}, training step at batch {r.get('train_batch')}, "
        f"SDPA backend(s) picked for the main attention: {', '.join(backends)}"
    )


def plot(
    rows: Sequence[dict[str, Any]], path: str | Path, key: str = "forward_ms", title: str | None = None
) -> None:
    """Time against resolution (pixels per sample), log-log, one line per model; written atomically as PNG."""
    import io as _io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    for model in dict.fromkeys(r["model"] for r in rows):
        pts = sorted(
            (r["height"] * r["width"] * r["frames"], r[key])
            for r in rows
            if r["model"] == model and r.get(key)
        )
        if pts:
            ax.plot(
                *zip(*pts),
                marker="o",
                label=model,
                linestyle="--" if "full" in model or "PixArt" in model else "-",
            )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("pixels per sample (height x width x frames)")
    ax.set_ylabel(f"{key.replace('_ms', '')} time (ms, median)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title is None and rows:
        r = rows[0]
        title = f"{r['device_name']}, {r['threads']} thread(s), {r['dtype']}, batch {r['batch']}, torch {r['torch']}"
    ax.set_title(title or "", fontsize=8)
    fig.tight_layout()
    buf = _io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write_outputs(
    rows: Sequence[dict[str, Any]],
    json_path: str | Path | None = None,
    markdown_path: str | Path | None = None,
    plot_path: str | Path | None = None,
    reference: str | None = None,
    command: str | None = None,
) -> str:
    """Write the JSON rows, a markdown report (setup + table) and the plot; returns the markdown."""
    md = f"Setup: {setup_line(rows)}.\n\n" + markdown_table(rows, reference)
    if command:
        md = f"Command: `{command}`\n\n" + md
    if json_path:
        atomic_write_text(json_path, json.dumps(list(rows), indent=1) + "\n")
    if markdown_path:
        atomic_write_text(markdown_path, md)
    if plot_path:
        plot(rows, plot_path)
    return md


# =============================================================================================== cli
def parse_sizes(text: str) -> list[tuple[int, int, int]]:
    """'256,512x768,49x480x720' -> [(1, 256, 256), (1, 512, 768), (49, 480, 720)] (frames, height, width)."""
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
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
    p = argparse.ArgumentParser(prog="ptdit bench", description=__doc__.splitlines()[0])
    p.add_argument("--models", help=f"comma-separated model names (default: {','.join(DEFAULT_MODELS)})")
    p.add_argument(
        "--sizes", help="comma-separated sizes: S, HxW or FxHxW (pixels; default 256..4096 images + 2 videos)"
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
            if f > 1 and base in ("PixArt-alpha", "PixArt-alpha-S", "DiT-XL/2", "Sana-0.6B"):
                continue
            if f == 1 and base == "CogVideoX-2B":
                continue
            cases.append(Case(m, h, w, f))
    return cases


def cli_main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    _validate(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    set_cpu_timer(args.cpu_timer)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() and not args.quick else "cpu"))
    models = args.models.split(",") if args.models else None
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
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(cli_main(sys.argv[1:]))

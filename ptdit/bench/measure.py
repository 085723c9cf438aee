"""One benchmark row: build a case, time its forward and a training step, record memory and the setup."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .cases import Case, parse_model
from .models import Built, build
from .timing import (
    _CPU_TIMER,
    free_memory,
    is_oom,
    peak_memory_gb,
    reset_peak_memory,
    sdpa_backend,
    time_ms,
)


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

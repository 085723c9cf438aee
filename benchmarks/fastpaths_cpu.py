"""Measure each fast path of ptdit.fast / ptdit.attention against the reference path (same process, same inputs).

Two levels, each with the max |difference| to the reference output:
* the masked shifted-window attention alone (window-major q/k/v (B, nW, heads, n, d), the model's cached mask):
  dense-mask SDPA (reference), "split" (mask-free SDPA + masked boundary windows), "flex" (FlexAttention, compiled;
  compile time reported apart), and mask-free SDPA as the lower bound;
* a whole PT-DiT forward (batch 2, no grad): sdpa, +split, +fuse, +fuse+split, +flex, optionally +fuse+compile.

usage: python benchmarks/fastpaths_cpu.py [--device cpu|cuda] [--threads N] [--cpu-timer process] [--json F]
                                         [--markdown F] [--compile]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ptdit import PTDiT, PTDiTConfig  # noqa: E402
from ptdit.attention import attention  # noqa: E402
from ptdit.bench import environment, set_cpu_timer, time_ms  # noqa: E402
from ptdit.fast import compile_model, fuse_qkv, set_attention_backend  # noqa: E402
from ptdit.io import atomic_write_text  # noqa: E402
from ptdit.layout import shift_size, shift_window_mask  # noqa: E402


def attention_level(device: torch.device, dtype: torch.dtype, repeats: int) -> list[dict]:
    rows = []
    for grid, window, heads, d in (((1, 32, 32), (1, 4, 4), 6, 48), ((1, 64, 64), (1, 8, 8), 6, 48)):
        mask = shift_window_mask(grid, window, shift_size(window), device)[:, None]  # (nW, 1, n, n)
        nW, n = mask.shape[0], mask.shape[-1]
        g = torch.Generator(device="cpu").manual_seed(0)
        q, k, v = (torch.randn(2, nW, heads, n, d, generator=g).to(device, dtype) for _ in range(3))
        with torch.no_grad():
            ref = attention(q, k, v, mask, "sdpa")
            for name, fn in (
                ("masked sdpa (reference)", partial(attention, q, k, v, mask, "sdpa")),
                ("split", partial(attention, q, k, v, mask, "split")),
                ("flex", partial(attention, q, k, v, mask, "flex")),
                (
                    "mask-free sdpa (lower bound, wrong at the border)",
                    partial(attention, q, k, v, None, "sdpa"),
                ),
            ):
                t0 = time.perf_counter()
                out = fn()  # first call: builds caches / compiles
                first_s = time.perf_counter() - t0
                ms = statistics.median(time_ms(fn, device, warmup=1, repeats=repeats))
                rows.append(
                    {
                        "level": "attention",
                        "shape": f"B2 nW{nW} n{n} h{heads} d{d}",
                        "path": name,
                        "ms": ms,
                        "first_call_s": first_s,
                        "max_abs_diff": (out.float() - ref.float()).abs().max().item(),
                    }
                )
                print(rows[-1], flush=True)
    return rows


def model_level(device: torch.device, dtype: torch.dtype, repeats: int, with_compile: bool) -> list[dict]:
    rows = []
    torch.manual_seed(0)
    config = PTDiTConfig.from_preset("PT-DiT-S", window=(1, 4, 4))  # 512^2: 32 x 32 tokens, 64 windows
    base = PTDiT(config).to(device, dtype).eval()
    with torch.no_grad():  # give the zero-initialised output linears weights, so every branch counts
        for m in base.modules():
            if getattr(m, "zero_init", False):
                m.weight.normal_(std=0.02)
    x = torch.randn(2, 4, 1, 64, 64, device=device, dtype=dtype)
    t = torch.rand(2, device=device) * 1000
    y = torch.randn(2, 120, config.caption_channels, device=device, dtype=dtype)
    variants = [
        ("sdpa (reference)", lambda m: m),
        ("+split", lambda m: set_attention_backend(m, "split")),
        ("+fuse", fuse_qkv),
        ("+fuse+split", lambda m: set_attention_backend(fuse_qkv(m), "split")),
        ("+flex", lambda m: set_attention_backend(m, "flex")),
    ]
    if with_compile:
        variants.append(("+fuse+compile (blocks, inductor)", lambda m: compile_model(fuse_qkv(m), "blocks")))
    with torch.no_grad():
        ref = base(x, t, y, return_dict=False)[0]
        for name, transform in variants:
            model = transform(copy.deepcopy(base))
            t0 = time.perf_counter()
            out = model(x, t, y, return_dict=False)[0]
            first_s = time.perf_counter() - t0
            ms = statistics.median(
                time_ms(lambda model=model: model(x, t, y), device, warmup=1, repeats=repeats)
            )
            rows.append(
                {
                    "level": "model",
                    "shape": "PT-DiT-S 512^2 B2",
                    "path": name,
                    "ms": ms,
                    "first_call_s": first_s,
                    "max_abs_diff": (out.float() - ref.float()).abs().max().item(),
                }
            )
            print(rows[-1], flush=True)
    return rows


def markdown(rows: list[dict], env: dict) -> str:
    lines = [
        "| machine | device | torch | threads | dtype | clock |",
        "|---|---|---|---|---|---|",
        f"| {env['device_name']} | {env['device']} | {env['torch']} | {env['threads']} | {env['dtype']} | "
        f"{env['timer']} |",
        "",
        "Median ms; the first call includes cache building or compilation.",
        "",
        "| level | shape | path | ms | vs reference | first call (s) | max abs diff |",
        "|---|---|---|---|---|---|---|",
    ]
    ref: dict[str, float] = {}
    for r in rows:
        if "reference" in r["path"]:
            ref[r["shape"]] = r["ms"]
        ratio = r["ms"] / ref[r["shape"]] if r["shape"] in ref else float("nan")
        lines.append(
            f"| {r['level']} | {r['shape']} | {r['path']} | {r['ms']:.2f} | {ratio:.2f}x | "
            f"{r['first_call_s']:.2f} | {r['max_abs_diff']:.1e} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument(
        "--cpu-timer", choices=["wall", "process"], default="wall", help="see ptdit bench --cpu-timer"
    )
    p.add_argument(
        "--compile", action="store_true", help="also time torch.compile per block (slow to compile)"
    )
    p.add_argument("--json", dest="json_path")
    p.add_argument("--markdown")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    set_cpu_timer(args.cpu_timer)
    device, dtype = torch.device(args.device), torch.float32 if args.device == "cpu" else torch.bfloat16
    env = environment(device, dtype)
    rows = attention_level(device, dtype, args.repeats) + model_level(
        device, dtype, args.repeats, args.compile
    )
    md = markdown(rows, env)
    print(md)
    if args.json_path:
        atomic_write_text(args.json_path, json.dumps({"environment": env, "rows": rows}, indent=1) + "\n")
    if args.markdown:
        atomic_write_text(args.markdown, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

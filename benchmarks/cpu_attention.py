"""CPU training attention: torch's SDPA (flash kernel for CPU) against the explicit fp32 softmax(QK^T)V.

Why ptdit.attention routes CPU calls that need a gradient and have at most CPU_MATH_MAX_KEYS keys to the
explicit product: torch's CPU flash-attention backward is slow in bf16 for short keys (windows, proxies, text).

Two levels:
* attention alone, forward + backward (bf16 and fp32), at the shapes of the Shapes training configs (batch 8 video:
  window, proxy, token->proxy, text and full attention) and a sweep of key lengths, with the max |difference| of
  the two outputs and input gradients;
* optionally (--steps N) whole training steps of the Shapes configs (eager, bf16 autocast as configured, scenes
  rendered before the clock starts), with the
  routing on and off (off = CPU_MATH_MAX_KEYS emptied: every call through SDPA).

usage: python benchmarks/cpu_attention.py [--threads N] [--cpu-timer process|wall] [--repeats R] [--steps N]
                                          [--json F] [--markdown F]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ptdit import attention as attention_module  # noqa: E402
from ptdit.bench import environment, set_cpu_timer, time_ms  # noqa: E402
from ptdit.io import atomic_write_text  # noqa: E402

CPU = torch.device("cpu")
# (name, q shape, k/v shape): (batch, heads, L, head dim); batch 8 of the Shapes video config (8 frames x 8 x 8
# tokens, width 128, 4 heads, window (4, 2, 2) -> 32 windows of 16 tokens, 24 caption tokens)
CASES = (
    ("video window (256 x 16 tokens)", (256, 4, 16, 32), (256, 4, 16, 32)),
    ("video proxies (32)", (8, 4, 32, 32), (8, 4, 32, 32)),
    ("video tokens -> proxies (512 x 32)", (8, 4, 512, 32), (8, 4, 32, 32)),
    ("video text (512 x 24)", (8, 4, 512, 32), (8, 4, 24, 32)),
    ("video full (512 x 512)", (8, 4, 512, 32), (8, 4, 512, 32)),
    ("image window, batch 64 (1024 x 4)", (1024, 4, 4, 32), (1024, 4, 4, 32)),
    ("image full, batch 64 (64 x 64)", (64, 4, 64, 32), (64, 4, 64, 32)),
) + tuple(
    (f"sweep: 512 queries x {lk} keys", (8, 4, 512, 32), (8, 4, lk, 32)) for lk in (64, 128, 256, 384, 512)
)


def _fwd_bwd(fn, q, k, v):
    def step():
        for t in (q, k, v):
            t.grad = None
        fn(q, k, v).float().square().mean().backward()

    return step


def attention_rows(dtype: torch.dtype, repeats: int) -> list[dict]:
    sdpa = lambda q, k, v: F.scaled_dot_product_attention(q, k, v)  # noqa: E731
    explicit = lambda q, k, v: attention_module._math(q, k, v, None)  # noqa: E731
    rows, limits = [], dict(attention_module.CPU_MATH_MAX_KEYS)
    for name, q_shape, kv_shape in CASES:
        g = torch.Generator().manual_seed(0)
        q, k, v = (
            torch.randn(s, generator=g).to(dtype).requires_grad_() for s in (q_shape, kv_shape, kv_shape)
        )
        times, outs = {}, {}
        for label, fn in (("sdpa", sdpa), ("explicit", explicit)):
            step = _fwd_bwd(fn, q, k, v)
            times[label] = statistics.median(time_ms(step, CPU, warmup=2, repeats=repeats))
            step()
            outs[label] = [fn(q, k, v).detach()] + [t.grad.detach().clone() for t in (q, k, v)]
        diff = max((a.float() - b.float()).abs().max().item() for a, b in zip(outs["sdpa"], outs["explicit"]))
        rows.append(
            {
                "level": "attention",
                "case": name,
                "dtype": str(dtype).replace("torch.", ""),
                "keys": kv_shape[2],
                "sdpa_ms": times["sdpa"],
                "explicit_ms": times["explicit"],
                "speedup": times["sdpa"] / times["explicit"],
                "routed_to": "explicit" if kv_shape[2] <= limits.get(dtype, -1) else "sdpa",
                "max_abs_diff": diff,
            }
        )
        print(
            f"{rows[-1]['dtype']:>8} {name:<38} sdpa {times['sdpa']:8.2f} ms  explicit {times['explicit']:8.2f}"
            f" ms  x{rows[-1]['speedup']:5.2f}  max|diff| {diff:.1e}",
            flush=True,
        )
    return rows


def step_rows(configs: list[str], steps: int) -> list[dict]:
    from ptdit.training import TrainConfig
    from ptdit.training.loop import Trainer

    rows, limits = [], dict(attention_module.CPU_MATH_MAX_KEYS)
    for config in configs:
        for attention in ("proxy", "full"):
            for routed in (True, False):
                attention_module.CPU_MATH_MAX_KEYS = limits if routed else {}
                run_dir = Path(tempfile.mkdtemp(prefix="cpu_attention_"))
                overrides = ["--data.num_items", "256", "--data.preload", "true", "--train.num_workers", "0"]
                overrides += [
                    "--train.compile",
                    "false",
                    "--train.threads",
                    "0",
                    "--checkpoint.dir",
                    str(run_dir),
                ]
                overrides += [
                    "--checkpoint.every",
                    "0",
                    "--checkpoint.export",
                    "false",
                    "--log.sample_every",
                    "0",
                ]
                overrides += ["--log.plot_every", "0", "--log.progress", "false", "--train.steps", "2"]
                overrides += ["--model.attention", attention]
                cfg = TrainConfig.from_yaml(config, overrides)
                trainer = Trainer(cfg)
                trainer.run(progress=False)  # warm-up
                cfg.train.steps = 2 + steps
                ms = time_ms(partial(trainer.run, progress=False), CPU, warmup=0, repeats=1)[0] / steps
                shutil.rmtree(run_dir, ignore_errors=True)
                rows.append(
                    {
                        "level": "train step",
                        "case": f"{config} --model.attention {attention}",
                        "batch": cfg.train.batch_size,
                        "routing": "explicit for short keys" if routed else "sdpa everywhere",
                        "ms_per_step": ms,
                    }
                )
                print(f"{rows[-1]['case']:<56} {rows[-1]['routing']:<24} {ms:8.1f} ms/step", flush=True)
    attention_module.CPU_MATH_MAX_KEYS = limits
    return rows


def markdown(env: dict, rows: list[dict]) -> str:
    lines = [
        "# CPU training attention: SDPA vs the explicit fp32 product (benchmarks/cpu_attention.py)",
        "",
        "| machine | torch | threads | clock |",
        "|---|---|---|---|",
        f"| {env['device_name']} | {env['torch']} | {env['threads']} | {env['timer']} |",
        "",
        "Forward + backward of one attention call, median ms.",
        "",
        "| dtype | case | keys | SDPA ms | explicit ms | SDPA / explicit | ptdit uses | max abs diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["level"] == "attention":
            lines.append(
                f"| {r['dtype']} | {r['case']} | {r['keys']} | {r['sdpa_ms']:.2f} | {r['explicit_ms']:.2f} | "
                f"{r['speedup']:.2f} | {r['routed_to']} | {r['max_abs_diff']:.1e} |"
            )
    steps = [r for r in rows if r["level"] == "train step"]
    if steps:
        lines += ["", "Whole training steps (eager, config's batch and bf16 setting):", ""]
        lines += ["| config | batch | routing | ms / step |", "|---|---|---|---|"]
        lines += [f"| {r['case']} | {r['batch']} | {r['routing']} | {r['ms_per_step']:.0f} |" for r in steps]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--cpu-timer", choices=("wall", "process"), default="wall")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=0, help="also time N training steps per config (0 = skip)")
    p.add_argument("--configs", nargs="*", default=["configs/shapes_video.yaml", "configs/shapes_image.yaml"])
    p.add_argument("--json")
    p.add_argument("--markdown")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    set_cpu_timer(args.cpu_timer)
    env = environment(CPU, torch.bfloat16)
    rows = []
    for dtype in (torch.bfloat16, torch.float32):
        rows += attention_rows(dtype, args.repeats)
    if args.steps:
        rows += step_rows(args.configs, args.steps)
    if args.json:
        atomic_write_text(Path(args.json), json.dumps({"environment": env, "rows": rows}, indent=1) + "\n")
    if args.markdown:
        atomic_write_text(Path(args.markdown), markdown(env, rows))


if __name__ == "__main__":
    main()

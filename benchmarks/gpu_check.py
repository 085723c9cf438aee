"""One-call GPU check: fast paths against an fp64 CPU reference, then the issue-6 targets, timed in one process.

Steps, in priority order; each is wrapped in try/except and skipped once the time budget is spent, and the
JSON/markdown are rewritten after every measurement, so a cut-off run still leaves its partial results:

1. environment + dense bf16 matmul rate (8192^3), the ceiling for achieved TFLOP/s;
2. correctness: a small PT-DiT on the GPU (fp32 without TF32, and bf16) for each fast path (sdpa, split, flex,
   fused QKV, CUDA graph; gradients of split/flex) against the same model in fp64 on the CPU;
3. PT-DiT-L (official/lean, eager and fast paths) vs diffusers' PixArt-alpha, forward at batch 2, 512^2..4096^2;
4. PT-DiT-XL vs CogVideoX-2B at 49x480x720, forward at batch 2;
5. PT-DiT-XL training step at 1024^2 (batch 2, bf16 autocast) against the matmul rate;
6. PT-DiT-XL training step at 2048^2, batch 1: peak memory (without, then with gradient checkpointing);
7. CUDA graphs of whole forwards: PixArt-alpha and PT-DiT-L (official and lean, fast paths) at 512^2 and 1024^2;
8. if time is left: torch.compile per block (correctness + PT-DiT-L at 1024^2), 96x512^2 video, DiT-XL/2, Sana.

Then PASS/FAIL against the targets (ratios are PT-DiT / PixArt-alpha forward time at equal parameters):
<= 1.0 at 512^2, <= 0.60 at 1024^2, <= 0.35 at 2048^2, <= 0.12 at 4096^2; XL <= 0.5 x CogVideoX-2B at
49x480x720; XL training step at 1024^2 >= 40% of the matmul rate; XL trains at 2048^2, batch 1, within 40 GB.

usage (GPU machine, repo root, diffusers carried as a wheel in .whl/):
  python3 benchmarks/gpu_check.py --out $OUT [--budget-s 420]
  python benchmarks/gpu_check.py --smoke --device cpu --out /tmp/x    (exercises every step on tiny sizes)
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ptdit import PTDiT, PTDiTConfig  # noqa: E402
from ptdit import bench as B  # noqa: E402
from ptdit.fast import CUDAGraphForward, compile_model, fuse_qkv, set_attention_backend  # noqa: E402
from ptdit.io import atomic_write_text  # noqa: E402

TARGETS_L = {512: 1.0, 1024: 0.60, 2048: 0.35, 4096: 0.12}
TARGET_VIDEO = 0.5  # issue 6 (the stretch target of docs/paper.md is 0.25)
TARGET_TRAIN_FRACTION = 0.40
TARGET_MEM_GB = 40.0
L_VARIANTS = ("PT-DiT-L", "PT-DiT-L+fuse", "PT-DiT-L+fast", "PT-DiT-L+fuse+flex", "PT-DiT-L-lean+fast")
L_GRAPH_VARIANTS = ("PT-DiT-L+fast+graph", "PT-DiT-L-lean+fast+graph")
XL_VIDEO_VARIANTS = ("PT-DiT-XL", "PT-DiT-XL+fast", "PT-DiT-XL-lean+fast")
XL_TRAIN_VARIANTS = ("PT-DiT-XL+fast", "PT-DiT-XL-lean+fast", "PT-DiT-XL")


class Run:
    """Results, budget and output files of one check run."""

    def __init__(
        self, out: Path, budget_s: float, device: torch.device, dtype: torch.dtype, smoke: bool
    ) -> None:
        self.out, self.budget_s, self.device, self.dtype, self.smoke = out, budget_s, device, dtype, smoke
        self.t0 = time.monotonic()
        self.env: dict[str, Any] = {}
        self.checks: list[dict[str, Any]] = []
        self.rows: list[dict[str, Any]] = []
        self.targets: list[dict[str, Any]] = []
        self.log: list[str] = []
        out.mkdir(parents=True, exist_ok=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def time_left(self, need_s: float = 0.0) -> bool:
        return self.elapsed() + need_s < self.budget_s

    def say(self, text: str) -> None:
        line = f"[{self.elapsed():6.1f}s] {text}"
        print(line, flush=True)
        self.log.append(line)

    def measure(self, model: str, size: tuple[int, int, int], **kw: Any) -> dict[str, Any] | None:
        if not self.time_left():
            self.say(f"skip {model} {size}: time budget spent")
            return None
        f, h, w = size
        row = B.measure_case(B.Case(model, h, w, f), self.device, self.dtype, **kw)
        self.rows.append(row)
        self.say(
            f"{B.Case(model, h, w, f).label:>12} {model:<26} fwd {B._fmt(row['forward_ms'], 2)} ms "
            f"train {B._fmt(row['train_ms'], 1)} ms peak {B._fmt(row['peak_mem_gb'], 2)} GB {row['notes']}"
        )
        self.save()
        return row

    def step(self, name: str, fn, *args: Any) -> None:
        if not self.time_left():
            self.say(f"skip step {name}: time budget spent")
            return
        self.say(f"== {name}")
        try:
            fn(self, *args)
        except Exception as e:
            self.say(f"step {name} failed: {type(e).__name__}: {e}")
            self.log.append(traceback.format_exc())
        finally:
            B.free_memory(self.device)
            self.save()

    def save(self, plot: bool = False) -> None:
        data = {
            "environment": self.env,
            "checks": self.checks,
            "targets": self.targets,
            "rows": self.rows,
            "elapsed_s": self.elapsed(),
        }
        atomic_write_text(self.out / "gpu_check.json", json.dumps(data, indent=1, default=str) + "\n")
        atomic_write_text(self.out / "gpu_check.md", self.markdown())
        atomic_write_text(self.out / "gpu_check.log", "\n".join(self.log) + "\n")
        if plot and self.rows:
            try:
                B.plot([r for r in self.rows if r.get("forward_ms")], self.out / "gpu_check.png")
            except Exception as e:  # the plot is a convenience: never lose the numbers over it
                self.say(f"plot failed: {type(e).__name__}: {e}")

    def markdown(self) -> str:
        env = self.env
        lines = [
            "# GPU check (benchmarks/gpu_check.py)",
            "",
            f"Device: {env.get('device_name')}; torch {env.get('torch')} (CUDA {env.get('cuda')}); forward dtype "
            f"{env.get('dtype')}; dense {env.get('dtype')} matmul {B._fmt(env.get('matmul_tflops'))} TFLOP/s; "
            f"elapsed {self.elapsed():.0f} s.",
            "",
            "## Targets",
            "",
            "| target | measured | threshold | result | detail |",
            "|---|---|---|---|---|",
        ]
        for t in self.targets:
            lines.append(
                f"| {t['target']} | {B._fmt(t.get('value'), 3)} | {t['threshold']} | {t['result']} | {t['detail']} |"
            )
        lines += ["", "## Correctness of the fast paths (vs fp64 on the CPU)", ""]
        lines += ["| path | dtype | rel. error | tolerance | result |", "|---|---|---|---|---|"]
        for c in self.checks:
            lines.append(
                f"| {c['path']} | {c['dtype']} | {B._fmt(c.get('rel_error'), 6)} | {c['tol']} | {c['result']} |"
            )
        lines += ["", "## Measurements", "", B.markdown_table(self.rows, "PixArt-alpha") if self.rows else ""]
        return "\n".join(lines) + "\n"


# =============================================================================================== steps
def step_environment(run: Run) -> None:
    run.env.update(B.environment(run.device, run.dtype))
    if run.device.type == "cuda":
        run.env["cudnn"] = torch.backends.cudnn.version()
        run.env["matmul_tflops"] = B.matmul_tflops(run.device, run.dtype)
    else:
        run.env["matmul_tflops"] = B.matmul_tflops(run.device, run.dtype, size=256 if run.smoke else 1024)
    run.say(f"environment: {run.env}")


def _check_model(seed: int = 0) -> tuple[PTDiT, tuple]:
    torch.manual_seed(seed)
    config = PTDiTConfig(depth=2, hidden_size=128, num_heads=4, caption_channels=64, window=(1, 4, 4))
    model = PTDiT(config).eval()
    with torch.no_grad():  # give the zero-initialised linears weights, so that every branch counts
        for m in model.modules():
            if getattr(m, "zero_init", False):
                m.weight.normal_(std=0.05)
                m.bias.normal_(std=0.05)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 1, 32, 32, generator=g)
    t = torch.rand(2, generator=g) * 1000
    y = torch.randn(2, 12, 64, generator=g)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 7:] = False
    return model, (x, t, y, mask)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return ((a - b).norm() / b.norm()).item()


def _record(run: Run, path: str, dtype: str, rel: float, tol: float) -> None:
    ok = rel <= tol
    run.checks.append(
        {"path": path, "dtype": dtype, "rel_error": rel, "tol": tol, "result": "PASS" if ok else "FAIL"}
    )
    run.say(f"check {path:<34} {dtype:<5} rel {rel:.2e} (tol {tol:g}) {'PASS' if ok else 'FAIL'}")


def step_correctness(run: Run) -> None:
    dev = run.device
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    base, inputs = _check_model()
    ref_model = copy.deepcopy(base).double()
    x64 = [v.double() if v.is_floating_point() and v.dim() > 1 else v for v in inputs]
    with torch.no_grad():
        ref_nomask = ref_model(*x64[:3], None, return_dict=False)[0]
    ref = ref_model(*x64, return_dict=False)[0]
    ref.square().mean().backward()
    ref_grads = {n: p.grad for n, p in ref_model.named_parameters()}
    for dtype, tol in ((torch.float32, 1e-4), (torch.bfloat16, 3e-2)):
        name = "fp32" if dtype == torch.float32 else "bf16"
        xs = [v.to(dev, dtype) if v.is_floating_point() and v.dim() > 1 else v.to(dev) for v in inputs]
        for path, transform in (
            ("sdpa", lambda m: m),
            ("split", lambda m: set_attention_backend(m, "split")),
            ("flex", lambda m: set_attention_backend(m, "flex")),
            ("fuse_qkv", fuse_qkv),
            ("fuse_qkv+split", lambda m: set_attention_backend(fuse_qkv(m), "split")),
        ):
            try:
                model = transform(copy.deepcopy(base).to(dev, dtype))
                with torch.no_grad():
                    _record(run, f"forward {path}", name, _rel(model(*xs, return_dict=False)[0], ref), tol)
            except Exception as e:
                run.checks.append(
                    {"path": f"forward {path}", "dtype": name, "tol": tol, "result": f"ERROR {e}"}
                )
                run.say(f"check forward {path} {name}: ERROR {type(e).__name__}: {e}")
        if dev.type == "cuda":
            try:  # no text mask: the model validates a mask with a host sync, which a capture cannot hold
                model = set_attention_backend(fuse_qkv(copy.deepcopy(base).to(dev, dtype)), "split")
                graph = CUDAGraphForward(model, *xs[:3], None)
                _record(
                    run,
                    "forward fuse_qkv+split+cuda_graph",
                    name,
                    _rel(graph(*xs[:3], None), ref_nomask),
                    tol,
                )
            except Exception as e:
                run.say(f"check cuda graph {name}: ERROR {type(e).__name__}: {e}")
    xs = [v.to(dev) for v in inputs]
    for path in ("sdpa", "split", "flex"):
        if path == "flex" and dev.type == "cpu":
            continue  # no FlexAttention backward on a CPU
        try:
            model = set_attention_backend(fuse_qkv(copy.deepcopy(base).to(dev)), path)
            model(*xs, return_dict=False)[0].square().mean().backward()
            # per tensor, relative to max(its norm, 1e-3 x the norm of all gradients): some are zero analytically
            # (e.g. to_k.bias: softmax ignores a constant added to every key)
            scale = 1e-3 * torch.cat([g.flatten() for g in ref_grads.values()]).norm().item()
            worst = max(
                (p.grad.double().cpu() - ref_grads[n]).norm().item() / max(ref_grads[n].norm().item(), scale)
                for n, p in model.named_parameters()
            )
            _record(run, f"gradients fuse_qkv+{path} (worst tensor)", "fp32", worst, 1e-3)
        except Exception as e:
            run.say(f"check gradients {path}: ERROR {type(e).__name__}: {e}")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def step_compile_check(run: Run) -> None:
    base, inputs = _check_model()
    xs = [
        v.to(run.device, run.dtype) if v.is_floating_point() and v.dim() > 1 else v.to(run.device)
        for v in inputs
    ]
    model = base.to(run.device, run.dtype)
    with torch.no_grad():
        ref = model(*xs, return_dict=False)[0]
        compiled = compile_model(set_attention_backend(fuse_qkv(copy.deepcopy(model)), "split"), "blocks")
        out = compiled(*xs, return_dict=False)[0]
        with torch._dynamo.config.patch(error_on_recompile=True):
            compiled(*[v + 0.1 if v.is_floating_point() else v for v in xs])
    _record(
        run,
        "forward compile_blocks (no recompile)",
        str(run.dtype).replace("torch.", ""),
        _rel(out, ref),
        3e-2,
    )


def _sizes(run: Run, full: tuple[int, ...]) -> tuple[int, ...]:
    return (256, 512) if run.smoke else full


def step_pixart(run: Run) -> None:
    for s in _sizes(run, (512, 1024, 2048, 4096)):
        reps = dict(warmup=1, repeats=3) if s >= 4096 else dict(warmup=2, repeats=5)
        if run.smoke:
            reps = dict(warmup=0, repeats=1)
        models = ("PixArt-alpha-S", "PT-DiT-S+fast") if run.smoke else ("PixArt-alpha",) + L_VARIANTS
        for m in models:
            run.measure(m, (1, s, s), train=False, **reps)
    run.save(plot=True)


def step_video(run: Run) -> None:
    size = (5, 64, 96) if run.smoke else (49, 480, 720)
    models = ("PT-DiT-S+fast",) if run.smoke else ("CogVideoX-2B",) + XL_VIDEO_VARIANTS
    for m in models:
        run.measure(m, size, train=False, warmup=0 if run.smoke else 2, repeats=1 if run.smoke else 5)


def step_train(run: Run) -> None:
    s = 256 if run.smoke else 1024
    models = ("PT-DiT-S+fast",) if run.smoke else XL_TRAIN_VARIANTS
    for m in models:
        run.measure(
            m,
            (1, s, s),
            forward=False,
            train=True,
            warmup=1 if run.smoke else 3,
            repeats=2 if run.smoke else 5,
        )


def step_memory(run: Run) -> None:
    s = 512 if run.smoke else 2048
    m = "PT-DiT-S+fast" if run.smoke else "PT-DiT-XL+fast"
    kw = dict(forward=False, train=True, batch=1, warmup=1, repeats=2)
    row = run.measure(m, (1, s, s), **kw)
    if row is None or row.get("train_peak_mem_gb") is None or row["train_peak_mem_gb"] > TARGET_MEM_GB:
        run.measure(m, (1, s, s), grad_checkpointing=True, **kw)


def step_extras(run: Run) -> None:
    if run.device.type == "cuda":
        run.step("compile correctness", step_compile_check)
        for m in ("PT-DiT-L+fast+compile", "PT-DiT-L-lean+fast+compile"):
            run.measure(m, (1, 1024, 1024), train=False, warmup=2, repeats=5)
    video = (9, 64, 64) if run.smoke else (96, 512, 512)
    for m in ("PT-DiT-S+fast",) if run.smoke else ("CogVideoX-2B", "PT-DiT-XL+fast", "PT-DiT-XL-lean+fast"):
        run.measure(m, video, train=False, warmup=0 if run.smoke else 1, repeats=1 if run.smoke else 3)
    for s in _sizes(run, (512, 1024)):
        for m in () if run.smoke else ("DiT-XL/2", "Sana-0.6B"):
            run.measure(m, (1, s, s), train=False, warmup=2, repeats=5)


def step_graphs(run: Run) -> None:
    """CUDA graphs of whole forwards, after the targets' steps: a failed capture can leave the context unusable."""
    if run.device.type != "cuda":
        return
    for s in (512, 1024):
        for m in ("PixArt-alpha+graph",) + L_GRAPH_VARIANTS:
            run.measure(m, (1, s, s), train=False, warmup=2, repeats=10)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_profile(run: Run) -> None:
    """Where the time goes at 512² (the size where PT-DiT-L trails PixArt-alpha): the top kernels of one forward.

    Written to profile_<model>.txt beside gpu_check.md (torch.profiler, after warm-up; batch 2 as in the targets).
    """
    from torch.profiler import ProfilerActivity, profile

    size = 64 if run.smoke else 512
    models = (
        ("PixArt-alpha-S", "PT-DiT-S+fast")
        if run.smoke
        else ("PixArt-alpha", "PT-DiT-L+fast", "PT-DiT-L-lean+fast")
    )
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if run.device.type == "cuda" else [])
    sort = "cuda_time_total" if run.device.type == "cuda" else "cpu_time_total"
    for m in models:
        if not run.time_left(30):
            run.say(f"skip profile {m}: time budget spent")
            return
        built = B.build(B.Case(m, size, size, 1), run.device, run.dtype)
        inputs = built.make_inputs(2)
        with torch.no_grad():
            for _ in range(3):
                built.call(inputs)
            _sync(run.device)
            with profile(activities=activities) as prof:
                built.call(inputs)
                _sync(run.device)
        table = prof.key_averages().table(sort_by=sort, row_limit=25)
        kernels = sum(1 for e in prof.events() if e.device_type.name == "CUDA")
        name = m.replace("+", "_").replace("/", "_")
        atomic_write_text(
            run.out / f"profile_{name}.txt", f"{m} at {size}^2, batch 2: {kernels} GPU kernels\n{table}\n"
        )
        run.say(f"profile {m}: {kernels} GPU kernels in one forward")
        del built, inputs
        B.free_memory(run.device)


# =============================================================================================== targets
def _forward(run: Run, model: str, size: tuple[int, int, int]) -> float | None:
    f, h, w = size
    for r in run.rows:
        if r["model"] == model and (r["frames"], r["height"], r["width"]) == size and r.get("forward_ms"):
            return r["forward_ms"]
    return None


def _target(run: Run, name: str, value: float | None, threshold: str, ok: bool | None, detail: str) -> None:
    result = "n/a (not measured)" if value is None else ("PASS" if ok else "FAIL")
    run.targets.append(
        {"target": name, "value": value, "threshold": threshold, "result": result, "detail": detail}
    )
    run.say(f"TARGET {name}: {B._fmt(value, 3)} ({threshold}) -> {result}  {detail}")


def evaluate_targets(run: Run) -> None:
    run.targets.clear()
    peer, variants = ("PixArt-alpha-S", ("PT-DiT-S+fast",)) if run.smoke else ("PixArt-alpha", L_VARIANTS)
    for s, limit in TARGETS_L.items():
        base = _forward(run, peer, (1, s, s))
        ratios = {v: t / base for v in variants if base and (t := _forward(run, v, (1, s, s)))}
        best = min(ratios, key=ratios.get) if ratios else None
        detail = ", ".join(f"{v} {r:.3f}" for v, r in ratios.items())
        graph_base = _forward(run, "PixArt-alpha+graph", (1, s, s))
        if graph_base:
            g = {v: t / graph_base for v in L_GRAPH_VARIANTS if (t := _forward(run, v, (1, s, s)))}
            detail += "; CUDA graphs on both: " + ", ".join(f"{v} {r:.3f}" for v, r in g.items())
        value = ratios.get(best) if best else None
        _target(run, f"PT-DiT-L / PixArt-alpha forward at {s}^2 (best: {best})", value, f"<= {limit}",
                value is not None and value <= limit, detail)  # fmt: skip
    video = (5, 64, 96) if run.smoke else (49, 480, 720)
    cog = _forward(run, "CogVideoX-2B", video)
    ratios = {v: t / cog for v in XL_VIDEO_VARIANTS if cog and (t := _forward(run, v, video))}
    best = min(ratios, key=ratios.get) if ratios else None
    value = ratios.get(best) if best else None
    _target(run, f"PT-DiT-XL / CogVideoX-2B forward at 49x480x720 (best: {best})", value, f"<= {TARGET_VIDEO}",
            value is not None and value <= TARGET_VIDEO,
            ", ".join(f"{v} {r:.3f}" for v, r in ratios.items()) + " (stretch target of docs/paper.md: <= 0.25)")  # fmt: skip
    matmul = run.env.get("matmul_tflops")
    fracs = {
        r["model"]: r["train_tflops"] / matmul
        for r in run.rows
        if r.get("train_tflops") and matmul and r["height"] == 1024 and r["model"] in XL_TRAIN_VARIANTS
    }
    best = max(fracs, key=fracs.get) if fracs else None
    value = fracs.get(best) if best else None
    _target(run, f"PT-DiT-XL training step at 1024^2 / bf16 matmul rate (best: {best})", value,
            f">= {TARGET_TRAIN_FRACTION}", value is not None and value >= TARGET_TRAIN_FRACTION,
            ", ".join(f"{m} {f:.3f}" for m, f in fracs.items()) + f"; matmul {B._fmt(matmul)} TFLOP/s; "
            "training FLOPs = 3 x forward (analytic, ptdit.complexity)")  # fmt: skip
    mems = [
        (r["train_peak_mem_gb"], r.get("train_grad_checkpointing"))
        for r in run.rows
        if r["height"] == 2048
        and r["model"] == "PT-DiT-XL+fast"
        and r.get("train_peak_mem_gb")
        and r.get("train_ms")
    ]
    value, ckpt = min(mems) if mems else (None, None)
    _target(run, "PT-DiT-XL trains at 2048^2, batch 1: peak GB", value, f"<= {TARGET_MEM_GB}",
            value is not None and value <= TARGET_MEM_GB,
            f"gradient checkpointing {'on' if ckpt else 'off'}; fp32 weights + AdamW, bf16 autocast")  # fmt: skip
    run.save()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for gpu_check.json / .md / .png / .log")
    p.add_argument("--budget-s", type=float, default=420.0, help="stop starting new measurements after this")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--smoke", action="store_true", help="tiny sizes and small models: exercise every step")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    run = Run(Path(args.out), args.budget_s, device, dtype, args.smoke)
    run.step("environment", step_environment)
    run.step("correctness", step_correctness)
    run.step("PT-DiT-L vs PixArt-alpha", step_pixart)
    run.step("PT-DiT-XL vs CogVideoX-2B", step_video)
    run.step("PT-DiT-XL training step", step_train)
    run.step("PT-DiT-XL 2048^2 memory", step_memory)
    run.step("CUDA graphs", step_graphs)
    run.step("profile at 512^2", step_profile)
    run.step("extras", step_extras)
    evaluate_targets(run)
    run.save(plot=True)
    print(run.markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

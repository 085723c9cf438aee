"""The standing GPU check: run it whenever a GPU is at hand (issue 23). One JSON, its markdown, a profiler summary.

Sections, each wrapped in try/except (a failed section is recorded with its error, the others still run) and
skipped with a reason once the time budget is spent; the JSON and markdown are rewritten after every section:

  environment   device, torch, the commit verified (`git rev-parse HEAD`, and whether the tree was dirty), the
                dense matmul rate (the ceiling for achieved TFLOP/s)
  correctness   the compiled path (compile_model "model" with fullgraph=True: no graph breaks; and "blocks") and
                the eager fast paths (sdpa, split, flex, fused QKV, CUDA graph) against the same model in fp64 on
                the CPU: forward (fp32 and bf16 on a GPU) and gradients; a seen shape does not recompile
  sync_debug    torch.cuda.set_sync_debug_mode("error") around a compiled forward, a compiled training step and a
                step of ptdit's Trainer (the whole-model compile)
                (on a CPU, --smoke runs the Trainer step only, without the check)
  pipeline      a synthetic official checkpoint (ptdit.official.synthetic_official_state) converted to a model
                folder, then PTDiTPipeline -> prompts -> sampler -> decode (generate_pixels), eager and compiled
  peers         PT-DiT-L beside diffusers' PixArt-alpha (SDPA, text length 120, no checkpointing): eager, compiled
                and CUDA graphs, forward and training step, batch 2, timed with the steady protocol
                (ptdit.bench.steady: interleaved, warmed up until steady, the whole table twice); time ratio
                beside the FLOP ratio; pass/fail compares both compiled, best-of-each reported too
  profile       torch.profiler: top kernels, kernels and time per block for PT-DiT-L and PixArt-alpha at 512^2
                and 1024^2 (eager; the compiled forward's kernel count too), written to gpu_check_profile.md

usage (GPU machine, repo root; two calls of at most 8 minutes on an H100, see --budget):
  python3 benchmarks/gpu_check.py --out $OUT --part 1     # environment, correctness, sync_debug, pipeline, profile
  python3 benchmarks/gpu_check.py --out $OUT --part 2     # environment, peers (512^2, 1024^2, 2048^2)
  python3 benchmarks/gpu_check.py --out $OUT               # everything in one call (budget permitting)
  python benchmarks/gpu_check.py --smoke --out /tmp/x     # every section on the CPU at tiny sizes (~30 s)
Each call writes gpu_check[_partN].json / .md and gpu_check_profile.md into --out; copy them over
benchmarks/results/gpu_check_<card>*.

benchmarks/make_performance_doc.py still reads the recorded run of the earlier layout (gpu_check_h100.json):
`legacy_markdown` renders it as that script wrote it.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ptdit import PTDiT, PTDiTConfig  # noqa: E402
from ptdit import bench as B  # noqa: E402
from ptdit.bench import peers as P  # noqa: E402
from ptdit.fast import CUDAGraphForward, compile_model, fuse_qkv, set_attention_backend  # noqa: E402
from ptdit.io import atomic_write_text  # noqa: E402

SECTIONS = ("environment", "correctness", "sync_debug", "pipeline", "profile", "peers")
PARTS = {1: ("environment", "correctness", "sync_debug", "pipeline", "profile"), 2: ("environment", "peers")}
# rough H100 seconds per section (compilation included), printed as the budget before a run
ESTIMATE_S = {"start": 30, "environment": 10, "correctness": 100, "sync_debug": 60, "pipeline": 40,
              "profile": 60, "peers": 400}  # fmt: skip
PEER = "PixArt-alpha"
PTDIT = ("PT-DiT-L", "PT-DiT-L-lean")
PEER_SIZES = (512, 1024, 2048)
PROFILE_SIZES = (512, 1024)
# issue 23, part 6: PT-DiT / PixArt-alpha time, both compiled, batch 2 (forward: whole transformer)
TARGETS = {
    ("PT-DiT-L", "forward"): {512: 0.85, 1024: 0.63, 2048: 0.33},
    ("PT-DiT-L-lean", "forward"): {512: 0.65, 1024: 0.48, 2048: 0.25},
    ("PT-DiT-L", "train"): {512: 1.0, 1024: 0.70},
}
SMOKE_PTDIT, SMOKE_PEER = ("PT-DiT-T",), "PixArt-alpha-T"


def git_state(root: Path = ROOT) -> dict[str, Any]:
    """{'commit': HEAD or None, 'dirty': tracked files differ from HEAD (None when unknown)}."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty": None if status is None else bool(status)}


class Run:
    """Sections, results, budget and output files of one check run."""

    def __init__(
        self, out: Path, budget_s: float, device: torch.device, smoke: bool, part: int | None = None
    ) -> None:
        self.out, self.budget_s, self.device, self.smoke, self.part = out, budget_s, device, smoke, part
        self.dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        self.t0 = time.monotonic()
        self.data: dict[str, Any] = {"schema": 2, "part": part, "smoke": smoke, "sections": {}}
        self.log: list[str] = []
        self.stem = "gpu_check" + (f"_part{part}" if part else "")
        out.mkdir(parents=True, exist_ok=True)

    @property
    def gpu(self) -> bool:
        return self.device.type == "cuda"

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def time_left(self, need_s: float = 0.0) -> bool:
        return self.elapsed() + need_s < self.budget_s

    def say(self, text: str) -> None:
        line = f"[{self.elapsed():6.1f}s] {text}"
        print(line, flush=True)
        self.log.append(line)

    def section(self, name: str, fn: Callable[[Run, dict[str, Any]], None]) -> None:
        """Run one section into data['sections'][name] = {status, elapsed_s, ...}; never raises."""
        sec: dict[str, Any] = {"status": "running"}
        self.data["sections"][name] = sec
        if not self.time_left():
            sec.update(status="skipped", reason="time budget spent")
            self.say(f"skip {name}: time budget spent")
            return
        self.say(f"== {name}")
        t0 = time.monotonic()
        try:
            fn(self, sec)
            if sec["status"] == "running":
                sec["status"] = "done"
        except Exception as e:
            sec.update(status="failed", error=f"{type(e).__name__}: {e}")
            self.say(f"section {name} failed: {type(e).__name__}: {e}")
            self.log.append(traceback.format_exc())
        finally:
            sec["elapsed_s"] = round(time.monotonic() - t0, 1)
            B.free_memory(self.device)
            self.save()

    def skip(self, sec: dict[str, Any], reason: str) -> None:
        sec.update(status="skipped", reason=reason)
        self.say(f"skipped: {reason}")

    def save(self) -> None:
        self.data["elapsed_s"] = round(self.elapsed(), 1)
        atomic_write_text(self.out / f"{self.stem}.json", json.dumps(self.data, indent=1, default=str) + "\n")
        atomic_write_text(self.out / f"{self.stem}.md", markdown(self.data))
        atomic_write_text(self.out / f"{self.stem}.log", "\n".join(self.log) + "\n")


# =============================================================================================== environment
def section_environment(run: Run, sec: dict[str, Any]) -> None:
    sec.update(B.environment(run.device, run.dtype))
    sec.update(git_state())
    if run.gpu:
        sec["cudnn"] = torch.backends.cudnn.version()
        sec["matmul_tflops"] = B.matmul_tflops(run.device, torch.bfloat16)
    else:
        sec["matmul_tflops"] = B.matmul_tflops(run.device, run.dtype, size=256 if run.smoke else 1024)
    sec["matmul_dtype"] = "bfloat16" if run.gpu else str(run.dtype).replace("torch.", "")
    run.say(f"environment: {sec}")


# =============================================================================================== correctness
def _check_model(seed: int = 0) -> tuple[PTDiT, tuple]:
    """A 2-block PT-DiT (D = 128, 4 heads, window 1x4x4) with every branch live; inputs (x, t, y, mask) at 32x32
    latents, batch 2, the second caption padded."""
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


def _grad_error(model: torch.nn.Module, ref_grads: dict[str, torch.Tensor]) -> float:
    """Worst tensor: |g - ref| / max(|ref|, 1e-3 |all ref|) (some gradients are zero analytically)."""
    scale = 1e-3 * torch.cat([g.flatten() for g in ref_grads.values()]).norm().item()
    return max(
        (p.grad.double().cpu() - ref_grads[n]).norm().item() / max(ref_grads[n].norm().item(), scale)
        for n, p in model.named_parameters()
    )


def _record(
    run: Run, sec: dict[str, Any], path: str, dtype: str, rel: float | None, tol: float, error: str = ""
) -> None:
    result = f"ERROR {error}" if error else ("PASS" if rel is not None and rel <= tol else "FAIL")
    sec.setdefault("checks", []).append(
        {"path": path, "dtype": dtype, "rel_error": rel, "tol": tol, "result": result}
    )
    run.say(f"check {path:<40} {dtype:<5} rel {B._fmt(rel, 8)} (tol {tol:g}) {result}")


def _compile_kwargs(run: Run) -> dict[str, Any]:
    """inductor on a GPU; aot_eager on a CPU (the same graph capture and autograd, without a C++ build)."""
    return {} if run.gpu else {"backend": "aot_eager"}


def section_correctness(run: Run, sec: dict[str, Any]) -> None:
    dev = run.device
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        base, inputs = _check_model()
        ref_model = copy.deepcopy(base).double()
        x64 = [v.double() if v.is_floating_point() and v.dim() > 1 else v for v in inputs]
        with torch.no_grad():
            ref_nomask = ref_model(*x64[:3], None, return_dict=False)[0]
        ref = ref_model(*x64, return_dict=False)[0]
        ref.square().mean().backward()
        ref_grads = {n: p.grad for n, p in ref_model.named_parameters()}
        ck = _compile_kwargs(run)
        fused_split = lambda m: set_attention_backend(fuse_qkv(m), "split")  # noqa: E731
        paths: list[tuple[str, Callable[[torch.nn.Module], torch.nn.Module]]] = [
            ("sdpa", lambda m: m),
            ("split", lambda m: set_attention_backend(m, "split")),
            ("flex", lambda m: set_attention_backend(m, "flex")),
            ("fuse_qkv+split", fused_split),
            ("compile model", lambda m: compile_model(m, "model", **ck)),
            ("compile blocks", lambda m: compile_model(m, "blocks", **ck)),
            ("compile model+fuse_qkv+split", lambda m: compile_model(fused_split(m), "model", **ck)),
        ]
        grad_paths = paths[3:5] + paths[6:]
        if run.smoke:  # each compilation costs seconds on a CPU: one of each kind
            paths = [x for x in paths if x[0] not in ("flex", "compile blocks")]
            grad_paths = grad_paths[1:2]
        dtypes = ((torch.float32, 1e-4), (torch.bfloat16, 3e-2)) if run.gpu else ((torch.float32, 1e-4),)
        for dtype, tol in dtypes:
            name = str(dtype).replace("torch.", "").replace("float", "fp").replace("bfloat16", "bf16")
            xs = [v.to(dev, dtype) if v.is_floating_point() and v.dim() > 1 else v.to(dev) for v in inputs]
            for path, transform in paths:
                try:
                    model = transform(copy.deepcopy(base).to(dev, dtype))
                    with torch.no_grad():
                        out = model(*xs, return_dict=False)[0]
                        if path.startswith("compile"):  # a seen shape does not recompile
                            with torch._dynamo.config.patch(error_on_recompile=True):
                                model(
                                    *[v + 0.1 if v.is_floating_point() else v for v in xs], return_dict=False
                                )
                    _record(run, sec, f"forward {path}", name, _rel(out, ref), tol)
                except Exception as e:
                    _record(run, sec, f"forward {path}", name, None, tol, f"{type(e).__name__}: {e}"[:300])
            if run.gpu:
                try:  # no text mask: as in sampling with full captions
                    model = set_attention_backend(fuse_qkv(copy.deepcopy(base).to(dev, dtype)), "split")
                    graph = CUDAGraphForward(model, *xs[:3], None)
                    _record(
                        run,
                        sec,
                        "forward fuse_qkv+split+cuda_graph",
                        name,
                        _rel(graph(*xs[:3], None), ref_nomask),
                        tol,
                    )
                except Exception as e:
                    _record(run, sec, "forward fuse_qkv+split+cuda_graph", name, None, tol, f"{type(e).__name__}: {e}"[:300])  # fmt: skip
        xs = [v.to(dev) for v in inputs]
        for path, transform in grad_paths:
            try:
                model = transform(copy.deepcopy(base).to(dev))
                model(*xs, return_dict=False)[0].square().mean().backward()
                _record(
                    run, sec, f"gradients {path} (worst tensor)", "fp32", _grad_error(model, ref_grads), 1e-3
                )
            except Exception as e:
                _record(run, sec, f"gradients {path} (worst tensor)", "fp32", None, 1e-3, f"{type(e).__name__}: {e}"[:300])  # fmt: skip
    finally:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    failed = [c for c in sec.get("checks", []) if c["result"] != "PASS"]
    sec["status"] = "failed" if failed else "done"


# =============================================================================================== sync debug
def trainer_step(device: torch.device, run_dir: Path, compile: bool) -> Callable[[], None]:
    """ptdit's Trainer on `device` (a small PT-DiT on 32x32 Shapes images, in memory, bf16, the whole-model
    compile): a function doing one `Trainer.train_step`, which reads nothing back to the host."""
    from ptdit.training import TrainConfig
    from ptdit.training.loop import LogInterval, Trainer

    cfg = TrainConfig.from_dict({
        "model": {"depth": 2, "hidden_size": 128, "num_heads": 4, "window": [1, 2, 2]},
        "data": {"world": "shapes-image", "size": 32, "num_items": 16, "preload": True},
        "text": {"encoder": "random:64", "max_length": 8, "memory_cache": True},
        "autoencoder": {"spec": "identity"},
        "train": {"steps": 10**6, "batch_size": 8, "bf16": True, "compile": compile, "compile_scope": "model",
                  "device": device.type, "ema_decay": 0.999, "threads": 0},
        "checkpoint": {"dir": str(run_dir), "export": False},
        "log": {"progress": False, "plot_every": 0},
    })  # fmt: skip
    trainer = Trainer(cfg)
    batches = trainer.batches()
    params = [p for p in trainer.raw.parameters() if p.requires_grad]
    interval = LogInterval(trainer.device)

    def step() -> None:
        trainer.train_step(trainer.step + 1, batches, interval, params)

    return step


def section_sync_debug(run: Run, sec: dict[str, Any]) -> None:
    """A compiled forward and a compiled training step (PT-DiT-S, 256^2, batch 2, text mask), and a step of
    ptdit's Trainer (ptdit.training, whole-model compile), under set_sync_debug_mode("error"): any host sync
    raises. Warm-up (compilation, per-shape caches, the text cache) runs first. With --smoke on a CPU only the
    Trainer step runs (no sync check there: the code path only)."""
    tmp = tempfile.TemporaryDirectory()
    if not run.gpu:
        if not run.smoke:
            return run.skip(sec, "torch.cuda.set_sync_debug_mode needs a CUDA device")
        step = trainer_step(run.device, Path(tmp.name) / "run", compile=False)
        for _ in range(3):
            step()
        sec["model"] = "ptdit.training.Trainer, a 2-block PT-DiT on 32x32 Shapes, eager (CPU smoke)"
        sec["checks"] = [{"what": "Trainer.train_step (CPU smoke: ran, no sync check)", "result": "ran"}]
        tmp.cleanup()
        return
    name = "PT-DiT-S+fuse"
    built = B.build(B.Case(name, 256, 256), run.device, torch.float32)
    model = compile_model(built.module, "model")
    inputs = built.make_inputs(2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6, fused=True)

    def forward() -> None:
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            built.call(inputs)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = built.call(inputs)
        out.float().square().mean().backward()
        opt.step()

    sec["model"], sec["checks"] = f"{name}, compile_model 'model', 256^2, batch 2, bf16 autocast", []
    checks = [("forward", forward, 2), ("training step", step, 2)]
    try:
        checks.append(
            ("Trainer.train_step", trainer_step(run.device, Path(tmp.name) / "run", compile=True), 4)
        )
    except Exception as e:  # recorded, not fatal: the other checks still run
        sec["checks"].append(
            {"what": "Trainer.train_step", "result": f"FAIL (setup): {type(e).__name__}: {e}"}
        )
    for what, fn, warmup in checks:
        for _ in range(warmup):
            fn()
        torch.cuda.synchronize()
        try:
            torch.cuda.set_sync_debug_mode("error")
            fn()
            result = "PASS"
        except RuntimeError as e:
            result = f"FAIL: {' '.join(str(e).split())[:300]}"
        finally:
            torch.cuda.set_sync_debug_mode("default")
        torch.cuda.synchronize()
        sec["checks"].append({"what": what, "result": result})
        run.say(f"sync debug {what}: {result}")
    tmp.cleanup()
    if any(c["result"] != "PASS" for c in sec["checks"]):
        sec["status"] = "failed"


# =============================================================================================== pipeline
def section_pipeline(run: Run, sec: dict[str, Any]) -> None:
    """Official state -> convert_official_checkpoint -> PTDiTPipeline (random text encoder, pixel-space identity:4
    autoencoder) -> 2 prompts x 2 Euler steps at 64x64 through generate_pixels (as ptdit generate), eager and
    compiled: finite, equal within tolerance."""
    from ptdit.generation import generate_pixels, load_pipeline
    from ptdit.official import convert_official_checkpoint, synthetic_official_state

    caption = 32
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(
            {"model": synthetic_official_state(depth=2, width=64, caption=caption)}, Path(tmp) / "official.pt"
        )
        convert_official_checkpoint(Path(tmp) / "official.pt", Path(tmp) / "model", num_heads=4)
        pipe = load_pipeline(Path(tmp) / "model", text_encoder=f"random:{caption}", vae="identity:4",
                             device=run.device, dtype=torch.float32)  # fmt: skip
    args = (["a red square", "a blue circle"], [0, 1], 64, 64, 1, 2, 4.0, "euler", 2)
    eager = generate_pixels(pipe, *args)
    compile_model(pipe.transformer, "model", **_compile_kwargs(run))
    compiled = generate_pixels(pipe, *args)
    rel = max(_rel(c, e) for c, e in zip(compiled, eager))
    finite = all(bool(torch.isfinite(x).all()) for x in eager + compiled)
    sec.update(
        shapes=[list(x.shape) for x in eager],
        finite=finite,
        compiled_vs_eager_rel=rel,
        tol=1e-3,
        result="PASS" if finite and rel <= 1e-3 else "FAIL",
        setup="synthetic official checkpoint (2 blocks, D = 64) -> convert_official_checkpoint -> "
        "PTDiTPipeline (random:32 text, identity:4 autoencoder), generate_pixels: 2 prompts, 2 Euler steps, cfg 4, "
        "64x64",
    )
    run.say(f"pipeline: {sec['result']} (compiled vs eager {rel:.2e}, finite {finite})")
    if sec["result"] != "PASS":
        sec["status"] = "failed"


# =============================================================================================== profile
def _block_hooks(blocks: torch.nn.ModuleList) -> list[Any]:
    """record_function ranges 'block i' around each block's call."""
    handles = []
    for i, block in enumerate(blocks):
        state: dict[str, Any] = {}

        def pre(_m: Any, _a: Any, i: int = i, state: dict[str, Any] = state) -> None:
            state["rf"] = torch.autograd.profiler.record_function(f"block {i}")
            state["rf"].__enter__()

        def post(_m: Any, _a: Any, _o: Any, state: dict[str, Any] = state) -> None:
            state.pop("rf").__exit__(None, None, None)

        handles += [block.register_forward_pre_hook(pre), block.register_forward_hook(post)]
    return handles


def _kernels(event: Any) -> int:
    return len(event.kernels) + sum(_kernels(c) for c in event.cpu_children)


def profile_forward(built: B.Built, device: torch.device, per_block: bool, top: int = 15) -> dict[str, Any]:
    """One forward (batch 2, after 3 warm-up calls) under torch.profiler: kernel count, device (GPU) or CPU time,
    the top ops by time and, with per_block, kernels and time of each block (record_function ranges)."""
    from torch.profiler import ProfilerActivity, profile

    gpu = device.type == "cuda"
    inputs = built.make_inputs(2)
    blocks = getattr(built.module, "blocks", None) or built.module.transformer_blocks
    handles = _block_hooks(blocks) if per_block else []
    try:
        with torch.no_grad():
            for _ in range(3):
                built.call(inputs)
            B.timing._sync(device)
            acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
            with profile(activities=acts) as prof:
                built.call(inputs)
                B.timing._sync(device)
    finally:
        for h in handles:
            h.remove()
    events = prof.events()
    key = "device_time_total" if gpu else "cpu_time_total"
    averages = sorted(prof.key_averages(), key=lambda e: getattr(e, "self_device_time_total" if gpu else "self_cpu_time_total"), reverse=True)  # fmt: skip
    kernels = [e for e in events if e.device_type.name == "CUDA"]
    out: dict[str, Any] = {
        "kernels": len(kernels),
        "device_ms": sum(e.device_time for e in kernels) / 1000 if gpu else None,
        "time_kind": "GPU kernel time" if gpu else "CPU time",
        "top": [
            {
                "name": e.key[:90],
                "calls": e.count,
                "self_ms": getattr(e, "self_device_time_total" if gpu else "self_cpu_time_total") / 1000,
            }
            for e in averages[:top]
        ],  # fmt: skip
    }
    if per_block:
        ranges = [e for e in events if e.name.startswith("block ") and e.device_type.name == "CPU"]
        out["blocks"] = [
            {"block": e.name, "kernels": _kernels(e), "ms": getattr(e, key) / 1000} for e in ranges
        ]
    return out


def section_profile(run: Run, sec: dict[str, Any]) -> None:
    models = (SMOKE_PTDIT[0], SMOKE_PEER) if run.smoke else ("PT-DiT-L+fuse", PEER)
    sizes = (128,) if run.smoke else PROFILE_SIZES
    sec["profiles"] = []
    for s in sizes:
        for m in models:
            if not run.time_left(30):
                sec["profiles"].append({"model": m, "size": s, "skipped": "time budget spent"})
                continue
            built = B.build(B.Case(m, s, s), run.device, run.dtype)
            prof = {"model": m, "size": s, "mode": "eager", **profile_forward(built, run.device, True)}
            P.compile_module(built.module, "model", **_compile_kwargs(run))
            compiled = profile_forward(built, run.device, False, top=10)
            prof["compiled"] = {k: compiled[k] for k in ("kernels", "device_ms", "top")}
            sec["profiles"].append(prof)
            run.say(f"profile {m} {s}^2: {prof['kernels']} kernels eager, {compiled['kernels']} compiled")
            del built
            B.free_memory(run.device)
    atomic_write_text(run.out / "gpu_check_profile.md", profile_markdown(sec["profiles"], run.gpu))


def profile_markdown(profiles: list[dict[str, Any]], gpu: bool) -> str:
    lines = ["# Profile of one forward (benchmarks/gpu_check.py, torch.profiler, batch 2)", ""]
    for p in profiles:
        if p.get("skipped"):
            lines += [f"## {p['model']} at {p['size']}²: skipped ({p['skipped']})", ""]
            continue
        c = p["compiled"]
        lines += [f"## {p['model']} at {p['size']}²", "",
                  f"Eager: {p['kernels']} GPU kernels, {B._fmt(p['device_ms'], 3)} ms of kernels; compiled "
                  f"(whole module): {c['kernels']} kernels, {B._fmt(c['device_ms'], 3)} ms.", "",
                  f"| op (eager) | calls | self ms ({p['time_kind']}) |", "|---|---|---|"]  # fmt: skip
        lines += [f"| `{t['name']}` | {t['calls']} | {t['self_ms']:.3f} |" for t in p["top"]]
        lines += ["", "| block | kernels | ms |", "|---|---|---|"]
        lines += [f"| {b['block']} | {b['kernels']} | {b['ms']:.3f} |" for b in p.get("blocks", [])]
        lines += ["", "| op (compiled) | calls | self ms |", "|---|---|---|"]
        lines += [f"| `{t['name']}` | {t['calls']} | {t['self_ms']:.3f} |" for t in c["top"]]
        lines.append("")
    return "\n".join(lines)


# =============================================================================================== peers
def section_peers(run: Run, sec: dict[str, Any]) -> None:
    models = SMOKE_PTDIT + (SMOKE_PEER,) if run.smoke else PTDIT + (PEER,)
    peer = SMOKE_PEER if run.smoke else PEER
    sizes = (128,) if run.smoke else PEER_SIZES
    protocol = dict(k=1, max_rounds=2, repeats=2) if run.smoke else dict(k=3, max_rounds=8, repeats=10)
    sec.update(
        models=list(models),
        peer=peer,
        scope="blocks",
        protocol={**protocol, "tol": 0.03, "passes": 2, "flag": 0.10},
    )
    sec["note"] = ("PT-DiT compiled with compile_model(model, 'blocks'), PixArt-alpha with each transformer block "
                   "compiled (the whole-model compile is proven graph-break-free in 'correctness'); fp32 weights "
                   "+ bf16 autocast for training; CUDA graphs of the eager modules")  # fmt: skip

    def on_group(p: int, label: str, rows: list) -> None:
        run.say(f"peers pass {p + 1} {label}: " + ", ".join(
            f"{r.name} {B._fmt(r.pass_medians()[-1] if r.pass_medians() else None, 2)} ms" for r in rows))  # fmt: skip

    rows = P.peer_table(models, sizes, run.device, run.dtype, scope="blocks", compile_kwargs=_compile_kwargs(run),
                        on_group=on_group, stop=lambda: not run.time_left(20), **protocol)  # fmt: skip
    ratio_rows = P.ratios(rows, peer)
    sec.update(rows=rows, ratios=ratio_rows, targets=evaluate_targets(ratio_rows, run.smoke))


def evaluate_targets(ratio_rows: list[dict[str, Any]], smoke: bool) -> list[dict[str, Any]]:
    """Part 6's ratios, both models compiled (best-of-each beside it); smoke runs check the tiny pair at 1.0."""
    targets = {(SMOKE_PTDIT[0], "forward"): {128: 10.0}} if smoke else TARGETS
    out = []
    for (model, phase), limits in targets.items():
        for size, limit in limits.items():
            r = next((r for r in ratio_rows if (r["model"], r["phase"], r["size"]) == (model, phase, f"{size}x{size}")), None)  # fmt: skip
            value = r and r.get("compiled_ratio")
            out.append({
                "target": f"{model} / {r['peer'] if r else PEER} {phase}, both compiled, {size}²",
                "value": value, "threshold": f"<= {limit}",
                "result": "n/a (not measured)" if value is None else "PASS" if value <= limit else "FAIL",
                "best_of_each": r and r.get("best_ratio"), "flop_ratio": r and r.get("flop_ratio"),
                "flagged": bool(r and r.get("compiled_flagged")),
            })  # fmt: skip
    return out


# =============================================================================================== markdown
def markdown(data: dict[str, Any]) -> str:
    """The report of one run (schema 2): environment and commit, every section's status, its tables."""
    secs = data["sections"]
    env = secs.get("environment", {})
    lines = [
        "# GPU check (benchmarks/gpu_check.py)" + (f", part {data['part']}" if data.get("part") else ""),
        "",
    ]
    lines.append(
        f"Device: {env.get('device_name')}; torch {env.get('torch')} (CUDA {env.get('cuda')}); commit "
        f"{env.get('commit')}{' (dirty tree)' if env.get('dirty') else ''}; dense {env.get('matmul_dtype')} matmul "
        f"{B._fmt(env.get('matmul_tflops'))} TFLOP/s; elapsed {B._fmt(data.get('elapsed_s'), 0)} s"
        + ("; smoke run (tiny sizes)" if data.get("smoke") else "")
        + "."
    )
    lines += ["", "| section | status | seconds | detail |", "|---|---|---|---|"]
    for name, s in secs.items():
        detail = s.get("reason") or s.get("error") or ""
        lines.append(
            f"| {name} | {s['status']} | {B._fmt(s.get('elapsed_s'), 0)} | {' '.join(str(detail).split())[:200]} |"
        )
    if "correctness" in secs and secs["correctness"].get("checks"):
        lines += ["", "## Correctness (against fp64 on the CPU)", "", "| path | dtype | rel. error | tolerance | result |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for c in secs["correctness"]["checks"]:
            lines.append(f"| {c['path']} | {c['dtype']} | {B._fmt(c.get('rel_error'), 8)} | {c['tol']:g} | {' '.join(c['result'].split())[:150]} |")  # fmt: skip
    if secs.get("sync_debug", {}).get("checks"):
        lines += ["", f"## Host syncs ({secs['sync_debug']['model']})", "", "| step | result |", "|---|---|"]
        lines += [f"| {c['what']} | {c['result']} |" for c in secs["sync_debug"]["checks"]]
    if "result" in secs.get("pipeline", {}):
        p = secs["pipeline"]
        lines += ["", "## Pipeline end to end", "", f"{p['setup']}: {p['result']} (compiled vs eager rel. "
                  f"{p['compiled_vs_eager_rel']:.2e}, tolerance {p['tol']:g}; finite: {p['finite']})."]  # fmt: skip
    if secs.get("peers", {}).get("rows"):
        p = secs["peers"]
        lines += ["", "## Peers in the same mode", "", f"{p['note']}. Protocol: {p['protocol']}.", ""]
        if p.get("targets"):
            lines += [
                "| target | compiled ratio | threshold | result | best of each | FLOP ratio |",
                "|---|---|---|---|---|---|",
            ]
            for t in p["targets"]:
                flag = " ⚠ passes differ" if t["flagged"] else ""
                lines.append(f"| {t['target']} | {B._fmt(t['value'], 3)}{flag} | {t['threshold']} | {t['result']} | "
                             f"{B._fmt(t['best_of_each'], 3)} | {B._fmt(t['flop_ratio'], 3)} |")  # fmt: skip
            lines.append("")
        lines.append(P.markdown(p["rows"], p["ratios"]))
    if secs.get("profile", {}).get("profiles"):
        lines += ["", "## Profile", "", "Per op and per block: gpu_check_profile.md.", "",
                  "| model | size | kernels eager | kernels compiled | kernel ms eager | kernel ms compiled |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for p in secs["profile"]["profiles"]:
            if not p.get("skipped"):
                lines.append(f"| {p['model']} | {p['size']}² | {p['kernels']} | {p['compiled']['kernels']} | "
                             f"{B._fmt(p['device_ms'], 3)} | {B._fmt(p['compiled']['device_ms'], 3)} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def legacy_markdown(data: dict[str, Any]) -> str:
    """The report of a run of the earlier layout (environment, checks, targets, rows), as that script wrote it."""
    env = data["environment"]
    lines = [
        "# GPU check (benchmarks/gpu_check.py)",
        "",
        f"Device: {env.get('device_name')}; torch {env.get('torch')} (CUDA {env.get('cuda')}); forward dtype "
        f"{env.get('dtype')}; dense {env.get('dtype')} matmul {B._fmt(env.get('matmul_tflops'))} TFLOP/s; "
        f"elapsed {data['elapsed_s']:.0f} s.",
        "",
        "## Targets",
        "",
        "| target | measured | threshold | result | detail |",
        "|---|---|---|---|---|",
    ]
    for t in data["targets"]:
        lines.append(
            f"| {t['target']} | {B._fmt(t.get('value'), 3)} | {t['threshold']} | {t['result']} | {t['detail']} |"
        )
    lines += ["", "## Correctness of the fast paths (vs fp64 on the CPU)", ""]
    lines += ["| path | dtype | rel. error | tolerance | result |", "|---|---|---|---|---|"]
    for c in data["checks"]:
        lines.append(
            f"| {c['path']} | {c['dtype']} | {B._fmt(c.get('rel_error'), 6)} | {c['tol']} | {c['result']} |"
        )
    rows = data["rows"]
    lines += ["", "## Measurements", "", B.markdown_table(rows, "PixArt-alpha") if rows else ""]
    return "\n".join(lines) + "\n"


# =============================================================================================== main
FUNCTIONS: dict[str, Callable[[Run, dict[str, Any]], None]] = {
    "environment": section_environment,
    "correctness": section_correctness,
    "sync_debug": section_sync_debug,
    "pipeline": section_pipeline,
    "profile": section_profile,
    "peers": section_peers,
}


def budget(sections: tuple[str, ...]) -> str:
    total = ESTIMATE_S["start"] + sum(ESTIMATE_S[s] for s in sections)
    parts = ", ".join(f"{s} ~{ESTIMATE_S[s]} s" for s in sections)
    return f"estimated H100 budget: ~{total / 60:.1f} min (start ~{ESTIMATE_S['start']} s, {parts})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--out", required=True, help="folder for gpu_check[_partN].json / .md / .log, gpu_check_profile.md"
    )
    p.add_argument("--budget-s", type=float, default=440.0, help="start no section or timed group after this")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--part", type=int, choices=sorted(PARTS), default=None, help="one of two calls (default: all)"
    )
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=None, help="only these sections")
    p.add_argument(
        "--smoke", action="store_true", help="tiny sizes and models: every section in well under a minute"
    )
    args = p.parse_args(argv)
    if args.smoke:
        from ptdit.bench.cases import TINY_PRESET
        from ptdit.config import PRESETS

        PRESETS.setdefault(*TINY_PRESET)
    sections = tuple(args.sections or (PARTS[args.part] if args.part else SECTIONS))
    if "environment" not in sections:
        sections = ("environment", *sections)
    run = Run(Path(args.out), args.budget_s, torch.device(args.device), args.smoke, args.part)
    run.say(budget(sections))
    run.data["budget_estimate"] = budget(sections)
    for name in sections:
        run.section(name, FUNCTIONS[name])
    run.save()
    print(markdown(run.data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

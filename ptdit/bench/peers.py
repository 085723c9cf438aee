"""PT-DiT beside its peer in the same mode: eager, compiled and CUDA graphs; forward and training step.

`peer_table(models, sizes, ...)` builds each model once per size (random weights; the sizes of one model share
its parameters, so memory does not grow with the number of sizes), makes one callable per (model, mode, phase)
and times them with the steady protocol (ptdit.bench.steady): one group per (size, phase, mode), its models
interleaved, the whole table measured twice. Modes:

* "eager": the module as built;
* "compiled": PT-DiT through `ptdit.fast.compile_model(model, scope)` ("model": the whole forward in one
  graph; "blocks": each block), a diffusers peer through `nn.Module.compile` of the whole module ("model") or
  of each transformer block ("blocks"); eager and compiled calls share one module (the compiled entry points are
  switched off for an eager call);
* "graph": CUDA graphs of the eager module (GPU only; on a CPU the row is skipped with its reason): the forward
  captured whole; the training step's forward and backward captured by `torch.cuda.make_graphed_callables`,
  the optimizer step outside the graph.

Phases: "forward" (no grad, weights in `dtype`, batch 2) and "train" (fp32 weights + `dtype` autocast when it is
half precision, forward + backward of mean(out^2) + AdamW step). Each row carries the analytic MACs
(ptdit.complexity): `ratios(rows, peer)` gives the time ratio beside the FLOP ratio per size, phase and mode,
and the best-of-each ratio (each model's fastest mode).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .cases import Case, parse_model
from .measure import _graphed_call
from .models import Built, build
from .steady import Timer, _error, device_timer, steady_table

MODES = ("eager", "compiled", "graph")
PHASES = ("forward", "train")


# ------------------------------------------------------------------------------------------- modes on one module
def compile_module(module: nn.Module, scope: str = "model", **kwargs: Any) -> nn.Module:
    """Compile a PTDiT (ptdit.fast.compile_model) or a diffusers transformer (whole module or its
    transformer_blocks) in place, dynamic=False. Returns the module."""
    from .. import fast

    kwargs.setdefault("dynamic", False)
    if hasattr(module, "block_context"):
        return fast.compile_model(module, scope, **kwargs)
    if scope == "blocks":
        for block in module.transformer_blocks:
            block.compile(**kwargs)
    else:
        module.compile(**kwargs)
    return module


@contextlib.contextmanager
def eager_mode(module: nn.Module) -> Iterator[None]:
    """Run a module compiled in place (compile_module) eagerly inside the block; restored after."""
    saved_run = module.__dict__.pop("_compiled_run", None)
    saved = [(m, m._compiled_call_impl) for m in module.modules() if m._compiled_call_impl is not None]
    for m, _ in saved:
        m._compiled_call_impl = None
    try:
        yield
    finally:
        for m, impl in saved:
            m._compiled_call_impl = impl
        if saved_run is not None:
            module.__dict__["_compiled_run"] = saved_run


def share_parameters(module: nn.Module, base: nn.Module) -> nn.Module:
    """Make `module` use `base`'s parameter and buffer tensors (same names and shapes). Returns `module`."""
    module.load_state_dict(base.state_dict(keep_vars=True), assign=True)
    return module


def _graph_inputs(built: Built, inputs: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A PTDiT captured without its all-ones text mask (its validation would sync with the host)."""
    if inputs.get("encoder_attention_mask") is not None and hasattr(built.module, "block_context"):
        return {**inputs, "encoder_attention_mask": None}, "CUDA graph without the (all-ones) text mask"
    return inputs, ""


class _Positional(nn.Module):
    """`built.call` as a module of positional tensors (what make_graphed_callables takes)."""

    def __init__(self, built: Built, inputs: dict[str, Any]) -> None:
        super().__init__()
        self.inner, self.built = built.module, built
        self.keys = [k for k, v in inputs.items() if isinstance(v, Tensor)]
        self.rest = {k: v for k, v in inputs.items() if not isinstance(v, Tensor)}

    def forward(self, *tensors: Tensor) -> Tensor:
        return self.built.call({**self.rest, **dict(zip(self.keys, tensors))})


# ------------------------------------------------------------------------------------------- callables
class Subject:
    """One model at one size: its forward module (dtype) and its training module (fp32), callables per mode."""

    def __init__(
        self,
        name: str,
        case: Case,
        device: torch.device,
        dtype: torch.dtype,
        batch: int,
        phases: Sequence[str],
        scope: str,
        bases: dict[tuple[str, str], nn.Module],
        optimizers: dict[int, torch.optim.Optimizer],
        compile_kwargs: dict[str, Any],
    ) -> None:
        self.name, self.case, self.device, self.dtype, self.batch = name, case, device, dtype, batch
        self.notes: dict[tuple[str, str], str] = {}
        self.built: dict[str, Built] = {}
        for phase in phases:
            built = build(case, device, dtype if phase == "forward" else torch.float32)
            base = bases.setdefault((name, phase), built.module)
            if base is not built.module:
                share_parameters(built.module, base)
            compile_module(built.module, scope, **compile_kwargs)
            self.built[phase] = built
        self.optimizers = optimizers  # one per model: its sizes share its parameters

    @property
    def macs(self) -> int | None:
        return next(iter(self.built.values())).macs

    @property
    def params(self) -> int:
        return sum(p.numel() for p in next(iter(self.built.values())).module.parameters())

    def callable(self, phase: str, mode: str) -> Callable[[], Any]:
        """fn() runs one forward or training step in `mode`; raises ValueError (the skip reason) where the mode
        cannot run here."""
        if mode == "graph" and self.device.type != "cuda":
            raise ValueError("CUDA graphs need a CUDA device")
        built = self.built[phase]
        return (self._forward if phase == "forward" else self._train)(built, mode)

    def _forward(self, built: Built, mode: str) -> Callable[[], Any]:
        module = built.module.eval()
        inputs = built.make_inputs(self.batch)
        if mode == "compiled":

            def fn() -> Tensor:
                with torch.no_grad():
                    return built.call(inputs)

            return fn
        if mode == "eager":

            def fn() -> Tensor:
                with torch.no_grad(), eager_mode(module):
                    return built.call(inputs)

            return fn
        inputs, note = _graph_inputs(built, inputs)
        if note:
            self.notes[("forward", "graph")] = note
        with torch.no_grad(), eager_mode(module):
            return _graphed_call(built, inputs, self.device)

    def _train(self, built: Built, mode: str) -> Callable[[], Any]:
        module = built.module.train()
        params = list(module.parameters())
        key = id(params[0])  # the sizes of one model share parameters, and so one optimizer
        optimizer = self.optimizers.get(key)
        if optimizer is None:
            optimizer = torch.optim.AdamW(params, lr=1e-6, fused=self.device.type == "cuda")
            self.optimizers[key] = optimizer
        inputs = built.make_inputs(self.batch)
        half = self.dtype in (torch.bfloat16, torch.float16)

        def autocast() -> contextlib.AbstractContextManager:
            if not half:
                return contextlib.nullcontext()
            return torch.autocast(self.device.type, dtype=self.dtype, cache_enabled=mode != "graph")

        if mode in ("eager", "compiled"):

            def step() -> None:
                optimizer.zero_grad(set_to_none=True)
                with eager_mode(module) if mode == "eager" else contextlib.nullcontext(), autocast():
                    out = built.call(inputs)
                out.float().square().mean().backward()
                optimizer.step()

            return step
        inputs, note = _graph_inputs(built, inputs)
        if note:
            self.notes[("train", "graph")] = note + " (forward and backward captured; optimizer step eager)"
        wrapper = _Positional(built, inputs)
        tensors = tuple(inputs[k] for k in wrapper.keys)
        with eager_mode(module), autocast():
            graphed = torch.cuda.make_graphed_callables(wrapper, tensors)

        def graph_step() -> None:
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                out = graphed(*tensors)
            out.float().square().mean().backward()
            optimizer.step()

        return graph_step


# ------------------------------------------------------------------------------------------- the table
def peer_table(
    models: Sequence[str],
    sizes: Sequence[int | tuple[int, int]],
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    modes: Sequence[str] = MODES,
    phases: Sequence[str] = PHASES,
    batch: int = 2,
    scope: str = "model",
    compile_kwargs: dict[str, Any] | None = None,
    timer: Timer | None = None,
    k: int = 3,
    tol: float = 0.03,
    max_rounds: int = 10,
    repeats: int = 10,
    passes: int = 2,
    flag: float = 0.10,
    on_group: Callable[[int, str, list], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> list[dict[str, Any]]:
    """Rows {size, height, width, phase, mode, model, params, gmacs, median_ms, min_ms, max_ms, pass_medians_ms,
    pass_spread, flagged, warmup_rounds, steady, skipped (the reason, or None), notes, ...} for every model,
    size (S or (H, W) in pixels), phase and mode; see the module docstring and ptdit.bench.steady."""
    device = torch.device(device)
    bad = set(modes) - set(MODES) or set(phases) - set(PHASES)
    if bad:
        raise ValueError(f"unknown mode or phase {sorted(bad)}; modes {MODES}, phases {PHASES}")
    for m in models:
        base, flags = parse_model(m)
        if flags & {"compile", "graph"}:
            raise ValueError(f"{m}: give the mode with modes=, not +compile / +graph")
    bases: dict[tuple[str, str], nn.Module] = {}
    optimizers: dict[int, torch.optim.Optimizer] = {}
    subjects: dict[tuple[str, int, int], Subject | str] = {}
    groups: list[tuple[str, dict[str, Callable[[], Any]]]] = []
    meta: dict[tuple[str, str], dict[str, Any]] = {}
    skipped: list[dict[str, Any]] = []
    for size in sizes:
        h, w = (size, size) if isinstance(size, int) else size
        for phase in phases:
            for mode in modes:
                label = f"{h}x{w} {phase} {mode}"
                fns: dict[str, Callable[[], Any]] = {}
                for m in models:
                    row = dict(size=f"{h}x{w}", height=h, width=w, phase=phase, mode=mode, model=m)
                    try:
                        subject = subjects.get((m, h, w))
                        if subject is None:
                            try:
                                subject = Subject(m, Case(m, h, w), device, dtype, batch, phases, scope, bases,
                                                  optimizers, dict(compile_kwargs or {}))  # fmt: skip
                            except Exception as e:
                                subject = f"build failed: {_error(e)}"
                            subjects[(m, h, w)] = subject
                        if isinstance(subject, str):
                            raise ValueError(subject)
                        row.update(params=subject.params, gmacs=subject.macs and subject.macs / 1e9)
                        fns[m] = subject.callable(phase, mode)
                        row["notes"] = subject.notes.get((phase, mode), "")
                        meta[(label, m)] = row
                    except Exception as e:
                        skipped.append({**row, "skipped": _error(e)})
                if fns:
                    groups.append((label, fns))
    timed = steady_table(
        groups, timer or device_timer(device), k, tol, max_rounds, repeats, passes, flag, on_group, stop
    )
    rows = []
    for r in timed:
        row = {
            **meta[(r["group"], r["name"])],
            **{k_: v for k_, v in r.items() if k_ not in ("group", "name")},
        }
        row["skipped"] = None
        rows.append(row)
    for r in skipped:
        rows.append({**r, "median_ms": None, "flagged": False})
    return rows


def ratios(rows: Sequence[dict[str, Any]], peer: str) -> list[dict[str, Any]]:
    """For each model other than `peer`, size and phase: time and FLOP ratios against `peer`, per mode
    (the same mode on both) and best-of-each (each model's fastest mode). Below 1: faster / cheaper than peer."""
    out = []
    keyed = {(r["model"], r["size"], r["phase"], r["mode"]): r for r in rows if r.get("median_ms")}
    for model in dict.fromkeys(r["model"] for r in rows if r["model"] != peer):
        for size, phase in dict.fromkeys((r["size"], r["phase"]) for r in rows):
            mine = {m: r for (n, s, p, m), r in keyed.items() if (n, s, p) == (model, size, phase)}
            theirs = {m: r for (n, s, p, m), r in keyed.items() if (n, s, p) == (peer, size, phase)}
            if not mine or not theirs:
                continue
            any_mine, any_theirs = next(iter(mine.values())), next(iter(theirs.values()))
            flop = (
                any_mine["gmacs"] / any_theirs["gmacs"]
                if any_mine.get("gmacs") and any_theirs.get("gmacs")
                else None
            )
            row = {"model": model, "peer": peer, "size": size, "phase": phase, "flop_ratio": flop}
            for mode in MODES:
                if mode in mine and mode in theirs:
                    row[f"{mode}_ratio"] = mine[mode]["median_ms"] / theirs[mode]["median_ms"]
                    row[f"{mode}_flagged"] = mine[mode]["flagged"] or theirs[mode]["flagged"]
            best_m = min(mine, key=lambda m: mine[m]["median_ms"])
            best_t = min(theirs, key=lambda m: theirs[m]["median_ms"])
            row["best_ratio"] = mine[best_m]["median_ms"] / theirs[best_t]["median_ms"]
            row["best_modes"] = f"{best_m} / {best_t}"
            out.append(row)
    return out


def _ms(x: float | None) -> str:
    return "–" if x is None else f"{x:,.2f}" if x < 100 else f"{x:,.1f}"


def markdown(rows: Sequence[dict[str, Any]], ratio_rows: Sequence[dict[str, Any]] = ()) -> str:
    """The timings (median, min–max, the two passes' medians, ⚠ where they differ by more than the flag) and,
    when given, the ratios against the peer with the FLOP ratio beside them."""
    lines = [
        "| size | phase | mode | model | median ms | min–max ms | pass medians ms | warm-up rounds | notes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("skipped"):
            lines.append(f"| {r['size']} | {r['phase']} | {r['mode']} | {r['model']} | – | – | – | – | "
                         f"skipped: {r['skipped']} |")  # fmt: skip
            continue
        flag = " ⚠ passes differ" if r.get("flagged") else ""
        steady = "" if r.get("steady") in (True, None) else " (not steady)"
        err = f" error: {r['error']}" if r.get("error") else ""
        passes = " / ".join(_ms(m) for m in r.get("pass_medians_ms") or [])
        lines.append(
            f"| {r['size']} | {r['phase']} | {r['mode']} | {r['model']} | {_ms(r.get('median_ms'))}{flag} | "
            f"{_ms(r.get('min_ms'))}–{_ms(r.get('max_ms'))} | {passes} | "
            f"{', '.join(map(str, r.get('warmup_rounds') or []))}{steady} | {(r.get('notes') or '') + err} |"
        )
    if ratio_rows:
        lines += [
            "",
            "| size | phase | model / peer | eager | compiled | graph | best of each | FLOP ratio |",
        ]
        lines += ["|---|---|---|---|---|---|---|---|"]

        def cell(r: dict[str, Any], mode: str) -> str:
            v = r.get(f"{mode}_ratio")
            return "–" if v is None else f"{v:.3f}" + (" ⚠" if r.get(f"{mode}_flagged") else "")

        for r in ratio_rows:
            lines.append(
                f"| {r['size']} | {r['phase']} | {r['model']} / {r['peer']} | {cell(r, 'eager')} | "
                f"{cell(r, 'compiled')} | {cell(r, 'graph')} | {r['best_ratio']:.3f} ({r['best_modes']}) | "
                f"{'–' if r['flop_ratio'] is None else format(r['flop_ratio'], '.3f')} |"
            )
    return "\n".join(lines) + "\n"

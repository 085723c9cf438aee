"""Fast paths that transform a built PTDiT without touching its modules' code or its weights' names.

* `fuse_qkv(model)`: every `Attention` computes q/k/v (self-attention) or k/v (cross-attention) with one GEMM on
  concatenated weights. Training-safe: under autograd the weights are concatenated per call (differentiable);
  without autograd the concatenation is cached and rebuilt when a weight changes. `state_dict` is unchanged.
* `compile_model(model, scope="model" | "blocks")`: `torch.compile` of the whole forward as one graph (no graph
  breaks, no host syncs; the per-shape context is built eagerly and passed in) or of each block; calls of a seen
  shape do not recompile (tests: `fullgraph=True`, `torch._dynamo.config.error_on_recompile`).
* `set_attention_backend(model, "split" | "flex" | "sdpa")`: the shifted-window fast paths of ptdit.attention.
* `CUDAGraphForward`: a captured CUDA graph of a whole forward for sampling (fixed shapes; GPU only).
* `bf16_numerics()`: bf16 GEMMs with fp32 accumulation (cuBLAS reduced-precision reductions off).
* `optimize_for_inference(model, ...)`: the above in one call.

Tokens already stay window-major across the network: they are partitioned once after the patch embedding and
merged once before unpatchify (ptdit.model); the shift is one cached gather (ptdit.layout.shift_permutation).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import BACKENDS, Attention, attention


class FusedQKVAttention(Attention):
    """`Attention` with fused input projections; same parameters (to_q, to_k, to_v, to_out), same results.

    x: (..., Lq, D); context: (..., Lk, kv_dim) or None (self-attention: one GEMM for q, k, v).
    """

    def _weights(self, names: tuple[str, ...]) -> tuple[Tensor, Tensor]:
        layers = [getattr(self, n) for n in names]
        training = torch.is_grad_enabled() and any(p.requires_grad for m in layers for p in m.parameters())
        if training or torch.compiler.is_compiling():
            # in a compiled graph the concatenation is part of the graph; the Python-side cache below would
            # break it (torch 2.11 recompiled on its data_ptr()/_version stamp at every call)
            return torch.cat([m.weight for m in layers]), torch.cat([m.bias for m in layers])
        cache = self.__dict__.setdefault("_fused_cache", {})
        stamp = tuple(
            (m.weight.data_ptr(), m.weight._version, m.bias._version, m.weight.dtype) for m in layers
        )
        hit = cache.get(names)
        if hit is None or hit[0] != stamp:
            with torch.no_grad():
                hit = (stamp, torch.cat([m.weight for m in layers]), torch.cat([m.bias for m in layers]))
            cache[names] = hit
        return hit[1], hit[2]

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        mask: Tensor | None = None,
        backend: str = "sdpa",
        boundary: Tensor | None = None,
    ) -> Tensor:
        H = self.num_heads
        if context is None:
            w, b = self._weights(("to_q", "to_k", "to_v"))
            qkv = F.linear(x, w, b).unflatten(-1, (3, H, -1))  # (..., L, 3, heads, d)
            q, k, v = qkv.movedim(-3, 0).transpose(-3, -2).unbind(0)  # each (..., heads, L, d)
        else:
            w, b = self._weights(("to_k", "to_v"))
            q = self._heads(self.to_q(x))
            k, v = (
                F.linear(context, w, b).unflatten(-1, (2, H, -1)).movedim(-3, 0).transpose(-3, -2).unbind(0)
            )
        out = attention(q, k, v, mask, backend, boundary)  # (..., heads, Lq, d)
        return self.to_out(out.transpose(-3, -2).flatten(-2))


def _with_bias(m: Attention) -> bool:
    return all(getattr(m, n).bias is not None for n in ("to_q", "to_k", "to_v"))


def fuse_qkv(model: nn.Module) -> nn.Module:
    """Switch every biased `Attention` in `model` to `FusedQKVAttention` (in place). Returns the model."""
    for m in model.modules():
        if type(m) is Attention and _with_bias(m):
            m.__class__ = FusedQKVAttention
    return model


def unfuse_qkv(model: nn.Module) -> nn.Module:
    """Undo `fuse_qkv` (in place). Returns the model."""
    for m in model.modules():
        if type(m) is FusedQKVAttention:
            m.__dict__.pop("_fused_cache", None)
            m.__class__ = Attention
    return model


def set_attention_backend(model: nn.Module, backend: str) -> nn.Module:
    """Select the attention backend of a PTDiT ("sdpa", "math", "split", "flex"). Returns the model."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; use one of {BACKENDS}")
    if not hasattr(model, "attention_backend"):
        raise ValueError(f"{type(model).__name__} has no attention_backend: only a PTDiT takes a backend")
    model.attention_backend = backend
    return model


COMPILE_SCOPES = ("model", "blocks")


def compile_model(model: nn.Module, scope: str = "model", **compile_kwargs) -> nn.Module:
    """`torch.compile` a PTDiT in place, the one switch for both granularities. Returns the model.

    scope="model": the whole tensor program of the forward (`PTDiT._run`: embedders, every block, the final
    layer) as one graph, with `fullgraph=True` (a graph break is an error, not a slowdown). Everything that
    depends on the input's shape or on the text mask (positions, text mask, shift permutation and masks, border
    windows of the "split" path, padding masks) is built eagerly by `PTDiT.block_context` from per-shape caches
    and passed in, so the graph holds no host sync and a seen shape does not recompile.
    scope="blocks": each block compiled on its own (blocks of one kind share a graph: a new shape costs one
    compilation per kind, quicker to build); what diffusers' `model.compile_repeated_blocks()` also does.

    Defaults: dynamic=False. Fused QKV and the "split" backend compose; "flex" (its own compiled kernel and
    block masks) is replaced by "sdpa" with a warning. Parameter names, state_dict and checkpoints do not change.
    """
    if scope not in COMPILE_SCOPES:
        raise ValueError(f"compile scope {scope!r} is not one of {COMPILE_SCOPES}")
    if not hasattr(model, "blocks") or not hasattr(model, "block_context"):
        raise ValueError(f"{type(model).__name__} is not a PTDiT: compile_model takes a ptdit.PTDiT")
    if getattr(model, "attention_backend", "sdpa") == "flex":
        warnings.warn("compile_model: attention backend 'flex' is for eager mode; using 'sdpa'", stacklevel=2)
        model.attention_backend = "sdpa"
    compile_kwargs.setdefault("dynamic", False)
    if scope == "model":
        compile_kwargs.setdefault("fullgraph", True)
        # compiled as a function of (model, ...): a deep copy of the model calls it with itself
        model.__dict__["_compiled_run"] = torch.compile(type(model)._run, **compile_kwargs)
    else:
        for block in model.blocks:
            block.compile(**compile_kwargs)
    return model


def compile_blocks(model: nn.Module, **compile_kwargs) -> nn.Module:
    """Deprecated (ptdit 0.1): `compile_model(model, "blocks", ...)`."""
    warnings.warn(
        "ptdit.fast.compile_blocks is deprecated: use compile_model(model, 'blocks') (or 'model')",
        FutureWarning,
        stacklevel=2,
    )
    return compile_model(model, "blocks", **compile_kwargs)


@contextlib.contextmanager
def bf16_numerics() -> Iterator[None]:
    """bf16 GEMMs accumulate in fp32 end to end (no reduced-precision split-K reductions on CUDA).

    LayerNorm, softmax (inside SDPA), proxy means and the timestep sinusoid already compute in fp32.
    """
    flag = torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = flag


class CUDAGraphForward:
    """A whole forward captured as one CUDA graph, for sampling at a fixed shape (inference only).

    graph = CUDAGraphForward(model, x, t, y, mask); out = graph(x, t, y, mask) copies the inputs into the static
    buffers, replays and returns the static output (overwritten by the next call: clone it to keep it).
    """

    def __init__(self, model: nn.Module, *example_inputs: Tensor | None, warmup: int = 2) -> None:
        tensors = [t for t in example_inputs if t is not None]
        if not torch.cuda.is_available() or any(t.device.type != "cuda" for t in tensors):
            raise ValueError("CUDAGraphForward needs CUDA tensors on a CUDA device")
        self.model = model
        self.static_in = [None if t is None else t.clone() for t in example_inputs]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.no_grad():
            for _ in range(warmup):  # builds cached masks/indices and picks kernels before capture
                model(*self.static_in)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.no_grad():
            out = model(*self.static_in)
            self.static_out = out if isinstance(out, Tensor) else out[0]  # a diffusers output's sample

    def __call__(self, *inputs: Tensor | None) -> Tensor:
        if len(inputs) != len(self.static_in):
            raise ValueError(f"expected {len(self.static_in)} inputs as at capture, got {len(inputs)}")
        for dst, src in zip(self.static_in, inputs):
            if (dst is None) != (src is None) or (dst is not None and dst.shape != src.shape):
                raise ValueError("CUDAGraphForward inputs must have the shapes captured; capture a new graph")
            if dst is not None:
                dst.copy_(src)
        self.graph.replay()
        return self.static_out


def optimize_for_inference(
    model: nn.Module,
    dtype: torch.dtype | None = None,
    fuse: bool = True,
    backend: str | None = "split",
    compile: bool = False,
    **compile_kwargs,
) -> nn.Module:
    """eval(), optional cast, fused QKV, a shifted-window backend and optional per-block compile (in place)."""
    model.eval()
    if dtype is not None:
        model.to(dtype)
    if fuse:
        fuse_qkv(model)
    if backend is not None and hasattr(model, "attention_backend"):
        set_attention_backend(model, backend)
    if compile:
        compile_model(model, "blocks", **compile_kwargs)
    return model

"""The attention chokepoint: every attention of every PT-DiT module is computed by `attention()`.

Backends: "sdpa" (torch.nn.functional.scaled_dot_product_attention, the default) and "math" (an explicit
softmax(QK^T/sqrt(d))V in fp32, slow, for checking). New kernels are added here and nowhere else.

CPU training: torch's CPU flash-attention backward is 1.4-11x slower in bf16 than the explicit fp32
softmax(QK^T)V for short keys (windows, proxies, text; `python benchmarks/cpu_attention.py`), so "sdpa" on a
CPU with a gradient to compute and at most CPU_MATH_MAX_KEYS[dtype] keys runs the explicit product (the
forward-only case keeps SDPA, which is as fast or faster there).

Fast paths for the masked shifted windows (window-major q (B, nW, heads, n, d) with a per-window mask
(nW, 1, n, n); every other call runs as "sdpa"):

* "split": mask-free SDPA over all windows, then masked SDPA over only the windows whose mask is not all-true
  (the windows that wrap around the grid border), written over the first result. Exact; the boundary windows
  are found once per mask and cached.
* "flex": FlexAttention (torch.nn.attention.flex_attention, compiled) with a block mask built once per mask and
  cached. Forward only on CPU; where a gradient is needed on CPU it falls back to masked SDPA.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BACKENDS = ("sdpa", "math", "split", "flex")
# per q dtype: above this many keys SDPA's CPU backward is the faster one (benchmarks/cpu_attention.py)
CPU_MATH_MAX_KEYS: dict[torch.dtype, int] = {torch.bfloat16: 128, torch.float16: 128, torch.float32: 32}


def _math(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    """softmax(q k^T / sqrt(d) + mask) v in fp32, any leading dims; returns q's dtype."""
    scores = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = (
            scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask.float()
        )
    return (scores.softmax(dim=-1) @ v.float()).to(q.dtype)


def _cpu_backward_prefers_math(q: Tensor, k: Tensor, v: Tensor) -> bool:
    """A CPU call that autograd will differentiate, with keys short enough for the explicit product to win."""
    return (
        q.device.type == "cpu"
        and k.shape[-2] <= CPU_MATH_MAX_KEYS.get(q.dtype, -1)
        and torch.is_grad_enabled()
        and (q.requires_grad or k.requires_grad or v.requires_grad)
    )


def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    backend: str = "sdpa",
    boundary: Tensor | None = None,
) -> Tensor:
    """Scaled dot-product attention.

    q: (..., heads, Lq, d); k, v: (..., heads, Lk, d); any number of leading batch dims.
    mask: None, bool (True = may attend) or float (added to the logits), broadcastable to (..., heads, Lq, Lk).
    boundary: for "split", the (k,) indices of the windows whose mask forbids a pair (`boundary_windows`),
    computed outside a compiled graph; None = found here from the mask (a host sync, cached per mask).
    Returns (..., heads, Lq, d) in q's dtype.
    """
    if backend == "sdpa":
        if _cpu_backward_prefers_math(q, k, v):
            return _math(q, k, v, mask)
        if mask is not None and mask.dtype != torch.bool and mask.dtype != q.dtype:
            mask = mask.to(q.dtype)  # torch 2.13 CPU: an fp32 additive mask with fp64 q gives wrong results
        if q.dim() > 4:  # fold extra batch dims: the fused kernels want 4-D (5-D runs the math kernel)
            lead = q.shape[:-3]
            if mask is not None:
                mask = mask.expand(*lead, *mask.shape[-3:]).reshape(-1, *mask.shape[-3:])
            q, k, v = q.flatten(0, -4), k.flatten(0, -4), v.flatten(0, -4)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask).unflatten(0, lead)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if backend in ("split", "flex") and _is_window_mask(q, mask):
        if backend == "split":
            return _split_window_attention(q, k, v, mask, boundary)
        return _flex_window_attention(q, k, v, mask)
    if backend in ("split", "flex"):
        return attention(q, k, v, mask, "sdpa")
    if backend == "math":
        return _math(q, k, v, mask)
    raise ValueError(f"unknown attention backend {backend!r}; use one of {BACKENDS}")


class Attention(nn.Module):
    """Multi-head attention with biased q/k/v/out projections (diffusers' layout: to_q, to_k, to_v, to_out).

    x: (..., Lq, D) queries; context: (..., Lk, kv_dim) keys/values (defaults to x).
    """

    def __init__(self, dim: int, num_heads: int, kv_dim: int | None = None, bias: bool = True) -> None:
        super().__init__()
        kv_dim = dim if kv_dim is None else kv_dim
        self.num_heads = num_heads
        self.to_q = nn.Linear(dim, dim, bias=bias)
        self.to_k = nn.Linear(kv_dim, dim, bias=bias)
        self.to_v = nn.Linear(kv_dim, dim, bias=bias)
        self.to_out = nn.Linear(dim, dim, bias=True)

    def _heads(self, x: Tensor) -> Tensor:  # (..., L, D) -> (..., heads, L, d)
        return x.unflatten(-1, (self.num_heads, -1)).transpose(-3, -2)

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        mask: Tensor | None = None,
        backend: str = "sdpa",
        boundary: Tensor | None = None,
    ) -> Tensor:
        context = x if context is None else context
        q, k, v = self._heads(self.to_q(x)), self._heads(self.to_k(context)), self._heads(self.to_v(context))
        out = attention(q, k, v, mask, backend, boundary)  # (..., heads, Lq, d)
        return self.to_out(out.transpose(-3, -2).flatten(-2))


# --------------------------------------------------------------------------------------------- window fast paths
_MASK_CACHE: dict[tuple, tuple] = {}  # (data_ptr, shape, dtype, device, kind) -> (base tensor, value)


def _cached(mask: Tensor, kind: str, build: Callable[[Tensor], object]) -> object:
    """A value derived from a (nW, 1, n, n) window mask, built once per mask tensor (masks are cached by shape)."""
    base = mask if mask._base is None else mask._base
    key = (mask.data_ptr(), tuple(mask.shape), mask.dtype, str(mask.device), kind)
    hit = _MASK_CACHE.get(key)
    if hit is not None and hit[0] is base:  # the same live tensor, not a new one at a reused address
        return hit[1]
    if len(_MASK_CACHE) > 64:
        _MASK_CACHE.clear()
    with torch.inference_mode(False):  # a cache built in inference mode must still serve autograd later
        value = build(mask)
    _MASK_CACHE[key] = (base, value)
    return value


def _is_window_mask(q: Tensor, mask: Tensor | None) -> bool:
    """q (B, nW, heads, n, d) with a per-window mask (nW, 1, n, n): the shifted-window call."""
    n = q.shape[-2]
    return (
        mask is not None and q.dim() == 5 and mask.dim() == 4 and tuple(mask.shape) == (q.shape[1], 1, n, n)
    )


def _allowed(mask: Tensor) -> Tensor:
    """bool (nW, n, n) of allowed pairs (an additive mask allows the pairs it adds 0 to)."""
    return (mask if mask.dtype == torch.bool else mask == 0)[:, 0]


def boundary_windows(mask: Tensor) -> Tensor:
    """Indices (k,) of the windows whose (nW, 1, n, n) mask forbids some pair: the windows that need the mask."""
    return _cached(mask, "boundary", lambda m: (~_allowed(m)).flatten(1).any(1).nonzero().flatten())


def _split_window_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor, boundary: Tensor | None = None
) -> Tensor:
    # q, k, v: (B, nW, heads, n, d); mask: (nW, 1, n, n)
    idx = boundary_windows(mask) if boundary is None else boundary
    out = attention(q, k, v, None, "sdpa")  # every window without a mask
    if idx.numel() == 0:
        return out
    sub = (t.index_select(1, idx) for t in (q, k, v))
    masked = attention(*sub, mask.index_select(0, idx), "sdpa")  # (B, k, heads, n, d), folded to 4-D
    return out.index_copy(1, idx, masked)


_FLEX: dict[str, Callable] = {}


def _flex_block_mask(mask: Tensor) -> object:
    from torch.nn.attention.flex_attention import create_block_mask

    allowed = _allowed(mask).contiguous()  # (nW, n, n)
    nW, n, _ = allowed.shape

    def mask_mod(b, h, q_idx, kv_idx):  # window-major flat indices: same window and an allowed pair
        return (q_idx // n == kv_idx // n) & allowed[q_idx // n, q_idx % n, kv_idx % n]

    return create_block_mask(mask_mod, None, None, nW * n, nW * n, device=mask.device)


def _flex_window_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    # q, k, v: (B, nW, heads, n, d); mask: (nW, 1, n, n)
    if q.device.type == "cpu" and torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        return attention(q, k, v, mask, "sdpa")  # no FlexAttention backward on CPU
    if "fn" not in _FLEX:
        from torch.nn.attention.flex_attention import flex_attention

        _FLEX["fn"] = torch.compile(flex_attention, dynamic=False)
    block_mask = _cached(mask, "flex", _flex_block_mask)
    B, nW, H, n, d = q.shape
    flat = [t.transpose(1, 2).reshape(B, H, nW * n, d) for t in (q, k, v)]  # (B, heads, N, d) window-major
    out = _FLEX["fn"](*flat, block_mask=block_mask)
    return out.view(B, H, nW, n, d).transpose(1, 2)

"""The attention chokepoint: every attention of every PT-DiT module is computed by `attention()`.

Backends: "sdpa" (torch.nn.functional.scaled_dot_product_attention, the default) and "math" (an explicit
softmax(QK^T/sqrt(d))V in fp32, slow, for checking). New kernels are added here and nowhere else.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BACKENDS = ("sdpa", "math")


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, backend: str = "sdpa") -> Tensor:
    """Scaled dot-product attention.

    q: (..., heads, Lq, d); k, v: (..., heads, Lk, d); any number of leading batch dims.
    mask: None, bool (True = may attend) or float (added to the logits), broadcastable to (..., heads, Lq, Lk).
    Returns (..., heads, Lq, d) in q's dtype.
    """
    if backend == "sdpa":
        if q.dim() > 4 and mask is None:  # fold extra batch dims: a view, and the fused kernels want 4-D
            lead = q.shape[:-3]
            out = F.scaled_dot_product_attention(q.flatten(0, -4), k.flatten(0, -4), v.flatten(0, -4))
            return out.unflatten(0, lead)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if backend == "math":
        scores = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(q.shape[-1])
        if mask is not None:
            scores = (
                scores.masked_fill(~mask, float("-inf"))
                if mask.dtype == torch.bool
                else scores + mask.float()
            )
        return (scores.softmax(dim=-1) @ v.float()).to(q.dtype)
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
        self, x: Tensor, context: Tensor | None = None, mask: Tensor | None = None, backend: str = "sdpa"
    ) -> Tensor:
        context = x if context is None else context
        q, k, v = self._heads(self.to_q(x)), self._heads(self.to_k(context)), self._heads(self.to_v(context))
        out = attention(q, k, v, mask, backend)  # (..., heads, Lq, d)
        return self.to_out(out.transpose(-3, -2).flatten(-2))

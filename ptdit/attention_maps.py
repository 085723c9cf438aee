"""What the proxies attend to: attention weights of one block at one sampling step, from an eager re-run.

`attention_maps(model, latents, timestep, text, text_mask, block=...)` runs one eager forward of a PTDiT (never a
compiled graph: the chosen block's attention modules are observed by forward pre-hooks that only record their
inputs) and recomputes the softmax weights of that block's attentions from the recorded inputs:

* proxy blocks with GIIM: `proxy_self` (M, M), each proxy's attention over all proxies (windows in raster
  order); with cross-attention injection `token_to_proxy` (n, M), each token of the chosen window over the
  proxies; linear and interpolation injection have no token->proxy weights (only the proxy self-attention);
* every block: `window` (n, n), the chosen window's local attention (window attention, or the lean block's
  local attention), when the block has one;
* full attention (the PixArt block): `token` (N,), a chosen token's attention over all tokens.

Maps are for sample 0 of the batch (pass the conditional branch), averaged over heads or for one `head`.
`heatmap` turns a map into an RGB picture on the token grid; `window_grid` draws the windows over an image.
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from .attention import Attention
from .blocks import FullBlock, PTBlock
from .layout import num_windows


@dataclass
class AttentionMaps:
    """Attention weights of one block (sample 0), as float32 CPU tensors; absent maps are None."""

    block: int
    grid: tuple[int, int, int]  # token grid (F, h, w)
    window: tuple[int, int, int]  # (p_f, p_h, p_w)
    window_index: int  # the window the token maps belong to
    proxy_self: Tensor | None = None  # (M, M): proxy i (row) over proxies j
    token_to_proxy: Tensor | None = None  # (n, M): token i of the window over the proxies
    local: Tensor | None = None  # (n, n): the window's own attention (token i over token j)
    token: Tensor | None = None  # (N,) full attention of the chosen token over the grid (window-major order)
    token_index: int = 0
    kinds: list[str] = field(default_factory=list)  # the maps present

    def proxy_map(self, proxy: int) -> np.ndarray:
        """The attention of one proxy over all proxies, on the window grid (F/p_f, h/p_h, w/p_w)."""
        if self.proxy_self is None:
            raise ValueError("this block has no proxy self-attention (no GIIM)")
        return self.proxy_self[proxy].reshape(_window_grid(self.grid, self.window)).numpy()

    def window_to_proxy_map(self) -> np.ndarray:
        """The chosen window's tokens' attention over the proxies, averaged over the window's tokens."""
        if self.token_to_proxy is None:
            raise ValueError("this block has no token->proxy attention (cross_attention injection only)")
        return self.token_to_proxy.mean(0).reshape(_window_grid(self.grid, self.window)).numpy()

    def token_map(self) -> np.ndarray:
        """Full attention of the chosen token over the token grid (F, h, w)."""
        if self.token is None:
            raise ValueError("this block has no full attention")
        from .layout import window_merge

        flat = self.token.view(1, -1, math.prod(self.window), 1)
        return window_merge(flat, self.grid, self.window)[0, ..., 0].numpy()


def _window_grid(grid: tuple[int, int, int], window: tuple[int, int, int]) -> tuple[int, int, int]:
    return tuple(g // w for g, w in zip(grid, window))  # type: ignore[return-value]


def _weights(attn: Attention, args: tuple, kwargs: dict) -> Tensor:
    """softmax(q k^T / sqrt(d) + mask) of one recorded call: (..., heads, Lq, Lk) float32."""
    x = args[0]
    context = kwargs.get("context", args[1] if len(args) > 1 else None)
    mask = kwargs.get("mask", args[2] if len(args) > 2 else None)
    context = x if context is None else context
    q = attn._heads(attn.to_q(x)).float()
    k = attn._heads(attn.to_k(context)).float()
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = (
            scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask.float()
        )
    return scores.softmax(-1)


def _pick(w: Tensor, head: int | None) -> Tensor:
    """(heads, ...) -> one head or the mean over heads."""
    if head is not None and not 0 <= head < w.shape[0]:
        raise ValueError(f"head {head} is out of range: the model has {w.shape[0]} heads")
    return (w.mean(0) if head is None else w[head]).float().cpu()


@torch.no_grad()
def attention_maps(
    model: nn.Module,
    latents: Tensor,
    timestep: Tensor | float,
    encoder_hidden_states: Tensor,
    encoder_attention_mask: Tensor | None = None,
    block: int = 0,
    window_index: int = 0,
    token_index: int = 0,
    head: int | None = None,
) -> AttentionMaps:
    """Attention weights of block `block` for sample 0 of (latents, timestep, text).

    latents: (B, C, F, H, W) or (B, C, H, W) noisy latents of the chosen sampling step; timestep: (B,) or a
    scalar on 0..1000; encoder_hidden_states (B, L, caption_channels) and its mask: the conditional text.
    window_index: the window whose token maps to return; token_index: the token of full attention
    (window-major index); head: one head, or None for the mean over heads.
    """
    blocks = getattr(model, "blocks", None)
    if blocks is None or not hasattr(model, "ptdit_config"):
        raise ValueError(f"{type(model).__name__} is not a PTDiT")
    if not 0 <= block < len(blocks):
        raise ValueError(
            f"block {block} is out of range: the model has {len(blocks)} blocks (0..{len(blocks) - 1})"
        )
    cfg = model.ptdit_config
    x = latents if latents.dim() == 5 else latents.unsqueeze(2)
    p = cfg.patch_size
    multiples = model.size_multiples
    padded = [s + (-s) % m for s, m in zip(x.shape[2:], multiples)]
    grid = (padded[0], padded[1] // p, padded[2] // p)
    M = num_windows(grid, cfg.window)
    if not 0 <= window_index < M:
        raise ValueError(f"window {window_index} is out of range: the grid has {M} windows (0..{M - 1})")
    N = math.prod(grid)
    if not 0 <= token_index < N:
        raise ValueError(f"token {token_index} is out of range: the grid has {N} tokens")

    target = blocks[block]
    names = ["proxy_attn", "visual_attn", "window_attn", "local_attn", "attn"]
    modules = {n: getattr(target, n) for n in names if isinstance(getattr(target, n, None), Attention)}
    calls: dict[str, tuple[tuple, dict]] = {}

    def recorder(name: str):
        def hook(module, args, kwargs):
            calls[name] = (args, kwargs)

        return hook

    compiled = model.__dict__.pop("_compiled_run", None)  # an eager re-run, even of a compiled model
    try:
        with ExitStack() as stack:
            for name, module in modules.items():
                handle = module.register_forward_pre_hook(recorder(name), with_kwargs=True)
                stack.callback(handle.remove)
            model(latents, timestep, encoder_hidden_states, encoder_attention_mask, return_dict=False)
    finally:
        if compiled is not None:
            model.__dict__["_compiled_run"] = compiled

    maps = AttentionMaps(
        block=block, grid=grid, window=cfg.window, window_index=window_index, token_index=token_index
    )
    if "proxy_attn" in calls:
        maps.proxy_self = _pick(_weights(modules["proxy_attn"], *calls["proxy_attn"])[0], head)  # (M, M)
        maps.kinds.append("proxy_self")
    if "visual_attn" in calls:
        w = _weights(modules["visual_attn"], *calls["visual_attn"])[0]  # (heads, N, M), tokens window-major
        n = math.prod(cfg.window)
        maps.token_to_proxy = _pick(w[:, window_index * n : (window_index + 1) * n], head)  # (n, M)
        maps.kinds.append("token_to_proxy")
    for name in ("window_attn", "local_attn"):
        if name in calls and not (isinstance(target, PTBlock) and target.lean and target.shifted):
            w = _weights(modules[name], *calls[name])[0]  # (nW, heads, n, n)
            maps.local = _pick(w[window_index], head)
            maps.kinds.append("local")
    if isinstance(target, FullBlock) and "attn" in calls:
        w = _weights(modules["attn"], *calls["attn"])[0]  # (heads, N, N)
        maps.token = _pick(w[:, token_index], head)  # (N,)
        maps.kinds.append("token")
    return maps


def heatmap(values: np.ndarray, scale: int = 8) -> np.ndarray:
    """A 2-D map (h, w) of non-negative weights -> an (h*scale, w*scale, 3) uint8 heat map (black -> yellow),
    normalised to its maximum."""
    v = np.asarray(values, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"heatmap takes a 2-D map (one frame), got shape {v.shape}")
    v = v / v.max() if v.max() > 0 else v
    rgb = np.stack([np.clip(3 * v, 0, 1), np.clip(3 * v - 1, 0, 1), np.clip(3 * v - 2, 0, 1)], -1)
    rgb = (rgb * 255 + 0.5).astype(np.uint8)
    return rgb.repeat(scale, 0).repeat(scale, 1)


def window_grid(image: np.ndarray, window_pixels: tuple[int, int], color=(255, 255, 255)) -> np.ndarray:
    """An (H, W, 3) uint8 image with the window borders drawn every (rows, cols) pixels (a copy)."""
    out = image.copy()
    ph, pw = window_pixels
    out[::ph, :] = color
    out[:, ::pw] = color
    out[-1, :] = color
    out[:, -1] = color
    return out

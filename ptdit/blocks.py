"""The PT-DiT block (official and lean variants) and the full-attention (PixArt-alpha) block.

Every block takes window-major tokens x (B, nW, n, D), the adaLN-single vector t6 (B, 6, D), the projected
caption y (B, L, D) and a `BlockContext` with the per-call, shape-dependent tensors (built by the model once
per forward, never stored on a module).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import Attention
from .config import PTDiTConfig
from .layers import MLP, layer_norm, modulate
from .layout import Grid, Window, proxy_pool, window_partition


@dataclass
class BlockContext:
    """Per-forward inputs that depend on the input shape; shared by all blocks of one call."""

    grid: Grid  # token grid (F, h, w)
    window: Window  # (p_f, p_h, p_w)
    text_mask: Tensor | None  # (B, 1, 1, L) bool (True = keep) or additive float; None = attend to all
    shift_perm: Tensor | None = None  # (N,) window-major gather that applies the cyclic shift
    shift_inv: Tensor | None = None  # (N,) its inverse
    shift_mask: Tensor | None = None  # (nW, 1, n, n) bool or additive float; None = no cross-region pairs
    backend: str = "sdpa"  # attention backend
    shift_boundary: Tensor | None = None  # (k,) windows whose shift_mask forbids a pair ("split" backend)
    pos: Tensor | None = None  # (F, h, w, D) fp32 sin-cos positions of the grid
    size: tuple[int, int, int] | None = None  # latent (F, H, W) before padding: the output is cropped to it
    # padding (config.pad and a size the window does not divide); all None without padding
    proxy_weights: Tensor | None = None  # (nW, n, 1): each window's mean over its valid tokens
    proxy_mask: Tensor | None = None  # (1, nW) bool: proxies of windows with a valid token (as keys)
    window_mask: Tensor | None = None  # (nW, 1, n, n) bool: valid queries attend to valid keys only
    token_mask: Tensor | None = None  # (1, N) bool, window-major: valid tokens (as keys of full attention)


def _zero_linear(dim: int) -> nn.Linear:
    layer = nn.Linear(dim, dim)
    layer.zero_init = True  # read by PTDiT.initialize_weights
    return layer


def _zero_output(attn: Attention) -> Attention:
    attn.to_out.zero_init = True
    return attn


def _chunks(table: Tensor, t6: Tensor, rows: int) -> list[Tensor]:
    """(rows, D) learned table + (B, rows, D) timestep vectors -> `rows` tensors (B, 1, 1, D), per sample."""
    return list((table[None] + t6[:, :rows])[:, :, None, None].unbind(1))


class PTBlock(nn.Module):
    """One PT-DiT block: GIIM, TCM, text cross-attention, MLP (docs/release.md §4.1).

    block="official": proxy self-attention -> tokens attend to proxies -> zero linear; window attention;
    shifted-window attention (own 3-row table) -> zero linear; text cross-attention (no norm); MLP.
    block="lean": as official, but only one local attention per block (window attention in even blocks,
    shifted-window attention in odd blocks, Swin's alternation), a zero linear only after the shifted branch
    and none after the token->proxy cross-attention (whose own output projection starts at zero instead):
    16.5 D^2 MACs per token in linear layers.

    With padding (`BlockContext.proxy_weights` etc.), padded tokens stay out of the proxy means and no valid
    query attends to a padded key (window, shifted-window, proxy and full attention alike).
    """

    def __init__(self, config: PTDiTConfig, index: int) -> None:
        super().__init__()
        D, heads = config.hidden_size, config.num_heads
        self.config = config
        self.eps = config.norm_eps
        self.lean = config.block == "lean"
        self.scale_shift_table = nn.Parameter(torch.zeros(6, D))
        self.use_giim = config.use_giim
        if self.use_giim:
            self.proxy_attn = Attention(D, heads)
            if config.injection == "cross_attention":
                self.visual_attn = Attention(D, heads)
            elif config.injection == "linear":
                n = config.window[0] * config.window[1] * config.window[2]
                self.inject_weight = nn.Parameter(torch.ones(n, D))  # per in-window position and channel
                self.inject_bias = nn.Parameter(torch.zeros(n, D))
            # the injected proxies enter through a zero-initialised layer: the release's D x D linear, or in the
            # lean block (no extra linear) the cross-attention's own output projection or per-position weights;
            # interpolation has no layer of its own, so the lean block keeps the linear for it
            self.visual_out = _zero_linear(D) if not self.lean or config.injection == "interpolate" else None
            if self.lean and config.injection == "cross_attention":
                self.visual_attn.to_out.zero_init = True
            if self.lean and config.injection == "linear":
                self.zero_init_params = ("inject_weight",)
        if self.lean:
            # one local attention: shifted in odd blocks (or always, if plain windows are ablated)
            self.shifted = config.use_shift_window and (index % 2 == 1 or not config.use_window_attention)
            self.windowed = config.use_window_attention and not self.shifted
            self.local_attn = Attention(D, heads) if (self.shifted or self.windowed) else None
            self.shift_out = _zero_linear(D) if self.shifted else None
        else:
            self.window_attn = Attention(D, heads) if config.use_window_attention else None
            if config.use_shift_window:
                self.shift_scale_shift_table = nn.Parameter(torch.zeros(3, D))
                self.shift_window_attn = Attention(D, heads)
                self.shift_out = _zero_linear(D)
        self.text_attn = _zero_output(Attention(D, heads))  # PixArt: the cross-attention output starts at 0
        self.mlp = MLP(D, config.mlp_hidden)

    @property
    def needs_shift(self) -> bool:
        return self.shifted if self.lean else self.config.use_shift_window

    # ------------------------------------------------------------------ GIIM
    def giim(self, x: Tensor, ctx: BlockContext) -> Tensor:
        """Global information from the proxies: (B, nW, n, D) -> (B, nW, n, D), before the output linear."""
        B, nW, n, D = x.shape
        p = proxy_pool(x, self.config.proxy, weights=ctx.proxy_weights)  # (B, nW, D): one proxy per window
        p = p + self.proxy_attn(layer_norm(p, self.eps), mask=ctx.proxy_mask, backend=ctx.backend)
        kv = layer_norm(p, self.eps)
        if self.config.injection == "cross_attention":  # every token attends to all proxies
            q = layer_norm(x, self.eps).reshape(B, nW * n, D)
            return self.visual_attn(q, kv, mask=ctx.proxy_mask, backend=ctx.backend).view(B, nW, n, D)
        if self.config.injection == "interpolate":  # trilinear upsampling of the proxy grid to the token grid
            grid_w = tuple(g // w for g, w in zip(ctx.grid, ctx.window))
            p_grid = kv.transpose(1, 2).reshape(B, D, *grid_w)  # (B, D, F/pf, h/ph, w/pw)
            up = F.interpolate(p_grid.float(), size=ctx.grid, mode="trilinear", align_corners=False)
            return window_partition(up.to(x.dtype).permute(0, 2, 3, 4, 1), ctx.window)
        # "linear": each proxy projected to its window's n tokens (per position and channel)
        return torch.addcmul(self.inject_bias, kv[:, :, None], self.inject_weight)

    # ------------------------------------------------------------------ TCM
    def shifted_window_attention(self, h: Tensor, attn: Attention, ctx: BlockContext) -> Tensor:
        """Attention inside windows of the cyclically shifted grid; input and output unshifted (B, nW, n, D)."""
        B, nW, n, D = h.shape
        if ctx.shift_perm is not None:
            h = h.reshape(B, nW * n, D)[:, ctx.shift_perm].view(B, nW, n, D)
        o = attn(h, mask=ctx.shift_mask, backend=ctx.backend, boundary=ctx.shift_boundary)
        if ctx.shift_inv is not None:
            o = o.reshape(B, nW * n, D)[:, ctx.shift_inv].view(B, nW, n, D)
        return o

    def forward(self, x: Tensor, t6: Tensor, y: Tensor, ctx: BlockContext) -> Tensor:
        # x: (B, nW, n, D); t6: (B, 6, D); y: (B, L, D)
        B, nW, n, D = x.shape
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = _chunks(
            self.scale_shift_table, t6, 6
        )

        if self.use_giim:  # GIIM: proxies -> proxy self-attention -> back into every token
            g = self.giim(x, ctx)
            x = x + (g if self.visual_out is None else self.visual_out(g))

        if self.lean:  # TCM, one local attention per block
            if self.local_attn is not None:
                h = modulate(layer_norm(x, self.eps), shift_msa, scale_msa)
                if self.shifted:
                    x = x + self.shift_out(gate_msa * self.shifted_window_attention(h, self.local_attn, ctx))
                else:
                    x = x + gate_msa * self.local_attn(h, mask=ctx.window_mask, backend=ctx.backend)
        else:  # TCM: window attention, then shifted-window attention
            if self.window_attn is not None:
                h = modulate(layer_norm(x, self.eps), shift_msa, scale_msa)
                x = x + gate_msa * self.window_attn(h, mask=ctx.window_mask, backend=ctx.backend)
            if self.config.use_shift_window:
                shift_sw, scale_sw, gate_sw = _chunks(self.shift_scale_shift_table, t6, 3)
                h = modulate(
                    layer_norm(x, self.eps), shift_sw, scale_sw
                )  # per token: commutes with the shift
                x = x + self.shift_out(
                    gate_sw * self.shifted_window_attention(h, self.shift_window_attn, ctx)
                )

        # text cross-attention: queries are the raw tokens (no norm), as in PixArt
        x = x + self.text_attn(x.reshape(B, nW * n, D), y, mask=ctx.text_mask, backend=ctx.backend).view_as(x)
        return x + gate_mlp * self.mlp(modulate(layer_norm(x, self.eps), shift_mlp, scale_mlp))


class FullBlock(nn.Module):
    """PixArt-alpha block: adaLN self-attention over all tokens, text cross-attention, adaLN MLP."""

    needs_shift = False

    def __init__(self, config: PTDiTConfig, index: int) -> None:
        super().__init__()
        D, heads = config.hidden_size, config.num_heads
        self.eps = config.norm_eps
        self.scale_shift_table = nn.Parameter(torch.zeros(6, D))
        self.attn = Attention(D, heads)
        self.text_attn = _zero_output(Attention(D, heads))
        self.mlp = MLP(D, config.mlp_hidden)

    def forward(self, x: Tensor, t6: Tensor, y: Tensor, ctx: BlockContext) -> Tensor:
        B, nW, n, D = x.shape
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = _chunks(
            self.scale_shift_table, t6, 6
        )
        h = modulate(layer_norm(x, self.eps), shift_msa, scale_msa).reshape(B, nW * n, D)
        x = x + gate_msa * self.attn(h, mask=ctx.token_mask, backend=ctx.backend).view_as(x)
        x = x + self.text_attn(x.reshape(B, nW * n, D), y, mask=ctx.text_mask, backend=ctx.backend).view_as(x)
        return x + gate_mlp * self.mlp(modulate(layer_norm(x, self.eps), shift_mlp, scale_mlp))


def make_block(config: PTDiTConfig, index: int) -> nn.Module:
    return FullBlock(config, index) if config.attention == "full" else PTBlock(config, index)

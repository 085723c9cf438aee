"""Analytic per-module counts: `Count` and the counters of PT-DiT, PixArt-alpha, DiT and CogVideoX-2B."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..config import PTDiTConfig
from .costs import (
    COG_TEXT_LEN,
    PIXART_TEXT_LEN,
    PT_TEXT_LEN,
    VAE_FACTOR,
    VIDEO_FRAMES,
    Cost,
    _Ledger,
    _token_grid,
    linear_cost,
)
from .paper import paper_value


@dataclass(frozen=True)
class Count:
    """The analytic cost of one model at one input size; `modules` maps module names to their summed Cost."""

    model: str
    height: int
    width: int
    frames: int  # latent frames (1 for images)
    tokens: int  # latent tokens N seen by the transformer
    hidden_size: int
    depth: int
    text_len: int
    window: tuple[int, int, int] | None = None
    modules: dict[str, Cost] = field(default_factory=dict)

    @property
    def cost(self) -> Cost:
        return sum(self.modules.values(), Cost())

    @property
    def params(self) -> int:
        return self.cost.params

    @property
    def linear(self) -> int:
        return self.cost.linear

    @property
    def attention(self) -> int:
        return self.cost.attention

    @property
    def total(self) -> int:
        return self.cost.total

    @property
    def attention_share(self) -> float:
        """Share of the attention matmuls in the total MACs."""
        return self.attention / self.total

    @property
    def attention_vs_full(self) -> float:
        """Token-mixing attention (pairs without a text token) / full self-attention over the N latent tokens."""
        c = self.cost
        return (c.attention - c.text_attention) / (self.depth * 2 * self.tokens**2 * self.hidden_size)

    def grouped(self, level: int = 2) -> dict[str, Cost]:
        """Modules summed to the first `level` name components (e.g. 'blocks.visual_attn')."""
        out: dict[str, Cost] = {}
        for name, cost in self.modules.items():
            key = ".".join(name.split(".")[:level])
            out[key] = out.get(key, Cost()) + cost
        return out

    def row(self) -> dict[str, Any]:
        """A JSON-ready summary (GMACs = 1e9 MACs; the paper's 'GFLOPs')."""
        row = {
            "model": self.model,
            "height": self.height,
            "width": self.width,
            "frames": self.frames,
            "tokens": self.tokens,
            "window": list(self.window) if self.window else None,
            "text_len": self.text_len,
            "params": self.params,
            "gmacs_linear": self.linear / 1e9,
            "gmacs_attention": self.attention / 1e9,
            "gmacs_total": self.total / 1e9,
            "attention_share": self.attention_share,
            "attention_vs_full": self.attention_vs_full,
        }
        ref = paper_value(self.model, self.height, self.frames)
        if ref is not None:
            value, convention = ref
            ours = row[f"gmacs_{convention}"]
            row.update(
                paper_gmacs=value, paper_convention=convention, paper_error_pct=100 * (ours / value - 1)
            )
        return row


# =============================================================================================== PT-DiT
def count_ptdit(
    config: PTDiTConfig,
    height: int,
    width: int | None = None,
    frames: int = 1,
    text_len: int = PT_TEXT_LEN,
    vae_factor: int = VAE_FACTOR,
    name: str = "PT-DiT",
) -> Count:
    """Analytic cost of `PTDiT(config)` on a (height x width)-pixel image or video of `frames` latent frames.

    Module names match `PTDiT.named_modules()` without block indices; one sample and `text_len` text tokens.
    """
    width = height if width is None else width
    if text_len < 1:
        raise ValueError(f"text_len must be >= 1 (PT-DiT always cross-attends to text), got {text_len}")
    cfg, D = config, config.hidden_size
    grid = _token_grid(height, width, frames, cfg.patch_size, vae_factor)
    window = cfg.window
    if any(g % w for g, w in zip(grid, window)):
        if not cfg.pad:
            raise ValueError(
                f"token grid {grid} of {height}x{width}px x {frames} frames does not divide by window {window}; "
                "choose another --window or set pad=true"
            )
        grid = tuple(-(-g // w) * w for g, w in zip(grid, window))  # the model pads, then crops
    N = math.prod(grid)
    n = math.prod(window)
    M = N // n  # windows = proxies
    L, p = text_len, cfg.patch_size
    led = _Ledger()
    led.add("x_embedder.proj", linear_cost(N, cfg.in_channels * p * p, D))
    led.add("t_embedder.linear_1", linear_cost(1, 256, D))
    led.add("t_embedder.linear_2", linear_cost(1, D, D))
    led.add("t_block", linear_cost(1, D, 6 * D))
    led.add("y_embedder.linear_1", linear_cost(L, cfg.caption_channels, D))
    led.add("y_embedder.linear_2", linear_cost(L, D, D))
    lean = cfg.block == "lean"
    for index in range(cfg.depth):
        led.add("blocks", Cost(params=6 * D))  # scale_shift_table
        if cfg.attention == "full":
            led.attention("blocks.attn", N, N, D, pairs=N * N)
        else:
            if cfg.use_giim:
                led.attention("blocks.proxy_attn", M, M, D, pairs=M * M)
                if cfg.injection == "cross_attention":
                    led.attention("blocks.visual_attn", N, M, D, pairs=N * M)
                elif cfg.injection == "linear":
                    led.add("blocks", Cost(params=2 * n * D))  # inject_weight, inject_bias
                if not lean or cfg.injection == "interpolate":
                    led.add("blocks.visual_out", linear_cost(N, D, D))
            if lean:
                shifted = cfg.use_shift_window and (index % 2 == 1 or not cfg.use_window_attention)
                if shifted or cfg.use_window_attention:
                    led.attention("blocks.local_attn", N, N, D, pairs=N * n)
                if shifted:
                    led.add("blocks.shift_out", linear_cost(N, D, D))
            else:
                if cfg.use_window_attention:
                    led.attention("blocks.window_attn", N, N, D, pairs=N * n)
                if cfg.use_shift_window:
                    led.add("blocks", Cost(params=3 * D))  # shift_scale_shift_table
                    led.attention("blocks.shift_window_attn", N, N, D, pairs=N * n)
                    led.add("blocks.shift_out", linear_cost(N, D, D))
        led.attention("blocks.text_attn", N, L, D, pairs=N * L, text_pairs=N * L)
        led.add("blocks.mlp.fc1", linear_cost(N, D, cfg.mlp_hidden))
        led.add("blocks.mlp.fc2", linear_cost(N, cfg.mlp_hidden, D))
    led.add("final_layer", Cost(params=2 * D))
    led.add("final_layer.linear", linear_cost(N, D, p * p * cfg.out_channels))
    return Count(name, height, width, frames, N, D, cfg.depth, L, window, led.modules)


# =============================================================================================== peers
@dataclass(frozen=True)
class PixArtSpec:
    """PixArt-alpha (diffusers PixArtTransformer2DModel); defaults: the 0.6 B XL/2 of the 1024 checkpoint."""

    depth: int = 28
    hidden_size: int = 1152
    num_heads: int = 16
    patch_size: int = 2
    in_channels: int = 4
    out_channels: int = 8
    caption_channels: int = 4096
    micro_conditions: bool = (
        True  # resolution / aspect-ratio embedders (diffusers: on when sample_size == 128)
    )


def count_pixart(
    height: int,
    width: int | None = None,
    text_len: int = PIXART_TEXT_LEN,
    spec: PixArtSpec = PixArtSpec(),
    vae_factor: int = VAE_FACTOR,
    name: str = "PixArt-alpha",
) -> Count:
    """PixArt-alpha: adaLN-single self-attention, text cross-attention (no norm), MLP; diffusers module names."""
    width = height if width is None else width
    s, D, L, p = spec, spec.hidden_size, text_len, spec.patch_size
    _, h, w = _token_grid(height, width, 1, p, vae_factor)
    N = h * w
    led = _Ledger()
    led.add("pos_embed.proj", linear_cost(N, s.in_channels * p * p, D))
    led.add("adaln_single.emb.timestep_embedder.linear_1", linear_cost(1, 256, D))
    led.add("adaln_single.emb.timestep_embedder.linear_2", linear_cost(1, D, D))
    if s.micro_conditions:
        for emb, rows in (("resolution_embedder", 2), ("aspect_ratio_embedder", 1)):
            led.add(f"adaln_single.emb.{emb}.linear_1", linear_cost(rows, 256, D // 3))
            led.add(f"adaln_single.emb.{emb}.linear_2", linear_cost(rows, D // 3, D // 3))
    led.add("adaln_single.linear", linear_cost(1, D, 6 * D))
    led.add("caption_projection.linear_1", linear_cost(L, s.caption_channels, D))
    led.add("caption_projection.linear_2", linear_cost(L, D, D))
    for _ in range(s.depth):
        led.add("transformer_blocks", Cost(params=6 * D))
        led.attention("transformer_blocks.attn1", N, N, D, pairs=N * N)
        led.attention("transformer_blocks.attn2", N, L, D, pairs=N * L, text_pairs=N * L)
        led.add("transformer_blocks.ff.net.proj", linear_cost(N, D, 4 * D))
        led.add("transformer_blocks.ff.net", linear_cost(N, 4 * D, D))
    led.add("", Cost(params=2 * D))  # scale_shift_table of the final layer
    led.add("proj_out", linear_cost(N, D, p * p * s.out_channels))
    return Count(name, height, width, 1, N, D, s.depth, L, None, led.modules)


@dataclass(frozen=True)
class DiTSpec:
    """DiT (class-conditional, adaLN-Zero, learned sigma); defaults: DiT-XL/2."""

    depth: int = 28
    hidden_size: int = 1152
    num_heads: int = 16
    patch_size: int = 2
    in_channels: int = 4
    num_classes: int = 1000
    layout: str = "original"  # "diffusers": the diffusers port repeats the t/y embedders in every block


DIT_SPECS = {
    "DiT-XL/2": DiTSpec(),
    "DiT-B/2": DiTSpec(depth=12, hidden_size=768, num_heads=12),
}


def count_dit(
    height: int,
    width: int | None = None,
    spec: DiTSpec = DiTSpec(),
    vae_factor: int = VAE_FACTOR,
    name: str = "DiT-XL/2",
) -> Count:
    """DiT as in facebookresearch/DiT (layout="original") or its diffusers port (layout="diffusers").

    The frozen sin-cos position table of the original is a buffer here, not a parameter.
    """
    width = height if width is None else width
    if spec.layout not in ("original", "diffusers"):
        raise ValueError(f"DiT layout must be 'original' or 'diffusers', got {spec.layout!r}")
    s, D, p = spec, spec.hidden_size, spec.patch_size
    _, h, w = _token_grid(height, width, 1, p, vae_factor)
    N = h * w
    label_table = Cost(params=(s.num_classes + 1) * D)  # + the CFG null class
    led = _Ledger()
    led.add("x_embedder.proj", linear_cost(N, s.in_channels * p * p, D))
    embedder_calls = (
        1 if s.layout == "original" else s.depth + 1
    )  # diffusers: per block, and again at the end
    embedder_copies = 1 if s.layout == "original" else s.depth
    for key, cost in (
        ("t_embedder.mlp.0", linear_cost(1, 256, D)),
        ("t_embedder.mlp.2", linear_cost(1, D, D)),
    ):
        led.add(key, Cost(params=cost.params * embedder_copies, linear=cost.linear * embedder_calls))
    led.add("y_embedder", label_table * embedder_copies)
    for _ in range(s.depth):
        led.add("blocks.adaLN_modulation", linear_cost(1, D, 6 * D))
        led.attention("blocks.attn", N, N, D, pairs=N * N)
        led.add("blocks.mlp.fc1", linear_cost(N, D, 4 * D))
        led.add("blocks.mlp.fc2", linear_cost(N, 4 * D, D))
    led.add("final_layer.adaLN_modulation", linear_cost(1, D, 2 * D))
    led.add("final_layer.linear", linear_cost(N, D, p * p * 2 * s.in_channels))
    return Count(name, height, width, 1, N, D, s.depth, 0, None, led.modules)


@dataclass(frozen=True)
class CogVideoXSpec:
    """CogVideoX-2B (diffusers CogVideoXTransformer3DModel defaults): full 3-D attention over video + text."""

    depth: int = 30
    hidden_size: int = 1920
    num_heads: int = 30
    patch_size: int = 2
    in_channels: int = 16
    out_channels: int = 16
    time_embed_dim: int = 512
    text_embed_dim: int = 4096


def count_cogvideox(
    height: int,
    width: int | None = None,
    frames: int = VIDEO_FRAMES,
    text_len: int = COG_TEXT_LEN,
    spec: CogVideoXSpec = CogVideoXSpec(),
    vae_factor: int = VAE_FACTOR,
    name: str = "CogVideoX-2B",
) -> Count:
    """CogVideoX-2B: text and video tokens share every LayerNorm-Zero attention and FFN; diffusers names."""
    width = height if width is None else width
    s, D, L, p, E = spec, spec.hidden_size, text_len, spec.patch_size, spec.time_embed_dim
    f, h, w = _token_grid(height, width, frames, p, vae_factor)
    N = f * h * w
    T = N + L  # joint sequence
    hd = D // s.num_heads
    led = _Ledger()
    led.add("patch_embed.proj", linear_cost(N, s.in_channels * p * p, D))
    led.add("patch_embed.text_proj", linear_cost(L, s.text_embed_dim, D))
    led.add("time_embedding.linear_1", linear_cost(1, D, E))
    led.add("time_embedding.linear_2", linear_cost(1, E, E))
    for _ in range(s.depth):
        for norm in ("norm1", "norm2"):
            led.add(f"transformer_blocks.{norm}.linear", linear_cost(1, E, 6 * D))
            led.add(f"transformer_blocks.{norm}.norm", Cost(params=2 * D))
        led.attention("transformer_blocks.attn1", T, T, D, pairs=T * T, text_pairs=T * T - N * N)
        led.add("transformer_blocks.attn1", Cost(params=2 * 2 * hd))  # affine LayerNorm of q and k per head
        led.add("transformer_blocks.ff.net.proj", linear_cost(T, D, 4 * D))
        led.add("transformer_blocks.ff.net", linear_cost(T, 4 * D, D))
    led.add("norm_final", Cost(params=2 * D))
    led.add("norm_out.linear", linear_cost(1, E, 2 * D))
    led.add("norm_out.norm", Cost(params=2 * D))
    led.add("proj_out", linear_cost(N, D, p * p * s.out_channels))
    return Count(name, height, width, frames, N, D, s.depth, L, None, led.modules)

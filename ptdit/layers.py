"""Embedders and small layers: patch embedding, 3-D sin-cos positions, timestep embedding (adaLN-single),
caption projection, MLP and the final adaLN layer."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def layer_norm(x: Tensor, eps: float = 1e-6) -> Tensor:
    """LayerNorm over the last dim without affine parameters (every PT-DiT norm)."""
    return F.layer_norm(x, x.shape[-1:], eps=eps)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN modulation x * (1 + scale) + shift."""
    return x * (1 + scale) + shift  # not addcmul: bf16 rounding as released


# --------------------------------------------------------------------------------------------- positions
def _sincos_1d(dim: int, pos: np.ndarray) -> np.ndarray:
    """(len(pos), dim) = [sin(pos * w_k), cos(pos * w_k)], w_k = 10000^(-k / (dim/2)), in float64."""
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.outer(pos.astype(np.float64), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


@functools.lru_cache(maxsize=32)
@torch.inference_mode(False)  # cached tensors must also serve training calls made after an inference call
def _sincos_3d(grid: tuple[int, int, int], dim: int, device: str) -> Tensor:
    F_, H, W = grid
    d_t, d_s = dim // 4, 3 * dim // 8
    f, h, w = np.meshgrid(np.arange(F_), np.arange(H), np.arange(W), indexing="ij")  # each (F, H, W)
    emb = np.concatenate(
        [_sincos_1d(d_t, f.ravel()), _sincos_1d(d_s, w.ravel()), _sincos_1d(d_s, h.ravel())], axis=1
    )  # (F*H*W, D): [time D/4 | column (w) 3D/8 | row (h) 3D/8], as released
    return torch.from_numpy(emb).float().view(F_, H, W, dim).to(device)


def sincos_pos_embed_3d(grid: tuple[int, int, int], dim: int, device: torch.device | str = "cpu") -> Tensor:
    """Fixed 3-D sin-cos positions for a (F, H, W) token grid: (F, H, W, dim) float32.

    Channels [0, D/4) encode the frame index, [D/4, 5D/8) the column (w) index, [5D/8, D) the row (h) index;
    positions are raw integer grid indices. Built from (h, w) explicitly: non-square grids are not scrambled
    (the released helper swaps H and W, docs/release.md §4.5 and §8).
    """
    if dim % 16:
        raise ValueError(f"3-D sin-cos positions need a width divisible by 16, got {dim}")
    return _sincos_3d(tuple(int(g) for g in grid), dim, str(torch.device(device)))


# --------------------------------------------------------------------------------------------- embedders
class PatchEmbed(nn.Module):
    """2-D patch embedding per frame: (B, C, F, H, W) -> (B, F, H/p, W/p, D)."""

    def __init__(self, in_channels: int, dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        B, C, F_, H, W = x.shape
        x = self.proj(x.transpose(1, 2).reshape(B * F_, C, H, W))  # (B*F, D, h, w)
        return x.unflatten(0, (B, F_)).permute(0, 1, 3, 4, 2)  # (B, F, h, w, D)


def timestep_embedding(t: Tensor, dim: int = 256, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal features of t (B,) on the 0..1000 scale: (B, dim) float32, cos half first (flip_sin_to_cos)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimestepEmbedder(nn.Module):
    """t (B,) -> embedded_t (B, D): sinusoid(256) -> Linear -> SiLU -> Linear (PixArt-alpha adaLN-single)."""

    def __init__(self, dim: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.linear_1 = nn.Linear(freq_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, t: Tensor) -> Tensor:
        freqs = timestep_embedding(t, self.freq_dim).to(self.linear_1.weight.dtype)
        return self.linear_2(F.silu(self.linear_1(freqs)))


class CaptionProjection(nn.Module):
    """Text encoder states (B, L, caption_channels) -> (B, L, D): Linear -> GELU(tanh) -> Linear (PixArt)."""

    def __init__(self, caption_channels: int, dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(caption_channels, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, y: Tensor) -> Tensor:
        return self.linear_2(F.gelu(self.linear_1(y), approximate="tanh"))


class MLP(nn.Module):
    """Feed-forward D -> hidden -> D with tanh-GELU."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class FinalLayer(nn.Module):
    """LayerNorm, adaLN (own 2 x D table + embedded_t: shift, scale), Linear D -> p*p*out_channels."""

    def __init__(self, dim: int, patch_size: int, out_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.scale_shift_table = nn.Parameter(torch.zeros(2, dim))
        self.linear = nn.Linear(dim, patch_size * patch_size * out_channels)

    def forward(self, x: Tensor, t_emb: Tensor) -> Tensor:
        # x: (B, nW, n, D); t_emb: (B, D) -> (B, nW, n, p*p*out)
        shift, scale = (self.scale_shift_table[None] + t_emb[:, None])[:, :, None, None].unbind(
            1
        )  # (B,1,1,D)
        return self.linear(modulate(layer_norm(x, self.eps), shift, scale))

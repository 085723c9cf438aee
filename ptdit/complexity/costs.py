"""Costs and the input geometry behind every count: `Cost`, the per-module `_Ledger`, latent/token grids.

Constants: the default image and video sizes, latent frames, VAE factor and text lengths of the counts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

IMAGE_SIZES = (256, 512, 1024, 2048, 4096)
VIDEO_SIZES = (256, 512, 1024)
VIDEO_FRAMES = 48  # latent frames, the paper's Fig. 9
VAE_FACTOR = 8
PT_TEXT_LEN = 120  # T5 tokens in the paper (A.1); the release pads to 200
PIXART_TEXT_LEN = 120
COG_TEXT_LEN = 226


# =============================================================================================== costs
@dataclass(frozen=True)
class Cost:
    """Parameters and MACs of one module (or a sum of modules).

    attention: MACs of QK^T and AV; text_attention: the part of `attention` spent on pairs with a text token.
    """

    params: int = 0
    linear: int = 0
    attention: int = 0
    text_attention: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))

    def __mul__(self, k: int) -> Cost:
        return Cost(*(a * k for a in dataclasses.astuple(self)))

    @property
    def total(self) -> int:
        return self.linear + self.attention


def linear_cost(tokens: int, d_in: int, d_out: int, bias: bool = True) -> Cost:
    """A Linear (or a patch convolution with d_in = channels * kernel area) applied to `tokens` rows."""
    return Cost(params=d_in * d_out + (d_out if bias else 0), linear=tokens * d_in * d_out)


class _Ledger:
    """Ordered module name -> Cost, with names as in the module tree (block indices dropped)."""

    def __init__(self) -> None:
        self.modules: dict[str, Cost] = {}

    def add(self, name: str, cost: Cost) -> None:
        self.modules[name] = self.modules.get(name, Cost()) + cost

    def attention(
        self,
        name: str,
        q_tokens: int,
        kv_tokens: int,
        dim: int,
        pairs: int,
        kv_dim: int | None = None,
        text_pairs: int = 0,
    ) -> None:
        """Multi-head attention with biased to_q/to_k/to_v/to_out; `pairs` (query, key) pairs get QK^T and AV."""
        kv_dim = dim if kv_dim is None else kv_dim
        self.add(f"{name}.to_q", linear_cost(q_tokens, dim, dim))
        self.add(f"{name}.to_k", linear_cost(kv_tokens, kv_dim, dim))
        self.add(f"{name}.to_v", linear_cost(kv_tokens, kv_dim, dim))
        self.add(f"{name}.to_out", linear_cost(q_tokens, dim, dim))
        self.add(name, Cost(attention=2 * pairs * dim, text_attention=2 * text_pairs * dim))


# =============================================================================================== inputs
def latent_size(height: int, width: int, vae_factor: int = VAE_FACTOR) -> tuple[int, int]:
    """Pixel size -> latent size; a size that is not a multiple of the VAE factor is an error."""
    for name, s in (("height", height), ("width", width)):
        if s < 1 or s % vae_factor:
            raise ValueError(f"{name} {s}px is not a positive multiple of the VAE factor {vae_factor}")
    return height // vae_factor, width // vae_factor


def _token_grid(height: int, width: int, frames: int, patch: int, vae_factor: int) -> tuple[int, int, int]:
    lh, lw = latent_size(height, width, vae_factor)
    if frames < 1:
        raise ValueError(f"frames must be >= 1 (latent frames; 1 for images), got {frames}")
    for name, s in (("height", lh), ("width", lw)):
        if s % patch:
            raise ValueError(f"latent {name} {s} is not a multiple of the patch size {patch}")
    return frames, lh // patch, lw // patch

"""The autoencoder interface every latent space implements (pixels <-> latents)."""

from __future__ import annotations

from torch import Tensor, nn


class Autoencoder(nn.Module):
    """Pixels (B, 3, F, H, W) in [-1, 1] <-> latents (B, latent_channels, F', H / s, W / s).

    `encode` returns latents already multiplied by `scale_factor` (after subtracting `shift_factor`),
    ready for the diffusion model; `decode` undoes that and returns pixels in about [-1, 1] (not clamped).
    Images are F = 1. A video autoencoder with temporal compression t maps F = 1 + t*k pixel frames to 1 + k
    latent frames (causal), see `latent_size`.
    """

    latent_channels: int = 4
    pixel_channels: int = 3
    spatial_factor: int = 8
    temporal_factor: int = 1
    scale_factor: float = 1.0
    shift_factor: float = 0.0

    def encode(self, pixels: Tensor) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def decode(self, latents: Tensor) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def latent_size(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """(F', h, w) of the latents of a (frames, height, width) pixel input."""
        t, s = self.temporal_factor, self.spatial_factor
        f = frames if t == 1 else 1 + (frames - 1 + t - 1) // t
        return f, -(-height // s), -(-width // s)

    def pixel_size(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """(F, H, W) of the pixels decoded from (frames, height, width) latents."""
        t, s = self.temporal_factor, self.spatial_factor
        f = frames if t == 1 else 1 + (frames - 1) * t
        return f, height * s, width * s

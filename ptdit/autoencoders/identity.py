"""Pixel space: latents are the pixels themselves (spatial factor 1, no scaling)."""

from __future__ import annotations

from torch import Tensor

from .base import Autoencoder


class IdentityAutoencoder(Autoencoder):
    """pixels (B, C, F, H, W) in [-1, 1] <-> latents (B, C, F, H, W), the same tensor (as float32).

    C = `channels`: 3 for RGB, 1 for grayscale ("identity:1")."""

    spatial_factor = 1
    temporal_factor = 1

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"identity autoencoder needs channels >= 1, got {channels}")
        self.latent_channels = self.pixel_channels = int(channels)

    def _check(self, x: Tensor, what: str) -> Tensor:
        if x.dim() != 5 or x.shape[1] != self.pixel_channels:
            raise ValueError(
                f"{what} must be (B, {self.pixel_channels}, F, H, W) for this identity autoencoder, got "
                f"{tuple(x.shape)} (use 'identity:{x.shape[1] if x.dim() == 5 else 3}' for other channel counts)"
            )
        return x.float()

    def encode(self, pixels: Tensor) -> Tensor:
        return self._check(pixels, "pixels")

    def decode(self, latents: Tensor) -> Tensor:
        return self._check(latents, "latents")


def identity_channels(spec: str) -> int:
    """The channels of an "identity" / "identity:<channels>" spec (3 by default)."""
    _, _, arg = spec.partition(":")
    try:
        return int(arg) if arg else 3
    except ValueError:
        raise ValueError(f"autoencoder spec {spec!r}: use 'identity' or 'identity:<channels>'") from None

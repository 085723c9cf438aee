"""Rectified flow as released (docs/release.md §5): the forward process, the training target, the
training-time timestep distribution and the resolution-dependent timestep shift.

Convention: tau = t / 1000 in [0, 1]; x_t = (1 - tau) * x0 + tau * eps (tau = 1 is pure noise);
the model predicts the velocity v = x0 - eps, so an Euler step from tau_i to tau_{i+1} < tau_i is
x <- x + (tau_i - tau_{i+1}) * v.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

NUM_TRAIN_TIMESTEPS = 1000


def shift_ratio(height: int, width: int, frames: int = 1, scale: float = 1.0) -> float:
    """The released shift ratio: sqrt(H*W / 512^2) in pixels, times sqrt(frames // 17 * 5) for video.

    `frames` is the number of pixel frames; images (frames == 1) use a factor of 1. A video shorter than 17
    frames would give a factor of 0 in the release; we use 1 there (documented in docs/deviations.md).
    """
    ratio = math.sqrt(height * width / 512**2)
    if frames > 1:
        ratio *= math.sqrt(max(1, frames // 17 * 5))
    return ratio * scale


def shift_timesteps(tau: Tensor, ratio: float) -> Tensor:
    """tau' = r * tau / (1 + (r - 1) * tau): pushes timesteps towards noise for larger images (r > 1)."""
    return ratio * tau / (1 + (ratio - 1) * tau)


def add_noise(x0: Tensor, noise: Tensor, tau: Tensor) -> Tensor:
    """x_tau = (1 - tau) x0 + tau * noise, with tau (B,) broadcast over the other dims."""
    tau = tau.view(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    return (1 - tau) * x0 + tau * noise


def velocity_target(x0: Tensor, noise: Tensor) -> Tensor:
    """The released target v = x0 - noise."""
    return x0 - noise


def sample_training_tau(
    batch: int,
    ratio: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    distribution: str = "logit_normal",
    loc: float = 0.0,
    scale: float = 1.0,
) -> Tensor:
    """Training tau (B,) in (0, 1): logit-normal(loc, scale) (or "uniform"), then the timestep shift."""
    if distribution == "logit_normal":
        tau = torch.sigmoid(loc + scale * torch.randn(batch, generator=generator))
    elif distribution == "uniform":
        tau = torch.rand(batch, generator=generator)
    else:
        raise ValueError(f"unknown timestep distribution {distribution!r}; use 'logit_normal' or 'uniform'")
    return shift_timesteps(tau, ratio).to(device)

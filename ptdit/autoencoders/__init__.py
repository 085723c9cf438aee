"""Autoencoders behind one interface (`ptdit.autoencoders.base.Autoencoder`)."""

from __future__ import annotations

import torch

from .base import Autoencoder
from .identity import IdentityAutoencoder, identity_channels

AUTOENCODER_SPECS = (
    "identity",
    "identity:<channels>",
    "vae:/dir",
    "sd-vae:/dir",
    "cogvideox-vae:/dir",
    "wan-vae:/dir",
    "osp:/dir-or-file",
)


def load_autoencoder(
    spec: str = "identity",
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    sample_posterior: bool = False,
) -> Autoencoder:
    """An autoencoder from a spec, in eval mode with frozen weights, on `device` in `dtype`.

    "identity" / "identity:1": pixel space (3 or 1 channels). "vae:/dir" (alias "sd-vae:/dir"): diffusers
    AutoencoderKL, images. "cogvideox-vae:/dir", "wan-vae:/dir": diffusers video VAEs (temporal factor 4).
    "osp:/path": the Open-Sora-Plan 1.2 CausalVAE used by the release. `sample_posterior`: encode draws from the
    posterior instead of taking its mean (diffusers VAEs only).
    """
    kind, _, arg = spec.partition(":")
    if kind == "identity":
        return IdentityAutoencoder(identity_channels(spec)).to(device)
    if kind in ("vae", "sd-vae", "cogvideox-vae", "wan-vae") and arg:
        from .diffusers_vae import load_diffusers_vae

        return load_diffusers_vae(kind, arg, device=device, dtype=dtype, sample_posterior=sample_posterior)
    if kind == "osp" and arg:
        from .osp_causalvae import OSPCausalVAE

        return OSPCausalVAE.from_pretrained(arg, device=device, dtype=dtype).requires_grad_(False)
    raise ValueError(f"unknown autoencoder spec {spec!r}; use one of {AUTOENCODER_SPECS}")


__all__ = ["Autoencoder", "IdentityAutoencoder", "load_autoencoder", "AUTOENCODER_SPECS"]

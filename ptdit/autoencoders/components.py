"""Autoencoders as pipeline components: the `vae` of `PTDiTPipeline` from a ptdit spec, and the ptdit
`Autoencoder` interface (normalised latents, latent sizes) over any component the pipeline accepts.

Components: `IdentityVAE` (pixel space), `OSPCausalVAEModel` (the release's CausalVAE), and diffusers'
AutoencoderKL, AutoencoderKLCogVideoX and AutoencoderKLWan (normalised as their own pipelines do, see
`ptdit.autoencoders.diffusers_vae`).
"""

from __future__ import annotations

from typing import Any

import torch

from . import AUTOENCODER_SPECS
from .base import Autoencoder
from .diffusers_vae import KINDS, DiffusersVAE
from .identity import identity_channels
from .vae_models import IdentityVAE, OSPCausalVAEModel

WRAPPERS: dict[str, type[DiffusersVAE]] = {class_name: wrapper for class_name, wrapper in KINDS.values()}


def vae_component(spec: str, dtype: torch.dtype = torch.float32) -> Any:
    """The pipeline's `vae` from a ptdit autoencoder spec ("identity", "identity:1", "vae:/dir", "sd-vae:/dir",
    "cogvideox-vae:/dir", "wan-vae:/dir", "osp:/path"), loaded from local files in `dtype` (identity: no weights)."""
    kind, _, arg = spec.partition(":")
    if kind == "identity":
        return IdentityVAE(channels=identity_channels(spec))
    if kind in KINDS and arg:
        from .diffusers_vae import load_diffusers_vae

        return load_diffusers_vae(kind, arg, dtype=dtype).vae
    if kind == "osp" and arg:
        return OSPCausalVAEModel.from_osp(arg, dtype=dtype)
    raise ValueError(f"unknown autoencoder spec {spec!r}; use one of {AUTOENCODER_SPECS}")


def as_autoencoder(vae: Any) -> Autoencoder:
    """The ptdit `Autoencoder` view of a pipeline's vae: ptdit's own models as they are, diffusers' VAEs wrapped
    (the wrapper calls the component's encode / decode, so offloading hooks still run)."""
    if isinstance(vae, Autoencoder):
        return vae
    wrapper = WRAPPERS.get(type(vae).__name__)
    if wrapper is None:
        raise ValueError(
            f"vae {type(vae).__name__} is not one ptdit can use: pass IdentityVAE, OSPCausalVAEModel or one of "
            f"diffusers' {sorted(WRAPPERS)}"
        )
    return wrapper(vae)

"""ptdit's own autoencoders as diffusers models, so that they are `vae/` subfolders of a pipeline folder.

`IdentityVAE`: pixel space (no weights; its folder holds config.json only). `OSPCausalVAEModel`: the Open-Sora-Plan
1.2 CausalVAE (`OSPCausalVAE`, under `.vae`) with diffusers' save_pretrained / from_pretrained. Both keep the ptdit
`Autoencoder` interface (encode: pixels -> scaled latents, decode: the inverse, latent_size), and their encode and
decode run diffusers' offloading hooks as AutoencoderKL's do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils.accelerate_utils import apply_forward_hook
from torch import Tensor

from .base import Autoencoder

# Base order: ModelMixin, then Autoencoder (an nn.Module), then ConfigMixin, so that attribute lookup reaches
# nn.Module's (submodules) before ConfigMixin's, as on diffusers' own (ModelMixin, ConfigMixin) models.


class IdentityVAE(ModelMixin, Autoencoder, ConfigMixin):
    """Pixel space as a pipeline component: pixels (B, C, F, H, W) in [-1, 1] <-> latents, the same tensor (float32).

    C = `channels` (3 RGB, 1 grayscale). An empty buffer lets `.device`, `.to()` and offloading work as on the other
    components."""

    spatial_factor = 1
    temporal_factor = 1

    @register_to_config
    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        if int(channels) < 1:
            raise ValueError(f"IdentityVAE needs channels >= 1, got {channels}")
        self.latent_channels = self.pixel_channels = int(channels)
        self.register_buffer("device_anchor", torch.zeros(0), persistent=False)

    def _check(self, x: Tensor, what: str) -> Tensor:
        if x.dim() != 5 or x.shape[1] != self.pixel_channels:
            raise ValueError(
                f"{what} must be (B, {self.pixel_channels}, F, H, W) for this IdentityVAE, got {tuple(x.shape)}"
            )
        return x.float()

    def encode(self, pixels: Tensor) -> Tensor:
        return self._check(pixels, "pixels")

    def decode(self, latents: Tensor) -> Tensor:
        return self._check(latents, "latents")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs: Any) -> IdentityVAE:
        """Read config.json (there are no weights); diffusers' loading options (torch_dtype, ...) do not apply."""
        path = Path(pretrained_model_name_or_path) / (kwargs.get("subfolder") or "")
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{path / 'config.json'} is missing: an IdentityVAE folder holds config.json"
            )
        return cls.from_config(cls.load_config(path))


class OSPCausalVAEModel(ModelMixin, Autoencoder, ConfigMixin):
    """The Open-Sora-Plan 1.2 CausalVAE (`ptdit.autoencoders.osp_causalvae.OSPCausalVAE`, as `.vae`) as a diffusers
    model: `osp_config` holds its config fields (those of the released config.json), the weights are saved as
    `diffusion_pytorch_model.safetensors` (keys `vae.*`). `from_osp(path)` reads a released checkpoint.

    encode: pixels (B, 3, T, H, W), T = 1 + 4k -> latents (B, 4, 1 + k, H/8, W/8) * 0.18215; decode: the inverse.
    """

    _no_split_modules = ["ResnetBlock3D", "ResnetBlock2D"]

    @register_to_config
    def __init__(self, osp_config: dict[str, Any] | None = None) -> None:
        super().__init__()
        from .osp_causalvae import OSPCausalVAE, OSPCausalVAEConfig

        config = OSPCausalVAEConfig.from_dict(dict(osp_config or {}))
        self.register_to_config(osp_config=config.to_dict())  # every field, resolved
        self.vae = OSPCausalVAE(config)
        self.latent_channels = self.vae.latent_channels
        self.spatial_factor = self.vae.spatial_factor
        self.temporal_factor = self.vae.temporal_factor
        self.scale_factor = self.vae.scale_factor

    @classmethod
    def from_osp(
        cls, path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> OSPCausalVAEModel:
        """Wrap a released CausalVAE (a directory with checkpoint.ckpt [+ config.json], or a weights file)."""
        from .osp_causalvae import OSPCausalVAE

        vae = OSPCausalVAE.from_pretrained(path, device=device, dtype=dtype).requires_grad_(False)
        with torch.device("meta"):
            model = cls(osp_config=vae.config.to_dict())
        model.vae = vae
        return model.eval()

    @apply_forward_hook
    def encode(self, pixels: Tensor) -> Tensor:
        return self.vae.encode(pixels)

    @apply_forward_hook
    def decode(self, latents: Tensor) -> Tensor:
        return self.vae.decode(latents)

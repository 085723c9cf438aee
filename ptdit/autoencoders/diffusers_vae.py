"""diffusers VAEs behind the ptdit `Autoencoder` interface: AutoencoderKL (images), AutoencoderKLCogVideoX and
AutoencoderKLWan (video, temporal compression 4), each loaded from a local directory.

Latent normalisation, as each model's own pipeline does it:
  AutoencoderKL   z' = (z - shift_factor) * scaling_factor   (config; shift 0 when absent, e.g. SD: 0.18215)
  CogVideoX       z' = (z - shift_factor) * scaling_factor   (config, 1.15258426 for CogVideoX-2b/5b)
  Wan             z' = (z - latents_mean[c]) / latents_std[c] (per channel, config)
z is the posterior mean, or a posterior sample when `sample_posterior` is set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .base import Autoencoder


class DiffusersVAE(Autoencoder):
    """Common wrapper: validation, dtype handling, posterior mean/sample, scalar scale/shift normalisation.

    encode: pixels (B, C, F, H, W) in [-1, 1] -> latents float32 (B, latent_channels, F', H/s, W/s);
    decode: the inverse -> pixels float32 (not clamped). H and W must be multiples of s.
    """

    video = False  # False: frames are folded into the batch (an image VAE)

    def __init__(self, vae: nn.Module, sample_posterior: bool = False) -> None:
        super().__init__()
        self.vae = vae.eval().requires_grad_(False)
        self.sample_posterior = sample_posterior
        cfg = vae.config
        self.pixel_channels = int(cfg.in_channels)
        self.scale_factor = float(getattr(cfg, "scaling_factor", None) or 1.0)
        self.shift_factor = float(getattr(cfg, "shift_factor", None) or 0.0)
        self.eval()

    # ------------------------------------------------------------------ normalisation
    def normalize(self, z: Tensor) -> Tensor:
        return (z - self.shift_factor) * self.scale_factor

    def denormalize(self, z: Tensor) -> Tensor:
        return z / self.scale_factor + self.shift_factor

    # ------------------------------------------------------------------ checks
    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    def _check(self, x: Tensor, what: str, channels: int, multiple: int) -> None:
        if x.dim() != 5 or x.shape[1] != channels:
            raise ValueError(f"{what} must be (B, {channels}, F, H, W), got {tuple(x.shape)}")
        H, W = x.shape[-2:]
        if H % multiple or W % multiple:
            raise ValueError(
                f"{what} size {H}x{W} is not a multiple of {multiple}: resize or crop to "
                f"{H // multiple * multiple or multiple}x{W // multiple * multiple or multiple}"
            )
        self._check_frames(x.shape[2], what)

    def _check_frames(self, frames: int, what: str) -> None:
        t = self.temporal_factor
        if what == "pixels" and t > 1 and (frames - 1) % t:
            raise ValueError(
                f"this VAE encodes 1 + {t}k frames, got {frames}: use {1 + (frames - 1) // t * t}"
            )

    def _fold(self, x: Tensor) -> Tensor:
        return x.transpose(1, 2).flatten(0, 1) if not self.video else x  # (B*F, C, H, W) for an image VAE

    def _unfold(self, x: Tensor, batch: int) -> Tensor:
        return x.unflatten(0, (batch, -1)).transpose(1, 2) if not self.video else x

    # ------------------------------------------------------------------ interface
    @torch.no_grad()
    def encode(self, pixels: Tensor, generator: torch.Generator | None = None) -> Tensor:
        self._check(pixels, "pixels", self.pixel_channels, self.spatial_factor)
        posterior = self.vae.encode(self._fold(pixels.to(self.dtype))).latent_dist
        z = posterior.sample(generator) if self.sample_posterior else posterior.mean
        return self.normalize(self._unfold(z.float(), pixels.shape[0]))

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        self._check(latents, "latents", self.latent_channels, 1)
        z = self.denormalize(latents.float()).to(self.dtype)
        return self._unfold(self.vae.decode(self._fold(z)).sample.float(), latents.shape[0])

    def enable_tiling(self, **kwargs: Any) -> DiffusersVAE:
        """Tiled encode/decode for big inputs (diffusers' enable_tiling; kwargs go to it where it takes any)."""
        self.vae.enable_tiling(**kwargs)
        return self

    def disable_tiling(self) -> DiffusersVAE:
        self.vae.disable_tiling()
        return self


class KLImageVAE(DiffusersVAE):
    """diffusers AutoencoderKL (SD / SDXL / SD3 / FLUX VAEs): images; the F frames are folded into the batch."""

    def __init__(self, vae: nn.Module, sample_posterior: bool = False) -> None:
        super().__init__(vae, sample_posterior)
        self.latent_channels = int(vae.config.latent_channels)
        self.spatial_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.temporal_factor = 1


class CogVideoXVAE(DiffusersVAE):
    """diffusers AutoencoderKLCogVideoX: causal video VAE, 1 + 4k frames -> 1 + k latent frames.

    It round-trips an odd number of latent frames (pixel frames 1 or 1 + 8k, e.g. 49 -> 13): an even count
    decodes to 4x the frames, so encode and decode reject those."""

    video = True

    def __init__(self, vae: nn.Module, sample_posterior: bool = False) -> None:
        super().__init__(vae, sample_posterior)
        self.latent_channels = int(vae.config.latent_channels)
        self.spatial_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.temporal_factor = int(vae.config.temporal_compression_ratio)

    def _check_frames(self, frames: int, what: str) -> None:
        super()._check_frames(frames, what)
        latent = self.latent_size(frames, 1, 1)[0] if what == "pixels" else frames
        if latent % 2 == 0:
            good = 1 + (latent - 1) * self.temporal_factor
            raise ValueError(
                f"CogVideoX needs an odd number of latent frames, got {latent} ({what}: {frames} frames); "
                f"use {good} pixel frames ({latent - 1} latent frames) or {good + 2 * self.temporal_factor}"
            )


class WanVAE(DiffusersVAE):
    """diffusers AutoencoderKLWan: causal video VAE (temporal 4), per-channel latents_mean / latents_std."""

    video = True

    def __init__(self, vae: nn.Module, sample_posterior: bool = False) -> None:
        super().__init__(vae, sample_posterior)
        cfg = vae.config
        self.latent_channels = int(cfg.z_dim)
        self.spatial_factor = 2 ** (len(cfg.dim_mult) - 1) * int(cfg.patch_size or 1)
        self.temporal_factor = 2 ** sum(bool(d) for d in cfg.temperal_downsample)
        mean, std = list(cfg.latents_mean), list(cfg.latents_std)
        if len(mean) != self.latent_channels or len(std) != self.latent_channels:
            raise ValueError(
                f"Wan VAE config has {len(mean)} latents_mean / {len(std)} latents_std values for "
                f"z_dim={self.latent_channels}; they must match"
            )
        self.register_buffer("latents_mean", torch.tensor(mean).view(1, -1, 1, 1, 1), persistent=False)
        self.register_buffer("latents_std", torch.tensor(std).view(1, -1, 1, 1, 1), persistent=False)
        self.scale_factor, self.shift_factor = 1.0, 0.0  # per-channel instead, see normalize

    def normalize(self, z: Tensor) -> Tensor:
        return (z - self.latents_mean.to(z)) / self.latents_std.to(z)

    def denormalize(self, z: Tensor) -> Tensor:
        return z * self.latents_std.to(z) + self.latents_mean.to(z)


KINDS: dict[str, tuple[str, type[DiffusersVAE]]] = {
    "vae": ("AutoencoderKL", KLImageVAE),
    "sd-vae": ("AutoencoderKL", KLImageVAE),
    "cogvideox-vae": ("AutoencoderKLCogVideoX", CogVideoXVAE),
    "wan-vae": ("AutoencoderKLWan", WanVAE),
}


def load_diffusers_vae(
    kind: str,
    path: str | Path,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    sample_posterior: bool = False,
) -> DiffusersVAE:
    """kind in KINDS; path = a directory with the VAE's config.json + weights, or a pipeline directory with vae/."""
    import diffusers

    if kind not in KINDS:
        raise ValueError(f"unknown diffusers VAE kind {kind!r}; use one of {sorted(KINDS)}")
    class_name, wrapper = KINDS[kind]
    path = Path(path).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{kind} directory {path} does not exist; pass {kind}:/local/dir")
    if not (path / "config.json").is_file() and (path / "vae" / "config.json").is_file():
        path = path / "vae"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no config.json in {path}: expected a diffusers {class_name} directory")
    model_class = getattr(diffusers, class_name)
    vae = model_class.from_pretrained(str(path), local_files_only=True, torch_dtype=dtype)
    return wrapper(vae.to(device), sample_posterior=sample_posterior)

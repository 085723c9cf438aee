"""Sample grids during training: Euler sampling (ptdit.sampling) of log.sample_prompts, decoded and tiled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


@torch.no_grad()
def sample_grid(trainer: Any, path: Path) -> Path | None:
    """Video / multi-view: a row of frames per prompt; images: one row of prompts. Uses the trainer's raw weights; rank 0 writes `path`."""
    from ..media import grid, save_png, to_uint8
    from ..sampling import RFlowEuler, sample_euler

    cfg = trainer.cfg
    prompts = list(cfg.log.sample_prompts)
    frames, height, width = trainer.pixel_size  # of the dataset's first item
    ae = trainer.autoencoder
    lf, lh, lw = (
        ae.latent_size(frames, height, width) if hasattr(ae, "latent_size") else (frames, height, width)
    )
    C = trainer.model_config.in_channels
    g = torch.Generator().manual_seed(cfg.log.sample_seed)
    noise = torch.randn(len(prompts), C, lf, lh, lw, generator=g).to(trainer.device)
    emb, mask = trainer.text_encoder(prompts)
    uncond, uncond_mask = trainer.text_encoder([""] * len(prompts))
    ratio = cfg.train.timestep_shift(height, width, frames)  # the training shift (1 = none)
    timesteps = RFlowEuler(shift=ratio).timesteps(cfg.log.sample_steps)
    latents = sample_euler(
        trainer.raw,
        noise,
        emb.to(trainer.device).float(),
        mask.to(trainer.device),
        uncond.to(trainer.device).float(),
        uncond_mask.to(trainer.device),
        timesteps=timesteps,
        cfg_scale=cfg.log.sample_cfg,
    )
    if not trainer.info.is_main:
        return None
    pixels = ae.decode(latents).float().cpu()  # (B, C, F, H, W)
    tiles = [to_uint8(pixels[b, :, f]) for b in range(pixels.shape[0]) for f in range(pixels.shape[2])]
    scale = max(1, 128 // max(pixels.shape[-2:]))
    columns = pixels.shape[2] if pixels.shape[2] > 1 else len(prompts)  # video: a row per prompt
    return save_png(grid(tiles, columns=columns), path, scale=scale)

"""Generation for the commands: `ptdit generate` and `ptdit eval` load a `PTDiTPipeline` with `load_pipeline` and
sample with `generate_pixels` (one seed per prompt, in batches), so every command samples through the pipeline.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from .checks import check_sampling
from .diffusers_pipeline import PTDiTPipeline
from .flow_scheduler import scheduler_for_sampler
from .model import PTDiT
from .pipeline_folders import is_pipeline_folder


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_pipeline(
    model_dir: str | Path,
    text_encoder: str | None = None,
    vae: str | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    pad: bool = False,
    task: str | None = None,
) -> PTDiTPipeline:
    """A pipeline folder or a ptdit model folder as a `PTDiTPipeline` on `device`, the transformer in `dtype`.

    text_encoder / vae: ptdit specs ("minilm", "t5:/dir", "vae:/dir", "osp:/dir", ...) replacing the folder's.
    The text encoder stays float32; the vae is float32 on the CPU, else `dtype`. pad: load the transformer with
    pad=True (sizes the window does not divide are padded, the output cropped). task: overrides the folder's."""
    from .autoencoders.components import vae_component
    from .text_components import text_components

    model_dir = Path(model_dir).expanduser()
    device = torch.device(device) if device is not None else default_device()
    vae_dtype = torch.float32 if device.type == "cpu" else dtype
    kwargs: dict = {"torch_dtype": {"transformer": dtype, "vae": vae_dtype, "default": torch.float32}}
    if text_encoder:
        kwargs["text_encoder"], kwargs["tokenizer"] = text_components(text_encoder)
    if vae:
        kwargs["vae"] = vae_component(vae, vae_dtype)
    if pad:
        folder = model_dir / "transformer" if is_pipeline_folder(model_dir) else model_dir
        kwargs["transformer"] = PTDiT.from_pretrained(folder, torch_dtype=dtype, pad=True)
    if task:
        kwargs["task"] = task
    return PTDiTPipeline.from_pretrained(model_dir, **kwargs).to(device)


@torch.no_grad()
def generate_pixels(
    pipe: PTDiTPipeline,
    prompts: list[str],
    seeds: list[int],
    height: int,
    width: int,
    frames: int = 1,
    steps: int = 30,
    cfg: float = 4.0,
    sampler: str | None = "euler",
    batch_size: int = 4,
    progress: bool = False,
) -> list[Tensor]:
    """Pixels (C, F, H, W) float32 in [-1, 1] on the CPU per prompt; sample i starts from the noise of
    torch.Generator().manual_seed(seeds[i]), whatever the batch. sampler: "euler" (the release), "flow-euler"
    (the same), "flow-dpm" (DPM-Solver++ 2M with flow sigmas) or None (the pipeline's scheduler as it is)."""
    check_sampling(prompts, seeds, height, width, frames, steps, cfg, sampler, batch_size)  # before any work
    if sampler is not None:
        pipe.scheduler = scheduler_for_sampler(sampler, pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=not progress)
    video = pipe.config.task == "video"
    frames = 1 if pipe.config.task == "image" else frames
    results: list[Tensor] = []
    for start in range(0, len(prompts), batch_size):
        stop = min(start + batch_size, len(prompts))
        out = pipe(
            prompt=prompts[start:stop], height=height, width=width, num_frames=frames, num_inference_steps=steps,
            guidance_scale=cfg, generator=[torch.Generator().manual_seed(int(s)) for s in seeds[start:stop]],
            output_type="pt",
        )  # fmt: skip
        pixels = (out.frames if video else out.images).float().cpu() * 2 - 1
        if pixels.dim() == 4:  # images (b, C, H, W)
            pixels = pixels.unsqueeze(1)
        results.extend(p.transpose(0, 1) for p in pixels)  # (F, C, H, W) -> (C, F, H, W)
    return results

"""`PTDiTPipeline`: text-to-image, video and multi-view with a PT-DiT model, as a diffusers `DiffusionPipeline`.

Components: `transformer` (`PTDiT`), `scheduler` (`FlowMatchEulerDiscreteScheduler`, see `ptdit.flow_scheduler`),
`text_encoder` + `tokenizer` (MiniLM / BERT-style or T5 from transformers; `HashTextEncoder` and no tokenizer for
tests), `vae` (`IdentityVAE` for pixel-space models, diffusers' `AutoencoderKL`, `OSPCausalVAEModel`). What ptdit
needs beyond them (task, world, shift, fps, text length, default size, steps and guidance) is the pipeline's config,
saved in model_index.json.

Sampling reproduces `ptdit.sampling.sample_euler` (the release): the model predicts v = x0 - eps, which the pipeline
hands the flow-match scheduler as its model output eps - x0 = -v; the scheduler walks the release's shifted
timesteps (mu = ln r, r = `shift` or `flow.shift_ratio(H, W, F)`); classifier-free guidance runs the batch
[cond; uncond] with v = v_u + s (v_c - v_u), guided whenever guidance_scale != 1.

Folders: `save_pretrained(dir)` writes model_index.json, one subfolder per component and `pipeline_ptdit.py`, the
entry point of diffusers' custom-pipeline mechanism. `PTDiTPipeline.from_pretrained(dir)` reads such a folder, or a
ptdit model folder (config.json + diffusion_pytorch_model.safetensors + pipeline.json, as bundled, trained and
converted models are), building its text encoder and autoencoder from the specs in pipeline.json.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers.image_processor import VaeImageProcessor
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor

from .autoencoders.components import as_autoencoder
from .flow import NUM_TRAIN_TIMESTEPS, shift_ratio
from .flow_scheduler import set_flow_timesteps
from .lora_loader import PTDiTLoraLoaderMixin
from .model import PTDiT
from .pipeline_folders import (
    CUSTOM_PIPELINE_NAME,
    TASKS,
    check_pipeline_folder,
    components_from_model_folder,
    write_custom_pipeline_file,
)
from .sampling import cfg_text_batch, guided_velocity
from .text_components import default_max_length, encode_text, text_dim, text_kind

OUTPUT_TYPES = ("pil", "np", "pt", "latent")


@dataclass
class PTDiTPipelineOutput(BaseOutput):
    """`images` for the image and multi-view tasks, `frames` for video (the other is None).

    image: a list of PIL images, or np (B, H, W, C) / pt (B, C, H, W) in [0, 1], or latents (B, C, h, w).
    multi-view `images` and video `frames`: per prompt a list of PIL views / frames, or np (B, F, H, W, C) / pt
    (B, F, C, H, W) in [0, 1], or latents (B, C, F', h, w).
    """

    images: list[PIL.Image.Image] | list[list[PIL.Image.Image]] | np.ndarray | Tensor | None = None
    frames: list[list[PIL.Image.Image]] | np.ndarray | Tensor | None = None


class PTDiTPipeline(DiffusionPipeline, PTDiTLoraLoaderMixin):
    """Prompts -> PT-DiT sampling -> pixels, for images, video and multi-view (the views as frames).

    Args:
        tokenizer: the text encoder's tokenizer (None for `HashTextEncoder`).
        text_encoder: a transformers BERT-style (MiniLM) or T5 encoder, or `HashTextEncoder`; its width must be
            the transformer's `caption_channels`.
        vae: `IdentityVAE`, `OSPCausalVAEModel` or diffusers' AutoencoderKL (/ CogVideoX / Wan); its latent
            channels must be the transformer's `in_channels`.
        transformer: a `PTDiT`.
        scheduler: a flow-match scheduler (`ptdit.flow_scheduler.flow_match_scheduler()`); swapping in e.g.
            `DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, use_flow_sigmas=True,
            prediction_type="flow_prediction")` works.
        task: "image", "video" or "multiview"; world: the built-in world the model was trained on, if any;
        shift: the timestep shift ratio, None = the release's resolution-dependent sqrt(H W / 512^2) (x video
            factor); fps: of saved videos; text_max_length: tokens per prompt (None: 32 for MiniLM, 200 for T5);
        height, width, frames, num_inference_steps, guidance_scale: the defaults of `__call__`.
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _optional_components = ["tokenizer"]
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]

    def __init__(
        self,
        tokenizer: Any,
        text_encoder: Any,
        vae: Any,
        transformer: PTDiT,
        scheduler: Any,
        task: str = "image",
        world: str | None = None,
        shift: float | None = None,
        fps: float = 8.0,
        text_max_length: int | None = None,
        height: int = 1024,
        width: int = 1024,
        frames: int = 1,
        num_inference_steps: int = 30,
        guidance_scale: float = 4.0,
    ) -> None:
        super().__init__()
        _check_components(tokenizer, text_encoder, vae, transformer, task, shift, text_max_length)
        self.register_modules(
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            vae=vae,
            transformer=transformer,
            scheduler=scheduler,
        )
        self.register_to_config(
            task=task, world=world, shift=None if shift is None else float(shift), fps=float(fps),
            text_max_length=text_max_length, height=int(height), width=int(width), frames=int(frames),
            num_inference_steps=int(num_inference_steps), guidance_scale=float(guidance_scale),
        )  # fmt: skip
        self._autoencoder_view: tuple[int, Any] | None = None
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.autoencoder.spatial_factor)
        self._interrupt = False

    # ------------------------------------------------------------------ folders
    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any
    ) -> PTDiTPipeline:
        """Load a pipeline folder (model_index.json, as `save_pretrained` writes it) or a ptdit model folder
        (config.json + diffusion_pytorch_model.safetensors + pipeline.json: bundled, trained and converted models),
        from local files only. Components passed as keywords (text_encoder=..., vae=...) are used as given;
        `torch_dtype` (a dtype, or a dict by component with "default") and diffusers' other options apply to the
        folder's components. The folder is checked first: a missing component or a transformer that does not fit
        the text encoder or the vae is one clear error."""
        path = Path(pretrained_model_name_or_path).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"pipeline folder {path} does not exist (PTDiTPipeline loads local folders: a pipeline folder with "
                "model_index.json, or a ptdit model folder with config.json and pipeline.json)"
            )
        if (path / "model_index.json").is_file():
            check_pipeline_folder(path, passed=set(kwargs))
            kwargs.setdefault("local_files_only", True)
            return super().from_pretrained(str(path), **kwargs)
        return cls(**components_from_model_folder(path, **kwargs))

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> Path:
        """diffusers' save_pretrained (model_index.json + a subfolder per component) plus `pipeline_ptdit.py`,
        written into a temporary folder beside `save_directory` and then renamed into place (an existing folder
        is replaced only once the new one is complete). Returns the folder."""
        if kwargs.get("push_to_hub"):
            raise ValueError(
                "PTDiTPipeline.save_pretrained writes local folders only (push_to_hub is not supported)"
            )
        directory = Path(save_directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
        old = directory.parent / f".{directory.name}.old"
        try:
            super().save_pretrained(tmp, **kwargs)
            write_custom_pipeline_file(tmp)
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700: give the folder the mode mkdir would
            if directory.exists():
                shutil.rmtree(old, ignore_errors=True)
                os.replace(directory, old)
            os.replace(tmp, directory)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
        return directory

    # ------------------------------------------------------------------ parts
    @property
    def autoencoder(self) -> Any:
        """The ptdit `Autoencoder` view of `vae` (normalised latents, latent_size); diffusers' VAEs are wrapped."""
        if self._autoencoder_view is None or self._autoencoder_view[0] != id(self.vae):
            self._autoencoder_view = (id(self.vae), as_autoencoder(self.vae))
        return self._autoencoder_view[1]

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    @property
    def text_max_length(self) -> int:
        return self.config.text_max_length or default_max_length(self.text_encoder)

    def shift_ratio(self, height: int, width: int, frames: int) -> float:
        """The timestep shift r of a call: the pipeline's `shift`, else the release's ratio for the size (pixel
        frames count for video only)."""
        if self.config.shift is not None:
            return float(self.config.shift)
        return shift_ratio(height, width, frames if self.config.task == "video" else 1)

    def latent_shape(self, batch: int, frames: int, height: int, width: int) -> tuple[int, ...]:
        """Latents (B, C, F', h, w) of pixel sizes; a ValueError in pixels if the model cannot take them."""
        if frames < 1 or height < 1 or width < 1:
            raise ValueError(f"frames, height and width must be >= 1, got {frames}, {height}, {width}")
        ae = self.autoencoder
        s = ae.spatial_factor
        if height % s or width % s:
            raise ValueError(
                f"height and width must be multiples of the autoencoder's factor {s}, got {height}x{width}"
            )
        f, h, w = ae.latent_size(frames, height, width)
        try:
            self.transformer.check_size(f, h, w)
        except ValueError:
            mf, mh, mw = self.transformer.size_multiples
            hint = f"height and width must be multiples of {mh * s} and {mw * s} px"
            if mf > 1:
                hint += f", latent frames a multiple of {mf}"
            raise ValueError(
                f"size {frames}x{height}x{width} (frames x height x width) does not fit this model: {hint} "
                "(or load the transformer with pad=True)"
            ) from None
        return (batch, self.transformer.config.in_channels, f, h, w)

    @torch.no_grad()
    def encode_prompt(
        self,
        prompt: str | list[str],
        do_classifier_free_guidance: bool = True,
        negative_prompt: str | list[str] = "",
        num_images_per_prompt: int = 1,
        device: torch.device | None = None,
        max_sequence_length: int | None = None,
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """(prompt_embeds (B*n, L, D) float32, prompt_attention_mask (B*n, L) bool, negative_prompt_embeds,
        negative_prompt_attention_mask): each prompt repeated n = num_images_per_prompt times. The negative side
        ("" by default: the release's unconditional prompt) is (1, L, D) for one negative prompt, (B*n, L, D) for
        one per prompt, and None without guidance."""
        device = device or self._execution_device
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        length = max_sequence_length or self.text_max_length
        emb, mask = encode_text(self.text_encoder, self.tokenizer, prompts, length, device)
        emb, mask = (
            emb.repeat_interleave(num_images_per_prompt, 0),
            mask.repeat_interleave(num_images_per_prompt, 0),
        )
        if not do_classifier_free_guidance:
            return emb, mask, None, None
        negatives = [negative_prompt] if isinstance(negative_prompt, str) else list(negative_prompt)
        neg, neg_mask = encode_text(self.text_encoder, self.tokenizer, negatives, length, device)
        if len(negatives) > 1:
            neg = neg.repeat_interleave(num_images_per_prompt, 0)
            neg_mask = neg_mask.repeat_interleave(num_images_per_prompt, 0)
        return emb, mask, neg, neg_mask

    def check_inputs(
        self,
        prompt: Any,
        negative_prompt: Any,
        height: int,
        width: int,
        num_frames: int,
        num_inference_steps: int,
        output_type: str,
        prompt_embeds: Tensor | None,
        callback_on_step_end_tensor_inputs: list[str] | None,
    ) -> None:
        """One clear ValueError for a bad argument, before any work."""
        if prompt is None and prompt_embeds is None:
            raise ValueError("pass `prompt` (a string or a list of strings) or `prompt_embeds`")
        if prompt is not None and prompt_embeds is not None:
            raise ValueError("pass `prompt` or `prompt_embeds`, not both")
        if prompt is not None:
            if isinstance(prompt, str):
                prompt = [prompt]
            if (
                not isinstance(prompt, list | tuple)
                or not prompt
                or not all(isinstance(p, str) for p in prompt)
            ):
                raise ValueError(f"`prompt` must be a string or a non-empty list of strings, got {prompt!r}")
        if not isinstance(negative_prompt, str):
            if not isinstance(negative_prompt, list | tuple) or not all(
                isinstance(p, str) for p in negative_prompt
            ):
                raise ValueError(
                    f"`negative_prompt` must be a string or a list of strings, got {negative_prompt!r}"
                )
            batch = len(prompt) if prompt is not None else prompt_embeds.shape[0]
            if len(negative_prompt) != batch:
                raise ValueError(
                    f"{len(negative_prompt)} negative prompts for {batch} prompts: give one, or one per prompt"
                )
        if self.config.task == "image" and num_frames != 1:
            raise ValueError(f"an image pipeline makes one frame: num_frames must be 1, got {num_frames}")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        bad = [k for k in callback_on_step_end_tensor_inputs or [] if k not in self._callback_tensor_inputs]
        if bad:
            raise ValueError(
                f"callback_on_step_end_tensor_inputs {bad} are not among {self._callback_tensor_inputs}"
            )
        self.latent_shape(1, num_frames, height, width)

    def prepare_latents(
        self,
        shape: tuple[int, ...],
        generator: torch.Generator | list[torch.Generator] | None,
        device: torch.device,
        latents: Tensor | None = None,
    ) -> Tensor:
        """Initial noise (B, C, F', h, w) float32 on `device`: standard normal from `generator` (a list: one per
        sample, so a sample's noise does not depend on its batch), or `latents` as given."""
        if latents is not None:
            if latents.dim() == 4 and len(shape) == 5 and shape[2] == 1:
                latents = latents.unsqueeze(2)
            if tuple(latents.shape) != tuple(shape):
                raise ValueError(f"latents must be {tuple(shape)} for this call, got {tuple(latents.shape)}")
            return latents.to(device=device, dtype=torch.float32)
        if isinstance(generator, list) and len(generator) != shape[0]:
            raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}: pass one per sample")
        return randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)

    def _postprocess(self, pixels: Tensor, output_type: str) -> Any:
        """Decoded pixels (B, C, F, H, W) in about [-1, 1] -> the output of the task (see PTDiTPipelineOutput)."""
        if self.config.task == "image":
            return self.image_processor.postprocess(pixels[:, :, 0], output_type=output_type)
        views = [self.image_processor.postprocess(p.transpose(0, 1), output_type=output_type) for p in pixels]
        if output_type == "np":
            return np.stack(views)
        return torch.stack(views) if output_type == "pt" else views

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] = "",
        height: int | None = None,
        width: int | None = None,
        num_frames: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: Tensor | None = None,
        prompt_embeds: Tensor | None = None,
        prompt_attention_mask: Tensor | None = None,
        negative_prompt_embeds: Tensor | None = None,
        negative_prompt_attention_mask: Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable[[Any, int, Tensor, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        max_sequence_length: int | None = None,
    ) -> PTDiTPipelineOutput | tuple:
        """Generate from prompts.

        Args:
            prompt: a prompt or a list (or `prompt_embeds` (B, L, D) with `prompt_attention_mask` (B, L)).
            negative_prompt: the unconditional side of guidance, "" as released; one, or one per prompt (or
                `negative_prompt_embeds` (1 or B, L', D) with its mask).
            height, width: pixels; num_frames: video frames or multi-view views (1 for images); the pipeline's
                config gives the defaults, as for num_inference_steps and guidance_scale (no guidance at 1).
            generator: a torch.Generator, or one per sample (B * num_images_per_prompt) for per-sample noise.
            latents: initial noise (B, C, F', h, w) (images: (B, C, h, w) too) instead of drawing it.
            output_type: "pil", "np", "pt" (pixels in [0, 1]) or "latent" (see PTDiTPipelineOutput).
            callback_on_step_end: called as callback(pipe, step, timestep, {name: tensor}) after every step with the
                tensors named in callback_on_step_end_tensor_inputs (default ["latents"]); what it returns replaces
                them. Setting `pipe._interrupt = True` stops sampling early.
            max_sequence_length: tokens per prompt (default: the pipeline's text_max_length).

        Returns `PTDiTPipelineOutput` (`.images`, or `.frames` for video), or `(images_or_frames,)`.
        """
        cfg = self.config
        height = cfg.height if height is None else height
        width = cfg.width if width is None else width
        num_frames = (cfg.frames if cfg.task != "image" else 1) if num_frames is None else num_frames
        steps = cfg.num_inference_steps if num_inference_steps is None else num_inference_steps
        guidance_scale = cfg.guidance_scale if guidance_scale is None else float(guidance_scale)
        tensor_inputs = list(callback_on_step_end_tensor_inputs or ["latents"])
        self.check_inputs(
            prompt,
            negative_prompt,
            height,
            width,
            num_frames,
            steps,
            output_type,
            prompt_embeds,
            tensor_inputs,
        )
        self._interrupt = False
        device = self._execution_device
        guided = guidance_scale != 1.0

        # 1. text
        if prompt_embeds is None:
            prompt_embeds, prompt_attention_mask, neg_embeds, neg_mask = self.encode_prompt(
                prompt, guided and negative_prompt_embeds is None, negative_prompt, num_images_per_prompt, device,
                max_sequence_length,
            )  # fmt: skip
        else:
            prompt_embeds = prompt_embeds.to(device).float().repeat_interleave(num_images_per_prompt, 0)
            if prompt_attention_mask is not None:
                prompt_attention_mask = prompt_attention_mask.to(device).repeat_interleave(
                    num_images_per_prompt, 0
                )
            neg_embeds = neg_mask = None
            if guided and negative_prompt_embeds is None:
                _, _, neg_embeds, neg_mask = self.encode_prompt(
                    "", True, negative_prompt, num_images_per_prompt, device, max_sequence_length
                )
        if negative_prompt_embeds is not None:
            neg_embeds, neg_mask = negative_prompt_embeds.to(device).float(), negative_prompt_attention_mask
            neg_mask = None if neg_mask is None else neg_mask.to(device)
        negative_prompt_embeds = neg_embeds
        text, text_mask, guided = cfg_text_batch(
            prompt_embeds, prompt_attention_mask, neg_embeds, neg_mask, guidance_scale
        )

        # 2. noise and timesteps
        batch = prompt_embeds.shape[0]
        shape = self.latent_shape(batch, num_frames, height, width)
        latents = self.prepare_latents(shape, generator, device, latents)
        timesteps = set_flow_timesteps(
            self.scheduler, steps, self.shift_ratio(height, width, num_frames), device
        )

        # 3. denoise: the model's v = x0 - eps goes to the scheduler as its flow prediction eps - x0 = -v. The
        #    model sees t = 1000 sigma_i (schedulers such as DPM-Solver round their `timesteps` to integers)
        sigmas = getattr(self.scheduler, "sigmas", None)
        exact = sigmas is not None and len(sigmas) == len(timesteps) + 1
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    break
                t_model = sigmas[i].float() * NUM_TRAIN_TIMESTEPS if exact else t
                v = guided_velocity(
                    self.transformer, latents, t_model, text, text_mask, guided, guidance_scale
                )
                latents = self.scheduler.step(-v, t, latents, return_dict=False)[0].float()
                if callback_on_step_end is not None:
                    names = {"latents": latents, "prompt_embeds": prompt_embeds}
                    names["negative_prompt_embeds"] = negative_prompt_embeds
                    outputs = callback_on_step_end(self, i, t, {k: names[k] for k in tensor_inputs}) or {}
                    latents = outputs.pop("latents", latents)
                    if "prompt_embeds" in outputs or "negative_prompt_embeds" in outputs:
                        prompt_embeds = outputs.pop("prompt_embeds", prompt_embeds)
                        negative_prompt_embeds = outputs.pop("negative_prompt_embeds", negative_prompt_embeds)
                        text, text_mask, guided = cfg_text_batch(
                            prompt_embeds,
                            prompt_attention_mask,
                            negative_prompt_embeds,
                            neg_mask,
                            guidance_scale,
                        )
                progress_bar.update()

        # 4. decode
        if output_type == "latent":
            result = latents[:, :, 0] if cfg.task == "image" else latents
        else:
            pixels = self.autoencoder.decode(latents).float()
            result = self._postprocess(pixels, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (result,)
        if cfg.task == "video":
            return PTDiTPipelineOutput(frames=result)
        return PTDiTPipelineOutput(images=result)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _check_components(
    tokenizer: Any,
    text_encoder: Any,
    vae: Any,
    transformer: Any,
    task: str,
    shift: float | None,
    text_max_length: int | None,
) -> None:
    """One clear ValueError if the components do not fit one another."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; use one of {TASKS}")
    if not isinstance(transformer, PTDiT):
        raise ValueError(f"transformer must be a ptdit.PTDiT, got {type(transformer).__name__}")
    if shift is not None and not float(shift) > 0:
        raise ValueError(f"shift must be > 0 (or None: the release's resolution ratio), got {shift}")
    if text_max_length is not None and int(text_max_length) < 1:
        raise ValueError(f"text_max_length must be >= 1, got {text_max_length}")
    kind = text_kind(text_encoder)
    if kind != "hash" and tokenizer is None:
        raise ValueError(
            f"the {kind} text encoder {type(text_encoder).__name__} needs its tokenizer (got None)"
        )
    dim, caption = text_dim(text_encoder), transformer.config.caption_channels
    if dim != caption:
        raise ValueError(
            f"the text encoder gives {dim}-d states but the transformer takes caption_channels={caption}: "
            "use the text encoder the model was trained with"
        )
    ae = as_autoencoder(vae)
    if ae.latent_channels != transformer.config.in_channels:
        raise ValueError(
            f"the vae has {ae.latent_channels} latent channels but the transformer takes in_channels="
            f"{transformer.config.in_channels}: use the autoencoder the model was trained with"
        )


__all__ = ["PTDiTPipeline", "PTDiTPipelineOutput", "CUSTOM_PIPELINE_NAME"]

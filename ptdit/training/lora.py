"""LoRA training: adapters on a frozen base model, saved in diffusers' LoRA format (`lora.rank` > 0).

    model.requires_grad_(False); model.add_adapter(LoraConfig(r, lora_alpha, target_modules, lora_dropout))

through diffusers' PEFT integration (`PTDiT` is a `PeftAdapterMixin`): every nn.Linear whose name ends in one
of `lora.targets` (default: the attention projections to_q, to_k, to_v, to_out of every attention module, and
the MLP's fc1, fc2, in every block) gains a rank-r update B A (A: (r, in), B: (out, r), B = 0 at the start, so
the adapted model starts as the base). Only A and B train; the EMA (train.ema_decay > 0) averages them alone.

Files (diffusers' layout, `transformer.`-prefixed PEFT keys such as
`transformer.blocks.0.text_attn.to_k.lora_A.weight`, the LoraConfig in the safetensors metadata):
    step_XXXXXX/pytorch_lora_weights.safetensors       the raw adapter (what resume reloads)
    step_XXXXXX/ema_pytorch_lora_weights.safetensors   its EMA (train.ema_decay > 0)
    step_XXXXXX/lora_base.json                         the base model (init.from) and its weights' SHA-256
    run/model/pytorch_lora_weights.safetensors         the exported adapter (EMA if any), + lora_base.json and
                                                       the base's pipeline.json: `load_lora_weights(run/model)`
A checkpoint holds no base weights: resuming loads init.from again and refuses a base whose weights changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ..io import atomic_write_text, read_safetensors
from ..pipeline_config import LORA_WEIGHTS_NAME
from .config import LoraSection

ADAPTER = "default"  # the adapter's name inside the model (diffusers' and PEFT's default)
PREFIX = "transformer"  # the pipeline component the weights belong to (diffusers' LoRA files)
EMA_LORA_WEIGHTS_NAME = f"ema_{LORA_WEIGHTS_NAME}"
BASE_NOTE_NAME = "lora_base.json"


def lora_config(section: LoraSection) -> Any:
    """The peft.LoraConfig of a `lora` section (alpha 0 = rank, i.e. a scale alpha / r of 1)."""
    from peft import LoraConfig

    return LoraConfig(
        r=section.rank,
        lora_alpha=section.alpha or section.rank,
        target_modules=list(section.targets),
        lora_dropout=section.dropout,
        init_lora_weights=True,  # A: Kaiming-uniform (from torch's RNG, seeded by train.seed), B: zeros
    )


def add_lora(model: nn.Module, section: LoraSection) -> int:
    """Freeze `model` and add the adapter of `section`; returns the number of adapted linears.

    ValueError when a target names no linear of the model (a typo would otherwise train nothing there)."""
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    unused = [t for t in section.targets if not any(n == t or n.endswith("." + t) for n in linears)]
    if unused:
        raise ValueError(
            f"lora.targets {unused} match no linear layer of the model; module names end in e.g. "
            f"{sorted({n.rsplit('.', 1)[-1] for n in linears})}"
        )
    model.requires_grad_(False)
    model.add_adapter(lora_config(section), adapter_name=ADAPTER)
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in model.named_parameters() if ".lora_A." in n}
    return len(adapted)


def peft_key(param_name: str) -> str:
    """A parameter's name in the model -> its key in PEFT's / diffusers' files (the adapter name dropped):
    `blocks.0.mlp.fc1.lora_A.default.weight` -> `blocks.0.mlp.fc1.lora_A.weight`, as get_peft_model_state_dict."""
    return param_name.replace(f".{ADAPTER}", "")


def adapter_state(model: nn.Module, tensors: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """The adapter's weights with PEFT keys (CPU, fp32 copies): the model's own, or `tensors` (parameter name ->
    tensor, e.g. the EMA shadow) renamed alike. Checked against peft's get_peft_model_state_dict."""
    from peft.utils import get_peft_model_state_dict

    own = get_peft_model_state_dict(model, adapter_name=ADAPTER)
    if tensors is None:
        return {k: v.detach().cpu().float().clone() for k, v in own.items()}
    out = {peft_key(n): t.detach().cpu().float().clone() for n, t in tensors.items()}
    if set(out) != set(own):
        raise ValueError(f"the tensors do not match the adapter: {sorted(set(out) ^ set(own))[:4]}")
    return out


def load_adapter_state(model: nn.Module, state: dict[str, Tensor]) -> None:
    """Copy PEFT-keyed adapter weights (e.g. from `read_lora_file`) into the model's adapter; every adapter
    weight must be there, and nothing else."""
    from peft.utils import set_peft_model_state_dict

    expected = set(adapter_state(model))
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise ValueError(
            f"the LoRA weights do not fit the adapter: missing {missing[:4]}, unexpected {extra[:4]}"
        )
    set_peft_model_state_dict(model, state, adapter_name=ADAPTER)


def write_lora_file(
    directory: Path, state: dict[str, Tensor], config: Any, name: str = LORA_WEIGHTS_NAME
) -> Path:
    """Write `state` (PEFT keys) as diffusers writes a pipeline's LoRA: `transformer.` prefixes, the LoraConfig
    as `transformer.`-prefixed metadata (LoraBaseMixin._save_lora_weights); atomically (a temporary name, then
    os.replace)."""
    from diffusers.loaders.lora_base import LoraBaseMixin

    directory = Path(directory)
    tmp_name = f".tmp-{name}"
    LoraBaseMixin._save_lora_weights(
        save_directory=directory,
        lora_layers={PREFIX: state},
        lora_metadata={PREFIX: config.to_dict()},
        weight_name=tmp_name,
    )
    os.replace(directory / tmp_name, directory / name)
    return directory / name


def read_lora_file(path: Path) -> dict[str, Tensor]:
    """The PEFT-keyed adapter weights of a diffusers LoRA file (the `transformer.` prefix removed)."""
    state = read_safetensors(path)
    lead = PREFIX + "."
    if not state or not all(k.startswith(lead) for k in state):
        raise ValueError(f"{path} is not a ptdit LoRA file: its keys do not all start with {lead!r}")
    return {k[len(lead) :]: v for k, v in state.items()}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def base_note(init: dict, section: LoraSection) -> dict[str, Any]:
    """lora_base.json: the base model an adapter belongs to (init.from, the weights file and its SHA-256)."""
    return {
        "base_model": init["from"],
        "weights": init["file"],
        "sha256": file_sha256(Path(init["file"])),
        "rank": section.rank,
        "alpha": section.alpha or section.rank,
        "targets": list(section.targets),
    }


def write_base_note(directory: Path, note: dict[str, Any]) -> None:
    atomic_write_text(Path(directory) / BASE_NOTE_NAME, json.dumps(note, indent=2) + "\n")


def read_base_note(directory: Path) -> dict[str, Any]:
    path = Path(directory) / BASE_NOTE_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {directory} is not a LoRA checkpoint or adapter folder")
    return json.loads(path.read_text())


def check_same_base(saved: dict[str, Any], current: dict[str, Any], where: Path) -> None:
    """Resume only onto the base the adapter was trained on (same weights, rank, alpha, targets)."""
    for key in ("sha256", "rank", "alpha", "targets"):
        if saved.get(key) != current.get(key):
            raise ValueError(
                f"{where} was trained with {key}={saved.get(key)!r} (base {saved.get('base_model')}), this run has "
                f"{key}={current.get(key)!r}: resume with the same init.from and lora section, or start a new run"
            )


def is_lora_checkpoint(directory: Path) -> bool:
    return (Path(directory) / LORA_WEIGHTS_NAME).is_file() and (Path(directory) / BASE_NOTE_NAME).is_file()


def export_adapter(ckpt: Path, out_dir: Path, weights: str = "ema") -> Path:
    """run/model from a LoRA checkpoint: pytorch_lora_weights.safetensors (the EMA adapter when `weights` is
    "ema" and the run kept one, else the raw one), lora_base.json and the base's pipeline.json."""
    ckpt, out_dir = Path(ckpt), Path(out_dir)
    src = ckpt / EMA_LORA_WEIGHTS_NAME
    if weights != "ema" or not src.is_file():
        src = ckpt / LORA_WEIGHTS_NAME
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, out_dir / f".tmp-{LORA_WEIGHTS_NAME}")
    os.replace(out_dir / f".tmp-{LORA_WEIGHTS_NAME}", out_dir / LORA_WEIGHTS_NAME)
    note = read_base_note(ckpt)
    note["adapter"] = "ema" if src.name == EMA_LORA_WEIGHTS_NAME else "raw"
    note["checkpoint"] = str(ckpt)
    write_base_note(out_dir, note)
    if (ckpt / "pipeline.json").is_file():
        atomic_write_text(out_dir / "pipeline.json", (ckpt / "pipeline.json").read_text())
    return out_dir

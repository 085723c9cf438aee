"""Checkpoint directories: atomic writes, rotation, the `latest` pointer, resume lookup, multi-stage init, export.

A run directory looks like:
    run/step_000100/  diffusion_pytorch_model.safetensors  (raw weights: also a PTDiT.from_pretrained model dir;
                      runs of ptdit 0.1 hold model.safetensors, still read)
                      ema.safetensors    (the EMA weights, when train.ema_decay > 0)
                      config.json        (the PTDiTConfig)
                      train_config.yaml  (the resolved training config)
                      pipeline.json      (how `ptdit generate` samples it: text encoder, autoencoder, size)
                      trainer_state.pt   (step, data position, optimizer, schedule)
                      rng_rank{r}.pt     (RNG states of torch / CUDA / numpy / python and the trainer's generators)
    run/latest        (text: the newest step dir name, updated atomically after the dir is complete)
    run/model/        (`export`: config.json + diffusion_pytorch_model.safetensors holding the EMA weights + pipeline.json)
A checkpoint is written into `.tmp-step_XXXXXX` (each file fsynced), then renamed to `step_XXXXXX`, so a crash
never leaves a half-written step dir; leftover temporary dirs are removed when a run starts.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
from pathlib import Path

import torch
from torch import Tensor, nn

from ..config import PTDiTConfig
from ..io import atomic_write_text, read_safetensors, save_safetensors_atomic, torch_save_atomic
from ..model import CONFIG_NAME, WEIGHTS_NAME, weights_file

EMA_NAME = "ema.safetensors"
STATE_NAME = "trainer_state.pt"
TRAIN_CONFIG_NAME = "train_config.yaml"
LATEST_NAME = "latest"
PIPELINE_NAME = "pipeline.json"
STEP_RE = re.compile(r"^step_(\d+)$")


def step_dir_name(step: int) -> str:
    return f"step_{step:06d}"


def tmp_dir_for(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / f".tmp-{step_dir_name(step)}"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (step, path) of a run dir, oldest first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = []
    for p in run_dir.iterdir():
        m = STEP_RE.match(p.name)
        if m and p.is_dir() and (p / STATE_NAME).is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def clean_temporaries(run_dir: str | Path) -> None:
    run_dir = Path(run_dir)
    if run_dir.is_dir():
        for p in run_dir.glob(".tmp-step_*"):
            shutil.rmtree(p, ignore_errors=True)


def begin(run_dir: Path, step: int) -> Path:
    """Create the (empty) temporary dir of a checkpoint (rank 0, before the ranks write their RNG files)."""
    tmp = tmp_dir_for(run_dir, step)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def write_rng(tmp: Path, rank: int, rng_state: dict) -> None:
    torch_save_atomic(rng_state, tmp / f"rng_rank{rank}.pt")


def write_main(
    tmp: Path,
    model_state: dict[str, Tensor],
    ema_state: dict[str, Tensor] | None,
    model_config: PTDiTConfig,
    train_config_yaml: str,
    trainer_state: dict,
) -> None:
    """Rank 0: the weights, configs and trainer state (every file written atomically and fsynced); a LoRA run
    passes model_state None (its adapter files come from ptdit/training/lora.py)."""
    if model_state is not None:
        save_safetensors_atomic(model_state, tmp / WEIGHTS_NAME)
    if ema_state is not None:
        save_safetensors_atomic(ema_state, tmp / EMA_NAME)
    atomic_write_text(tmp / CONFIG_NAME, model_config.to_json())
    atomic_write_text(tmp / TRAIN_CONFIG_NAME, train_config_yaml)
    torch_save_atomic(trainer_state, tmp / STATE_NAME)


def commit(run_dir: Path, step: int, keep_last: int) -> Path:
    """Rename the temporary dir to step_XXXXXX, update `latest`, then drop old checkpoints beyond keep_last."""
    run_dir = Path(run_dir)
    tmp, final = tmp_dir_for(run_dir, step), run_dir / step_dir_name(step)
    if final.exists():  # e.g. a run resumed before this step: replace the old copy
        trash = run_dir / f".tmp-old-{final.name}"
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(final, trash)
        os.replace(tmp, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_dir(run_dir)
    atomic_write_text(run_dir / LATEST_NAME, final.name + "\n")
    if keep_last > 0:
        for _, old in list_checkpoints(run_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_trainer_state(ckpt: Path, rank: int) -> tuple[dict, dict]:
    """(trainer_state, this rank's RNG state) of a checkpoint dir."""
    state_path, rng_path = ckpt / STATE_NAME, ckpt / f"rng_rank{rank}.pt"
    for p in (state_path, rng_path):
        if not p.is_file():
            raise FileNotFoundError(
                f"{p} is missing: {ckpt} is not a complete checkpoint of a run with this many ranks"
            )
    return torch.load(state_path, weights_only=False), torch.load(rng_path, weights_only=False)


def resolve_resume(run_dir: Path, resume: str) -> Path | None:
    """checkpoint.resume: "" -> None; "auto" -> the newest checkpoint, or None (a fresh start); "latest" (what
    `ptdit train --resume` asks) -> the newest checkpoint, an error if there is none; else a step dir or run dir."""
    if not resume:
        return None
    if resume == "auto":
        return latest_checkpoint(run_dir)
    if resume == "latest":
        latest = latest_checkpoint(run_dir)
        if latest is None:
            raise FileNotFoundError(
                f"--resume (checkpoint.resume: latest): {run_dir} holds no checkpoint to resume; start a fresh run "
                "without --resume, or pass --resume auto to resume when there is a checkpoint and start fresh "
                "when there is none"
            )
        return latest
    path = Path(resume)
    if (path / STATE_NAME).is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise FileNotFoundError(
            f"checkpoint.resume={resume}: no checkpoint (a step_XXXXXX dir with {STATE_NAME}) there"
        )
    return latest


# ---------------------------------------------------------------------- multi-stage init and export
def resolve_weights(source: str | Path, prefer: str = "ema") -> tuple[Path, Path]:
    """(weights file, config.json) of a model dir, a checkpoint step dir or a run dir (its newest checkpoint)."""
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(
            f"init.from={source} does not exist (give a model dir, a checkpoint dir or a run dir)"
        )
    if path.is_dir() and not (path / CONFIG_NAME).is_file():
        latest = latest_checkpoint(path)
        if latest is None and (path / "model" / CONFIG_NAME).is_file():
            latest = path / "model"
        if latest is None:
            raise FileNotFoundError(
                f"init.from={source} holds neither {CONFIG_NAME} nor a step_XXXXXX checkpoint"
            )
        path = latest
    if not path.is_dir():
        raise ValueError(f"init.from={source} must be a directory (a model dir or a checkpoint dir)")
    weights = path / EMA_NAME if prefer == "ema" and (path / EMA_NAME).is_file() else weights_file(path)
    if not weights.is_file() and (path / "lora_base.json").is_file():
        raise ValueError(
            f"{path} holds LoRA adapter weights, not a model: start from its base model (lora_base.json) with "
            "init.from and apply the adapter with load_lora_weights / load_lora_adapter"
        )
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing: {path} is not a ptdit model or checkpoint dir")
    return weights, path / CONFIG_NAME


@torch.no_grad()
def init_from(
    model: nn.Module, source: str | Path, prefer: str = "ema", ignore: list[str] | None = None
) -> dict:
    """Load an earlier stage's weights into a model built from the new config (before any wrapping).

    Weights must match in name and shape, except those matched by an `ignore` fnmatch pattern, which keep
    their fresh initialisation. The window, resolution and frame count are not weights, so 256 -> 512 -> 1024,
    image -> video (p_f = 4) and image -> multi-view all load. Returns a summary (file, loaded, ignored).
    """
    ignore = ignore or []
    weights, config_path = resolve_weights(source, prefer)
    state = read_safetensors(weights)
    expected = model.state_dict()

    def ignored(k: str) -> bool:
        return any(fnmatch.fnmatchcase(k, pat) for pat in ignore)

    missing = sorted(k for k in expected if k not in state and not ignored(k))
    unexpected = sorted(k for k in state if k not in expected and not ignored(k))
    shapes = sorted(
        f"{k}: {tuple(state[k].shape)} in {weights.name} vs {tuple(expected[k].shape)} in the new model"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape) and not ignored(k)
    )
    if missing or unexpected or shapes:
        parts = []
        for title, items in (
            ("shape mismatches", shapes),
            ("missing in the source", missing),
            ("unexpected", unexpected),
        ):
            if items:
                parts.append(
                    f"{title}: "
                    + ", ".join(items[:8])
                    + (f", ... ({len(items)} in all)" if len(items) > 8 else "")
                )
        raise ValueError(
            f"init.from={source}: the weights in {weights} do not fit the model config ({'; '.join(parts)}). "
            "Change the model section to match the earlier stage, or list the weights to re-initialise in "
            "init.ignore (fnmatch patterns, e.g. 'x_embedder.*')"
        )
    loaded, skipped = 0, []
    for k, v in expected.items():
        if k in state and tuple(state[k].shape) == tuple(v.shape) and not ignored(k):
            v.copy_(state[k].to(v.dtype))
            loaded += 1
        elif ignored(k):
            skipped.append(k)
    return {"file": str(weights), "loaded": loaded, "ignored": skipped}


def export_model(ckpt: str | Path, out_dir: str | Path, weights: str = "ema") -> Path:
    """Write a model dir (config.json + diffusion_pytorch_model.safetensors) from a checkpoint, with its EMA weights by default.
    A LoRA checkpoint gives an adapter dir instead (pytorch_lora_weights.safetensors, lora_base.json)."""
    from .lora import export_adapter, is_lora_checkpoint

    ckpt, out_dir = Path(ckpt), Path(out_dir)
    latest = latest_checkpoint(ckpt) if ckpt.is_dir() else None
    if latest is not None and is_lora_checkpoint(latest):
        ckpt = latest  # the run dir of a LoRA run: its newest checkpoint
    if is_lora_checkpoint(ckpt):
        return export_adapter(ckpt, out_dir, weights)
    src, config_path = resolve_weights(ckpt, weights)
    state = read_safetensors(src)
    config = PTDiTConfig.from_json(config_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_safetensors_atomic(state, out_dir / WEIGHTS_NAME, metadata={"source": str(src)})
    atomic_write_text(out_dir / CONFIG_NAME, config.to_json())
    if (src.parent / PIPELINE_NAME).is_file():  # how to sample it (ptdit generate reads it)
        atomic_write_text(out_dir / PIPELINE_NAME, (src.parent / PIPELINE_NAME).read_text())
    return out_dir

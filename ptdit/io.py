"""File helpers: atomic writes (temporary name, fsync, rename) and strict state-dict loading with clear errors."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (/proc), else by setting and restoring."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_replace(path: Path, write, durable: bool = True) -> None:
    """Write through `write(tmp)` into a temporary file beside `path`, then rename it into place.

    durable=True also fsyncs the file and its folder (checkpoints, outputs); caches pass False: a rename is
    still atomic, only a power loss could lose the newest entries.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600: give the file the mode open() would
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if not durable:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    _atomic_replace(Path(path), lambda tmp: Path(tmp).write_text(text))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    _atomic_replace(Path(path), lambda tmp: Path(tmp).write_bytes(data))


def save_safetensors_atomic(
    state: Mapping[str, Tensor], path: str | Path, metadata: dict | None = None, durable: bool = True
) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    _atomic_replace(Path(path), lambda tmp: save_file(tensors, tmp, metadata=metadata), durable)


def torch_save_atomic(obj, path: str | Path) -> None:
    _atomic_replace(Path(path), lambda tmp: torch.save(obj, tmp))


def read_safetensors(path: str | Path) -> dict[str, Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path} is not a readable safetensors file ({e})") from None


def load_state_dict_strict(
    model: nn.Module, state: Mapping[str, Tensor], source: str, assign: bool = False
) -> None:
    """load_state_dict(strict=True) that reports missing, unexpected and mis-shaped keys in one clear error."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or shapes:
        parts = []
        for title, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", shapes),
        ):
            if items:
                shown = ", ".join(items[:12]) + (f", ... ({len(items)} in all)" if len(items) > 12 else "")
                parts.append(f"{title}: {shown}")
        raise ValueError(f"weights in {source} do not match the model config: " + "; ".join(parts))
    model.load_state_dict(state, strict=True, assign=assign)

"""Model names of `ptdit flops` (PT-DiT presets, official and lean, and the peers) and `count_model`."""

from __future__ import annotations

from typing import Any

from ..config import PRESETS, PTDiTConfig, ratio_for_size
from .costs import COG_TEXT_LEN, PIXART_TEXT_LEN, PT_TEXT_LEN, VAE_FACTOR
from .counts import DIT_SPECS, Count, count_cogvideox, count_dit, count_pixart, count_ptdit

PEERS = ("DiT-XL/2", "DiT-B/2", "PixArt-alpha", "CogVideoX-2B")
PTDIT_MODELS = tuple(f"{k}{suffix}" for suffix in ("", "-lean") for k in PRESETS)
MODEL_NAMES = PEERS + PTDIT_MODELS
IMAGE_ONLY = ("DiT-XL/2", "DiT-B/2", "PixArt-alpha")


def canonical_name(name: str) -> str:
    """'pt-dit/xl-lean' -> 'PT-DiT-XL-lean'; 'pixart' -> 'PixArt-alpha'; unknown names raise ValueError."""
    key = name.strip().lower().replace("_", "-")
    aliases = {
        "pixart": "pixart-alpha",
        "pixart-α": "pixart-alpha",
        "cogvideox": "cogvideox-2b",
        "dit-xl": "dit-xl/2",
        "dit-b": "dit-b/2",
    }
    key = aliases.get(key, key)
    for known in MODEL_NAMES:
        if known.lower() == key or known.lower() == key.replace("pt-dit/", "pt-dit-"):
            return known
    raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODEL_NAMES)}")


def ptdit_config(
    name: str, window: tuple[int, int, int], overrides: dict[str, Any] | None = None
) -> PTDiTConfig:
    """The PTDiTConfig of a registry name ('PT-DiT-L' or 'PT-DiT-L-lean') with a window and field overrides."""
    lean = name.endswith("-lean")
    preset = name[: -len("-lean")] if lean else name
    fields = {"window": window, "block": "lean" if lean else "official"}
    fields.update(overrides or {})
    return PTDiTConfig.from_preset(preset, **fields)


def count_model(
    name: str,
    height: int,
    width: int | None = None,
    frames: int = 1,
    window: tuple[int, int, int] | None = None,
    text_len: int | None = None,
    overrides: dict[str, Any] | None = None,
    vae_factor: int = VAE_FACTOR,
) -> Count:
    """Count any registry model. PT-DiT's window defaults to `ratio_for_size` (64 windows per frame group)."""
    name = canonical_name(name)
    width = height if width is None else width
    if name in IMAGE_ONLY and frames != 1:
        raise ValueError(f"{name} is an image model: count it with frames=1, not {frames}")
    if name.startswith("DiT"):
        return count_dit(height, width, DIT_SPECS[name], vae_factor, name)
    if name == "PixArt-alpha":
        return count_pixart(
            height, width, PIXART_TEXT_LEN if text_len is None else text_len, vae_factor=vae_factor
        )
    if name == "CogVideoX-2B":
        L = COG_TEXT_LEN if text_len is None else text_len
        return count_cogvideox(height, width, frames, L, vae_factor=vae_factor)
    if window is None:
        window = ratio_for_size(height, width, frames, vae_factor=vae_factor)
    config = ptdit_config(name, window, overrides)
    L = PT_TEXT_LEN if text_len is None else text_len
    return count_ptdit(config, height, width, frames, L, vae_factor, name)

"""Builders of the benchmarked models with random weights: our presets and diffusers' peers, with fast paths."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..config import PTDiTConfig
from .cases import VAE_FACTOR, Case, _check_case, _ptdit_variant, default_window, parse_model


@dataclass
class Built:
    """A model ready to call: `run(batch)` makes inputs; `call(inputs)` runs one forward and returns a tensor."""

    module: nn.Module
    make_inputs: Callable[[int], dict[str, Any]]
    call: Callable[[dict[str, Any]], Tensor]
    tokens: int  # latent tokens per sample
    macs: int | None  # analytic MACs per sample (one forward), None if not counted
    attention_shape: tuple[int, int, int] | None = (
        None  # (sequences per sample, heads, length) of the main attention
    )
    head_dim: int = 0
    notes: str = ""


def _rand(*shape: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    return torch.randn(*shape, device=device, dtype=dtype)


def _build_ptdit(
    case: Case, base: str, device: torch.device, dtype: torch.dtype, text_len: int = 120
) -> Built:
    from .. import complexity
    from ..model import PTDiT

    preset, variant = _ptdit_variant(base)
    _check_case(case, VAE_FACTOR, 2)
    F_, h, w = case.latent_frames, case.height // VAE_FACTOR, case.width // VAE_FACTOR
    window = default_window(case.height, case.width, F_)
    overrides: dict[str, Any] = {"window": window}
    if variant == "lean":
        overrides["block"] = "lean"
    if variant == "full":
        overrides["attention"] = "full"
    config = PTDiTConfig.from_preset(preset, **overrides)
    with torch.device(device):
        model = PTDiT(config).to(dtype)
    grid = (F_, h // 2, w // 2)
    macs = complexity.count_ptdit(config, case.height, case.width, F_, text_len).total

    def make_inputs(batch: int) -> dict[str, Any]:
        kw = dict(device=device, dtype=_param_dtype(model))
        return {
            "hidden_states": _rand(batch, config.in_channels, F_, h, w, **kw),
            "timestep": torch.rand(batch, device=device) * 1000,
            "encoder_hidden_states": _rand(batch, text_len, config.caption_channels, **kw),
            "encoder_attention_mask": torch.ones(batch, text_len, device=device, dtype=torch.bool),
        }

    N = math.prod(grid)
    n = math.prod(window)
    shape = (1, config.num_heads, N) if variant == "full" else (N // n, config.num_heads, n)
    return Built(
        model,
        make_inputs,
        lambda inp: model(**inp, return_dict=False)[0],
        N,
        macs,
        shape,
        config.head_dim,
        f"window {window}",
    )


def _param_dtype(model: nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def _build_pixart(
    case: Case, device: torch.device, dtype: torch.dtype, small: str = "", text_len: int = 120
) -> Built:
    from diffusers import PixArtTransformer2DModel

    from .. import complexity

    _check_case(case, VAE_FACTOR, 2)
    if case.frames != 1:
        raise ValueError("PixArt-alpha is an image model: give it image sizes, not video")
    # PixArt-XL-2-1024-MS; "-S" has PT-DiT-S's depth and parameters (D = 384 = 6 x 64 vs PT-DiT-S's 288);
    # "-T" is a 2-block toy for smoke runs
    spec = _small_pixart().get(small, complexity.PixArtSpec())
    with torch.device(device):
        model = PixArtTransformer2DModel(
            num_attention_heads=spec.num_heads,
            attention_head_dim=spec.hidden_size // spec.num_heads,
            in_channels=4,
            out_channels=8,
            num_layers=spec.depth,
            cross_attention_dim=spec.hidden_size,
            caption_channels=4096,
            sample_size=128,
            use_additional_conditions=True,
        ).to(dtype)
    h, w = case.height // VAE_FACTOR, case.width // VAE_FACTOR
    macs = complexity.count_pixart(case.height, case.width, text_len, spec).total

    def make_inputs(batch: int) -> dict[str, Any]:
        kw = dict(device=device, dtype=_param_dtype(model))
        return {
            "hidden_states": _rand(batch, 4, h, w, **kw),
            "encoder_hidden_states": _rand(batch, text_len, 4096, **kw),
            "timestep": torch.rand(batch, device=device) * 1000,
            "encoder_attention_mask": torch.ones(batch, text_len, device=device),
            "added_cond_kwargs": {
                "resolution": torch.tensor([[case.height, case.width]] * batch, device=device, **_f(model)),
                "aspect_ratio": torch.tensor(
                    [[case.height / case.width]] * batch, device=device, **_f(model)
                ),
            },
            "return_dict": False,
        }

    N = (h // 2) * (w // 2)
    return Built(
        model,
        make_inputs,
        lambda inp: model(**inp)[0],
        N,
        macs,
        (1, spec.num_heads, N),
        spec.hidden_size // spec.num_heads,
    )


def _small_pixart() -> dict[str, Any]:
    from .. import complexity

    return {
        "-S": complexity.PixArtSpec(depth=10, hidden_size=384, num_heads=6),
        "-T": complexity.PixArtSpec(depth=2, hidden_size=96, num_heads=4),
    }


def _f(model: nn.Module) -> dict[str, torch.dtype]:
    return {"dtype": _param_dtype(model)}


def _build_dit(case: Case, device: torch.device, dtype: torch.dtype) -> Built:
    from diffusers import DiTTransformer2DModel

    from .. import complexity

    _check_case(case, VAE_FACTOR, 2)
    if case.frames != 1:
        raise ValueError("DiT-XL/2 is an image model: give it image sizes, not video")
    with torch.device(device):
        model = DiTTransformer2DModel(
            num_attention_heads=16,
            attention_head_dim=72,
            in_channels=4,
            out_channels=8,
            num_layers=28,
            sample_size=32,
        ).to(dtype)
    h, w = case.height // VAE_FACTOR, case.width // VAE_FACTOR
    spec = complexity.DiTSpec(layout="diffusers")
    macs = complexity.count_dit(case.height, case.width, spec).total

    def make_inputs(batch: int) -> dict[str, Any]:
        return {
            "hidden_states": _rand(batch, 4, h, w, device=device, dtype=_param_dtype(model)),
            "timestep": torch.randint(0, 1000, (batch,), device=device),
            "class_labels": torch.randint(0, 1000, (batch,), device=device),
            "return_dict": False,
        }

    N = (h // 2) * (w // 2)
    return Built(model, make_inputs, lambda inp: model(**inp)[0], N, macs, (1, 16, N), 72)


def _build_sana(case: Case, device: torch.device, dtype: torch.dtype, text_len: int = 300) -> Built:
    from diffusers import SanaTransformer2DModel

    factor = 32  # DC-AE f32c32
    _check_case(case, factor, 1)
    if case.frames != 1:
        raise ValueError("Sana-0.6B is an image model: give it image sizes, not video")
    with torch.device(device):  # Sana_600M_1024px
        model = SanaTransformer2DModel(
            in_channels=32,
            out_channels=32,
            num_attention_heads=36,
            attention_head_dim=32,
            num_layers=28,
            num_cross_attention_heads=16,
            cross_attention_head_dim=72,
            cross_attention_dim=1152,
            caption_channels=2304,
            mlp_ratio=2.5,
            sample_size=32,
            patch_size=1,
        ).to(dtype)
    h, w = case.height // factor, case.width // factor

    def make_inputs(batch: int) -> dict[str, Any]:
        kw = dict(device=device, dtype=_param_dtype(model))
        return {
            "hidden_states": _rand(batch, 32, h, w, **kw),
            "encoder_hidden_states": _rand(batch, text_len, 2304, **kw),
            "timestep": torch.rand(batch, device=device) * 1000,
            "encoder_attention_mask": torch.ones(batch, text_len, device=device),
            "return_dict": False,
        }

    return Built(
        model,
        make_inputs,
        lambda inp: model(**inp)[0],
        h * w,
        None,
        None,
        32,
        "linear attention; MACs not counted",
    )


def _build_cogvideox(case: Case, device: torch.device, dtype: torch.dtype, text_len: int = 226) -> Built:
    from diffusers import CogVideoXTransformer3DModel

    from .. import complexity

    _check_case(case, VAE_FACTOR, 2)
    with torch.device(device):  # CogVideoX-2B: the class defaults are the 2B config
        model = CogVideoXTransformer3DModel(sample_frames=49, sample_height=60, sample_width=90).to(dtype)
    F_, h, w = case.latent_frames, case.height // VAE_FACTOR, case.width // VAE_FACTOR
    macs = complexity.count_cogvideox(case.height, case.width, F_, text_len).total

    def make_inputs(batch: int) -> dict[str, Any]:
        kw = dict(device=device, dtype=_param_dtype(model))
        return {
            "hidden_states": _rand(batch, F_, 16, h, w, **kw),  # CogVideoX takes (B, F, C, H, W)
            "encoder_hidden_states": _rand(batch, text_len, 4096, **kw),
            "timestep": torch.randint(0, 1000, (batch,), device=device),
            "return_dict": False,
        }

    N = F_ * (h // 2) * (w // 2)
    return Built(model, make_inputs, lambda inp: model(**inp)[0], N, macs, (1, 30, N + text_len), 64)


def build(case: Case, device: torch.device | str, dtype: torch.dtype) -> Built:
    """Build `case.model` (random weights) on `device` in `dtype`, with its fast-path flags applied."""
    device = torch.device(device)
    base, flags = parse_model(case.model)
    with contextlib.suppress(
        ImportError
    ):  # diffusers warns on every .to(dtype) of a peer; keep the output readable
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.set_verbosity_error()
    if base.startswith("PixArt-alpha"):
        built = _build_pixart(case, device, dtype, small=base.removeprefix("PixArt-alpha"))
    elif base == "DiT-XL/2":
        built = _build_dit(case, device, dtype)
    elif base == "Sana-0.6B":
        built = _build_sana(case, device, dtype)
    elif base == "CogVideoX-2B":
        built = _build_cogvideox(case, device, dtype)
    else:
        built = _build_ptdit(case, base, device, dtype)
    from .. import fast

    if "fuse" in flags:
        fast.fuse_qkv(built.module)
    if "auto-windows" in flags and device.type == "cuda":
        # masked SDPA falls back to a slower kernel on a GPU (docs/paper.md §8.2); on a CPU the mask is nearly
        # free and "split" only adds work (benchmarks/results/cpu_fastpaths.md), so +fast keeps "sdpa" there
        flags = flags | {"split"}
    if "split" in flags or "flex" in flags:
        fast.set_attention_backend(built.module, "split" if "split" in flags else "flex")
    if "compile" in flags:
        if hasattr(built.module, "attention_backend"):
            if built.module.attention_backend == "flex":
                built.module.attention_backend = "sdpa"  # flex is an eager-mode path (fast.compile_model)
                built.notes += "; compiled blocks use masked sdpa"
            fast.compile_model(built.module, "blocks")
        else:
            for block in built.module.transformer_blocks:
                block.compile(dynamic=False)
    return built

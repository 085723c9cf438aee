"""Counts measured on the real modules: torch's FlopCounterMode, and the modules it runs (ours or diffusers').

`measure` runs a module on the meta device and attributes MACs and parameters to module names, so that each
analytic `Count` can be checked against what the code executes; `reference_count` is the matching analytic count.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..config import ratio_for_size
from .costs import COG_TEXT_LEN, PIXART_TEXT_LEN, PT_TEXT_LEN, Cost, latent_size
from .counts import DIT_SPECS, CogVideoXSpec, Count, PixArtSpec, count_cogvideox, count_dit, count_pixart
from .registry import canonical_name, count_model, ptdit_config

LINEAR_OPS = ("aten.mm", "aten.addmm", "aten.convolution", "aten._convolution")


def _sdpa_cpu_flops(q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of CPU flash SDPA (not in torch's registry): QK^T and AV, 2 FLOPs per MAC."""
    *batch, lq, d = q_shape
    return 4 * math.prod(batch) * lq * k_shape[-2] * d


@dataclass(frozen=True)
class Measurement:
    """What FlopCounterMode saw: per-module Costs (exclusive of submodules; block indices dropped) and totals."""

    modules: dict[str, Cost]

    @property
    def cost(self) -> Cost:
        return sum(self.modules.values(), Cost())


def _normalise(path: str) -> str:
    return ".".join(part for part in path.split(".") if not part.isdigit())


def measure(module: nn.Module, *args: Any, **kwargs: Any) -> Measurement:
    """Run `module(*args, **kwargs)` under FlopCounterMode (no grad) and return per-module Costs.

    mm / addmm / convolution count as linear, everything else (bmm, SDPA) as attention; FLOPs / 2 = MACs.
    Parameters are attributed to the module that owns them.
    """
    from torch.utils.flop_counter import FlopCounterMode

    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter, torch.no_grad():
        module(*args, **kwargs)
    counts = {
        name: Counter({str(op): v for op, v in ops.items()})
        for name, ops in counter.get_flop_counts().items()
        if name != "Global"
    }
    out: dict[str, Cost] = {}

    def add(path: str, cost: Cost) -> None:
        key = _normalise(path)
        out[key] = out.get(key, Cost()) + cost

    own = {name: Counter(ops) for name, ops in counts.items()}
    for name, ops in counts.items():  # subtract each module from its nearest counted ancestor
        parts = name.split(".")
        parent = next(
            (".".join(parts[:k]) for k in range(len(parts) - 1, 0, -1) if ".".join(parts[:k]) in counts), None
        )
        if parent is not None:
            own[parent].subtract(ops)
    for name, ops in own.items():
        linear = sum(v for op, v in ops.items() if op in LINEAR_OPS)
        attention = sum(v for op, v in ops.items() if op not in LINEAR_OPS)
        if linear or attention:
            add(name.partition(".")[2], Cost(linear=linear // 2, attention=attention // 2))
    for path, mod in module.named_modules():
        own_params = sum(p.numel() for p in mod.parameters(recurse=False))
        if own_params:
            add(path, Cost(params=own_params))
    return Measurement(out)


def build_reference(
    name: str,
    height: int,
    width: int | None = None,
    frames: int = 1,
    window: tuple[int, int, int] | None = None,
    text_len: int | None = None,
    overrides: dict[str, Any] | None = None,
    depth: int | None = None,
    device: str = "meta",
) -> tuple[nn.Module, tuple, dict]:
    """The real module of a registry model and its inputs: ours (PTDiT) or diffusers' port, random/meta weights.

    Returns (module, args, kwargs) for `measure`. `depth` overrides the number of blocks (the analytic count must
    use the same depth). Peers need diffusers.
    """
    name = canonical_name(name)
    width = height if width is None else width
    lh, lw = latent_size(height, width)
    with torch.device(device):
        if name.startswith("PT-DiT"):
            from ..model import PTDiT

            window = ratio_for_size(height, width, frames) if window is None else window
            extra = dict(overrides or {}, **({"depth": depth} if depth else {}))
            config = ptdit_config(name, window, extra)
            model = PTDiT(config).eval()
            L = PT_TEXT_LEN if text_len is None else text_len
            args = (
                torch.randn(1, config.in_channels, frames, lh, lw),
                torch.full((1,), 500.0),
                torch.randn(1, L, config.caption_channels),
            )
            return model, args, {}
        import diffusers

        if name.startswith("DiT"):
            s = DIT_SPECS[name]
            model = diffusers.DiTTransformer2DModel(
                num_attention_heads=s.num_heads,
                attention_head_dim=s.hidden_size // s.num_heads,
                in_channels=s.in_channels,
                out_channels=2 * s.in_channels,
                num_layers=depth or s.depth,
                sample_size=lh,
                patch_size=s.patch_size,
                num_embeds_ada_norm=s.num_classes,
            ).eval()
            kwargs = dict(
                hidden_states=torch.randn(1, s.in_channels, lh, lw),
                timestep=torch.tensor([500]),
                class_labels=torch.tensor([1]),
            )
            return model, (), kwargs
        if name == "PixArt-alpha":
            s = PixArtSpec()
            model = diffusers.PixArtTransformer2DModel(
                num_attention_heads=s.num_heads,
                attention_head_dim=s.hidden_size // s.num_heads,
                in_channels=s.in_channels,
                out_channels=s.out_channels,
                num_layers=depth or s.depth,
                cross_attention_dim=s.hidden_size,
                sample_size=128,
                caption_channels=s.caption_channels,
            ).eval()
            L = PIXART_TEXT_LEN if text_len is None else text_len
            kwargs = dict(
                hidden_states=torch.randn(1, s.in_channels, lh, lw),
                timestep=torch.tensor([500]),
                encoder_hidden_states=torch.randn(1, L, s.caption_channels),
                added_cond_kwargs={
                    "resolution": torch.tensor([[float(height), float(width)]]),
                    "aspect_ratio": torch.tensor([[height / width]]),
                },
            )
            return model, (), kwargs
        s = CogVideoXSpec()
        L = COG_TEXT_LEN if text_len is None else text_len
        model = diffusers.CogVideoXTransformer3DModel(
            num_layers=depth or s.depth, max_text_seq_length=L
        ).eval()
        kwargs = dict(
            hidden_states=torch.randn(1, frames, s.in_channels, lh, lw),
            timestep=torch.tensor([500]),
            encoder_hidden_states=torch.randn(1, L, s.text_embed_dim),
        )
        return model, (), kwargs


def measure_model(
    name: str, height: int, width: int | None = None, frames: int = 1, **kwargs: Any
) -> Measurement:
    """`measure` of `build_reference(...)` on the meta device (no memory, no compute: shapes only)."""
    module, args, kw = build_reference(name, height, width, frames, **kwargs)
    return measure(module, *args, **kw)


def reference_count(
    name: str, height: int, width: int | None = None, frames: int = 1, **kwargs: Any
) -> Count:
    """The analytic Count of exactly the module `build_reference` builds (DiT in diffusers' layout)."""
    name = canonical_name(name)
    depth = kwargs.pop("depth", None)
    if name.startswith("DiT"):
        spec = dataclasses.replace(DIT_SPECS[name], layout="diffusers", **({"depth": depth} if depth else {}))
        return count_dit(height, width, spec, name=name)
    if name == "PixArt-alpha" and depth:
        return count_pixart(height, width, kwargs.get("text_len") or PIXART_TEXT_LEN, PixArtSpec(depth=depth))
    if name == "CogVideoX-2B" and depth:
        L = kwargs.get("text_len") or COG_TEXT_LEN
        return count_cogvideox(height, width, frames, L, CogVideoXSpec(depth=depth))
    if depth:
        kwargs["overrides"] = dict(kwargs.get("overrides") or {}, depth=depth)
    return count_model(name, height, width, frames, **kwargs)

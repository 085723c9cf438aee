"""Test-only helpers for PT-DiT models (imported by the test modules; pytest puts tests/ on sys.path)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def randomize_zero_init(
    model: nn.Module,
    std: float = 0.02,
    generator: torch.Generator | None = None,
    include: Callable[[str], bool] | None = None,
) -> nn.Module:
    """Give the parts of a freshly built PTDiT that start at zero small random values N(0, std^2), in place.

    A fresh PTDiT zeroes every module marked `zero_init = True` (GIIM's `visual_out`, the shifted-window
    `shift_out`, `final_layer.linear`, every `text_attn.to_out`, the lean block's `visual_attn.to_out`) and the
    parameters a module names in `zero_init_params` (the lean block's `inject_weight`), so its output is exactly
    zero and the parameters before those layers get no gradient. This redraws all of them, and every adaLN
    `scale_shift_table` that is all zeros, so that each branch contributes and each parameter gets a gradient.
    `include(name)` limits it to the modules and parameters whose qualified names it accepts. Values are drawn
    on the CPU in float32 (from `generator`, else the global RNG) and cast, so a float64 copy gets the same
    values. Returns the model.
    """

    def redraw(p: torch.Tensor) -> None:
        values = torch.randn(p.shape, generator=generator, dtype=torch.float32) * std
        p.copy_(values.to(device=p.device, dtype=p.dtype))

    with torch.no_grad():
        for name, module in model.named_modules():
            if getattr(module, "zero_init", False) and (include is None or include(name)):
                for p in module.parameters():
                    redraw(p)
            for param_name in getattr(module, "zero_init_params", ()):
                if include is None or include(f"{name}.{param_name}" if name else param_name):
                    redraw(getattr(module, param_name))
        for name, p in model.named_parameters():
            if (
                name.endswith("scale_shift_table")
                and not bool(p.any())
                and (include is None or include(name))
            ):
                redraw(p)
    return model

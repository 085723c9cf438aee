"""Exponential moving average of the weights: an fp32 shadow, updated after every optimizer step."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class EMA:
    """shadow <- d * shadow + (1 - d) * weights, for every trained (requires_grad) floating-point parameter.

    Before `start` the shadow copies the weights. After it, d = min(decay, (1 + k) / (10 + k)) at the k-th
    averaged step: the usual EMA warmup, so that a short run's average is not dominated by the initial weights
    (0.999^1000 = 37% of them without it). d depends on the step alone, so a resumed run averages exactly alike. The shadow tensors have the parameters' type, so with FSDP2
    they are sharded DTensors like the parameters (the update is elementwise, no communication).
    """

    def __init__(self, model: nn.Module, decay: float, start: int = 0) -> None:
        self.decay = float(decay)
        self.start = int(start)
        self.shadow: dict[str, Tensor] = {
            name: p.detach().float().clone()
            for name, p in model.named_parameters()
            if p.dtype.is_floating_point and p.requires_grad  # trained weights only: a LoRA run's adapter
        }

    def decay_at(self, step: int) -> float:
        k = step - self.start
        return min(self.decay, (1 + k) / (10 + k))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Call after optimizer step `step` (1-based)."""
        pairs = [
            (self.shadow[n], p.detach().float()) for n, p in model.named_parameters() if n in self.shadow
        ]
        shadows, weights = [s for s, _ in pairs], [w for _, w in pairs]
        if step <= self.start:
            torch._foreach_copy_(shadows, weights)
        else:  # one fused kernel per dtype/device group instead of one per parameter (matters on a GPU)
            torch._foreach_lerp_(shadows, weights, 1.0 - self.decay_at(step))

    def state_dict(self) -> dict[str, Tensor]:
        return dict(self.shadow)

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        missing = sorted(set(self.shadow) - set(state))
        if missing:
            raise ValueError(f"EMA state is missing {len(missing)} weights, e.g. {missing[:3]}")
        from .distributed import copy_full_into

        copy_full_into(self.shadow, state)

"""Throughput of the training loop, nanoGPT-style: tokens/s, samples/s and MFU.

FLOPs of one training step = 3 forwards (forward + backward at twice the forward) x 2 FLOPs per MAC x the
analytic forward MACs of `ptdit.complexity.count_ptdit` at the batch's latent geometry and text length, times the
samples of the step on all ranks. Recomputation (gradient checkpointing) is not counted, as in nanoGPT's and
PaLM's MFU. MFU = achieved FLOP/s per device / the peak rate of one device: `train.peak_tflops` when given, else
the dense matmul rate measured once per process on the training device in the compute dtype (bf16 under
`train.bf16`), which on a CPU is the honest ceiling (no vendor figure applies).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import PTDiTConfig

_MEASURED: dict[tuple[str, str, int], float] = {}  # (device, dtype, threads) -> TFLOP/s, measured once


def measured_peak_tflops(device: torch.device, dtype: torch.dtype) -> float:
    """The dense matmul rate (TFLOP/s) of `device` in `dtype`: 8192^3 on a GPU, 512^3 on a CPU (a short probe)."""
    from ..bench.timing import matmul_tflops

    key = (str(device), str(dtype), torch.get_num_threads())
    if key not in _MEASURED:
        _MEASURED[key] = matmul_tflops(device, dtype, size=None if device.type == "cuda" else 512, repeats=5)
    return _MEASURED[key]


@dataclass(frozen=True)
class StepCost:
    """What one training step processes: `samples` on all ranks, each `tokens` latent tokens."""

    samples: int  # per optimizer step, all ranks (batch_size x grad_accum x world_size)
    tokens: int  # latent tokens per sample (frames x h/p x w/p, before any padding)
    forward_macs: int  # the forward's multiply-accumulates per sample (ptdit.complexity)

    @property
    def flops(self) -> int:
        """Training FLOPs of the step, all ranks: 3 forwards x 2 FLOPs per MAC x samples."""
        return 3 * 2 * self.forward_macs * self.samples


def step_cost(config: PTDiTConfig, latent: tuple[int, int, int], text_len: int, samples: int) -> StepCost:
    """The cost of a step on `samples` latents of (frames, height, width) with `text_len` text tokens."""
    from ..complexity.counts import count_ptdit

    frames, height, width = latent
    count = count_ptdit(config, height, width, frames=frames, text_len=text_len, vae_factor=1)
    p = config.patch_size
    return StepCost(samples, frames * (height // p) * (width // p), count.total)


def throughput(
    cost: StepCost, steps: int, seconds: float, peak_tflops: float, devices: int
) -> dict[str, float]:
    """tokens/s, samples/s, achieved TFLOP/s per device and MFU of `steps` optimizer steps taking `seconds`."""
    if steps < 1 or seconds <= 0:
        return {}
    per_s = steps / seconds
    tflops = cost.flops * per_s / devices / 1e12
    return {  # 4 significant digits
        "tokens_per_s": _sig(cost.samples * cost.tokens * per_s),
        "samples_per_s": _sig(cost.samples * per_s),
        "tflops": _sig(tflops),
        "mfu": _sig(tflops / peak_tflops),
    }


def _sig(x: float) -> float:
    return float(f"{x:.4g}")

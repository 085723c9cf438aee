"""The scheduler of `PTDiTPipeline`: diffusers' flow-match schedulers set up to walk the released schedule.

The release (docs/release.md §5.2-5.3, `ptdit.sampling.sample_euler`) samples at t_i = 1000 * shift(1 - i/N, r) with
shift(s, r) = r s / (1 + (r - 1) s), where r is the model's fixed shift (pipeline config `shift`) or the resolution
ratio `ptdit.flow.shift_ratio(H, W, F)`. `FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000,
use_dynamic_shifting=True, time_shift_type="exponential")` given the sigmas 1 - i/N and mu = ln r shifts them by
exp(mu) / (exp(mu) + 1/s - 1) = r s / (1 + (r - 1) s): the same timesteps (to float32 rounding), and its Euler step
x + (sigma_{i+1} - sigma_i) * model_output is the release's step when the model output is eps - x0.

Sign: ptdit models predict v = x0 - eps (`ptdit.flow`); diffusers' flow-match schedulers step with the flow
prediction dx/dsigma = eps - x0 = -v. The pipeline hands the scheduler -v.

The shift lives in the pipeline (r is per call: it follows the size), so a scheduler swapped in with
`from_config(pipe.scheduler.config, ...)` keeps `use_dynamic_shifting` and gets the same mu.
"""

from __future__ import annotations

import inspect
import math
import warnings
from typing import Any

import torch
from torch import Tensor

from .flow import NUM_TRAIN_TIMESTEPS
from .sampling import base_taus

SAMPLERS = ("euler", "flow-euler", "flow-dpm")  # the names `ptdit generate --sampler` takes


def flow_match_scheduler() -> Any:
    """The pipeline's default scheduler: FlowMatchEulerDiscreteScheduler with the shift left to the pipeline (mu)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=NUM_TRAIN_TIMESTEPS, use_dynamic_shifting=True, time_shift_type="exponential"
    )


def scheduler_for_sampler(name: str, config: Any) -> Any:
    """A scheduler by `ptdit generate --sampler` name, built from a scheduler config (e.g. `pipe.scheduler.config`):
    "euler" and "flow-euler": FlowMatchEulerDiscreteScheduler (the release's sampler); "flow-dpm":
    DPMSolverMultistepScheduler with flow sigmas, 2nd order, final sigma 0."""
    from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler

    if name in ("euler", "flow-euler"):
        return FlowMatchEulerDiscreteScheduler.from_config(config)
    if name == "flow-dpm":
        return DPMSolverMultistepScheduler.from_config(
            config,
            use_flow_sigmas=True,
            prediction_type="flow_prediction",
            solver_order=2,
            final_sigmas_type="zero",
        )
    raise ValueError(f"unknown sampler {name!r}; choose one of {SAMPLERS}")


def _own_shift(scheduler: Any) -> float | None:
    """The fixed shift a scheduler applies by itself (FlowMatch `shift`, DPM `flow_shift`), None if it has none."""
    config = scheduler.config
    for key in ("shift", "flow_shift"):
        if key in config:
            return float(config[key])
    return None


def set_flow_timesteps(
    scheduler: Any, num_steps: int, ratio: float, device: torch.device | str | None = None
) -> Tensor:
    """Set `scheduler`'s timesteps for `num_steps` steps shifted by `ratio`; returns them (N,) on the 0..1000 scale.

    Schedulers that take `sigmas` get the release's base sigmas 1 - i/N; schedulers with `use_dynamic_shifting`
    get mu = ln(ratio). A scheduler that can take no mu samples with its own fixed shift: a warning says so when
    that differs from `ratio`.
    """
    if num_steps < 1:
        raise ValueError(f"num_inference_steps must be >= 1, got {num_steps}")
    if not ratio > 0:
        raise ValueError(f"the timestep shift must be > 0, got {ratio}")
    params = inspect.signature(scheduler.set_timesteps).parameters
    kwargs: dict[str, Any] = {}
    if scheduler.config.get("use_dynamic_shifting", False) and "mu" in params:
        kwargs["mu"] = math.log(ratio)
    else:
        own = _own_shift(scheduler)
        if own is not None and abs(own - ratio) > 1e-6 * max(1.0, ratio):
            warnings.warn(
                f"{type(scheduler).__name__} has use_dynamic_shifting off: it samples with its own shift {own:g}, "
                f"not this pipeline's {ratio:g}; build it with use_dynamic_shifting=True (from_config of the "
                "pipeline's scheduler does) to follow the model's shift",
                stacklevel=3,
            )
    if "sigmas" in params:
        scheduler.set_timesteps(sigmas=base_taus(num_steps).numpy(), device=device, **kwargs)
    else:
        scheduler.set_timesteps(num_steps, device=device, **kwargs)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(0)
    return scheduler.timesteps

"""Sampling: the released rectified-flow Euler sampler with classifier-free guidance, and diffusers' flow schedulers.

Convention (ptdit.flow): tau = t / 1000, x_tau = (1 - tau) x0 + tau eps, and the model predicts v = x0 - eps from
model(x_tau, t, emb, mask); only its first `config.in_channels` output channels are v.

* `rflow_timesteps` + `sample_euler`: the release (docs/release.md §5.2-5.3): t_i = (1 - i/N) * 1000 shifted by the
  resolution ratio, x <- x + v * (t_i - t_{i+1}) / 1000 with t_N = 0, CFG batch [cond; uncond].
* `make_scheduler("flow-euler" | "flow-dpm")` + `sample_diffusers`: diffusers' FlowMatchEulerDiscreteScheduler and
  DPMSolverMultistepScheduler (flow sigmas). They expect the model output dx/dsigma = eps - x0 = -v.
* `sample(model, scheduler, ...)` runs either.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .flow import NUM_TRAIN_TIMESTEPS, shift_ratio, shift_timesteps
from .text import check_text_mask

Callback = Callable[[int, Tensor, Tensor], None]  # callback(step index, t (scalar), x after the step)
SCHEDULERS = ("euler", "flow-euler", "flow-dpm")


# ----------------------------------------------------------------------------------------------- timesteps, noise
def base_taus(num_steps: int) -> Tensor:
    """tau_i = 1 - i / N for i = 0..N-1, (N,) float32 (the release's raw timesteps / 1000)."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    return torch.tensor([1.0 - i / num_steps for i in range(num_steps)], dtype=torch.float32)


def rflow_timesteps(
    num_steps: int = 30, height: int = 1024, width: int = 1024, frames: int = 1, scale: float = 1.0
) -> Tensor:
    """The released sampling timesteps (num_steps,) float32 on the 0..1000 scale, decreasing from 1000.

    t_i = 1000 * shift(1 - i/N, ratio) with ratio = flow.shift_ratio(height, width, frames, scale), where height,
    width and frames are the *pixel* sizes. 30 steps at 1024^2 (ratio 2) give 1000, 983.051, ..., 125, 64.516.
    """
    tau = shift_timesteps(base_taus(num_steps), shift_ratio(height, width, frames, scale))
    return tau * NUM_TRAIN_TIMESTEPS


def initial_noise(
    shape: tuple[int, ...] | torch.Size,
    seed: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Standard normal noise of `shape`, drawn on the CPU from torch.Generator().manual_seed(seed), so the same
    seed gives the same noise on every device."""
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float32).to(device=device, dtype=dtype)


# ----------------------------------------------------------------------------------------------- guidance
def pad_text(emb: Tensor, mask: Tensor, length: int) -> tuple[Tensor, Tensor]:
    """Right-pad (B, L, D) embeddings with zeros and (B, L) masks with False to `length` tokens."""
    extra = length - emb.shape[1]
    if extra < 0:
        raise ValueError(f"cannot pad {emb.shape[1]} tokens down to {length}")
    if extra == 0:
        return emb, mask
    emb = torch.cat([emb, emb.new_zeros(emb.shape[0], extra, emb.shape[2])], dim=1)
    mask = torch.cat([mask, mask.new_zeros(mask.shape[0], extra)], dim=1)
    return emb, mask


def _as_mask(mask: Tensor | None, emb: Tensor) -> Tensor:
    if mask is None:
        return torch.ones(emb.shape[:2], dtype=torch.bool, device=emb.device)
    if tuple(mask.shape) != tuple(emb.shape[:2]):
        raise ValueError(f"text mask must be (B, L) = {tuple(emb.shape[:2])}, got {tuple(mask.shape)}")
    return mask.bool() if mask.dtype != torch.bool else mask


def cfg_text_batch(
    emb: Tensor,
    mask: Tensor | None,
    uncond_emb: Tensor | None,
    uncond_mask: Tensor | None,
    cfg_scale: float,
) -> tuple[Tensor, Tensor, bool]:
    """The text batch the model sees: [cond; uncond] (2B, L, D) + (2B, L) when guiding, else (B, L, D) + (B, L).

    A (1, L', D) unconditional embedding is broadcast to the batch; when L' != L the shorter side is padded with
    zeros and mask False. Returns (emb, mask, guided).
    """
    if emb.dim() != 3:
        raise ValueError(f"text embeddings must be (B, L, D), got {tuple(emb.shape)}")
    mask = _as_mask(mask, emb)
    check_text_mask(mask)  # on the host, once per sampling (the model does not check: no sync in forward)
    guided = uncond_emb is not None and cfg_scale != 1.0
    if not guided:
        return emb, mask, False
    B = emb.shape[0]
    if uncond_emb.dim() != 3 or uncond_emb.shape[2] != emb.shape[2] or uncond_emb.shape[0] not in (1, B):
        raise ValueError(
            f"unconditional embeddings must be (1 or B={B}, L, D={emb.shape[2]}), got {tuple(uncond_emb.shape)}"
        )
    uncond_mask = _as_mask(uncond_mask, uncond_emb)
    check_text_mask(uncond_mask)
    uncond_emb, uncond_mask = uncond_emb.expand(B, -1, -1), uncond_mask.expand(B, -1)
    L = max(emb.shape[1], uncond_emb.shape[1])
    emb, mask = pad_text(emb, mask, L)
    uncond_emb, uncond_mask = pad_text(uncond_emb.to(emb), uncond_mask.to(mask.device), L)
    return torch.cat([emb, uncond_emb]), torch.cat([mask, uncond_mask]), True


def _model_dtype(model: nn.Module) -> torch.dtype:
    param = next(model.parameters(), None)
    return param.dtype if param is not None else torch.float32


def guided_velocity(
    model: nn.Module,
    x: Tensor,
    t: Tensor | float,
    text: Tensor,
    text_mask: Tensor,
    guided: bool,
    cfg_scale: float,
) -> Tensor:
    """v = v_u + s (v_c - v_u) at latent x (B, C, F, H, W) and timestep t (0..1000), in float32.

    `text`, `text_mask`, `guided` come from `cfg_text_batch`: with guidance the model runs once on the batch
    [x; x] with [cond; uncond] text. Only the first `model.config.in_channels` output channels are used.
    """
    B = x.shape[0]
    x_in = torch.cat([x, x]) if guided else x
    t_in = torch.as_tensor(t, dtype=torch.float32, device=x.device).reshape(-1)
    t_in = t_in.expand(x_in.shape[0]) if t_in.numel() == 1 else t_in.repeat(2 if guided else 1)
    dtype = _model_dtype(model)
    out = model(x_in.to(dtype), t_in, text.to(dtype), text_mask, return_dict=False)[0]
    v = out[:, : model.config.in_channels].float()
    if not guided:
        return v
    v_cond, v_uncond = v[:B], v[B:]
    return v_uncond + cfg_scale * (v_cond - v_uncond)


def _progress(iterable, enabled: bool, desc: str):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc)


# ----------------------------------------------------------------------------------------------- samplers
@torch.no_grad()
def sample_euler(
    model: nn.Module,
    noise: Tensor,
    emb: Tensor,
    mask: Tensor | None,
    uncond_emb: Tensor | None = None,
    uncond_mask: Tensor | None = None,
    timesteps: Tensor | None = None,
    cfg_scale: float = 4.0,
    progress: bool = False,
    callback: Callback | None = None,
) -> Tensor:
    """The released Euler sampler: noise (B, C, F, H, W) -> latents (B, C, F, H, W) float32.

    `timesteps` (N,) on the 0..1000 scale, decreasing (default: `rflow_timesteps(30)` with no shift, ratio 1).
    Each step x <- x + v * (t_i - t_{i+1}) / 1000 with t_N = 0. cfg_scale 1 or no uncond -> one conditional pass.
    """
    if timesteps is None:
        timesteps = shift_timesteps(base_taus(30), 1.0) * NUM_TRAIN_TIMESTEPS
    timesteps = torch.as_tensor(timesteps, dtype=torch.float32).reshape(-1).cpu()
    text, text_mask, guided = cfg_text_batch(emb, mask, uncond_emb, uncond_mask, cfg_scale)
    t_next = torch.cat([timesteps[1:], timesteps.new_zeros(1)])
    x = noise.float()
    for i in _progress(range(len(timesteps)), progress, "euler"):
        v = guided_velocity(model, x, timesteps[i].to(x.device), text, text_mask, guided, cfg_scale)
        x = x + v * ((timesteps[i] - t_next[i]) / NUM_TRAIN_TIMESTEPS).item()
        if callback is not None:
            callback(i, timesteps[i], x)
    return x


def make_scheduler(name: str, shift: float = 1.0, **kwargs: Any) -> Any:
    """A sampler by name: "euler" (ours, the release), "flow-euler" (diffusers FlowMatchEulerDiscreteScheduler),
    "flow-dpm" (diffusers DPMSolverMultistepScheduler with flow sigmas). `shift` is the timestep shift ratio
    (e.g. `flow.shift_ratio(H, W, F)`; 2.0 at 1024^2); extra kwargs go to the diffusers constructor."""
    if name == "euler":
        if kwargs:
            raise ValueError(f"the 'euler' sampler takes only `shift`, got {sorted(kwargs)}")
        return RFlowEuler(shift=shift)
    if name == "flow-euler":
        from diffusers import FlowMatchEulerDiscreteScheduler

        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, shift=shift, **kwargs)
    if name == "flow-dpm":
        from diffusers import DPMSolverMultistepScheduler

        kwargs = {"solver_order": 2, "final_sigmas_type": "zero", **kwargs}
        return DPMSolverMultistepScheduler(
            num_train_timesteps=NUM_TRAIN_TIMESTEPS,
            use_flow_sigmas=True,
            prediction_type="flow_prediction",
            flow_shift=shift,
            **kwargs,
        )
    raise ValueError(f"unknown sampler {name!r}; choose one of {SCHEDULERS}")


@dataclass(frozen=True)
class RFlowEuler:
    """The released sampler as a scheduler object: Euler on shifted rflow timesteps (see `sample_euler`)."""

    shift: float = 1.0

    def timesteps(self, num_steps: int) -> Tensor:
        """(num_steps,) float32 on the 0..1000 scale."""
        return shift_timesteps(base_taus(num_steps), self.shift) * NUM_TRAIN_TIMESTEPS


@torch.no_grad()
def sample_diffusers(
    model: nn.Module,
    scheduler: Any,
    noise: Tensor,
    emb: Tensor,
    mask: Tensor | None,
    uncond_emb: Tensor | None = None,
    uncond_mask: Tensor | None = None,
    num_steps: int = 30,
    cfg_scale: float = 4.0,
    progress: bool = False,
    callback: Callback | None = None,
) -> Tensor:
    """Sample with a diffusers flow scheduler: noise (B, C, F, H, W) -> latents float32.

    The model sees t = 1000 * sigma_i. Schedulers whose `set_timesteps` takes `sigmas` (FlowMatchEuler) get the
    release's base sigmas 1 - i/N, which they shift by their own `shift`, so `make_scheduler("flow-euler",
    shift=r)` walks exactly `rflow_timesteps` with ratio r. The ptdit velocity v = x0 - eps is handed to the
    scheduler as its flow prediction eps - x0 = -v.
    """
    device = noise.device
    if "sigmas" in inspect.signature(scheduler.set_timesteps).parameters:
        scheduler.set_timesteps(sigmas=base_taus(num_steps).numpy(), device=device)
    else:
        scheduler.set_timesteps(num_steps, device=device)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(0)
    sigmas = scheduler.sigmas.float().cpu()
    text, text_mask, guided = cfg_text_batch(emb, mask, uncond_emb, uncond_mask, cfg_scale)
    x = noise.float()
    for i in _progress(range(len(scheduler.timesteps)), progress, type(scheduler).__name__):
        t = sigmas[i] * NUM_TRAIN_TIMESTEPS
        v = guided_velocity(model, x, t.to(device), text, text_mask, guided, cfg_scale)
        x = scheduler.step(-v, scheduler.timesteps[i], x, return_dict=False)[0].float()
        if callback is not None:
            callback(i, t, x)
    return x


def sample(
    model: nn.Module,
    scheduler: Any,
    noise: Tensor,
    emb: Tensor,
    mask: Tensor | None,
    uncond_emb: Tensor | None = None,
    uncond_mask: Tensor | None = None,
    num_steps: int = 30,
    cfg_scale: float = 4.0,
    progress: bool = False,
    callback: Callback | None = None,
) -> Tensor:
    """Run `scheduler` (from `make_scheduler`): an `RFlowEuler` goes to `sample_euler`, anything else to
    `sample_diffusers`. noise (B, C, F, H, W) -> latents float32."""
    if isinstance(scheduler, RFlowEuler):
        return sample_euler(
            model, noise, emb, mask, uncond_emb, uncond_mask, scheduler.timesteps(num_steps), cfg_scale,
            progress, callback,
        )  # fmt: skip
    return sample_diffusers(
        model, scheduler, noise, emb, mask, uncond_emb, uncond_mask, num_steps, cfg_scale, progress, callback
    )

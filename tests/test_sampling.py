"""Sampling: released timesteps, Euler + CFG, diffusers flow schedulers, seeded noise."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from ptdit import PTDiT, PTDiTConfig
from ptdit.flow import add_noise
from ptdit.sampling import (
    RFlowEuler,
    cfg_text_batch,
    initial_noise,
    make_scheduler,
    rflow_timesteps,
    sample,
    sample_diffusers,
    sample_euler,
)

# diffusers' DPM scheduler trips a numpy-2 deprecation inside set_timesteps; not ours
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

# docs/release.md §5.2: the released fp32 timesteps, 30 steps at 1024^2
RELEASE_TABLE = [
    1000.0, 983.051, 965.517, 947.368, 928.571, 909.091, 888.889, 867.925, 846.154, 823.529,
    800.0, 775.510, 750.0, 723.404, 695.652, 666.667, 636.364, 604.651, 571.429, 536.585,
    500.0, 461.538, 421.053, 378.378, 333.333, 285.714, 235.294, 181.818, 125.0, 64.516,
]  # fmt: skip


def test_rflow_timesteps_match_release_table():
    t = rflow_timesteps(30, 1024, 1024)
    assert t.dtype == torch.float32 and t.shape == (30,)
    torch.testing.assert_close(t, torch.tensor(RELEASE_TABLE), atol=1e-3, rtol=0)
    closed_form = [1000 * 2 * (1 - i / 30) / (1 + (1 - i / 30)) for i in range(30)]  # ratio 2: 2s / (1 + s)
    torch.testing.assert_close(t.double(), torch.tensor(closed_form, dtype=torch.float64), atol=1e-4, rtol=0)


def test_rflow_timesteps_ratio_and_frames():
    torch.testing.assert_close(
        rflow_timesteps(10, 512, 512), torch.arange(10, 0, -1).float() * 100
    )  # ratio 1
    s = 1 - 1 / 4  # second of 4 steps; video of 34 frames at 512^2: ratio sqrt(34 // 17 * 5) = sqrt(10)
    r = math.sqrt(10)
    assert rflow_timesteps(4, 512, 512, frames=34)[1].item() == pytest.approx(
        1000 * r * s / (1 + (r - 1) * s)
    )
    assert rflow_timesteps(4, 512, 512, scale=2.0)[1].item() == pytest.approx(1000 * 2 * s / (1 + s))


def test_initial_noise_is_seeded():
    a, b = initial_noise((2, 4, 1, 8, 8), seed=3), initial_noise((2, 4, 1, 8, 8), seed=3)
    assert torch.equal(a, b) and a.dtype == torch.float32
    assert not torch.equal(a, initial_noise((2, 4, 1, 8, 8), seed=4))
    assert initial_noise((3,), seed=0, dtype=torch.bfloat16).dtype == torch.bfloat16


class ToyFlow(nn.Module):
    """An exact flow for one data point per prompt: the target x0 is the masked mean of the text embedding
    (a scalar, broadcast), so the velocity is v = (x0 - x_t) / tau. Extra output channels carry junk."""

    def __init__(self, in_channels: int = 2) -> None:
        super().__init__()
        self.config = SimpleNamespace(in_channels=in_channels)
        self.dummy = nn.Parameter(torch.zeros(()))
        self.batches: list[int] = []

    def target(self, emb, mask):
        m = mask.float()
        return ((emb.mean(-1) * m).sum(1) / m.sum(1)).view(-1, 1, 1, 1, 1)

    def forward(
        self, x, t, emb, mask, return_dict=True
    ):  # PTDiT's signature: return_dict=False gives a tuple
        self.batches.append(x.shape[0])
        tau = (t / 1000).view(-1, 1, 1, 1, 1)
        v = (self.target(emb, mask) - x) / tau
        out = torch.cat([v, torch.full_like(v, 1e6)], dim=1)
        return SimpleNamespace(sample=out) if return_dict else (out,)


def _text(B=2, L=5, D=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(B, L, D, generator=g)
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[-1, 3:] = False
    return emb, mask


def test_euler_cfg_lands_on_the_guided_target():
    torch.manual_seed(0)
    model = ToyFlow()
    emb, mask = _text()
    uncond, umask = torch.randn(1, 2, 3), torch.tensor([[True, False]])  # other length, broadcast over B
    noise = initial_noise((2, 2, 1, 4, 4), seed=0)
    steps = rflow_timesteps(7, 1024, 1024)
    x = sample_euler(model, noise, emb, mask, uncond, umask, steps, cfg_scale=4.0)
    x_c = model.target(emb, mask)
    x_u = model.target(*cfg_text_batch(uncond.expand(2, -1, -1), umask.expand(2, -1), None, None, 1.0)[:2])
    torch.testing.assert_close(x, (x_u + 4.0 * (x_c - x_u)).expand_as(x), atol=1e-5, rtol=1e-5)
    assert model.batches == [4] * 7  # one [cond; uncond] pass per step


def test_euler_without_guidance_is_one_conditional_pass():
    model = ToyFlow()
    emb, mask = _text()
    noise = initial_noise((2, 2, 1, 4, 4), seed=1)
    x = sample_euler(model, noise, emb, mask, torch.zeros(1, 5, 3), None, rflow_timesteps(5), cfg_scale=1.0)
    torch.testing.assert_close(x, model.target(emb, mask).expand_as(x), atol=1e-5, rtol=1e-5)
    assert model.batches == [2] * 5
    x2 = sample_euler(model, noise, emb, mask, None, None, rflow_timesteps(5), cfg_scale=4.0)
    torch.testing.assert_close(x, x2)


def test_euler_step_is_the_release_update():
    """One step of sample_euler by hand: x + v * (t0 - t1) / 1000 with v from [cond; uncond] guidance."""
    torch.manual_seed(0)
    model = ToyFlow()
    emb, mask = _text()
    uncond, umask = torch.randn(2, 5, 3), torch.ones(2, 5, dtype=torch.bool)
    noise = torch.randn(2, 2, 1, 4, 4)
    t = torch.tensor([1000.0, 600.0])
    seen = []
    sample_euler(
        model, noise, emb, mask, uncond, umask, t, cfg_scale=3.0, callback=lambda i, ti, x: seen.append(x)
    )
    out = model(
        torch.cat([noise, noise]),
        torch.full((4,), 1000.0),
        torch.cat([emb, uncond]),
        torch.cat([mask, umask]),
    ).sample
    v_c, v_u = out[:2, :2], out[2:, :2]
    torch.testing.assert_close(seen[0], noise + (v_u + 3.0 * (v_c - v_u)) * 0.4)
    assert len(seen) == 2


def test_cfg_text_batch_pads_the_shorter_side():
    emb, mask = torch.randn(2, 3, 4), torch.ones(2, 3, dtype=torch.bool)
    text, tmask, guided = cfg_text_batch(
        emb, mask, torch.randn(1, 6, 4), torch.ones(1, 6, dtype=torch.bool), 2.0
    )
    assert guided and text.shape == (4, 6, 4) and tmask.shape == (4, 6)
    assert torch.equal(text[:2, 3:], torch.zeros(2, 3, 4)) and not tmask[:2, 3:].any() and tmask[2:].all()
    with pytest.raises(ValueError, match="unconditional"):
        cfg_text_batch(emb, mask, torch.randn(3, 6, 4), None, 2.0)


def _tiny_ptdit():
    torch.manual_seed(0)
    cfg = PTDiTConfig(depth=1, hidden_size=32, num_heads=2, in_channels=4, out_channels=8,
                      caption_channels=8, window=(1, 2, 2))  # fmt: skip
    model = PTDiT(cfg).eval()
    with torch.no_grad():  # leave the zero-initialised (adaLN-zero) init: random weights everywhere
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def test_flow_euler_scheduler_reproduces_sample_euler():
    model = _tiny_ptdit()
    emb, mask = torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.bool)
    mask[0, 2:] = False
    uncond, umask = torch.randn(1, 3, 8), torch.tensor([[True, False, False]])
    noise = initial_noise((2, 4, 1, 8, 8), seed=0)
    ours = sample_euler(model, noise, emb, mask, uncond, umask, rflow_timesteps(6, 1024, 1024), cfg_scale=4.0)
    sched = make_scheduler("flow-euler", shift=2.0)
    theirs = sample_diffusers(model, sched, noise, emb, mask, uncond, umask, num_steps=6, cfg_scale=4.0)
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)
    assert (ours - noise).abs().mean() > 0.1  # the model did move the sample
    via_sample = sample(model, make_scheduler("euler", shift=2.0), noise, emb, mask, uncond, umask, 6, 4.0)
    torch.testing.assert_close(via_sample, ours, atol=0, rtol=0)


def test_flow_dpm_scheduler_solves_the_exact_flow():
    """DPM-Solver++ on flow sigmas with the sign conversion: an exact x0 prediction must land on x0."""
    model = ToyFlow()
    emb, mask = _text()
    noise = initial_noise((2, 2, 1, 4, 4), seed=2)
    sched = make_scheduler("flow-dpm", shift=2.0)
    x = sample_diffusers(model, sched, noise, emb, mask, None, None, num_steps=8, cfg_scale=1.0)
    torch.testing.assert_close(x, model.target(emb, mask).expand_as(x), atol=1e-4, rtol=1e-4)
    assert len(model.batches) == 8


def test_flow_dpm_and_euler_agree_on_a_smooth_model():
    model = _tiny_ptdit()
    emb, mask = torch.randn(1, 4, 8), torch.ones(1, 4, dtype=torch.bool)
    noise = initial_noise((1, 4, 1, 8, 8), seed=5)
    fine = sample_euler(model, noise, emb, mask, None, None, rflow_timesteps(60, 512, 512), cfg_scale=1.0)
    dpm = sample(model, make_scheduler("flow-dpm"), noise, emb, mask, None, None, num_steps=15, cfg_scale=1.0)
    coarse = sample_euler(model, noise, emb, mask, None, None, rflow_timesteps(4, 512, 512), cfg_scale=1.0)
    assert (dpm - fine).abs().max() < 0.5 * (coarse - fine).abs().max()


def test_progress_bar_and_callback(capsys):
    model = ToyFlow()
    emb, mask = _text()
    calls = []
    sample_euler(model, torch.randn(2, 2, 1, 2, 2), emb, mask, None, None, rflow_timesteps(3), progress=True,
                 callback=lambda i, t, x: calls.append((i, float(t))))  # fmt: skip
    assert [c[0] for c in calls] == [0, 1, 2] and calls[0][1] == 1000.0
    assert "3/3" in capsys.readouterr().err


def test_make_scheduler_names():
    assert isinstance(make_scheduler("euler", shift=2.0), RFlowEuler)
    assert make_scheduler("flow-dpm", shift=3.0).config.flow_shift == 3.0
    with pytest.raises(ValueError, match="unknown sampler"):
        make_scheduler("ddim")


def test_training_noise_convention_matches_sampler():
    """x_t from flow.add_noise at t then one exact Euler step to 0 recovers x0 (sign of v = x0 - eps)."""
    x0, eps = torch.randn(1, 1, 1, 2, 2), torch.randn(1, 1, 1, 2, 2)
    x_t = add_noise(x0, eps, torch.tensor([0.7]))
    model = ToyFlow(in_channels=1)
    model.target = lambda emb, mask: x0  # exact flow towards x0
    emb, mask = _text(B=1)
    out = sample_euler(model, x_t, emb, mask, None, None, torch.tensor([700.0]), cfg_scale=1.0)
    torch.testing.assert_close(out, x0)

"""DiT/PixArt training defaults: a new model outputs zero, out_channels = in_channels, GIIM enters through a
zero-initialised layer, and pad=True keeps padded tokens out of the proxies and out of attention."""

import pytest
import torch

from ptdit import PTDiT, PTDiTConfig
from ptdit.layout import proxy_pool, proxy_weights, valid_tokens, window_partition

VARIANTS = [
    dict(),
    dict(block="lean"),
    dict(attention="full"),
    dict(injection="linear"),
    dict(injection="interpolate"),
    dict(block="lean", injection="linear"),
    dict(block="lean", injection="interpolate"),
    dict(proxy="topleft", use_shift_window=False),
]
IDS = [",".join(f"{k}={v}" for k, v in d.items()) or "official" for d in VARIANTS]


def tiny(**kw) -> PTDiTConfig:
    base = dict(depth=2, hidden_size=32, num_heads=4, caption_channels=16, window=(1, 2, 2))
    return PTDiTConfig(**{**base, **kw})


def inputs(B=2, F=1, H=16, W=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(B, 4, F, H, W, generator=g),
        torch.rand(B, generator=g) * 1000,
        torch.randn(B, 5, 16, generator=g),
    )


def randomise(modules_and_params, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in modules_and_params:
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def zero_init_params(model):
    """Every parameter that `initialize_weights` sets to zero."""
    out = []
    for m in model.modules():
        if getattr(m, "zero_init", False):
            out += [m.weight, m.bias]
        out += [getattr(m, name) for name in getattr(m, "zero_init_params", ())]
    return out


@pytest.mark.parametrize("overrides", VARIANTS, ids=IDS)
def test_a_new_model_outputs_zero(overrides):
    model = PTDiT(tiny(**overrides))
    out = model(*inputs()).sample
    assert out.shape == (2, 4, 1, 16, 16)
    assert torch.equal(out, torch.zeros_like(out))
    out.sum().backward()  # the final layer still learns: its gradient is non-zero
    assert model.final_layer.linear.weight.grad.abs().sum() > 0


def test_out_channels_default_and_release_layout():
    assert tiny().out_channels == 4 and tiny(in_channels=3).out_channels == 3
    assert PTDiTConfig.from_dict(tiny().to_dict()).out_channels == 4
    xl = PTDiTConfig.from_preset("PT-DiT-XL")
    assert (xl.in_channels, xl.out_channels) == (4, 8)  # the released learned-sigma layout
    assert PTDiTConfig.from_preset("PT-DiT-S").out_channels == 4


@pytest.mark.parametrize(
    "overrides", [v for v in VARIANTS if v.get("attention") != "full"], ids=IDS[:2] + IDS[3:]
)
def test_giim_enters_through_a_zero_initialised_layer(overrides):
    """At init the proxy path does not reach the output; once the zero layers are randomised it does."""
    model = PTDiT(tiny(**overrides)).eval()
    randomise([model.final_layer.linear.weight] + [b.text_attn.to_out.weight for b in model.blocks])
    x, t, y = inputs()

    def change_from_proxy_attention():
        with torch.no_grad():
            ref = model(x, t, y).sample
            saved = [b.proxy_attn.to_v.weight.clone() for b in model.blocks]
            g = torch.Generator().manual_seed(2)
            for b in model.blocks:
                w = b.proxy_attn.to_v.weight
                w.add_(torch.randn(w.shape, generator=g))
            out = model(x, t, y).sample
            for b, w in zip(model.blocks, saved):
                b.proxy_attn.to_v.weight.copy_(w)
        return (out - ref).abs().max().item()

    assert change_from_proxy_attention() == 0.0
    randomise(zero_init_params(model), seed=1)
    assert change_from_proxy_attention() > 1e-4


# ------------------------------------------------------------------------------------------- padding
def test_padded_proxy_is_the_mean_of_its_valid_tokens():
    grid, valid, window = (1, 6, 6), (1, 5, 3), (1, 2, 2)  # the last row and three columns are padding
    keep = valid_tokens(grid, valid, window)
    x = torch.randn(2, *grid, 8, dtype=torch.float64)
    xw = window_partition(x, window)
    proxies = proxy_pool(xw, "mean", weights=proxy_weights(keep))
    for w in range(keep.shape[0]):
        tokens = [xw[:, w, i] for i in range(keep.shape[1]) if keep[w, i]]
        expected = torch.stack(tokens).mean(0) if tokens else torch.zeros(2, 8, dtype=torch.float64)
        torch.testing.assert_close(proxies[:, w], expected)
    assert not keep[-1].any() and keep[0].all()  # (1, 6, 6) / (1, 2, 2): window 8 is all padding


@pytest.mark.parametrize(
    "overrides,F,H,W",
    [
        (dict(), 1, 10, 6),
        (dict(block="lean"), 1, 10, 6),
        (dict(injection="linear"), 1, 6, 10),
        (dict(attention="full"), 1, 10, 6),
        (dict(window=(4, 2, 2)), 5, 8, 6),
    ],
    ids=["official", "lean", "linear", "full", "video"],
)
def test_padded_tokens_do_not_reach_valid_tokens(overrides, F, H, W):
    """Valid outputs of every block do not depend on what the padded tokens hold: no padded token is in a
    proxy mean and no valid query gives a padded key any attention weight."""
    model = PTDiT(tiny(pad=True, depth=4, **overrides)).eval()
    randomise(zero_init_params(model))
    p = model.config.patch_size
    x_in, t, y = inputs(F=F, H=H, W=W)
    padded, size = model._prepare_input(x_in)
    grid = (padded.shape[2], padded.shape[3] // p, padded.shape[4] // p)
    valid = (F, -(-H // p), -(-W // p))
    assert grid != valid
    ctx = model.block_context(padded, None, size, 5)
    keep = valid_tokens(grid, valid, model.config.window)  # (nW, n)
    t6 = model.t_block(torch.nn.functional.silu(model.t_embedder(t))).unflatten(1, (6, 32))
    yy = model.y_embedder(y)
    g = torch.Generator().manual_seed(3)
    h = torch.randn(2, *keep.shape, 32, generator=g)
    noise = torch.randn(h.shape, generator=g) * 10
    h2 = torch.where(keep[None, :, :, None], h, noise)  # different padded tokens, the same valid ones
    with torch.no_grad():
        for block in model.blocks:
            out, out2 = block(h, t6, yy, ctx), block(h2, t6, yy, ctx)
            torch.testing.assert_close(out[:, keep], out2[:, keep], rtol=1e-5, atol=1e-5)
            assert torch.isfinite(out).all()
            h, h2 = out, out2
    # without the padding masks the padded tokens do reach the valid ones
    bare = model.block_context(padded, None, tuple(padded.shape[2:]), 5)  # as if nothing were padding
    with torch.no_grad():
        h = torch.randn(2, *keep.shape, 32, generator=g)
        h2 = torch.where(keep[None, :, :, None], h, noise)
        block = model.blocks[0]
        assert not torch.allclose(block(h, t6, yy, bare)[:, keep], block(h2, t6, yy, bare)[:, keep])


def test_padded_model_output_is_cropped_and_finite():
    model = PTDiT(tiny(pad=True, window=(4, 2, 2)))
    randomise(zero_init_params(model))
    out = model(*inputs(F=5, H=10, W=6)).sample
    assert out.shape == (2, 4, 5, 10, 6) and torch.isfinite(out).all()

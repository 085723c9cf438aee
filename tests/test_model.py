"""PT-DiT model core: shapes, naive references, the three released bugs, locality, save/load."""

import copy
import math
import sys
from pathlib import Path

import pytest
import torch

import ptdit.attention as attention_module
from ptdit import PTDiT, PTDiTConfig
from ptdit.blocks import BlockContext
from ptdit.layers import sincos_pos_embed_3d
from ptdit.layout import window_merge, window_partition

sys.path.insert(0, str(Path(__file__).parent))
from model_helpers import randomize_zero_init  # noqa: E402

BLOCKS = ["official", "lean"]


def tiny(block="official", **kw) -> PTDiTConfig:
    base = dict(depth=2, hidden_size=32, num_heads=4, caption_channels=16, window=(1, 2, 2), block=block)
    base.update(kw)
    return PTDiTConfig(**base)


def randomise_zero_linears(model: PTDiT, seed: int = 0) -> PTDiT:
    """Give the zero-initialised layers random values so that every branch contributes."""
    return randomize_zero_init(model, std=0.2, generator=torch.Generator().manual_seed(seed))


def inputs(B=2, F=1, H=16, W=16, L=5, C=4, caption=16, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, C, F, H, W, generator=g, dtype=dtype)
    y = torch.randn(B, L, caption, generator=g, dtype=dtype)
    t = torch.rand(B, generator=g, dtype=dtype) * 1000
    return x, t, y


# ------------------------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize(
    "F,H,W,window",
    [(1, 16, 16, (1, 2, 2)), (1, 16, 24, (1, 4, 2)), (8, 8, 8, (4, 2, 2)), (8, 16, 16, (1, 4, 4))],
    ids=["image", "image-nonsquare", "video", "multiview-8-views"],
)
def test_output_shapes(block, F, H, W, window):
    model = randomise_zero_linears(PTDiT(tiny(block, window=window)))
    x, t, y = inputs(F=F, H=H, W=W)
    out = model(x, t, y).sample
    assert out.shape == (2, 4, F, H, W)  # out_channels defaults to in_channels
    assert torch.isfinite(out).all()


def test_four_dim_image_input_and_scalar_timestep():
    model = randomise_zero_linears(PTDiT(tiny()))  # a new model outputs zero: the comparison would be empty
    x, t, y = inputs()
    out4 = model(x[:, :, 0], 500.0, y).sample
    assert out4.shape == (2, 4, 16, 16)
    assert torch.allclose(out4, model(x, torch.full((2,), 500.0), y).sample[:, :, 0])


@pytest.mark.parametrize(
    "overrides",
    [
        dict(proxy="random"),
        dict(proxy="topleft"),
        dict(injection="interpolate"),
        dict(injection="linear"),
        dict(use_giim=False),
        dict(use_window_attention=False),
        dict(use_shift_window=False),
        dict(use_window_attention=False, use_shift_window=False),
        dict(attention="full"),
        dict(block="lean", use_shift_window=False),
    ],
    ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()),
)
def test_variants_run_and_train(overrides):
    """Once the zero-initialised layers are random, every trainable parameter gets a finite, non-zero gradient.

    The one exception is each attention's key bias: it adds the same q.b_k to every logit of a query, which
    softmax ignores, so its gradient is zero up to rounding (checked to be tiny instead)."""
    torch.manual_seed(0)
    model = randomize_zero_init(PTDiT(tiny(**overrides)), generator=torch.Generator().manual_seed(0))
    x, t, y = inputs()
    out = model(x, t, y).sample
    out.square().mean().backward()
    assert out.shape == (2, 4, 1, 16, 16)
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert [n for n, g in grads.items() if g is None] == []
    assert [n for n, g in grads.items() if not torch.isfinite(g).all()] == []
    norms = {n: g.norm().item() for n, g in grads.items()}
    key_bias = {n for n in norms if n.endswith("to_k.bias")}
    assert key_bias and [n for n, v in norms.items() if v == 0 and n not in key_bias] == []
    assert max(norms[n] for n in key_bias) < 1e-4 * max(norms.values())


def test_config_validation_and_presets():
    cfg = PTDiTConfig.from_preset("PT-DiT-XL")
    assert (cfg.depth, cfg.hidden_size, cfg.num_heads) == (28, 1152, 16)
    assert PTDiTConfig.from_preset("PT-DiT/S", window=(1, 2, 2)).window == (1, 2, 2)
    assert PTDiTConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="known presets"):
        PTDiTConfig.from_preset("PT-DiT-XXL")
    with pytest.raises(ValueError, match="valid fields"):
        PTDiTConfig.from_preset("PT-DiT-S", hidden=3)
    with pytest.raises(ValueError, match="divide by num_heads"):
        tiny(num_heads=5)
    with pytest.raises(ValueError, match="proxy="):
        tiny(proxy="median")


def test_ratio_for_size():
    from ptdit import ratio_for_size

    assert [ratio_for_size(s) for s in (256, 512, 1024, 2048)] == [
        (1, 2, 2),
        (1, 4, 4),
        (1, 8, 8),
        (1, 16, 16),
    ]
    assert ratio_for_size(512, frames=12) == (4, 4, 4)
    for s in (256, 512, 1024, 2048):  # 64 windows at every size
        w = ratio_for_size(s)
        assert (s // 16 // w[1]) * (s // 16 // w[2]) == 64


# ------------------------------------------------------------------------------------------- sizes
def test_bad_size_names_nearest_valid_sizes_and_pad_crops():
    model = PTDiT(tiny(window=(1, 2, 2)))  # latent sizes must be multiples of 2 * 2 = 4
    x, t, y = inputs(H=18, W=16)
    with pytest.raises(ValueError, match=r"latent height 18 is not a multiple of 4: use 16 or 20.*pad=True"):
        model(x, t, y)
    padded = PTDiT(tiny(window=(1, 2, 2), pad=True))
    padded.load_state_dict(model.state_dict())
    out = padded(x, t, y).sample
    assert out.shape == (2, 4, 1, 18, 16)
    video = PTDiT(tiny(window=(4, 2, 2), pad=True))
    assert video(*inputs(F=5, H=8, W=8)).sample.shape == (2, 4, 5, 8, 8)
    with pytest.raises(ValueError, match="channels"):
        model(torch.randn(1, 3, 1, 16, 16), t[:1], y[:1])
    with pytest.raises(ValueError, match="encoder_hidden_states"):
        model(x[:, :, :, :16], t, torch.randn(2, 5, 7))


@pytest.mark.parametrize("block", BLOCKS)
def test_two_resolutions_in_a_row(block):
    model = randomise_zero_linears(PTDiT(tiny(block, window=(1, 2, 2)))).eval()
    a, ta, ya = inputs(H=16, W=16)
    b, tb, yb = inputs(H=24, W=32, seed=1)
    out_a = model(a, ta, ya).sample
    out_b = model(b, tb, yb).sample  # a stale shift mask or permutation from the first shape would break this
    fresh = copy.deepcopy(model)
    assert torch.equal(out_b, fresh(b, tb, yb).sample)
    assert torch.equal(out_a, model(a, ta, ya).sample)


# ------------------------------------------------------------------------------------------- bug 1: timesteps
@pytest.mark.parametrize("block", BLOCKS + ["full"])
def test_mixed_timesteps_each_sample_gets_its_own_output(block):
    cfg = tiny("official", attention="full") if block == "full" else tiny(block)
    model = randomise_zero_linears(PTDiT(cfg)).double().eval()
    x, _, y = inputs(B=3, dtype=torch.float64)
    t = torch.tensor([1.0, 500.0, 999.0], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    batched = model(x, t, y, mask).sample
    for i in range(3):
        single = model(x[i : i + 1], t[i : i + 1], y[i : i + 1], mask[i : i + 1]).sample
        assert torch.allclose(batched[i : i + 1], single, atol=1e-10), i


# ------------------------------------------------------------------------------------------- text mask
@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("numerics", ["default", "release"])
def test_text_padding_beyond_mask_does_not_change_output(block, numerics):
    model = randomise_zero_linears(PTDiT(tiny(block, numerics=numerics))).double().eval()
    x, t, y = inputs(dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]], dtype=torch.bool)
    y2 = y.clone()
    y2[0, 3:] = torch.randn(2, 16, dtype=torch.float64) * 10
    y2[1, 2:] = torch.randn(3, 16, dtype=torch.float64) * 10
    assert torch.allclose(model(x, t, y, mask).sample, model(x, t, y2, mask).sample, atol=1e-10)
    assert not torch.allclose(
        model(x, t, y).sample, model(x, t, y2).sample
    )  # without the mask the padding matters
    assert torch.allclose(model(x, t, y[:, :3], mask[:, :3]).sample, model(x, t, y, mask).sample, atol=1e-10)


@pytest.mark.parametrize("numerics", ["default", "release"])
def test_forward_makes_no_host_sync_even_for_an_all_masked_text_row(monkeypatch, numerics):
    """An all-masked row is checked on the host by the pipeline and the trainer (tests/test_reliability.py),
    not in forward: after a warm-up (the layout caches), forward reads no tensor value into Python."""
    model = PTDiT(tiny(numerics=numerics)).eval()
    x, t, y = inputs()
    mask = torch.tensor([[1, 1, 0, 0, 0], [0, 0, 0, 0, 0]])
    with torch.no_grad():
        model(x, t, y, mask)

        def sync(*args, **kwargs):
            raise AssertionError("a host sync inside forward")

        for name in ("__bool__", "item", "tolist", "__int__", "__float__"):
            monkeypatch.setattr(torch.Tensor, name, sync)
        out = model(x, t, y, mask).sample
        monkeypatch.undo()
    assert out.shape == x.shape and torch.isfinite(out[0]).all()


# ------------------------------------------------------------------------------------------- bug 2: positions
def _sincos(d, pos):
    omega = [1.0 / 10000 ** (k / (d / 2)) for k in range(d // 2)]
    return [math.sin(pos * o) for o in omega] + [math.cos(pos * o) for o in omega]


def test_positions_on_non_square_grid():
    D = 32
    pe = sincos_pos_embed_3d((2, 3, 5), D)  # (F, H, W, D) with H != W
    assert pe.shape == (2, 3, 5, D)
    for f, h, w in [(0, 0, 0), (1, 2, 4), (0, 1, 3), (1, 2, 0)]:
        expected = _sincos(D // 4, f) + _sincos(3 * D // 8, w) + _sincos(3 * D // 8, h)
        assert torch.allclose(pe[f, h, w], torch.tensor(expected), atol=1e-6), (f, h, w)
    # images: the time part is the encoding of frame 0, zeros then ones
    assert torch.equal(pe[0, 0, 0, : D // 8], torch.zeros(D // 8))
    assert torch.equal(pe[0, 0, 0, D // 8 : D // 4], torch.ones(D // 8))


# ------------------------------------------------------------------------------------------- attention references
def _naive_local_attention(attn, x_grid, window, shift):
    """fp64 loop over the allowed (query, key) pairs of (shifted) window attention. x_grid: (F, H, W, D).

    Swin's rule, written from its definition: the grid is rolled back by `shift` (the token at c lands at
    (c - shift) mod size), cut into windows, and a window that wraps around the border holds tokens from both
    ends of an axis, which must not attend to each other: two tokens attend iff they share a rolled window and,
    on every axis, both or neither came around the border (c < shift)."""
    F_, H, W, D = x_grid.shape
    heads = attn.num_heads
    d = D // heads
    sizes = (F_, H, W)
    coords = [(f, h, w) for f in range(F_) for h in range(H) for w in range(W)]

    def key_of(c):
        rolled_window = tuple(((c[a] - shift[a]) % sizes[a]) // window[a] for a in range(3))
        return rolled_window, tuple(c[a] < shift[a] for a in range(3))

    q = attn.to_q(x_grid).view(F_, H, W, heads, d)
    k = attn.to_k(x_grid).view(F_, H, W, heads, d)
    v = attn.to_v(x_grid).view(F_, H, W, heads, d)
    out = torch.zeros(F_, H, W, heads, d, dtype=x_grid.dtype)
    for cq in coords:
        allowed = [ck for ck in coords if key_of(ck) == key_of(cq)]
        for hd in range(heads):
            scores = torch.stack([q[cq][hd] @ k[ck][hd] for ck in allowed]) / math.sqrt(d)
            weights = torch.softmax(scores, dim=0)
            out[cq][hd] = sum(w_ * v[ck][hd] for w_, ck in zip(weights, allowed))
    return attn.to_out(out.reshape(F_, H, W, D))


@pytest.mark.parametrize(
    "grid,window", [((1, 4, 6), (1, 2, 2)), ((4, 4, 4), (2, 2, 2)), ((1, 8, 4), (1, 4, 4))]
)
def test_window_and_shifted_window_attention_equal_naive_reference(grid, window):
    model = PTDiT(tiny(window=window)).double()
    block = model.blocks[0]
    torch.manual_seed(0)
    x = torch.randn(1, *grid, 32, dtype=torch.float64)
    xw = window_partition(x, window)
    lat = torch.zeros(1, 4, grid[0], grid[1] * 2, grid[2] * 2, dtype=torch.float64)  # patch 2
    ctx = model.block_context(lat, None, tuple(lat.shape[2:]), 5)
    with torch.no_grad():
        win = window_merge(block.window_attn(xw), grid, window)[0]
        ref = _naive_local_attention(block.window_attn, x[0], window, (0, 0, 0))
        assert torch.allclose(win, ref, atol=1e-10)
        shifted = window_merge(
            block.shifted_window_attention(xw, block.shift_window_attn, ctx), grid, window
        )[0]
        shift = tuple(p // 2 for p in window)
        ref = _naive_local_attention(block.shift_window_attn, x[0], window, shift)
        assert torch.allclose(shifted, ref, atol=1e-10)


def _layer_norm(v, eps):
    """LayerNorm of one vector, without affine parameters (biased variance, as torch)."""
    mean = sum(v) / len(v)
    var = sum((e - mean) ** 2 for e in v) / len(v)
    return (v - mean) / torch.sqrt(var + eps)


def _linear(layer, v):
    return layer.weight @ v + layer.bias


def _naive_attention(attn, queries, keys):
    """fp64 multi-head attention of each query vector over all key vectors, one head and one pair at a time."""
    D = queries[0].shape[0]
    d = D // attn.num_heads
    k = [_linear(attn.to_k, c) for c in keys]
    v = [_linear(attn.to_v, c) for c in keys]
    out = []
    for x in queries:
        q = _linear(attn.to_q, x)
        o = torch.zeros(D, dtype=torch.float64)
        for hd in range(attn.num_heads):
            s = slice(hd * d, (hd + 1) * d)
            scores = torch.stack([q[s] @ kj[s] for kj in k]) / math.sqrt(d)
            weights = torch.softmax(scores, dim=0)
            o[s] = sum(w_ * vj[s] for w_, vj in zip(weights, v))
        out.append(_linear(attn.to_out, o))
    return out


def _naive_giim(block, x_grid, window):
    """GIIM (mean proxies, cross-attention injection) by loops on one (F, H, W, D) grid, in fp64.

    The proxy of a window is the mean of its tokens; the proxies attend to each other (pre-LN, residual:
    p + attn(LN(p))); then every token's LN is a query against the LN of all proxies. Returns (F, H, W, D), before
    the block's output linear."""
    F_, H, W, _ = x_grid.shape
    eps = block.eps
    coords = [(f, h, w) for f in range(F_) for h in range(H) for w in range(W)]
    members = {}
    for c in coords:
        members.setdefault(tuple(c[a] // window[a] for a in range(3)), []).append(c)
    proxies = [sum(x_grid[c] for c in cs) / len(cs) for cs in members.values()]
    normed = [_layer_norm(p, eps) for p in proxies]
    proxies = [p + a for p, a in zip(proxies, _naive_attention(block.proxy_attn, normed, normed))]
    keys = [_layer_norm(p, eps) for p in proxies]
    queries = [_layer_norm(x_grid[c], eps) for c in coords]
    out = torch.zeros_like(x_grid)
    for c, o in zip(coords, _naive_attention(block.visual_attn, queries, keys)):
        out[c] = o
    return out


@pytest.mark.parametrize("block_kind", BLOCKS)
@pytest.mark.parametrize(
    "grid,window",
    [((1, 4, 6), (1, 2, 2)), ((4, 4, 4), (2, 2, 2)), ((8, 2, 4), (4, 1, 2))],
    ids=["image", "video", "video-4-frame-windows"],
)
def test_giim_equals_naive_reference(block_kind, grid, window):
    model = PTDiT(tiny(block_kind, window=window)).double()
    block = model.blocks[1]
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # random weights and biases everywhere, the zero-initialised ones included
        for p in block.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.3)
    x = torch.randn(2, *grid, 32, generator=g, dtype=torch.float64)
    ctx = BlockContext(grid=grid, window=window, text_mask=None)
    with torch.no_grad():
        out = window_merge(block.giim(window_partition(x, window), ctx), grid, window)
        for b in range(2):
            ref = _naive_giim(block, x[b], window)
            assert torch.allclose(out[b], ref, atol=1e-10, rtol=0), (out[b] - ref).abs().max()
        # the reference does mix windows: changing the last token changes the first token's output (a change
        # along the all-ones direction would not: every LayerNorm removes it)
        x2 = x[0].clone()
        x2[-1, -1, -1] += torch.randn(32, generator=g, dtype=torch.float64)
        assert (
            _naive_giim(block, x2, window)[0, 0, 0] - _naive_giim(block, x[0], window)[0, 0, 0]
        ).abs().max() > 1e-3


def test_release_numerics_masks_equal_boolean_masks():
    base = randomise_zero_linears(PTDiT(tiny(window=(1, 4, 4)))).double().eval()
    release = PTDiT(tiny(window=(1, 4, 4), numerics="release")).double().eval()
    release.load_state_dict(base.state_dict())
    x, t, y = inputs(H=24, W=24, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    out = release(x, t, y, mask).sample
    assert out.dtype == torch.float32  # the release returns fp32
    assert torch.allclose(base(x, t, y, mask).sample.float(), out, atol=1e-6)


def test_full_attention_equals_naive_reference():
    model = PTDiT(tiny(attention="full")).double()
    attn = model.blocks[0].attn
    torch.manual_seed(0)
    x = torch.randn(1, 12, 32, dtype=torch.float64)
    d = 32 // attn.num_heads
    q, k, v = (proj(x[0]).view(12, attn.num_heads, d) for proj in (attn.to_q, attn.to_k, attn.to_v))
    out = torch.zeros(12, attn.num_heads, d, dtype=torch.float64)
    for i in range(12):
        for h in range(attn.num_heads):
            w = torch.softmax(torch.stack([q[i, h] @ k[j, h] for j in range(12)]) / math.sqrt(d), 0)
            out[i, h] = sum(w[j] * v[j, h] for j in range(12))
    with torch.no_grad():
        assert torch.allclose(attn(x)[0], attn.to_out(out.reshape(12, 32)), atol=1e-10)


def test_every_attention_goes_through_the_chokepoint(monkeypatch):
    calls = []
    real = attention_module.attention

    def counting(*args, **kw):
        calls.append(args[0].shape)
        return real(*args, **kw)

    monkeypatch.setattr(attention_module, "attention", counting)
    model = PTDiT(tiny(depth=3))
    model(*inputs())
    assert len(calls) == 3 * 5  # proxy self, token->proxy, window, shifted window, text: per block
    calls.clear()
    PTDiT(tiny(depth=4, block="lean"))(*inputs())
    assert len(calls) == 4 * 4  # proxy self, token->proxy, one local attention, text


def test_math_backend_matches_sdpa():
    model = randomise_zero_linears(PTDiT(tiny())).eval()
    x, t, y = inputs()
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    ref = model(x, t, y, mask).sample
    model.attention_backend = "math"
    assert torch.allclose(model(x, t, y, mask).sample, ref, atol=1e-5)


# ------------------------------------------------------------------------------------------- locality at init
def _changed_windows(model, window):
    x, t, y = inputs(B=1, H=16, W=16)
    x2 = x.clone()
    x2[:, :, 0, 0:2, 0:2] += 1.0  # the token at grid (0, 0): window 0
    with torch.no_grad():
        diff = (model(x2, t, y).sample - model(x, t, y).sample).abs().sum(1)[0, 0]  # (16, 16) latent pixels
    # per token (2x2 pixels) -> per window
    per_token = diff.view(8, 2, 8, 2).sum((1, 3))
    per_window = per_token.view(8 // window[1], window[1], 8 // window[2], window[2]).sum((1, 3))
    return per_window > 1e-6


@pytest.mark.parametrize(
    "cfg",
    [tiny(window=(1, 4, 4)), tiny("lean", window=(1, 4, 4), use_giim=False)],
    ids=["official", "lean-without-giim"],
)
def test_at_init_a_token_only_reaches_its_own_window(cfg):
    model = PTDiT(cfg).eval()
    assert not _changed_windows(model, cfg.window).any()  # a new model outputs zero
    with torch.no_grad():  # give the final layer and the text outputs (zero as in DiT/PixArt) random values
        for m in [model.final_layer.linear, *(b.text_attn.to_out for b in model.blocks)]:
            m.weight.normal_(std=0.2)
    changed = _changed_windows(model, cfg.window)
    assert changed[0, 0] and changed.sum() == 1
    changed = _changed_windows(randomise_zero_linears(model), cfg.window)
    assert changed.all()  # through the proxies and the shifted windows it reaches every window


# ------------------------------------------------------------------------------------------- training utilities
@pytest.mark.parametrize("block", BLOCKS)
def test_gradient_checkpointing_gives_same_gradients(block):
    torch.manual_seed(0)
    model = randomise_zero_linears(PTDiT(tiny(block)))
    x, t, y = inputs()
    model(x, t, y).sample.square().mean().backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.enable_gradient_checkpointing()
    model(x, t, y).sample.square().mean().backward()
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, ref[n], atol=1e-6), n


@pytest.mark.parametrize("block", BLOCKS)
def test_bf16_autocast_close_to_fp32(block):
    model = randomise_zero_linears(PTDiT(tiny(block))).eval()
    x, t, y = inputs()
    ref = model(x, t, y).sample
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, t, y).sample
    assert torch.isfinite(out).all()
    assert (out.float() - ref).norm() / ref.norm() < 0.05
    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    out = bf16(x.bfloat16(), t, y.bfloat16()).sample
    assert out.dtype == torch.bfloat16 and (out.float() - ref).norm() / ref.norm() < 0.05


@pytest.mark.parametrize("block", BLOCKS)
def test_save_load_bit_identical(tmp_path, block):
    model = randomise_zero_linears(PTDiT(tiny(block, injection="linear"))).eval()
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json",
        "diffusion_pytorch_model.safetensors",
    ]
    loaded = PTDiT.from_pretrained(tmp_path / "m")
    assert loaded.ptdit_config == model.ptdit_config
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x, t, y = inputs()
    assert torch.equal(model(x, t, y).sample, loaded(x, t, y).sample)


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        PTDiT.from_pretrained(tmp_path / "nope")
    PTDiT(tiny()).save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(tiny(hidden_size=48).to_json())
    with pytest.raises(ValueError, match="shape mismatches"):
        PTDiT.from_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(tiny(depth=3).to_json())
    with pytest.raises(ValueError, match="missing: blocks.2"):
        PTDiT.from_pretrained(tmp_path / "m")
    (tmp_path / "m" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        PTDiT.from_pretrained(tmp_path / "m")


def test_xl_preset_parameter_count_matches_release():
    with torch.device("meta"):
        model = PTDiT(PTDiTConfig.from_preset("PT-DiT-XL"))
    assert model.num_parameters() == 1_131_629_216  # the released Qihoo-T2I-1B (docs/release.md §3.4)


def test_shape_caches_built_in_inference_mode_serve_training():
    model = PTDiT(tiny(window=(1, 2, 2)))
    x, t, y = inputs(H=20, W=28)  # a size no other test uses, so the caches are built here
    with torch.inference_mode():
        model(x, t, y)
    model(x, t, y).sample.square().mean().backward()  # would fail on inference tensors saved for backward

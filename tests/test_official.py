"""Official checkpoint conversion (ptdit.official) and parity with the released math.

Nothing here needs the released files: `official_shapes` writes down every key of docs/release.md §3.2-3.3 with its
shape formula, and `reference_forward` is an independent forward written from its §4 that works
on the official names (window-major (B*P, N, C) rows, roll + additive -10000 masks, official tiling / PE
options). The converted PTDiT must give the same output.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor

from ptdit import PTDiT
from ptdit.cli import main as ptdit_main
from ptdit.official import (
    cli_main,
    config_from_official,
    convert_official,
    convert_official_checkpoint,
    from_official,
    load_official_state_dict,
    official_key_map,
    official_shapes,
    ptdit_key_map,
    synthetic_official_state,
)

ATTNS = ("proxy_attn1", "attn1", "pvisual_attn2", "attn2", "attn3")
HEADS = 4  # the tiny width 64 is not a multiple of the released head size 72: heads passed explicitly
synthetic_state = synthetic_official_state  # §3.2-3.3 by formula: ptdit.official.official_shapes


# --------------------------------------------------------------------------------------------- reference forward
def _sincos(dim: int, pos: np.ndarray) -> np.ndarray:
    """[sin(pos w_k) x dim/2, cos(pos w_k) x dim/2], w_k = 10000^(-k/(dim/2)), float64 (§4.5)."""
    k = np.arange(dim // 2, dtype=np.float64)
    ang = pos.astype(np.float64)[:, None] * (10000.0 ** (-k / (dim / 2)))[None]
    return np.concatenate([np.sin(ang), np.cos(ang)], axis=1)


def reference_pe(hg: int, wg: int, dim: int, bug_pe: bool = False) -> Tensor:
    """(hg*wg, dim) fp32 PE for row-major tokens: [time 0 | column | row]; bug_pe = the released H/W scramble."""
    m = np.arange(hg * wg)
    col, row = (m % hg, m // hg) if bug_pe else (m % wg, m // wg)
    time = _sincos(dim // 4, np.zeros(hg * wg))
    return torch.from_numpy(
        np.concatenate([time, _sincos(3 * dim // 8, col), _sincos(3 * dim // 8, row)], 1)
    ).float()


@functools.lru_cache(maxsize=8)
def window_index(hg: int, wg: int, k: int = 8) -> Tensor:
    """(P, k*k): row-major token index of token y*k+x of window wh*(wg/k)+ww (§4.6)."""
    idx = torch.empty(hg // k * (wg // k), k * k, dtype=torch.long)
    for wh in range(hg // k):
        for ww in range(wg // k):
            for y in range(k):
                for x in range(k):
                    idx[wh * (wg // k) + ww, y * k + x] = (wh * k + y) * wg + ww * k + x
    return idx


def reference_forward(
    sd: dict[str, Tensor],
    x: Tensor,
    t: Tensor,
    y: Tensor,
    mask: Tensor,
    heads: int,
    bug_tiling: bool = False,
    bug_pe: bool = False,
) -> Tensor:
    """Official PTDiTDiffuser forward for images, from docs/release.md §4 (window 8x8, shift 4).

    x (B, C, 1, H, W); t (B,); y (B, L, caption); mask (B, L) 0/1 -> (B, out, 1, H, W) fp32.
    """
    dt = sd["pos_embed.proj.weight"].dtype
    x, t, y = x.to(dt), t.to(dt), y.to(dt)  # §4.2: everything (the timestep too) to the weights' dtype
    B, C, F_, H, W = x.shape
    D, _, p, _ = sd["pos_embed.proj.weight"].shape
    k, s = 8, 4
    hg, wg = H // p, W // p
    P, N = (hg // k) * (wg // k), k * k

    def lin(name: str, v: Tensor) -> Tensor:
        return F.linear(v, sd[name + ".weight"], sd[name + ".bias"])

    def ln(v: Tensor) -> Tensor:
        return F.layer_norm(v, (D,), eps=1e-6)

    def attn(name: str, q_in: Tensor, kv_in: Tensor, bias: Tensor | None = None) -> Tensor:
        b, lq, _ = q_in.shape
        q, kk, vv = (lin(f"{name}.{n}", v) for n, v in (("to_q", q_in), ("to_k", kv_in), ("to_v", kv_in)))
        q, kk, vv = (u.view(b, -1, heads, D // heads).transpose(1, 2) for u in (q, kk, vv))
        if bias is not None:  # diffusers prepare_attention_mask: repeat_interleave by heads, view per head
            bias = bias.repeat_interleave(heads, dim=0).view(b, heads, -1, bias.shape[-1])
        o = F.scaled_dot_product_attention(q, kk, vv, attn_mask=bias)
        return lin(f"{name}.to_out.0", o.transpose(1, 2).reshape(b, lq, D))

    def rows(v: Tensor) -> Tensor:  # (B, 1, D) per sample -> (B*P, 1, D) per window row
        return v.repeat(P, 1, 1) if bug_tiling else v.repeat_interleave(P, dim=0)

    # patch embedding + PE (§4.5): conv in the weights' dtype, add the fp32 PE in fp32, back
    h = F.conv2d(
        x.permute(0, 2, 1, 3, 4).reshape(B * F_, C, H, W),
        sd["pos_embed.proj.weight"],
        sd["pos_embed.proj.bias"],
        stride=p,
    )
    h = h.flatten(2).transpose(1, 2)  # (B, hg*wg, D) row-major
    h = (h.float() + reference_pe(hg, wg, D, bug_pe)[None]).to(dt)
    widx = window_index(hg, wg, k)
    h = h[:, widx.flatten()].reshape(B * P, N, D)  # window-major rows, batch-major

    def to_grid(v: Tensor) -> Tensor:  # (B*P, N, E) -> (B, hg, wg, E)
        g = torch.empty(B, hg * wg, v.shape[-1], dtype=v.dtype)
        g[:, widx.flatten()] = v.reshape(B, P * N, -1)
        return g.view(B, hg, wg, -1)

    def to_windows(g: Tensor) -> Tensor:
        return g.reshape(B, hg * wg, D)[:, widx.flatten()].reshape(B * P, N, D)

    # adaLN-single (§4.3)
    freqs = torch.exp(-math.log(10000) * torch.arange(128, dtype=torch.float32) / 128)
    ang = t.float()[:, None] * freqs[None]
    tf = torch.cat([torch.cos(ang), torch.sin(ang)], 1).to(dt)
    te = "adaln_single.emb.timestep_embedder"
    emb_t = lin(f"{te}.linear_2", F.silu(lin(f"{te}.linear_1", tf)))  # (B, D) embedded_timestep
    t6 = lin("adaln_single.linear", F.silu(emb_t)).view(B, 6, D)

    # caption (§4.9) and text mask (§4.7)
    yc = lin("caption_projection.linear_2", F.gelu(lin("caption_projection.linear_1", y), approximate="tanh"))
    text_bias = ((1 - mask.to(dt)) * -10000.0)[:, None, :]  # (B, 1, L)

    # Swin region mask on the rolled grid (§4.8)
    img = torch.zeros(hg, wg)
    cnt = 0
    for hs in (slice(0, -k), slice(-k, -s), slice(-s, None)):
        for ws in (slice(0, -k), slice(-k, -s), slice(-s, None)):
            img[hs, ws] = cnt
            cnt += 1
    lab = img.flatten()[widx]  # (P, N)
    diff = lab[:, None, :] - lab[:, :, None]
    shift_bias = (torch.where(diff != 0, -1.0, 0.0).to(dt) * 10000.0).repeat(B, 1, 1)  # (B*P, N, N)

    for i in range(len({kk.split(".")[1] for kk in sd if kk.startswith("transformer_blocks.")})):
        b = f"transformer_blocks.{i}."
        mod = (sd[b + "scale_shift_table"][None] + t6).chunk(6, dim=1)  # each (B, 1, D)
        sh_msa, sc_msa, g_msa, sh_mlp, sc_mlp, g_mlp = (rows(v) for v in mod)
        sh_sw, sc_sw, g_sw = (
            rows(v) for v in (sd[b + "proxy_scale_shift_table"][None] + t6[:, :3]).chunk(3, 1)
        )
        # 1-2: proxies (window means) and their self-attention
        prox = h.view(B, P, N, D).mean(2)
        prox = prox + attn(b + "proxy_attn1", ln(prox), ln(prox))
        # 3: tokens attend to proxies, zero linear, residual
        q = ln(h).reshape(B, P * N, D)
        h = h + lin(b + "linear_1_visual", attn(b + "pvisual_attn2", q, ln(prox))).reshape(B * P, N, D)
        # 4: window attention
        m = ln(h) * (1 + sc_msa) + sh_msa
        h = h + g_msa * attn(b + "attn1", m, m)
        # 5: shifted windows: roll, re-window, norm + modulate, masked attention, back, gate, zero linear
        r = to_windows(torch.roll(to_grid(h), shifts=(-s, -s), dims=(1, 2)))
        m = ln(r) * (1 + sc_sw) + sh_sw
        o = attn(b + "attn3", m, m, shift_bias)
        o = to_windows(torch.roll(to_grid(o), shifts=(s, s), dims=(1, 2)))
        h = h + lin(b + "linear_2", g_sw * o)
        # 6: text cross-attention, raw tokens as queries
        h = h + attn(b + "attn2", h.reshape(B, P * N, D), yc, text_bias).reshape(B * P, N, D)
        # 7: FFN
        m = ln(h) * (1 + sc_mlp) + sh_mlp
        h = h + g_mlp * lin(b + "ff.net.2", F.gelu(lin(b + "ff.net.0.proj", m), approximate="tanh"))

    # final layer (§4.10)
    shift, scale = (sd["scale_shift_table"][None] + emb_t[:, None]).chunk(2, dim=1)
    out = lin("proj_out", ln(h).reshape(B, P * N, D) * (1 + scale) + shift)  # (B, P*N, p*p*c)
    c = out.shape[-1] // (p * p)
    grid = to_grid(out.reshape(B * P, N, -1)).reshape(B, hg, wg, p, p, c)
    return torch.einsum("bhwpqc->bchpwq", grid).reshape(B, c, 1, hg * p, wg * p).float()


# --------------------------------------------------------------------------------------------- fixtures
def inputs(h: int = 48, w: int = 48, t=(500.0, 500.0), seed: int = 1, caption: int = 32, length: int = 7):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(t), 4, 1, h, w, generator=g)
    y = torch.randn(len(t), length, caption, generator=g)
    mask = torch.ones(len(t), length)
    mask[1, 4:] = 0  # padded text
    return x, torch.tensor(t), y, mask


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[dict[str, Tensor], Path, PTDiT]:
    torch.manual_seed(0)
    state = synthetic_state()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save({"model": state, "epoch": 3}, path)
    model = from_official(path, num_heads=HEADS)
    return state, path, model


# --------------------------------------------------------------------------------------------- names, XL
def test_xl_keys_shapes_and_parameter_count_on_meta():
    shapes = official_shapes()
    assert len(shapes) == 1416
    assert sum(math.prod(v) for k, v in shapes.items() if k != "pos_embed.pos_embed") == 1_131_629_216
    key_map = official_key_map(28)
    assert set(key_map) | {"pos_embed.pos_embed"} == set(shapes) and len(key_map) == 1415
    inverse = ptdit_key_map(28)
    assert len(inverse) == len(key_map) and all(key_map[inverse[o]] == o for o in inverse)

    state = {k: torch.empty(v, device="meta") for k, v in shapes.items()}
    config = config_from_official(state)
    assert (config.depth, config.hidden_size, config.num_heads, config.caption_channels) == (
        28,
        1152,
        16,
        4096,
    )
    assert (config.in_channels, config.out_channels, config.patch_size, config.window) == (4, 8, 2, (1, 8, 8))
    assert config.numerics == "release" and config.mlp_hidden == 4608
    assert config.extra["source"] == "qihoo-t2x-official"
    with torch.device("meta"):
        model = PTDiT(config)
    ours = model.state_dict()
    assert set(ours) == set(inverse)
    assert all(tuple(ours[k].shape) == shapes[inverse[k]] for k in ours)
    assert model.num_parameters() == 1_131_629_216
    converted = convert_official(state, config)
    assert set(converted) == set(ours)


def test_key_map_is_exact_for_tiny_model_and_inverse():
    config = config_from_official(synthetic_state(), num_heads=4)
    with torch.device("meta"):
        model = PTDiT(config)
    assert set(ptdit_key_map(2)) == set(model.state_dict())
    assert set(official_key_map(2)) | {"pos_embed.pos_embed"} == set(official_shapes(2, 64, 32))
    with pytest.raises(ValueError, match="depth"):
        official_key_map(0)


# --------------------------------------------------------------------------------------------- parity
def test_converted_model_matches_reference_forward(tiny):
    state, _, model = tiny
    assert model.config.numerics == "release" and model.config.num_heads == 4 and model.config.depth == 2
    assert model.config.extra == {"source": "qihoo-t2x-official", "file": "tiny.pt"}
    x, t, y, mask = inputs()  # 48x48 latent -> 24x24 tokens -> 3x3 windows of 8x8; equal timesteps
    with torch.no_grad():
        ours = model(x, t, y, mask).sample
        ref = reference_forward(state, x, t, y, mask, heads=4)
        no_text_mask = reference_forward(state, x, t, y, torch.ones_like(mask), heads=4)
    assert ours.shape == ref.shape == (2, 8, 1, 48, 48)
    assert (ours - ref).abs().max().item() < 1e-5
    assert ref.abs().mean().item() > 1e-2  # not a trivially small output
    assert (no_text_mask - ref).abs().max().item() > 1e-3  # the padded text mask matters


def test_reference_is_sensitive_to_the_shift_mask_and_zero_linears(tiny):
    state, _, model = tiny
    x, t, y, mask = inputs()
    zeroed = dict(state)
    for k in state:
        if ".linear_2." in k and k.startswith("transformer_blocks"):
            zeroed[k] = torch.zeros_like(state[k])
    with torch.no_grad():
        ref = reference_forward(state, x, t, y, mask, heads=4)
        assert (reference_forward(zeroed, x, t, y, mask, heads=4) - ref).abs().max().item() > 1e-3
        lat = torch.zeros(1, 4, 1, 48, 48)  # a (1, 24, 24) token grid with patch 2
        ctx = model.block_context(lat, None, (1, 48, 48), 5)
        assert ctx.shift_mask is not None and ctx.shift_mask.min().item() == -10000.0  # release: additive


def test_released_bugs_change_nothing_for_square_images_and_equal_timesteps(tiny):
    state, _, model = tiny
    x, t, y, mask = inputs()
    with torch.no_grad():
        ours = model(x, t, y, mask).sample
        for bugs in (dict(bug_tiling=True), dict(bug_pe=True), dict(bug_tiling=True, bug_pe=True)):
            assert (reference_forward(state, x, t, y, mask, heads=4, **bugs) - ours).abs().max().item() < 1e-5


def test_released_bugs_differ_for_mixed_timesteps_and_non_square_grids(tiny):
    state, _, model = tiny
    with torch.no_grad():
        x, t, y, mask = inputs(t=(200.0, 900.0))  # different timesteps in one batch
        ours = model(x, t, y, mask).sample
        assert (reference_forward(state, x, t, y, mask, heads=4) - ours).abs().max().item() < 1e-5
        assert (
            reference_forward(state, x, t, y, mask, heads=4, bug_tiling=True) - ours
        ).abs().max().item() > 1e-3

        x, t, y, mask = inputs(h=48, w=64)  # 24x32 token grid -> 3x4 windows
        ours = model(x, t, y, mask).sample
        assert (reference_forward(state, x, t, y, mask, heads=4) - ours).abs().max().item() < 1e-5
        assert (
            reference_forward(state, x, t, y, mask, heads=4, bug_pe=True) - ours
        ).abs().max().item() > 1e-3


def test_bf16_release_path_is_close_to_the_reference(tiny):
    """bf16 weights, as released: the converted model rounds like the release (fp32 positions, un-fused
    modulation, masked window attention folded to 4-D), so on CPU the two agree bit for bit."""
    state, path, fp32_model = tiny
    bf16 = from_official(path, num_heads=4, dtype=torch.bfloat16)
    state16 = {k: v.bfloat16() for k, v in state.items()}
    x, t, y, mask = inputs(h=32, w=32, t=(983.05, 983.05))  # 2x2 windows: the shift mask is used
    with torch.no_grad():
        ours = bf16(x.bfloat16(), t, y.bfloat16(), mask).sample.float()
        ref = reference_forward(state16, x, t, y, mask, heads=4)
        ours32 = fp32_model(x, t, y, mask).sample
    assert torch.equal(ours, ref.float())
    assert not torch.equal(ours32, ref.float())  # the fp32 model does not round like the release


def test_release_numerics_round_the_timestep_to_the_weights_dtype(tiny):
    _, path, _ = tiny
    model = from_official(path, num_heads=4, dtype="bf16")
    assert next(model.parameters()).dtype == torch.bfloat16
    x, _, y, mask = inputs(h=16, w=16)  # one 8x8 window: enough to see the timestep
    x, y = x.bfloat16(), y.bfloat16()
    with torch.no_grad():
        a = model(
            x, torch.tensor([983.05, 983.05]), y, mask
        ).sample  # bf16(983.05) = 984 (docs/release.md §4.2)
        b = model(x, torch.tensor([984.0, 984.0]), y, mask).sample
        c = model(x, torch.tensor([980.0, 980.0]), y, mask).sample
    assert torch.equal(a, b) and not torch.equal(a, c)


# --------------------------------------------------------------------------------------------- files
@pytest.mark.parametrize("layout", ["top", "state_dict", "module", "predictor", "safetensors"])
def test_checkpoint_layouts_load_the_same_weights(tmp_path, layout):
    state = synthetic_state(depth=1)
    if layout == "safetensors":
        path = tmp_path / "ckpt.safetensors"
        save_file(state, path)
    else:
        path = tmp_path / "ckpt.pth"
        obj = {
            "top": state,
            "state_dict": {"state_dict": state, "optimizer": {"lr": 1.0}},
            "module": {f"module.{k}": v for k, v in state.items()},
            "predictor": {"model": {f"module.predictor.{k}": v for k, v in state.items()}},
        }[layout]
        torch.save(obj, path)
    loaded = load_official_state_dict(path)
    assert set(loaded) == set(state) and all(torch.equal(loaded[k], state[k]) for k in state)
    model = from_official(path, num_heads=4)
    assert torch.equal(model.blocks[0].shift_out.weight, state["transformer_blocks.0.linear_2.weight"])


def test_pos_embed_buffer_is_optional(tmp_path):
    state = synthetic_state(depth=1)
    del state["pos_embed.pos_embed"]
    torch.save(state, tmp_path / "no_pe.pt")
    assert from_official(tmp_path / "no_pe.pt", num_heads=4).config.depth == 1


def test_strict_conversion_lists_bad_keys():
    config = config_from_official(synthetic_state(), num_heads=4)
    state = synthetic_state()
    del state["transformer_blocks.1.attn3.to_k.bias"]
    state["transformer_blocks.0.ema_decay"] = torch.zeros(1)
    state["transformer_blocks.0.ff.net.2.weight"] = torch.zeros(64, 128)
    with pytest.raises(ValueError) as e:
        convert_official(state, config)
    msg = str(e.value)
    assert "missing keys (1): transformer_blocks.1.attn3.to_k.bias" in msg
    assert "unexpected keys (1): transformer_blocks.0.ema_decay" in msg
    assert "transformer_blocks.0.ff.net.2.weight: checkpoint (64, 128) vs expected (64, 256)" in msg

    gap = {k: v for k, v in synthetic_state().items() if not k.startswith("transformer_blocks.0.")}
    with pytest.raises(ValueError, match=r"missing keys \(50\)"):  # a whole block gone
        convert_official(gap, config)
    with pytest.raises(ValueError, match="block structure"):
        convert_official(synthetic_state(), config.replace(block="lean"))


def test_wrong_caption_width_and_heads_give_clear_errors(tmp_path):
    state = synthetic_state()
    with pytest.raises(ValueError, match="--num-heads"):
        config_from_official(state)  # width 64 is not a multiple of 72
    state["transformer_blocks.1.attn2.to_k.weight"] = torch.zeros(64, 32)  # K/V fed the raw caption width
    state["proj_out.bias"] = torch.zeros(16)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(
        ValueError,
        match=r"shape mismatches \(2\): proj_out.bias: checkpoint \(16,\) vs expected "
        r"\(32,\), transformer_blocks.1.attn2.to_k.weight: checkpoint \(64, 32\) vs expected \(64, 64\)",
    ):
        from_official(tmp_path / "bad.pt", num_heads=4)
    with pytest.raises(ValueError, match="not an official PT-DiT"):
        config_from_official({"encoder.weight": torch.zeros(3)})


def test_files_that_are_not_checkpoints(tmp_path):
    (tmp_path / "noise.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "cfg.json").write_text(json.dumps({"model": "ptdit"}))
    (tmp_path / "fake.safetensors").write_bytes(b"not safetensors at all")
    torch.save({}, tmp_path / "empty.pt")
    torch.save({"model": {}}, tmp_path / "empty_model.pt")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    for name, pattern in (
        ("noise.pt", "not a readable PyTorch checkpoint"),
        ("cfg.json", "neither a torch"),
        ("fake.safetensors", "not a readable safetensors"),
        ("empty.pt", "empty state dict"),
        ("empty_model.pt", "empty state dict"),
        ("list.pt", "holds a list"),
    ):
        with pytest.raises(ValueError, match=pattern):
            from_official(tmp_path / name, num_heads=4)
    with pytest.raises(FileNotFoundError):
        from_official(tmp_path / "absent.pt")
    with pytest.raises(ValueError, match="directory"):
        load_official_state_dict(tmp_path)
    with pytest.raises(ValueError, match="unknown dtype"):
        from_official(tmp_path / "noise.pt", dtype="int8")


# --------------------------------------------------------------------------------------------- round trip, CLI
def test_cli_round_trip_gives_the_same_model(tiny, tmp_path, capsys):
    _, path, model = tiny
    out = tmp_path / "converted"
    assert cli_main([str(path), str(out), "--num-heads", "4"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "diffusion_pytorch_model.safetensors",
        "pipeline.json",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["converted"]  # no temporary directory left
    loaded = PTDiT.from_pretrained(out)
    assert loaded.ptdit_config == model.ptdit_config and loaded.config.extra["source"] == "qihoo-t2x-official"
    x, t, y, mask = inputs()
    with torch.no_grad():
        assert torch.equal(loaded(x, t, y, mask).sample, model(x, t, y, mask).sample)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["numerics"] == "release" and cfg["window"] == [1, 8, 8]


def test_cli_options_and_dispatcher(tiny, tmp_path, capsys):
    _, path, _ = tiny
    out = tmp_path / "bf16"
    assert (
        ptdit_main(
            [
                "convert-official",
                str(path),
                str(out),
                "--num-heads",
                "2",
                "--window",
                "1",
                "4",
                "4",
                "--dtype",
                "bf16",
            ]
        )
        == 0
    )
    loaded = PTDiT.from_pretrained(out)
    assert loaded.config.window == (1, 4, 4) and loaded.config.num_heads == 2
    assert next(loaded.parameters()).dtype == torch.bfloat16
    capsys.readouterr()
    assert ptdit_main(["convert-official", str(path), str(out), "--num-heads", "4"]) == 1  # out exists
    assert "not an empty directory" in capsys.readouterr().err


def test_failed_conversion_leaves_nothing(tmp_path, capsys):
    (tmp_path / "noise.pt").write_bytes(b"\x00" * 64)
    out = tmp_path / "out"
    assert ptdit_main(["convert-official", str(tmp_path / "noise.pt"), str(out)]) == 1
    assert "not a readable PyTorch checkpoint" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noise.pt"]
    with pytest.raises(ValueError, match="--num-heads"):
        torch.save(synthetic_state(depth=1), tmp_path / "tiny.pt")
        convert_official_checkpoint(tmp_path / "tiny.pt", out)
    assert not out.exists()


# --------------------------------------------------------------------------------------------- the released path
def test_generate_with_converted_model_t5_and_osp_vae(tmp_path, t5_dir, capsys):
    """ptdit convert-official, then ptdit generate with a T5 folder and an Open-Sora-Plan VAE folder."""
    import json

    from PIL import Image

    from ptdit.autoencoders.osp_causalvae import OSPCausalVAE, OSPCausalVAEConfig
    from ptdit.cli import main

    torch.manual_seed(0)
    state = synthetic_state(depth=2, width=64, caption=16)
    torch.save({"model": state}, tmp_path / "qihoo.pt")
    assert (
        main(["convert-official", str(tmp_path / "qihoo.pt"), str(tmp_path / "conv"), "--num-heads", "4"])
        == 0
    )
    defaults = json.loads((tmp_path / "conv" / "pipeline.json").read_text())
    assert (defaults["height"], defaults["steps"], defaults["cfg"], defaults["text_max_length"]) == (
        1024,
        30,
        4.0,
        200,
    )
    vae = OSPCausalVAE(OSPCausalVAEConfig(hidden_size=8, hidden_size_mult=(1, 2, 2, 2), num_groups=4))
    vae.save_pretrained(tmp_path / "vae")
    out = tmp_path / "out"
    argv = ["generate", "a red dog", "--model", str(tmp_path / "conv"), "--height", "128", "--width", "128",
            "--steps", "2", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 1  # the converted dir names no text encoder
    assert "--text-encoder" in capsys.readouterr().err
    assert main([*argv, "--text-encoder", str(t5_dir)]) == 1  # nor a VAE
    assert "--vae" in capsys.readouterr().err
    assert main([*argv, "--text-encoder", str(t5_dir), "--vae", str(tmp_path / "vae")]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["cfg"] == 4.0 and manifest["settings"]["autoencoder"].startswith("osp:")
    image = Image.open(out / manifest["outputs"][0]["files"][0])
    assert image.size == (256, 256) and image.mode == "RGB"  # 128 px enlarged 2x for viewing

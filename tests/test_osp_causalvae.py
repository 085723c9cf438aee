"""The Open-Sora-Plan v1.2 CausalVAE: released layout, shapes, causality, 2-D equivalence, tiling, strict loading."""

from __future__ import annotations

import json
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ptdit.autoencoders.osp_blocks import (
    CausalConv3d,
    CausalConv3dAttnBlock,
    ResnetBlock2D,
    Spatial2xTime2x3DDownsample,
    Spatial2xTime2x3DUpsample,
)
from ptdit.autoencoders.osp_causalvae import (
    OSPCausalVAE,
    OSPCausalVAEConfig,
    blend_h,
    blend_v,
    load_osp_state_dict,
    temporal_chunks,
    tile_starts,
)
from ptdit.io import save_safetensors_atomic, torch_save_atomic

# base 8 channels, 4 groups; tiles of 32 px (4 latents), overlap 0.25 -> stride 3 latents, blend 8 px, crop 24 px
TINY = OSPCausalVAEConfig(
    hidden_size=8,
    hidden_size_mult=(1, 2, 2, 2),
    num_groups=4,
    tile_sample_min_size=32,
    tile_overlap_factor=0.25,
    tile_sample_min_size_t=5,
    tile_latent_min_size_t=2,
)


def tiny_model(seed: int = 0, **overrides) -> OSPCausalVAE:
    torch.manual_seed(seed)
    config = OSPCausalVAEConfig(**{**TINY.to_dict(), **overrides})
    model = OSPCausalVAE(config).eval()
    with torch.no_grad():  # GroupNorm affine params away from (1, 0) so they matter in every comparison
        for m in model.modules():
            if isinstance(m, nn.GroupNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model


def without_norms(model: nn.Module) -> nn.Module:
    """Replace every GroupNorm by identity (the only part of the released network that mixes future frames)."""
    for name, child in model.named_children():
        if isinstance(child, nn.GroupNorm):
            setattr(model, name, nn.Identity())
        else:
            without_norms(child)
    return model


pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------------------------- released layout
def test_released_config_state_dict_matches_the_release():
    with torch.device("meta"):
        model = OSPCausalVAE()
    sd = model.state_dict()
    assert len(sd) == 248
    assert model.num_parameters() == 239_189_991
    assert sum(p.numel() for p in model.encoder.parameters()) == 94_399_368
    assert sum(p.numel() for p in model.decoder.parameters()) == 144_790_531
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    expected = {
        "encoder.conv_in.weight": (128, 3, 3, 3),
        "encoder.down.0.block.0.conv1.weight": (128, 128, 3, 3),
        "encoder.down.1.block.0.conv1.weight": (256, 128, 3, 3),
        "encoder.down.1.block.0.nin_shortcut.weight": (256, 128, 1, 1),
        "encoder.down.2.block.0.conv1.conv.weight": (512, 256, 3, 3, 3),
        "encoder.down.2.block.0.nin_shortcut.conv.weight": (512, 256, 1, 1, 1),
        "encoder.down.3.block.1.conv2.conv.weight": (512, 512, 3, 3, 3),
        "encoder.down.0.downsample.conv.weight": (128, 128, 3, 3),
        "encoder.down.1.downsample.conv.conv.weight": (256, 256, 3, 3, 3),
        "encoder.down.2.downsample.conv.conv.weight": (512, 512, 3, 3, 3),
        "encoder.mid.block_1.conv1.conv.weight": (512, 512, 3, 3, 3),
        "encoder.mid.attn_1.norm.weight": (512,),
        "encoder.mid.attn_1.q.conv.weight": (512, 512, 1, 1, 1),
        "encoder.mid.attn_1.proj_out.conv.bias": (512,),
        "encoder.norm_out.weight": (512,),
        "encoder.conv_out.conv.weight": (8, 512, 3, 3, 3),
        "decoder.conv_in.conv.weight": (512, 4, 3, 3, 3),
        "decoder.mid.attn_1.v.conv.weight": (512, 512, 1, 1, 1),
        "decoder.up.3.block.2.conv2.conv.weight": (512, 512, 3, 3, 3),
        "decoder.up.1.block.0.conv1.conv.weight": (256, 512, 3, 3, 3),
        "decoder.up.1.block.0.nin_shortcut.conv.weight": (256, 512, 1, 1, 1),
        "decoder.up.0.block.0.nin_shortcut.conv.weight": (128, 256, 1, 1, 1),
        "decoder.up.3.upsample.conv.conv.weight": (512, 512, 3, 3, 3),
        "decoder.up.2.upsample.conv.conv.weight": (512, 512, 3, 3, 3),
        "decoder.up.1.upsample.conv.conv.weight": (256, 256, 1, 3, 3),
        "decoder.norm_out.weight": (128,),
        "decoder.conv_out.conv.weight": (3, 128, 3, 3, 3),
        "quant_conv.conv.weight": (8, 8, 1, 1, 1),
        "quant_conv.conv.bias": (8,),
        "post_quant_conv.conv.weight": (4, 4, 1, 1, 1),
        "post_quant_conv.conv.bias": (4,),
    }
    for key, shape in expected.items():
        assert shapes.get(key) == shape, key
    top = re.compile(r"^(encoder\.|decoder\.|quant_conv\.conv\.|post_quant_conv\.conv\.)")
    assert all(top.match(k) for k in sd)
    # 2 resnets per encoder level, 3 per decoder level; 2-D convs at encoder levels 0-1, causal 3-D elsewhere
    assert {int(m.group(1)) for k in sd if (m := re.match(r"encoder\.down\.\d\.block\.(\d)", k))} == {0, 1}
    assert {int(m.group(1)) for k in sd if (m := re.match(r"decoder\.up\.\d\.block\.(\d)", k))} == {0, 1, 2}
    for level in range(4):
        w = shapes[
            f"encoder.down.{level}.block.0.conv1.weight"
            if level < 2
            else f"encoder.down.{level}.block.0.conv1.conv.weight"
        ]
        assert len(w) == (4 if level < 2 else 5)
    assert (
        "decoder.up.0.upsample.conv.conv.weight" not in sd
        and "encoder.down.3.downsample.conv.conv.weight" not in sd
    )
    assert not any(".attn." in k for k in sd)  # no per-level attention, only mid.attn_1
    assert (model.latent_channels, model.spatial_factor, model.temporal_factor) == (4, 8, 4)
    assert model.scale_factor == 0.18215 and model.config.tile_latent_min_size == 64


# ---------------------------------------------------------------------------------------------- shapes and errors
def test_image_and_video_shapes():
    model = tiny_model()
    torch.manual_seed(1)
    with torch.no_grad():
        image = torch.rand(2, 3, 1, 16, 16) * 2 - 1
        z = model.encode(image)
        assert z.shape == (2, 4, 1, 2, 2) == (2, 4, *model.latent_size(1, 16, 16))
        assert model.decode(z).shape == image.shape
        video = torch.rand(1, 3, 5, 16, 16) * 2 - 1
        z = model.encode(video)
        assert z.shape == (1, 4, 2, 2, 2) == (1, 4, *model.latent_size(5, 16, 16))
        out = model.decode(z)
        assert out.shape == video.shape == (1, 3, *model.pixel_size(2, 2, 2))
        assert torch.isfinite(out).all()


def test_encode_scales_the_posterior_mean_and_can_sample():
    model = tiny_model()
    x = torch.rand(1, 3, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        post = model.encode_posterior(x)
        assert torch.equal(model.encode(x), post.mean * 0.18215)
        g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        s1, s2 = model.encode(x, sample=True, generator=g1), model.encode(x, sample=True, generator=g2)
        assert torch.equal(s1, s2) and not torch.equal(s1, model.encode(x))
        torch.testing.assert_close(model.decode(model.encode(x)), model._decode_tile(post.mean))
    assert post.logvar.max() <= 20 and post.logvar.min() >= -30


def test_bad_shapes_give_clear_errors():
    model = tiny_model()
    for shape, word in (
        ((1, 3, 4, 16, 16), "1 + 4 k"),
        ((1, 3, 1, 12, 16), "multiples of 8"),
        ((1, 3, 16, 16), "B, 3"),
    ):
        with pytest.raises(ValueError, match=re.escape(word)):
            model.encode(torch.zeros(shape))
    with pytest.raises(ValueError, match="latents"):
        model.decode(torch.zeros(1, 3, 1, 2, 2))
    with pytest.raises(ValueError, match="num_groups"):
        OSPCausalVAEConfig(hidden_size=8)
    with pytest.raises(ValueError, match="not supported"):
        OSPCausalVAEConfig(encoder_attention="Nope")


# ---------------------------------------------------------------------------------------------- causality
def test_encoder_is_causal_apart_from_groupnorm_statistics():
    """Latent j sees pixel frames <= 4 j. Exact once the norms are removed; the released 3-D GroupNorm spans time."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    x2 = x.clone()
    x2[:, :, 5] = torch.rand(3, 16, 16)  # frame 5 belongs to latent 2 (frames 5..8)
    with torch.no_grad():
        model = without_norms(tiny_model(use_tiling=False))  # one pass over all 9 frames (no temporal chunks)
        z, z2 = model.encode(x), model.encode(x2)
        assert z.shape[2] == 3
        assert torch.equal(z[:, :, :2], z2[:, :, :2])
        assert not torch.allclose(z[:, :, 2], z2[:, :, 2])
        x3 = x.clone()
        x3[:, :, 1] = 0.0  # frame 1 belongs to latent 1
        z3 = model.encode(x3)
        assert torch.equal(z[:, :, 0], z3[:, :, 0]) and not torch.allclose(z[:, :, 1], z3[:, :, 1])
        # as released: future frames leak into the GroupNorm statistics of 3-D blocks
        released = tiny_model(use_tiling=False)
        assert not torch.equal(released.encode(x)[:, :, 0], released.encode(x2)[:, :, 0])


def test_decoder_first_frame_depends_only_on_the_first_latent():
    torch.manual_seed(0)
    z = torch.randn(1, 4, 3, 2, 2)
    z2 = z.clone()
    z2[:, :, 1:] = torch.randn(1, 4, 2, 2, 2)
    with torch.no_grad():
        model = without_norms(tiny_model())
        out, out2 = model.decode(z), model.decode(z2)
    assert out.shape[2] == 9
    assert torch.equal(out[:, :, 0], out2[:, :, 0]) and not torch.allclose(out[:, :, 1:], out2[:, :, 1:])


# ---------------------------------------------------------------------------------------------- plain references
def reference_causal_conv3d(x: torch.Tensor, conv: nn.Conv3d, stride: int = 1) -> torch.Tensor:
    """Frame by frame: output frame i = sum over the kernel's time taps of 2-D convs of replicate-padded frames."""
    kt = conv.weight.shape[2]
    frames = [x[:, :, 0]] * (kt - 1) + list(x.unbind(2))
    outs = []
    for start in range(0, len(frames) - kt + 1, stride):
        acc = conv.bias[None, :, None, None]
        for dt in range(kt):
            acc = acc + F.conv2d(
                frames[start + dt], conv.weight[:, :, dt], stride=stride, padding=conv.padding[1:]
            )
        outs.append(acc)
    return torch.stack(outs, dim=2)


def test_causal_conv3d_matches_a_frame_by_frame_reference():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 6, 7, dtype=torch.float64)
    conv = CausalConv3d(3, 4, 3, padding=1).double()
    torch.testing.assert_close(conv(x), reference_causal_conv3d(x, conv.conv))
    down = Spatial2xTime2x3DDownsample(3, 4).double()
    x = torch.randn(1, 3, 9, 8, 8, dtype=torch.float64)
    out = down(x)
    assert out.shape == (1, 4, 5, 4, 4)
    torch.testing.assert_close(out, reference_causal_conv3d(F.pad(x, (0, 1, 0, 1)), down.conv.conv, stride=2))


def test_attention_block_matches_a_plain_reference():
    torch.manual_seed(0)
    block = CausalConv3dAttnBlock(8, num_groups=4).double()
    with torch.no_grad():
        block.norm.weight.uniform_(0.5, 1.5)
        block.norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 8, 3, 4, 5, dtype=torch.float64)
    n = F.group_norm(x, 4, block.norm.weight, block.norm.bias, eps=1e-6)  # statistics over (C/G, T, H, W)
    expected = torch.empty_like(x)
    for b in range(2):
        for t in range(3):

            def proj(m: CausalConv3d, f: torch.Tensor) -> torch.Tensor:  # (C, N) -> (C, N): 1x1 conv
                return m.conv.weight[:, :, 0, 0, 0] @ f + m.conv.bias[:, None]

            f = n[b, :, t].reshape(8, 20)
            q, k, v = proj(block.q, f), proj(block.k, f), proj(block.v, f)
            attn = torch.softmax(q.T @ k / 8**0.5, dim=-1)  # (N queries, N keys)
            expected[b, :, t] = x[b, :, t] + proj(block.proj_out, v @ attn.T).reshape(8, 4, 5)
    torch.testing.assert_close(block(x), expected)


def test_single_frame_equals_2d_network_with_time_summed_kernels():
    """Section 3.4: for T = 1 a k_t = 3 CausalConv3d is a Conv2d whose kernel is summed over time."""
    torch.manual_seed(0)
    x = torch.randn(2, 4, 1, 6, 6, dtype=torch.float64)
    conv = CausalConv3d(4, 5, 3, padding=1).double()
    w2d = conv.conv.weight.sum(2)
    torch.testing.assert_close(conv(x)[:, :, 0], F.conv2d(x[:, :, 0], w2d, conv.conv.bias, padding=1))
    down = Spatial2xTime2x3DDownsample(4, 4).double()
    expected = F.conv2d(
        F.pad(x[:, :, 0], (0, 1, 0, 1)), down.conv.conv.weight.sum(2), down.conv.conv.bias, stride=2
    )
    torch.testing.assert_close(down(x)[:, :, 0], expected)
    up = Spatial2xTime2x3DUpsample(4, 4).double()
    bilinear = F.interpolate(x[:, :, 0], scale_factor=2, mode="bilinear", align_corners=False)
    expected = F.conv2d(bilinear, up.conv.conv.weight.sum(2), up.conv.conv.bias, padding=1)
    torch.testing.assert_close(up(x)[:, :, 0], expected)


def test_2d_blocks_act_per_frame_and_upsampler_counts_frames():
    torch.manual_seed(0)
    block = ResnetBlock2D(8, 16, num_groups=4)
    x = torch.randn(1, 8, 3, 4, 4)
    out = block(x)
    for t in range(3):
        torch.testing.assert_close(out[:, :, t : t + 1], block(x[:, :, t : t + 1]))
    up = Spatial2xTime2x3DUpsample(8, 8)
    y = up(x)
    assert y.shape == (1, 8, 5, 8, 8)
    torch.testing.assert_close(y[:, :, :1], up(x[:, :, :1]))  # frame 0 is upsampled on its own


def test_time_upsampling_matches_a_plain_reference():
    """Frame 0 is only upsampled in space; frames 1.. get x2 linear time interpolation (half-pixel, edge-clamped)."""
    torch.manual_seed(0)
    up = Spatial2xTime2x3DUpsample(2, 2).double()
    up.conv = nn.Identity()  # look at the resampling alone
    x = torch.randn(1, 2, 4, 3, 3, dtype=torch.float64)
    rest = list(x[:, :, 1:].unbind(2))  # 3 frames -> 6
    n = len(rest)
    mixed = [x[:, :, 0]]
    for j in range(n):
        mixed.append(0.75 * rest[j] + 0.25 * rest[max(j - 1, 0)])  # output 2j sits at source j - 1/4
        mixed.append(0.75 * rest[j] + 0.25 * rest[min(j + 1, n - 1)])  # output 2j + 1 at source j + 1/4
    expected = torch.stack(
        [F.interpolate(f, scale_factor=2, mode="bilinear", align_corners=False) for f in mixed], dim=2
    )
    torch.testing.assert_close(up(x), expected)


# ---------------------------------------------------------------------------------------------- tiling
def test_release_tile_plan_at_1024_px():
    with torch.device("meta"):
        model = OSPCausalVAE()
    assert model.config.tile_plan_sizes() == (56, 64, 448)
    assert model.config.encode_tile_plan_sizes() == (448, 8, 56)
    assert tile_starts(128, 56) == [0, 56, 112]
    assert model.decode_tile_plan(128) == [(0, 448), (56, 448), (112, 128)]
    assert sum(c for _, c in model.decode_tile_plan(128)) == 1024
    assert model.decode_tile_plan(64) == [(0, 512)]  # fits one tile: untiled (the release raised here)
    for n in (65, 70, 113, 200):
        assert sum(c for _, c in model.decode_tile_plan(n)) == 8 * n


def test_temporal_chunks_share_one_frame():
    assert temporal_chunks(57, 29) == [(0, 29), (28, 57)]
    assert temporal_chunks(33, 29) == [(0, 29), (28, 33)]
    assert temporal_chunks(29, 29) == [(0, 29)]
    assert temporal_chunks(15, 8) == [(0, 8), (7, 15)]
    assert temporal_chunks(16, 8) == [(0, 8), (7, 15), (14, 16)]
    assert temporal_chunks(10, 8) == [(0, 8), (7, 10)]


def test_tiled_decode_and_encode_stitch_exactly_with_a_local_stand_in():
    """With a per-position stand-in network, tiles overlap on identical content: blending must be the identity."""
    model = tiny_model()
    weight = torch.randn(3, 4)

    def pointwise_decode(z: torch.Tensor) -> torch.Tensor:  # (B, 4, t, h, w) -> (B, 3, 1 + 4 (t-1), 8h, 8w)
        y = torch.einsum("oc,bcthw->bothw", weight, z)
        return F.interpolate(y, scale_factor=(1, 8, 8), mode="nearest")

    def pool_encode(x: torch.Tensor) -> torch.Tensor:  # 8x8 average pooling: local and aligned with the tiles
        y = F.avg_pool3d(x, (1, 8, 8))
        return torch.cat([y, y[:, :1], -y, y[:, :2]], dim=1)  # 8 channels

    z = torch.randn(1, 4, 1, 10, 7)
    untiled = pointwise_decode(z / 0.18215)
    model._decode_tile = pointwise_decode
    tiled = model.decode(z)
    assert tiled.shape == (1, 3, 1, 80, 56)
    torch.testing.assert_close(tiled, untiled, rtol=1e-5, atol=1e-5)
    x = torch.randn(1, 3, 1, 80, 56)
    model._encode_tile = pool_encode
    torch.testing.assert_close(model.encode_moments(x), pool_encode(x), rtol=1e-5, atol=1e-5)


def test_blend_ramps_vertical_then_horizontal():
    """Four constant tiles v(i, j): seams follow y/8 ramps; the corner blends the already-blended neighbours."""
    model = tiny_model()
    v = {(0, 0): 0.0, (0, 3): 1.0, (3, 0): 2.0, (3, 3): 4.0}  # keyed by latent offsets (stride 3)

    def constant_tile(z: torch.Tensor) -> torch.Tensor:
        # the tile's offsets, read from the input
        i, j = round(float(z[0, 0, 0, 0, 0])), round(float(z[0, 1, 0, 0, 0]))
        return torch.full((1, 3, 1, 8 * z.shape[-2], 8 * z.shape[-1]), v[(i, j)])

    rows = torch.arange(6.0)[:, None].expand(6, 6)
    cols = torch.arange(6.0)[None, :].expand(6, 6)
    z = torch.stack([rows, cols, rows, rows])[None, :, None] * 0.18215  # (1, 4, 1, 6, 6)
    model._decode_tile = constant_tile
    out = model.decode(z)[0, 0, 0]  # (48, 48): tile 0 cropped to 24, tile 1 (3 latents = 24 px) whole
    ramp = torch.arange(8.0) / 8
    torch.testing.assert_close(out[0, 24:32], 0.0 * (1 - ramp) + 1.0 * ramp)  # top row: horizontal seam only
    # left column: vertical seam only
    torch.testing.assert_close(out[24:32, 0], 0.0 * (1 - ramp) + 2.0 * ramp)
    above = 0.0 * (1 - ramp) + 1.0 * ramp  # tile (0, 3) after its horizontal blend, as a function of x
    left = 0.0 * (1 - ramp) + 2.0 * ramp  # tile (3, 0) after its vertical blend, as a function of y
    vert = above[None, :] * (1 - ramp[:, None]) + 4.0 * ramp[:, None]
    corner = left[:, None] * (1 - ramp[None, :]) + vert * ramp[None, :]
    torch.testing.assert_close(out[24:32, 24:32], corner)
    assert torch.equal(out[:24, :24], torch.zeros(24, 24)) and torch.equal(
        out[32:, 32:], torch.full((16, 16), 4.0)
    )
    a, b = torch.zeros(1, 1, 1, 4, 4), torch.ones(1, 1, 1, 4, 4)
    # extent clipped to the 4 rows the tiles have
    assert torch.equal(blend_v(a, b, 8)[..., :, 0].flatten(), torch.arange(4.0) / 4)
    assert torch.equal(blend_h(a, b, 0), b)


def test_real_network_tiling_paths():
    """Small inputs decode untiled even with tiling on; one tile == untiled; temporal chunks reuse the first chunk."""
    model = tiny_model()
    torch.manual_seed(2)
    with torch.no_grad():
        z = torch.randn(1, 4, 1, 4, 4)  # exactly one 4-latent tile
        model.use_tiling = False
        untiled = model.decode(z)
        model.use_tiling = True
        assert torch.equal(model.decode(z), untiled)
        big = torch.randn(1, 4, 1, 6, 5)  # 2 x 2 tiles
        out = model.decode(big)
        assert out.shape == (1, 3, 1, 48, 40) and torch.isfinite(out).all()
        torch.testing.assert_close(
            out[..., :24, :24], model._decode_tile(big[..., :4, :4] / 0.18215)[..., :24, :24]
        )
        video = torch.randn(1, 4, 3, 2, 2)  # tile_latent_min_size_t = 2 -> chunks (0, 2), (1, 3)
        out = model.decode(video)
        assert out.shape == (1, 3, 9, 16, 16)
        assert torch.equal(out[:, :, :5], model.decode(video[:, :, :2]))
        pixels = torch.rand(1, 3, 9, 16, 16) * 2 - 1  # tile_sample_min_size_t = 5 -> chunks (0, 5), (4, 9)
        latents = model.encode(pixels)
        assert latents.shape == (1, 4, 3, 2, 2)
        assert torch.equal(latents[:, :, :2], model.encode(pixels[:, :, :5]))


# ---------------------------------------------------------------------------------------------- loading
def test_save_load_round_trip_is_bit_identical(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path / "vae")
    loaded = OSPCausalVAE.from_pretrained(tmp_path / "vae")  # config from config.json
    assert loaded.config == model.config
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x = torch.rand(1, 3, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model.encode(x), loaded.encode(x))
    save_safetensors_atomic(model.state_dict(), tmp_path / "w.safetensors")
    from_st = OSPCausalVAE.from_pretrained(tmp_path / "w.safetensors", config=TINY)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), from_st.state_dict().values()))
    bf16 = OSPCausalVAE.from_pretrained(tmp_path / "vae", dtype=torch.bfloat16)
    assert bf16.dtype == torch.bfloat16
    with torch.no_grad():
        assert bf16.encode(x).dtype == torch.float32


def test_checkpoint_layouts_prefixes_and_loss_keys(tmp_path):
    a, b = tiny_model(seed=0).state_dict(), tiny_model(seed=1).state_dict()
    noisy = {f"module.{k}": v for k, v in a.items()} | {
        "loss.discriminator.w": torch.zeros(3),
        "loss.logvar": 0.0,
    }
    cases = {
        "ema.ckpt": ({"ema_state_dict": a, "state_dict": b, "epoch": 3}, a),
        "gen.ckpt": ({"state_dict": {"gen_model": a, "dis_model": {"x": torch.zeros(1)}}}, a),
        "sd.ckpt": ({"state_dict": noisy, "global_step": 10}, a),
        "model.pt": ({"model": b}, b),
        "top.pth": (dict(a), a),
    }
    for name, (obj, want) in cases.items():
        torch_save_atomic(obj, tmp_path / name)
        loaded = OSPCausalVAE.from_pretrained(tmp_path / name, config=TINY).state_dict()
        assert all(torch.equal(loaded[k], want[k]) for k in want), name
    assert "loss.logvar" not in load_osp_state_dict(tmp_path / "sd.ckpt")


def test_strict_loading_errors(tmp_path):
    good = tiny_model().state_dict()

    def load(obj, name="x.ckpt"):
        torch_save_atomic(obj, tmp_path / name)
        return OSPCausalVAE.from_pretrained(tmp_path / name, config=TINY)

    bad = dict(good)
    bad["decoder.conv_out.conv.weight"] = torch.zeros(3, 8, 1, 3, 3)
    with pytest.raises(ValueError, match=r"shape mismatches: decoder\.conv_out\.conv\.weight"):
        load({"state_dict": bad})
    missing = {k: v for k, v in good.items() if k != "encoder.mid.attn_1.q.conv.bias"}
    with pytest.raises(ValueError, match=r"missing keys: encoder\.mid\.attn_1\.q\.conv\.bias"):
        load({"state_dict": missing})
    with pytest.raises(ValueError, match=r"unexpected keys: encoder\.extra"):
        load({"state_dict": good | {"encoder.extra": torch.zeros(1)}})
    torch_save_atomic({"state_dict": good}, tmp_path / "tiny.ckpt")
    with pytest.raises(ValueError, match="do not match the model config"):
        OSPCausalVAE.from_pretrained(tmp_path / "tiny.ckpt")  # tiny weights against the released config
    (tmp_path / "text.ckpt").write_text("hello, not a checkpoint")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        OSPCausalVAE.from_pretrained(tmp_path / "text.ckpt", config=TINY)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="not a checkpoint"):
        OSPCausalVAE.from_pretrained(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="not a dict"):
        load([1, 2, 3])
    with pytest.raises(ValueError, match="holds no weights"):
        load({"epoch": 1})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        OSPCausalVAE.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="checkpoint.ckpt"):
        OSPCausalVAE.from_pretrained(tmp_path / "empty")
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(ValueError, match="safetensors"):
        OSPCausalVAE.from_pretrained(tmp_path / "broken.safetensors", config=TINY)


def test_config_json_from_the_release_style(tmp_path):
    """Unknown keys are ignored, dotted module paths shortened, lists become tuples; bad values are clear errors."""
    d = {
        "_class_name": "CausalVAEModel",
        "hidden_size": 8,
        "hidden_size_mult": [1, 2, 2, 2],
        "num_groups": 4,
        "attn_resolutions": [],
        "loss_type": "opensora.models.causalvideovae.model.losses.LPIPSWithDiscriminator",
        "encoder_resnet_blocks": [f"some.package.{n}" for n in TINY.encoder_resnet_blocks],
        "encoder_attention": "AttnBlock3DFix",
    }
    (tmp_path / "config.json").write_text(json.dumps(d))
    config = OSPCausalVAEConfig.from_json(tmp_path / "config.json")
    assert config.encoder_resnet_blocks == TINY.encoder_resnet_blocks and config.hidden_size_mult == (
        1,
        2,
        2,
        2,
    )
    assert OSPCausalVAE(config).state_dict().keys() == OSPCausalVAE(TINY).state_dict().keys()
    with pytest.raises(ValueError, match="attn_resolutions"):
        OSPCausalVAEConfig.from_dict(d | {"attn_resolutions": [16]})
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a readable JSON"):
        OSPCausalVAEConfig.from_json(tmp_path / "config.json")

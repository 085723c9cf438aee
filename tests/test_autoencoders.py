"""Autoencoders: identity, and tiny random diffusers VAEs (KL, CogVideoX, Wan) saved and loaded through specs."""

from __future__ import annotations

import pytest
import torch

from ptdit.autoencoders import IdentityAutoencoder, load_autoencoder
from ptdit.autoencoders.base import Autoencoder
from ptdit.autoencoders.diffusers_vae import CogVideoXVAE, KLImageVAE, WanVAE

WAN_MEAN, WAN_STD = [0.1, -0.2, 0.3, 0.0], [1.0, 2.0, 0.5, 4.0]


@pytest.fixture(scope="module")
def vae_dirs(tmp_path_factory):
    from diffusers import AutoencoderKL, AutoencoderKLCogVideoX, AutoencoderKLWan

    root = tmp_path_factory.mktemp("vaes")
    torch.manual_seed(0)
    AutoencoderKL(
        block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4, layers_per_block=1,
        scaling_factor=0.5, shift_factor=0.25,
    ).save_pretrained(root / "kl")  # fmt: skip
    AutoencoderKLCogVideoX(
        block_out_channels=(8, 16, 16), down_block_types=("CogVideoXDownBlock3D",) * 3,
        up_block_types=("CogVideoXUpBlock3D",) * 3, latent_channels=4, layers_per_block=1, norm_num_groups=4,
        temporal_compression_ratio=4, scaling_factor=1.5,
    ).save_pretrained(root / "cog")  # fmt: skip
    AutoencoderKLWan(  # saved as a pipeline directory: the VAE sits in vae/
        base_dim=8, z_dim=4, dim_mult=[1, 2, 2], num_res_blocks=1, temperal_downsample=[True, True],
        latents_mean=WAN_MEAN, latents_std=WAN_STD,
    ).save_pretrained(root / "wan" / "vae")  # fmt: skip
    return root


def _pixels(F, H=16, W=16, B=1, C=3):
    g = torch.Generator().manual_seed(F * 100 + H)
    return torch.rand(B, C, F, H, W, generator=g) * 2 - 1


def test_identity():
    ae = load_autoencoder("identity")
    assert isinstance(ae, IdentityAutoencoder) and isinstance(ae, Autoencoder)
    x = _pixels(2)
    assert torch.equal(ae.encode(x), x) and torch.equal(ae.decode(x), x)
    assert ae.latent_size(3, 32, 24) == (3, 32, 24) and ae.latent_channels == 3
    gray = load_autoencoder("identity:1")
    assert gray.latent_channels == gray.pixel_channels == 1
    assert gray.encode(_pixels(1, C=1)).shape == (1, 1, 1, 16, 16)
    with pytest.raises(ValueError, match="identity:3"):
        gray.encode(x)


def test_kl_image_vae(vae_dirs):
    ae = load_autoencoder(f"vae:{vae_dirs / 'kl'}")
    assert isinstance(ae, KLImageVAE) and not ae.training
    assert (ae.latent_channels, ae.spatial_factor, ae.temporal_factor) == (4, 2, 1)
    assert (ae.scale_factor, ae.shift_factor) == (0.5, 0.25)
    x = _pixels(3, B=2)  # frames are folded into the batch
    z = ae.encode(x)
    assert z.shape == (2, 4, *ae.latent_size(3, 16, 16)) == (2, 4, 3, 8, 8)
    raw = ae.vae.encode(x[:, :, 1]).latent_dist.mean  # frame 1 through the bare diffusers model
    torch.testing.assert_close(z[:, :, 1], (raw - 0.25) * 0.5, atol=1e-5, rtol=1e-5)
    out = ae.decode(z)
    assert out.shape == x.shape and out.dtype == torch.float32
    # the scaling is undone before the diffusers decoder
    torch.testing.assert_close(out[:, :, 1], ae.vae.decode(raw).sample, atol=1e-5, rtol=1e-5)
    assert ae.pixel_size(*z.shape[2:]) == (3, 16, 16)
    assert ae.encode(x[:1, :, :1]).shape == (1, 4, 1, 8, 8)


def test_kl_posterior_sample_and_alias(vae_dirs):
    ae = load_autoencoder(f"sd-vae:{vae_dirs / 'kl'}", sample_posterior=True)
    x = _pixels(1)
    a = ae.encode(x, generator=torch.Generator().manual_seed(0))
    b = ae.encode(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    ae.sample_posterior = False
    assert not torch.allclose(a, ae.encode(x))


def test_kl_tiling_matches_on_a_small_input(vae_dirs):
    ae = load_autoencoder(f"vae:{vae_dirs / 'kl'}")
    z = ae.encode(_pixels(1))
    plain = ae.decode(z)
    ae.enable_tiling()
    assert ae.vae.use_tiling
    torch.testing.assert_close(ae.decode(z), plain)  # below the tile size: same path, same result
    ae.disable_tiling()
    assert not ae.vae.use_tiling


def test_kl_bfloat16(vae_dirs):
    ae = load_autoencoder(f"vae:{vae_dirs / 'kl'}", dtype=torch.bfloat16)
    assert ae.dtype == torch.bfloat16
    z = ae.encode(_pixels(1))
    assert z.dtype == torch.float32 and ae.decode(z).dtype == torch.float32


def test_cogvideox_vae(vae_dirs):
    ae = load_autoencoder(f"cogvideox-vae:{vae_dirs / 'cog'}")
    assert isinstance(ae, CogVideoXVAE)
    assert (ae.latent_channels, ae.spatial_factor, ae.temporal_factor, ae.scale_factor) == (4, 4, 4, 1.5)
    x = _pixels(9)
    z = ae.encode(x)
    assert z.shape == (1, 4, *ae.latent_size(9, 16, 16)) == (1, 4, 3, 4, 4)
    torch.testing.assert_close(z, ae.vae.encode(x).latent_dist.mean * 1.5, atol=1e-5, rtol=1e-5)
    out = ae.decode(z)
    assert out.shape == x.shape and ae.pixel_size(3, 4, 4) == (9, 16, 16)
    torch.testing.assert_close(out, ae.vae.decode(z / 1.5).sample, atol=1e-5, rtol=1e-5)
    assert ae.encode(_pixels(1)).shape == (1, 4, 1, 4, 4)
    with pytest.raises(ValueError, match="odd number of latent frames"):
        ae.encode(_pixels(5))
    with pytest.raises(ValueError, match="1 \\+ 4k frames"):
        ae.encode(_pixels(4))


def test_wan_vae_per_channel_normalisation(vae_dirs):
    ae = load_autoencoder(f"wan-vae:{vae_dirs / 'wan'}")  # finds wan/vae
    assert isinstance(ae, WanVAE)
    assert (ae.latent_channels, ae.spatial_factor, ae.temporal_factor) == (4, 4, 4)
    x = _pixels(5)
    z = ae.encode(x)
    assert z.shape == (1, 4, *ae.latent_size(5, 16, 16)) == (1, 4, 2, 4, 4)
    raw = ae.vae.encode(x).latent_dist.mean
    mean, std = torch.tensor(WAN_MEAN).view(1, 4, 1, 1, 1), torch.tensor(WAN_STD).view(1, 4, 1, 1, 1)
    torch.testing.assert_close(z, (raw - mean) / std, atol=1e-5, rtol=1e-5)
    out = ae.decode(z)
    assert out.shape == x.shape
    torch.testing.assert_close(out, ae.vae.decode(raw).sample, atol=1e-4, rtol=1e-4)
    ae.enable_tiling(tile_sample_min_height=8, tile_sample_min_width=8)
    assert ae.vae.use_tiling and ae.vae.tile_sample_min_height == 8


def test_bad_inputs_and_specs(vae_dirs, tmp_path):
    ae = load_autoencoder(f"vae:{vae_dirs / 'kl'}")
    with pytest.raises(ValueError, match="multiple of 2"):
        ae.encode(_pixels(1, H=15))
    with pytest.raises(ValueError, match=r"\(B, 3, F, H, W\)"):
        ae.encode(_pixels(1)[:, :, 0])
    with pytest.raises(ValueError, match=r"\(B, 4, F, H, W\)"):
        ae.decode(torch.zeros(1, 3, 1, 8, 8))
    with pytest.raises(ValueError, match="unknown autoencoder spec"):
        load_autoencoder("pixels")
    with pytest.raises(ValueError, match="identity:<channels>"):
        load_autoencoder("identity:rgb")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_autoencoder(f"vae:{tmp_path / 'missing'}")
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_autoencoder(f"wan-vae:{tmp_path}")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_autoencoder(f"osp:{tmp_path / 'missing.ckpt'}")  # the OSP module is imported only here

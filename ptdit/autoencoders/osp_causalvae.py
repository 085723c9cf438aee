"""Open-Sora-Plan v1.2 CausalVAE as configured in the Qihoo-T2X release (docs/release.md §7).

Pixels (B, 3, T, H, W) in [-1, 1] <-> latents (B, 4, 1 + (T - 1) / 4, H / 8, W / 8), scaled by 0.18215.
Large inputs are encoded / decoded in overlapping spatial tiles blended with linear ramps and, for long videos,
in temporal chunks that share one frame (docs/release.md §7.5). Loads the released `checkpoint.ckpt` strictly.

Deviations from the released code: inputs that fit in one tile are processed untiled (the release raises
UnboundLocalError there), and a tile grid is used only when the input is larger than one tile.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..io import atomic_write_text, load_state_dict_strict, read_safetensors, torch_save_atomic
from .base import Autoencoder
from .osp_blocks import (
    ATTENTIONS,
    CONVS,
    DOWNSAMPLERS,
    RESNETS,
    TIME_RESAMPLERS,
    UPSAMPLERS,
    CausalConv3d,
    Decoder,
    Encoder,
)

CHECKPOINT_NAME = "checkpoint.ckpt"
CONFIG_NAME = "config.json"
WEIGHT_SUFFIXES = (".ckpt", ".pt", ".pth", ".safetensors")


@dataclass(frozen=True)
class OSPCausalVAEConfig:
    """Hyper-parameters of the CausalVAE; field names are those of the released config.json.

    Defaults are the configuration used by Qihoo-T2X (docs/release.md §7.1): 239,189,991 parameters.
    """

    hidden_size: int = 128  # base channels
    hidden_size_mult: tuple[int, ...] = (1, 2, 4, 4)  # channels per level: 128, 256, 512, 512
    num_res_blocks: int = 2  # resnets per encoder level; the decoder has num_res_blocks + 1
    z_channels: int = 4  # latent channels at the decoder input
    embed_dim: int = 4  # latent channels (quant_conv output / 2)
    double_z: bool = True  # encoder outputs mean and log-variance
    num_groups: int = 32  # GroupNorm groups (32 as released; smaller for tiny test models)
    use_quant_layer: bool = True  # quant_conv / post_quant_conv (1x1x1 CausalConv3d)
    encoder_conv_in: str = "Conv2d"
    encoder_conv_out: str = "CausalConv3d"
    encoder_attention: str = "CausalConv3dAttnBlock"
    encoder_resnet_blocks: tuple[str, ...] = (
        "ResnetBlock2D",
        "ResnetBlock2D",
        "ResnetBlock3D",
        "ResnetBlock3D",
    )
    encoder_spatial_downsample: tuple[str, ...] = (
        "Downsample",
        "Spatial2xTime2x3DDownsample",
        "Spatial2xTime2x3DDownsample",
        "",
    )
    encoder_temporal_downsample: tuple[str, ...] = ("", "", "", "")
    encoder_mid_resnet: str = "ResnetBlock3D"
    decoder_conv_in: str = "CausalConv3d"
    decoder_conv_out: str = "CausalConv3d"
    decoder_attention: str = "CausalConv3dAttnBlock"
    decoder_resnet_blocks: tuple[str, ...] = (
        "ResnetBlock3D",
        "ResnetBlock3D",
        "ResnetBlock3D",
        "ResnetBlock3D",
    )
    decoder_spatial_upsample: tuple[str, ...] = (
        "",
        "SpatialUpsample2x",
        "Spatial2xTime2x3DUpsample",
        "Spatial2xTime2x3DUpsample",
    )
    decoder_temporal_upsample: tuple[str, ...] = ("", "", "", "")
    decoder_mid_resnet: str = "ResnetBlock3D"
    scale_factor: float = 0.18215  # latents = mean * scale_factor (hard-coded in the release)
    use_tiling: bool = True
    tile_sample_min_size: int = 512  # pixel tile; the latent tile is tile_sample_min_size / spatial_factor
    tile_overlap_factor: float = 0.125
    tile_sample_min_size_t: int = 29  # pixel frames per temporal chunk
    tile_latent_min_size_t: int = 8  # latent frames per temporal chunk

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # JSON lists -> tuples; "pkg.module.Name" -> "Name"
            value = getattr(self, f.name)
            if isinstance(value, list | tuple):
                object.__setattr__(self, f.name, tuple(_short_name(v) for v in value))
            elif isinstance(value, str):
                object.__setattr__(self, f.name, _short_name(value))
        n = len(self.hidden_size_mult)
        _check(n >= 1, "hidden_size_mult needs at least one level")
        for name in (
            "encoder_resnet_blocks",
            "encoder_spatial_downsample",
            "encoder_temporal_downsample",
            "decoder_resnet_blocks",
            "decoder_spatial_upsample",
            "decoder_temporal_upsample",
        ):
            _check(
                len(getattr(self, name)) == n,
                f"{name} needs one entry per level ({n}), got {getattr(self, name)}",
            )
        for name, allowed in (
            ("encoder_conv_in", CONVS),
            ("encoder_conv_out", CONVS),
            ("decoder_conv_in", CONVS),
            ("decoder_conv_out", CONVS),
            ("encoder_attention", tuple(ATTENTIONS)),
            ("decoder_attention", tuple(ATTENTIONS)),
            ("encoder_mid_resnet", tuple(RESNETS)),
            ("decoder_mid_resnet", tuple(RESNETS)),
        ):
            _check(
                getattr(self, name) in allowed,
                f"{name}={getattr(self, name)!r} is not supported; use one of {allowed}",
            )
        for name, allowed in (
            ("encoder_resnet_blocks", tuple(RESNETS)),
            ("decoder_resnet_blocks", tuple(RESNETS)),
            ("encoder_spatial_downsample", tuple(DOWNSAMPLERS)),
            ("decoder_spatial_upsample", tuple(UPSAMPLERS)),
            ("encoder_temporal_downsample", ("",)),
            ("decoder_temporal_upsample", ("",)),
        ):
            bad = [v for v in getattr(self, name) if v not in allowed]
            _check(not bad, f"{name} has unsupported entries {bad}; use {allowed}")
        widths = [self.hidden_size * m for m in self.hidden_size_mult]
        _check(
            self.num_groups >= 1 and all(w % self.num_groups == 0 for w in widths),
            f"every level width {widths} must divide by num_groups={self.num_groups}",
        )
        _check(self.double_z, "double_z must be true: the encoder outputs a mean and a log-variance")
        _check(self.num_res_blocks >= 1, f"num_res_blocks must be >= 1, got {self.num_res_blocks}")
        _check(
            self.use_quant_layer or self.z_channels == self.embed_dim,
            "without quant layers z_channels must equal embed_dim",
        )
        down_t = sum(v in TIME_RESAMPLERS for v in self.encoder_spatial_downsample)
        up_t = sum(v in TIME_RESAMPLERS for v in self.decoder_spatial_upsample)
        down_s = sum(v != "" for v in self.encoder_spatial_downsample)
        up_s = sum(v != "" for v in self.decoder_spatial_upsample)
        _check(
            down_t == up_t and down_s == up_s,
            f"encoder and decoder disagree: {down_s} spatial / {down_t} temporal downsamplers vs "
            f"{up_s} / {up_t} upsamplers",
        )
        _check(
            0 <= self.tile_overlap_factor < 1,
            f"tile_overlap_factor must be in [0, 1), got {self.tile_overlap_factor}",
        )
        f = self.spatial_factor
        _check(
            self.tile_sample_min_size % f == 0 and self.tile_sample_min_size >= f,
            f"tile_sample_min_size {self.tile_sample_min_size} must be a positive multiple of {f}",
        )
        stride, limit = self.tile_plan_sizes()[0], self.tile_plan_sizes()[2]
        _check(
            stride >= 1 and stride * f == limit,
            f"tile_sample_min_size {self.tile_sample_min_size} with overlap {self.tile_overlap_factor} gives a latent "
            f"stride of {stride} but a pixel crop of {limit}; pick values where stride * {f} == crop "
            "(e.g. 512 and 0.125)",
        )
        t = self.temporal_factor
        _check(
            self.tile_sample_min_size_t >= 2 and (self.tile_sample_min_size_t - 1) % t == 0,
            f"tile_sample_min_size_t must be 1 + {t} k (k >= 1), got {self.tile_sample_min_size_t}",
        )
        _check(
            self.tile_latent_min_size_t >= 2,
            f"tile_latent_min_size_t must be >= 2, got {self.tile_latent_min_size_t}",
        )

    @property
    def spatial_factor(self) -> int:
        return 2 ** sum(v != "" for v in self.encoder_spatial_downsample)

    @property
    def temporal_factor(self) -> int:
        return 2 ** sum(v in TIME_RESAMPLERS for v in self.encoder_spatial_downsample)

    @property
    def tile_latent_min_size(self) -> int:
        return self.tile_sample_min_size // self.spatial_factor

    def tile_plan_sizes(self) -> tuple[int, int, int]:
        """Decoding: (latent stride between tiles, pixel blend extent, pixel crop per tile) = (56, 64, 448)."""
        stride = int(self.tile_latent_min_size * (1 - self.tile_overlap_factor))
        blend = int(self.tile_sample_min_size * self.tile_overlap_factor)
        return stride, blend, self.tile_sample_min_size - blend

    def encode_tile_plan_sizes(self) -> tuple[int, int, int]:
        """Encoding: (pixel stride between tiles, latent blend extent, latent crop per tile) = (448, 8, 56)."""
        stride = int(self.tile_sample_min_size * (1 - self.tile_overlap_factor))
        blend = int(self.tile_latent_min_size * self.tile_overlap_factor)
        return stride, blend, self.tile_latent_min_size - blend

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v, tuple) else v) for f, v in _items(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OSPCausalVAEConfig:
        """Build from a config dict (ours or the released config.json); unknown keys are ignored.

        A non-empty `attn_resolutions` (per-level attention) is not part of this architecture and is rejected.
        """
        if d.get("attn_resolutions"):
            raise ValueError(
                f"attn_resolutions={d['attn_resolutions']} (per-level attention) is not supported"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def from_json(cls, path: str | Path) -> OSPCausalVAEConfig:
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path} is not a readable JSON config ({e})") from None
        if not isinstance(d, dict):
            raise ValueError(f"{path} must hold a JSON object, got {type(d).__name__}")
        try:
            return cls.from_dict(d)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"{path}: {e}. Fix the file, or pass config=OSPCausalVAEConfig() to use the released configuration"
            ) from None


def _items(config: OSPCausalVAEConfig):
    return ((f, getattr(config, f.name)) for f in dataclasses.fields(config))


def _short_name(v: Any) -> Any:
    return v.rsplit(".", 1)[-1] if isinstance(v, str) else v


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass
class DiagonalGaussian:
    """The encoder's posterior N(mean, exp(logvar)) over unscaled latents, each (B, z, t, h, w)."""

    mean: Tensor
    logvar: Tensor

    @classmethod
    def from_moments(cls, moments: Tensor) -> DiagonalGaussian:
        """moments (B, 2 z, t, h, w): mean then log-variance, clamped to [-30, 20] as in the release."""
        mean, logvar = moments.chunk(2, dim=1)
        return cls(mean, logvar.clamp(-30.0, 20.0))

    @property
    def std(self) -> Tensor:
        return torch.exp(0.5 * self.logvar)

    def mode(self) -> Tensor:
        return self.mean

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(
            self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        return self.mean + self.std * noise


# ---------------------------------------------------------------------------------------------- tiling helpers
def tile_starts(size: int, stride: int) -> list[int]:
    """Offsets of the tiles along one axis: 0, stride, 2 stride, ... < size (128 latents, stride 56: 0, 56, 112)."""
    return list(range(0, size, stride))


def temporal_chunks(frames: int, chunk: int) -> list[tuple[int, int]]:
    """[start, end) frame ranges of `chunk` frames that share their first frame with the previous chunk's last.

    E.g. 57 pixel frames, chunk 29: (0, 29), (28, 57). A last chunk of one frame (only the shared one) is not made.
    """
    step = chunk - 1
    return [(s, min(s + chunk, frames)) for s in range(0, frames, step) if s == 0 or s + 1 < frames]


def _ramp(extent: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """(1 - y / extent, y / extent) for y = 0..extent-1: float64 rounded to float32, like the release's scalars."""
    new = torch.arange(extent, dtype=torch.float64, device=device) / extent
    return (1 - new).float(), new.float()


def blend_v(above: Tensor, tile: Tensor, extent: int) -> Tensor:
    """Blend the first rows of `tile` with the last rows of the tile above: weight y / e for the new tile."""
    e = min(above.shape[-2], tile.shape[-2], extent)
    if e <= 0:
        return tile
    w_old, w_new = (w[:, None] for w in _ramp(e, tile.device))  # (e, 1) each
    tile = tile.clone()  # products in float32, each rounded to the tile's dtype, then summed (as released)
    tile[..., :e, :] = (above[..., -e:, :] * w_old).to(tile.dtype) + (tile[..., :e, :] * w_new).to(tile.dtype)
    return tile


def blend_h(left: Tensor, tile: Tensor, extent: int) -> Tensor:
    """Blend the first columns of `tile` with the last columns of the tile to its left."""
    e = min(left.shape[-1], tile.shape[-1], extent)
    if e <= 0:
        return tile
    w_old, w_new = _ramp(e, tile.device)  # (e,) each
    tile = tile.clone()
    tile[..., :e] = (left[..., -e:] * w_old).to(tile.dtype) + (tile[..., :e] * w_new).to(tile.dtype)
    return tile


def run_tiled(
    x: Tensor, fn: Callable[[Tensor], Tensor], tile: int, stride: int, blend: int, crop: int
) -> Tensor:
    """Apply `fn` to overlapping (tile x tile) windows of x (..., H, W) and stitch the results.

    Tiles start every `stride` along h and w. Each output tile is blended with the (already blended) tile above,
    then with the one to its left, over `blend` rows / columns, then cropped to (crop x crop) and concatenated.
    """
    starts_h, starts_w = tile_starts(x.shape[-2], stride), tile_starts(x.shape[-1], stride)
    rows = [[fn(x[..., i : i + tile, j : j + tile]) for j in starts_w] for i in starts_h]
    out_rows = []
    for i, row in enumerate(rows):
        for j in range(len(row)):
            if i > 0:
                row[j] = blend_v(rows[i - 1][j], row[j], blend)
            if j > 0:
                row[j] = blend_h(row[j - 1], row[j], blend)
        out_rows.append(torch.cat([t[..., :crop, :crop] for t in row], dim=-1))
    return torch.cat(out_rows, dim=-2)


# ---------------------------------------------------------------------------------------------- the model
class OSPCausalVAE(Autoencoder):
    """Open-Sora-Plan v1.2 CausalVAE: 8x spatial, 4x causal temporal compression, 4 latent channels.

    encode: pixels (B, 3, T, H, W) in [-1, 1], T = 1 + 4 k, H and W multiples of 8 ->
            latents (B, 4, 1 + (T - 1) / 4, H / 8, W / 8) = posterior mean * 0.18215 (or a sample).
    decode: latents (B, 4, t, h, w) -> pixels (B, 3, 1 + 4 (t - 1), 8 h, 8 w), about [-1, 1], not clamped.
    Computation runs in the weights' dtype; results come back in the input's dtype.
    """

    def __init__(self, config: OSPCausalVAEConfig | None = None) -> None:
        super().__init__()
        config = config or OSPCausalVAEConfig()
        self.config = config
        self.latent_channels = config.embed_dim
        self.spatial_factor = config.spatial_factor
        self.temporal_factor = config.temporal_factor
        self.scale_factor = config.scale_factor
        self.shift_factor = 0.0
        self.use_tiling = config.use_tiling
        z2 = 2 * config.z_channels if config.double_z else config.z_channels
        common = dict(
            hidden_size=config.hidden_size,
            hidden_size_mult=config.hidden_size_mult,
            num_res_blocks=config.num_res_blocks,
            num_groups=config.num_groups,
        )
        self.encoder = Encoder(
            out_channels=z2,
            conv_in=config.encoder_conv_in,
            conv_out=config.encoder_conv_out,
            attention=config.encoder_attention,
            resnet_blocks=config.encoder_resnet_blocks,
            spatial_downsample=config.encoder_spatial_downsample,
            mid_resnet=config.encoder_mid_resnet,
            **common,
        )
        self.decoder = Decoder(
            in_channels=config.z_channels,
            conv_in=config.decoder_conv_in,
            conv_out=config.decoder_conv_out,
            attention=config.decoder_attention,
            resnet_blocks=config.decoder_resnet_blocks,
            spatial_upsample=config.decoder_spatial_upsample,
            mid_resnet=config.decoder_mid_resnet,
            **common,
        )
        if config.use_quant_layer:
            self.quant_conv = CausalConv3d(z2, 2 * config.embed_dim, 1)
            self.post_quant_conv = CausalConv3d(config.embed_dim, config.z_channels, 1)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ untiled pieces (one tile / chunk)
    def _encode_tile(self, x: Tensor) -> Tensor:
        """Pixels (B, 3, T, H, W) -> moments (B, 2 embed_dim, t, h, w), no tiling."""
        h = self.encoder(x)
        return self.quant_conv(h) if self.config.use_quant_layer else h

    def _decode_tile(self, z: Tensor) -> Tensor:
        """Unscaled latents (B, embed_dim, t, h, w) -> pixels (B, 3, T, H, W), no tiling."""
        if self.config.use_quant_layer:
            z = self.post_quant_conv(z)
        return self.decoder(z)

    # ------------------------------------------------------------------ spatial tiling
    def _encode_2d(self, x: Tensor) -> Tensor:
        c = self.config
        if not self.use_tiling or max(x.shape[-2:]) <= c.tile_sample_min_size:
            return self._encode_tile(x)
        stride, blend, crop = c.encode_tile_plan_sizes()
        return run_tiled(x, self._encode_tile, c.tile_sample_min_size, stride, blend, crop)

    def _decode_2d(self, z: Tensor) -> Tensor:
        c = self.config
        if not self.use_tiling or max(z.shape[-2:]) <= c.tile_latent_min_size:
            return self._decode_tile(z)
        stride, blend, crop = c.tile_plan_sizes()
        return run_tiled(z, self._decode_tile, c.tile_latent_min_size, stride, blend, crop)

    def decode_tile_plan(self, size: int) -> list[tuple[int, int]]:
        """(latent offset, pixel crop) of each decode tile along an axis of `size` latents.

        Released config, 128 latents (1024 px): [(0, 448), (56, 448), (112, 128)]. One tile if size fits.
        """
        c = self.config
        if not self.use_tiling or size <= c.tile_latent_min_size:
            return [(0, size * self.spatial_factor)]
        stride, _, crop = c.tile_plan_sizes()
        f, tile = self.spatial_factor, c.tile_latent_min_size
        return [(s, min(crop, (min(s + tile, size) - s) * f)) for s in tile_starts(size, stride)]

    # ------------------------------------------------------------------ temporal chunking + public API
    def encode_moments(self, pixels: Tensor) -> Tensor:
        """Pixels (B, 3, T, H, W) -> unscaled moments (B, 2 embed_dim, 1 + (T - 1) / 4, H / 8, W / 8)."""
        self._check_pixels(pixels)
        x = pixels.to(self.dtype)
        T, chunk = x.shape[2], self.config.tile_sample_min_size_t
        if not self.use_tiling or T <= chunk:
            return self._encode_2d(x)
        parts = []
        for k, (s, e) in enumerate(temporal_chunks(T, chunk)):
            m = self._encode_2d(x[:, :, s:e])
            # a later chunk's first latent re-encodes the frame it shares with the previous chunk
            parts.append(m if k == 0 else m[:, :, 1:])
        return torch.cat(parts, dim=2)

    def encode_posterior(self, pixels: Tensor) -> DiagonalGaussian:
        """Pixels (B, 3, T, H, W) -> the posterior over unscaled latents (mean, logvar each (B, 4, t, h, w))."""
        return DiagonalGaussian.from_moments(self.encode_moments(pixels))

    def encode(
        self, pixels: Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> Tensor:
        """Pixels (B, 3, T, H, W) in [-1, 1] -> latents (B, 4, t, h, w) * scale_factor (mean, or a sample)."""
        posterior = self.encode_posterior(pixels)
        z = posterior.sample(generator) if sample else posterior.mode()
        return (z * self.scale_factor).to(pixels.dtype)

    def decode(self, latents: Tensor) -> Tensor:
        """Scaled latents (B, 4, t, h, w) -> pixels (B, 3, 1 + 4 (t - 1), 8 h, 8 w), about [-1, 1]."""
        if latents.ndim != 5 or latents.shape[1] != self.latent_channels:
            raise ValueError(
                f"decode expects latents (B, {self.latent_channels}, t, h, w), got shape {tuple(latents.shape)}"
            )
        z = latents.to(self.dtype) / self.scale_factor
        T, chunk = z.shape[2], self.config.tile_latent_min_size_t
        if not self.use_tiling or T <= chunk:
            return self._decode_2d(z).to(latents.dtype)
        parts = []
        for k, (s, e) in enumerate(temporal_chunks(T, chunk)):
            d = self._decode_2d(z[:, :, s:e])
            parts.append(d if k == 0 else d[:, :, 1:])  # drop the frame decoded from the shared latent
        return torch.cat(parts, dim=2).to(latents.dtype)

    def _check_pixels(self, pixels: Tensor) -> None:
        if pixels.ndim != 5 or pixels.shape[1] != 3:
            raise ValueError(f"encode expects pixels (B, 3, T, H, W), got shape {tuple(pixels.shape)}")
        T, H, W = pixels.shape[2:]
        t, s = self.temporal_factor, self.spatial_factor
        if (T - 1) % t or H % s or W % s:
            raise ValueError(
                f"pixels of {T} frames x {H} x {W}: the CausalVAE needs 1 + {t} k frames and height and width "
                f"that are multiples of {s}; crop or pad the input"
            )

    # ------------------------------------------------------------------ checkpoints
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write `checkpoint.ckpt` ({"state_dict": ...}) and `config.json` atomically; returns the directory."""
        directory = Path(directory)
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        torch_save_atomic({"state_dict": state}, directory / CHECKPOINT_NAME)
        atomic_write_text(directory / CONFIG_NAME, json.dumps(self.config.to_dict(), indent=2) + "\n")
        return directory

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        config: OSPCausalVAEConfig | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> OSPCausalVAE:
        """Load the released weights strictly.

        path: a directory with `checkpoint.ckpt` (or one .ckpt / .pt / .pth / .safetensors file) and optionally
        `config.json`, or a weights file. config: overrides config.json (default: the released configuration).
        The state dict is taken from `ema_state_dict`, else `state_dict` (its `gen_model` if present), else
        `model`, else the top level; a "module." prefix is stripped and `loss.*` keys are ignored. Any missing,
        unexpected or mis-shaped key is a ValueError.
        """
        weights, config_path = _resolve_paths(Path(path))
        if config is None:
            config = OSPCausalVAEConfig.from_json(config_path) if config_path else OSPCausalVAEConfig()
        state = load_osp_state_dict(weights)
        with torch.device("meta"):
            model = cls(config)
        load_state_dict_strict(model, state, source=str(weights), assign=True)
        return model.to(device=device, dtype=dtype).eval()


def _resolve_paths(path: Path) -> tuple[Path, Path | None]:
    """(weights file, config.json or None) for a directory or a weights file."""
    if not path.exists():
        raise FileNotFoundError(f"OSP CausalVAE path {path} does not exist")
    if path.is_file():
        if path.suffix not in WEIGHT_SUFFIXES:
            raise ValueError(f"{path} is not a checkpoint: expected one of {WEIGHT_SUFFIXES}")
        return path, None
    config_path = path / CONFIG_NAME
    config_path = config_path if config_path.is_file() else None
    if (path / CHECKPOINT_NAME).is_file():
        return path / CHECKPOINT_NAME, config_path
    found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if len(found) != 1:
        raise FileNotFoundError(
            f"{path} must hold {CHECKPOINT_NAME} (or exactly one {'/'.join(WEIGHT_SUFFIXES)} file); "
            f"found {[p.name for p in found]}"
        )
    return found[0], config_path


def load_osp_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read a CausalVAE checkpoint file into a flat {key: tensor} dict with the release's key names.

    Picks `ema_state_dict` -> `state_dict` (-> `gen_model`) -> `model` -> top level, strips "module.", drops
    `loss.*` (the training loss's LPIPS / discriminator weights). Not a checkpoint -> ValueError.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        obj: Any = read_safetensors(path)
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch.load raises many types on foreign or corrupt files
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(
                f"{path} is not a readable PyTorch checkpoint (torch.load with weights_only=True failed: {first})"
            ) from None
    state = _select_state_dict(obj, path)
    out = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise ValueError(f"{path}: state-dict key {key!r} is not a string")
        key = key.removeprefix("module.")
        if key.startswith("loss."):
            continue
        if not isinstance(value, Tensor):
            raise ValueError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor")
        out[key] = value
    return out


def _select_state_dict(obj: Any, path: Path) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a dict of weights")
    for key in ("ema_state_dict", "state_dict", "model"):
        sub = obj.get(key)
        if isinstance(sub, Mapping) and sub:
            if key == "state_dict" and isinstance(sub.get("gen_model"), Mapping):
                sub = sub["gen_model"]
            return sub
    if not any(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(
            f"{path} holds no weights: no ema_state_dict / state_dict / model entry and no tensors at the top level "
            f"(keys: {sorted(map(str, obj))[:10]})"
        )
    return obj

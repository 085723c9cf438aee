"""Building blocks of the Open-Sora-Plan v1.2 CausalVAE: causal 3-D convs, resnets, resamplers, attention.

Written from docs/release.md §7 (no code taken from Open-Sora-Plan or MindSpeed-MM). Module and
attribute names follow the released checkpoint, so `state_dict()` keys match it exactly.

Every tensor here is a video (B, C, T, H, W). "2-D" modules (`FrameConv2d`, `ResnetBlock2D`, `Downsample`) run
on each frame independently; "3-D" modules mix frames causally: output frame t never sees input frames > t,
except through the GroupNorm statistics of 3-D blocks, which (as released) are taken over (C / G, T, H, W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _triple(v: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return (v, v, v) if isinstance(v, int) else tuple(v)


def frames_to_batch(x: Tensor) -> Tensor:
    """(B, C, T, H, W) -> (B*T, C, H, W), frame-major within each sample."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


def batch_to_frames(x: Tensor, batch: int) -> Tensor:
    """(B*T, C, H, W) -> (B, C, T, H, W): the inverse of `frames_to_batch`."""
    bt, c, h, w = x.shape
    return x.reshape(batch, bt // batch, c, h, w).transpose(1, 2)


def group_norm(channels: int, num_groups: int) -> nn.GroupNorm:
    """The CausalVAE norm: GroupNorm(num_groups, eps 1e-6, affine)."""
    return nn.GroupNorm(num_groups, channels, eps=1e-6, affine=True)


class CausalConv3d(nn.Module):
    """Conv3d, causal in time: (B, C_in, T, H, W) -> (B, C_out, T', H', W').

    The first frame is repeated k_t - 1 times in front (no temporal zero padding), h and w are zero-padded by
    `padding`; at stride 1 T' = T. The weight sits under `.conv.` as in the released checkpoint.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int],
        stride: int | tuple[int, int, int] = 1,
        padding: int | tuple[int, int, int] = 0,
    ) -> None:
        super().__init__()
        kernel, pad = _triple(kernel_size), _triple(padding)
        self.time_pad = kernel[0] - 1
        self.conv = nn.Conv3d(
            in_channels, out_channels, kernel, stride=_triple(stride), padding=(0, pad[1], pad[2])
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.time_pad:
            first = x[:, :, :1].expand(-1, -1, self.time_pad, -1, -1)  # (B, C, k_t - 1, H, W)
            x = torch.cat([first, x], dim=2)
        return self.conv(x)


class FrameConv2d(nn.Conv2d):
    """nn.Conv2d applied to every frame of a (B, C, T, H, W) video (4-D inputs pass straight through)."""

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 4:
            return super().forward(x)
        return batch_to_frames(super().forward(frames_to_batch(x)), x.shape[0])


class ResnetBlock2D(nn.Module):
    """Per-frame resnet: GN -> SiLU -> conv3x3 -> GN -> SiLU -> conv3x3, plus x (1x1 `nin_shortcut` if C changes).

    (B, C_in, T, H, W) -> (B, C_out, T, H, W); norms see one frame at a time.
    """

    def __init__(self, in_channels: int, out_channels: int, num_groups: int = 32) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels, num_groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels, num_groups)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        batch, x = x.shape[0], frames_to_batch(x)  # (B*T, C, H, W)
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        if hasattr(self, "nin_shortcut"):
            x = self.nin_shortcut(x)
        return batch_to_frames(x + h, batch)


class ResnetBlock3D(nn.Module):
    """Causal 3-D resnet: GN -> SiLU -> CausalConv3d 3^3 -> GN -> SiLU -> CausalConv3d 3^3, plus x.

    (B, C_in, T, H, W) -> (B, C_out, T, H, W); the shortcut is a 1x1x1 CausalConv3d `nin_shortcut` if C changes.
    """

    def __init__(self, in_channels: int, out_channels: int, num_groups: int = 32) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels, num_groups)
        self.conv1 = CausalConv3d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels, num_groups)
        self.conv2 = CausalConv3d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = CausalConv3d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        if hasattr(self, "nin_shortcut"):
            x = self.nin_shortcut(x)
        return x + h


class Downsample(nn.Module):
    """Per-frame 2x spatial downsampling: zero-pad right/bottom by 1, Conv2d 3x3 stride 2.

    (B, C, T, H, W) -> (B, C_out, T, H // 2, W // 2).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = FrameConv2d(in_channels, out_channels, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Spatial2xTime2x3DDownsample(nn.Module):
    """2x down in t, h and w: zero-pad right/bottom by 1, CausalConv3d 3^3 stride 2.

    (B, C, T, H, W) -> (B, C_out, 1 + (T - 1) // 2, H // 2, W // 2).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = CausalConv3d(in_channels, out_channels, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class SpatialUpsample2x(nn.Module):
    """Nearest 2x in h and w, then CausalConv3d (1, 3, 3): (B, C, T, H, W) -> (B, C_out, T, 2H, 2W)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = CausalConv3d(in_channels, out_channels, (1, 3, 3), padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=(1, 2, 2), mode="nearest"))


class Spatial2xTime2x3DUpsample(nn.Module):
    """Trilinear 2x (frame 0: x(1, 2, 2); frames 1..: x(2, 2, 2)), then CausalConv3d 3^3.

    (B, C, T, H, W) -> (B, C_out, 1 + 2 (T - 1), 2H, 2W); align_corners False, as released.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = CausalConv3d(in_channels, out_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        first = F.interpolate(x[:, :, :1], scale_factor=(1, 2, 2), mode="trilinear", align_corners=False)
        if x.shape[2] > 1:
            rest = F.interpolate(x[:, :, 1:], scale_factor=(2, 2, 2), mode="trilinear", align_corners=False)
            first = torch.cat([first, rest], dim=2)
        return self.conv(first)


class CausalConv3dAttnBlock(nn.Module):
    """Single-head self-attention within each frame over its h*w positions, plus x.

    GN -> 1x1x1 q, k, v -> softmax(q k^T / sqrt(C)) v per frame -> 1x1x1 proj_out. (B, C, T, H, W) -> same.
    """

    def __init__(self, channels: int, num_groups: int = 32) -> None:
        super().__init__()
        self.norm = group_norm(channels, num_groups)
        self.q = CausalConv3d(channels, channels, 1)
        self.k = CausalConv3d(channels, channels, 1)
        self.v = CausalConv3d(channels, channels, 1)
        self.proj_out = CausalConv3d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        n = self.norm(x)

        def tokens(y: Tensor) -> Tensor:  # (B, C, T, H, W) -> (B*T, 1, H*W, C): one head per frame
            return y.permute(0, 2, 3, 4, 1).reshape(b * t, 1, h * w, c)

        q, k, v = tokens(self.q(n)), tokens(self.k(n)), tokens(self.v(n))
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T * C^-1/2) v, (B*T, 1, H*W, C)
        out = out.reshape(b, t, h, w, c).permute(0, 4, 1, 2, 3)  # (B, C, T, H, W)
        return x + self.proj_out(out)


# names used by the released configuration (and its config.json) -> classes
RESNETS = {"ResnetBlock2D": ResnetBlock2D, "ResnetBlock3D": ResnetBlock3D}
DOWNSAMPLERS = {
    "": None,
    "Downsample": Downsample,
    "Spatial2xTime2x3DDownsample": Spatial2xTime2x3DDownsample,
}
UPSAMPLERS = {
    "": None,
    "SpatialUpsample2x": SpatialUpsample2x,
    "Spatial2xTime2x3DUpsample": Spatial2xTime2x3DUpsample,
}
ATTENTIONS = {"CausalConv3dAttnBlock": CausalConv3dAttnBlock, "AttnBlock3DFix": CausalConv3dAttnBlock}
CONVS = ("Conv2d", "CausalConv3d")
TIME_RESAMPLERS = ("Spatial2xTime2x3DDownsample", "Spatial2xTime2x3DUpsample")


def make_conv(kind: str, in_channels: int, out_channels: int) -> nn.Module:
    """A 3x3 stem conv: "Conv2d" (per frame, weight at `.weight`) or "CausalConv3d" (weight at `.conv.weight`)."""
    if kind == "Conv2d":
        return FrameConv2d(in_channels, out_channels, 3, padding=1)
    return CausalConv3d(in_channels, out_channels, 3, padding=1)


class Mid(nn.Module):
    """Middle of encoder and decoder: block_1 -> attn_1 -> block_2 at constant width."""

    def __init__(self, channels: int, resnet: str, attention: str, num_groups: int) -> None:
        super().__init__()
        self.block_1 = RESNETS[resnet](channels, channels, num_groups)
        self.attn_1 = ATTENTIONS[attention](channels, num_groups)
        self.block_2 = RESNETS[resnet](channels, channels, num_groups)

    def forward(self, x: Tensor) -> Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class Level(nn.Module):
    """One resolution level: `block` (a list of resnets), then an optional `downsample` / `upsample`."""

    def __init__(self, blocks: list[nn.Module], resample_name: str = "", resampler: nn.Module | None = None):
        super().__init__()
        self.block = nn.ModuleList(blocks)
        if resampler is not None:
            self.add_module(resample_name, resampler)
        self.resample_name = resample_name if resampler is not None else ""

    def forward(self, x: Tensor) -> Tensor:
        for block in self.block:
            x = block(x)
        return getattr(self, self.resample_name)(x) if self.resample_name else x


class Encoder(nn.Module):
    """Pixels (B, 3, T, H, W) -> moments (B, 2 z, 1 + (T - 1) / 4, H / 8, W / 8) at the released config.

    conv_in -> down[0..L-1] (num_res_blocks resnets each, then the level's spatial downsampler) -> mid ->
    norm_out -> SiLU -> conv_out (2 z channels: mean and log-variance when double_z).
    """

    def __init__(
        self,
        hidden_size: int,
        hidden_size_mult: tuple[int, ...],
        num_res_blocks: int,
        out_channels: int,
        conv_in: str,
        conv_out: str,
        attention: str,
        resnet_blocks: tuple[str, ...],
        spatial_downsample: tuple[str, ...],
        mid_resnet: str,
        num_groups: int,
    ) -> None:
        super().__init__()
        self.conv_in = make_conv(conv_in, 3, hidden_size)
        levels, block_in = [], hidden_size
        for i, mult in enumerate(hidden_size_mult):
            block_out = hidden_size * mult
            blocks = []
            for _ in range(num_res_blocks):
                blocks.append(RESNETS[resnet_blocks[i]](block_in, block_out, num_groups))
                block_in = block_out
            down = DOWNSAMPLERS[spatial_downsample[i]]
            levels.append(Level(blocks, "downsample", down(block_in, block_in) if down is not None else None))
        self.down = nn.ModuleList(levels)
        self.mid = Mid(block_in, mid_resnet, attention, num_groups)
        self.norm_out = group_norm(block_in, num_groups)
        self.conv_out = make_conv(conv_out, block_in, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    """Latents (B, z, t, h, w) -> pixels (B, 3, 1 + 4 (t - 1), 8 h, 8 w) at the released config.

    conv_in -> mid -> up[L-1..0] (num_res_blocks + 1 resnets each, then the level's upsampler) -> norm_out ->
    SiLU -> conv_out. `up` is indexed by level, like the encoder's `down`, and run from the deepest level up.
    """

    def __init__(
        self,
        hidden_size: int,
        hidden_size_mult: tuple[int, ...],
        num_res_blocks: int,
        in_channels: int,
        conv_in: str,
        conv_out: str,
        attention: str,
        resnet_blocks: tuple[str, ...],
        spatial_upsample: tuple[str, ...],
        mid_resnet: str,
        num_groups: int,
    ) -> None:
        super().__init__()
        block_in = hidden_size * hidden_size_mult[-1]
        self.conv_in = make_conv(conv_in, in_channels, block_in)
        self.mid = Mid(block_in, mid_resnet, attention, num_groups)
        levels: list[Level] = []
        for i in reversed(range(len(hidden_size_mult))):
            block_out = hidden_size * hidden_size_mult[i]
            blocks = []
            for _ in range(num_res_blocks + 1):
                blocks.append(RESNETS[resnet_blocks[i]](block_in, block_out, num_groups))
                block_in = block_out
            up = UPSAMPLERS[spatial_upsample[i]]
            levels.insert(0, Level(blocks, "upsample", up(block_in, block_in) if up is not None else None))
        self.up = nn.ModuleList(levels)
        self.norm_out = group_norm(block_in, num_groups)
        self.conv_out = make_conv(conv_out, block_in, 3)

    def forward(self, z: Tensor) -> Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))

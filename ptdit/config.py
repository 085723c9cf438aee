"""PTDiTConfig: the one typed description of a PT-DiT model, with the paper's presets.

A config holds JSON primitives only (ints, floats, strings, bools and the window as a 3-tuple), so
`config.to_dict()` / `PTDiTConfig.from_dict(d)` round-trip through `config.json`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Window = tuple[int, int, int]

PROXY_MODES = ("mean", "random", "topleft")
INJECTIONS = ("cross_attention", "interpolate", "linear")
ATTENTIONS = ("proxy", "full")
BLOCKS = ("official", "lean")
NUMERICS = ("default", "release")


@dataclass(frozen=True)
class PTDiTConfig:
    """Hyper-parameters of a PT-DiT (or of its full-attention baseline).

    Sizes follow the paper's Table 4; the default sizes are the released Qihoo-T2I-1B (PT-DiT-XL). A new model
    predicts `in_channels` outputs (DiT/PixArt); the release's 8-output layout is the `PT-DiT-XL` preset's and the
    converter's (`out_channels=8`).
    """

    depth: int = 28  # number of blocks
    hidden_size: int = (
        1152  # D; must divide by 16 for the 3-D sin-cos positions (D/4 time, 3D/8 + 3D/8 space)
    )
    num_heads: int = 16  # attention heads in every attention of a block
    patch_size: int = 2  # p: 2-D patches per frame (no temporal patching, as released)
    in_channels: int = 4  # latent channels
    out_channels: int | None = None  # None = in_channels (DiT/PixArt); the release has 8 (learned-sigma half)
    caption_channels: int = 4096  # width of the text encoder states (4096 T5-XXL, 384 MiniLM)
    window: Window = (1, 8, 8)  # (p_f, p_h, p_w): the compression ratio = TCM window = one proxy per window
    proxy: str = "mean"  # how a window yields its proxy: "mean" (paper v2), "random" (paper v1), "topleft"
    injection: str = (
        "cross_attention"  # proxies -> tokens: "cross_attention", "interpolate", "linear" (Tab. 2c)
    )
    use_giim: bool = True  # global information interaction module (Tab. 2a)
    use_window_attention: bool = True  # TCM window attention (Tab. 2a)
    use_shift_window: bool = True  # TCM shifted-window attention (Tab. 2a)
    attention: str = "proxy"  # "proxy" = PT-DiT block; "full" = PixArt-alpha block (global self-attention)
    block: str = (
        "official"  # "official" = released block; "lean" = the 16.5 D^2 block of the paper's FLOP curves
    )
    mlp_ratio: float = 4.0  # FFN width = mlp_ratio * D
    norm_eps: float = 1e-6
    pad: bool = False  # pad inputs whose token grid does not divide by the window, then crop the output
    numerics: str = "default"  # "release": additive -10000 masks, timestep rounded to the weights' dtype
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # free-form notes (e.g. provenance)

    def __post_init__(self) -> None:
        # types and ranges first (each message names the field, its value and what it must be), so that a bad
        # value is one clear ValueError here, not a TypeError or a negative size deep inside the build
        if self.out_channels is None:
            object.__setattr__(self, "out_channels", self.in_channels)
        for name in ("depth", "hidden_size", "num_heads", "patch_size", "in_channels", "out_channels",
                     "caption_channels"):  # fmt: skip
            object.__setattr__(self, name, _check_int(name, getattr(self, name)))
        window = self.window
        _check(
            isinstance(window, (list, tuple))
            and len(window) == 3
            and all(_is_int(v) and v >= 1 for v in window),
            f"window must be three positive ints (p_f, p_h, p_w), got {window!r}",
        )
        object.__setattr__(self, "window", tuple(int(v) for v in window))
        for name in ("use_giim", "use_window_attention", "use_shift_window", "pad"):
            value = getattr(self, name)
            _check(isinstance(value, bool), f"{name} must be true or false, got {value!r}")
        for name in ("mlp_ratio", "norm_eps"):
            value = getattr(self, name)
            _check(
                _is_number(value) and math.isfinite(value) and value > 0,
                f"{name} must be a finite number > 0, got {value!r}",
            )
            object.__setattr__(self, name, float(value))
        _check(isinstance(self.extra, dict), f"extra must be a mapping, got {self.extra!r}")
        _check(
            self.hidden_size % self.num_heads == 0,
            f"hidden_size {self.hidden_size} must divide by num_heads {self.num_heads}",
        )
        _check(
            self.hidden_size % 16 == 0,
            f"hidden_size {self.hidden_size} must divide by 16 (3-D sin-cos split D/4 + 3D/8 + 3D/8)",
        )
        _check(
            self.mlp_hidden >= 1,
            f"mlp_ratio {self.mlp_ratio} gives an FFN of width {self.mlp_hidden}: use mlp_ratio >= {0.5 / self.hidden_size:g}",
        )
        _check(
            self.out_channels >= self.in_channels,
            f"out_channels {self.out_channels} must be >= in_channels {self.in_channels} "
            "(the first in_channels outputs are the prediction)",
        )
        for name, value, allowed in (
            ("proxy", self.proxy, PROXY_MODES),
            ("injection", self.injection, INJECTIONS),
            ("attention", self.attention, ATTENTIONS),
            ("block", self.block, BLOCKS),
            ("numerics", self.numerics, NUMERICS),
        ):
            _check(isinstance(value, str) and value in allowed, f"{name}={value!r} is not one of {allowed}")
        if self.attention == "proxy":
            _check(
                self.use_giim or self.use_window_attention or self.use_shift_window,
                "a proxy block needs at least one of use_giim, use_window_attention, use_shift_window",
            )

    # ------------------------------------------------------------------ derived
    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def mlp_hidden(self) -> int:
        return int(round(self.hidden_size * self.mlp_ratio))

    @property
    def prediction_channels(self) -> int:
        """Output channels that carry the prediction: the first `in_channels` (the rest is learned-sigma)."""
        return self.in_channels

    # ------------------------------------------------------------------ (de)serialisation
    def replace(self, **overrides: Any) -> PTDiTConfig:
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown PTDiTConfig field(s) {unknown}; valid fields: {field_names()}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["window"] = list(self.window)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PTDiTConfig:
        d = {k: v for k, v in d.items() if not k.startswith("_")}  # diffusers' metadata (_class_name, ...)
        unknown = sorted(set(d) - set(field_names()))
        if unknown:
            raise ValueError(
                f"unknown PTDiTConfig field(s) {unknown} in config; valid fields: {field_names()}"
            )
        return cls(**d)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, path: str | Path) -> PTDiTConfig:
        try:
            d = json.loads(Path(path).read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None
        return cls.from_dict(d)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> PTDiTConfig:
        """A Table-4 preset (`PT-DiT-S|B|L|XL|H`, also spelled `PT-DiT/XL`), with field overrides."""
        key = name.replace("/", "-")
        if key not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; known presets: {sorted(PRESETS)}")
        return cls(**PRESETS[key]).replace(**overrides)


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(PTDiTConfig)]


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_int(name: str, value: Any) -> int:
    """A size field: an integer (not a bool, a string or a float) >= 1, returned as an int."""
    if not _is_int(value):
        hint = (
            f" (write {value} without quotes)" if isinstance(value, str) and value.strip().isdigit() else ""
        )
        raise ValueError(f"{name} must be an integer >= 1, got {value!r} ({type(value).__name__}){hint}")
    if value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value}")
    return int(value)


# The paper's Table 4 (layers, hidden size, heads); paper parameter counts in ptdit.presets.
PRESETS: dict[str, dict[str, Any]] = {
    "PT-DiT-S": dict(depth=10, hidden_size=288, num_heads=6),
    "PT-DiT-B": dict(depth=12, hidden_size=640, num_heads=10),
    "PT-DiT-L": dict(depth=28, hidden_size=864, num_heads=12),
    "PT-DiT-XL": dict(depth=28, hidden_size=1152, num_heads=16, out_channels=8),  # the released layout
    "PT-DiT-H": dict(depth=30, hidden_size=1440, num_heads=20),
}


def ratio_for_size(
    height: int,
    width: int | None = None,
    frames: int = 1,
    vae_factor: int = 8,
    patch_size: int = 2,
    windows_per_side: int = 8,
) -> Window:
    """The paper's compression ratio (p_f, p_h, p_w) for an image or video size in pixels.

    Images keep 64 windows (8 x 8 proxies) from 256^2 to 2048^2: (1,2,2) @256, (1,4,4) @512, (1,8,8) @1024,
    (1,16,16) @2048 with an 8x VAE and 2x2 patches. Video (frames > 1, in latent frames) uses p_f = 4.
    Sizes whose token grid is smaller than 8 tokens per side get a window of 1 on that side.
    """
    width = height if width is None else width

    def side(pixels: int) -> int:
        tokens = pixels // (vae_factor * patch_size)
        if tokens < 1:
            raise ValueError(
                f"size {pixels}px gives no tokens with vae_factor={vae_factor}, patch={patch_size}"
            )
        return max(1, 2 ** int(math.floor(math.log2(max(1, tokens // windows_per_side)))))

    p_f = 4 if frames > 1 else 1
    return (p_f, side(height), side(width))

"""PTDiT: patch embed + 3-D positions -> window-major tokens -> blocks -> final adaLN layer -> unpatchify.

One code path for images (F = 1), video (F frames) and multi-view (the views as frames). The class is a diffusers
model (`ModelMixin` + `ConfigMixin`): `save_pretrained` / `from_pretrained`, offloading, layerwise casting, PEFT
adapters and `enable_gradient_checkpointing()` work as on PixArt or Sana; `PTDiTConfig` validates its fields.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from .attention import boundary_windows
from .blocks import BlockContext, make_block
from .config import PTDiTConfig, Window, field_names
from .io import current_umask
from .layers import CaptionProjection, FinalLayer, PatchEmbed, TimestepEmbedder, sincos_pos_embed_3d
from .layout import (
    key_padding_mask,
    proxy_weights,
    shift_pad_mask,
    shift_permutation,
    shift_size,
    shift_window_bias,
    shift_window_mask,
    valid_tokens,
    window_merge,
    window_partition,
)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"  # diffusers' name
LEGACY_WEIGHTS_NAME = "model.safetensors"  # ptdit 0.1 model folders: still loaded, with a FutureWarning
RELEASE_MASK_VALUE = -10000.0  # the released additive mask value (bf16: -9984)


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The autocast dtype active for `device_type`, or None (also for devices without autocast, e.g. meta)."""
    try:
        return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
    except RuntimeError:  # "unknown device type for autocast"
        return None


def weights_file(directory: str | Path) -> Path:
    """The weights of a model folder: diffusers' file name, or the ptdit 0.1 name (with a FutureWarning)."""
    directory = Path(directory)
    if (directory / WEIGHTS_NAME).is_file() or not (directory / LEGACY_WEIGHTS_NAME).is_file():
        return directory / WEIGHTS_NAME
    warnings.warn(
        f"{directory / LEGACY_WEIGHTS_NAME}: the ptdit 0.1 file name is deprecated and will not be read by ptdit "
        f"0.3; save the model again (PTDiT.save_pretrained) to write {WEIGHTS_NAME}",
        FutureWarning,
        stacklevel=3,
    )
    return directory / LEGACY_WEIGHTS_NAME


class PTDiT(ModelMixin, ConfigMixin, PeftAdapterMixin):
    """Proxy-Tokenized Diffusion Transformer, a diffusers model.

    Built from `PTDiTConfig` fields by name (`PTDiT(depth=6, hidden_size=128, ...)`, `PTDiT.from_config({...})`)
    or from a `PTDiTConfig` (`PTDiT(config)`); the fields are checked by `PTDiTConfig` and kept typed in
    `model.ptdit_config`; `model.config` is diffusers' frozen dict of the same fields. `PeftAdapterMixin`:
    `add_adapter(LoraConfig(...))`, `set_adapters`, `disable_adapters`, `save_lora_adapter`, `load_lora_adapter`
    (needs peft; the LoRA of `ptdit train --lora.rank R`, ptdit/training/lora.py).

    forward(hidden_states, timestep, encoder_hidden_states, encoder_attention_mask=None, return_dict=True):
        hidden_states: (B, C, F, H, W) latents (images F = 1; a 4-D (B, C, H, W) input is taken as one frame);
        timestep: (B,) floats on the 0..1000 scale (a scalar is broadcast);
        encoder_hidden_states: (B, L, caption_channels); encoder_attention_mask: (B, L) 0/1 or bool.
        Returns `Transformer2DModelOutput(sample=(B, out_channels, F, H, W))` (4-D in, 4-D out), or the tuple
        `(sample,)` with return_dict=False.
    """

    config_name = CONFIG_NAME
    ignore_for_config = ["config"]
    _supports_gradient_checkpointing = True
    _no_split_modules = ["PTBlock", "FullBlock"]
    _repeated_blocks = ["PTBlock", "FullBlock"]
    _skip_layerwise_casting_patterns = ["x_embedder", "t_embedder", "t_block", "final_layer"]

    @register_to_config
    def __init__(
        self,
        config: PTDiTConfig | None = None,
        *,
        depth: int = 28,
        hidden_size: int = 1152,
        num_heads: int = 16,
        patch_size: int = 2,
        in_channels: int = 4,
        out_channels: int | None = None,
        caption_channels: int = 4096,
        window: Window = (1, 8, 8),
        proxy: str = "mean",
        injection: str = "cross_attention",
        use_giim: bool = True,
        use_window_attention: bool = True,
        use_shift_window: bool = True,
        attention: str = "proxy",
        block: str = "official",
        mlp_ratio: float = 4.0,
        norm_eps: float = 1e-6,
        pad: bool = False,
        numerics: str = "default",
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if config is None:
            config = PTDiTConfig(
                depth=depth, hidden_size=hidden_size, num_heads=num_heads, patch_size=patch_size,
                in_channels=in_channels, out_channels=out_channels, caption_channels=caption_channels,
                window=window, proxy=proxy, injection=injection, use_giim=use_giim,
                use_window_attention=use_window_attention, use_shift_window=use_shift_window,
                attention=attention, block=block, mlp_ratio=mlp_ratio, norm_eps=norm_eps, pad=pad,
                numerics=numerics, extra=dict(extra or {}),
            )  # fmt: skip
        elif not isinstance(config, PTDiTConfig):
            raise TypeError(
                f"PTDiT(config) takes a PTDiTConfig, got {type(config).__name__}; or pass fields by name"
            )
        self.register_to_config(
            **{f: getattr(config, f) for f in field_names()}
        )  # the resolved, typed values
        self.ptdit_config = config
        D = config.hidden_size
        self.x_embedder = PatchEmbed(config.in_channels, D, config.patch_size)
        self.t_embedder = TimestepEmbedder(D)
        self.t_block = nn.Linear(D, 6 * D)  # adaLN-single: SiLU(embedded_t) -> 6 x D, shared by all blocks
        self.y_embedder = CaptionProjection(config.caption_channels, D)
        self.blocks = nn.ModuleList([make_block(config, i) for i in range(config.depth)])
        self.final_layer = FinalLayer(D, config.patch_size, config.out_channels, config.norm_eps)
        self.final_layer.linear.zero_init = True  # DiT: a new model outputs zero
        self.gradient_checkpointing = False  # set by diffusers' enable_gradient_checkpointing()
        self.attention_backend = "sdpa"
        self.initialize_weights()

    @classmethod
    def extract_init_dict(cls, config_dict: dict[str, Any], **kwargs: Any):
        """diffusers drops config keys it does not know with a warning; an unknown PT-DiT field is an error."""
        unknown = sorted(
            k
            for k in config_dict
            if not k.startswith("_") and k != "quantization_config" and k not in field_names()
        )
        if unknown:
            raise ValueError(
                f"unknown PTDiTConfig field(s) {unknown} in config; valid fields: {field_names()}"
            )
        return super().extract_init_dict(config_dict, **kwargs)

    # ------------------------------------------------------------------ init (all of it, here)
    @torch.no_grad()
    def initialize_weights(self) -> None:
        D = self.ptdit_config.hidden_size
        for m in self.modules():  # DiT's basic init: xavier-uniform linears, zero biases
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        w = self.x_embedder.proj.weight  # the patch embedding initialised like a linear layer (DiT)
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.proj.bias)
        for layer in (
            self.t_embedder.linear_1,
            self.t_embedder.linear_2,
            self.t_block,
            self.y_embedder.linear_1,
            self.y_embedder.linear_2,
        ):
            nn.init.normal_(layer.weight, std=0.02)  # PixArt-alpha: timestep MLP, adaLN-single, caption MLP
        for name, p in self.named_parameters():  # adaLN tables randn / sqrt(D), as released
            if name.endswith("scale_shift_table"):
                p.copy_(torch.randn_like(p) / D**0.5)
        # zero-initialised layers: the release's linears after GIIM and the shifted windows, and as in DiT and
        # PixArt the final layer and the text cross-attention output, so that a new model outputs zero
        for m in self.modules():
            if getattr(m, "zero_init", False):
                nn.init.zeros_(m.weight)
                nn.init.zeros_(m.bias)
            for name in getattr(m, "zero_init_params", ()):
                nn.init.zeros_(getattr(m, name))

    # ------------------------------------------------------------------ shapes
    def _prepare_input(self, x: Tensor) -> tuple[Tensor, tuple[int, int, int]]:
        """Validate x (B, C, F, H, W); pad it if config.pad. Returns the input to embed and the size to crop to."""
        cfg = self.ptdit_config
        if x.dim() != 5:
            raise ValueError(
                f"x must be (B, C, F, H, W) latents (or (B, C, H, W) for images), got shape {tuple(x.shape)}"
            )
        B, C, F_, H, W = x.shape
        if C != cfg.in_channels:
            raise ValueError(f"x has {C} channels but the model takes in_channels={cfg.in_channels}")
        if min(F_, H, W) < 1:
            raise ValueError(
                f"x must have at least one frame and a non-empty image, got shape {tuple(x.shape)}"
            )
        sizes = (F_, H, W)
        multiples = self.size_multiples
        if all(s % m == 0 for s, m in zip(sizes, multiples)):
            return x, sizes
        if not cfg.pad:
            self.check_size(F_, H, W)
        pads = [(-s) % m for s, m in zip(sizes, multiples)]
        return F.pad(x, (0, pads[2], 0, pads[1], 0, pads[0])), sizes

    @property
    def size_multiples(self) -> tuple[int, int, int]:
        """Latent (frames, height, width) must be multiples of these (p_f, p * p_h, p * p_w)."""
        p, (pf, ph, pw) = self.ptdit_config.patch_size, self.ptdit_config.window
        return (pf, p * ph, p * pw)

    def check_size(self, frames: int, height: int, width: int) -> None:
        """Raise a ValueError naming the nearest valid sizes if latents (frames, height, width) do not fit.

        With config.pad every size fits (the input is padded and the output cropped).
        """
        if self.ptdit_config.pad:
            return
        problems = []
        for name, s, m in zip(("frames", "height", "width"), (frames, height, width), self.size_multiples):
            if s % m:
                lower, upper = (s // m) * m, (s // m + 1) * m
                nearest = f"{lower} or {upper}" if lower > 0 else f"{upper}"
                problems.append(f"latent {name} {s} is not a multiple of {m}: use {nearest}")
        if problems:
            raise ValueError(
                f"latent size {(frames, height, width)} does not fit window {self.ptdit_config.window} with patch "
                f"{self.ptdit_config.patch_size} ("
                + "; ".join(problems)
                + "), or build the model with pad=True"
            )

    def _text_mask(
        self, mask: Tensor | None, B: int, L: int, device: torch.device, dtype: torch.dtype
    ) -> Tensor | None:
        """(B, L) 0/1 or bool -> (B, 1, 1, L) additive mask in the attention dtype (0 = keep, -inf = drop, or the
        release's -10000), built once per forward: a bool mask would be converted inside every attention call.

        A row with no valid token is not checked here (that would be a host sync in every forward): the pipeline
        and the trainer check their masks on the host (`ptdit.text.check_text_mask`).
        """
        if mask is None:
            return None
        if tuple(mask.shape) != (B, L):
            raise ValueError(f"encoder_attention_mask must be (B, L) = {(B, L)}, got {tuple(mask.shape)}")
        keep = (mask.bool() if mask.dtype == torch.bool else mask != 0).to(device)[:, None, None, :]
        if self.ptdit_config.numerics == "release":
            return (~keep).to(dtype) * RELEASE_MASK_VALUE
        return torch.zeros(keep.shape, dtype=dtype, device=device).masked_fill_(~keep, float("-inf"))

    def block_context(
        self,
        x: Tensor,
        encoder_attention_mask: Tensor | None,
        size: tuple[int, int, int],
        text_length: int,
    ) -> BlockContext:
        """Everything of a forward that depends on the input's shape or on the text mask, built eagerly (outside
        any compiled graph) from cached per-shape tensors: positions, text mask, shift permutation and masks, the
        border windows of the mask-free shifted-window path, padding masks.

        x: (B, C, F, H, W) latents already padded to the window; size: their (F, H, W) before padding.
        """
        cfg = self.ptdit_config
        p, window, device = cfg.patch_size, cfg.window, x.device
        grid = (x.shape[2], x.shape[3] // p, x.shape[4] // p)  # token grid (F, h, w)
        valid = (size[0], -(-size[1] // p), -(-size[2] // p))  # tokens that hold some of the unpadded input
        weights_dtype = self.x_embedder.proj.weight.dtype
        attn_dtype = _autocast_dtype(device.type) or weights_dtype  # the dtype q, k, v will have
        ctx = BlockContext(
            grid=grid,
            window=window,
            text_mask=self._text_mask(encoder_attention_mask, x.shape[0], text_length, device, attn_dtype),
            backend=self.attention_backend,
            pos=sincos_pos_embed_3d(grid, cfg.hidden_size, device),  # fp32
            size=tuple(size),
        )
        padded = valid != grid
        if padded:
            keep = valid_tokens(grid, valid, window, device)  # (nW, n)
            ctx.proxy_weights = proxy_weights(keep)
            ctx.proxy_mask = keep[:, 0][None]  # a window's first token is valid iff any of its tokens is
            ctx.window_mask = key_padding_mask(keep)[:, None]
            ctx.token_mask = keep.flatten()[None]
        shift = shift_size(window)
        if any(getattr(b, "needs_shift", False) for b in self.blocks) and any(shift):
            ctx.shift_perm, ctx.shift_inv = shift_permutation(grid, window, shift, device)
            if padded:
                allowed = shift_pad_mask(grid, valid, window, shift, device)  # (nW, 1, n, n) bool
                release = (~allowed).to(weights_dtype) * RELEASE_MASK_VALUE
                ctx.shift_mask = release if cfg.numerics == "release" else allowed
            elif cfg.numerics == "release":
                mask = shift_window_mask(grid, window, shift, device)
                if mask is not None:
                    mask = (~mask[:, None]).to(
                        weights_dtype
                    ) * RELEASE_MASK_VALUE  # in bf16: -9984, as released
                ctx.shift_mask = mask
            else:  # (nW, 1, n, n) additive, cached per shape and dtype: broadcast over batch and heads
                ctx.shift_mask = shift_window_bias(grid, window, shift, device, attn_dtype)
            if ctx.shift_mask is not None and self.attention_backend == "split":
                ctx.shift_boundary = boundary_windows(ctx.shift_mask)  # cached per mask
        return ctx

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        hidden_states: Tensor,
        timestep: Tensor | float,
        encoder_hidden_states: Tensor,
        encoder_attention_mask: Tensor | None = None,
        return_dict: bool = True,
    ) -> Transformer2DModelOutput | tuple[Tensor]:
        cfg = self.ptdit_config
        x = hidden_states
        image_input = x.dim() == 4
        if image_input:
            x = x.unsqueeze(2)
        x, size = self._prepare_input(x)
        B = x.shape[0]
        y = encoder_hidden_states
        if y.dim() != 3 or y.shape[0] != B or y.shape[2] != cfg.caption_channels:
            raise ValueError(
                f"encoder_hidden_states must be (B={B}, L, caption_channels={cfg.caption_channels}), "
                f"got {tuple(y.shape)}"
            )
        t = torch.as_tensor(timestep, device=x.device)
        t = t.expand(B) if t.dim() == 0 or t.numel() == 1 else t
        if tuple(t.shape) != (B,):
            raise ValueError(f"timestep must be (B,) = ({B},) or a scalar, got shape {tuple(t.shape)}")
        # inputs follow the weights' dtype (a bf16 model takes fp32 latents)
        dtype = self.x_embedder.proj.weight.dtype
        x, y = x.to(dtype), y.to(dtype)
        if cfg.numerics == "release":  # the release casts t to the weights' dtype before the sinusoid
            t = t.to(dtype)
        ctx = self.block_context(x, encoder_attention_mask, size, y.shape[1])
        compiled = self.__dict__.get("_compiled_run")  # set by ptdit.fast.compile_model(model, "model")
        out = compiled(self, x, t, y, ctx) if compiled is not None else self._run(x, t, y, ctx)
        out = out[:, :, 0] if image_input else out
        return Transformer2DModelOutput(sample=out) if return_dict else (out,)

    def _run(self, x: Tensor, t: Tensor, y: Tensor, ctx: BlockContext) -> Tensor:
        """The tensor program of a forward, free of host syncs and of anything data-dependent (all of that is in
        `ctx`), so that it compiles as one graph.

        x: (B, C, F, H, W) padded latents; t: (B,); y: (B, L, caption_channels) -> (B, out_channels, F, H, W).
        """
        cfg = self.ptdit_config
        tokens = self.x_embedder(x)  # (B, F, h, w, D)
        tokens = (tokens + ctx.pos).to(tokens.dtype)  # bf16 + fp32 adds in fp32 (type promotion), as released
        h = window_partition(tokens, cfg.window)  # (B, nW, n, D)
        t_emb = self.t_embedder(t)  # (B, D) embedded timestep
        t6 = self.t_block(F.silu(t_emb)).unflatten(1, (6, cfg.hidden_size))  # (B, 6, D)
        y = self.y_embedder(y)  # (B, L, D)
        for block in self.blocks:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                h = self._gradient_checkpointing_func(block, h, t6, y, ctx)
            else:
                h = block(h, t6, y, ctx)
        out = self.final_layer(h, t_emb)  # (B, nW, n, p*p*C_out)
        F_, H, W = ctx.size
        out = self.unpatchify(out, ctx.grid)[:, :, :F_, :H, :W]  # crop any padding
        return out.float() if cfg.numerics == "release" else out  # the release returns fp32

    def unpatchify(self, x: Tensor, grid: tuple[int, int, int]) -> Tensor:
        """(B, nW, n, p*p*C) window-major -> (B, C, F, h*p, w*p); features read as (p_row, p_col, C)."""
        p, C = self.ptdit_config.patch_size, self.ptdit_config.out_channels
        F_, h, w = grid
        x = window_merge(x, grid, self.ptdit_config.window)  # (B, F, h, w, p*p*C)
        x = x.reshape(x.shape[0], F_, h, w, p, p, C)
        x = x.permute(0, 6, 1, 2, 4, 3, 5)  # (B, C, F, h, p, w, p)
        return x.reshape(x.shape[0], C, F_, h * p, w * p)

    # ------------------------------------------------------------------ save / load
    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> Path:
        """diffusers' save_pretrained (`config.json` + `diffusion_pytorch_model.safetensors`), written into a
        temporary folder beside `save_directory` and renamed into place file by file, so that an interrupted
        save never leaves a half-written file. Returns the folder."""
        directory = Path(save_directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
        try:
            super().save_pretrained(tmp, **kwargs)
            directory.mkdir(exist_ok=True)
            mode = 0o666 & ~current_umask()  # safetensors writes 0600: give each file the mode open() would
            for f in sorted(tmp.iterdir(), key=lambda f: f.name == CONFIG_NAME):  # the config last
                os.chmod(f, mode)
                os.replace(f, directory / f.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return directory

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> PTDiT:
        """Load a model folder: diffusers' layout (`save_pretrained`, `subfolder=`, `torch_dtype=` and diffusers'
        other loading options) or the ptdit 0.1 layout (`model.safetensors`, FutureWarning).

        The folder is checked first (files, config fields, weight names and shapes), so that a bad folder is one
        clear ValueError / FileNotFoundError. Keyword arguments that name config fields override them where they
        do not change the weights (e.g. pad=True). The ptdit 0.1 keywords `device=` and `dtype=` still work.
        """
        device = kwargs.pop("device", None)
        if "dtype" in kwargs:
            kwargs.setdefault("torch_dtype", kwargs.pop("dtype"))
        directory = Path(pretrained_model_name_or_path) / kwargs.get("subfolder", "")
        overrides = {k: v for k, v in kwargs.items() if k in field_names()}
        config, weights, dtype = _check_model_folder(directory, overrides)
        kwargs.setdefault("torch_dtype", dtype)  # as saved (bundled models: bf16), unless asked otherwise
        if weights.name == LEGACY_WEIGHTS_NAME:
            from .io import load_state_dict_strict, read_safetensors

            with torch.device("meta"):
                model = cls(config)
            load_state_dict_strict(model, read_safetensors(weights), source=str(weights), assign=True)
            dtype = kwargs.get("torch_dtype")
            model = model.to(dtype=dtype) if dtype is not None else model
        else:
            model = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        return (model.to(device) if device is not None else model).eval()


def _check_model_folder(directory: Path, overrides: dict[str, Any]) -> tuple[PTDiTConfig, Path, torch.dtype]:
    """(config, weights file, weight dtype) of a model folder, or one clear error naming what is wrong."""
    if not directory.is_dir():
        raise FileNotFoundError(f"model folder {directory} does not exist")
    config_path = directory / CONFIG_NAME
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{config_path} is missing: a PT-DiT model folder holds {CONFIG_NAME} and {WEIGHTS_NAME}"
        )
    weights = weights_file(directory)
    if not weights.is_file():
        raise FileNotFoundError(
            f"{weights} is missing: a PT-DiT model folder holds {CONFIG_NAME} and {WEIGHTS_NAME}"
        )
    try:
        fields = json.loads(config_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{config_path} is not valid JSON: {e}") from None
    if not isinstance(fields, dict):
        raise ValueError(f"{config_path} must hold a JSON object of PTDiTConfig fields")
    fields = {k: v for k, v in fields.items() if not k.startswith("_")}
    try:
        config = PTDiTConfig.from_dict({**fields, **overrides})
    except (TypeError, ValueError) as e:
        raise ValueError(f"{config_path}: {e}") from None
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
            dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for a damaged file
        raise ValueError(f"{weights} is not a readable safetensors file ({e})") from None
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in PTDiT(config).state_dict().items()}
    missing, unexpected = sorted(set(expected) - set(shapes)), sorted(set(shapes) - set(expected))
    wrong = sorted(
        f"{k} {shapes[k]} vs {expected[k]}" for k in set(expected) & set(shapes) if shapes[k] != expected[k]
    )
    if missing or unexpected or wrong:
        parts = [f"{t}: {', '.join(v[:6])}{' ...' if len(v) > 6 else ''}" for t, v in
                 (("missing", missing), ("unexpected", unexpected), ("shape mismatches", wrong)) if v]  # fmt: skip
        raise ValueError(f"weights in {weights} do not match the model config ({'; '.join(parts)})")
    saved = {"BF16": torch.bfloat16, "F16": torch.float16, "F64": torch.float64}
    return config, weights, next((saved[d] for d in sorted(dtypes) if d in saved), torch.float32)

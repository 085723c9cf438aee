"""Load the released Qihoo-T2I-1B checkpoint (the official `PTDiTDiffuser` state dict) into a `PTDiT`.

The official names and shapes are in docs/release.md §3 (1,416 keys: 1,415 parameters
and the optional, ignored `pos_embed.pos_embed` buffer). A converted model uses `numerics="release"`: additive
-10000 masks for the text and the shifted windows, and the timestep rounded to the weights' dtype before the
sinusoid, as released. The two released bugs (per-sample timestep tiling, H/W-scrambled positions) stay fixed;
they change nothing for square images with equal timesteps in the batch (the released sampler's case).

    model = from_official("qihoo_t2i_1b.pt")                       # PTDiT, fp32 or the checkpoint's dtype
    convert_official_checkpoint("qihoo_t2i_1b.pt", "models/qihoo-t2i-1b", dtype="bf16")
    ptdit convert-official qihoo_t2i_1b.pt models/qihoo-t2i-1b [--num-heads 16] [--window 1 8 8] [--dtype bf16]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .config import PTDiTConfig
from .io import current_umask, load_state_dict_strict, read_safetensors
from .model import PTDiT
from .options import add_list_option
from .pipeline_config import PipelineDefaults

RELEASED_HEAD_DIM = 72  # 16 heads x 72 = 1152 in the release
RELEASED_WINDOW = (1, 8, 8)  # compress_ratios [1, 8, 8]
OPTIONAL_KEYS = frozenset({"pos_embed.pos_embed"})  # the fp32 PE buffer: recomputed every forward, ignored
PREFIXES = ("module.", "predictor.")  # wrappers a training script may have left on every key
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16}

# official top-level name -> ours
_TOP = {
    "pos_embed.proj": "x_embedder.proj",
    "adaln_single.emb.timestep_embedder.linear_1": "t_embedder.linear_1",
    "adaln_single.emb.timestep_embedder.linear_2": "t_embedder.linear_2",
    "adaln_single.linear": "t_block",
    "caption_projection.linear_1": "y_embedder.linear_1",
    "caption_projection.linear_2": "y_embedder.linear_2",
    "proj_out": "final_layer.linear",
}
# official block attention -> ours (each with to_q, to_k, to_v, to_out(.0))
_ATTENTIONS = {
    "proxy_attn1": "proxy_attn",  # proxy self-attention (GIIM)
    "pvisual_attn2": "visual_attn",  # tokens -> proxies cross-attention (GIIM)
    "attn1": "window_attn",  # window attention (TCM)
    "attn3": "shift_window_attn",  # shifted-window attention (TCM)
    "attn2": "text_attn",  # text cross-attention
}
# official block linear -> ours
_LINEARS = {
    "linear_1_visual": "visual_out",  # zero-init output of the visual cross-attention
    "linear_2": "shift_out",  # zero-init output of the shifted-window branch
    "ff.net.0.proj": "mlp.fc1",
    "ff.net.2": "mlp.fc2",
}


# --------------------------------------------------------------------------------------------- synthetic state
def official_shapes(
    depth: int = 28,
    width: int = 1152,
    caption: int = 4096,
    in_ch: int = 4,
    out_ch: int = 8,
    patch: int = 2,
    mlp: int | None = None,
    pe_tokens: int = 256,
) -> dict[str, tuple[int, ...]]:
    """Every key of docs/release.md §3.2-3.3 with its shape (released defaults), in the official registration
    order, written down by formula (tests/test_official.py checks the XL count)."""
    D, mlp = width, 4 * width if mlp is None else mlp
    s: dict[str, tuple[int, ...]] = {"scale_shift_table": (2, D)}
    s["pos_embed.proj.weight"], s["pos_embed.proj.bias"] = (D, in_ch, patch, patch), (D,)
    s["pos_embed.pos_embed"] = (1, 1, pe_tokens, D)
    for i in range(depth):
        b = f"transformer_blocks.{i}."
        s[b + "scale_shift_table"], s[b + "proxy_scale_shift_table"] = (6, D), (3, D)
        for a in _ATTENTIONS:
            for proj in ("to_q", "to_k", "to_v", "to_out.0"):
                s[f"{b}{a}.{proj}.weight"], s[f"{b}{a}.{proj}.bias"] = (D, D), (D,)
        s[b + "linear_2.weight"], s[b + "linear_2.bias"] = (D, D), (D,)
        s[b + "ff.net.0.proj.weight"], s[b + "ff.net.0.proj.bias"] = (mlp, D), (mlp,)
        s[b + "ff.net.2.weight"], s[b + "ff.net.2.bias"] = (D, mlp), (D,)
        s[b + "linear_1_visual.weight"], s[b + "linear_1_visual.bias"] = (D, D), (D,)
    s["proj_out.weight"], s["proj_out.bias"] = (patch * patch * out_ch, D), (patch * patch * out_ch,)
    t = "adaln_single.emb.timestep_embedder."
    s[t + "linear_1.weight"], s[t + "linear_1.bias"] = (D, 256), (D,)
    s[t + "linear_2.weight"], s[t + "linear_2.bias"] = (D, D), (D,)
    s["adaln_single.linear.weight"], s["adaln_single.linear.bias"] = (6 * D, D), (6 * D,)
    s["caption_projection.linear_1.weight"], s["caption_projection.linear_1.bias"] = (D, caption), (D,)
    s["caption_projection.linear_2.weight"], s["caption_projection.linear_2.bias"] = (D, D), (D,)
    return s


def synthetic_official_state(
    seed: int = 0, depth: int = 2, width: int = 64, caption: int = 32, **kw: Any
) -> dict[str, Tensor]:
    """A random official state dict (tests, the GPU check): linears ~ U(+-1/sqrt(fan_in)) (zero-init linears
    included), tables randn/sqrt(D); `kw` goes to `official_shapes`."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, shape in official_shapes(depth, width, caption, **kw).items():
        if k.endswith("scale_shift_table"):
            v = torch.randn(shape, generator=g) / width**0.5
        elif k == "pos_embed.pos_embed":
            v = torch.randn(shape, generator=g)  # must be ignored
        else:
            fan_in = 1
            for n in shape[1:]:
                fan_in *= n
            v = (torch.rand(shape, generator=g) * 2 - 1) / (fan_in if k.endswith("weight") else width) ** 0.5
        state[k] = v
    return state


# --------------------------------------------------------------------------------------------- names
def official_key_map(depth: int) -> dict[str, str]:
    """Every official parameter name of a `depth`-block model -> our name (1,415 entries at depth 28).

    The optional `pos_embed.pos_embed` buffer (OPTIONAL_KEYS) has no counterpart and is not in the map.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    out: dict[str, str] = {"scale_shift_table": "final_layer.scale_shift_table"}
    for official, ours in _TOP.items():
        for leaf in ("weight", "bias"):
            out[f"{official}.{leaf}"] = f"{ours}.{leaf}"
    for i in range(depth):
        src, dst = f"transformer_blocks.{i}.", f"blocks.{i}."
        out[src + "scale_shift_table"] = dst + "scale_shift_table"
        out[src + "proxy_scale_shift_table"] = dst + "shift_scale_shift_table"
        for official, ours in _ATTENTIONS.items():
            for proj, our_proj in (
                ("to_q", "to_q"),
                ("to_k", "to_k"),
                ("to_v", "to_v"),
                ("to_out.0", "to_out"),
            ):
                for leaf in ("weight", "bias"):
                    out[f"{src}{official}.{proj}.{leaf}"] = f"{dst}{ours}.{our_proj}.{leaf}"
        for official, ours in _LINEARS.items():
            for leaf in ("weight", "bias"):
                out[f"{src}{official}.{leaf}"] = f"{dst}{ours}.{leaf}"
    return out


def ptdit_key_map(depth: int) -> dict[str, str]:
    """Inverse of `official_key_map`: our parameter name -> the official one."""
    return {ours: official for official, ours in official_key_map(depth).items()}


# --------------------------------------------------------------------------------------------- reading files
def load_official_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read an official checkpoint: {official name: tensor}, on the CPU, in the file's dtype.

    .pt/.pth/.bin/.ckpt go through torch.load(weights_only=True); .safetensors through safetensors; any other
    suffix is tried both ways. The state dict is ckpt["model"], else ckpt["state_dict"], else the top level;
    "module." / "predictor." prefixes are stripped. Raises FileNotFoundError or a ValueError naming the problem.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise ValueError(
            f"{path} is a directory: pass the checkpoint file itself (.pt, .pth, .bin or .safetensors)"
        )
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        ckpt: Any = read_safetensors(path)
    elif suffix in TORCH_SUFFIXES:
        ckpt = _torch_load(path)
    else:
        try:
            ckpt = _torch_load(path)
        except ValueError:
            try:
                ckpt = read_safetensors(path)
            except ValueError:
                raise ValueError(
                    f"{path} is neither a torch checkpoint nor a safetensors file: pass the released .pt "
                    "(or a .safetensors) predictor checkpoint"
                ) from None
    return _extract_state_dict(ckpt, path)


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and weights_only errors all mean "not a plain checkpoint"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}: {first[:200]}); "
            "pass the released .pt predictor checkpoint (or a .safetensors file)"
        ) from None


def _extract_state_dict(ckpt: Any, path: Path) -> dict[str, Tensor]:
    if not isinstance(ckpt, Mapping):
        raise ValueError(
            f"{path} holds a {type(ckpt).__name__}, not a state dict: pass a predictor checkpoint"
        )
    for key in ("model", "state_dict"):
        if isinstance(ckpt.get(key), Mapping):
            ckpt = ckpt[key]
            break
    if not ckpt:
        raise ValueError(f"{path} holds an empty state dict: it is not a PT-DiT checkpoint")
    not_tensors = sorted(str(k) for k, v in ckpt.items() if not isinstance(v, Tensor))
    if not_tensors:
        raise ValueError(
            f"{path} is not a plain state dict: entries that are not tensors: {_listing(not_tensors)}"
        )
    state: dict[str, Tensor] = {}
    for key, value in ckpt.items():
        name = str(key)
        while name.startswith(PREFIXES):
            name = name.split(".", 1)[1]
        if name in state:
            raise ValueError(
                f"{path}: key {key!r} collides with another key once prefixes {PREFIXES} are stripped"
            )
        state[name] = value
    return state


# --------------------------------------------------------------------------------------------- config
def config_from_official(
    state: Mapping[str, Tensor],
    num_heads: int | None = None,
    window: tuple[int, int, int] | None = None,
    file: str | None = None,
) -> PTDiTConfig:
    """The PTDiTConfig of an official state dict, read off its shapes (numerics="release").

    depth = number of `transformer_blocks.{i}`; width, in_channels and patch from `pos_embed.proj.weight`
    (D, C_in, p, p); caption channels from `caption_projection.linear_1.weight` (D, caption); out channels from
    `proj_out.weight` (p*p*C_out, D); MLP ratio from `ff.net.0.proj.weight`. Heads default to D / 72 (the
    released head size); the window to the released (1, 8, 8).
    """
    needed = (
        "pos_embed.proj.weight",
        "caption_projection.linear_1.weight",
        "proj_out.weight",
        "transformer_blocks.0.ff.net.0.proj.weight",
    )
    absent = [k for k in needed if k not in state]
    if absent:
        raise ValueError(
            f"not an official PT-DiT (Qihoo-T2X) predictor state dict: keys {absent} are missing "
            f"(first keys present: {_listing(sorted(state), 6)})"
        )
    conv = state["pos_embed.proj.weight"]
    if conv.dim() != 4 or conv.shape[2] != conv.shape[3]:
        raise ValueError(
            f"pos_embed.proj.weight must be a square Conv2d kernel (D, C_in, p, p), got {tuple(conv.shape)}"
        )
    width, in_channels, patch = int(conv.shape[0]), int(conv.shape[1]), int(conv.shape[2])
    caption_channels = int(state["caption_projection.linear_1.weight"].shape[1])
    proj_rows = int(state["proj_out.weight"].shape[0])
    if proj_rows % (patch * patch):
        raise ValueError(
            f"proj_out.weight has {proj_rows} rows, not a multiple of patch*patch = {patch * patch}"
        )
    out_channels = proj_rows // (patch * patch)
    mlp_ratio = state["transformer_blocks.0.ff.net.0.proj.weight"].shape[0] / width
    indices = {int(m.group(1)) for k in state if (m := re.match(r"transformer_blocks\.(\d+)\.", k))}
    depth = max(indices) + 1  # gaps show up as missing keys in convert_official
    if num_heads is None:
        if width % RELEASED_HEAD_DIM:
            raise ValueError(
                f"width {width} is not a multiple of the released head size {RELEASED_HEAD_DIM}: "
                "pass num_heads (--num-heads N)"
            )
        num_heads = width // RELEASED_HEAD_DIM
    extra: dict[str, Any] = {"source": "qihoo-t2x-official"}
    if file is not None:
        extra["file"] = file
    return PTDiTConfig(
        depth=depth,
        hidden_size=width,
        num_heads=int(num_heads),
        patch_size=patch,
        in_channels=in_channels,
        out_channels=out_channels,
        caption_channels=caption_channels,
        window=tuple(window) if window is not None else RELEASED_WINDOW,
        mlp_ratio=mlp_ratio,
        numerics="release",
        extra=extra,
    )


# --------------------------------------------------------------------------------------------- conversion
def _expected_shapes(config: PTDiTConfig) -> dict[str, tuple[int, ...]]:
    """Our parameter name -> shape for `config`, from the model built on the meta device (no memory)."""
    with torch.device("meta"):
        model = PTDiT(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def convert_official(state: Mapping[str, Tensor], config: PTDiTConfig) -> dict[str, Tensor]:
    """Official state dict -> ours for `config`, strictly: a missing or unexpected key (other than the optional
    `pos_embed.pos_embed`) or a shape mismatch is a ValueError that lists the keys. Tensors are not copied."""
    key_map = official_key_map(config.depth)
    expected = _expected_shapes(config)
    if set(key_map.values()) != set(expected):
        raise ValueError(
            "config does not describe the released block structure (attention='proxy', block='official', "
            "injection='cross_attention', GIIM, window and shifted-window attention all on): "
            f"model keys without an official name: {_listing(sorted(set(expected) - set(key_map.values())))}"
        )
    missing = sorted(set(key_map) - set(state))
    unexpected = sorted(set(state) - set(key_map) - OPTIONAL_KEYS)
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs expected {expected[key_map[k]]}"
        for k in sorted(set(key_map) & set(state))
        if tuple(state[k].shape) != expected[key_map[k]]
    ]
    if missing or unexpected or shapes:
        parts = [
            f"{title} ({len(items)}): {_listing(items)}"
            for title, items in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shape mismatches", shapes),
            )
            if items
        ]
        raise ValueError(
            f"official checkpoint does not match a {_describe(config)} PT-DiT: " + "; ".join(parts)
        )
    return {ours: state[official] for official, ours in key_map.items()}


def from_official(
    path: str | Path,
    num_heads: int | None = None,
    window: tuple[int, int, int] | None = None,
    dtype: torch.dtype | str | None = None,
) -> PTDiT:
    """A PTDiT (eval mode, CPU) with the weights of an official checkpoint; dtype None keeps the file's dtype."""
    path = Path(path)
    target = _dtype(dtype)
    state = load_official_state_dict(path)
    config = config_from_official(state, num_heads=num_heads, window=window, file=path.name)
    converted = convert_official(state, config)
    with torch.device("meta"):
        model = PTDiT(config)
    load_state_dict_strict(model, converted, source=str(path), assign=True)
    if target is not None:
        model = model.to(target)
    return model.eval()


def convert_official_checkpoint(
    ckpt: str | Path,
    out_dir: str | Path,
    num_heads: int | None = None,
    window: tuple[int, int, int] | None = None,
    dtype: torch.dtype | str | None = None,
) -> PTDiT:
    """Write a ptdit model directory (config.json + diffusion_pytorch_model.safetensors) for an official checkpoint; returns the model.

    The model is converted fully in memory, written into a temporary sibling directory and renamed into place,
    so an error never leaves a half-written `out_dir`. An existing non-empty `out_dir` is refused.
    """
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)  # before reading gigabytes
    model = from_official(ckpt, num_heads=num_heads, window=window, dtype=dtype)
    save_model_dir_atomic(model, out_dir)
    return model


def released_pipeline() -> PipelineDefaults:
    """How the release samples (docs/release.md §5, §6): 1024^2, 30 Euler steps on the shifted rflow schedule,
    CFG 4.0 with the empty negative prompt, T5 at 200 tokens. The T5 and VAE folders are the user's."""
    return PipelineDefaults(
        task="image", text_encoder=None, text_max_length=200, autoencoder=None, height=1024, width=1024,
        frames=1, steps=30, cfg=4.0, sampler="euler", shift=None,
    )  # fmt: skip


def save_model_dir_atomic(model: PTDiT, out_dir: str | Path) -> Path:
    """model.save_pretrained into a temporary sibling of `out_dir`, then one rename (no half-written directory)."""
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        released_pipeline().write(tmp)
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above)
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700: give the folder the mode mkdir would
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(
            f"{out_dir} already exists and is not an empty directory: choose a new output directory"
        )


# --------------------------------------------------------------------------------------------- helpers
def _dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPES)}")
    return DTYPES[dtype]


def _describe(config: PTDiTConfig) -> str:
    return (
        f"depth-{config.depth}, width-{config.hidden_size}, patch-{config.patch_size}, "
        f"caption-{config.caption_channels}, out-{config.out_channels}"
    )


def _listing(items: list[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


# --------------------------------------------------------------------------------------------- CLI
def cli_main(argv: list[str]) -> int:
    """`ptdit convert-official CKPT OUT_DIR [--num-heads N] [--window F H W] [--dtype bf16|fp32]`."""
    parser = argparse.ArgumentParser(
        prog="ptdit convert-official",
        description="Convert the released Qihoo-T2I predictor checkpoint (.pt or .safetensors) into a ptdit "
        "model directory (config.json + diffusion_pytorch_model.safetensors) that PTDiT.from_pretrained and every ptdit command load.",
    )
    parser.add_argument("ckpt", type=Path, help="official checkpoint (.pt/.pth/.bin or .safetensors)")
    parser.add_argument("out_dir", type=Path, help="new model directory to write")
    parser.add_argument(
        "--num-heads",
        type=int,
        default=None,
        help=f"attention heads (default: width / {RELEASED_HEAD_DIM}, the released head size)",
    )
    add_list_option(
        parser,
        "--window",
        type=int,
        length=3,
        metavar="P",
        help="window / compression ratio F H W in tokens (default: the released 1 8 8)",
    )
    parser.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        default=None,
        help="weight dtype to store (default: keep the checkpoint's)",
    )
    args = parser.parse_args(argv)
    model = convert_official_checkpoint(
        args.ckpt,
        args.out_dir,
        num_heads=args.num_heads,
        window=tuple(args.window) if args.window else None,
        dtype=args.dtype,
    )
    weight_dtype = next(model.parameters()).dtype
    print(
        f"wrote {args.out_dir}: {_describe(model.ptdit_config)}, heads {model.config.num_heads}, window {model.config.window}, "
        f"{model.num_parameters():,} parameters, {weight_dtype}, numerics={model.config.numerics}"
    )
    return 0

"""The demo's work, without the web page: check a request, generate through `PTDiTPipeline`, write the files and
the manifest, and draw the attention maps of a generated sample.

`DemoModel(model_dir)` loads one model as a `PTDiTPipeline` (the path `ptdit generate` takes) and owns a lock: one
sampling (or attention re-run) at a time, whatever calls it. `generate_sample` records the latents that enter every
sampling step (the initial noise, then the pipeline's `callback_on_step_end` latents), the timesteps and the
conditional text states, so that `attention_pictures` can re-run any (step, block) eagerly through
`ptdit.attention_maps.attention_maps`. `save_attention` writes the same pictures as PNG files (`ptdit generate
--save-attention`).
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..attention_maps import AttentionMaps, attention_maps, heatmap, window_grid

MAX_STEPS = 200
MAX_CFG = 30.0
MAX_SIZE_FACTOR = 4  # height, width and frames up to 4x the model's defaults
MAX_PROMPT_CHARS = 500
SEED_MAX = 2**31 - 1


@dataclass
class Settings:
    """One request, checked: what a generated sample carries with it."""

    task: str
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    cfg: float
    height: int
    width: int
    frames: int


@dataclass
class DemoResult:
    """A generated sample, its files and what the attention view needs."""

    settings: Settings
    manifest: dict[str, Any]
    out_dir: Path
    files: list[str]
    frames: list[np.ndarray]  # (H, W, 3) uint8 per frame / view, at the model's size
    latents: list[Tensor] = field(default_factory=list)  # the latents entering step i (CPU)
    timesteps: list[float] = field(default_factory=list)
    text: Tensor | None = None  # conditional text states (1, L, D) and mask (1, L)
    text_mask: Tensor | None = None

    def path(self, suffix: str) -> Path | None:
        """The first file of this sample whose name ends with `suffix`."""
        return next((self.out_dir / f for f in self.files if f.endswith(suffix)), None)


def _device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class DemoModel:
    """One model as a `PTDiTPipeline`, with the limits the demo checks requests against."""

    def __init__(self, model_dir: str | Path, device: str | None = None) -> None:
        from ..flow_scheduler import scheduler_for_sampler
        from ..generation import load_pipeline
        from ..pipeline_folders import read_defaults

        self.model_dir = Path(model_dir).expanduser()
        self.device = _device(device)
        # loaded as `ptdit generate` loads it
        self.pipe = load_pipeline(self.model_dir, device=self.device, dtype=torch.float32)
        self.sampler = read_defaults(self.model_dir).sampler or "euler"
        self.pipe.scheduler = scheduler_for_sampler(self.sampler, self.pipe.scheduler.config)
        self.pipe.set_progress_bar_config(disable=True)
        self.lock = threading.Lock()
        cfg = self.pipe.config
        self.task: str = cfg.task
        self.world: str | None = cfg.world
        self.transformer = self.pipe.transformer
        ae = self.pipe.autoencoder
        mf, mh, mw = self.transformer.size_multiples
        self.size_step = (mh * ae.spatial_factor, mw * ae.spatial_factor)
        self.frame_step = mf * ae.temporal_factor if self.task != "image" else 1
        self.defaults = {
            "height": cfg.height, "width": cfg.width, "frames": cfg.frames if self.task != "image" else 1,
            "steps": cfg.num_inference_steps, "cfg": cfg.guidance_scale,
        }  # fmt: skip
        self.max_height = max(cfg.height * MAX_SIZE_FACTOR, self.size_step[0])
        self.max_width = max(cfg.width * MAX_SIZE_FACTOR, self.size_step[1])
        self.max_frames = max(self.defaults["frames"] * MAX_SIZE_FACTOR, self.frame_step)
        self.depth = len(self.transformer.blocks)
        self.heads = self.transformer.ptdit_config.num_heads
        self._count = 0

    # ------------------------------------------------------------------ checks
    def check(
        self,
        prompt: Any,
        negative_prompt: Any = "",
        seed: Any = 0,
        random_seed: bool = False,
        steps: Any = None,
        cfg: Any = None,
        height: Any = None,
        width: Any = None,
        frames: Any = None,
    ) -> Settings:
        """The request as Settings, or a one-line ValueError saying what is wrong with it."""
        prompt = (prompt or "").strip() if isinstance(prompt, str) or prompt is None else None
        if prompt is None:
            raise ValueError("the prompt must be text")
        if not prompt:
            raise ValueError("empty prompt: describe what to draw (or pick an example)")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise ValueError(f"the prompt is {len(prompt)} characters long; at most {MAX_PROMPT_CHARS}")
        negative_prompt = (negative_prompt or "").strip()
        d = self.defaults
        if random_seed:
            seed = random.randint(0, SEED_MAX)
        seed = _integer("seed", seed, 0, 0, SEED_MAX)
        steps = _integer("steps", steps, d["steps"], 1, MAX_STEPS)
        cfg = _number("CFG", cfg, d["cfg"], 0.0, MAX_CFG)
        height = _integer(
            "height", height, d["height"], self.size_step[0], self.max_height, self.size_step[0]
        )
        width = _integer("width", width, d["width"], self.size_step[1], self.max_width, self.size_step[1])
        if self.task == "image":
            frames = 1
        else:
            name = "views" if self.task == "multiview" else "frames"
            frames = _integer(name, frames, d["frames"], 1, self.max_frames, self.frame_step)
        self.pipe.latent_shape(1, frames, height, width)  # whatever else the model cannot take
        return Settings(self.task, prompt, negative_prompt, seed, steps, cfg, height, width, frames)

    # ------------------------------------------------------------------ sampling
    def record(
        self, s: Settings, progress: Callable[[int, int], None] | None = None, up_to: int | None = None
    ) -> tuple[Tensor, list[Tensor], list[float], Tensor, Tensor]:
        """Sample `s` through the pipeline; returns (pixels (C, F, H, W) in [-1, 1], the latents entering each
        step, the timesteps, the conditional text states and mask). `up_to`: stop after that step (a re-run
        for the attention maps of an earlier sample; the pixels are then those of the unfinished latents)."""
        pipe = self.pipe
        shape = pipe.latent_shape(1, s.frames, s.height, s.width)
        noise = pipe.prepare_latents(shape, torch.Generator("cpu").manual_seed(s.seed), torch.device("cpu"))
        latents: list[Tensor] = [noise.clone()]
        timesteps: list[float] = []

        def on_step(p: Any, i: int, t: Tensor, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
            timesteps.append(float(t))
            latents.append(tensors["latents"].detach().float().cpu())
            if progress is not None:
                progress(i + 1, s.steps)
            if up_to is not None and i >= up_to:
                p._interrupt = True
            return {}

        with self.lock, torch.no_grad():
            out = pipe(
                s.prompt, negative_prompt=s.negative_prompt, height=s.height, width=s.width,
                num_frames=s.frames, num_inference_steps=s.steps, guidance_scale=s.cfg,
                latents=noise.to(self.device), output_type="pt", callback_on_step_end=on_step,
            )  # fmt: skip
            text, mask, _, _ = pipe.encode_prompt(s.prompt, False, device=self.device)
        result = out.frames if s.task == "video" else out.images  # image (1, C, H, W); else (1, F, C, H, W)
        px = result[0].unsqueeze(1) if s.task == "image" else result[0].transpose(0, 1)
        return px.float().cpu() * 2 - 1, latents[:-1], timesteps, text.cpu(), mask.cpu()

    def generate(
        self, s: Settings, out_dir: str | Path, progress: Callable[[int, int], None] | None = None
    ) -> DemoResult:
        """Generate one sample and write it as `ptdit generate` does (files + manifest), in `out_dir`."""
        from ..extras import available
        from ..media import to_uint8
        from ..outputs import _auto_upscale, next_output_index, save_outputs, slug

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        px, latents, timesteps, text, mask = self.record(s, progress)
        upscale = _auto_upscale(s.height, s.width)
        mp4 = s.task == "video" and available("imageio") and available("imageio_ffmpeg")
        with self.lock:  # numbered files: two samples never take one number
            first = next_output_index(out_dir)
            stem = f"{first:04d}_{slug(s.prompt)}"
            files = save_outputs(px, s.task, out_dir, stem, self.pipe.config.fps, upscale, mp4)
            manifest = {
                "run": f"{first:04d}",
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "model": str(self.model_dir),
                "task": s.task,
                "settings": {
                    "height": s.height, "width": s.width, "frames": s.frames, "steps": s.steps, "cfg": s.cfg,
                    "negative_prompt": s.negative_prompt, "sampler": self.sampler,
                    "device": str(self.device), "upscale": upscale, "via": "ptdit demo (PTDiTPipeline)",
                },
                "outputs": [{"index": 0, "prompt": s.prompt, "seed": s.seed, "files": files}],
            }  # fmt: skip
            name = f"manifest-{first:04d}.json"
            (out_dir / name).write_text(json.dumps(manifest, indent=2) + "\n")
        frames = [to_uint8(px[:, f]) for f in range(px.shape[1])]
        return DemoResult(
            s, manifest, out_dir, [*files, name], frames, latents, timesteps, text, mask
        )  # fmt: skip

    # ------------------------------------------------------------------ attention
    def maps(
        self, r: DemoResult, step: int, block: int, window: int = 0, token: int = 0, head: int | None = None
    ) -> AttentionMaps:
        """The attention maps of block `block` at sampling step `step` of a generated sample (conditional
        branch), from an eager re-run of that step."""
        if not 0 <= step < len(r.latents):
            raise ValueError(
                f"step {step} is out of range: the sample took {len(r.latents)} steps (0..{len(r.latents) - 1})"
            )
        if head is not None and not 0 <= head < self.heads:
            raise ValueError(
                f"head {head} is out of range: the model has {self.heads} heads (0..{self.heads - 1})"
            )
        t = torch.tensor([r.timesteps[step]], device=self.device)
        dtype = next(self.transformer.parameters()).dtype
        with self.lock:
            return attention_maps(
                self.transformer, r.latents[step].to(self.device, dtype), t, r.text.to(self.device, dtype),
                r.text_mask.to(self.device), block=block, window_index=window, token_index=token, head=head,
            )  # fmt: skip

    def window_pixels(self) -> tuple[int, int, int]:
        """A window's size in pixels (frames, rows, cols)."""
        p = self.transformer.ptdit_config.patch_size
        pf, ph, pw = self.transformer.ptdit_config.window
        s = self.pipe.autoencoder.spatial_factor
        return (pf * self.pipe.autoencoder.temporal_factor, ph * p * s, pw * p * s)

    def tokens_per_window(self) -> int:
        return math.prod(self.transformer.ptdit_config.window)


# ---------------------------------------------------------------------------------------------- pictures
def _integer(name: str, value: Any, default: int, low: int, high: int, multiple: int = 1) -> int:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if not math.isfinite(number) or number != int(number):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    number = int(number)
    if not low <= number <= high:
        raise ValueError(f"{name} {number} is out of range: use {low}..{high}")
    if number % multiple:
        raise ValueError(f"{name} must be a multiple of {multiple} for this model, got {number}")
    return number


def _number(name: str, value: Any, default: float, low: float, high: float) -> float:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(number) and low <= number <= high):
        raise ValueError(f"{name} {value} is out of range: use {low:g}..{high:g}")
    return number


def strip(maps: np.ndarray) -> np.ndarray:
    """(F, h, w) -> (h, F*w + (F-1)) with a one-cell gap of zeros between frames (one row for video)."""
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim == 2:
        return maps
    parts: list[np.ndarray] = []
    for f, m in enumerate(maps):
        if f:
            parts.append(np.zeros((m.shape[0], 1), np.float32))
        parts.append(m)
    return np.concatenate(parts, 1)


def _scale_for(shape: tuple[int, ...], target: int = 256) -> int:
    return max(1, target // max(shape))


def _enlarge(image: np.ndarray, scale: int) -> np.ndarray:
    return image.repeat(scale, 0).repeat(scale, 1)


def attention_pictures(model: DemoModel, r: DemoResult, maps: AttentionMaps) -> list[tuple[np.ndarray, str]]:
    """(picture, caption) for each map of `maps`: the sample with its window grid and the chosen window
    outlined, then proxy self-attention (the M x M matrix and the chosen window's proxy on the window grid),
    token->proxy of the chosen window, the window's local attention and full attention, as the block has them."""
    pf, ph, pw = model.window_pixels()
    wgrid = tuple(g // w for g, w in zip(maps.grid, maps.window))  # windows (frames, rows, cols)
    M = math.prod(wgrid)
    wi = maps.window_index
    wf, rest = divmod(wi, wgrid[1] * wgrid[2])
    wy, wx = divmod(rest, wgrid[2])
    scale = _scale_for(r.frames[0].shape[:2])
    views = []
    for f, frame in enumerate(r.frames):
        big = window_grid(_enlarge(frame, scale), (ph * scale, pw * scale))
        if f // max(pf, 1) == wf:
            y0, x0 = wy * ph * scale, wx * pw * scale
            y1, x1 = y0 + ph * scale - 1, x0 + pw * scale - 1
            for a, b in (((y0, y1 + 1), (x0, x0 + 2)), ((y0, y1 + 1), (x1 - 1, x1 + 1))):
                big[a[0] : a[1], b[0] : b[1]] = (0, 200, 255)
            big[y0 : y0 + 2, x0 : x1 + 1] = (0, 200, 255)
            big[y1 - 1 : y1 + 1, x0 : x1 + 1] = (0, 200, 255)
        views.append(big)
    if len(views) > 1:
        from ..media import grid

        views = [grid(views, columns=len(views), pad=4)]
    where = (
        f"window {wi} (frame group {wf}, row {wy}, column {wx})"
        if wgrid[0] > 1
        else f"window {wi} (row {wy}, column {wx})"
    )
    pictures = [(views[0], f"windows of {ph}x{pw} px: {M} windows, {wi} = {where}, outlined")]
    step = f"block {maps.block}"
    if maps.proxy_self is not None:
        ps = maps.proxy_self.numpy()
        pictures.append(
            (
                heatmap(ps, _scale_for(ps.shape)),
                f"{step}: proxy self-attention, {M} x {M} (row: query proxy, column: key proxy)",
            )
        )
        pm = strip(maps.proxy_map(wi))
        pictures.append(
            (heatmap(pm, _scale_for(pm.shape)), f"{step}: window {wi}'s proxy over all proxies (window grid)")
        )
    if maps.token_to_proxy is not None:
        tp = strip(maps.window_to_proxy_map())
        pictures.append(
            (
                heatmap(tp, _scale_for(tp.shape)),
                f"{step}: tokens of window {wi} -> proxies (mean over the window's tokens)",
            )
        )
    if maps.local is not None:
        loc = maps.local.numpy()
        pictures.append(
            (
                heatmap(loc, _scale_for(loc.shape)),
                f"{step}: window {wi}'s local attention, {loc.shape[0]} x {loc.shape[1]} tokens",
            )
        )
    if maps.token is not None:
        tm = strip(maps.token_map())
        pictures.append(
            (
                heatmap(tm, _scale_for(tm.shape)),
                f"{step}: token {maps.token_index}'s full attention over the token grid",
            )
        )
    return pictures


def save_attention(
    model: DemoModel, r: DemoResult, stem: str, step: int | None = None, blocks: list[int] | None = None
) -> list[str]:
    """Write the attention pictures of a sample as PNGs next to it: `{stem}_attn_windows.png` and, per block,
    `{stem}_attn_step{S}_block{B}_{kind}.png` (step: the middle one by default; window: the centre one).
    Returns the file names."""
    from PIL import Image

    step = len(r.latents) // 2 if step is None else step
    blocks = list(range(model.depth)) if blocks is None else blocks
    window = _centre_window(model, r)
    names: list[str] = []
    kinds = ["proxy_self", "window_proxy", "token_to_proxy", "local", "token"]
    for b in blocks:
        maps = model.maps(r, step, b, window=window, token=window * model.tokens_per_window())
        pictures = attention_pictures(model, r, maps)
        if not names:
            names.append(f"{stem}_attn_windows.png")
            Image.fromarray(pictures[0][0]).save(r.out_dir / names[-1])
        present = [k for k in kinds if _has(maps, k)]
        for kind, (picture, _) in zip(present, pictures[1:]):
            names.append(f"{stem}_attn_step{step:02d}_block{b}_{kind}.png")
            Image.fromarray(picture).save(r.out_dir / names[-1])
    return names


def _has(maps: AttentionMaps, kind: str) -> bool:
    attr = {"window_proxy": "proxy_self"}.get(kind, kind)
    return getattr(maps, attr) is not None


def _centre_window(model: DemoModel, r: DemoResult) -> int:
    lat = r.latents[0]
    p = model.transformer.ptdit_config.patch_size
    pf, ph, pw = model.transformer.ptdit_config.window
    gf, gh, gw = max(1, lat.shape[2] // pf), lat.shape[3] // p // ph, lat.shape[4] // p // pw
    return (gf // 2) * gh * gw + (gh // 2) * gw + gw // 2


def save_attention_for_manifest(
    manifest: dict[str, Any], out_dir: str | Path, device: str | None = None
) -> list[str]:
    """`ptdit generate --save-attention`: for every output of a manifest, re-run its sampling (same model, prompt,
    seed and settings, through PTDiTPipeline) up to the middle step and write its attention PNGs next to it."""
    model = DemoModel(manifest["model"], device)
    st = manifest["settings"]
    names: list[str] = []
    for o in manifest["outputs"]:
        s = Settings(
            manifest["task"], o["prompt"], st.get("negative_prompt", ""), o["seed"], st["steps"], st["cfg"],
            st["height"], st["width"], st["frames"],
        )  # fmt: skip
        step = s.steps // 2
        _, latents, timesteps, text, mask = model.record(s, up_to=step)
        frames = _frames_of(Path(out_dir), o["files"], manifest["task"], st)
        r = DemoResult(s, manifest, Path(out_dir), o["files"], frames, latents, timesteps, text, mask)
        stem = o["files"][0].rsplit(".", 1)[0].removesuffix("_view00")
        names += save_attention(model, r, stem, step)
    return names


def _frames_of(out_dir: Path, files: list[str], task: str, st: dict[str, Any]) -> list[np.ndarray]:
    """The written sample's frames at the model's size (the files are enlarged `upscale` times)."""
    from PIL import Image, ImageSequence

    up = int(st.get("upscale", 1)) or 1
    if task == "video":
        gif = next(f for f in files if f.endswith(".gif"))
        frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(Image.open(out_dir / gif))]
    elif task == "multiview":
        frames = [np.asarray(Image.open(out_dir / f).convert("RGB")) for f in files if "_view" in f]
    else:
        frames = [np.asarray(Image.open(out_dir / files[0]).convert("RGB"))]
    return [np.ascontiguousarray(f[::up, ::up]) for f in frames]


def settings_dict(s: Settings) -> dict[str, Any]:
    return asdict(s)

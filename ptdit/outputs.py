"""Output files of generation: file-name slugs, run numbering, and one sample written as PNG / MP4 + GIF / views
and a grid (shared by `ptdit generate` and `ptdit demo`)."""

from __future__ import annotations

import re
from pathlib import Path

from torch import Tensor


def slug(text: str, length: int = 48) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:length].rstrip("-") or "prompt"


def save_outputs(
    pixels: Tensor, task: str, out_dir: Path, stem: str, fps: float, upscale: int, mp4: bool = True
) -> list[str]:
    """Write one sample (C, F, H, W) in [-1, 1]; returns the file names written. Video: MP4 (with `mp4`, which
    needs the `video` extra) and GIF."""
    from .media import grid, save_gif, save_mp4, save_png, to_uint8

    frames = [to_uint8(pixels[:, f]) for f in range(pixels.shape[1])]  # (H, W, 3) uint8 each
    if task == "image":
        return [save_png(frames[0], out_dir / f"{stem}.png", upscale).name]
    if task == "video":
        names = [save_mp4(frames, out_dir / f"{stem}.mp4", fps, upscale).name] if mp4 else []
        return names + [save_gif(frames, out_dir / f"{stem}.gif", fps, upscale).name]
    names = [save_png(f, out_dir / f"{stem}_view{v:02d}.png", upscale).name for v, f in enumerate(frames)]
    names.append(save_png(grid(frames, columns=len(frames)), out_dir / f"{stem}_grid.png", upscale).name)
    return names


def read_prompts(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompt file {path} does not exist")
    prompts = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not prompts:
        raise ValueError(f"prompt file {path} has no prompts (write one prompt per line)")
    return prompts


def next_output_index(out_dir: Path) -> int:
    """The number the next run's first output takes: one past the highest NNNN_* file or manifest-NNNN.json."""
    used = [
        int(m.group(1) or m.group(2))
        for f in (out_dir.iterdir() if out_dir.is_dir() else ())
        if (m := re.match(r"^(\d{4,})_|^manifest-(\d{4,})\.json$", f.name))
    ]
    return max(used, default=-1) + 1


def _auto_upscale(height: int, width: int) -> int:
    return max(1, -(-256 // min(height, width)))

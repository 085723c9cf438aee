"""Pixels to files: uint8 conversion as released, PNG / GIF / MP4 writers and image grids (all written atomically)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .extras import require
from .io import atomic_write_bytes


def to_uint8(pixels: Tensor) -> np.ndarray:
    """Pixels in [-1, 1], (C, ...) -> uint8 (..., C) as released: clamp, map to [0, 1], *255 + 0.5, truncate.

    One channel is repeated to RGB.
    """
    x = ((pixels.detach().float().clamp(-1, 1) + 1) / 2 * 255 + 0.5).clamp(0, 255).to(torch.uint8)
    if x.shape[0] == 1:
        x = x.expand(3, *x.shape[1:])
    return x.movedim(0, -1).cpu().numpy()


def grid(images: Sequence[np.ndarray], columns: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile (H, W, 3) uint8 images of one size into a grid with `pad` black pixels between them."""
    if not images:
        raise ValueError("grid() needs at least one image")
    n = len(images)
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    H, W, C = images[0].shape
    out = np.zeros((rows * H + (rows - 1) * pad, columns * W + (columns - 1) * pad, C), dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        out[r * (H + pad) : r * (H + pad) + H, c * (W + pad) : c * (W + pad) + W] = img
    return out


def _png_bytes(image: np.ndarray, scale: int = 1) -> bytes:
    img = Image.fromarray(image)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def save_png(image: np.ndarray, path: str | Path, scale: int = 1) -> Path:
    """Write an (H, W, 3) uint8 image; `scale` > 1 enlarges it with nearest-neighbour (for tiny images)."""
    atomic_write_bytes(path, _png_bytes(image, scale))
    return Path(path)


def save_gif(frames: Sequence[np.ndarray], path: str | Path, fps: float = 8.0, scale: int = 1) -> Path:
    """Write (H, W, 3) uint8 frames as a looping GIF."""
    imgs = [Image.fromarray(f) for f in frames]
    if scale > 1:
        imgs = [im.resize((im.width * scale, im.height * scale), Image.NEAREST) for im in imgs]
    buf = io.BytesIO()
    imgs[0].save(buf, format="GIF", save_all=True, append_images=imgs[1:], duration=int(1000 / fps), loop=0)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def save_mp4(frames: Sequence[np.ndarray], path: str | Path, fps: float = 8.0, scale: int = 1) -> Path:
    """Write (H, W, 3) uint8 frames as an H.264 MP4 (imageio-ffmpeg). Sizes are enlarged to a multiple of 16.

    Needs the `video` extra (MissingExtra otherwise)."""
    require("imageio_ffmpeg", "video", "writing MP4")
    imageio = require("imageio.v2", "video", "writing MP4")

    H, W = frames[0].shape[:2]
    scale = max(scale, 1)
    while (H * scale) % 16 or (W * scale) % 16:  # yuv420p and macro blocks want even, ideally /16 sizes
        scale += 1
    frames = [np.kron(f, np.ones((scale, scale, 1), dtype=np.uint8)) if scale > 1 else f for f in frames]
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    try:
        imageio.mimwrite(tmp, frames, fps=fps, codec="libx264", quality=6, macro_block_size=16)
        data = tmp.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_bytes(path, data)
    return path

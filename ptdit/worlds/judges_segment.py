"""Reading objects out of a (generated, noisy, blurry) Shapes frame: palette segmentation and components.

Pipeline per frame (H, W, 3) in [0, 1]:
  1. foreground = max channel > FOREGROUND_THRESHOLD (the background is black);
  2. 4-connected components of the foreground; components smaller than H*W/128 px are noise and dropped;
  3. a component's colour is the palette colour (of `colors`: the image judge reads ALL_COLORS, new colours
     included; the video judge the eight COLORS) nearest to most of its *interior* pixels (the component minus
     its 1-px rim: an anti-aliased or blurred rim of a white shape is gray, of yellow is dark yellow ...);
     a component whose interior holds two colours, each with an interior of its own (two touching objects),
     is split by colour;
  4. the object's coverage of that colour (0..1 per pixel) gives its size (the summed coverage, which blur
     and zero-mean noise leave unchanged), its position, and its shape: the ideal circle, square or triangle
     of that area and centroid that fits the coverage best (`fit_shape`), or "unrecognised" when even the
     best misfits by more than MAX_SHAPE_ERROR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .shapes import ALL_COLORS, ALL_PALETTE01, COLORS, PALETTE01, SHAPES, shape_coverage

FOREGROUND_THRESHOLD = 0.28
BLUR_LEVELS = 3
# misfit (L1 / area) above which a blob is no shape at all; ground truth stays under 0.25 even with noise of
# std 0.2 (in [-1, 1] units) and blur, and the runner-up shape is over 0.12 away
MAX_SHAPE_ERROR = 0.5
SHAPE_FILL = {"circle": np.pi / 4, "square": 1.0, "triangle": 0.5}  # area / bounding-box area


def as_frames(sample, frames: int | None = None) -> np.ndarray:
    """A sample in the world's layout -> float32 (F, H, W, 3) in [0, 1].

    Accepts numpy arrays or torch tensors: uint8 in [0, 255] or floats in [-1, 1] (the model's range); images
    as (3, H, W), (H, W, 3) or (3, 1, H, W); video and multi-view as (3, F, H, W). `frames`, if given, is
    the F the layout must have.
    """
    if isinstance(sample, torch.Tensor):
        sample = sample.detach().cpu()
        sample = sample.numpy() if sample.dtype == torch.uint8 else sample.float().numpy()
    arr = np.asarray(sample)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif np.issubdtype(arr.dtype, np.floating):
        arr = (arr.astype(np.float32) + 1.0) / 2.0
    else:
        raise ValueError(f"a sample must be uint8 in [0, 255] or float in [-1, 1], got dtype {arr.dtype}")
    if arr.ndim == 3 and arr.shape[0] == 3:
        arr = arr.transpose(1, 2, 0)[None]
    elif arr.ndim == 3 and arr.shape[-1] == 3:
        arr = arr[None]
    elif arr.ndim == 4 and arr.shape[0] == 3:
        arr = arr.transpose(1, 2, 3, 0)
    else:
        raise ValueError(
            f"a sample must be (3, H, W) or (H, W, 3) for images, (3, F, H, W) for video and multi-view; "
            f"got shape {tuple(arr.shape)}"
        )
    if frames is not None and arr.shape[0] != frames:
        raise ValueError(f"expected {frames} frames (views), got a sample of shape {tuple(np.shape(sample))}")
    return np.clip(np.nan_to_num(arr, nan=0.0), 0.0, 1.0)


# ---------------------------------------------------------------------------------------- morphology


def _shift_or(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def smooth(x: np.ndarray) -> np.ndarray:
    """[1, 2, 1] / 4 blur along both axes of a (H, W) map (edges replicated)."""
    p = np.concatenate([x[:1], x, x[-1:]], 0)
    x = 0.25 * (p[:-2] + p[2:]) + 0.5 * x
    p = np.concatenate([x[:, :1], x, x[:, -1:]], 1)
    return 0.25 * (p[:, :-2] + p[:, 2:]) + 0.5 * x


def dilate(mask: np.ndarray, steps: int = 1) -> np.ndarray:
    for _ in range(steps):
        mask = _shift_or(mask)
    return mask


def erode(mask: np.ndarray, steps: int = 1) -> np.ndarray:
    for _ in range(steps):
        mask = ~_shift_or(~mask)
    return mask


def connected_components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected components of a boolean mask (H, W), as a list of boolean masks, largest first."""
    h, w = mask.shape
    big = h * w + 1
    labels = np.where(mask, np.arange(1, h * w + 1).reshape(h, w), big)
    while True:  # min-label propagation; converges in about the largest component's diameter
        m = labels.copy()
        m[1:] = np.minimum(m[1:], labels[:-1])
        m[:-1] = np.minimum(m[:-1], labels[1:])
        m[:, 1:] = np.minimum(m[:, 1:], labels[:, :-1])
        m[:, :-1] = np.minimum(m[:, :-1], labels[:, 1:])
        m = np.where(mask, m, big)
        if np.array_equal(m, labels):
            break
        labels = m
    comps = [labels == v for v in np.unique(labels[mask])]
    return sorted(comps, key=lambda c: -int(c.sum()))


# --------------------------------------------------------------------------------------------- objects


@dataclass
class Detected:
    """One object found in a frame: palette colour, shape, position and size, in pixels."""

    color: str
    shape: str
    x: float  # centroid of the covered area
    y: float
    cx: float  # centre of the fitted shape's bounding box (differs from the centroid for a triangle)
    cy: float
    extent: float  # side of the bounding box of the fitted ideal shape (same covered area)
    bbox: tuple[int, int, int, int]  # (x0, y0, x1, y1) of the pixels covered over 50 %, inclusive
    area: int
    shape_error: dict  # L1 misfit / area of each ideal shape (the smallest wins)


def nearest_palette(pixels: np.ndarray, palette01: np.ndarray = PALETTE01) -> np.ndarray:
    """Indices into `palette01` (K, 3), by default COLORS', of the colour nearest to each RGB pixel (..., 3) in
    [0, 1]."""
    d = ((pixels[..., None, :] - palette01) ** 2).sum(-1)
    return d.argmin(-1)


def fit_shape(coverage: np.ndarray) -> tuple[str, float, float, float, dict]:
    """Best-fitting ideal shape for a soft coverage map (H, W) in [0, 1] of one object.

    For each shape, its size follows from the covered area (area = fill * side^2) and its box centre from the
    centroid (a triangle's centroid lies side/6 below its box centre); the ideal shape is rasterised there
    and compared with the coverage (L1 distance / area), also after blurring the ideal shape once or twice
    with a [1, 2, 1] / 4 kernel, so that blurry samples still match their shape best.
    Returns (shape, box centre x, box centre y, side, {shape: error}).
    """
    rows, cols = np.nonzero(coverage)
    pad = 2 + BLUR_LEVELS  # room for a misfit and for the blurred ideal shapes
    oy, ox = max(0, rows.min() - pad), max(0, cols.min() - pad)
    coverage = coverage[oy : rows.max() + pad + 1, ox : cols.max() + pad + 1]  # work on the object's window
    h, w = coverage.shape
    area = float(coverage.sum())
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    mx, my = float((coverage * xs).sum() / area), float((coverage * ys).sum() / area)
    errors, fits = {}, {}
    for shape in SHAPES:
        side = float(np.sqrt(area / SHAPE_FILL[shape]))
        cy = my - side / 6 if shape == "triangle" else my
        fits[shape] = (mx + ox, cy + oy, side)
        ideal = shape_coverage(shape, h, w, mx, cy, side, side)
        errs = [float(np.abs(ideal - coverage).sum() / area)]
        for _ in range(
            BLUR_LEVELS - 1
        ):  # the sample may be blurry: compare with the ideal blurred 1, 2 times
            ideal = smooth(ideal)
            errs.append(float(np.abs(ideal - coverage).sum() / area))
        errors[shape] = min(errs)
    best = min(errors, key=errors.get)
    return (best, *fits[best], errors)


def _object(frame: np.ndarray, mask: np.ndarray, color: str, others: np.ndarray) -> Detected | None:
    rgb = ALL_PALETTE01[ALL_COLORS.index(color)]
    region = dilate(mask, 1) & ~others
    coverage = np.where(region, np.clip(frame @ rgb / float(rgb @ rgb), 0.0, 1.0), 0.0)
    if coverage.sum() < 2:
        return None
    shape, cx, cy, side, errors = fit_shape(coverage)
    if errors[shape] > MAX_SHAPE_ERROR:  # a blob that is none of the shapes
        shape = "unrecognised"
    obj = coverage > 0.5
    ys, xs = np.nonzero(obj if obj.any() else mask)
    return Detected(
        color=color,
        shape=shape,
        x=float((coverage * (np.arange(frame.shape[1]) + 0.5)).sum() / coverage.sum()),
        y=float((coverage * (np.arange(frame.shape[0])[:, None] + 0.5)).sum() / coverage.sum()),
        cx=cx,
        cy=cy,
        extent=side,
        bbox=(int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())),
        area=int(len(xs)),
        shape_error=errors,
    )


def detect_objects(frame: np.ndarray, colors: tuple[str, ...] = COLORS) -> list[Detected]:
    """The objects of one frame (H, W, 3) in [0, 1], largest first (see the module docstring); `colors`: the
    palette it segments with (a subset of ALL_COLORS)."""
    h, w, _ = frame.shape
    min_area = max(4, h * w // 128)
    fg = frame.max(-1) > FOREGROUND_THRESHOLD
    labels = nearest_palette(frame, ALL_PALETTE01[[ALL_COLORS.index(c) for c in colors]])
    parts: list[tuple[np.ndarray, int]] = []
    for comp in connected_components(fg):
        if comp.sum() < min_area:
            continue
        core = erode(comp, 1)
        if core.sum() < 3:
            core = comp
        counts = np.bincount(labels[core], minlength=len(colors))
        strong = [int(c) for c in np.nonzero(counts >= 0.1 * core.sum())[0]]
        if (
            len(strong) > 1
        ):  # a colour that is only a rim (blurred white reads gray) has no interior of its own
            solid = [c for c in strong if erode(comp & (labels == c), 1).sum() >= max(3, min_area // 2)]
            strong = solid or [int(counts.argmax())]
        if len(strong) == 1:
            parts.append((comp, strong[0]))
            continue
        for c in strong:  # two touching objects: split by colour
            for sub in connected_components(comp & (labels == c)):
                if sub.sum() >= min_area:
                    parts.append((sub, c))
    taken = np.zeros((h, w), dtype=bool)
    for mask, _ in parts:
        taken |= mask
    objects = [_object(frame, mask, colors[c], taken & ~mask) for mask, c in parts]
    return sorted((o for o in objects if o is not None), key=lambda o: -o.area)

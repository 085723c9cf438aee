"""Shared parts of the procedural Shapes worlds: palette, 2-D shape rasterisation, caption grammar, seeding.

Palette. Eight named colours on a black background. Seven are the pure sRGB primaries and secondaries (red,
green, blue, yellow, cyan, magenta, white); the eighth is gray (128, 128, 128). Gray is the point of the RGB
cube farthest from all seven others and from the black background at once: its smallest distance to any of
them is about 220 (out of 441, the cube's diagonal), whereas orange (255, 128, 0), the other obvious choice,
sits only about 127 from red and from yellow (`palette_min_distance` computes both). The catch, that a
half-covered white pixel on an anti-aliased edge is gray, is handled by the judges: they read an object's
colour from its interior, never from its rim.

New colours. `NEW_PALETTE` holds colours that no default dataset or evaluation ever draws: orange (255, 128, 0),
the colour a LoRA teaches the bundled image model (README, docs/training.md). The image world draws it only when
asked (`shapes_image.make_dataset(new_color_share=...)`, `data.options.new_color_share`), its captions and
`parse_prompt` know the word, and the image judge segments with all of `ALL_COLORS`, so that an orange object
asked to be red (or yellow) is seen as orange. `COLORS` stays the eight colours every world samples by default.

Seeding. Item i of a split is a pure function of (world, seed, split, i): its generator is
`numpy.random.default_rng([world_id, seed, split_id, i])`, so items can be drawn in any order, by any worker.

Splits. "train" never contains a held-out composition; "heldout" items each contain at least one. The held-out
lists live in the world modules (shapes_image, shapes_video, shapes_multiview) next to the scene samplers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

# ----------------------------------------------------------------------------------------------- palette

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
}
COLORS: tuple[str, ...] = tuple(PALETTE)
PALETTE01 = np.array([PALETTE[c] for c in COLORS], dtype=np.float32) / 255.0  # (8, 3) in [0, 1]
NEW_PALETTE: dict[str, tuple[int, int, int]] = {"orange": (255, 128, 0)}  # never drawn unless asked
NEW_COLORS: tuple[str, ...] = tuple(NEW_PALETTE)
ALL_COLORS: tuple[str, ...] = COLORS + NEW_COLORS
ALL_PALETTE01 = (
    np.array([{**PALETTE, **NEW_PALETTE}[c] for c in ALL_COLORS], dtype=np.float32) / 255.0
)  # (9, 3)

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
SPLITS: dict[str, int] = {"train": 0, "heldout": 1}
WORLD_IDS: dict[str, int] = {"shapes-image": 1, "shapes-video": 2, "shapes-multiview": 3}


def palette_min_distance(rgb: Sequence[int]) -> float:
    """Smallest Euclidean distance (0..255 units) from `rgb` to black and the seven primaries/secondaries."""
    others = [(0, 0, 0)] + [PALETTE[c] for c in COLORS[:7]]
    return float(min(np.linalg.norm(np.subtract(rgb, o)) for o in others))


# ------------------------------------------------------------------------------------------ seeding, splits


def check_split(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {sorted(SPLITS)}")
    return SPLITS[split]


def item_rng(world: str, seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of item `index` of `split`: a pure function of (world, seed, split, index)."""
    if index < 0:
        raise ValueError(f"item index must be >= 0, got {index}")
    return np.random.default_rng([WORLD_IDS[world], int(seed), check_split(split), int(index)])


def pick(rng: np.random.Generator, options: Sequence):
    """One element of `options`, uniformly (keeps tuples intact, unlike rng.choice)."""
    return options[int(rng.integers(len(options)))]


# ------------------------------------------------------------------------------------- 2-D rasterisation

SUPERSAMPLE = 4  # sub-samples per pixel side; edges are anti-aliased by averaging coverage


def _subsample_grid(height: int, width: int, ss: int = SUPERSAMPLE) -> tuple[np.ndarray, np.ndarray]:
    """Sub-sample centres in pixel units (pixel j covers [j, j + 1)): ys (H*ss, 1), xs (1, W*ss)."""
    ys = (np.arange(height * ss, dtype=np.float32) + 0.5) / ss
    xs = (np.arange(width * ss, dtype=np.float32) + 0.5) / ss
    return ys[:, None], xs[None, :]


def shape_inside(shape: str, ys: np.ndarray, xs: np.ndarray, cx: float, cy: float, w: float, h: float):
    """Boolean mask of points inside `shape` whose bounding box is centred at (cx, cy) with size (w, h).

    circle: the ellipse inscribed in the box; square: the box; triangle: upright isosceles triangle, apex at
    the top centre of the box, base along its bottom edge.
    """
    dx, dy = xs - cx, ys - cy
    if shape == "circle":
        return (dx / (w / 2)) ** 2 + (dy / (h / 2)) ** 2 <= 1.0
    if shape == "square":
        return (np.abs(dx) <= w / 2) & (np.abs(dy) <= h / 2)
    if shape == "triangle":
        t = (dy + h / 2) / h  # 0 at the apex row, 1 at the base
        return (t >= 0) & (t <= 1) & (np.abs(dx) <= t * w / 2)
    raise ValueError(f"unknown shape {shape!r}: use one of {SHAPES}")


def shape_coverage(
    shape: str, height: int, width: int, cx: float, cy: float, w: float, h: float, ss: int = SUPERSAMPLE
) -> np.ndarray:
    """Anti-aliased coverage (H, W) float32 in [0, 1] of one shape (box centre (cx, cy), box size (w, h))."""
    ys, xs = _subsample_grid(height, width, ss)
    inside = shape_inside(shape, ys, xs, cx, cy, w, h).astype(np.float32)
    return inside.reshape(height, ss, width, ss).mean(axis=(1, 3))


def paint(canvas: np.ndarray, coverage: np.ndarray, color: str) -> None:
    """Composite a colour over `canvas` (H, W, 3) in [0, 1] in place, weighted by `coverage` (H, W)."""
    rgb = ALL_PALETTE01[ALL_COLORS.index(color)]
    canvas *= 1.0 - coverage[..., None]
    canvas += coverage[..., None] * rgb


def to_model_range(frames_hwc: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) in [0, 1] -> (3, F, H, W) float32 in [-1, 1] (contract 1's layout)."""
    return np.ascontiguousarray(
        np.clip(frames_hwc, 0.0, 1.0).transpose(3, 0, 1, 2) * 2.0 - 1.0, dtype=np.float32
    )


# -------------------------------------------------------------------------------------- caption grammar

SIZE_WORDS = ("small", "medium", "large")
_COLOR_RE = "|".join(COLORS) + "|grey"


def normalize_prompt(prompt: str) -> str:
    """Lower-case, single spaces, no trailing full stop; 'grey' is read as 'gray'."""
    if not isinstance(prompt, str):
        raise ValueError(f"a prompt must be a string, got {type(prompt).__name__}")
    text = " ".join(prompt.lower().replace(",", " , ").split()).replace(" ,", ",")
    text = text.rstrip(".! ").strip()
    return re.sub(r"\bgrey\b", "gray", text)


def object_phrase(color: str | None, shape: str | None, size: str | None = None) -> str:
    """'a red circle' or, with a size word, 'a small red circle'; without a colour 'a circle', without a shape
    'a red shape' (the partial phrases of training-only caption augmentation)."""
    text = " ".join(w for w in (size, color, shape or "shape") if w)
    # "an orange circle"; no word of the eight old colours, the sizes or the shapes starts with a vowel
    return ("an " if text[0] in "aeiou" else "a ") + text


def object_regex(
    k: int, shapes: Sequence[str] = SHAPES, sized: bool = True, colors: Sequence[str] = COLORS
) -> str:
    """Regex of an object phrase with named groups z{k} (size, optional), c{k} (colour), s{k} (shape);
    `colors`: the colour words it reads (the image world passes ALL_COLORS, new colours included)."""
    size = rf"(?:(?P<z{k}>{'|'.join(SIZE_WORDS)}) )?" if sized else ""
    return rf"an? {size}(?P<c{k}>{'|'.join(colors)}|grey) (?P<s{k}>{'|'.join(shapes)})"


def object_from_match(m: re.Match, k: int) -> dict:
    """{"shape", "color", "size"} of object k from a match of `object_regex(k)` (size None when unnamed)."""
    groups = m.groupdict()
    color = groups[f"c{k}"]
    return {
        "shape": groups[f"s{k}"],
        "color": "gray" if color == "grey" else color,
        "size": groups.get(f"z{k}"),
    }


def explain_unparsable(world: str, prompt: str, vocabulary: set[str], examples: Sequence[str]) -> ValueError:
    """A ValueError that names the words the world does not know, or else shows prompts it can read."""
    words = re.findall(r"[a-z]+", prompt)
    unknown = sorted({w for w in words if w not in vocabulary})
    if unknown:
        why = f"the words {unknown} are not part of the {world} world's vocabulary"
    else:
        why = "its words are known but the sentence matches none of the caption templates"
    shown = "; ".join(f"{e!r}" for e in examples)
    return ValueError(
        f"{world} cannot express the prompt {prompt!r}: {why}. Prompts it reads look like: {shown}"
    )


# --------------------------------------------------------------------------------------------- datasets


class ShapesWorldDataset(Dataset):
    """Base of the Shapes datasets: item i = render(scene_spec(seed, split, i)), caption from the same seed.

    Subclasses set `world` and implement `sample_scene(rng)`, `render(spec)` and `caption(spec, rng)`.
    __getitem__ returns {"pixels": FloatTensor (3, F, H, W) in [-1, 1], "caption": str, "spec": dict}.
    """

    world: str = ""

    def __init__(self, split: str = "train", length: int = 50_000, seed: int = 0):
        check_split(split)
        if length <= 0:
            raise ValueError(f"length must be positive, got {length}")
        self.split, self.length, self.seed = split, int(length), int(seed)

    def __len__(self) -> int:
        return self.length

    def sample_scene(self, rng: np.random.Generator) -> dict:  # pragma: no cover - interface
        raise NotImplementedError

    def render(self, spec: dict) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def caption(self, spec: dict, rng: np.random.Generator) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def frames_hw(self) -> tuple[int, int, int]:  # pragma: no cover - interface
        raise NotImplementedError

    def bucket_of(self, index: int) -> tuple[int, int, int]:
        """(F, H, W) of item `index`: one size for the whole dataset."""
        return self.frames_hw()

    def spec_and_caption(self, index: int) -> tuple[dict, str]:
        """The scene spec and caption of item `index` (cheap: no rendering)."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of length {self.length}")
        rng = item_rng(self.world, self.seed, self.split, index)
        spec = self.sample_scene(rng)
        return spec, self.caption(spec, rng)

    def __getitem__(self, index: int) -> dict:
        spec, caption = self.spec_and_caption(int(index))
        return {"pixels": torch.from_numpy(self.render(spec)), "caption": caption, "spec": spec}

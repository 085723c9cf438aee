"""Shapes image world: one or two flat shapes on black, captioned with their colours, sizes and relation.

A scene holds one object, or two objects related by "left of", "right of", "above" or "below" (objects[0] is
<relation> of objects[1]). Shapes: circle, square, triangle; colours: the 8 of `shapes.PALETTE` (and, only
when `new_color_share` > 0, the new colours of `shapes.NEW_PALETTE`: orange); sizes: small,
medium, large = 0.22, 0.31, 0.40 of the image height (bounding-box side). Two objects never touch (a gap of at
least 3 px at 32x32), and the offset along the relation's axis is always at least twice the offset across it,
so the relation is never ambiguous.

Held-out compositions (never in split="train"; every split="heldout" item has at least one):
  colour-shape pairs     HELDOUT_COLOR_SHAPE: red triangle, blue circle, yellow square, cyan triangle;
  shape-relation-shape   HELDOUT_LAYOUTS, read on the scene, whatever the caption's wording:
                         a circle left of a triangle (= a triangle right of a circle),
                         a square above a circle (= a circle below a square),
                         a triangle above a square (= a square below a triangle).

Caption templates (size words "small"/"large" appear for about half of the small and large objects):
  one object:  "a red circle", "an image of a red circle", "a red circle on a black background"
  two objects: "A to the left of B", "A left of B", "A to the right of B", "A right of B", "A above B",
               "A below B", "A under B", "B with A on its left", "B with A on its right", "B with A above it",
               "B with A below it"   (A, B: "a [small|large] <colour> <shape>")
"""

from __future__ import annotations

import re

import numpy as np

from .shapes import (
    ALL_COLORS,
    COLORS,
    NEW_COLORS,
    SHAPES,
    SIZE_WORDS,
    ShapesWorldDataset,
    explain_unparsable,
    normalize_prompt,
    object_from_match,
    object_phrase,
    object_regex,
    paint,
    pick,
    shape_coverage,
    to_model_range,
)

WORLD = "shapes-image"
SIZE_FRACTION: dict[str, float] = {"small": 0.22, "medium": 0.31, "large": 0.40}
RELATIONS: tuple[str, ...] = ("left", "right", "above", "below")

HELDOUT_COLOR_SHAPE: tuple[tuple[str, str], ...] = (
    ("red", "triangle"),
    ("blue", "circle"),
    ("yellow", "square"),
    ("cyan", "triangle"),
)
# (shape on the left / on top, axis, shape on the right / below)
HELDOUT_LAYOUTS: tuple[tuple[str, str, str], ...] = (
    ("circle", "left-of", "triangle"),
    ("square", "above", "circle"),
    ("triangle", "above", "square"),
)

REL_PHRASES: dict[str, tuple[str, ...]] = {
    "left": ("to the left of", "left of"),
    "right": ("to the right of", "right of"),
    "above": ("above",),
    "below": ("below", "under"),
}
WITH_PHRASES: dict[str, str] = {
    "left": "on its left",
    "right": "on its right",
    "above": "above it",
    "below": "below it",
}
SINGLE_TEMPLATES: tuple[str, ...] = ("{A}", "an image of {A}", "{A} on a black background")

# ------------------------------------------------------------------------------------------ compositions


def layout_of(spec: dict) -> tuple[str, str, str] | None:
    """The scene's (first shape, axis, second shape), first = the left / upper object; None for one object."""
    if spec.get("relation") is None:
        return None
    a, b = spec["objects"][0]["shape"], spec["objects"][1]["shape"]
    rel = spec["relation"]
    if rel in ("left", "above"):
        return (a, "left-of" if rel == "left" else "above", b)
    return (b, "left-of" if rel == "right" else "above", a)


def heldout_compositions(spec: dict) -> list[str]:
    """The held-out compositions a scene (or prompt spec) contains, as readable strings."""
    found = [
        f"{o['color']} {o['shape']}"
        for o in spec["objects"]
        if (o["color"], o["shape"]) in HELDOUT_COLOR_SHAPE
    ]
    layout = layout_of(spec)
    if layout in HELDOUT_LAYOUTS:
        found.append(" ".join(layout))
    return found


def heldout_kind(spec: dict) -> str | None:
    """Which kind of held-out composition a scene (or prompt spec) contains: "colour-shape" (a held-out pair,
    with or without a held-out layout), "layout" (only a held-out layout) or None (a training composition)."""
    if any((o["color"], o["shape"]) in HELDOUT_COLOR_SHAPE for o in spec["objects"]):
        return "colour-shape"
    return "layout" if layout_of(spec) in HELDOUT_LAYOUTS else None


# ----------------------------------------------------------------------------------------------- scenes


def _place_pair(rng: np.random.Generator, ext: tuple[float, float], rel: str, size: int):
    """Centres (xa, ya), (xb, yb) with A <rel> B, a gap >= 3 px (at 32), inside the image; None if no room."""
    margin, gap = size / 32, 3 * size / 32
    lo = [e / 2 + margin for e in ext]
    hi = [size - e / 2 - margin for e in ext]
    for _ in range(200):
        ua = [rng.uniform(lo[0], hi[0]), rng.uniform(lo[0], hi[0])]  # A's (along, across)
        ub = [rng.uniform(lo[1], hi[1]), rng.uniform(lo[1], hi[1])]
        along = ub[0] - ua[0] if rel in ("left", "above") else ua[0] - ub[0]  # > 0 when A <rel> B
        if along < (ext[0] + ext[1]) / 2 + gap or abs(ua[1] - ub[1]) > 0.5 * along:
            continue
        if rel in ("left", "right"):
            return (ua[0], ua[1]), (ub[0], ub[1])
        return (ua[1], ua[0]), (ub[1], ub[0])
    return None


def sample_scene(
    rng: np.random.Generator, size: int = 32, split: str = "train", new_color_share: float = 0.0
) -> dict:
    """A random scene of `split` (rejection-sampled: train avoids, heldout contains, a held-out combo).

    `new_color_share` > 0: each object is in a new colour (NEW_COLORS, uniformly) with this probability, else in
    one of the eight COLORS; at 0 (the default) no new colour is ever drawn, and the draws are those of before
    new colours existed (the same scenes for the same seed)."""
    while True:
        spec = _sample_any_scene(rng, size, new_color_share)
        if bool(heldout_compositions(spec)) == (split == "heldout"):
            return spec


def _pick_color(rng: np.random.Generator, new_color_share: float) -> str:
    if new_color_share > 0 and rng.random() < new_color_share:
        return pick(rng, NEW_COLORS)
    return pick(rng, COLORS)


def _sample_any_scene(rng: np.random.Generator, size: int, new_color_share: float = 0.0) -> dict:
    n = 1 if rng.random() < 0.3 else 2
    while True:
        objects = [
            {
                "shape": pick(rng, SHAPES),
                "color": _pick_color(rng, new_color_share),
                "size": pick(rng, SIZE_WORDS),
            }
            for _ in range(n)
        ]
        if n == 2 and (objects[0]["shape"], objects[0]["color"]) == (
            objects[1]["shape"],
            objects[1]["color"],
        ):
            continue
        for o in objects:
            o["extent"] = SIZE_FRACTION[o["size"]] * size
        if n == 1:
            o = objects[0]
            lo, hi = o["extent"] / 2 + size / 32, size - o["extent"] / 2 - size / 32
            o["x"], o["y"] = float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi))
            return {"world": WORLD, "height": size, "width": size, "objects": objects, "relation": None}
        rel = pick(rng, RELATIONS)
        placed = _place_pair(rng, (objects[0]["extent"], objects[1]["extent"]), rel, size)
        if placed is None:
            continue
        for o, (x, y) in zip(objects, placed):
            o["x"], o["y"] = float(x), float(y)
        return {"world": WORLD, "height": size, "width": size, "objects": objects, "relation": rel}


def render(spec: dict) -> np.ndarray:
    """The scene as float32 (3, 1, H, W) in [-1, 1]."""
    h, w = spec["height"], spec["width"]
    canvas = np.zeros((h, w, 3), dtype=np.float32)
    for o in spec["objects"]:
        paint(canvas, shape_coverage(o["shape"], h, w, o["x"], o["y"], o["extent"], o["extent"]), o["color"])
    return to_model_range(canvas[None])


# --------------------------------------------------------------------------------------------- captions


def prompt_spec(spec: dict, rng: np.random.Generator | None = None) -> dict:
    """What a caption states about a scene: shapes, colours, relation, and sizes (small/large) when named.

    With `rng`, each small or large object names its size with probability 1/2; without, sizes are kept.
    """
    objects = []
    for o in spec["objects"]:
        size = o.get("size")
        if rng is not None and (size not in ("small", "large") or rng.random() < 0.5):
            size = None
        objects.append({"shape": o["shape"], "color": o["color"], "size": size})
    return {"world": WORLD, "objects": objects, "relation": spec.get("relation")}


def describe(pspec: dict, rng: np.random.Generator) -> str:
    """A caption (template and paraphrase drawn from `rng`) that states exactly `pspec`.

    An object whose shape or colour is None is named by the other alone ("a triangle", "a red shape"); such
    partial captions only serve training (`partial_caption`): `parse_prompt` reads full ones."""
    phrases = [object_phrase(o["color"], o["shape"], o.get("size")) for o in pspec["objects"]]
    if pspec.get("relation") is None:
        return pick(rng, SINGLE_TEMPLATES).format(A=phrases[0])
    rel = pspec["relation"]
    forms = [f"{{A}} {p} {{B}}" for p in REL_PHRASES[rel]] + [f"{{B}} with {{A}} {WITH_PHRASES[rel]}"]
    return pick(rng, forms).format(A=phrases[0], B=phrases[1])


def caption(spec: dict, rng: np.random.Generator) -> str:
    return describe(prompt_spec(spec, rng), rng)


def partial_caption(spec: dict, rng: np.random.Generator, p: float) -> str:
    """A training caption in which each object, with probability `p`, names only its shape ("a triangle") or
    only its colour ("a red shape"), half the time each; otherwise the caption of `caption`.

    The image is unchanged, so the dropped attribute is free in it: the model learns to draw a shape from the
    shape word alone and a colour from the colour word alone (docs/results.md, compositional generalisation).
    """
    pspec = prompt_spec(spec, rng)
    for o in pspec["objects"]:
        if rng.random() < p:
            o["shape" if rng.random() < 0.5 else "color"] = None
    return describe(pspec, rng)


_A, _B = object_regex(1, colors=ALL_COLORS), object_regex(2, colors=ALL_COLORS)
_PATTERNS: list[tuple[re.Pattern, str | None, bool]] = [  # (regex, relation of A to B, B comes first)
    (re.compile(rf"^(?:an image of |a picture of )?{_A}(?: on a black background)?$"), None, False)
]
for _rel in RELATIONS:
    for _p in REL_PHRASES[_rel]:
        _PATTERNS.append((re.compile(rf"^{_A} {_p} {_B}$"), _rel, False))
    _PATTERNS.append((re.compile(rf"^{_B} with {_A} {WITH_PHRASES[_rel]}$"), _rel, True))
VOCABULARY = (
    set(ALL_COLORS) | set(SHAPES) | set(SIZE_WORDS) | {"a", "an", "grey", "image", "picture", "of", "on"}
)
VOCABULARY |= {
    "black",
    "background",
    "to",
    "the",
    "left",
    "right",
    "above",
    "below",
    "under",
    "with",
    "its",
    "it",
}


def parse_prompt(prompt: str) -> dict:
    """Read a caption back into {"world", "objects": [{"shape", "color", "size"|None}], "relation"|None}.

    Raises ValueError, naming the problem, for prompts this world cannot express (other shapes or colours,
    three objects, two identical objects, other wordings).
    """
    text = normalize_prompt(prompt)
    for pattern, rel, _ in _PATTERNS:
        m = pattern.match(text)
        if m is None:
            continue
        objects = [object_from_match(m, 1)] + ([object_from_match(m, 2)] if rel else [])
        if rel and (objects[0]["shape"], objects[0]["color"]) == (objects[1]["shape"], objects[1]["color"]):
            raise ValueError(
                f"{WORLD} cannot express {prompt!r}: the two objects must differ in colour or shape "
                "(otherwise the relation has no referent)"
            )
        return {"world": WORLD, "objects": objects, "relation": rel}
    raise explain_unparsable(
        WORLD, text, VOCABULARY, ("a small red circle", "a red circle to the left of a blue square")
    )


# --------------------------------------------------------------------------------------------- dataset


class ShapesImageDataset(ShapesWorldDataset):
    """The image world as a dataset: items {"pixels" (3, 1, size, size) in [-1, 1], "caption", "spec"}."""

    world = WORLD

    def __init__(
        self,
        split: str = "train",
        length: int = 50_000,
        seed: int = 0,
        size: int = 32,
        partial_captions: float = 0.0,
        new_color_share: float = 0.0,
    ):
        super().__init__(split, length, seed)
        if size not in (32, 64):
            raise ValueError(f"the shapes-image world renders 32x32 or 64x64 images, got size={size}")
        if not 0.0 <= partial_captions <= 1.0:
            raise ValueError(f"partial_captions is a probability in [0, 1], got {partial_captions}")
        if isinstance(new_color_share, bool) or not isinstance(new_color_share, (int, float)):
            raise ValueError(f"new_color_share is a probability in [0, 1], got {new_color_share!r}")
        if not 0.0 <= new_color_share <= 1.0:
            raise ValueError(f"new_color_share is a probability in [0, 1], got {new_color_share}")
        self.size = size
        self.partial_captions = float(partial_captions)
        self.new_color_share = float(new_color_share)

    def frames_hw(self) -> tuple[int, int, int]:
        return 1, self.size, self.size

    def sample_scene(self, rng: np.random.Generator) -> dict:
        return sample_scene(rng, self.size, self.split, self.new_color_share)

    def render(self, spec: dict) -> np.ndarray:
        return render(spec)

    def caption(self, spec: dict, rng: np.random.Generator) -> str:
        if self.partial_captions > 0:
            return partial_caption(spec, rng, self.partial_captions)
        return caption(spec, rng)


def make_dataset(
    split: str = "train",
    length: int = 50_000,
    seed: int = 0,
    size: int = 32,
    partial_captions: float = 0.0,
    new_color_share: float = 0.0,
) -> ShapesImageDataset:
    """The image world; `partial_captions` (training only) is the per-object chance of a shape- or colour-only
    phrase (`partial_caption`); `new_color_share` the per-object chance of a new colour (NEW_COLORS: orange),
    0 by default: only data asked for it (a LoRA's, `data.options.new_color_share`) holds one."""
    return ShapesImageDataset(
        split=split,
        length=length,
        seed=seed,
        size=size,
        partial_captions=partial_captions,
        new_color_share=new_color_share,
    )


def mismatched_prompt_spec(spec: dict, rng: np.random.Generator) -> tuple[str, dict]:
    """(attribute, prompt spec) stating the scene `spec` with exactly one attribute changed.

    The attribute is one of color, shape, relation, count (an object dropped or added) and size (small <->
    large, for a small or large object); the result is always an expressible prompt.
    """
    p = prompt_spec(spec, rng)
    objs = p["objects"]
    sized = [k for k, o in enumerate(spec["objects"]) if o["size"] in ("small", "large")]
    options = (
        ["color", "shape", "count"] + (["relation"] if p["relation"] else []) + (["size"] if sized else [])
    )
    attr = pick(rng, options)
    k = int(rng.integers(len(objs)))
    taken = {(o["color"], o["shape"]) for j, o in enumerate(objs) if j != k}
    if attr == "color":
        objs[k]["color"] = pick(
            rng, [c for c in COLORS if c != objs[k]["color"] and (c, objs[k]["shape"]) not in taken]
        )
    elif attr == "shape":
        objs[k]["shape"] = pick(
            rng, [s for s in SHAPES if s != objs[k]["shape"] and (objs[k]["color"], s) not in taken]
        )
    elif attr == "relation":
        p["relation"] = pick(rng, [r for r in RELATIONS if r != p["relation"]])
    elif attr == "size":
        k = pick(rng, sized)
        objs[k]["size"] = "large" if spec["objects"][k]["size"] == "small" else "small"
    elif len(objs) == 2:  # count: drop one object
        p["objects"], p["relation"] = [objs[k]], None
    else:  # count: add a second object
        while True:
            extra = {"shape": pick(rng, SHAPES), "color": pick(rng, COLORS), "size": None}
            if (extra["color"], extra["shape"]) != (objs[0]["color"], objs[0]["shape"]):
                break
        p["objects"], p["relation"] = [objs[0], extra], pick(rng, RELATIONS)
    return attr, p

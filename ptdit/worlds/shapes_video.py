"""Shapes video world: one or two flat shapes moving left, right, up or down, or growing or shrinking.

Clips are `frames` frames (8 to 16, default 8) of size x size pixels (32 or 64, default 32). Each object moves
linearly from its first to its last frame: a translation covers 0.35 of the image side; growing goes from 0.18
to 0.42 of the side (about its fixed box centre), shrinking the reverse. Translating objects are small, medium
or large (0.22, 0.31, 0.40 of the side, as in the image world). Two objects differ in colour or shape and keep
a gap of at least 3 px (at 32x32) in every frame. A clip has two objects with chance 0.6 before that gap is
checked, and a colliding pair makes the draw start over from the count, so few clips have two objects
(docs/results.md measures the share); the training option `two_objects` sets that share (`sample_scene`).

Held-out colour-shape-motion combos (never in split="train"; every split="heldout" item has at least one),
HELDOUT_COMBOS: red circle moving right, blue triangle moving up, green square growing, yellow circle moving
left, white triangle shrinking, magenta square moving down.

Caption templates ("A": "a [small|large] <colour> <shape>"; no size word with growing/shrinking; "M": a motion
phrase of MOTION_PHRASES, e.g. "moving to the right", "moving right", "sliding to the right", "rising",
"falling", "growing", "getting bigger", "shrinking", "getting smaller"):
  one object:  "A M", "a video of A M"
  two objects: "A M and B M", "A M while B is M"
"""

from __future__ import annotations

import re

import numpy as np

from .shapes import (
    COLORS,
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

WORLD = "shapes-video"
SIZE_FRACTION: dict[str, float] = {"small": 0.22, "medium": 0.31, "large": 0.40}
TRAVEL = 0.35  # translation over the clip, fraction of the side
GROWTH = (0.18, 0.42)  # extent at the first and last frame of a growing object, fraction of the side
MOTIONS: tuple[str, ...] = ("left", "right", "up", "down", "grow", "shrink")
MOTION_PHRASES: dict[str, tuple[str, ...]] = {
    "left": ("moving to the left", "moving left", "sliding to the left"),
    "right": ("moving to the right", "moving right", "sliding to the right"),
    "up": ("moving up", "moving upward", "rising"),
    "down": ("moving down", "moving downward", "falling"),
    "grow": ("growing", "getting bigger"),
    "shrink": ("shrinking", "getting smaller"),
}
HELDOUT_COMBOS: tuple[tuple[str, str, str], ...] = (
    ("red", "circle", "right"),
    ("blue", "triangle", "up"),
    ("green", "square", "grow"),
    ("yellow", "circle", "left"),
    ("white", "triangle", "shrink"),
    ("magenta", "square", "down"),
)


def heldout_compositions(spec: dict) -> list[str]:
    """The held-out colour-shape-motion combos a scene (or prompt spec) contains, as readable strings."""
    return [
        f"{o['color']} {o['shape']} {o['motion']}"
        for o in spec["objects"]
        if (o["color"], o["shape"], o["motion"]) in HELDOUT_COMBOS
    ]


# ----------------------------------------------------------------------------------------------- scenes


def _sample_object(rng: np.random.Generator, size: int) -> dict:
    o = {"shape": pick(rng, SHAPES), "color": pick(rng, COLORS), "motion": pick(rng, MOTIONS)}
    margin = size / 32
    if o["motion"] in ("grow", "shrink"):
        lo_hi = [GROWTH[0] * size, GROWTH[1] * size]
        o["size"] = None
        o["extent0"], o["extent1"] = lo_hi if o["motion"] == "grow" else lo_hi[::-1]
        half = max(lo_hi) / 2 + margin
        o["x0"] = o["x1"] = float(rng.uniform(half, size - half))
        o["y0"] = o["y1"] = float(rng.uniform(half, size - half))
        return o
    o["size"] = pick(rng, SIZE_WORDS)
    e = SIZE_FRACTION[o["size"]] * size
    o["extent0"] = o["extent1"] = e
    travel = TRAVEL * size
    sign = -1.0 if o["motion"] in ("left", "up") else 1.0
    lo, hi = e / 2 + margin, size - e / 2 - margin
    start = float(rng.uniform(lo + travel, hi)) if sign < 0 else float(rng.uniform(lo, hi - travel))
    across = float(rng.uniform(lo, hi))
    axis = "x" if o["motion"] in ("left", "right") else "y"
    other = "y" if axis == "x" else "x"
    o[axis + "0"], o[axis + "1"] = start, start + sign * travel
    o[other + "0"] = o[other + "1"] = across
    return o


def object_at(o: dict, t: float) -> tuple[float, float, float]:
    """(x, y, extent) of an object at clip time t in [0, 1] (linear from its first to its last frame)."""
    return (
        o["x0"] + t * (o["x1"] - o["x0"]),
        o["y0"] + t * (o["y1"] - o["y0"]),
        o["extent0"] + t * (o["extent1"] - o["extent0"]),
    )


def _apart(a: dict, b: dict, frames: int, gap: float) -> bool:
    for t in np.linspace(0.0, 1.0, frames):
        xa, ya, ea = object_at(a, t)
        xb, yb, eb = object_at(b, t)
        if max(abs(xa - xb), abs(ya - yb)) - (ea + eb) / 2 < gap:
            return False
    return True


def _fits(objects: list[dict], frames: int, size: int) -> bool:
    """One object, or two that differ in colour or shape and keep a 3 px gap (at 32x32) in every frame."""
    if len(objects) == 1:
        return True
    a, b = objects
    return (a["shape"], a["color"]) != (b["shape"], b["color"]) and _apart(a, b, frames, 3 * size / 32)


def sample_scene(
    rng: np.random.Generator,
    size: int = 32,
    frames: int = 8,
    split: str = "train",
    two_objects: float | None = None,
) -> dict:
    """A random clip of `split` (train avoids, heldout contains, a held-out colour-shape-motion combo).

    By default a draw picks two objects with chance 0.6 and starts over from the count when the pair does not
    fit, which most pairs do not: few clips have two objects (docs/results.md measures the share).
    `two_objects` (a probability) instead fixes the chance of a two-object clip and redraws an unfit pair as
    a pair, so that share of clips has two objects (a training option; the evaluation prompts keep the
    default).
    """
    while True:
        if two_objects is None:
            n = 1 if rng.random() < 0.4 else 2
        else:
            n = 2 if rng.random() < two_objects else 1
        objects = [_sample_object(rng, size) for _ in range(n)]
        while two_objects is not None and not _fits(objects, frames, size):
            objects = [_sample_object(rng, size) for _ in range(n)]
        if not _fits(objects, frames, size):
            continue
        spec = {"world": WORLD, "frames": frames, "height": size, "width": size, "objects": objects}
        if bool(heldout_compositions(spec)) == (split == "heldout"):
            return spec


def render(spec: dict) -> np.ndarray:
    """The clip as float32 (3, F, H, W) in [-1, 1]."""
    f, h, w = spec["frames"], spec["height"], spec["width"]
    canvas = np.zeros((f, h, w, 3), dtype=np.float32)
    for i, t in enumerate(np.linspace(0.0, 1.0, f)):
        for o in spec["objects"]:
            x, y, e = object_at(o, float(t))
            paint(canvas[i], shape_coverage(o["shape"], h, w, x, y, e, e), o["color"])
    return to_model_range(canvas)


# --------------------------------------------------------------------------------------------- captions


def prompt_spec(spec: dict, rng: np.random.Generator | None = None) -> dict:
    """What a caption states: per object shape, colour, motion, and size (small/large) when named."""
    objects = []
    for o in spec["objects"]:
        size = o.get("size")
        if rng is not None and (size not in ("small", "large") or rng.random() < 0.5):
            size = None
        objects.append({"shape": o["shape"], "color": o["color"], "size": size, "motion": o["motion"]})
    return {"world": WORLD, "objects": objects}


def describe(pspec: dict, rng: np.random.Generator) -> str:
    """A caption (template and paraphrases drawn from `rng`) that states exactly `pspec`."""
    nouns = [object_phrase(o["color"], o["shape"], o.get("size")) for o in pspec["objects"]]
    moves = [pick(rng, MOTION_PHRASES[o["motion"]]) for o in pspec["objects"]]
    if len(nouns) == 1:
        return pick(rng, ("{A} {M}", "a video of {A} {M}")).format(A=nouns[0], M=moves[0])
    form = pick(rng, ("{A} {M} and {B} {N}", "{A} {M} while {B} is {N}"))
    return form.format(A=nouns[0], M=moves[0], B=nouns[1], N=moves[1])


def caption(spec: dict, rng: np.random.Generator) -> str:
    return describe(prompt_spec(spec, rng), rng)


_PHRASE_TO_MOTION = {p: m for m, ps in MOTION_PHRASES.items() for p in ps}
_MOTION_RE = "|".join(sorted(map(re.escape, _PHRASE_TO_MOTION), key=len, reverse=True))
_ONE = rf"{object_regex(1)} (?P<m1>{_MOTION_RE})"
_TWO = rf"{object_regex(2)} (?:is )?(?P<m2>{_MOTION_RE})"
_PATTERNS = [
    re.compile(rf"^(?:a video of )?{_ONE}$"),
    re.compile(rf"^(?:a video of )?{_ONE},? (?:and|while) {_TWO}$"),
]
VOCABULARY = (
    set(COLORS) | set(SHAPES) | set(SIZE_WORDS) | {"a", "an", "grey", "video", "of", "and", "while", "is"}
)
VOCABULARY |= {w for p in _PHRASE_TO_MOTION for w in p.split()}


def parse_prompt(prompt: str) -> dict:
    """Read a caption back into {"world", "objects": [{"shape", "color", "size"|None, "motion"}]}.

    Raises ValueError, naming the problem, for prompts this world cannot express.
    """
    text = normalize_prompt(prompt)
    for k, pattern in enumerate(_PATTERNS, start=1):
        m = pattern.match(text)
        if m is None:
            continue
        objects = []
        for j in range(1, k + 1):
            o = object_from_match(m, j)
            o["motion"] = _PHRASE_TO_MOTION[m.group(f"m{j}")]
            if o["size"] is not None and o["motion"] in ("grow", "shrink"):
                raise ValueError(
                    f"{WORLD} cannot express {prompt!r}: a growing or shrinking object has no fixed size, "
                    "drop the size word"
                )
            objects.append(o)
        if k == 2 and (objects[0]["shape"], objects[0]["color"]) == (
            objects[1]["shape"],
            objects[1]["color"],
        ):
            raise ValueError(
                f"{WORLD} cannot express {prompt!r}: the two objects must differ in colour or shape"
            )
        return {"world": WORLD, "objects": objects}
    raise explain_unparsable(
        WORLD,
        text,
        VOCABULARY,
        ("a green triangle moving to the right", "a red circle rising and a blue square growing"),
    )


# --------------------------------------------------------------------------------------------- dataset


class ShapesVideoDataset(ShapesWorldDataset):
    """The video world as a dataset: {"pixels" (3, frames, size, size) in [-1, 1], "caption", "spec"}."""

    world = WORLD

    def __init__(
        self,
        split: str = "train",
        length: int = 50_000,
        seed: int = 0,
        size: int = 32,
        frames: int = 8,
        two_objects: float | None = None,
    ):
        super().__init__(split, length, seed)
        if size not in (32, 64):
            raise ValueError(f"the shapes-video world renders 32x32 or 64x64 frames, got size={size}")
        if not 8 <= frames <= 16:
            raise ValueError(f"the shapes-video world renders 8 to 16 frames, got frames={frames}")
        if two_objects is not None and not 0.0 <= two_objects <= 1.0:
            raise ValueError(f"two_objects is a probability in [0, 1], got {two_objects}")
        self.size, self.frames = size, frames
        self.two_objects = None if two_objects is None else float(two_objects)

    def frames_hw(self) -> tuple[int, int, int]:
        return self.frames, self.size, self.size

    def sample_scene(self, rng: np.random.Generator) -> dict:
        return sample_scene(rng, self.size, self.frames, self.split, self.two_objects)

    def render(self, spec: dict) -> np.ndarray:
        return render(spec)

    def caption(self, spec: dict, rng: np.random.Generator) -> str:
        return caption(spec, rng)


def make_dataset(
    split: str = "train",
    length: int = 50_000,
    seed: int = 0,
    size: int = 32,
    frames: int = 8,
    two_objects: float | None = None,
) -> ShapesVideoDataset:
    """The video world; `two_objects` (training only) is the share of two-object clips (`sample_scene`)."""
    return ShapesVideoDataset(
        split=split, length=length, seed=seed, size=size, frames=frames, two_objects=two_objects
    )


def mismatched_prompt_spec(spec: dict, rng: np.random.Generator) -> tuple[str, dict]:
    """(attribute, prompt spec) stating the clip `spec` with exactly one attribute changed.

    The attribute is one of color, shape, motion, count (an object dropped or added) and size (small <->
    large, for a small or large translating object); the result is always an expressible prompt.
    """
    p = prompt_spec(spec, rng)
    objs = p["objects"]
    sized = [k for k, o in enumerate(spec["objects"]) if o["size"] in ("small", "large")]
    attr = pick(rng, ["color", "shape", "motion", "motion", "count"] + (["size"] if sized else []))
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
    elif attr == "motion":
        objs[k]["motion"] = pick(rng, [m for m in MOTIONS if m != objs[k]["motion"]])
        if objs[k]["motion"] in ("grow", "shrink"):
            objs[k]["size"] = None
    elif attr == "size":
        k = pick(rng, sized)
        objs[k]["size"] = "large" if spec["objects"][k]["size"] == "small" else "small"
    elif len(objs) == 2:
        p["objects"] = [objs[k]]
    else:
        while True:
            extra = {
                "shape": pick(rng, SHAPES),
                "color": pick(rng, COLORS),
                "size": None,
                "motion": pick(rng, MOTIONS),
            }
            if (extra["color"], extra["shape"]) != (objs[0]["color"], objs[0]["shape"]):
                break
        p["objects"] = [objs[0], extra]
    return attr, p

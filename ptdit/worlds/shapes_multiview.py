"""Shapes multi-view world: a cube or a pyramid with coloured faces, seen from 8 azimuths around one orbit.

The paper's T2MV setup: the V = 8 views are the frames, in orbit order, each size x size (default 32x32).
Camera: orthographic, elevation 25 degrees, azimuths 22.5 + 45 k degrees (k = 0..7), so that two side faces
are always in sight. The object is centred and fixed; a tiny numpy rasteriser (back-face culling, which is
exact for convex solids, 4x4 supersampling) paints each visible face flat in its colour times a light factor
0.75 + 0.25 max(0, n . l), n the face normal and l a fixed light in camera space: faces stay recognisably
their colour (a lit white face never drops to the gray of the palette).

Colouring: one colour for every face, or two colours A and B alternating around the sides (front A, right B,
back A, left B) with the top (cube) in A and the bottom / base in B.

Held-out object-colour pairs (never in split="train"; every split="heldout" item shows at least one):
HELDOUT_OBJECT_COLORS: a cube with magenta faces, a cube with green faces, a pyramid with yellow faces, a
pyramid with white faces (alone or next to another colour).

Caption templates ("C": a colour; OBJ: cube or pyramid):
  one colour:  "a C OBJ", "a OBJ that is C", "an orbit around a C OBJ"
  two colours: "a OBJ with C and C faces", "a OBJ with C and C sides", "a C and C OBJ",
               "an orbit around a C and C OBJ"
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from .shapes import (
    COLORS,
    PALETTE01,
    SUPERSAMPLE,
    ShapesWorldDataset,
    explain_unparsable,
    normalize_prompt,
    pick,
    to_model_range,
)

WORLD = "shapes-multiview"
OBJECTS: tuple[str, ...] = ("cube", "pyramid")
NUM_VIEWS = 8
ELEVATION_DEG = 25.0
AZIMUTHS_DEG: tuple[float, ...] = tuple(22.5 + 45.0 * k for k in range(NUM_VIEWS))
LIGHT = np.array([-0.4, 0.75, 0.55]) / np.linalg.norm(
    [-0.4, 0.75, 0.55]
)  # camera space: right, up, to viewer
SHADE_MIN = 0.75
SCALE = 0.29  # pixels per object unit, as a fraction of the image side
HELDOUT_OBJECT_COLORS: tuple[tuple[str, str], ...] = (
    ("cube", "magenta"),
    ("cube", "green"),
    ("pyramid", "yellow"),
    ("pyramid", "white"),
)

# ------------------------------------------------------------------------------------------- geometry

_CUBE_V = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
_I = {tuple(v): i for i, v in enumerate(_CUBE_V.astype(int).tolist())}


def _quad(*corners) -> list[int]:
    return [_I[c] for c in corners]


# faces: (vertex indices, colour slot 0 = A / 1 = B); vertex order is irrelevant (polygons are re-sorted)
SOLIDS: dict[str, tuple[np.ndarray, list[tuple[list[int], int]]]] = {
    "cube": (
        _CUBE_V,
        [
            (_quad((-1, -1, 1), (1, -1, 1), (1, 1, 1), (-1, 1, 1)), 0),  # front +z
            (_quad((1, -1, 1), (1, -1, -1), (1, 1, -1), (1, 1, 1)), 1),  # right +x
            (_quad((1, -1, -1), (-1, -1, -1), (-1, 1, -1), (1, 1, -1)), 0),  # back -z
            (_quad((-1, -1, -1), (-1, -1, 1), (-1, 1, 1), (-1, 1, -1)), 1),  # left -x
            (_quad((-1, 1, 1), (1, 1, 1), (1, 1, -1), (-1, 1, -1)), 0),  # top +y
            (_quad((-1, -1, 1), (-1, -1, -1), (1, -1, -1), (1, -1, 1)), 1),  # bottom -y
        ],
    ),
    "pyramid": (
        np.array([[-1, -1, 1], [1, -1, 1], [1, -1, -1], [-1, -1, -1], [0, 1, 0]], dtype=np.float64),
        [([0, 1, 4], 0), ([1, 2, 4], 1), ([2, 3, 4], 0), ([3, 0, 4], 1), ([0, 1, 2, 3], 1)],
    ),
}


def camera_basis(azimuth_deg: float, elevation_deg: float = ELEVATION_DEG) -> np.ndarray:
    """Rows: screen right, screen up, towards the camera (3, 3), for a camera orbiting the origin."""
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    d = np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)])
    r = np.cross([0.0, 1.0, 0.0], d)
    r /= np.linalg.norm(r)
    return np.stack([r, np.cross(d, r), d])


def render_view(obj: str, colors: list[str], azimuth_deg: float, size: int = 32) -> np.ndarray:
    """One view (size, size, 3) in [0, 1] of `obj` (colours [A] or [A, B]) from `azimuth_deg`."""
    if obj not in SOLIDS:
        raise ValueError(f"unknown object {obj!r}: use one of {OBJECTS}")
    verts, faces = SOLIDS[obj]
    basis = camera_basis(azimuth_deg)
    cam = verts @ basis.T  # (N, 3) camera coordinates
    ss = SUPERSAMPLE
    px = (np.arange(size * ss) + 0.5) / ss
    gx, gy = px[None, :], px[:, None]
    buf = np.zeros((size * ss, size * ss, 3), dtype=np.float32)
    scale = SCALE * size
    screen = np.stack([size / 2 + scale * cam[:, 0], size / 2 - scale * cam[:, 1]], axis=1)  # (N, 2) pixels
    centre = verts.mean(0)
    for idx, slot in faces:
        normal = verts[idx].mean(0) - centre  # convex solid centred near the origin: outward direction
        normal = _face_normal(verts[idx], normal)
        n_cam = basis @ normal
        if n_cam[2] <= 1e-6:  # back-facing
            continue
        poly = screen[idx]
        c = poly.mean(0)
        poly = poly[np.argsort(np.arctan2(poly[:, 1] - c[1], poly[:, 0] - c[0]))]
        inside = np.ones(buf.shape[:2], dtype=bool)
        for a, b in zip(poly, np.roll(poly, -1, axis=0)):  # convex polygon: same side of every edge
            inside &= (b[0] - a[0]) * (gy - a[1]) - (b[1] - a[1]) * (gx - a[0]) >= 0
        shade = SHADE_MIN + (1.0 - SHADE_MIN) * max(0.0, float(n_cam @ LIGHT))
        buf[inside] = PALETTE01[COLORS.index(colors[slot % len(colors)])] * shade
    return buf.reshape(size, ss, size, ss, 3).mean(axis=(1, 3))


def _face_normal(points: np.ndarray, outward: np.ndarray) -> np.ndarray:
    n = np.cross(points[1] - points[0], points[2] - points[0])
    n /= np.linalg.norm(n)
    return n if n @ outward > 0 else -n


def render(spec: dict) -> np.ndarray:
    """The 8 views as float32 (3, 8, H, W) in [-1, 1], in orbit order."""
    return to_model_range(reference_views(spec["object"], tuple(spec["colors"]), spec["height"]))


@lru_cache(maxsize=512)
def reference_views(obj: str, colors: tuple[str, ...], size: int) -> np.ndarray:
    """Ground-truth views (8, size, size, 3) in [0, 1], cached (the judges compare samples with them)."""
    views = np.stack([render_view(obj, list(colors), az, size) for az in AZIMUTHS_DEG])
    views.setflags(write=False)
    return views


# ----------------------------------------------------------------------------------------------- scenes


def heldout_compositions(spec: dict) -> list[str]:
    """The held-out object-colour pairs a scene (or prompt spec) shows, as readable strings."""
    return [f"{spec['object']} {c}" for c in spec["colors"] if (spec["object"], c) in HELDOUT_OBJECT_COLORS]


def sample_scene(rng: np.random.Generator, size: int = 32, split: str = "train") -> dict:
    """A random object of `split` (train avoids, heldout contains, a held-out object-colour pair)."""
    while True:
        obj = pick(rng, OBJECTS)
        first = pick(rng, COLORS)
        colors = [first] if rng.random() < 0.3 else [first, pick(rng, [c for c in COLORS if c != first])]
        spec = {
            "world": WORLD,
            "views": NUM_VIEWS,
            "height": size,
            "width": size,
            "object": obj,
            "colors": colors,
            "elevation": ELEVATION_DEG,
            "azimuths": list(AZIMUTHS_DEG),
        }
        if bool(heldout_compositions(spec)) == (split == "heldout"):
            return spec


# --------------------------------------------------------------------------------------------- captions


def prompt_spec(spec: dict, rng: np.random.Generator | None = None) -> dict:
    """What a caption states: the object and its colour(s)."""
    return {"world": WORLD, "object": spec["object"], "colors": list(spec["colors"])}


def describe(pspec: dict, rng: np.random.Generator) -> str:
    obj, colors = pspec["object"], pspec["colors"]
    if len(colors) == 1:
        forms = ("a {c} {o}", "a {o} that is {c}", "an orbit around a {c} {o}")
        return pick(rng, forms).format(c=colors[0], o=obj)
    forms = ("a {o} with {c} and {d} faces", "a {o} with {c} and {d} sides", "a {c} and {d} {o}")
    forms += ("an orbit around a {c} and {d} {o}",)
    return pick(rng, forms).format(c=colors[0], d=colors[1], o=obj)


def caption(spec: dict, rng: np.random.Generator) -> str:
    return describe(prompt_spec(spec, rng), rng)


_C = "|".join(COLORS) + "|grey"
_O = "|".join(OBJECTS)
_PATTERNS = [
    re.compile(rf"^(?:an orbit around )?an? (?P<c>{_C}) (?P<o>{_O})$"),
    re.compile(rf"^an? (?P<o>{_O}) that is (?P<c>{_C})$"),
    re.compile(rf"^an? (?P<o>{_O}) with (?P<c>{_C}) and (?P<d>{_C}) (?:faces|sides)$"),
    re.compile(rf"^(?:an orbit around )?an? (?P<c>{_C}) and (?P<d>{_C}) (?P<o>{_O})$"),
]
VOCABULARY = set(COLORS) | set(OBJECTS) | {"a", "an", "grey", "orbit", "around", "that", "is", "with", "and"}
VOCABULARY |= {"faces", "sides"}


def parse_prompt(prompt: str) -> dict:
    """Read a caption back into {"world", "object", "colors": [A] or [A, B]}; ValueError if inexpressible."""
    text = normalize_prompt(prompt)
    for pattern in _PATTERNS:
        m = pattern.match(text)
        if m is None:
            continue
        g = m.groupdict()
        colors = [("gray" if c == "grey" else c) for c in (g.get("c"), g.get("d")) if c]
        if len(colors) == 2 and colors[0] == colors[1]:
            raise ValueError(f"{WORLD} cannot express {prompt!r}: name two different colours, or one")
        return {"world": WORLD, "object": g["o"], "colors": colors}
    raise explain_unparsable(WORLD, text, VOCABULARY, ("a yellow cube", "a pyramid with red and blue faces"))


# --------------------------------------------------------------------------------------------- dataset


class ShapesMultiviewDataset(ShapesWorldDataset):
    """The multi-view world as a dataset: {"pixels" (3, 8, size, size) in [-1, 1], "caption", "spec"}."""

    world = WORLD

    def __init__(self, split: str = "train", length: int = 50_000, seed: int = 0, size: int = 32):
        super().__init__(split, length, seed)
        if size not in (32, 64):
            raise ValueError(f"the shapes-multiview world renders 32x32 or 64x64 views, got size={size}")
        self.size = size

    def frames_hw(self) -> tuple[int, int, int]:
        return NUM_VIEWS, self.size, self.size

    def sample_scene(self, rng: np.random.Generator) -> dict:
        return sample_scene(rng, self.size, self.split)

    def render(self, spec: dict) -> np.ndarray:
        return render(spec)

    def caption(self, spec: dict, rng: np.random.Generator) -> str:
        return caption(spec, rng)


def make_dataset(
    split: str = "train", length: int = 50_000, seed: int = 0, size: int = 32
) -> ShapesMultiviewDataset:
    return ShapesMultiviewDataset(split=split, length=length, seed=seed, size=size)


def mismatched_prompt_spec(spec: dict, rng: np.random.Generator) -> tuple[str, dict]:
    """(attribute, prompt spec) with one attribute changed: object, colors, or consistency (prompt unchanged:
    the views are then replaced by `inconsistent_views`)."""
    p = prompt_spec(spec)
    attr = pick(rng, ("object", "colors", "consistency"))
    if attr == "object":
        p["object"] = pick(rng, [o for o in OBJECTS if o != p["object"]])
    elif attr == "colors":
        colors = p["colors"]
        choice = rng.random()
        if len(colors) == 2 and choice < 0.25:
            p["colors"] = [colors[int(rng.integers(2))]]  # drop one colour
        elif len(colors) == 1 and choice < 0.25:
            p["colors"] = colors + [pick(rng, [c for c in COLORS if c != colors[0]])]  # add one
        else:
            k = int(rng.integers(len(colors)))
            colors[k] = pick(rng, [c for c in COLORS if c not in colors])
    return attr, p


def inconsistent_views(spec: dict, rng: np.random.Generator) -> np.ndarray:
    """The views of `spec` made inconsistent: (3, 8, H, W) in [-1, 1] with 2-4 views taken from another
    object or colouring, or with the views shuffled (only where that changes them)."""
    views = render(spec)
    if rng.random() < 0.5:
        while True:
            other = sample_scene(rng, spec["height"], "train" if rng.random() < 0.5 else "heldout")
            if (other["object"], set(other["colors"])) != (spec["object"], set(spec["colors"])):
                break
        k = int(rng.integers(2, 5))
        chosen = rng.choice(NUM_VIEWS, size=k, replace=False)
        views[:, chosen] = render(other)[:, chosen]
        return views
    for _ in range(100):
        perm = rng.permutation(NUM_VIEWS)
        shuffled = views[:, perm]
        if np.abs(shuffled - views).max() > 0.5:
            return shuffled
    return views[:, ::-1].copy()

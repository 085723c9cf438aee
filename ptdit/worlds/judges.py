"""Deterministic judges for the Shapes worlds: does a generated sample show what its prompt says?

    result = judge("shapes-image", sample, "a red circle to the left of a blue square")
    result.ok        # True / False
    result.criteria  # {"count": ..., "color": ..., "shape": ..., "size": ..., "relation": ...}

Samples are numpy arrays or torch tensors in the world's layout, uint8 [0, 255] or float [-1, 1]: images
(3, H, W), (H, W, 3) or (3, 1, H, W); video and multi-view (3, F, H, W). The prompt is a caption string (read
by the world's `parse_prompt`) or a spec dict (a scene spec from a dataset item, or a parsed prompt).

Criteria (None where the prompt does not ask: no relation for one object, no size word):
  shapes-image      count, color, shape, size, relation
  shapes-video      count, color, shape, size, motion (per object, over the frames)
  shapes-multiview  object (cube / pyramid), colors (the set of face colours), consistency (every view shows
                    the same object and colours, and view v is the object seen from azimuth v of the orbit)
`ok` is True when no criterion is False.

`validate_judges(world, n, seed)` scores ground-truth renders against their own captions (pass rate) and
against captions with one attribute changed (fail rate), clean and under noise + blur; the CLI prints a table:
    python -m ptdit.worlds.judges --world shapes-image --n 500
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import dataclass, field

import numpy as np

from ..options import add_list_option
from . import shapes_image, shapes_multiview, shapes_video
from .judges_multiview import read_views
from .judges_segment import Detected, as_frames, detect_objects
from .shapes import ALL_COLORS, item_rng

WORLDS = {"shapes-image": shapes_image, "shapes-video": shapes_video, "shapes-multiview": shapes_multiview}
MAX_DETECTIONS = 6  # assignment considers the largest few detections only


@dataclass
class JudgeResult:
    """Per-criterion verdicts (True / False / None = not asked) and `ok` = no criterion is False."""

    criteria: dict[str, bool | None]
    details: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(v is not False for v in self.criteria.values())

    def as_dict(self) -> dict:
        return {"ok": self.ok, **self.criteria}


def world_module(world: str):
    if world not in WORLDS:
        raise ValueError(f"unknown world {world!r}: use one of {sorted(WORLDS)}")
    return WORLDS[world]


def parse_prompt(world: str, prompt: str) -> dict:
    """The spec-like dict a caption of `world` states; ValueError for prompts the world cannot express."""
    return world_module(world).parse_prompt(prompt)


def _prompt_spec(world: str, prompt) -> dict:
    mod = world_module(world)
    if isinstance(prompt, str):
        return mod.parse_prompt(prompt)
    if isinstance(prompt, dict):
        if prompt.get("world", world) != world:
            raise ValueError(f"the spec is for world {prompt['world']!r}, not {world!r}")
        return mod.prompt_spec(prompt)
    raise ValueError(f"a prompt must be a caption string or a spec dict, got {type(prompt).__name__}")


def judge(world: str, sample, prompt) -> JudgeResult:
    """Judge one sample of `world` against a prompt (caption string or spec dict)."""
    pspec = _prompt_spec(world, prompt)
    if world == "shapes-image":
        return judge_image(sample, pspec)
    if world == "shapes-video":
        return judge_video(sample, pspec)
    return judge_multiview(sample, pspec)


# ------------------------------------------------------------------------------------------------ image


def size_word_of(extent: float, height: int, fractions: dict[str, float]) -> str:
    """The nominal size word whose fraction of the height is nearest to `extent` px."""
    return min(fractions, key=lambda k: abs(fractions[k] * height - extent))


def relation_holds(a: Detected, b: Detected, relation: str) -> bool:
    """Is `a` <relation> of `b`, judged by centroids along the dominant axis?"""
    dx, dy = b.x - a.x, b.y - a.y
    if relation in ("left", "right"):
        return abs(dx) > abs(dy) and (dx > 0) == (relation == "left")
    return abs(dy) > abs(dx) and (dy > 0) == (relation == "above")


def _object_score(obj: dict, det: Detected | None, size_ok) -> int:
    if det is None:
        return 0
    return 2 * (det.color == obj["color"]) + (det.shape == obj["shape"]) + bool(size_ok(obj, det))


def assign(objects: list[dict], dets: list[Detected], size_ok, tie_break=None) -> list[Detected | None]:
    """Prompt objects -> detections (None where missing), maximising colour, shape and size agreement."""
    pool: list[Detected | None] = list(dets[:MAX_DETECTIONS]) + [None] * len(objects)
    best, best_key = None, None
    for perm in itertools.permutations(range(len(pool)), len(objects)):
        chosen = [pool[i] for i in perm]
        if any(a is not None and a is b for a, b in itertools.combinations(chosen, 2)):
            continue
        key = (
            sum(_object_score(o, d, size_ok) for o, d in zip(objects, chosen)),
            bool(tie_break and tie_break(chosen)),
        )
        if best_key is None or key > best_key:
            best, best_key = chosen, key
    return best


def judge_image(sample, pspec: dict) -> JudgeResult:
    """Image criteria: count, color, shape, size (if named), relation (if two objects)."""
    frame = as_frames(sample, 1)[0]
    height = frame.shape[0]
    dets = detect_objects(frame, ALL_COLORS)  # new colours included: orange asked to be red is orange
    objects, rel = pspec["objects"], pspec.get("relation")

    def size_ok(o: dict, d: Detected) -> bool:
        return (
            o.get("size") is None or size_word_of(d.extent, height, shapes_image.SIZE_FRACTION) == o["size"]
        )

    def rel_ok(chosen: list[Detected | None]) -> bool:
        return rel is None or (None not in chosen and relation_holds(chosen[0], chosen[1], rel))

    chosen = assign(objects, dets, size_ok, rel_ok)
    found = [d for d in chosen if d is not None]
    named = [(o, d) for o, d in zip(objects, chosen) if o.get("size") is not None]
    criteria = {
        "count": len(dets) == len(objects),
        "color": len(found) == len(objects) and all(d.color == o["color"] for o, d in zip(objects, chosen)),
        "shape": len(found) == len(objects) and all(d.shape == o["shape"] for o, d in zip(objects, chosen)),
        "size": None if not named else all(d is not None and size_ok(o, d) for o, d in named),
        "relation": None if rel is None else rel_ok(chosen),
    }
    return JudgeResult(
        criteria, {"detected": [(d.color, d.shape, round(d.x, 1), round(d.y, 1)) for d in dets]}
    )


# ------------------------------------------------------------------------------------------------ video


def motion_of_track(track: list, height: int) -> str:
    """The motion a track of detections (one per frame, None where missing) shows: one of MOTIONS or "still".

    Linear fits of the fitted box centre (x, y) and extent over the frames give the change over the clip; the
    largest of |dx|, |dy|, |d extent| names the motion; under 0.1 of the side, nothing moves.
    """
    pts = [(i, d.cx, d.cy, d.extent) for i, d in enumerate(track) if d is not None]
    if len(pts) < max(2, len(track) // 2):
        return "still"
    t, x, y, e = (np.array(v, dtype=np.float64) for v in zip(*pts))
    span = len(track) - 1
    change = [np.polyfit(t, v, 1)[0] * span for v in (x, y, e)]
    k = int(np.argmax(np.abs(change)))
    if abs(change[k]) < 0.1 * height:
        return "still"
    return (("left", "right"), ("up", "down"), ("shrink", "grow"))[k][int(change[k] > 0)]


def judge_video(sample, pspec: dict) -> JudgeResult:
    """Video criteria: count, color, shape (in >= 3/4 of the frames), size (if named), motion per object."""
    frames = as_frames(sample)
    n_frames, height = frames.shape[0], frames.shape[1]
    objects = pspec["objects"]
    per_frame = [detect_objects(f) for f in frames]
    tracks: list[list[Detected | None]] = [[] for _ in objects]
    for dets in per_frame:
        for k, d in enumerate(assign(objects, dets, lambda o, d: True)):
            tracks[k].append(d)
    quorum = 0.75 * n_frames

    def frac(pred) -> list[bool]:
        return [
            sum(1 for d in tr if d is not None and pred(o, d)) >= quorum for o, tr in zip(objects, tracks)
        ]

    motions = [motion_of_track(tr, height) for tr in tracks]
    named = [k for k, o in enumerate(objects) if o.get("size") is not None]

    def size_ok(o: dict, d: Detected) -> bool:
        return size_word_of(d.extent, height, shapes_video.SIZE_FRACTION) == o["size"]

    criteria = {
        "count": sum(len(d) == len(objects) for d in per_frame) >= quorum,
        "color": all(frac(lambda o, d: d.color == o["color"])),
        "shape": all(frac(lambda o, d: d.shape == o["shape"])),
        "size": None if not named else all(frac(lambda o, d: o.get("size") is None or size_ok(o, d))),
        "motion": all(m == o["motion"] for m, o in zip(motions, objects)),
    }
    return JudgeResult(criteria, {"motions": motions})


# ------------------------------------------------------------------------------------------- multi-view


def judge_multiview(sample, pspec: dict) -> JudgeResult:
    """Multi-view criteria: object identity, colour set, consistency across the orbit's views."""
    reading = read_views(as_frames(sample, shapes_multiview.NUM_VIEWS))
    criteria = {
        "object": reading["object"] == pspec["object"],
        "colors": set(reading["colors"]) == set(pspec["colors"]),
        "consistency": reading["consistent"],
    }
    return JudgeResult(criteria, reading)


# ------------------------------------------------------------------------------------------- validation


def corrupt(
    pixels: np.ndarray, rng: np.random.Generator, noise: float = 0.0, blur: bool = False
) -> np.ndarray:
    """Ground truth made to look generated: (3, F, H, W) in [-1, 1], blurred by a [1, 2, 1]/4 kernel in H and
    W when `blur`, plus Gaussian noise of std `noise` (in [-1, 1] units), clipped to [-1, 1]."""
    x = pixels.astype(np.float32)
    if blur:
        for axis in (2, 3):
            pad = [(0, 0)] * 4
            pad[axis] = (1, 1)
            p = np.pad(x, pad, mode="edge")
            n = x.shape[axis]
            x = 0.25 * np.take(p, range(0, n), axis) + 0.5 * np.take(p, range(1, n + 1), axis)
            x = x + 0.25 * np.take(p, range(2, n + 2), axis)
    if noise > 0:
        x = x + rng.normal(0.0, noise, size=x.shape).astype(np.float32)
    return np.clip(x, -1.0, 1.0)


def mismatch(world: str, spec: dict, rng: np.random.Generator) -> tuple[str, dict]:
    """(changed attribute, prompt spec) that differs from the scene `spec` in exactly one attribute."""
    return world_module(world).mismatched_prompt_spec(spec, rng)


def validate_judges(
    world: str,
    n: int = 200,
    seed: int = 0,
    noise: float = 0.0,
    blur: bool = False,
    verbose: bool = True,
    **dataset_kwargs,
) -> dict:
    """Pass rate on ground truth vs its own caption, fail rate on one-attribute mismatches, for `n` items.

    Items are drawn from both splits (every other item from "heldout"), rendered, corrupted (`noise`, `blur`),
    and judged twice: against their caption (should pass) and against a caption that changes one attribute
    (should fail; for multi-view "consistency", the caption stays and the views are made inconsistent).
    `dataset_kwargs` (size, frames) go to the world's dataset. Returns {"pass_rate", "fail_rate",
    "fail_rate_by_attribute", "n", ...}.
    """
    mod = world_module(world)
    passed, failed, by_attr = 0, 0, {}
    failures: list[str] = []
    datasets = {
        s: mod.make_dataset(split=s, length=n, seed=seed, **dataset_kwargs) for s in ("train", "heldout")
    }
    for i in range(n):
        split = "heldout" if i % 2 else "train"
        ds = datasets[split]
        spec, cap = ds.spec_and_caption(i)
        rng = item_rng(world, seed + 7919, split, i)
        pixels = corrupt(ds.render(spec), rng, noise, blur)
        good = judge(world, pixels, cap)
        passed += good.ok
        if not good.ok and len(failures) < 5:
            failures.append(f"{cap!r}: {good.criteria} {good.details}")
        attr, bad_spec = mismatch(world, spec, rng)
        bad_prompt = mod.describe(bad_spec, rng)
        bad_pixels = pixels
        if attr == "consistency":  # same prompt, views that do not belong together
            bad_pixels = corrupt(mod.inconsistent_views(spec, rng), rng, noise, blur)
        bad = judge(world, bad_pixels, bad_prompt)
        failed += not bad.ok
        tot, hit = by_attr.get(attr, (0, 0))
        by_attr[attr] = (tot + 1, hit + (not bad.ok))
        if bad.ok and len(failures) < 10:
            failures.append(f"mismatch {attr} {bad_prompt!r} for {cap!r} was judged ok")
    result = {
        "world": world,
        "n": n,
        "noise": noise,
        "blur": blur,
        "pass_rate": passed / n,
        "fail_rate": failed / n,
        "fail_rate_by_attribute": {k: hit / tot for k, (tot, hit) in sorted(by_attr.items())},
        "examples_of_errors": failures,
    }
    if verbose:
        print(
            f"{world}: n={n} noise={noise} blur={blur}: ground truth judged ok {result['pass_rate']:.3f}, "
            f"mismatched prompts judged wrong {result['fail_rate']:.3f}"
        )
    return result


def heldout_prompts(world: str, n: int, seed: int = 0) -> list[tuple[str, dict]]:
    """`n` evaluation prompts of held-out compositions: (caption, parsed prompt spec), a function of seed."""
    return eval_prompts(world, n, seed, split="heldout")


def eval_prompts(
    world: str, n: int, seed: int = 0, split: str = "heldout", colors: str = "old"
) -> list[tuple[str, dict]]:
    """`n` prompts of a split: (caption, parsed prompt spec), a function of seed. "heldout": compositions never
    trained on (the scores of docs/results.md); "train": compositions of the training split, which tells what a
    model has learnt apart from how it generalises to new compositions.

    `colors`: "old" (the default) draws the eight colours every model trained on; "new" (shapes-image only)
    draws scenes in which each object is in a new colour (shapes.NEW_COLORS: orange) with probability 1/2 and
    keeps those with at least one such object: the prompts of a colour taught later (a LoRA)."""
    if split not in ("heldout", "train"):
        raise ValueError(f"unknown split {split!r}: use 'heldout' or 'train'")
    if colors not in ("old", "new"):
        raise ValueError(f"unknown colors {colors!r}: use 'old' or 'new'")
    mod = world_module(world)
    if colors == "old":
        ds = mod.make_dataset(split=split, length=max(1, n), seed=seed)
        return [(cap, mod.parse_prompt(cap)) for cap in (ds.spec_and_caption(i)[1] for i in range(n))]
    if world != "shapes-image":
        raise ValueError(f"colors='new' is for shapes-image: {world} has no new colours")
    ds = mod.make_dataset(split=split, length=64 * max(1, n), seed=seed, new_color_share=0.5)
    out, i = [], 0
    while len(out) < n:  # about 3 scenes in 4 hold a new colour
        spec, cap = ds.spec_and_caption(i)
        if any(o["color"] in mod.NEW_COLORS for o in spec["objects"]):
            out.append((cap, mod.parse_prompt(cap)))
        i += 1
    return out


def cli_main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ptdit.worlds.judges", description=__doc__.split("\n")[0])
    add_list_option(ap, "--world", choices=sorted(WORLDS), help="world(s) to validate (default: all)")
    ap.add_argument("--n", type=int, default=500, help="items per condition")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--noise", type=float, default=0.1, help="noise std of the corrupted condition, [-1, 1] units"
    )
    ap.add_argument("--size", type=int, default=None, help="image side, 32 or 64 (default: the world's, 32)")
    ap.add_argument("--frames", type=int, default=None, help="shapes-video frames, 8 to 16 (default 8)")
    args = ap.parse_args(argv)
    if args.n <= 0:
        raise ValueError(f"--n must be positive, got {args.n}")
    rows = []
    for world in args.world or sorted(WORLDS):
        kwargs = {} if args.size is None else {"size": args.size}
        if args.frames is not None and world == "shapes-video":
            kwargs["frames"] = args.frames
        for label, noise, blur in (("clean", 0.0, False), (f"noise {args.noise}+blur", args.noise, True)):
            r = validate_judges(world, args.n, args.seed, noise, blur, verbose=False, **kwargs)
            by = ", ".join(f"{k} {v:.3f}" for k, v in r["fail_rate_by_attribute"].items())
            rows.append((world, label, r["pass_rate"], r["fail_rate"], by))
    print(f"{'world':<18} {'condition':<16} {'gt pass':>8} {'mismatch fail':>14}  mismatch fail by attribute")
    for world, label, p, f, by in rows:
        print(f"{world:<18} {label:<16} {p:>8.3f} {f:>14.3f}  {by}")
    return 0


def main() -> int:
    """`python -m ptdit.worlds.judges` with the error handling of the `ptdit` CLI."""
    try:
        return cli_main(sys.argv[1:])
    except ValueError as e:
        print(f"ptdit.worlds.judges: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

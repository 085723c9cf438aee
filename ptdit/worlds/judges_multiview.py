"""Reading 8 generated views of the multi-view world: which solid, which face colours, do the views agree?

Object: the solid whose reference silhouettes (rendered by shapes_multiview for the orbit's azimuths) overlap
the foreground best. Colours: pixels are matched to palette colours times a light factor in [0.7, 1] (the
renderer's flat shading), read on the interior of the foreground only. Consistency: the views are compared
with the reference views of the object they show, in the colours they show: view v must be closest to
reference v (see `read_views`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .judges_segment import FOREGROUND_THRESHOLD, erode, smooth
from .shapes import COLORS, PALETTE01
from .shapes_multiview import OBJECTS, SHADE_MIN, reference_views


def _smooth_views(views: np.ndarray) -> np.ndarray:
    """[1, 2, 1] blur of every channel of (V, H, W, 3) views."""
    return np.stack([np.stack([smooth(v[..., ch]) for ch in range(3)], -1) for v in views])


def _color_histograms(views: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """Share of each palette colour among the interior foreground pixels of each view: (V, 8)."""
    labels = shaded_labels(views)
    hists = []
    for v in range(views.shape[0]):
        c = np.bincount(labels[v][erode(fg[v], 1)], minlength=len(COLORS)).astype(np.float64)
        hists.append(c / max(1.0, c.sum()))
    return np.stack(hists)


@lru_cache(maxsize=512)
def _reference_stats(obj: str, colors: tuple[str, ...], size: int) -> tuple[np.ndarray, ...]:
    """Of the reference views: blurred views (8, H, W, 3), their pairwise MSE (8, 8), silhouettes (8, H, W)
    and colour histograms (8, 8); cached."""
    ref = reference_views(obj, colors, size)
    ref_s = _smooth_views(ref)
    gap = ((ref_s[:, None] - ref_s[None]) ** 2).mean(axis=(2, 3, 4))
    fg = ref.max(-1) > FOREGROUND_THRESHOLD
    return ref_s, gap, fg, _color_histograms(ref, fg)


def shaded_labels(frames: np.ndarray) -> np.ndarray:
    """Palette index of each pixel (..., 3) in [0, 1], allowing the light factor: nearest of s * colour,
    s in [SHADE_MIN - 0.05, 1]."""
    c = PALETTE01  # (8, 3)
    s = np.clip((frames @ c.T) / (c * c).sum(1), SHADE_MIN - 0.05, 1.0)  # (..., 8)
    d = ((frames[..., None, :] - s[..., None] * c) ** 2).sum(-1)
    return d.argmin(-1)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def read_views(
    views: np.ndarray, min_share: float = 0.1, tolerance: float = 0.25, max_color_mismatch: float = 0.2
) -> dict:
    """What 8 views (8, H, W, 3) in [0, 1] show: {"object", "colors", "consistent", ...}.

    object: the solid whose reference silhouettes best match the foreground (IoU summed over the views);
    colors: palette colours (allowing shading) holding >= `min_share` of the interior foreground pixels;
    consistent: every view alone names the same object; one or two colours are seen; each view shows them in
    the proportions of its reference view (total variation distance <= `max_color_mismatch`); and view v is
    closer (MSE after a [1, 2, 1] blur) to reference view v of that object and colours than to every
    reference view that differs from it, by at least `tolerance` times the smallest gap g between those
    references (views of a symmetric object that equal reference v are not "other"), and its residual
    exceeds the best view's residual (about the noise level) by at most `tolerance` * g. The references use
    whichever assignment of the two colours to the face slots fits best.
    """
    n, size = views.shape[0], views.shape[1]
    fg = views.max(-1) > FOREGROUND_THRESHOLD
    ious = {o: [_iou(fg[v], _reference_stats(o, ("white",), size)[2][v]) for v in range(n)] for o in OBJECTS}
    obj = max(OBJECTS, key=lambda o: sum(ious[o]))
    per_view = [max(OBJECTS, key=lambda o: ious[o][v]) for v in range(n)]
    interior = np.stack([erode(f, 1) for f in fg])
    counts = np.bincount(shaded_labels(views[interior]), minlength=len(COLORS))
    share = counts / max(1, counts.sum())
    colors = [COLORS[i] for i in np.argsort(-share) if share[i] >= min_share]
    consistent = all(p == obj for p in per_view) and 1 <= len(colors) <= 2
    order_used, color_mismatch = None, None
    if consistent:
        smoothed = _smooth_views(views)
        best = None
        for order in sorted({tuple(colors), tuple(colors[::-1])}):
            ref_s, ref_gap, _, ref_hists = _reference_stats(obj, order, size)
            dist = ((smoothed[:, None] - ref_s[None]) ** 2).mean(axis=(2, 3, 4))  # (view, reference)
            if best is None or np.trace(dist) < best[0]:
                best = (np.trace(dist), order, dist, ref_gap, ref_hists)
        _, order_used, dist, ref_gap, ref_hists = best
        color_mismatch = 0.5 * np.abs(_color_histograms(views, fg) - ref_hists).sum(1)  # (V,)
        consistent = bool((color_mismatch <= max_color_mismatch).all())
        floor = float(np.diag(dist).min())  # the best view's residual: about the noise level
        for v in range(n):
            others = [u for u in range(n) if ref_gap[v, u] > 1e-6]  # symmetric views are indistinguishable
            if not others:
                continue
            closest_other = min(dist[v, u] for u in others)
            gap = min(ref_gap[v, u] for u in others)
            if dist[v, v] - closest_other > -tolerance * gap or dist[v, v] - floor > tolerance * gap:
                consistent = False
    return {
        "object": obj,
        "colors": colors,
        "consistent": bool(consistent),
        "per_view_object": per_view,
        "color_share": {COLORS[i]: round(float(share[i]), 3) for i in np.argsort(-share)[:3]},
        "reference_order": order_used,
        "view_color_mismatch": None
        if color_mismatch is None
        else [round(float(x), 3) for x in color_mismatch],
    }

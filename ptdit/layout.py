"""Token layout: pure functions between the (f, h, w) token grid and PT-DiT's window-major layout.

Window-major layout: `(B, nW, n, D)` with nW = (f/p_f)(h/p_h)(w/p_w) windows in (f, h, w) raster order and
n = p_f*p_h*p_w tokens per window, also in (f, h, w) raster order. Tokens are put in this layout once, after the
patch embedding, and taken out once, before unpatchify. Every per-shape index or mask is built from the shape
alone and cached by shape and device; no module keeps size-dependent state.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

Grid = tuple[int, int, int]
Window = tuple[int, int, int]


def num_windows(grid: Grid, window: Window) -> int:
    return (grid[0] // window[0]) * (grid[1] // window[1]) * (grid[2] // window[2])


def check_divisible(grid: Grid, window: Window) -> None:
    """Raise a ValueError that names the offending axis when the token grid does not divide by the window."""
    bad = [(name, g, p) for name, g, p in zip(("frames", "height", "width"), grid, window) if g % p]
    if bad:
        details = ", ".join(f"{name}: {g} tokens not divisible by window {p}" for name, g, p in bad)
        raise ValueError(f"token grid {tuple(grid)} does not divide by window {tuple(window)} ({details})")


def window_partition(x: Tensor, window: Window) -> Tensor:
    """(B, F, H, W, D) token grid -> (B, nW, n, D) window-major tokens."""
    B, F, H, W, D = x.shape
    pf, ph, pw = window
    check_divisible((F, H, W), window)
    x = x.reshape(B, F // pf, pf, H // ph, ph, W // pw, pw, D)  # (B, Fw, pf, Hw, ph, Ww, pw, D)
    x = x.permute(0, 1, 3, 5, 2, 4, 6, 7)  # (B, Fw, Hw, Ww, pf, ph, pw, D)
    return x.reshape(B, -1, pf * ph * pw, D)


def window_merge(x: Tensor, grid: Grid, window: Window) -> Tensor:
    """(B, nW, n, D) window-major tokens -> (B, F, H, W, D) token grid (inverse of `window_partition`)."""
    B, _, _, D = x.shape
    F, H, W = grid
    pf, ph, pw = window
    x = x.reshape(B, F // pf, H // ph, W // pw, pf, ph, pw, D)
    x = x.permute(0, 1, 4, 2, 5, 3, 6, 7)  # (B, Fw, pf, Hw, ph, Ww, pw, D)
    return x.reshape(B, F, H, W, D)


def proxy_pool(
    x: Tensor,
    mode: str = "mean",
    generator: torch.Generator | None = None,
    weights: Tensor | None = None,
) -> Tensor:
    """One proxy token per window: (B, nW, n, D) -> (B, nW, D).

    "mean": the window average (paper v2, release), or with `weights` (nW, n, 1) the weighted sum (padding:
    the mean of the valid tokens, `proxy_weights`); "topleft": the window's first token;
    "random": one token drawn per window (paper v1; the same draw for every sample of the batch).
    """
    if mode == "mean":
        return x.mean(dim=2) if weights is None else (x * weights.to(x.dtype)).sum(dim=2)
    if mode == "topleft":
        return x[:, :, 0]
    if mode == "random":
        _, nW, n, D = x.shape
        idx = torch.randint(n, (nW,), generator=generator, device="cpu").to(x.device)
        return x[:, torch.arange(nW, device=x.device), idx]
    raise ValueError(f"unknown proxy mode {mode!r}; use 'mean', 'random' or 'topleft'")


def shift_size(window: Window) -> Window:
    """Swin's cyclic shift: half a window on every axis (0 where the window is 1)."""
    return tuple(p // 2 for p in window)  # type: ignore[return-value]


def cyclic_shift(x: Tensor, shift: Window) -> Tensor:
    """Roll a (B, F, H, W, D) grid by -shift, so that shifted windows become regular windows."""
    return torch.roll(x, shifts=tuple(-s for s in shift), dims=(1, 2, 3))


def cyclic_unshift(x: Tensor, shift: Window) -> Tensor:
    """Inverse of `cyclic_shift`."""
    return torch.roll(x, shifts=tuple(shift), dims=(1, 2, 3))


def shift_region_labels(grid: Grid, window: Window, shift: Window) -> Tensor:
    """Swin region ids of the rolled grid: (F, H, W) long.

    On every axis of size S (window p, shift s > 0) the slices [0, S-p), [S-p, S-s), [S-s, S) are regions;
    tokens of different regions came from opposite borders of the un-shifted grid and must not attend.
    """
    labels = torch.zeros(grid, dtype=torch.long)
    for axis, (size, p, s) in enumerate(zip(grid, window, shift)):
        if s == 0:
            continue
        axis_labels = torch.zeros(size, dtype=torch.long)
        axis_labels[size - p : size - s] = 1
        axis_labels[size - s :] = 2
        view = [1, 1, 1]
        view[axis] = size
        labels = labels * 3 + axis_labels.view(view)
    return labels


@functools.lru_cache(maxsize=64)
@torch.inference_mode(False)  # cached tensors must also serve training calls made after an inference call
def _shift_mask(grid: Grid, window: Window, shift: Window, device: str) -> Tensor | None:
    labels = shift_region_labels(grid, window, shift).view(1, *grid, 1)
    labels = window_partition(labels, window)[0, :, :, 0]  # (nW, n)
    allowed = labels[:, :, None] == labels[:, None, :]  # (nW, n, n)
    return None if bool(allowed.all()) else allowed.to(device)


def shift_window_mask(
    grid: Grid, window: Window, shift: Window, device: torch.device | str = "cpu"
) -> Tensor | None:
    """Boolean mask (nW, n, n) of the allowed (query, key) pairs in shifted windows, or None if all are allowed.

    Built once per (grid, window, shift, device) and shared by the whole batch and every head.
    """
    return _shift_mask(tuple(grid), tuple(window), tuple(shift), str(torch.device(device)))


def shift_window_bias(
    grid: Grid, window: Window, shift: Window, device: torch.device | str, dtype: torch.dtype
) -> Tensor | None:
    """`shift_window_mask` as an additive (nW, 1, n, n) mask in `dtype` (0 = allowed, -inf = not), or None.

    Cached like the boolean mask, so attention gets a ready bias instead of converting a bool mask every call.
    """
    return _shift_bias(tuple(grid), tuple(window), tuple(shift), str(torch.device(device)), dtype)


@functools.lru_cache(maxsize=64)
@torch.inference_mode(False)
def _shift_bias(grid: Grid, window: Window, shift: Window, device: str, dtype: torch.dtype) -> Tensor | None:
    allowed = _shift_mask(grid, window, shift, device)
    if allowed is None:
        return None
    return torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill_(~allowed, float("-inf"))[
        :, None
    ]


@functools.lru_cache(maxsize=64)
@torch.inference_mode(False)
def _shift_perm(grid: Grid, window: Window, shift: Window, device: str) -> tuple[Tensor, Tensor]:
    slots = torch.arange(grid[0] * grid[1] * grid[2]).view(1, num_windows(grid, window), -1, 1)
    rolled = window_partition(cyclic_shift(window_merge(slots, grid, window), shift), window)
    perm = rolled.flatten()
    return perm.to(device), torch.argsort(perm).to(device)


def shift_permutation(
    grid: Grid, window: Window, shift: Window, device: torch.device | str = "cpu"
) -> tuple[Tensor, Tensor]:
    """Index pair (perm, inverse) of the cyclic shift in window-major order, each (N,) long.

    `x.flatten(1, 2)[:, perm]` equals `window_partition(cyclic_shift(window_merge(x)))` flattened, done as one
    gather; `[:, inverse]` undoes it.
    """
    return _shift_perm(tuple(grid), tuple(window), tuple(shift), str(torch.device(device)))


# --------------------------------------------------------------------------------------------- padding
@functools.lru_cache(maxsize=64)
@torch.inference_mode(False)
def _valid_tokens(grid: Grid, valid: Grid, window: Window, device: str) -> Tensor:
    keep = torch.zeros(grid, dtype=torch.bool)
    keep[: valid[0], : valid[1], : valid[2]] = True
    return window_partition(keep.view(1, *grid, 1), window)[0, :, :, 0].to(device)  # (nW, n)


def valid_tokens(grid: Grid, valid: Grid, window: Window, device: torch.device | str = "cpu") -> Tensor:
    """bool (nW, n), window-major: True for the tokens of the padded `grid` that lie inside the `valid` grid.

    Padding sits at the end of every axis (the model pads latents on the right), so a window's first token is
    valid whenever any of its tokens is.
    """
    return _valid_tokens(tuple(grid), tuple(valid), tuple(window), str(torch.device(device)))


def key_padding_mask(valid: Tensor) -> Tensor:
    """bool (..., n, n) from a (..., n) validity mask: a valid query may attend only to valid keys; a padded
    query may attend to every key (its output is cropped; this keeps its softmax finite)."""
    return valid[..., None, :] | ~valid[..., :, None]


def proxy_weights(valid: Tensor) -> Tensor:
    """(nW, n) validity -> (nW, n, 1) float weights that average each window over its valid tokens only
    (all zero for a window with none)."""
    w = valid.float()
    return (w / w.sum(1, keepdim=True).clamp(min=1))[..., None]


@functools.lru_cache(maxsize=64)
@torch.inference_mode(False)
def _shift_pad_mask(grid: Grid, valid: Grid, window: Window, shift: Window, device: str) -> Tensor:
    keep = _valid_tokens(grid, valid, window, "cpu").flatten()
    perm, _ = _shift_perm(grid, window, shift, "cpu")
    allowed = key_padding_mask(keep[perm].view(num_windows(grid, window), -1))  # (nW, n, n), shifted order
    regions = _shift_mask(grid, window, shift, "cpu")
    if regions is not None:
        allowed = allowed & regions
    return allowed[:, None].to(device)


def shift_pad_mask(
    grid: Grid, valid: Grid, window: Window, shift: Window, device: torch.device | str = "cpu"
) -> Tensor:
    """bool (nW, 1, n, n) of the allowed pairs in shifted windows of a padded grid: the same region as in
    `shift_window_mask` and, for a valid query, a valid key (`key_padding_mask`)."""
    return _shift_pad_mask(tuple(grid), tuple(valid), tuple(window), tuple(shift), str(torch.device(device)))

"""Token layout helpers: pure functions, tested alone."""

import pytest
import torch
import torch.nn.functional as F

from ptdit.layout import (
    check_divisible,
    cyclic_shift,
    cyclic_unshift,
    proxy_pool,
    shift_permutation,
    shift_region_labels,
    shift_size,
    shift_window_mask,
    window_merge,
    window_partition,
)

GRIDS = [((1, 4, 4), (1, 2, 2)), ((1, 6, 8), (1, 2, 4)), ((4, 4, 6), (2, 2, 3)), ((8, 4, 4), (4, 2, 2))]


@pytest.mark.parametrize("grid,window", GRIDS)
def test_partition_merge_round_trip(grid, window):
    x = torch.randn(2, *grid, 5)
    w = window_partition(x, window)
    nW = (grid[0] // window[0]) * (grid[1] // window[1]) * (grid[2] // window[2])
    assert w.shape == (2, nW, window[0] * window[1] * window[2], 5)
    assert torch.equal(window_merge(w, grid, window), x)


def test_partition_order_is_window_major_raster():
    # grid (1, 4, 4), window (1, 2, 2): window 1 is the top-right 2x2 block, tokens in raster order inside
    x = torch.arange(16).view(1, 1, 4, 4, 1)
    w = window_partition(x, (1, 2, 2))[0, :, :, 0]
    assert w[0].tolist() == [0, 1, 4, 5]
    assert w[1].tolist() == [2, 3, 6, 7]
    assert w[2].tolist() == [8, 9, 12, 13]


@pytest.mark.parametrize("grid,window", GRIDS)
def test_mean_proxy_equals_avg_pool3d(grid, window):
    x = torch.randn(2, *grid, 7)
    proxies = proxy_pool(window_partition(x, window), "mean")  # (B, nW, D)
    pooled = F.avg_pool3d(x.permute(0, 4, 1, 2, 3), kernel_size=window)  # (B, D, F/pf, H/ph, W/pw)
    assert torch.allclose(proxies, pooled.flatten(2).transpose(1, 2), atol=1e-6)


def test_topleft_and_random_proxies_are_window_tokens():
    x = torch.randn(2, 1, 4, 4, 3)
    w = window_partition(x, (1, 2, 2))
    assert torch.equal(proxy_pool(w, "topleft"), w[:, :, 0])
    r = proxy_pool(w, "random", generator=torch.Generator().manual_seed(0))
    for b in range(2):
        for i in range(w.shape[1]):
            assert any(torch.equal(r[b, i], w[b, i, j]) for j in range(w.shape[2]))
    with pytest.raises(ValueError, match="unknown proxy mode"):
        proxy_pool(w, "median")


@pytest.mark.parametrize("grid,window", GRIDS)
def test_cyclic_shift_round_trip(grid, window):
    x = torch.randn(2, *grid, 3)
    shift = shift_size(window)
    assert torch.equal(cyclic_unshift(cyclic_shift(x, shift), shift), x)
    assert torch.equal(cyclic_shift(x, shift)[:, 0, 0, 0], x[:, shift[0], shift[1], shift[2]])


def _window_major_coords(grid, window):
    """(f, h, w) of every window-major slot by raster arithmetic: windows in (f, h, w) order, tokens inside."""
    (F_, H, W), (pf, ph, pw) = grid, window
    windows = [(a, b, c) for a in range(F_ // pf) for b in range(H // ph) for c in range(W // pw)]
    inside = [(i, j, k) for i in range(pf) for j in range(ph) for k in range(pw)]
    return [(a * pf + i, b * ph + j, c * pw + k) for a, b, c in windows for i, j, k in inside]


@pytest.mark.parametrize("grid,window", GRIDS)
def test_shift_permutation_gathers_the_rolled_grid(grid, window):
    """Built by hand, not with the layout helpers the permutation is made of: slot s of the shifted layout holds
    the token `shift` further along every axis (Swin's roll by -shift), wrapping around the border."""
    x = torch.randn(2, *grid, 3)
    shift = shift_size(window)
    coords = _window_major_coords(grid, window)
    xw = torch.stack([x[:, f, h, w] for f, h, w in coords], 1)  # (B, N, 3) window-major
    assert torch.equal(window_partition(x, window).flatten(1, 2), xw)
    rolled = [tuple((c + s) % g for c, s, g in zip(coord, shift, grid)) for coord in coords]
    expected = torch.stack([x[:, f, h, w] for f, h, w in rolled], 1)
    perm, inv = shift_permutation(grid, window, shift)
    assert torch.equal(xw[:, perm], expected)
    assert torch.equal(expected[:, inv], xw)
    assert torch.equal(window_partition(cyclic_shift(x, shift), window).flatten(1, 2), expected)


def test_region_labels_swin_slices():
    labels = shift_region_labels((1, 8, 8), (1, 4, 4), (0, 2, 2))[0]
    # rows [0, 4) -> 0, [4, 6) -> 1, [6, 8) -> 2; same for columns; label = row_label * 3 + col_label
    assert labels[0, 0] == 0 and labels[0, 4] == 1 and labels[0, 7] == 2
    assert labels[4, 0] == 3 and labels[7, 7] == 8
    assert shift_region_labels((1, 8, 8), (1, 1, 1), (0, 0, 0)).unique().tolist() == [0]


def test_shift_mask_only_in_last_window_row_and_column():
    grid, window = (1, 8, 8), (1, 4, 4)
    mask = shift_window_mask(grid, window, shift_size(window))  # (nW, n, n) bool
    assert mask.shape == (4, 16, 16) and mask.dtype == torch.bool
    assert mask[0].all()  # the top-left window never wraps around
    assert not mask[1].all() and not mask[2].all() and not mask[3].all()
    assert mask.diagonal(dim1=1, dim2=2).all()  # every token may attend to itself
    assert shift_window_mask((1, 4, 4), (1, 1, 1), (0, 0, 0)) is None


def test_shift_mask_temporal_regions():
    mask = shift_window_mask((8, 2, 2), (4, 1, 1), (2, 0, 0))  # windows of 4 frames; the last wraps
    assert mask.shape == (8, 4, 4)  # 2 x 2 x 2 windows of 4 x 1 x 1 tokens
    assert mask[:4].all()  # the first 4 frames never wrap
    assert not any(mask[i].all() for i in range(4, 8))


def test_check_divisible_names_axis():
    with pytest.raises(ValueError, match="height: 6 tokens not divisible by window 4"):
        check_divisible((1, 6, 8), (1, 4, 4))

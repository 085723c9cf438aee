"""attention_maps: the recorded weights are the ones the model used (weights @ V reproduces the attention's
output), padded proxies get no weight, bad choices are one clear error, a compiled model is re-run eagerly."""

import numpy as np
import pytest
import torch

from ptdit import PTDiT
from ptdit.attention_maps import attention_maps, heatmap, window_grid
from tests.model_helpers import randomize_zero_init

FIELDS = dict(depth=2, hidden_size=32, num_heads=4, caption_channels=16, window=(1, 2, 2))


def live(**kw):
    return randomize_zero_init(
        PTDiT(**{**FIELDS, **kw}), std=0.2, generator=torch.Generator().manual_seed(0)
    ).eval()


def inputs(H=8, W=8, F=1):
    g = torch.Generator().manual_seed(1)
    return (
        torch.randn(2, 4, F, H, W, generator=g),
        torch.tensor([700.0, 700.0]),
        torch.randn(2, 5, 16, generator=g),
    )


def _output_of(module, model, x, t, y):
    seen = {}
    handle = module.register_forward_hook(lambda m, a, out: seen.setdefault("out", out))
    pre = module.register_forward_pre_hook(lambda m, a, kw: seen.setdefault("in", (a, kw)), with_kwargs=True)
    with torch.no_grad():
        model(x, t, y)
    handle.remove()
    pre.remove()
    return seen


@pytest.mark.parametrize("head", [None, 2])
def test_token_to_proxy_weights_reproduce_the_attention_output(head):
    model = live()
    x, t, y = inputs(H=16, W=16)  # 8 x 8 tokens: 16 windows of 2 x 2
    maps = attention_maps(model, x, t, y, block=1, window_index=3, head=head)
    assert maps.kinds == ["proxy_self", "token_to_proxy", "local"]
    M, n = 16, 4
    assert (
        maps.proxy_self.shape == (M, M) and maps.token_to_proxy.shape == (n, M) and maps.local.shape == (n, n)
    )
    torch.testing.assert_close(maps.proxy_self.sum(-1), torch.ones(M))
    attn = model.blocks[1].visual_attn
    seen = _output_of(attn, model, x, t, y)
    (q, kv), _ = seen["in"]
    v = attn._heads(attn.to_v(kv))[0]  # (heads, M, d)
    # out = to_out(concat_h(w_h @ v_h)): check with every head's weights (head=None: mean of the per-head maps)
    per_head = [
        attention_maps(model, x, t, y, block=1, window_index=3, head=h).token_to_proxy for h in range(4)
    ]
    if head is None:
        torch.testing.assert_close(maps.token_to_proxy, torch.stack(per_head).mean(0))
    o = torch.cat([per_head[h] @ v[h] for h in range(4)], -1)  # (n, D)
    expected = attn.to_out(o)
    torch.testing.assert_close(expected, seen["out"][0, 3 * n : 4 * n], atol=1e-5, rtol=1e-4)


def test_padded_input_maps_and_full_attention_maps_a_token():
    model = live(pad=True)
    x, t, y = inputs(H=10, W=6)  # padded to 12 x 8 latents: a 6 x 4 token grid, 3 x 2 windows
    maps = attention_maps(model, x, t, y, block=0, window_index=5)
    assert maps.grid == (1, 6, 4) and maps.proxy_self.shape == (6, 6) and torch.isfinite(maps.local).all()
    keep = torch.tensor(
        [True, False, False, False]
    )  # window 5 (bottom right): only its top-left token is valid
    assert torch.all(maps.local[keep][:, ~keep] == 0)  # valid tokens give padded tokens no weight
    assert maps.proxy_map(0).shape == (1, 3, 2)
    full = live(attention="full")
    fmaps = attention_maps(full, *inputs(), block=1, token_index=5)
    assert fmaps.kinds == ["token"] and fmaps.token.shape == (16,)
    torch.testing.assert_close(fmaps.token.sum(), torch.tensor(1.0))
    assert fmaps.token_map().shape == (1, 4, 4)
    with pytest.raises(ValueError, match="no proxy self-attention"):
        fmaps.proxy_map(0)


def test_bad_choices_are_clear_errors_and_a_compiled_model_reruns_eagerly():
    model = live()
    x, t, y = inputs()
    with pytest.raises(ValueError, match="block 5 is out of range: the model has 2 blocks"):
        attention_maps(model, x, t, y, block=5)
    with pytest.raises(ValueError, match="window 4 is out of range"):
        attention_maps(model, x, t, y, window_index=4)
    with pytest.raises(ValueError, match="head 9 is out of range"):
        attention_maps(model, x, t, y, head=9)
    model.__dict__["_compiled_run"] = lambda *a: (_ for _ in ()).throw(AssertionError("compiled graph used"))
    attention_maps(model, x, t, y)
    assert "_compiled_run" in model.__dict__  # restored


def test_heatmap_and_window_grid_pictures():
    img = heatmap(np.array([[0.0, 1.0], [0.5, 0.25]]), scale=4)
    assert img.shape == (8, 8, 3) and img.dtype == np.uint8
    assert tuple(img[0, 4]) == (255, 255, 255) and tuple(img[0, 0]) == (0, 0, 0)
    grid = window_grid(np.zeros((8, 8, 3), np.uint8), (4, 4))
    assert grid[4, 1].tolist() == [255, 255, 255] and grid[1, 1].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="2-D map"):
        heatmap(np.zeros((1, 2, 2)))

"""Fast paths (ptdit.fast, the "split"/"flex" attention backends) against the reference path on random inputs."""

import copy

import pytest
import torch
import torch._dynamo
from torch.utils._python_dispatch import TorchDispatchMode

import ptdit.attention as attention_module
from ptdit import PTDiT, PTDiTConfig
from ptdit.attention import attention, boundary_windows
from ptdit.fast import (
    CUDAGraphForward,
    FusedQKVAttention,
    bf16_numerics,
    compile_model,
    fuse_qkv,
    optimize_for_inference,
    set_attention_backend,
    unfuse_qkv,
)
from ptdit.layout import shift_size, shift_window_mask

BLOCKS = ["official", "lean"]


pytestmark = [
    pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile"),
    pytest.mark.usefixtures("one_thread"),
]


def tiny(block="official", **kw) -> PTDiTConfig:
    base = dict(depth=2, hidden_size=32, num_heads=4, caption_channels=16, window=(1, 4, 4), block=block)
    base.update(kw)
    return PTDiTConfig(**base)


def model_with_live_branches(config: PTDiTConfig, seed: int = 0) -> PTDiT:
    """A PTDiT whose zero-initialised linears are random, so every branch (incl. shifted windows) counts."""
    torch.manual_seed(seed)
    model = PTDiT(config)
    with torch.no_grad():
        for m in model.modules():
            if getattr(m, "zero_init", False):
                m.weight.normal_(std=0.2)
                m.bias.normal_(std=0.2)
    return model


def inputs(B=2, F=1, H=16, W=16, L=5, caption=16, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, 4, F, H, W, generator=g).to(dtype)
    y = torch.randn(B, L, caption, generator=g).to(dtype)
    t = torch.rand(B, generator=g) * 1000
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[1, 3:] = False
    return x, t, y, mask


def window_qkv(grid=(1, 8, 8), window=(1, 4, 4), heads=2, d=8, B=2, requires_grad=False):
    mask = shift_window_mask(grid, window, shift_size(window))[:, None]  # (nW, 1, n, n)
    nW, n = mask.shape[0], mask.shape[-1]
    g = torch.Generator().manual_seed(1)
    qkv = [torch.randn(B, nW, heads, n, d, generator=g).requires_grad_(requires_grad) for _ in range(3)]
    return qkv, mask


# ------------------------------------------------------------------------------ CPU training: explicit product


class _SDPACounter:
    def __init__(self, monkeypatch):
        self.calls = 0
        real = attention_module.F.scaled_dot_product_attention

        def counted(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(attention_module.F, "scaled_dot_product_attention", counted)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("masked", [False, True])
def test_cpu_backward_with_short_keys_skips_sdpa_and_matches_it(monkeypatch, dtype, masked):
    """bf16/fp32 CPU calls that need a gradient, with few keys, run the explicit fp32 product (SDPA's CPU backward
    is several times slower there): the same outputs and gradients as SDPA, without calling it."""
    (q, k, v), mask = window_qkv(grid=(1, 8, 8), window=(1, 4, 4), d=8)  # 16 keys per window
    mask = torch.zeros(mask.shape, dtype=dtype).masked_fill(~mask, float("-inf")) if masked else None
    q, k, v = (t.to(dtype) for t in (q, k, v))
    grads, limits, counter = {}, dict(attention_module.CPU_MATH_MAX_KEYS), _SDPACounter(monkeypatch)
    for route in ("sdpa", "explicit"):
        monkeypatch.setattr(attention_module, "CPU_MATH_MAX_KEYS", {} if route == "sdpa" else limits)
        counter.calls = 0
        leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
        out = attention(*leaves, mask)
        out.float().square().sum().backward()
        assert counter.calls == (1 if route == "sdpa" else 0)
        grads[route] = [out.detach().float()] + [t.grad.float() for t in leaves]
    tol = dict(atol=3e-2, rtol=3e-2) if dtype == torch.bfloat16 else dict(atol=1e-5, rtol=1e-5)
    for a, b in zip(grads["sdpa"], grads["explicit"]):
        torch.testing.assert_close(a, b, **tol)


def test_cpu_sdpa_stays_without_gradients_with_long_keys_and_in_fp64(monkeypatch):
    counter = _SDPACounter(monkeypatch)
    g = torch.Generator().manual_seed(0)
    short = [torch.randn(2, 2, 16, 8, generator=g, dtype=torch.bfloat16) for _ in range(3)]
    long_keys = [short[0]] + [torch.randn(2, 2, 512, 8, generator=g, dtype=torch.bfloat16) for _ in range(2)]
    attention(*short)  # no gradient to compute: SDPA's forward is the fast one
    attention(*(t.requires_grad_() for t in long_keys))  # 512 keys: SDPA's backward wins
    attention(*(t.double().requires_grad_() for t in short))  # fp64 (reference tests) keeps SDPA
    assert counter.calls == 3


# ------------------------------------------------------------------------------ shifted windows without a dense mask
def test_boundary_windows_are_the_last_row_and_column():
    _, mask = window_qkv(grid=(1, 32, 32), window=(1, 4, 4))  # 8 x 8 windows
    idx = boundary_windows(mask).tolist()
    expected = sorted({r * 8 + 7 for r in range(8)} | {56 + c for c in range(8)})
    assert idx == expected  # 15 of 64 windows wrap around the border and need the mask


@pytest.mark.parametrize("additive", [False, True], ids=["bool-mask", "release-additive-mask"])
def test_split_equals_masked_sdpa_forward_and_backward(additive):
    torch.manual_seed(0)
    (q, k, v), mask = window_qkv(requires_grad=True)
    if additive:
        mask = (~mask).float() * -10000.0
    ref = attention(q, k, v, mask, "sdpa")
    grads_ref = torch.autograd.grad(ref.square().sum(), (q, k, v))
    out = attention(q, k, v, mask, "split")
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(attention(q, k, v, None, "sdpa"), ref, atol=1e-3)  # the mask does matter here


def test_flex_equals_masked_sdpa(monkeypatch):
    """The FlexAttention path (block mask from the window mask); eager flex here, compiled in the backend."""
    from torch.nn.attention.flex_attention import flex_attention

    monkeypatch.setitem(attention_module._FLEX, "fn", flex_attention)  # skip a minute of CPU compilation
    (q, k, v), mask = window_qkv()
    with torch.no_grad():
        torch.testing.assert_close(
            attention(q, k, v, mask, "flex"), attention(q, k, v, mask, "sdpa"), atol=1e-5, rtol=1e-5
        )


def test_flex_falls_back_to_sdpa_for_gradients_on_cpu():
    (q, k, v), mask = window_qkv(requires_grad=True)
    out = attention(q, k, v, mask, "flex")  # FlexAttention has no CPU backward: masked SDPA instead
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    ref = attention(q, k, v, mask, "sdpa")
    grads_ref = torch.autograd.grad(ref.square().sum(), (q, k, v))
    torch.testing.assert_close(out, ref)
    for g, g_ref in zip(grads, grads_ref):
        assert g.norm() > 0
        torch.testing.assert_close(g, g_ref)


@pytest.mark.parametrize(
    "block,F,window",
    [("official", 1, (1, 4, 4)), ("lean", 1, (1, 4, 4)), ("official", 4, (2, 2, 4))],
    ids=["image-official", "image-lean", "video-official"],
)
def test_split_backend_whole_model_matches_reference(block, F, window):
    model = model_with_live_branches(tiny(block, window=window))
    x, t, y, m = inputs(F=F)
    ref = model(x, t, y, m).sample
    grads_ref = torch.autograd.grad(ref.square().mean(), list(model.parameters()))
    set_attention_backend(model, "split")
    out = model(x, t, y, m).sample
    grads = torch.autograd.grad(out.square().mean(), list(model.parameters()))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_set_attention_backend_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown attention backend"):
        set_attention_backend(PTDiT(tiny()), "triton")


# ------------------------------------------------------------------------------ fused QKV
@pytest.mark.parametrize("block", BLOCKS)
def test_fuse_qkv_matches_and_trains(block):
    model = model_with_live_branches(tiny(block))
    fused = fuse_qkv(copy.deepcopy(model))
    assert any(isinstance(m, FusedQKVAttention) for m in fused.modules())
    assert list(fused.state_dict()) == list(model.state_dict())  # weights keep their names
    x, t, y, m = inputs()
    ref, out = model(x, t, y, m).sample, fused(x, t, y, m).sample
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    g_ref = torch.autograd.grad(ref.square().mean(), list(model.parameters()))
    g = torch.autograd.grad(out.square().mean(), list(fused.parameters()))
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_fused_cache_follows_weight_updates():
    model = fuse_qkv(model_with_live_branches(tiny())).eval()
    x, t, y, m = inputs()
    with torch.no_grad():
        before = model(x, t, y, m).sample
        model.blocks[0].window_attn.to_k.weight.add_(0.5)  # an in-place update (as an optimizer step does)
        after = model(x, t, y, m).sample
        reference = unfuse_qkv(model)(x, t, y, m).sample
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, reference, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------ torch.compile per block
@pytest.mark.parametrize("block,graphs", [("official", 1), ("lean", 2)])
def test_compile_blocks_shares_graphs_and_does_not_recompile(block, graphs):
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    model = model_with_live_branches(tiny(block, depth=4)).eval()
    x, t, y, m = inputs()
    with torch.no_grad():
        ref = model(x, t, y, m).sample
        compiled = compile_model(copy.deepcopy(model), "blocks", backend="aot_eager")  # no C++ build
        torch.testing.assert_close(compiled(x, t, y, m).sample, ref, atol=1e-5, rtol=1e-5)
        assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs  # one per block kind
        x2, t2, y2, m2 = inputs(seed=3)
        with torch._dynamo.config.patch(error_on_recompile=True):
            out2 = compiled(x2, t2, y2, m2).sample  # same bucket (shape), new values: no recompilation
        torch.testing.assert_close(out2, model(x2, t2, y2, m2).sample, atol=1e-5, rtol=1e-5)
    torch._dynamo.reset()


def test_compile_blocks_with_fused_qkv_and_split_keeps_one_graph_and_drops_flex():
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    model = model_with_live_branches(tiny(depth=3)).eval()
    x, t, y, m = inputs()
    with torch.no_grad():
        ref = model(x, t, y, m).sample
        flex = set_attention_backend(copy.deepcopy(model), "flex")
        with pytest.warns(UserWarning, match="eager mode"):
            compile_model(flex, "blocks", backend="aot_eager")
        assert flex.attention_backend == "sdpa"
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        fast = set_attention_backend(fuse_qkv(copy.deepcopy(model)), "split")  # border windows come in ctx
        compile_model(fast, "blocks", backend="aot_eager")
        assert fast.attention_backend == "split"
        torch.testing.assert_close(fast(x, t, y, m).sample, ref, atol=1e-5, rtol=1e-5)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
    assert not torch._dynamo.utils.counters["graph_break"]
    torch._dynamo.reset()


# ------------------------------------------------------------------------------ layout, numerics, graphs
class _OpCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        self.counts[name] = self.counts.get(name, 0) + 1
        return func(*args, **(kwargs or {}))


def _ops(depth: int) -> dict[str, int]:
    model = PTDiT(tiny(depth=depth)).eval()
    x, t, y, m = inputs()
    with torch.no_grad(), _OpCounter() as counter:
        model(x, t, y, m)
    return counter.counts


def test_tokens_stay_window_major_across_the_network():
    """Layout permutes happen once per forward (patchify/unpatchify), never per block; no roll of the grid."""
    shallow, deep = _ops(1), _ops(3)
    assert shallow.get("permute", 0) == deep.get("permute", 0) > 0
    assert "roll" not in deep
    assert deep.get("index", 0) == 3 * 2  # the cyclic shift: one gather in, one gather out per block


@pytest.mark.parametrize("block", ["official", "lean"])
def test_masks_are_converted_once_per_forward_not_per_attention(block):
    """The text mask and the shifted-window mask reach attention as additive masks in q's dtype: no attention call
    converts a bool mask (SDPA would run `where` + two `scalar_tensor`s per call), with or without autocast."""
    x, t, y, m = inputs()
    for autocast in (False, True):
        model = PTDiT(tiny(block, depth=3)).eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            model(x, t, y, m)  # builds the cached window mask for this dtype
            with _OpCounter() as c:
                model(x, t, y, m)
        assert "where" not in c.counts and "scalar_tensor" not in c.counts, c.counts
        assert c.counts.get("masked_fill_", 0) == 1  # the text mask, once (the window mask is cached)


def test_bf16_forward_tracks_fp64_reference():
    model = model_with_live_branches(tiny())
    x, t, y, m = inputs()
    with torch.no_grad():
        ref = copy.deepcopy(model).double()(x.double(), t, y.double(), m).sample
        with bf16_numerics():
            out = optimize_for_inference(copy.deepcopy(model), dtype=torch.bfloat16)(
                x.bfloat16(), t, y.bfloat16(), m
            ).sample
    rel = (out.double() - ref).norm() / ref.norm()
    assert out.dtype == torch.bfloat16 and rel < 2e-2


def test_bf16_numerics_restores_the_flag():
    before = torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction
    with bf16_numerics():
        assert torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction is False
    assert torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction == before


def test_cuda_graph_forward_needs_cuda_tensors():
    x, t, y, m = inputs()
    with pytest.raises(ValueError, match="CUDA"):
        CUDAGraphForward(PTDiT(tiny()).eval(), x, t, y, m)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_cuda_graph_forward_matches_eager():
    model = model_with_live_branches(tiny()).cuda().eval()
    x, t, y, m = (v.cuda() for v in inputs())
    with torch.no_grad():
        ref = model(x, t, y, m).sample
    graph = CUDAGraphForward(model, x, t, y, m)
    torch.testing.assert_close(graph(x, t, y, m), ref, atol=1e-4, rtol=1e-4)
    x2, t2, y2, m2 = (v.cuda() for v in inputs(seed=5))
    with torch.no_grad():
        torch.testing.assert_close(
            graph(x2, t2, y2, m2).clone(), model(x2, t2, y2, m2).sample, atol=1e-4, rtol=1e-4
        )

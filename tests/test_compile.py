"""The compiled path: `compile_model(model, "model")` traces the whole forward as one graph (fullgraph=True: a
graph break is an error) for the released and lean blocks, images, video and padding, forward and backward; a
seen shape does not recompile; inductor's compiled model equals eager."""

import copy

import pytest
import torch
import torch._dynamo

from ptdit import PTDiT
from ptdit.fast import compile_blocks, compile_model, fuse_qkv, set_attention_backend
from tests.model_helpers import randomize_zero_init

FIELDS = dict(depth=2, hidden_size=32, num_heads=4, caption_channels=16)


def live(**kw) -> PTDiT:
    model = PTDiT(**{**FIELDS, **kw})
    return randomize_zero_init(model, std=0.2, generator=torch.Generator().manual_seed(0))


def inputs(F=1, H=8, W=8, seed=0, B=2):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(B, 4, F, H, W, generator=g),
        torch.rand(B, generator=g) * 1000,
        torch.randn(B, 5, 16, generator=g),
        torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]][:B]),
    )


CASES = [
    (dict(window=(1, 2, 2)), dict()),
    (dict(window=(1, 2, 2), block="lean", depth=3), dict()),
    (dict(window=(2, 2, 2)), dict(F=4)),
    (dict(window=(2, 2, 2), block="lean"), dict(F=4)),
    (dict(window=(1, 2, 2), pad=True), dict(H=10, W=6)),
    (dict(window=(2, 2, 2), pad=True, block="lean"), dict(F=3, H=10)),
    (dict(window=(1, 2, 2), attention="full"), dict()),
]
IDS = ["image", "image-lean", "video", "video-lean", "image-pad", "video-pad-lean", "full"]


@pytest.mark.parametrize("fields,shape", CASES, ids=IDS)
def test_whole_model_compiles_without_graph_breaks_forward_and_backward(fields, shape):
    torch._dynamo.reset()
    model = live(**fields).train()
    x, t, y, m = inputs(**shape)
    ref = model(x, t, y, m).sample
    ref.square().mean().backward()
    ref_grads = [p.grad.clone() for p in model.parameters()]
    compiled = compile_model(copy.deepcopy(model), "model", backend="aot_eager")  # fullgraph=True
    compiled.zero_grad()
    out = compiled(x, t, y, m).sample
    out.square().mean().backward()
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for g, r in zip((p.grad for p in compiled.parameters()), ref_grads):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-4)
    x2, t2, y2, m2 = inputs(seed=1, **shape)
    with torch._dynamo.config.patch(error_on_recompile=True):  # a seen shape, new values: no recompilation
        compiled(x2, t2, y2, m2).sample.sum().backward()
    torch._dynamo.reset()


def test_split_backend_fused_qkv_and_checkpointing_compile_whole():
    torch._dynamo.reset()
    model = live(window=(1, 2, 2), depth=2)
    x, t, y, m = inputs()
    ref = model(x, t, y, m).sample
    fast = set_attention_backend(fuse_qkv(copy.deepcopy(model)), "split").train()
    fast.enable_gradient_checkpointing()
    compile_model(fast, "model", backend="aot_eager")
    out = fast(x, t, y, m).sample
    out.sum().backward()
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert all(torch.isfinite(p.grad).all() for p in fast.parameters())
    torch._dynamo.reset()


def test_inductor_compiled_model_equals_eager():
    torch._dynamo.reset()
    model = live(window=(1, 2, 2), depth=1).eval()
    x, t, y, m = inputs()
    with torch.no_grad():
        ref = model(x, t, y, m).sample
        out = compile_model(copy.deepcopy(model), "model")(x, t, y, m).sample  # inductor: C++ kernels
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    torch._dynamo.reset()


def test_scope_is_checked_and_compile_blocks_is_deprecated():
    with pytest.raises(ValueError, match="compile scope 'graph'"):
        compile_model(live(window=(1, 2, 2)), "graph")
    with pytest.raises(ValueError, match="is not a PTDiT"):
        compile_model(torch.nn.Linear(2, 2))
    with pytest.warns(FutureWarning, match="compile_model"):
        compile_blocks(live(window=(1, 2, 2)), backend="aot_eager")

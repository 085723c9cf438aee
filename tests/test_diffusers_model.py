"""PTDiT as a diffusers model: construction by field name, config round trips, save/load layouts, dtypes and the
diffusers forward contract (tiny CPU configs, in the spirit of diffusers' own model tests)."""

import json
import warnings

import pytest
import torch
from diffusers.models.modeling_outputs import Transformer2DModelOutput

from ptdit import PTDiT, PTDiTConfig
from ptdit.io import save_safetensors_atomic
from tests.model_helpers import randomize_zero_init

FIELDS = dict(depth=2, hidden_size=32, num_heads=4, caption_channels=16, window=(1, 2, 2))


def inputs(B=2, F=1, H=8, W=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(
        hidden_states=torch.randn(B, 4, F, H, W, generator=g),
        timestep=torch.rand(B, generator=g) * 1000,
        encoder_hidden_states=torch.randn(B, 5, 16, generator=g),
        encoder_attention_mask=torch.tensor([[1, 1, 1, 0, 0]] * B),
    )


def live_model(**kw) -> PTDiT:
    return randomize_zero_init(PTDiT(**{**FIELDS, **kw}), generator=torch.Generator().manual_seed(0)).eval()


def test_fields_by_name_from_config_and_typed_config_agree():
    model = PTDiT(**FIELDS)
    assert model.ptdit_config == PTDiTConfig(**FIELDS)
    assert model.config.window == (1, 2, 2) and model.config.out_channels == 4
    again = PTDiT.from_config(model.config)
    assert again.ptdit_config == model.ptdit_config
    assert PTDiT(PTDiTConfig(**FIELDS)).ptdit_config == model.ptdit_config  # the 0.1 constructor
    with pytest.raises(ValueError, match=r"unknown PTDiTConfig field\(s\) \['num_layers'\]"):
        PTDiT.from_config({**model.config, "num_layers": 3})
    with pytest.raises(ValueError, match="divide by num_heads"):
        PTDiT(**{**FIELDS, "num_heads": 5})


def test_forward_contract_and_determinism():
    model = live_model()
    out = model(**inputs())
    assert isinstance(out, Transformer2DModelOutput) and out.sample.shape == (2, 4, 1, 8, 8)
    tup = model(**inputs(), return_dict=False)
    assert isinstance(tup, tuple) and len(tup) == 1 and torch.equal(tup[0], out.sample)
    assert torch.equal(model(**inputs()).sample, out.sample)  # deterministic
    assert out.sample.abs().sum() > 0


@pytest.mark.parametrize(
    "kw", [dict(), dict(block="lean"), dict(attention="full")], ids=["official", "lean", "full"]
)
def test_save_pretrained_from_pretrained_round_trip(tmp_path, kw):
    model = live_model(**kw)
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json",
        "diffusion_pytorch_model.safetensors",
    ]
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["_class_name"] == "PTDiT" and saved["window"] == [1, 2, 2]
    loaded = PTDiT.from_pretrained(tmp_path / "m")
    assert loaded.ptdit_config == model.ptdit_config and not loaded.training
    assert torch.equal(loaded(**inputs()).sample, model(**inputs()).sample)
    no_temp = [p for p in tmp_path.iterdir() if p.name != "m"]
    assert no_temp == []  # the temporary folder of the atomic save is gone


def test_subfolder_torch_dtype_and_overrides(tmp_path):
    model = live_model()
    model.save_pretrained(tmp_path / "pipe" / "transformer")
    loaded = PTDiT.from_pretrained(tmp_path / "pipe", subfolder="transformer", torch_dtype=torch.bfloat16)
    assert next(loaded.parameters()).dtype == torch.bfloat16
    out = loaded(**inputs()).sample
    assert out.dtype == torch.bfloat16
    assert (out.float() - model(**inputs()).sample).norm() / model(**inputs()).sample.norm() < 0.05
    bf16_saved = loaded.save_pretrained(tmp_path / "bf16")
    assert next(PTDiT.from_pretrained(bf16_saved).parameters()).dtype == torch.bfloat16  # kept as saved
    padded = PTDiT.from_pretrained(tmp_path / "pipe", subfolder="transformer", pad=True)
    assert padded.ptdit_config.pad and padded(**inputs(H=10, W=6)).sample.shape == (2, 4, 1, 10, 6)


def test_ptdit_01_folders_still_load_with_a_future_warning(tmp_path):
    model = live_model()
    old = tmp_path / "old"
    old.mkdir()
    save_safetensors_atomic(model.state_dict(), old / "model.safetensors")
    (old / "config.json").write_text(model.ptdit_config.to_json())  # no _class_name, as ptdit 0.1 wrote it
    with pytest.warns(FutureWarning, match="model.safetensors"):
        loaded = PTDiT.from_pretrained(old, dtype=torch.float64)  # 0.1's dtype= keyword
    assert next(loaded.parameters()).dtype == torch.float64
    torch.testing.assert_close(loaded(**inputs()).sample.float(), model(**inputs()).sample)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new layout loads without a warning
        model.save_pretrained(tmp_path / "new")
        PTDiT.from_pretrained(tmp_path / "new")


def test_bad_model_folders_are_one_clear_error(tmp_path):
    live_model().save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "hidden_size": 64}))
    with pytest.raises(ValueError, match=r"do not match the model config \(shape mismatches: "):
        PTDiT.from_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "depth_": 2}))
    with pytest.raises(ValueError, match=r"config.json: unknown PTDiTConfig field\(s\) \['depth_'\]"):
        PTDiT.from_pretrained(tmp_path / "m")
    (tmp_path / "m" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="diffusion_pytorch_model.safetensors is missing"):
        PTDiT.from_pretrained(tmp_path / "m")


def test_gradient_checkpointing_through_diffusers_gives_the_same_gradients():
    model = live_model().train()
    model(**inputs()).sample.square().mean().backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.enable_gradient_checkpointing()
    assert model.gradient_checkpointing and model.is_gradient_checkpointing
    model(**inputs()).sample.square().mean().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], rtol=1e-5, atol=1e-7, msg=n)
    model.disable_gradient_checkpointing()
    assert not model.gradient_checkpointing


def test_diffusers_class_attributes_name_real_modules():
    model = PTDiT(**FIELDS)
    classes = {type(m).__name__ for m in model.modules()}
    assert set(PTDiT._no_split_modules) >= {"PTBlock"} and "PTBlock" in classes
    assert set(PTDiT._repeated_blocks) & classes
    names = [n for n, _ in model.named_modules()]
    for pattern in PTDiT._skip_layerwise_casting_patterns:
        assert any(pattern in n for n in names), pattern


def test_layerwise_casting_keeps_the_output_close():
    model = live_model()
    ref = model(**inputs()).sample
    model.enable_layerwise_casting(storage_dtype=torch.bfloat16, compute_dtype=torch.float32)
    assert model.blocks[0].mlp.fc1.weight.dtype == torch.bfloat16  # stored in bf16
    assert model.x_embedder.proj.weight.dtype == torch.float32  # skipped pattern
    out = model(**inputs()).sample
    assert (out - ref).norm() / ref.norm() < 0.05

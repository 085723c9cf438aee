"""LoRA: diffusers' PEFT integration on PTDiT, `ptdit train --lora.rank R` (adapter-only, exact resume, diffusers'
LoRA files), and the new colour of the Shapes image world that the README's LoRA example teaches."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("peft")
from peft import LoraConfig  # noqa: E402
from peft.tuners.lora import LoraLayer  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from ptdit import PTDiT  # noqa: E402
from ptdit.cli import main as ptdit_main  # noqa: E402
from ptdit.io import read_safetensors  # noqa: E402
from ptdit.training import TrainConfig, train  # noqa: E402
from ptdit.training import lora as lora_mod  # noqa: E402
from ptdit.training.config import LORA_TARGETS, LoraSection  # noqa: E402
from ptdit.training.logs import read_log  # noqa: E402
from ptdit.training.loop import Trainer  # noqa: E402
from ptdit.worlds import shapes_image  # noqa: E402
from ptdit.worlds.judges import corrupt, eval_prompts, judge  # noqa: E402
from ptdit.worlds.shapes import ALL_COLORS, COLORS, NEW_COLORS, item_rng  # noqa: E402

TESTS = Path(__file__).resolve().parent
TINY = {
    "depth": 1,
    "hidden_size": 32,
    "num_heads": 2,
    "window": [1, 2, 2],
    "in_channels": 3,
    "caption_channels": 16,
}


@pytest.fixture(autouse=True)
def _seed_and_path(monkeypatch):
    torch.manual_seed(0)
    monkeypatch.syspath_prepend(str(TESTS))


def tiny_model(seed: int = 0) -> PTDiT:
    torch.manual_seed(seed)
    model = PTDiT(**TINY).eval()
    with torch.no_grad():  # a base that outputs something (a fresh PTDiT's zero-initialised layers output 0)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def inputs(seed: int = 1) -> tuple[torch.Tensor, ...]:
    """x (2, 3, 1, 8, 8), t (2,), emb (2, 4, 16), mask (2, 4)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 1, 8, 8, generator=g)
    emb = torch.randn(2, 4, 16, generator=g)
    return x, torch.tensor([100.0, 700.0]), emb, torch.ones(2, 4, dtype=torch.bool)


def out(model: PTDiT) -> torch.Tensor:
    with torch.no_grad():
        return model(*inputs(), return_dict=False)[0]


def perturb_adapter(model: PTDiT, name: str = "default", seed: int = 3) -> None:
    """Non-zero B matrices (a fresh adapter's B = 0 leaves the output unchanged)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if f"lora_B.{name}." in n:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


# ---------------------------------------------------------------------- the model: diffusers' PEFT integration
def test_lora_file_name_is_diffusers_name():
    from diffusers.loaders.lora_base import LORA_WEIGHT_NAME_SAFE

    assert lora_mod.LORA_WEIGHTS_NAME == LORA_WEIGHT_NAME_SAFE


def test_add_adapter_on_attention_projections_and_mlp_trains_only_the_adapter():
    model = tiny_model()
    n = lora_mod.add_lora(model, LoraSection(rank=4))
    wrapped = {name for name, m in model.named_modules() if isinstance(m, LoraLayer)}
    linears = {
        name
        for name, m in tiny_model().named_modules()
        if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in LORA_TARGETS
    }
    # every attention module's to_q/to_k/to_v/to_out and the MLP's fc1/fc2, nothing else
    assert wrapped == linears and n == len(linears) == 5 * 4 + 2
    assert {name.rsplit(".", 1)[-1] for name in wrapped} == set(LORA_TARGETS)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in name or ".lora_B." in name for name in trainable)
    assert len(trainable) == 2 * n
    a = dict(model.named_parameters())["blocks.0.mlp.fc1.lora_A.default.weight"]
    assert a.shape == (4, 32)


def test_a_fresh_adapter_is_the_base_and_set_adapters_disable_switch_it():
    model = tiny_model()
    base = out(model)
    model.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=list(LORA_TARGETS)), adapter_name="a")
    assert torch.equal(out(model), base)  # B = 0
    perturb_adapter(model, "a")
    adapted = out(model)
    assert (adapted - base).abs().max() > 1e-3
    model.disable_adapters()
    assert torch.allclose(out(model), base, atol=1e-6)
    model.enable_adapters()
    assert torch.allclose(out(model), adapted, atol=1e-6)
    model.add_adapter(LoraConfig(r=2, lora_alpha=2, target_modules=["to_k", "to_v"]), adapter_name="b")
    perturb_adapter(model, "b", seed=4)
    model.set_adapters("b")
    only_b = out(model)
    assert model.active_adapters() == ["b"] and not torch.allclose(only_b, adapted, atol=1e-4)
    model.set_adapters(["a"], weights=[0.0])  # scale 0: the base again
    assert torch.allclose(out(model), base, atol=1e-6)
    model.set_adapters(["a"], weights=[1.0])
    assert torch.allclose(out(model), adapted, atol=1e-6)


def test_save_lora_adapter_and_load_lora_adapter_round_trip(tmp_path):
    model = tiny_model()
    model.add_adapter(LoraConfig(r=4, lora_alpha=8, target_modules=list(LORA_TARGETS)))
    perturb_adapter(model)
    expected = out(model)
    model.save_lora_adapter(tmp_path / "plain")
    fresh = tiny_model()
    fresh.load_lora_adapter(str(tmp_path / "plain"), prefix=None, use_safetensors=True)
    assert torch.allclose(out(fresh), expected, atol=1e-6)
    # the trainer's files: diffusers' pipeline layout (transformer.-prefixed keys, the LoraConfig as metadata)
    state = lora_mod.adapter_state(model)
    lora_mod.write_lora_file(tmp_path / "pipe", state, model.peft_config["default"])
    keys = list(read_safetensors(tmp_path / "pipe" / "pytorch_lora_weights.safetensors"))
    assert keys and all(k.startswith("transformer.") and ".lora_" in k for k in keys)
    fresh = tiny_model()
    fresh.load_lora_adapter(
        str(tmp_path / "pipe"), prefix="transformer", use_safetensors=True
    )  # alpha 8 read from the metadata
    assert torch.allclose(out(fresh), expected, atol=1e-6)
    assert torch.equal(
        lora_mod.read_lora_file(tmp_path / "pipe" / "pytorch_lora_weights.safetensors")[keys[0][12:]],
        state[keys[0][12:]],
    )


# ---------------------------------------------------------------------- ptdit train --lora.rank R
def lora_config(run_dir: Path, base: Path, steps: int = 4, **sections) -> dict:
    d = {
        "data": {"factory": "train_fixtures:make_dataset", "options": {"n": 32, "size": 8}, "size": 8},
        "text": {"encoder": "random:16", "max_length": 4},
        "autoencoder": {"spec": "identity"},
        "train": {
            "steps": steps,
            "batch_size": 4,
            "lr": 1e-2,
            "warmup_steps": 1,
            "ema_decay": 0.9,
            "threads": 1,
        },
        "checkpoint": {"dir": str(run_dir), "every": 2, "keep_last": 0},
        "log": {"every": 1, "progress": False, "plot_every": 0},
        "init": {"from": str(base)},
        "lora": {"rank": 4},
    }
    for name, values in sections.items():
        d.setdefault(name, {}).update(values)
    return d


@pytest.fixture
def base_dir(tmp_path) -> Path:
    model = tiny_model()
    model.save_pretrained(tmp_path / "base")
    return tmp_path / "base"


def test_lora_run_trains_the_adapter_only_and_resumes_bit_for_bit(tmp_path, base_dir):
    base_weights = read_safetensors(base_dir / "diffusion_pytorch_model.safetensors")
    straight = train(TrainConfig.from_dict(lora_config(tmp_path / "a", base_dir, train={"bf16": True})))
    # the same run through the CLI, `--lora.rank 4` on the command line, stopped after 2 steps, then --resume
    d = lora_config(tmp_path / "b", base_dir, train={"bf16": True})
    del d["lora"]
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(d))
    assert ptdit_main(["train", str(path), "--lora.rank", "4", "--train.steps", "2", "--no-progress"]) == 0
    assert ptdit_main(["train", str(path), "--lora.rank", "4", "--resume", "--no-progress"]) == 0
    losses = [[r["loss"] for r in read_log(tmp_path / run / "train_log.jsonl")] for run in ("a", "b")]
    assert losses[0] == losses[1] and len(losses[0]) == 4
    for name in ("pytorch_lora_weights.safetensors", "ema_pytorch_lora_weights.safetensors"):
        a = read_safetensors(tmp_path / "a" / "step_000004" / name)
        b = read_safetensors(tmp_path / "b" / "step_000004" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ckpt = straight.checkpoint
    assert not (ckpt / "diffusion_pytorch_model.safetensors").exists()  # no base weights in a LoRA checkpoint
    raw = read_safetensors(ckpt / "pytorch_lora_weights.safetensors")
    assert any(k.endswith("lora_B.weight") and v.abs().max() > 0 for k, v in raw.items())  # it trained
    note = json.loads((straight.model_dir / "lora_base.json").read_text())
    assert note["base_model"] == str(base_dir) and note["rank"] == 4 and note["adapter"] == "ema"
    # the export: the EMA adapter in diffusers' layout, loadable onto the base with load_lora_adapter
    exported = read_safetensors(straight.model_dir / "pytorch_lora_weights.safetensors")
    ema = read_safetensors(ckpt / "ema_pytorch_lora_weights.safetensors")
    assert exported.keys() == ema.keys() and all(torch.equal(exported[k], ema[k]) for k in ema)
    model = PTDiT.from_pretrained(base_dir)
    assert all(torch.equal(v, base_weights[k]) for k, v in model.state_dict().items())
    model.load_lora_adapter(
        str(straight.model_dir), prefix="transformer", adapter_name="default", use_safetensors=True
    )
    loaded = lora_mod.adapter_state(model)
    assert all(torch.equal(loaded[k], exported["transformer." + k]) for k in loaded)


def test_lora_trainer_optimizes_and_averages_only_the_adapter(tmp_path, base_dir):
    trainer = Trainer(TrainConfig.from_dict(lora_config(tmp_path / "r", base_dir, steps=1)))
    params = [p for g in trainer.optimizer.param_groups for p in g["params"]]
    names = {id(p): n for n, p in trainer.raw.named_parameters()}
    assert params and all(".lora_" in names[id(p)] for p in params)
    assert set(trainer.ema.shadow) == {names[id(p)] for p in params}
    before = {k: v.clone() for k, v in trainer.raw.state_dict().items() if ".lora_" not in k}
    trainer.run(progress=False)
    after = trainer.raw.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())  # the base is frozen


def test_lora_resume_refuses_another_base_and_config_errors(tmp_path, base_dir):
    train(TrainConfig.from_dict(lora_config(tmp_path / "r", base_dir, steps=2)))
    other = tiny_model(seed=5)
    other.save_pretrained(tmp_path / "other")
    d = lora_config(tmp_path / "r", tmp_path / "other", steps=3, checkpoint={"resume": "auto"})
    with pytest.raises(ValueError, match="sha256"):
        train(TrainConfig.from_dict(d))
    d = lora_config(tmp_path / "x", base_dir)
    with pytest.raises(ValueError, match="set init.from"):
        TrainConfig.from_dict({**copy.deepcopy(d), "init": {}})
    with pytest.raises(ValueError, match=r"lora.targets \['to_qq'\] match no linear"):
        train(
            TrainConfig.from_dict(
                lora_config(tmp_path / "y", base_dir, lora={"rank": 2, "targets": ["to_qq"]})
            )
        )
    with pytest.raises(ValueError, match="holds LoRA adapter weights, not a model"):
        train(
            TrainConfig.from_dict(
                lora_config(
                    tmp_path / "z",
                    tmp_path / "r" / "step_000002",
                    lora={"rank": 0},
                    model={"depth": 1, "hidden_size": 32, "num_heads": 2, "window": [1, 2, 2]},
                )
            )
        )


# ---------------------------------------------------------------------- the new colour
def test_default_data_and_eval_never_draw_the_new_colour_and_asked_data_does():
    assert NEW_COLORS == ("orange",) and set(COLORS).isdisjoint(NEW_COLORS) and len(COLORS) == 8
    for split in ("train", "heldout"):
        ds = shapes_image.make_dataset(split=split, length=300, seed=0)
        colours = {o["color"] for i in range(300) for o in ds.spec_and_caption(i)[0]["objects"]}
        assert colours == set(COLORS)
        assert all("orange" not in p for p, _ in eval_prompts("shapes-image", 50, split=split))
    ds = shapes_image.make_dataset(length=300, seed=0, new_color_share=0.4)
    share = np.mean(
        [o["color"] == "orange" for i in range(300) for o in ds.spec_and_caption(i)[0]["objects"]]
    )
    assert 0.3 < share < 0.5
    new = eval_prompts("shapes-image", 40, colors="new")
    assert all(any(o["color"] == "orange" for o in spec["objects"]) for _, spec in new)
    assert any(p.startswith("an orange ") for p, _ in new) and not any("a orange" in p for p, _ in new)
    assert shapes_image.parse_prompt("an orange circle above a red square")["objects"][0]["color"] == "orange"
    with pytest.raises(ValueError, match="new_color_share is a probability"):
        shapes_image.make_dataset(new_color_share=1.5)
    with pytest.raises(ValueError, match="colors='new' is for shapes-image"):
        eval_prompts("shapes-video", 2, colors="new")


def test_the_judge_reads_the_new_colour_on_ground_truth():
    ds = shapes_image.make_dataset(length=120, seed=3, new_color_share=0.5)
    passed, orange_objects, wrong = 0, 0, 0
    for i in range(120):
        spec, caption = ds.spec_and_caption(i)
        rng = item_rng("shapes-image", 11, "train", i)
        pixels = corrupt(ds.render(spec), rng, noise=0.1, blur=bool(i % 2))
        passed += judge("shapes-image", pixels, caption).ok
        for k, o in enumerate(spec["objects"]):
            if o["color"] != "orange":
                continue
            orange_objects += 1
            for neighbour in ("red", "yellow"):  # orange's nearest old colours: an orange object is not them
                other = copy.deepcopy(spec)
                other["objects"][k]["color"] = neighbour
                if any((p["color"], p["shape"]) == (neighbour, o["shape"]) for p in spec["objects"]):
                    continue
                wrong += judge("shapes-image", pixels, other).criteria["color"] is False
    assert passed == 120 and orange_objects > 40
    assert wrong >= 2 * orange_objects - 4  # (a neighbour pair that would repeat an object is skipped)
    red = {"world": "shapes-image", "height": 32, "width": 32, "relation": None,
           "objects": [{"shape": "square", "color": "red", "size": "medium", "extent": 10.0, "x": 16.0, "y": 16.0}]}  # fmt: skip
    assert judge("shapes-image", shapes_image.render(red), "a red square").ok
    assert judge("shapes-image", shapes_image.render(red), "an orange square").criteria["color"] is False
    assert set(ALL_COLORS) == set(COLORS) | {"orange"}


# ---------------------------------------------------------------------- ptdit generate --lora
def test_generate_with_a_lora_folder_and_its_scale(tmp_path, capsys):
    """`ptdit generate --lora DIR` draws with the adapter; --lora-scale 0 draws the base; bad paths are one line."""
    import PIL.Image

    from ptdit.pipeline_config import bundled_model_dir

    model = PTDiT.from_pretrained(bundled_model_dir("image"))
    model.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_v", "fc1"]), adapter_name="lora"
    )
    perturb_adapter(model, "lora")
    model.save_lora_adapter(
        str(tmp_path / "bare"), adapter_name="lora", weight_name=lora_mod.LORA_WEIGHTS_NAME
    )
    bare = read_safetensors(tmp_path / "bare" / lora_mod.LORA_WEIGHTS_NAME)  # PEFT's keys, no "transformer."
    (tmp_path / "lora").mkdir()
    save_file(
        {f"transformer.{k}": v for k, v in bare.items()}, str(tmp_path / "lora" / lora_mod.LORA_WEIGHTS_NAME)
    )

    def image(*extra: str) -> np.ndarray:
        out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
        argv = ["generate", "a red circle", "--steps", "2", "--out", str(out), "--quiet", "--upscale", "1",
                "--device", "cpu", *extra]  # fmt: skip
        assert ptdit_main(argv) == 0
        manifest = json.loads((out / "manifest.json").read_text())
        return np.asarray(PIL.Image.open(out / manifest["outputs"][0]["files"][0]))

    base, adapted = image(), image("--lora", str(tmp_path / "lora"))
    assert not np.array_equal(base, adapted)
    assert np.array_equal(image("--lora", str(tmp_path / "lora"), "--lora-scale", "0"), base)
    manifest = json.loads((tmp_path / "out1" / "manifest.json").read_text())
    assert (
        manifest["settings"]["lora"] == str(tmp_path / "lora") and manifest["settings"]["lora_scale"] == 1.0
    )
    capsys.readouterr()
    assert ptdit_main(["generate", "x", "--lora", str(tmp_path), "--out", str(tmp_path / "bad")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no pytorch_lora_weights.safetensors in that folder" in err[0], err
    assert not (tmp_path / "bad").exists()
    assert (
        ptdit_main(["generate", "x", "--lora", str(tmp_path / "bare"), "--out", str(tmp_path / "bad")]) == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert "holds no weights for this model's transformer" in err[-1] and not (tmp_path / "bad").exists()

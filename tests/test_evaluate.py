"""`ptdit eval`: scores, JSON and grid for a Shapes world (tiny untrained model, so only the plumbing is checked)."""

import json

import pytest
import torch

from ptdit import PTDiT, PTDiTConfig
from ptdit.cli import main
from ptdit.pipeline_config import PipelineDefaults


@pytest.mark.parametrize(
    "world,task,frames,window",
    [("shapes-image", "image", 1, (1, 4, 4)), ("shapes-video", "video", 8, (4, 4, 4)),
     ("shapes-multiview", "multiview", 8, (4, 4, 4))],
)  # fmt: skip
def test_eval_writes_scores_and_grid(tmp_path, capsys, world, task, frames, window):
    torch.manual_seed(0)
    cfg = PTDiTConfig(depth=1, hidden_size=32, num_heads=2, in_channels=3, out_channels=3, caption_channels=16,
                      window=window)  # fmt: skip
    PTDiT(cfg).save_pretrained(tmp_path / "m")
    PipelineDefaults(task=task, text_encoder="random:16", autoencoder="identity", height=32, width=32, frames=frames,
                     steps=1, cfg=2.0, world=world).write(tmp_path / "m")  # fmt: skip
    out = tmp_path / "out"
    assert main(["eval", "--model", str(tmp_path / "m"), "--n", "3", "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / f"eval_{world}.json").read_text())
    assert report["world"] == world and len(report["samples"]) == 3
    if world == "shapes-video":  # what the judge read is kept per sample: each object's motion
        for sample in report["samples"]:
            n_objects = 2 if " and " in sample["prompt"] or " while " in sample["prompt"] else 1
            assert len(sample["judged"]["motions"]) == n_objects
    ((key, value),) = report["headline"].items()
    headline = {"shapes-image": "accuracy", "shapes-video": "motion", "shapes-multiview": "consistency"}
    assert key == headline[world]
    # the headline is the share of the samples asked about it that the judge passed, recounted per sample
    asked = [s["ok" if key == "accuracy" else key] for s in report["samples"]]
    asked = [v for v in asked if v is not None]
    assert asked and value == report["scores"][key] == sum(asked) / len(asked)
    assert (out / f"eval_{world}.png").is_file()
    printed = capsys.readouterr().out
    assert (
        world in printed and f"wrote {out / f'eval_{world}.json'} and {out / f'eval_{world}.png'}" in printed
    )


def test_eval_train_split_scores_training_compositions(tmp_path, capsys):
    from ptdit.worlds.judges import eval_prompts
    from ptdit.worlds.shapes_image import heldout_compositions, make_dataset

    cfg = PTDiTConfig(depth=1, hidden_size=32, num_heads=2, in_channels=3, out_channels=3, caption_channels=16,
                      window=(1, 4, 4))  # fmt: skip
    PTDiT(cfg).save_pretrained(tmp_path / "m")
    PipelineDefaults(task="image", text_encoder="random:16", autoencoder="identity", height=32, width=32, frames=1,
                     steps=1, cfg=2.0, world="shapes-image").write(tmp_path / "m")  # fmt: skip
    out = tmp_path / "out"
    argv = [
        "eval",
        "--model",
        str(tmp_path / "m"),
        "--n",
        "3",
        "--out",
        str(out),
        "--quiet",
        "--split",
        "train",
    ]
    assert main(argv) == 0
    report = json.loads((out / "eval_shapes-image_train.json").read_text())
    assert report["settings"]["split"] == "train" and not (out / "eval_shapes-image.json").exists()
    assert [s["prompt"] for s in report["samples"]] == [
        p for p, _ in eval_prompts("shapes-image", 3, split="train")
    ]
    printed = capsys.readouterr().out
    assert "train prompts" in printed and str(out / "eval_shapes-image_train.json") in printed
    train = make_dataset(split="train", length=20, seed=0)
    assert not any(heldout_compositions(train.spec_and_caption(i)[0]) for i in range(20))
    assert main(["eval", "--model", str(tmp_path / "m"), "--world", "fashion-mnist", "--split", "train"]) != 0
    assert "--split train is for the Shapes worlds" in capsys.readouterr().err


def test_eval_unknown_world_is_clear(tmp_path, capsys):
    PTDiT(PTDiTConfig(depth=1, hidden_size=32, num_heads=2, caption_channels=16)).save_pretrained(
        tmp_path / "m"
    )
    assert main(["eval", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "o")]) != 0
    assert "unknown world" in capsys.readouterr().err


def test_eval_fashion_mnist(tmp_path):
    from ptdit.worlds.fashion_mnist import CLASS_NAMES, dataset_available, load_split, to_pixels
    from ptdit.worlds.fmnist_nets import fid

    if not dataset_available():
        pytest.skip("Fashion-MNIST is not installed: apt-get install dataset-fashion-mnist")
    torch.manual_seed(0)
    cfg = PTDiTConfig(depth=1, hidden_size=32, num_heads=2, in_channels=1, out_channels=1, caption_channels=16,
                      window=(1, 4, 4))  # fmt: skip
    PTDiT(cfg).save_pretrained(tmp_path / "m")
    PipelineDefaults(task="image", text_encoder="random:16", autoencoder="identity:1", height=32, width=32,
                     steps=1, world="fashion-mnist").write(tmp_path / "m")  # fmt: skip
    assert main(["eval", "--model", str(tmp_path / "m"), "--n", "20", "--out", str(tmp_path), "--quiet"]) == 0
    report = json.loads((tmp_path / "eval_fashion-mnist.json").read_text())
    scores, samples = report["scores"], report["samples"]
    assert [s["label"] for s in samples] == [i % 10 for i in range(20)]  # two prompts per class
    assert all(s["ok"] == (s["predicted"] == s["label"]) for s in samples)
    assert scores["classifier_accuracy"] == sum(s["ok"] for s in samples) / 20
    per_class = {n: sum(s["ok"] for s in samples if s["label"] == c) / 2 for c, n in enumerate(CLASS_NAMES)}
    assert scores["per_class_accuracy"] == per_class
    # an untrained model draws noise: farther from the test images than other test images are
    real = to_pixels(load_split("test")[0][:40], 32)[:, None]
    assert scores["fid"] > fid(real[:20], real[20:40])

"""`ptdit generate`: files, manifest, defaults from pipeline.json, and clear errors."""

import json

import numpy as np
import torch
from PIL import Image

from ptdit import PTDiT, PTDiTConfig
from ptdit.cli import main
from ptdit.pipeline import Pipeline, PipelineDefaults


def make_model_dir(path, task="image", window=(1, 2, 2), frames=1):
    torch.manual_seed(0)
    cfg = PTDiTConfig(depth=1, hidden_size=32, num_heads=2, in_channels=3, out_channels=3, caption_channels=16,
                      window=window)  # fmt: skip
    PTDiT(cfg).save_pretrained(path)
    PipelineDefaults(task=task, text_encoder="random:16", autoencoder="identity", height=16, width=16, frames=frames,
                     steps=2, cfg=3.0).write(path)  # fmt: skip
    return path


def run(argv):
    return main(["generate", "--quiet", *argv])


def test_image_files_and_manifest(tmp_path):
    model = make_model_dir(tmp_path / "m")
    out = tmp_path / "out"
    assert (
        run(["a red circle", "a blue square", "--model", str(model), "--out", str(out), "--seed", "7"]) == 0
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert [o["seed"] for o in manifest["outputs"]] == [7, 8]
    assert manifest["settings"]["steps"] == 2 and manifest["settings"]["cfg"] == 3.0
    files = [out / f for o in manifest["outputs"] for f in o["files"]]
    assert all(f.suffix == ".png" and f.is_file() for f in files)
    assert Image.open(files[0]).size == (256, 256)  # 16 px enlarged to at least 256 for viewing
    # the same seed gives the same image, whatever the batch
    out2 = tmp_path / "out2"
    run(["a blue square", "--model", str(model), "--out", str(out2), "--seed", "8", "--upscale", "1"])
    run(["a red circle", "a blue square", "--model", str(model), "--out", str(out), "--seed", "7", "--upscale", "1",
         "--batch-size", "1"])  # fmt: skip
    a = Image.open(out / json.loads((out / "manifest.json").read_text())["outputs"][1]["files"][0])
    b = Image.open(out2 / json.loads((out2 / "manifest.json").read_text())["outputs"][0]["files"][0])
    assert (np.asarray(a) == np.asarray(b)).all()


def test_video_and_multiview_outputs(tmp_path):
    video = make_model_dir(tmp_path / "v", task="video", window=(2, 2, 2), frames=4)
    run(["a dot moving right", "--model", str(video), "--out", str(tmp_path / "ov")])
    files = json.loads((tmp_path / "ov" / "manifest.json").read_text())["outputs"][0]["files"]
    assert sorted(f.rsplit(".", 1)[1] for f in files) == ["gif", "mp4"]
    assert Image.open(tmp_path / "ov" / files[1]).n_frames == 4
    mv = make_model_dir(tmp_path / "mv", task="multiview", window=(1, 2, 2), frames=8)
    run(["a yellow cube", "--model", str(mv), "--out", str(tmp_path / "om"), "--views", "4"])
    files = json.loads((tmp_path / "om" / "manifest.json").read_text())["outputs"][0]["files"]
    assert len(files) == 5 and files[-1].endswith("_grid.png")


def test_pipeline_api_returns_pixels(tmp_path):
    pipe = Pipeline.from_pretrained(make_model_dir(tmp_path / "m"), device="cpu")
    out = pipe(["a red circle"], [0], 16, 16, steps=2)
    assert out[0].shape == (3, 1, 16, 16) and torch.isfinite(out[0]).all()


def test_bad_inputs_are_clear_errors(tmp_path, capsys):
    model = make_model_dir(tmp_path / "m")
    out = tmp_path / "out"
    (tmp_path / "empty.txt").write_text("\n  \n")
    cases = [
        (["x", "--model", str(tmp_path / "missing")], "does not exist"),
        (["--prompts", str(tmp_path / "empty.txt"), "--model", str(model)], "has no prompts"),
        (["--model", str(model)], "no prompt given"),
        (["x", "--model", str(model), "--height", "18"], "does not fit this model"),
        (["x", "--model", str(model), "--task", "video", "--frames", "0"], "must be >= 1"),
    ]
    for argv, message in cases:
        assert run([*argv, "--out", str(out)]) == 1
        assert message in capsys.readouterr().err
    assert not out.exists()  # nothing written by a failed run
    assert run(["x", "--model", str(model), "--height", "18", "--pad", "--out", str(out)]) == 0
    cfg = json.loads((model / "config.json").read_text())
    cfg["hidden_size"] = 48
    (model / "config.json").write_text(json.dumps(cfg))
    assert run(["x", "--model", str(model), "--out", str(out)]) == 1
    assert "do not match the model config" in capsys.readouterr().err


def test_one_scheduler_serves_every_batch(tmp_path):
    """A multistep diffusers scheduler is reused across batches: batch 1 and batch 2 give the same pixels."""
    pipe = Pipeline.from_pretrained(make_model_dir(tmp_path / "m"), device="cpu")
    prompts, seeds = ["a red circle", "a blue square"], [3, 4]
    one = pipe(prompts, seeds, 16, 16, steps=3, sampler="flow-dpm", batch_size=1)
    two = pipe(prompts, seeds, 16, 16, steps=3, sampler="flow-dpm", batch_size=2)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(one, two))

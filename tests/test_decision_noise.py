"""benchmarks/decision_noise.py: renoised ground truth sampled back and judged; training mass above a level."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from ptdit import PTDiT, PTDiTConfig
from ptdit.flow import sample_training_tau
from ptdit.pipeline_config import PipelineDefaults

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("decision_noise", REPO / "benchmarks" / "decision_noise.py")
decision_noise = importlib.util.module_from_spec(spec)
spec.loader.exec_module(decision_noise)


@pytest.mark.parametrize("config", ["configs/shapes_video.yaml", "configs/shapes_image.yaml"])
def test_training_mass_matches_the_trainers_draws(config):
    from ptdit.training.config import TrainConfig

    t = TrainConfig.from_yaml(REPO / config).train
    ratio = t.timestep_shift(32, 32, 8)
    draws = sample_training_tau(
        200_000, ratio, torch.Generator().manual_seed(0), distribution=t.timestep_distribution,
        loc=t.logit_mean, scale=t.logit_std,
    )  # fmt: skip
    taus = [0.95, 0.8, 0.5, 0.2]
    mass = decision_noise.training_mass_above(str(REPO / config), taus, 32, 32, 8)
    for tau0, m in zip(taus, mass):
        assert m == pytest.approx((draws > tau0).double().mean().item(), abs=3e-3)
    assert decision_noise.training_mass_above(None, taus, 32, 32, 8) is None


def _zero_output_model(path: Path) -> None:
    """A tiny image pipeline whose zeroed output layer predicts v = 0 (a sample stays where it starts)."""
    torch.manual_seed(0)
    cfg = PTDiTConfig(depth=1, hidden_size=32, num_heads=2, in_channels=3, out_channels=3, caption_channels=16,
                      window=(1, 4, 4))  # fmt: skip
    model = PTDiT(cfg)
    with torch.no_grad():
        for p in model.final_layer.parameters():
            p.zero_()
    model.save_pretrained(path)
    PipelineDefaults(task="image", text_encoder="random:16", autoencoder="identity", height=32, width=32,
                     frames=1, steps=2, cfg=2.0, world="shapes-image").write(path)  # fmt: skip


def test_a_model_that_predicts_nothing_passes_only_from_low_noise(tmp_path):
    """With a zeroed output layer (v = 0) a sample is its start: pure noise at tau0 = 1 (judged wrong) and
    0.95 x0 + 0.05 eps at tau0 = 0.05 (judged right)."""
    _zero_output_model(tmp_path / "m")
    out = tmp_path / "dn"
    argv = ["--world", "shapes-image", "--model", str(tmp_path / "m"), "--n", "6", "--taus", "1,0.05",
            "--steps", "4", "--out", str(out)]  # fmt: skip
    assert decision_noise.main(argv) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    (rows,) = [m["rows"] for m in report["models"]]
    assert [r["tau0"] for r in rows] == [1.0, 0.05] and [r["steps"] for r in rows] == [4, 1]
    assert rows[0]["ok"] == 0.0 and rows[1]["ok"] == 1.0
    assert rows[1]["train_mass_above"] is None and "| 0.05 | 1 |" in out.with_suffix(".md").read_text()
    with pytest.raises(SystemExit):
        decision_noise.main(["--world", "shapes-image", "--model", "m", "--taus", "1.5"])


def test_relation_probe_reads_the_side_from_the_prediction(tmp_path):
    """benchmarks/relation_probe.py: with v = 0 the x0 prediction is x_tau, so near tau = 0 it is the scene itself
    (A always on the named side), and a picture with A's colour on the wrong side fails."""
    spec_ = importlib.util.spec_from_file_location(
        "relation_probe", REPO / "benchmarks" / "relation_probe.py"
    )
    relation_probe = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(relation_probe)
    _zero_output_model(tmp_path / "m")
    out = tmp_path / "rp"
    argv = ["--model", str(tmp_path / "m"), "--n", "8", "--seeds", "2", "--taus", "0.02", "--out", str(out)]
    assert relation_probe.main(argv) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["models"][0]["rates"] == {"0.02": 1.0}
    scene = relation_probe.two_colour_scenes("train", 1)[0]
    image = scene["pixels"][:, 0].permute(1, 2, 0).numpy()
    assert relation_probe.on_named_side(image, scene["spec"])
    flip = image[:, ::-1] if scene["spec"]["relation"] in ("left", "right") else image[::-1]
    assert not relation_probe.on_named_side(flip, scene["spec"])

"""scripts/bundle_models.py: the training record written next to each bundled model's scores."""

import importlib.util
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bundle_models", REPO / "scripts" / "bundle_models.py")
bundle_models = importlib.util.module_from_spec(spec)
sys.modules["bundle_models"] = bundle_models
spec.loader.exec_module(bundle_models)


def _run(tmp_path: Path, init: str | None) -> Path:
    run = tmp_path / "run"
    (run / "step_000002").mkdir(parents=True)
    rows = [{"step": s, "loss": 1.0 / s, "seconds": 0.5} for s in (1, 2, 3)]
    (run / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = "train:\n  steps: 3\n" + (f"init:\n  from: {init}\n  weights: ema\n" if init else "")
    (run / "step_000002" / "train_config.yaml").write_text(cfg)
    return run


def test_training_cost_counts_up_to_the_bundled_step_and_names_the_cpu(tmp_path):
    cost = bundle_models.training_cost(_run(tmp_path, None), 2)
    assert cost["steps"] == 2 and cost["step_seconds"] == 1.0 and cost["final_loss"] == 0.5
    assert cost["cpu"] and "init" not in cost and "machine" not in cost


def test_training_cost_of_a_later_stage_names_its_start(tmp_path):
    cost = bundle_models.training_cost(_run(tmp_path, "ptdit/assets/models/shapes-image"), 2)
    assert cost["init"] == {"from": "ptdit/assets/models/shapes-image", "weights": "ema"}


def test_a_later_stage_keeps_the_record_of_the_stage_it_started_from():
    model_dir = REPO / "ptdit" / "assets" / "models" / "shapes-image"
    first = {"run": "runs/shapes_image", "steps": 100, "step_seconds": 50.0}
    for start in ("ptdit/assets/models/shapes-image", "runs/shapes_image"):
        later = {"steps": 40, "init": {"from": start, "weights": "ema"}}
        bundle_models.link_stages(later, first, model_dir)
        assert later["init"]["training"] == first
    unrelated = {"steps": 40, "init": {"from": "runs/elsewhere", "weights": "ema"}}
    bundle_models.link_stages(unrelated, first, model_dir)
    assert "training" not in unrelated["init"]
    fresh = {"steps": 40}
    bundle_models.link_stages(fresh, first, model_dir)
    assert fresh == {"steps": 40}
    # bundling the same later stage again keeps its earlier stage once, never itself
    second = {"run": "runs/stage2/shapes_image", "steps": 40}
    second["init"] = {"from": "ptdit/assets/models/shapes-image", "weights": "ema", "training": first}
    again = {
        "run": "runs/stage2/shapes_image",
        "steps": 40,
        "init": {"from": "ptdit/assets/models/shapes-image"},
    }
    bundle_models.link_stages(again, second, model_dir)
    assert again["init"]["training"] == first


def test_a_stage_records_its_overrides_of_the_repo_config(tmp_path):
    config = REPO / "configs" / "shapes_image.yaml"
    run = _run(tmp_path, "ptdit/assets/models/shapes-image")
    saved = bundle_models.TrainConfig.from_yaml(
        config,
        [
            "--data.options.partial_captions=0.3",
            "--model.window=[1, 4, 4]",
            "--checkpoint.dir=runs/elsewhere",
            "--train.time_limit_s=10",
            "--init.from=ptdit/assets/models/shapes-image",
        ],
    )
    (run / "step_000002" / "train_config.yaml").write_text(saved.to_yaml())
    cost = bundle_models.training_cost(run, 2, config)
    # where it wrote, what it started from and when it stopped are not changes of the recipe
    assert cost["changes"] == {"data.options.partial_captions": 0.3, "model.window": [1, 4, 4]}
    assert cost["init"]["from"] == "ptdit/assets/models/shapes-image"
    # the repo config itself, saved as a run saves it, has no changes
    (run / "step_000002" / "train_config.yaml").write_text(
        bundle_models.TrainConfig.from_yaml(config).to_yaml()
    )
    assert "changes" not in bundle_models.training_cost(run, 2, config)

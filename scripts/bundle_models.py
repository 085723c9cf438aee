"""Bundle trained Shapes models into the package and score them.

    python scripts/bundle_models.py [--tasks image video multiview] [--n 200] [--weights ema|model] [--baselines image]
                                    [--ablation NAME]

For each task: take the latest checkpoint of runs/shapes_<task> (trained by `ptdit train configs/shapes_<task>.yaml`),
export its weights (`--weights`) in bf16 (to keep the three bundled models small) to ptdit/assets/models/shapes-<task>,
then run `ptdit eval` on the bundled directory and write docs/results/eval_shapes-<task>.json + .png. `--baselines`
also scores runs/shapes_<task>_full (the same config with `--model.attention full`, not bundled) into
docs/results/baseline/. The training cost is read from each run's train_log.jsonl; the checkpoint's
train_config.yaml gives the model a later stage started from (`init`, whose record is kept) and the run's overrides of
configs/shapes_<task>.yaml (`changes`). docs/results.md is made from
these files by scripts/results_doc.py.

`--ablation NAME` bundles nothing: it scores runs/shapes_<task> (and, with --baselines, runs/shapes_<task>_full)
from their `bundled` export into docs/results/ablations/NAME/ (+ baseline/), for a run that differs from the
bundled one in one setting; write docs/results/ablations/NAME/about.json ({"label", "change"}) by hand.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
import yaml

from ptdit.bench.timing import cpu_name
from ptdit.evaluate import evaluate
from ptdit.io import read_safetensors, save_safetensors_atomic
from ptdit.model import WEIGHTS_NAME
from ptdit.training.checkpoint import (
    TRAIN_CONFIG_NAME,
    export_model,
    latest_checkpoint,
    step_dir_name,
)
from ptdit.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "ptdit" / "assets" / "models"
RESULTS = ROOT / "docs" / "results"
# settings that say where a run wrote, what it started from and when it stopped, not how it trained
NOT_CHANGES = ("checkpoint.", "init.", "log.", "train.steps", "train.time_limit_s")


def config_changes(stage: dict, config: Path) -> dict:
    """The settings of a run's saved train_config.yaml (`stage`) that differ from the repo's `config`, as
    {"data.options.partial_captions": 0.3, ...}: the command-line overrides it trained with."""
    base = yaml.safe_load(TrainConfig.from_yaml(config).to_yaml())
    changes = {}

    def walk(d: dict, b: dict, prefix: str) -> None:
        for k, v in d.items():
            key, was = f"{prefix}{k}", b.get(k)
            if isinstance(v, dict):
                walk(v, was if isinstance(was, dict) else {}, key + ".")
            elif not key.startswith(NOT_CHANGES) and v != was:
                changes[key] = v

    walk(stage, base, "")
    return changes


def training_cost(run_dir: Path, step: int, config: Path | None = None) -> dict:
    """Steps, summed step seconds and the last loss up to `step`, from the run's JSONL log; the stage it
    started from and its overrides of `config` from the checkpoint's train_config.yaml."""
    lines = (run_dir / "train_log.jsonl").read_text().splitlines()
    rows = [r for r in (json.loads(line) for line in lines if line.strip()) if r["step"] <= step]
    cost = {
        "steps": step,
        "step_seconds": round(sum(r["seconds"] for r in rows), 1),
        "final_loss": rows[-1]["loss"] if rows else None,
    }
    stage = run_dir / step_dir_name(step) / TRAIN_CONFIG_NAME  # a later stage names where it started
    if stage.is_file():
        saved = yaml.safe_load(stage.read_text()) or {}
        init = saved.get("init") or {}
        if init.get("from"):
            cost["init"] = {"from": init["from"], "weights": init.get("weights", "ema")}
        changes = config_changes(saved, config) if config is not None and config.is_file() else {}
        if changes:
            cost["changes"] = changes
    machine = run_dir / "machine.json"  # written by scripts/gpu/train_shapes.py
    if machine.is_file():
        info = json.loads(machine.read_text())
        cost["machine"] = {k: info[k] for k in ("device", "torch", "time_limit_s", "config") if k in info}
    else:  # a CPU run, bundled on the machine that trained it
        cost["cpu"] = cpu_name()
    return cost


def _read_training(path: Path) -> dict | None:
    """The training record of an earlier evaluation file, if there is one."""
    return json.loads(path.read_text()).get("training") if path.is_file() else None


def link_stages(training: dict, previous: dict | None, model_dir: Path) -> None:
    """When `training` is a later stage started from the model being replaced (`model_dir`) or from the run
    behind it, keep the earlier stage's record (`previous`) under training["init"]["training"]."""
    init = training.get("init")
    if not (init and previous):
        return
    if previous.get("run") == training.get("run"):  # the same run bundled again: keep its earlier stages
        if (previous.get("init") or {}).get("training"):
            init["training"] = previous["init"]["training"]
        return
    start = (ROOT / init["from"]).resolve()
    if start in (model_dir.resolve(), (ROOT / previous["run"]).resolve()):
        init["training"] = previous


def export_bf16(run_dir: Path, out: Path, weights: str) -> Path:
    """The latest checkpoint of `run_dir` as a model dir at `out`, weights in bf16; returns the checkpoint."""
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint: train it first (see configs/)")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    export_model(ckpt, tmp, weights=weights)
    state = read_safetensors(tmp / WEIGHTS_NAME)
    save_safetensors_atomic({k: v.to(torch.bfloat16) for k, v in state.items()}, tmp / WEIGHTS_NAME)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return ckpt


def score(
    run_dir: Path,
    model_dir: Path,
    ckpt: Path,
    world: str,
    n: int,
    results: Path,
    weights: str,
    batch_size: int = 16,
    config: Path | None = None,
) -> dict:
    previous = _read_training(results / f"eval_{world}.json")  # before evaluate() overwrites it
    report = evaluate(model_dir, world=world, n=n, out=results, batch_size=batch_size)
    report["model"] = str(model_dir.relative_to(ROOT))  # no machine-specific paths in committed results
    step = int(ckpt.name.split("_")[-1])
    report["training"] = {
        "run": str(run_dir.relative_to(ROOT)),
        "weights": weights,
        **training_cost(run_dir, step, config),
    }
    link_stages(report["training"], previous, model_dir)
    (results / f"eval_{world}.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def bundle(task: str, n: int, runs: Path, weights: str, batch_size: int, ablation: str | None = None) -> dict:
    run_dir = runs / f"shapes_{task}"
    out = run_dir / "bundled" if ablation else ASSETS / f"shapes-{task}"
    results = RESULTS / "ablations" / ablation if ablation else RESULTS
    # the hand-written model card outlives the export (tests/test_model_cards.py fails until it shows the new scores)
    card = out / "README.md"
    card_text = card.read_text() if card.is_file() else None
    ckpt = export_bf16(run_dir, out, weights)
    if card_text is not None:
        card.write_text(card_text)
    return score(run_dir, out, ckpt, f"shapes-{task}", n, results, weights, batch_size, _config(task))


def _config(task: str) -> Path:
    """The repo config of a task's bundled model (a run's overrides are recorded against it)."""
    return ROOT / "configs" / f"shapes_{task}.yaml"


def baseline(
    task: str, n: int, runs: Path, weights: str, batch_size: int, ablation: str | None = None
) -> dict:
    run_dir = runs / f"shapes_{task}_full"
    out = run_dir / "bundled"
    results = (RESULTS / "ablations" / ablation if ablation else RESULTS) / "baseline"
    ckpt = export_bf16(run_dir, out, weights)
    return score(run_dir, out, ckpt, f"shapes-{task}", n, results, weights, batch_size, _config(task))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="*", default=["image", "video", "multiview"])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--runs", default=str(ROOT / "runs"))
    p.add_argument(
        "--weights", choices=("ema", "model"), default="ema", help="which weights of the checkpoint"
    )
    p.add_argument("--baselines", nargs="*", default=[], help="tasks whose full-attention run to score too")
    p.add_argument("--batch-size", type=int, default=16, help="samples per generation batch")
    p.add_argument("--ablation", help="score into docs/results/ablations/NAME/ instead of bundling")
    args = p.parse_args()
    for task in args.tasks:
        report = bundle(task, args.n, Path(args.runs).resolve(), args.weights, args.batch_size, args.ablation)
        print(task, report["headline"], report["training"])
    for task in args.baselines:
        report = baseline(
            task, args.n, Path(args.runs).resolve(), args.weights, args.batch_size, args.ablation
        )
        print(task, "full attention", report["headline"], report["training"])


if __name__ == "__main__":
    main()

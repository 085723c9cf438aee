"""Bundle trained Shapes models into the package and score them.

    python scripts/bundle_models.py [--tasks image video multiview] [--n 200]

For each task: take the latest checkpoint of runs/shapes_<task> (trained by `ptdit train configs/shapes_<task>.yaml`),
export its EMA weights in bf16 (to keep the three bundled models small) to ptdit/assets/models/shapes-<task>, then
run `ptdit eval` on the bundled directory and write docs/results/eval_shapes-<task>.json + .png. The training cost
(steps, seconds, samples) is read from the run's train_log.jsonl. docs/results.md is made from these files by
scripts/results_doc.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from ptdit.evaluate import evaluate
from ptdit.io import read_safetensors, save_safetensors_atomic
from ptdit.training.checkpoint import export_model, latest_checkpoint

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "ptdit" / "assets" / "models"
RESULTS = ROOT / "docs" / "results"


def training_cost(run_dir: Path, step: int) -> dict:
    """Steps, summed step seconds and samples seen up to `step`, from the run's JSONL log."""
    rows = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["step"] <= step]
    config = (run_dir / "model" / "config.json") if (run_dir / "model").is_dir() else None
    return {
        "steps": step,
        "step_seconds": round(sum(r["seconds"] for r in rows), 1),
        "final_loss": rows[-1]["loss"] if rows else None,
        "config": str(config) if config else None,
    }


def bundle(task: str, n: int, runs: Path) -> dict:
    run_dir = runs / f"shapes_{task}"
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint: run `ptdit train configs/shapes_{task}.yaml` first")
    out = ASSETS / f"shapes-{task}"
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    export_model(ckpt, tmp, weights="ema")
    state = read_safetensors(tmp / "model.safetensors")
    save_safetensors_atomic({k: v.to(torch.bfloat16) for k, v in state.items()}, tmp / "model.safetensors")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    step = int(ckpt.name.split("_")[-1])
    report = evaluate(out, world=f"shapes-{task}", n=n, out=RESULTS)
    report["training"] = {"run": str(run_dir.relative_to(ROOT)), **training_cost(run_dir, step)}
    (RESULTS / f"eval_shapes-{task}.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=["image", "video", "multiview"])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--runs", default=str(ROOT / "runs"))
    args = p.parse_args()
    for task in args.tasks:
        report = bundle(task, args.n, Path(args.runs))
        print(task, report["headline"], report["training"])


if __name__ == "__main__":
    main()

"""One run of an ablation grid, in a worker process: train (resuming a checkpoint left by an interruption), the
held-out loss of every checkpoint (the cheap curve), `ptdit eval`, then one JSON that records it all.

`python -m ptdit.ablate.run GRID.yaml KEY --threads T` is what `ptdit ablate` starts per run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..io import atomic_write_text
from .grid import Grid, RunSpec, load_grid, override_args

HELDOUT_SEED = 12345  # the held-out items' tau and noise: the same for every run and checkpoint


def git_commit(root: Path | None = None) -> dict[str, Any]:
    """The commit the run ran on and whether the tracked ptdit/ sources differed from it."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], capture_output=True, text=True, cwd=root, check=False)
        return out.stdout.strip() if out.returncode == 0 else ""

    commit = git("rev-parse", "HEAD") or "unknown"
    # ":/ptdit" is the top-level ptdit/ whatever the working directory (run_one asks from the grid's folder)
    dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", ":/ptdit"))
    return {"commit": commit, "dirty": dirty}


def train_config(grid: Grid, spec: RunSpec, threads: int, steps: int | None = None) -> Any:
    from ..training import TrainConfig

    run_dir = grid.run_dir(spec)
    args = override_args(spec.overrides) + ["--train.seed", str(spec.seed), "--checkpoint.dir", str(run_dir)]
    args += ["--checkpoint.keep_last", "0", "--log.progress", "false"]
    if threads > 0:
        args += ["--train.threads", str(threads)]
    if grid.curve["every"] > 0:
        args += ["--checkpoint.every", str(grid.curve["every"])]
    if steps is not None:
        args += ["--train.steps", str(steps)]
    if "seconds" in grid.budget:
        args += ["--train.time_limit_s", str(grid.budget["seconds"]), "--train.steps", str(10**9)]
    if any(run_dir.glob("step_*")):
        args += ["--checkpoint.resume", "auto"]  # an interrupted run continues where it stopped
    return TrainConfig.from_yaml(grid.base, args)


def _heldout_data(cfg: Any, n: int) -> Any:
    """Items the run never trains on: the test split of Fashion-MNIST; for Shapes, held-out compositions."""
    import dataclasses

    from ..training.builders import build_dataset

    data = cfg.data
    if data.world == "fashion-mnist":
        data = dataclasses.replace(data, options={**data.options, "split": "test"}, num_items=0)
    elif data.world:  # Shapes: held-out compositions (never in the training split), other scenes
        options = {**data.options, "split": "heldout"}
        data = dataclasses.replace(
            data, seed=data.seed + 1_000_003, options=options, num_items=max(data.num_items, n)
        )
    else:
        raise ValueError("the held-out loss needs a built-in world (data.world)")
    return build_dataset(data)


class HeldoutLoss:
    """The training loss (velocity MSE, no caption dropout) of a model on fixed held-out items, tau and noise."""

    def __init__(self, cfg: Any, n: int, device: torch.device) -> None:
        from .. import flow
        from ..training.builders import build_autoencoder, build_text_encoder

        dataset = _heldout_data(cfg, n)
        items = [dataset[i] for i in range(min(n, len(dataset)))]
        pixels = torch.stack([it["pixels"] for it in items]).to(device)
        self.captions = [it["caption"] for it in items]
        encoder = build_text_encoder(cfg.text, device)
        autoencoder = build_autoencoder(cfg.autoencoder, device, pixel_channels=int(pixels.shape[1]))
        with torch.no_grad():
            self.x0 = autoencoder.encode(pixels).float()
            emb, mask = encoder(self.captions)
        self.emb, self.mask = emb.to(device).float(), mask.to(device)
        self.text_len = int(emb.shape[1])
        self.caption_channels = int(encoder.dim)
        g = torch.Generator().manual_seed(HELDOUT_SEED)
        t = cfg.train
        ratio = t.timestep_shift(*pixels.shape[-2:], pixels.shape[2])
        tau = flow.sample_training_tau(
            len(items),
            ratio,
            generator=g,
            distribution=t.timestep_distribution,
            loc=t.logit_mean,
            scale=t.logit_std,
        )
        noise = torch.randn(self.x0.shape, generator=g).to(device)
        self.tau = tau.to(device)
        self.x_t = flow.add_noise(self.x0, noise, self.tau)
        self.target = flow.velocity_target(self.x0, noise)
        self.bf16, self.device = t.bf16, device
        self.pixel_size = tuple(int(v) for v in pixels.shape[2:])  # (F, H, W)

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module, batch: int = 64) -> float:
        from .. import flow

        total = 0.0
        for i in range(0, len(self.x0), batch):
            s = slice(i, i + batch)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                out = model(self.x_t[s], flow.NUM_TRAIN_TIMESTEPS * self.tau[s], self.emb[s], self.mask[s],
                            return_dict=False)[0]  # fmt: skip
            err = (out[:, : self.x0.shape[1]].float() - self.target[s]) ** 2
            total += float(err.flatten(1).mean(1).sum())
        return total / len(self.x0)


def load_checkpoint_model(step_dir: Path, device: torch.device) -> torch.nn.Module:
    """The EMA weights of a checkpoint (the weights a run samples with)."""
    from safetensors.torch import load_file

    from ..config import PTDiTConfig
    from ..model import PTDiT
    from ..training.checkpoint import resolve_weights

    weights, config = resolve_weights(step_dir, "ema")
    model = PTDiT(PTDiTConfig.from_json(config))
    model.load_state_dict(load_file(str(weights)))
    return model.to(device).eval()


def flops_per_step(
    cfg: Any, model_config: Any, pixel_size: tuple[int, int, int], text_len: int
) -> dict[str, Any]:
    """Analytic training FLOPs of one optimizer step (ptdit.training.throughput.step_cost: 3 forwards x 2 FLOPs
    per MAC x the global batch; latent size = pixel size / the autoencoder's spatial factor, here 1)."""
    from ..training.throughput import step_cost

    batch = cfg.train.batch_size * cfg.train.grad_accum
    cost = step_cost(model_config, pixel_size, text_len, batch)
    return {
        "forward_macs_per_sample": cost.forward_macs,
        "tokens": cost.tokens,
        "text_len": text_len,
        "batch": batch,
        "train_flops_per_step": cost.flops,
    }


def _step_seconds(run_dir: Path) -> list[tuple[int, float, int]]:
    """(last step, seconds, steps) of every record of a run's training log (a record covers `steps` steps)."""
    from ..training.logs import LOG_NAME

    path = run_dir / LOG_NAME
    rows = (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    )
    return [(int(r["step"]), float(r["seconds"]), int(r.get("steps", 1))) for r in rows]


def run_one(grid: Grid, spec: RunSpec, threads: int = 1) -> dict[str, Any]:
    """Train, score and record one run; returns the JSON it writes to grid.result_path(spec)."""
    from ..evaluate import evaluate
    from ..training import train
    from ..training.checkpoint import list_checkpoints

    if threads > 0:
        torch.set_num_threads(threads)
    started = time.time()
    vcs = git_commit(grid.path.resolve().parent)  # the code the run starts on
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = train_config(grid, spec, threads)
    heldout = HeldoutLoss(cfg, grid.curve["n"], device)
    model_config = cfg.model_config(
        in_channels=int(heldout.x0.shape[1]), caption_channels=heldout.caption_channels
    )
    cost = flops_per_step(cfg, model_config, heldout.pixel_size, heldout.text_len)
    steps = cfg.train.steps
    if "steps" in grid.budget:
        steps = int(grid.budget["steps"])
    elif "flops" in grid.budget:  # equal training FLOPs: the budget in steps of this variant
        steps = max(1, math.floor(grid.budget["flops"] / cost["train_flops_per_step"]))
    if "seconds" not in grid.budget:
        cfg = train_config(grid, spec, threads, steps)
    run_dir = grid.run_dir(spec)
    if not (run_dir / "model").is_dir():
        result = train(cfg, progress=False)
        if result.stopped_by:  # SIGTERM/SIGINT: the checkpoint is written; the run is not finished
            raise SystemExit(
                f"{spec.key}: stopped by {result.stopped_by} at step {result.step}; rerun to resume"
            )
        steps = result.step
    else:
        steps = max(s for s, _, _ in _step_seconds(run_dir))
    times = _step_seconds(run_dir)
    cumulative, elapsed = {}, 0.0
    for s, sec, _ in times:
        elapsed += sec
        cumulative[s] = elapsed
    curve = []
    for step, step_dir in list_checkpoints(run_dir):
        loss = heldout(load_checkpoint_model(step_dir, device))
        curve.append({"step": step, "flops": step * cost["train_flops_per_step"],
                      "train_seconds": round(cumulative.get(step, float("nan")), 3), "heldout_loss": loss})  # fmt: skip
    ev = grid.eval
    report = evaluate(
        run_dir / "model", ev.get("world"), n=int(ev["n"]), seed=int(ev["seed"]), steps=ev.get("steps"),
        cfg=ev.get("cfg"), batch_size=int(ev["batch_size"]), out=run_dir / "eval", device=device,
    )  # fmt: skip
    scores = {k: v for k, v in report["scores"].items() if isinstance(v, (int, float))}
    scores["heldout_loss"] = curve[-1]["heldout_loss"] if curve else float("nan")
    per_step = [sec / n for _, sec, n in times]
    seconds = per_step[1:] or per_step  # the first record (step, or log interval) warms up
    record = {
        "grid": grid.name,
        "variant": spec.variant,
        "seed": spec.seed,
        "overrides": spec.overrides,
        **vcs,
        "steps": steps,
        "budget": grid.budget,
        **cost,
        "train_flops": steps * cost["train_flops_per_step"],
        "step_seconds_median": statistics.median(seconds) if seconds else None,
        "train_seconds": round(sum(sec for _, sec, _ in times), 3),
        "threads": threads,
        "device": str(device),
        "scores": scores,
        "eval": report["settings"],
        "eval_seconds": report["seconds"],
        "curve": curve,
        "wall_seconds": round(time.time() - started, 1),
        "torch": torch.__version__,
    }
    path = grid.result_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ptdit.ablate.run", description="one run of an ablation grid")
    p.add_argument("grid")
    p.add_argument("key", help="VARIANT-sSEED")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    grid = load_grid(args.grid)
    spec = next((s for s in grid.runs() if s.key == args.key), None)
    if spec is None:
        raise SystemExit(f"{args.grid}: no run {args.key!r}")
    run_one(grid, spec, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())


def measure_costs(grid: Grid, time_steps: int = 0, threads: int = 1) -> dict[str, Any]:
    """Per variant: analytic training FLOPs per step, the ratio to the first variant, the steps the budget gives,
    and with `time_steps` > 0 the measured median seconds of a training step (seed 0, `time_steps` steps, the
    first left out, in runs_dir/_timing/) and the projected training core-seconds of the whole grid."""
    from ..training import train
    from ..training.builders import build_dataset, build_text_encoder

    if threads > 0:
        torch.set_num_threads(threads)
    rows, first = [], None
    for variant in grid.variants:
        spec = RunSpec(variant.name, variant.seeds[0], {**grid.overrides, **variant.overrides})
        cfg = train_config(grid, spec, threads)
        dataset = build_dataset(cfg.data)
        items = [dataset[i] for i in range(min(64, len(dataset)))]
        encoder = build_text_encoder(cfg.text, torch.device("cpu"))
        emb, _ = encoder([it["caption"] for it in items])
        pixels = items[0]["pixels"]
        model_config = cfg.model_config(in_channels=int(pixels.shape[0]), caption_channels=int(encoder.dim))
        cost = flops_per_step(cfg, model_config, tuple(int(v) for v in pixels.shape[1:]), int(emb.shape[1]))
        first = first or cost["train_flops_per_step"]
        row: dict[str, Any] = {"variant": variant.name, "seeds": len(variant.seeds), **cost,
                               "flops_ratio_to_first": cost["train_flops_per_step"] / first}  # fmt: skip
        if "steps" in grid.budget:
            row["steps"] = int(grid.budget["steps"])
        elif "flops" in grid.budget:
            row["steps"] = max(1, math.floor(grid.budget["flops"] / cost["train_flops_per_step"]))
        if time_steps > 0:
            import dataclasses
            import shutil

            timing_dir = grid.runs_dir / "_timing" / variant.name
            shutil.rmtree(timing_dir, ignore_errors=True)
            t = dataclasses.replace(cfg.train, steps=time_steps, time_limit_s=0.0)
            c = dataclasses.replace(cfg.checkpoint, dir=str(timing_dir), every=0, export=False, resume="")
            per_step = dataclasses.replace(cfg.log, every=1)  # one record, one time, per step
            train(dataclasses.replace(cfg, train=t, checkpoint=c, log=per_step), progress=False)
            seconds = [sec for _, sec, _ in _step_seconds(timing_dir)[1:]]  # log.every is 1 here
            row["step_seconds_median"] = statistics.median(seconds)
            row["timed_steps"] = len(seconds)
            row["load_average_1min"] = os.getloadavg()[0]  # a shared machine: how busy it was while timing
            if "steps" in row:
                row["projected_train_core_seconds"] = (
                    row["steps"] * row["step_seconds_median"] * len(variant.seeds)
                )
                row["projected_train_core_seconds"] *= max(threads, 1)
        rows.append(row)
        print(
            f"ptdit ablate: {variant.name}: {json.dumps({k: row[k] for k in row if k != 'variant'})}",
            flush=True,
        )
    total = sum(r.get("projected_train_core_seconds", 0.0) for r in rows)
    record = {"grid": grid.name, **git_commit(grid.path.resolve().parent), "threads": threads,
              "time_steps": time_steps, "torch": torch.__version__, "budget": grid.budget, "variants": rows,
              "projected_train_core_hours": total / 3600 if time_steps > 0 else None}  # fmt: skip
    grid.results_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(grid.results_dir / "costs.json", json.dumps(record, indent=1) + "\n")
    return record

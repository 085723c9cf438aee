"""Train the bundled Shapes models and their full-attention baselines side by side on one GPU, then score them.

    python3 scripts/gpu/train_shapes.py --train-s 300 [--tasks image video multiview] [--n 200] [--pack OUT]

For each task, two `ptdit train configs/shapes_<task>.yaml` (or `--config TASK=PATH`) processes run at once on the same device: PT-DiT
(runs/shapes_<task>) and the same config with --model.attention full (runs/shapes_<task>_full). Each trains for
`--train-s` seconds of its own training loop (train.time_limit_s: the same wall-clock budget on the shared
GPU; the step counts reached are reported), then writes a checkpoint and exports. A run that fails (say,
torch.compile on an untested torch) is restarted once without compile from its last checkpoint, for the time
left. Then `scripts/bundle_models.py` exports each PT-DiT run's EMA weights (bf16) into ptdit/assets/models and
scores both runs on the held-out prompts (docs/results/, docs/results/baseline/). `--pack OUT` writes one
<task>.tar.gz per task with what changed (bundled model, eval JSON/PNG, training logs) for another machine.

Each run dir gets machine.json (device, torch, budget, steps, attempts), which bundle_models.py adds to the
scores. Retrain one model the same way with `ptdit train configs/shapes_<task>.yaml --train.steps N` (N from
docs/results.md): the learning rate is constant after warm-up and the batch order is seeded, so the run up to
step N does not depend on the time limit.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
MAX_STEPS = 10_000_000  # the time limit ends these runs


def run_name(task: str, variant: str) -> str:
    return f"shapes_{task}" + ("_full" if variant == "full" else "")


EXTRA: list[str] = []  # --extra: overrides for every run
CONFIGS: dict[str, str] = {}  # --config TASK=PATH (default configs/shapes_<task>.yaml)


def config_of(task: str) -> str:
    return CONFIGS.get(task, f"configs/shapes_{task}.yaml")


def train_command(
    task: str, variant: str, seconds: float, compile_: bool, resume: bool, device: str
) -> list[str]:
    cmd = [sys.executable, "-m", "ptdit.cli", "train", config_of(task), *EXTRA]
    cmd += [
        "--train.steps",
        str(MAX_STEPS),
        "--train.time_limit_s",
        f"{seconds:.0f}",
        "--train.device",
        device,
    ]
    cmd += ["--checkpoint.dir", f"runs/{run_name(task, variant)}", "--no-progress"]
    if variant == "full":
        cmd += ["--model.attention", "full"]
    if not compile_:
        cmd += ["--train.compile", "false"]
    if resume:
        cmd += ["--resume"]
    return cmd


class Job:
    """One training run, its attempts and its log file."""

    def __init__(self, task: str, variant: str, device: str) -> None:
        self.task, self.variant, self.device = task, variant, device
        self.dir = ROOT / "runs" / run_name(task, variant)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = self.dir / "stdout.log"
        self.attempts: list[dict] = []
        self.proc: subprocess.Popen | None = None

    def start(self, seconds: float, compile_: bool, resume: bool) -> None:
        cmd = train_command(self.task, self.variant, seconds, compile_, resume, self.device)
        self.attempts.append({"command": " ".join(cmd[1:]), "started": time.time(), "seconds": seconds})
        out = self.log.open("a")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        print(f"start {self.dir.name}: {' '.join(cmd[2:])}", flush=True)

    def finish(self, code: int) -> None:
        self.attempts[-1].update(returncode=code, ended=time.time())
        self.proc = None


def steps_done(run_dir: Path) -> int:
    log = run_dir / "train_log.jsonl"
    if not log.is_file():
        return 0
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    return json.loads(lines[-1])["step"] if lines else 0


def train_all(tasks: list[str], seconds: float, device: str, grace: float) -> list[Job]:
    jobs = [Job(t, v, device) for t in tasks for v in ("ptdit", "full")]
    start = time.time()
    for job in jobs:
        job.start(seconds, compile_=True, resume=False)
    deadline = start + seconds + grace  # preload + compile + the final checkpoint fit in `grace`
    while any(j.proc is not None for j in jobs):
        time.sleep(2)
        for job in jobs:
            if job.proc is None:  # finished (or given up)
                continue
            code = job.proc.poll()
            if code is None:
                if time.time() > deadline:
                    print(f"{job.dir.name}: past the deadline, stopped", flush=True)
                    job.proc.terminate()
                    job.finish(job.proc.wait())
                continue
            job.finish(code)
            print(f"{job.dir.name}: exit {code}, step {steps_done(job.dir)}", flush=True)
            left = deadline - grace - time.time()
            if code != 0 and len(job.attempts) == 1 and left > 30:
                print(f"{job.dir.name}: retrying without torch.compile for {left:.0f} s", flush=True)
                has_ckpt = any(job.dir.glob("step_*"))
                job.start(left, compile_=False, resume=has_ckpt)
    for job in jobs:
        info = {
            "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
            "torch": torch.__version__,
            "time_limit_s": seconds,
            "config": config_of(job.task),
            "steps": steps_done(job.dir),
            "attention": "full" if job.variant == "full" else "proxy",
            "attempts": job.attempts,
        }
        (job.dir / "machine.json").write_text(json.dumps(info, indent=1) + "\n")
        print(f"{job.dir.name}: {info['steps']} steps", flush=True)
    return jobs


def score_all(tasks: list[str], n: int, batch_size: int, timeout: float) -> None:
    procs = []
    for task in tasks:
        cmd = [sys.executable, "scripts/bundle_models.py", "--tasks", task, "--baselines", task]
        cmd += ["--n", str(n), "--batch-size", str(batch_size), "--weights", "ema"]
        log = (ROOT / "runs" / f"score_{task}.log").open("w")
        procs.append((task, subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)))
    end = time.time() + timeout
    for task, proc in procs:
        try:
            proc.wait(timeout=max(1.0, end - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
        print(f"score {task}: exit {proc.wait()}", flush=True)
        print((ROOT / "runs" / f"score_{task}.log").read_text()[-1500:], flush=True)


def pack(tasks: list[str], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for task in tasks:
        paths = [
            f"ptdit/assets/models/shapes-{task}",
            f"docs/results/eval_shapes-{task}.json",
            f"docs/results/eval_shapes-{task}.png",
            f"docs/results/baseline/eval_shapes-{task}.json",
            f"docs/results/baseline/eval_shapes-{task}.png",
            f"runs/score_{task}.log",
        ]
        for variant in ("ptdit", "full"):
            run = f"runs/{run_name(task, variant)}"
            paths += [
                f"{run}/{name}" for name in ("train_log.jsonl", "machine.json", "stdout.log", "loss.png")
            ]
            paths += [str(p.relative_to(ROOT)) for p in sorted((ROOT / run / "samples").glob("*.png"))[-2:]]
        with tarfile.open(out / f"{task}.tar.gz", "w:gz") as tar:
            for path in paths:
                if (ROOT / path).exists():
                    tar.add(ROOT / path, arcname=path)
        print(f"packed {out / f'{task}.tar.gz'} ({(out / f'{task}.tar.gz').stat().st_size / 1e6:.1f} MB)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="*", default=["image", "video", "multiview"])
    p.add_argument("--train-s", type=float, default=300.0, help="training-loop seconds of every run")
    p.add_argument("--grace-s", type=float, default=150.0, help="start-up and final checkpoint allowance")
    p.add_argument("--n", type=int, default=200, help="held-out prompts scored per model")
    p.add_argument("--batch-size", type=int, default=50, help="samples per scoring batch")
    p.add_argument("--score-timeout-s", type=float, default=240.0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--pack", default="", help="write <task>.tar.gz of the results here")
    p.add_argument("--extra", default="", help='overrides for every run, e.g. "--data.num_items 512"')
    p.add_argument(
        "--config",
        action="append",
        default=[],
        help="TASK=PATH: train TASK from PATH (default configs/shapes_TASK.yaml)",
    )
    args = p.parse_args()
    EXTRA[:] = shlex.split(args.extra)
    for item in args.config:
        task, sep, path = item.partition("=")
        if not sep or task not in ("image", "video", "multiview") or not (ROOT / path).is_file():
            raise SystemExit(
                f"--config {item!r}: use TASK=PATH with TASK image|video|multiview and an existing file"
            )
        CONFIGS[task] = path
    t0 = time.time()
    train_all(args.tasks, args.train_s, args.device, args.grace_s)
    print(f"training done at {time.time() - t0:.0f} s", flush=True)
    score_all(args.tasks, args.n, args.batch_size, args.score_timeout_s)
    print(f"scoring done at {time.time() - t0:.0f} s", flush=True)
    if args.pack:
        pack(args.tasks, Path(args.pack))


if __name__ == "__main__":
    main()

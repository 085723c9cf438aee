"""Time the README's user commands as a new user runs them: each in a fresh process, from a fresh folder.

Runs the quick-start generations (image, video, multi-view with the bundled models) and the "train on your own
data" example (the README's bash block that writes a folder of captioned images, trains on it and samples the
trained model), each in a new empty working folder that links only `.venv` and `configs` to this repository, so
nothing is cached from an earlier run but what the operating system keeps. Every command runs `--repeats` times:
the first run is the one a new user waits for; the others show the warm cost. Each run must exit 0 and write the
files the README promises, or the benchmark stops with the command's output.

The generation commands are kept here and checked against README.md by tests/test_readme.py; the training example
is read from README.md itself (the bash block that trains configs/example_folder.yaml). README.md quotes the
first-run seconds by hand; tests/test_readme.py checks them against the JSON this writes.

usage: python benchmarks/quickstart.py [--repeats 2] [--skip-train-example] [--out benchmarks/results/quickstart]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ptdit.bench.timing import cpu_name  # noqa: E402
from ptdit.io import atomic_write_text  # noqa: E402

# (name, the command exactly as README.md prints it, files it must write relative to the working folder)
GENERATE_COMMANDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "image",
        '.venv/bin/ptdit generate "a red circle to the left of a blue square"',
        ("outputs/0000_a-red-circle-to-the-left-of-a-blue-square.png", "outputs/manifest.json"),
    ),
    (
        "video",
        '.venv/bin/ptdit generate --task video "a green triangle moving to the right"',
        (
            "outputs/0000_a-green-triangle-moving-to-the-right.mp4",
            "outputs/0000_a-green-triangle-moving-to-the-right.gif",
        ),
    ),
    (
        "multiview",
        '.venv/bin/ptdit generate --task multiview "a yellow cube"',
        ("outputs/0000_a-yellow-cube_grid.png", "outputs/manifest.json"),
    ),
)
TRAIN_EXAMPLE_MARKER = "ptdit train configs/example_folder.yaml"
TRAIN_EXAMPLE_FILES = ("runs/my_images/model/diffusion_pytorch_model.safetensors", "outputs/manifest.json")


def readme_bash_blocks(readme: str) -> list[str]:
    """The ```bash fenced blocks of a markdown text, in order."""
    return re.findall(r"```bash\n(.*?)```", readme, flags=re.S)


def train_example(readme: str) -> str:
    """The README's bash block that trains configs/example_folder.yaml (ValueError when there is none)."""
    blocks = [b for b in readme_bash_blocks(readme) if TRAIN_EXAMPLE_MARKER in b]
    if len(blocks) != 1:
        raise ValueError(
            f"README.md must hold exactly one bash block with {TRAIN_EXAMPLE_MARKER!r}; found {len(blocks)}"
        )
    return blocks[0]


def _fresh_folder() -> Path:
    work = Path(tempfile.mkdtemp(prefix="ptdit-quickstart-"))
    for name in (".venv", "configs"):
        (work / name).symlink_to(ROOT / name)
    return work


def run_once(command: str, expect: tuple[str, ...]) -> float:
    """Wall-clock seconds of `command` (bash) in a fresh folder; SystemExit if it fails or misses a file."""
    work = _fresh_folder()
    try:
        t0 = time.perf_counter()
        proc = subprocess.run(["bash", "-c", command], cwd=work, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        missing = [f for f in expect if not (work / f).is_file()]
        if proc.returncode != 0 or missing:
            sys.exit(
                f"quickstart: {command.strip()!r} failed (exit {proc.returncode}; missing {missing})\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        return seconds
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        return out.stdout.strip() or None
    except OSError:
        return None


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [
        "# The README's commands, timed (benchmarks/quickstart.py)",
        "",
        "| CPU | cores | load average at the start | torch | commit |",
        "|---|---|---|---|---|",
        f"| {env['cpu']} | {env['cores']} | {env['load_avg_1m']:.2f} | {env['torch']} | {env['commit']} |",
        "",
        "| command | first run (s) | later runs (s) |",
        "|---|---|---|",
    ]
    for row in report["rows"]:
        later = ", ".join(f"{s:.1f}" for s in row["seconds"][1:]) or "–"
        if row["name"] == "train-example":
            command = f"the README's train-on-your-own-data block (`{TRAIN_EXAMPLE_MARKER}`)"
        else:
            command = f"`{row['command']}`"
        lines.append(f"| {command} | {row['seconds'][0]:.1f} | {later} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=2, help="runs of each command (the first is the cold one)")
    ap.add_argument("--skip-train-example", action="store_true", help="time only the generation commands")
    ap.add_argument(
        "--out", default=str(ROOT / "benchmarks/results/quickstart"), help="writes OUT.json and OUT.md"
    )
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    if not (ROOT / ".venv/bin/ptdit").exists():
        sys.exit("quickstart: .venv/bin/ptdit not found; run `bash scripts/setup.sh` first")

    import torch

    commands = [(name, cmd, expect) for name, cmd, expect in GENERATE_COMMANDS]
    if not args.skip_train_example:
        commands.append(
            ("train-example", train_example((ROOT / "README.md").read_text()), TRAIN_EXAMPLE_FILES)
        )
    report = {
        "environment": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "load_avg_1m": os.getloadavg()[0],
            "torch": torch.__version__,
            "python": platform.python_version(),
            "commit": _commit(),
        },
        "rows": [],
    }
    for name, command, expect in commands:
        seconds = [run_once(command, expect) for _ in range(args.repeats)]
        row = {"name": name, "command": command, "seconds": seconds, "median_s": statistics.median(seconds)}
        report["rows"].append(row)
        print(f"{name:14s} " + "  ".join(f"{s:6.1f} s" for s in seconds), flush=True)
    out = Path(args.out)
    atomic_write_text(out.with_suffix(".json"), json.dumps(report, indent=1) + "\n")
    atomic_write_text(out.with_suffix(".md"), markdown(report))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

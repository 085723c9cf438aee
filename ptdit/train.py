"""`ptdit train CONFIG.yaml [--section.key value ...]`: train a PT-DiT from a YAML config.

Examples:
    ptdit train configs/example_tiny.yaml
    ptdit train configs/example_tiny.yaml --train.steps 200 --train.lr 3e-4 --checkpoint.dir runs/tiny2
    ptdit train configs/example_tiny.yaml --resume                  # continue the newest checkpoint
    ptdit train configs/example_tiny.yaml --resume auto             # ... or start fresh if there is none
    torchrun --nproc_per_node 8 -m ptdit train configs/t2i_256.yaml --train.parallel fsdp
    ptdit train --export runs/tiny/step_000200 --out models/tiny     # a model dir with the EMA weights
"""

from __future__ import annotations

import argparse
import shlex
import sys

from .extras import require
from .training.checkpoint import export_model
from .training.config import TrainConfig
from .training.loop import TrainingDiverged, TrainResult, train
from .training.signals import signal_name

__all__ = [
    "cli_main",
    "split_overrides",
    "train",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "export_model",
]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ptdit train",
        description="Train a PT-DiT with rectified flow from a YAML config. Any config key can be overridden "
        "with --section.key value (e.g. --train.steps 100 --model.depth 4 --log.sample_prompts 'a,b').",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Examples:", 1)[1] and "examples:" + __doc__.split("Examples:", 1)[1],
    )
    p.add_argument("config", nargs="?", help="the YAML config (see configs/ and docs/training.md)")
    p.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        default=None,
        metavar="CHECKPOINT",
        help="continue the newest checkpoint of checkpoint.dir (an error if there is none), or the given step/run "
        "dir; --resume auto continues the newest checkpoint if there is one and starts fresh otherwise",
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    p.add_argument(
        "--export", metavar="CHECKPOINT", help="write a model dir from a checkpoint (with --out) and exit"
    )
    p.add_argument("--out", help="the model dir written by --export")
    p.add_argument(
        "--weights", choices=("ema", "model"), default="ema", help="weights --export writes (default ema)"
    )
    return p


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """Separate `--section.key value` / `--section.key=value` pairs from the command's own arguments."""
    rest, overrides, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--") and "." in arg[2:].split("=", 1)[0]:
            take = 1 if "=" in arg else 2
            overrides += argv[i : i + take]
            i += take
        else:
            rest.append(arg)
            i += 1
    return rest, overrides


def resume_command(config: str, overrides: list[str]) -> str:
    """The `ptdit train` command line that continues a run: its config and overrides, and --resume."""
    kept, i = [], 0
    while i < len(overrides):
        take = 1 if "=" in overrides[i] else 2
        if overrides[i].split("=", 1)[0] != "--checkpoint.resume":
            kept += overrides[i : i + take]
        i += take
    return shlex.join(["ptdit", "train", config, *kept, "--resume"])


def cli_main(argv: list[str]) -> int:
    parser = _parser()
    rest, overrides = split_overrides(argv)
    args = parser.parse_args(rest)
    if args.export:
        if not args.out:
            parser.error("--export needs --out DIR")
        out = export_model(args.export, args.out, args.weights)
        print(f"wrote {out} ({args.weights} weights of {args.export})")
        return 0
    if not args.config:
        parser.error("give a CONFIG.yaml (e.g. configs/example_tiny.yaml)")
    if args.resume is not None:
        overrides += ["--checkpoint.resume", args.resume]
    cfg = TrainConfig.from_yaml(args.config, overrides)
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    require("matplotlib", "train", "the loss plot")  # before training, not at its first plot
    result = train(cfg, progress=False if args.no_progress else None)
    if result.stopped_by:  # SIGTERM / SIGINT: a checkpoint at this step was written; exit 128 + the signal
        if result.rank == 0:
            print(
                f"ptdit train: stopped by {signal_name(result.stopped_by)} at step {result.step} (checkpoint "
                f"{result.checkpoint}); resume with: {resume_command(args.config, overrides)}",
                file=sys.stderr,
            )
        return 128 + result.stopped_by
    if result.rank == 0:
        print(
            f"trained {result.step} steps in {result.seconds:.1f} s, last loss {result.loss:.4f}"
            + (" (stopped by train.time_limit_s)" if result.step < cfg.train.steps else "")
            + "; "
            f"wrote {result.run_dir} (log, loss plot); checkpoint {result.checkpoint}"
            + (f"; model {result.model_dir}" if result.model_dir else "")
        )
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(sys.argv[1:]))

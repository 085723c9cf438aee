"""The `ptdit` command: a thin dispatcher. Each subcommand's arguments and work live in its own module."""

from __future__ import annotations

import importlib
import sys
import warnings

from .extras import MissingExtra, missing_extra

# subcommand -> (module, help); each module defines `cli_main(argv: list[str]) -> int`
COMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("ptdit.pipeline", "generate images, video or multi-view from prompts"),
    "train": ("ptdit.train", "train a model from a YAML config"),
    "eval": ("ptdit.evaluate", "score a model on a built-in world (Shapes, Fashion-MNIST)"),
    "flops": ("ptdit.complexity", "analytic MACs and parameters of PT-DiT and its peers"),
    "bench": ("ptdit.bench", "time forward/training steps and memory against peers"),
    "convert-official": ("ptdit.official", "convert the released Qihoo-T2I checkpoint to a ptdit model dir"),
    "export-diffusers": ("ptdit.export_diffusers", "write a model as a diffusers pipeline folder"),
    "presets": ("ptdit.presets", "parameter counts of the presets next to the paper's Table 4"),
    "ablate": ("ptdit.ablate.cli", "a grid of training runs (variants x seeds), scored, tabled and plotted"),
    "demo": ("ptdit.demo.app", "a Gradio page to generate and look at the proxy attention"),
}
# the pip extra a command needs beyond the core install (see ptdit.extras); generate needs none
EXTRAS = {
    "train": "train",
    "eval": "eval",
    "flops": "bench",
    "bench": "bench",
    "ablate": "eval",
    "demo": "demo",
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: ptdit <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "ptdit <command> --help shows a command's options."]
    return "\n".join(lines)


def _one_line_warnings(name: str) -> None:
    """Show warnings as one line, `ptdit NAME: warning: MESSAGE` (not Python's file:line plus source line)."""

    def show(
        message: Warning | str, category: type[Warning], filename: str, lineno: int, file=None, line=None
    ) -> None:
        print(f"ptdit {name}: warning: {message}", file=file or sys.stderr)

    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"ptdit: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    _one_line_warnings(name)
    try:
        module = importlib.import_module(COMMANDS[name][0])
        return int(module.cli_main(rest) or 0)
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError, MissingExtra) as e:
        print(f"ptdit {name}: error: {e}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as e:  # an optional package imported at the top of a command's module
        text = missing_extra(e, EXTRAS.get(name), f"ptdit {name}")
        if text is None:
            raise
        print(f"ptdit {name}: error: {text}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ptdit {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Rewrite README.md's measured numbers from the files that measured them, so none is copied by hand.

Each generated part of README.md sits between `<!-- sync_readme: NAME -->` and `<!-- /sync_readme: NAME -->` and
is rebuilt from its source:

  quickstart     benchmarks/results/quickstart.json (python benchmarks/quickstart.py) and the held-out scores in
                 docs/results/eval_<world>.json (python scripts/bundle_models.py)
  train-example  benchmarks/results/quickstart.json (its train-example row)
  cpu-table      benchmarks/results/cpu_quick.json (ptdit bench --quick ..., the command in cpu_quick.md)
  gpu-table      benchmarks/results/gpu_check_h100.json (python benchmarks/gpu_check.py on an H100)

usage: python scripts/sync_readme.py            # rewrite README.md
       python scripts/sync_readme.py --check    # exit 1 (and show the difference) when README.md is out of date
tests/test_readme.py runs the check, so a rerun benchmark or a hand edit inside a block fails the tests until
this script has been run.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "docs/results"
BENCH = ROOT / "benchmarks/results"
TARGET = 0.90  # the held-out score each bundled Shapes model aims for (scripts/results_doc.py TARGETS)

# world -> (headline score, what the score counts, as "the <task> model ... on N% of held-out prompts")
WORLD_WORDS: dict[str, tuple[str, str, str]] = {
    "shapes-image": ("accuracy", "image", "draws the whole prompt right (colours, shapes, sizes, relation)"),
    "shapes-video": ("motion", "video", "moves its objects as the prompt says"),
    "shapes-multiview": ("consistency", "multi-view", "keeps its object consistent across the views"),
}


def _json(path: Path):
    if not path.is_file():
        raise FileNotFoundError(
            f"{path.relative_to(ROOT)} is missing: rerun the script that writes it (scripts/sync_readme.py names it)"
        )
    return json.loads(path.read_text())


def _quickstart_rows() -> dict[str, dict]:
    return {row["name"]: row for row in _json(BENCH / "quickstart.json")["rows"]}


def _quickstart_machine() -> str:
    env = _json(BENCH / "quickstart.json")["environment"]
    return f"{env['cores']} CPU cores"


def quickstart() -> str:
    rows, machine = _quickstart_rows(), _quickstart_machine()
    met, below = [], []
    for world, (score, task, counts) in WORLD_WORDS.items():
        value = _json(RESULTS / f"eval_{world}.json")["scores"][score]
        (met if value >= TARGET else below).append(f"the {task} model {counts} on {value:.1%} of them")
    parts = []
    if met:
        parts.append(
            "; ".join(met) + f" ({('meets', 'both meet', 'all meet')[min(len(met), 3) - 1]} the target)"
        )
    if below:
        parts.append("below it, " + "; ".join(below))
    return (
        "This writes `outputs/0000_a-red-circle-to-the-left-of-a-blue-square.png` and `outputs/manifest.json`. The "
        "bundled models are small PT-DiTs trained in this repository on the built-in Shapes worlds (32×32 pixels, "
        f"MiniLM text) and run on a CPU in seconds: {rows['image']['seconds'][0]:.0f} s for the command above on "
        f"{machine}, start-up included, {rows['video']['seconds'][0]:.0f} s and "
        f"{rows['multiview']['seconds'][0]:.0f} s for the video and multi-view commands below "
        "(`benchmarks/results/quickstart.md`). Scored by the project's judges on prompts of held-out compositions "
        f"against the {TARGET:.0%} we aim for: "
        + "; ".join(parts)
        + ". [docs/results.md](docs/results.md) has "
        "every score, the full-attention baselines and the configs to train the models further:"
    )


def train_example() -> str:
    row = _quickstart_rows()["train-example"]
    return (
        "Put each image next to a caption file of the same name (`cat.png` + `cat.txt`), or list captions in a "
        "`metadata.jsonl` with `file_name` and `text` (diffusers' ImageFolder layout); videos (mp4/gif/webm) and "
        "multi-view folders (a subfolder of views per object) work the same way. This example writes such a folder, "
        f"trains on it and samples the trained model on a CPU in {row['seconds'][0]:.0f} s ({_quickstart_machine()}, "
        "`benchmarks/results/quickstart.md`):"
    )


def _num(v: float, digits: int = 1) -> str:
    return f"{v:,.{digits}f}"


def cpu_table() -> str:
    rows = [
        r for r in _json(BENCH / "cpu_quick.json") if r["model"].startswith(("PT-DiT-S", "PixArt-alpha-S"))
    ]
    ref = {r["height"]: r["forward_ms"] for r in rows if r["model"] == "PixArt-alpha-S"}
    spread = max(
        (max(r[k]) - min(r[k])) / min(r[k])
        for r in rows
        for k in ("forward_ms_all", "train_ms_all")
        if r.get(k)
    )
    r0 = rows[0]
    threads = "one thread" if r0["threads"] == 1 else f"{r0['threads']} threads"
    lines = [
        f"CPU, from `ptdit bench --quick` (`benchmarks/results/cpu_quick.md`; setup: {threads} of "
        f"an {r0['device_name']}, torch {r0['torch']}, {r0['dtype']}, batch {r0['batch']}, the whole transformer's "
        "forward pass and a training step (forward + backward + AdamW), median of "
        f"{len(r0['forward_ms_all'])} runs after warm-up, {r0['timer']} CPU time; the machine was shared, rows "
        f"spread by up to {spread:.0%}). PT-DiT-S with its window from `ratio_for_size` against our full-attention "
        "mode and a PixArt-α scaled to PT-DiT-S's parameter count (diffusers' `PixArtTransformer2DModel`, 10 layers, "
        "D = 384):",
        "",
        "| size | model | params (M) | forward ms | train ms | fwd / PixArt-alpha-S |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['height']}² | {r['model']} | {r['params'] / 1e6:.1f} | {_num(r['forward_ms'])} | "
            f"{_num(r['train_ms'])} | {r['forward_ms'] / ref[r['height']]:.2f} |"
        )
    return "\n".join(lines)


def gpu_table() -> str:
    report = _json(BENCH / "gpu_check_h100.json")
    env = report["environment"]
    dtype = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}.get(env["dtype"], env["dtype"])
    lines = [
        f"GPU, from `benchmarks/gpu_check.py` on one {env['device_name']} (torch {env['torch']}, {dtype}, batch 2 "
        f"forwards, CUDA-event medians; `benchmarks/results/gpu_check_h100.md`). PT-DiT-L against diffusers' "
        "PixArt-α at about the same parameter count, PT-DiT-XL against CogVideoX-2B, the XL training step against "
        f"the measured {dtype} matmul rate ({env['matmul_tflops']:.0f} TFLOP/s), XL training memory:",
        "",
        "| target | measured | threshold | result |",
        "| --- | --- | --- | --- |",
    ]
    for t in report["targets"]:
        lines.append(f"| {t['target']} | {t['value']:.3f} | {t['threshold']} | {t['result']} |")
    return "\n".join(lines)


BLOCKS: dict[str, Callable[[], str]] = {
    "quickstart": quickstart,
    "train-example": train_example,
    "cpu-table": cpu_table,
    "gpu-table": gpu_table,
}


def _wrap(text: str, width: int = 120) -> str:
    """Wrap prose paragraphs at `width` (tables and blank lines are kept as they are)."""
    out = []
    for para in text.split("\n"):
        if para.startswith("|") or not para:
            out.append(para)
            continue
        line = ""
        for word in para.split(" "):
            if line and len(line) + 1 + len(word) > width:
                out.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        out.append(line)
    return "\n".join(out)


def render(readme: str) -> str:
    """README text with every generated block rebuilt (ValueError for a block without its end marker)."""
    markers = {name: (f"<!-- sync_readme: {name} -->", f"<!-- /sync_readme: {name} -->") for name in BLOCKS}
    for begin, end in markers.values():
        if readme.count(begin) != 1 or readme.count(end) != 1 or readme.index(begin) > readme.index(end):
            raise ValueError(f"README.md must hold one {begin!r} ... {end!r} pair, in this order")
    for name, (begin, end) in markers.items():
        pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), flags=re.S)
        block = f"{begin}\n{_wrap(BLOCKS[name]())}\n{end}"
        readme = pattern.sub(lambda _m, block=block: block, readme)
    return readme


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="do not write; exit 1 when README.md is out of date")
    args = ap.parse_args(argv)
    old = README.read_text()
    new = render(old)
    if args.check:
        if new != old:
            diff = difflib.unified_diff(
                old.splitlines(), new.splitlines(), "README.md", "generated", lineterm=""
            )
            print("\n".join(diff))
            print("README.md is out of date: run python scripts/sync_readme.py", file=sys.stderr)
            return 1
        print("README.md is up to date")
        return 0
    if new != old:
        from ptdit.io import atomic_write_text

        atomic_write_text(README, new)
        print("rewrote README.md")
    else:
        print("README.md is up to date")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())

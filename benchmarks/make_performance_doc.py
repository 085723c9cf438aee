"""Refill the generated tables of docs/performance.md from the measurements in benchmarks/results/.

docs/performance.md is written by hand; each table sits between `<!-- NAME -->` and `<!-- /NAME -->` and is built
here from one or more JSON files (no number typed by hand):

  summary, setup                  all of them
  cpu-quick                       cpu_quick.json      (ptdit bench --quick, benchmarks/run_quick_cpu.sh)
  cpu-fastpaths                   cpu_fastpaths.json  (benchmarks/fastpaths_cpu.py)
  cpu-attention, cpu-steps        cpu_attention.json  (benchmarks/cpu_attention.py)
  gpu-targets, gpu-forward,
  gpu-video, gpu-train, gpu-checks  gpu_check_h100.json (benchmarks/gpu_check.py on an H100)

The markdown beside each JSON in benchmarks/results/ is what its script writes from that JSON; this script rewrites
it too, so that an edit of the JSON cannot leave it behind.

usage: python benchmarks/make_performance_doc.py           # rewrite the tables and the result markdown
       python benchmarks/make_performance_doc.py --check   # write nothing; exit 1 and name what is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import cpu_attention  # noqa: E402
import fastpaths_cpu  # noqa: E402
import gpu_check  # noqa: E402

from ptdit.bench import write_outputs  # noqa: E402
from ptdit.bench.cases import Case  # noqa: E402
from ptdit.complexity.tables import fill_blocks, format_table, stale_blocks  # noqa: E402
from ptdit.io import atomic_write_text  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "performance.md"
GPU = RESULTS / "gpu_check_h100.json"
CPU_REFERENCE = "PixArt-alpha-S"  # the reference model of `ptdit bench --quick`


def _load(name: str) -> Any:
    return json.loads((RESULTS / name).read_text())


def _num(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def _size(r: dict[str, Any]) -> str:
    if r["frames"] == 1 and r["height"] == r["width"]:
        return f"{r['height']}²"
    return Case("", r["height"], r["width"], r["frames"]).label


def _fwd(rows: list[dict], model: str, size: str) -> float | None:
    return next(
        (r["forward_ms"] for r in rows if r["model"] == model and _size(r) == size and r.get("forward_ms")),
        None,
    )


def _ratio(rows: list[dict], model: str, peer: str, size: str) -> float | None:
    a, b = _fwd(rows, model, size), _fwd(rows, peer, size)
    return a / b if a and b else None


def _best(rows: list[dict], models: tuple[str, ...], peer: str, size: str) -> str:
    """The lowest forward-time ratio among `models` against `peer`, with the variant that gave it."""
    ratios = {m: r for m in models if (r := _ratio(rows, m, peer, size)) is not None}
    if not ratios:
        return "–"
    best = min(ratios, key=ratios.get)
    return f"{ratios[best]:.2f} ({best})"


def _threshold(data: dict, prefix: str) -> str:
    return next((t["threshold"] for t in data["targets"] if t["target"].startswith(prefix)), "–")


def _spread(rows: list[dict]) -> float | None:
    """Worst max/min - 1 over the timed repeats of one row."""
    runs = [r[k] for r in rows for k in ("forward_ms_all", "train_ms_all") if r.get(k) and len(r[k]) > 1]
    return max((max(t) / min(t) - 1 for t in runs), default=None)


# =============================================================================================== tables
RELEASED_L = ("PT-DiT-L", "PT-DiT-L+fuse", "PT-DiT-L+fast", "PT-DiT-L+fuse+flex")
RELEASED_XL = ("PT-DiT-XL", "PT-DiT-XL+fast")


def summary_table() -> str:
    """Forward time of PT-DiT over its peer (below 1: PT-DiT is faster) and the training measurements."""
    gpu, cpu = json.loads(GPU.read_text()), _load("cpu_quick.json")
    rows, matmul = gpu["rows"], gpu["environment"].get("matmul_tflops")
    card = gpu["environment"]["device_name"].removeprefix("NVIDIA ").split()[0]  # "H100"
    out = []
    for s in (512, 1024, 2048, 4096):
        size = f"{s}²"
        out.append([card, "forward / PixArt-alpha, eager", size, _best(rows, RELEASED_L, "PixArt-alpha", size),
                    _best(rows, ("PT-DiT-L-lean+fast",), "PixArt-alpha", size),
                    _threshold(gpu, f"PT-DiT-L / PixArt-alpha forward at {s}^2")])  # fmt: skip
    for s in (512, 1024):
        size = f"{s}²"
        out.append([card, "forward / PixArt-alpha, CUDA graphs", size,
                    _best(rows, ("PT-DiT-L+fast+graph",), "PixArt-alpha+graph", size),
                    _best(rows, ("PT-DiT-L-lean+fast+graph",), "PixArt-alpha+graph", size), "–"])  # fmt: skip
    for size, target in (("49x480x720", _threshold(gpu, "PT-DiT-XL / CogVideoX-2B")), ("96x512x512", "–")):
        out.append([card, "forward / CogVideoX-2B", size, _best(rows, RELEASED_XL, "CogVideoX-2B", size),
                    _best(rows, ("PT-DiT-XL-lean+fast",), "CogVideoX-2B", size), target])  # fmt: skip

    def train(models: tuple[str, ...], size: str, key: str) -> str:
        found = [r for r in rows if r["model"] in models and _size(r) == size and r.get("train_ms")]
        if not found:
            return "–"
        if key == "rate":
            best = max(found, key=lambda r: r["train_tflops"])
            return f"{best['train_tflops'] / matmul:.2f} ({best['model']})"
        best = min(found, key=lambda r: r["train_peak_mem_gb"])
        ckpt = ", checkpointing" if best.get("train_grad_checkpointing") else ""
        return f"{best['train_peak_mem_gb']:.1f} GB ({best['model']}{ckpt})"

    xl_released = RELEASED_XL + ("PT-DiT-XL+fuse",)
    out.append([card, "PT-DiT-XL training step / bf16 matmul rate", "1024²", train(xl_released, "1024²", "rate"),
                train(("PT-DiT-XL-lean+fast",), "1024²", "rate"), _threshold(gpu, "PT-DiT-XL training step")])  # fmt: skip
    out.append([card, "PT-DiT-XL training peak memory, batch 1", "2048²", train(xl_released, "2048²", "mem"),
                train(("PT-DiT-XL-lean+fast",), "2048²", "mem"), _threshold(gpu, "PT-DiT-XL trains at 2048^2")])  # fmt: skip
    for s in sorted({r["height"] for r in cpu}):
        size = f"{s}²"
        out.append(["CPU", f"forward / {CPU_REFERENCE}", size,
                    _best(cpu, ("PT-DiT-S+fast",), CPU_REFERENCE, size),
                    _best(cpu, ("PT-DiT-S-lean+fast",), CPU_REFERENCE, size), "–"])  # fmt: skip
    headers = ["device", "measurement", "size", "released block", "lean block", "target"]
    return format_table(headers, out, markdown=True)


def setup_table() -> str:
    gpu = json.loads(GPU.read_text())
    quick = _load("cpu_quick.json")
    fast, attn = _load("cpu_fastpaths.json"), _load("cpu_attention.json")
    out = []
    for name, env, rows in (
        ("cpu_quick.json", quick[0], quick),
        ("cpu_fastpaths.json", fast["environment"], []),
        ("cpu_attention.json", attn["environment"], []),
        (GPU.name, gpu["environment"], gpu["rows"]),
    ):
        loads = [r["load_avg_1m"] for r in rows or [env] if r.get("load_avg_1m") is not None]
        load = (
            "–"
            if not loads
            else f"{min(loads):.1f}" + (f"–{max(loads):.1f}" if max(loads) > min(loads) else "")
        )
        spread = _spread(rows)
        out.append([f"`{name}`", env["device_name"], env["torch"], env["threads"], env["dtype"], env["timer"],
                     load, "–" if spread is None else f"{100 * spread:.0f}%"])  # fmt: skip
    headers = [
        "file",
        "machine",
        "torch",
        "threads",
        "dtype",
        "clock",
        "1-min load",
        "worst spread of repeats",
    ]
    return format_table(headers, out, markdown=True)


def cpu_quick_table() -> str:
    rows = _load("cpu_quick.json")
    out = [[_size(r), r["model"], _num(r["params"] / 1e6, 1), _num(r["forward_ms"], 1), _num(r["train_ms"], 1),
            _num(r["peak_mem_gb"]), _num(_ratio(rows, r["model"], CPU_REFERENCE, _size(r)))] for r in rows]  # fmt: skip
    headers = [
        "size",
        "model",
        "params (M)",
        "forward ms",
        "train ms",
        "peak GB",
        f"forward / {CPU_REFERENCE}",
    ]
    return format_table(headers, out, markdown=True)


def cpu_fastpaths_table() -> str:
    rows = _load("cpu_fastpaths.json")["rows"]
    ref = {r["shape"]: r["ms"] for r in rows if "reference" in r["path"]}
    out = [[r["shape"], r["path"], _num(r["ms"]), _num(r["ms"] / ref[r["shape"]]), _num(r["first_call_s"]),
            f"{r['max_abs_diff']:.1e}"] for r in rows]  # fmt: skip
    headers = ["shape", "path", "ms", "/ reference", "first call (s)", "max abs diff"]
    return format_table(headers, out, markdown=True)


def cpu_attention_table() -> str:
    """Forward + backward of one attention call: SDPA over the explicit product, per dtype, and what ptdit uses."""
    rows = [r for r in _load("cpu_attention.json")["rows"] if r["level"] == "attention"]
    dtypes = list(dict.fromkeys(r["dtype"] for r in rows))
    out = []
    for case in dict.fromkeys(r["case"] for r in rows):
        by = {r["dtype"]: r for r in rows if r["case"] == case}
        cells = [c for d in dtypes for c in (_num(by[d]["speedup"]), by[d]["routed_to"]) if d in by]
        out.append([case, next(iter(by.values()))["keys"], *cells])
    headers = ["case", "keys"] + [h for d in dtypes for h in (f"{d}: SDPA / explicit", f"{d}: ptdit uses")]
    return format_table(headers, out, markdown=True)


def cpu_steps_table() -> str:
    rows = [r for r in _load("cpu_attention.json")["rows"] if r["level"] == "train step"]
    out = []
    for case in dict.fromkeys(r["case"] for r in rows):
        by = {r["routing"]: r for r in rows if r["case"] == case}
        routed, sdpa = by.get("explicit for short keys"), by.get("sdpa everywhere")
        out.append([case, (routed or sdpa)["batch"], _num(routed and routed["ms_per_step"], 0),
                    _num(sdpa and sdpa["ms_per_step"], 0),
                    _num(routed and sdpa and sdpa["ms_per_step"] / routed["ms_per_step"])])  # fmt: skip
    headers = ["config", "batch", "ms / step, explicit for short keys", "ms / step, SDPA everywhere", "ratio"]
    return format_table(headers, out, markdown=True)


def gpu_targets_table() -> str:
    data = json.loads(GPU.read_text())
    out = [[t["target"], _num(t.get("value"), 3), t["threshold"], t["result"]] for t in data["targets"]]
    return format_table(["target", "measured", "threshold", "result"], out, markdown=True)


def _forward_pivot(
    rows: list[dict], models: list[str], sizes: list[str], peer: Callable[[str], str]
) -> list[list]:
    out = []
    for m in models:
        cells = []
        for size in sizes:
            r = next(
                (r for r in rows if r["model"] == m and _size(r) == size and r.get("train_ms") is None), None
            )
            if r is None:
                cells.append("")
            elif r.get("forward_ms") is None:
                cells.append("out of memory" if "out of memory" in r["notes"] else "failed")
            else:
                ratio = _ratio(rows, m, peer(m), size)
                cells.append(f"{r['forward_ms']:,.1f}" + (f" ({ratio:.2f})" if ratio is not None else ""))
        out.append([m, *cells])
    return out


def gpu_forward_table() -> str:
    """Image forwards: ms at batch 2, and in brackets the ratio to PixArt-alpha run the same way (graph or eager)."""
    rows = [r for r in json.loads(GPU.read_text())["rows"] if r["frames"] == 1 and r.get("train_ms") is None]
    sizes = sorted({_size(r) for r in rows}, key=lambda s: int(s[:-1]))
    models = list(dict.fromkeys(r["model"] for r in rows))

    def peer(m: str) -> str:
        return "PixArt-alpha+graph" if m.endswith("+graph") else "PixArt-alpha"

    spreads = [_spread([r for r in rows if _size(r) == size]) for size in sizes]
    pivot = _forward_pivot(rows, models, sizes, peer)
    pivot.append(["worst spread of repeats", *("–" if s is None else f"{100 * s:.0f}%" for s in spreads)])
    return format_table(["model", *sizes], pivot, markdown=True)


def gpu_video_table() -> str:
    rows = [r for r in json.loads(GPU.read_text())["rows"] if r["frames"] > 1]
    sizes = list(dict.fromkeys(_size(r) for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    pivot = _forward_pivot(rows, models, sizes, lambda m: "CogVideoX-2B")
    return format_table(["model", *sizes], pivot, markdown=True)


def gpu_train_table() -> str:
    data = json.loads(GPU.read_text())
    matmul = data["environment"].get("matmul_tflops")
    out = []
    for r in data["rows"]:
        if r.get("train_ms") is None:
            continue
        rate = r.get("train_tflops")
        out.append([_size(r), r["model"], r["train_batch"], "on" if r.get("train_grad_checkpointing") else "off",
                    _num(r["train_ms"], 1), _num(rate, 1), _num(rate and matmul and rate / matmul),
                    _num(r.get("train_peak_mem_gb"), 1)])  # fmt: skip
    headers = ["size", "model", "batch", "checkpointing", "ms / step", "TFLOP/s", "/ matmul rate", "peak GB"]
    return format_table(headers, out, markdown=True)


def gpu_checks_table() -> str:
    checks = json.loads(GPU.read_text())["checks"]
    dtypes = list(dict.fromkeys(c["dtype"] for c in checks))
    out = []
    for path in dict.fromkeys(c["path"] for c in checks):
        by = {c["dtype"]: c for c in checks if c["path"] == path}
        cells = [f"{by[d]['rel_error']:.1e} ({by[d]['result']})" if d in by and "rel_error" in by[d]
                 else (by[d]["result"] if d in by else "") for d in dtypes]  # fmt: skip
        out.append([path, *cells])
    tols = {
        d: next(c["tol"] for c in checks if c["dtype"] == d and c["path"].startswith("forward"))
        for d in dtypes
    }
    return format_table(
        ["path", *(f"{d} rel. error (forward tol. {tols[d]:g})" for d in dtypes)], out, markdown=True
    )


TABLES: dict[str, Callable[[], str]] = {
    "summary": summary_table,
    "setup": setup_table,
    "cpu-quick": cpu_quick_table,
    "cpu-fastpaths": cpu_fastpaths_table,
    "cpu-attention": cpu_attention_table,
    "cpu-steps": cpu_steps_table,
    "gpu-targets": gpu_targets_table,
    "gpu-forward": gpu_forward_table,
    "gpu-video": gpu_video_table,
    "gpu-train": gpu_train_table,
    "gpu-checks": gpu_checks_table,
}


# =============================================================================================== result markdown
def _gpu_check_markdown(path: Path) -> str:
    return gpu_check.legacy_markdown(json.loads(path.read_text()))  # the recorded run, as its script wrote it


def result_markdown() -> dict[Path, str]:
    """Each benchmarks/results/*.md as its script writes it from the JSON beside it."""
    attn, fast = _load("cpu_attention.json"), _load("cpu_fastpaths.json")
    out = {
        RESULTS / "cpu_attention.md": cpu_attention.markdown(attn["environment"], attn["rows"]),
        RESULTS / "cpu_fastpaths.md": fastpaths_cpu.markdown(fast["rows"], fast["environment"]),
        GPU.with_suffix(".md"): _gpu_check_markdown(GPU),
    }
    quick = RESULTS / "cpu_quick.md"  # its first line is the command, which the JSON does not keep
    command = quick.read_text().split("\n\n", 1)[0] if quick.exists() else ""
    out[quick] = command + "\n\n" + write_outputs(_load("cpu_quick.json"), reference=CPU_REFERENCE)
    return out


def stale(doc: str) -> list[str]:
    """What is out of date: block names of docs/performance.md and paths of result markdown."""
    names = stale_blocks(doc, {name: build() for name, build in TABLES.items()})
    files = [
        f"benchmarks/results/{p.name}"
        for p, text in result_markdown().items()
        if not p.exists() or p.read_text() != text
    ]
    return names + files


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 naming what is out of date")
    args = p.parse_args(argv)
    doc = DOC.read_text()
    if args.check:
        if out := stale(doc):
            print(
                f"out of date: {', '.join(out)} (run python benchmarks/make_performance_doc.py)",
                file=sys.stderr,
            )
            return 1
        return 0
    for path, text in result_markdown().items():
        atomic_write_text(path, text)
    atomic_write_text(DOC, fill_blocks(doc, {name: build() for name, build in TABLES.items()}))
    print(f"wrote {DOC.relative_to(ROOT)} and the markdown of benchmarks/results/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

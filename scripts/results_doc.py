"""Fill the tables of docs/results.md from the JSON files that hold the measurements.

docs/results.md is written by hand, except between `<!-- results_doc: NAME [WORLD] -->` and
`<!-- /results_doc: NAME [WORLD] -->`, where this script writes the table TABLES[NAME](WORLD) from
docs/results/ (scripts/bundle_models.py: `ptdit eval` of the bundled models, of their full-attention baselines in
baseline/ and of the ablations in ablations/NAME/, each with an about.json {"label", "change"}) and from
benchmarks/results/ (benchmarks/decision_noise.py, benchmarks/relation_probe.py).

usage: python scripts/results_doc.py            # rewrite the tables
       python scripts/results_doc.py --check    # write nothing; exit 1 when a table is stale
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
BENCH = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "results.md"
TARGETS = {
    "shapes-image": 0.90,
    "shapes-video": 0.90,
    "shapes-multiview": 0.90,
}  # the held-out targets
# the ablation that is the bundled PT-DiT's first stage, trained side by side with the baseline (equal budget)
EQUAL_BUDGET = {"shapes-image": "image_first_stage", "shapes-video": "video_first_stage"}
DECIDED = ("motion", "relation")  # the criteria the decision-noise table follows


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def table(head: list[str], rows: list[list]) -> list[str]:
    """A markdown table, without the columns that hold nothing in any row."""
    keep = [i for i in range(len(head)) if any(row[i] is not None for row in rows)]
    return [
        "| " + " | ".join(head[i] for i in keep) + " |",
        "|" + "---|" * len(keep),
        *("| " + " | ".join(_fmt(row[i]) for i in keep) + " |" for row in rows),
    ]


class Run(NamedTuple):
    model: str  # "PT-DiT" or "full attention"
    name: str  # "bundled" or the ablation's folder
    label: str  # how the tables name the run
    path: Path  # the folder of its eval_<world>.json
    report: dict


def runs(world: str) -> list[Run]:
    """Every evaluated model of `world`: the bundled PT-DiT and its baseline, then each ablation's."""
    folders = [(RESULTS, "bundled", "bundled")]
    for f in sorted((RESULTS / "ablations").glob("*/")):
        about = _json(f / "about.json") or {"label": f.name}
        folders.append((f, f.name, f"[{about['label']}]({f.relative_to(DOC.parent)}/about.json)"))
    found = []
    for folder, name, label in folders:
        for model, path in (("PT-DiT", folder), ("full attention", folder / "baseline")):
            if report := _json(path / f"eval_{world}.json"):
                found.append(Run(model, name, label, path, report))
    return found


def key_runs(world: str) -> list[Run]:
    """The bundled PT-DiT, its equal-budget first stage (EQUAL_BUDGET) and the bundled baseline."""
    chosen = [r for r in runs(world) if r.name in ("bundled", EQUAL_BUDGET.get(world))]
    return sorted(chosen, key=lambda r: r.model != "PT-DiT")  # PT-DiT's rows first


def _worlds() -> list[str]:
    return [
        p.stem[len("eval_") :] for p in sorted(RESULTS.glob("eval_*.json")) if not p.stem.endswith("_train")
    ]


def _stages(report: dict) -> list[dict]:
    """A model's training records, first stage first: a later stage keeps the record of the model it started
    from under training["init"]["training"] (scripts/bundle_models.py)."""
    stages, record = [], report.get("training") or {}
    while record:
        stages.insert(0, record)
        record = (record.get("init") or {}).get("training") or {}
    return stages


def _steps(report: dict) -> int | None:
    return sum(s.get("steps") or 0 for s in _stages(report)) or None


def _seconds(report: dict) -> int | None:
    return round(sum(s.get("step_seconds") or 0 for s in _stages(report))) or None


def _keys(report: dict) -> list[str]:
    return [k for k, v in report["scores"].items() if not isinstance(v, dict)]


def summary(_: str = "") -> list[str]:
    """Each world's headline score: the bundled PT-DiT, its equal-budget first stage, the baseline."""
    rows = []
    for world in _worlds():
        chosen = key_runs(world)
        (key,) = chosen[0].report["headline"]
        for r in chosen:
            rows.append([world, r.model, r.label, key, r.report["scores"][key], f"{TARGETS[world]:.2f}",
                         r.report["settings"]["n"], _steps(r.report), len(_stages(r.report)),
                         _seconds(r.report)])  # fmt: skip
    head = ["world", "model", "run", "score", "value", "target", "prompts", "steps", "stages",
            "step time (s)"]  # fmt: skip
    return table(head, rows)


def _grid(png: Path) -> str | None:
    """A link to a sample grid that `ptdit eval` wrote, if it did."""
    return f"[grid]({png.relative_to(DOC.parent)})" if png.is_file() else None


def scores(world: str) -> list[str]:
    """Every criterion of every evaluated model of `world` on the held-out prompts, with its sample grid."""
    all_runs = runs(world)
    keys = _keys(all_runs[0].report)
    rows = []
    for r in all_runs:
        grid = _grid(r.path / f"eval_{world}.png")
        rows.append([r.model, r.label, _steps(r.report), *(r.report["scores"].get(k) for k in keys), grid])
    return table(["model", "run", "steps", *keys, "samples"], rows)


def train_split(world: str) -> list[str]:
    """The same criteria on prompts of training compositions (`ptdit eval --split train`), where recorded."""
    rows = []
    for r in runs(world):
        if report := _json(r.path / f"eval_{world}_train.json"):
            rows.append(
                [r.model, r.label, *report["scores"].values(), _grid(r.path / f"eval_{world}_train.png")]
            )
            keys = list(report["scores"])
    return table(["model", "run", *keys, "samples"], rows) if rows else []


def _config(report: dict) -> str:
    world = report["world"]
    return (report["training"].get("machine") or {}).get("config", f"configs/{world.replace('-', '_')}.yaml")


def _flag(key: str, value) -> str:
    return f' --{key} "{json.dumps(value)}"' if isinstance(value, list) else f" --{key} {value}"


def training(world: str) -> list[str]:
    """How the bundled PT-DiT (stage by stage) and its baseline were trained, as commands."""
    rows = []
    for r in runs(world):
        if r.name != "bundled":
            continue
        config = _config(r.report)
        threads = yaml.safe_load((ROOT / config).read_text())["train"].get("threads")
        for i, stage in enumerate(_stages(r.report), 1):
            changes = dict(stage.get("changes") or {})
            if r.model == "full attention":
                changes.setdefault("model.attention", "full")
            init = (stage.get("init") or {}).get("from")
            flags = (_flag("init.from", init) if init else "") + "".join(
                _flag(k, v) for k, v in changes.items()
            )
            machine = stage.get("cpu") or (stage.get("machine") or {}).get("device")
            rows.append([r.model, i, f"`ptdit train {config}{flags}`", stage.get("steps"),
                         round(stage["step_seconds"]), machine, changes.get("train.threads", threads),
                         stage.get("final_loss")])  # fmt: skip
    head = ["model", "stage", "command", "steps", "step time (s)", "machine", "threads", "final loss"]
    return table(head, rows)


def _image_verdicts(sample: dict) -> tuple[str, dict[str, list[bool]]]:
    """A held-out image sample's kind (colour-shape: a held-out colour-shape pair; layout: only its layout is
    held out) and its verdicts."""
    from ptdit.worlds.shapes_image import heldout_kind, parse_prompt

    verdicts = {k: [] if sample.get(k) is None else [sample[k]] for k in ("shape", "relation", "ok")}
    return heldout_kind(parse_prompt(sample["prompt"])) or "none", verdicts


def _video_verdicts(sample: dict) -> tuple[str, dict[str, list[bool]]]:
    """A held-out video sample's number of objects and its verdicts; with the judge's reading of each object's
    motion ("judged", recorded since the fourth video stage), whether each prompted object shows its motion,
    split into held-out colour-shape-motion combos and the others."""
    from ptdit.worlds.shapes_video import HELDOUT_COMBOS, parse_prompt

    objects = parse_prompt(sample["prompt"])["objects"]
    verdicts = {k: [] if sample.get(k) is None else [sample[k]] for k in ("motion", "ok")}
    verdicts |= {"held-out combo moves": [], "other object moves": []}
    for o, seen in zip(objects, (sample.get("judged") or {}).get("motions") or []):
        held = (o["color"], o["shape"], o["motion"]) in HELDOUT_COMBOS
        verdicts["held-out combo moves" if held else "other object moves"].append(seen == o["motion"])
    return ("one", "two")[len(objects) - 1], verdicts


COLUMN = {"n": "prompts", "ok": "accuracy"}  # a kind table's names for a group's n and whole-prompt verdict
KINDS: dict[str, Callable[[dict], tuple[str, dict[str, list[bool]]]]] = {
    "shapes-image": _image_verdicts,
    "shapes-video": _video_verdicts,
}


def kind_scores(report: dict) -> dict[str, dict]:
    """Held-out samples grouped by kind (KINDS): n and the share of each verdict among the samples (or
    objects) it was asked of ("ok": the whole prompt; None when never asked)."""
    groups: dict[str, dict] = {}
    for sample in report.get("samples", []):
        kind, verdicts = KINDS[report["world"]](sample)
        group = groups.setdefault(kind, {"n": 0})
        group["n"] += 1
        for k, v in verdicts.items():
            group.setdefault(k, []).extend(v)
    return {
        kind: {k: v if k == "n" else (sum(v) / len(v) if v else None) for k, v in g.items()}
        for kind, g in sorted(groups.items())
    }


def kinds(world: str) -> list[str]:
    """Held-out scores by kind of prompt, one row per model, one group of columns per kind."""
    found = [(r, kind_scores(r.report)) for r in runs(world) if r.report.get("samples")]
    cols = list(dict.fromkeys((kind, k) for _, by_kind in found for kind, s in by_kind.items() for k in s))
    head = [f"{COLUMN.get(k, k)} ({kind})" for kind, k in cols]
    rows = [[r.model, r.label, *(by_kind.get(kind, {}).get(k) for kind, k in cols)] for r, by_kind in found]
    return table(["model", "run", *head], rows)


def draws(world: str, n: int = 2000) -> list[str]:
    """How many of `n` training draws of `world`, as it draws them by default, have two objects."""
    from ptdit.worlds.judges import world_module

    ds = world_module(world).make_dataset("train", length=n, seed=0)
    two = sum(len(ds.spec_and_caption(i)[0]["objects"]) == 2 for i in range(n))
    return table(["training draws", "with two objects", "share"], [[n, two, two / n]])


def decision_noise(_: str = "") -> list[str]:
    """Judged criteria of samples started from noised training scenes at level tau0 (benchmarks/decision_noise.py)."""
    reports = [json.loads(p.read_text()) for p in sorted(BENCH.glob("decision_noise_*.json"))]
    taus = sorted({r["tau0"] for rep in reports for m in rep["models"] for r in m["rows"]}, reverse=True)
    rows = []
    for rep in reports:
        for m in rep["models"]:
            by_tau = {r["tau0"]: r for r in m["rows"]}
            mass = by_tau.get(0.8, {}).get("train_mass_above")
            for key in (k for k in DECIDED if m["rows"][0].get(k) is not None):
                rows.append([f"`{m['model']}`", mass, key,
                             *(by_tau.get(t, {}).get(key) for t in taus)])  # fmt: skip
    head = ["model", "train mass > 0.8", "criterion", *(f"tau0 {t:.2f}" for t in taus)]
    return table(head, rows)


def relation_probe(_: str = "") -> list[str]:
    """The share of scenes whose predicted x0 puts object A on the captioned side of B (benchmarks/relation_probe.py)."""
    reports = [json.loads(p.read_text()) for p in sorted(BENCH.glob("relation_probe_*.json"))]
    taus = sorted({float(t) for rep in reports for m in rep["models"] for t in m["rates"]}, reverse=True)
    rows = []
    for rep in reports:
        for m in rep["models"]:
            rates = {float(t): v for t, v in m["rates"].items()}
            rows.append([rep["split"], rep["n"], f"`{m['model']}`", *(rates.get(t) for t in taus)])
    return table(["split", "scenes", "model", *(f"tau {t:.2f}" for t in taus)], rows)


TABLES: dict[str, Callable[[str], list[str]]] = {
    "summary": summary,
    "scores": scores,
    "train-split": train_split,
    "training": training,
    "kinds": kinds,
    "draws": draws,
    "decision-noise": decision_noise,
    "relation-probe": relation_probe,
}


def fill(text: str, make: Callable[[str], list[str]], tag: str) -> str:
    """`text` with the lines between each `<!-- TAG: NAME -->` and `<!-- /TAG: NAME -->` replaced by make(NAME)."""
    pattern = re.compile(rf"(<!-- {tag}: (.+?) -->\n).*?(<!-- /{tag}: \2 -->)", flags=re.S)
    found = pattern.findall(text)
    if len(found) != text.count(f"<!-- {tag}: "):
        raise ValueError(f"every <!-- {tag}: NAME --> needs its <!-- /{tag}: NAME --> after it")
    return pattern.sub(lambda m: m[1] + "\n".join(make(m[2])) + "\n" + m[3], text)


def _make(block: str) -> list[str]:
    name, _, world = block.partition(" ")
    return TABLES[name](world)


def update(path: Path, new: str, check: bool, script: str = "scripts/results_doc.py") -> int:
    """Write `new` to `path`; with `check`, write nothing and return 1 (showing the difference) if they differ."""
    old = path.read_text()
    if new == old:
        return 0
    if check:
        diff = difflib.unified_diff(old.splitlines(), new.splitlines(), str(path), "generated", lineterm="")
        print("\n".join(diff))
        print(f"{path.relative_to(ROOT)} is stale: run python {script}", file=sys.stderr)
        return 1
    path.write_text(new)
    print(f"rewrote {path.relative_to(ROOT)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 when a table is stale")
    args = ap.parse_args(argv)
    return update(DOC, fill(DOC.read_text(), _make, "results_doc"), args.check)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())

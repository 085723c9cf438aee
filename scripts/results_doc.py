"""Write docs/results.md from the evaluation files in docs/results/ (made by scripts/bundle_models.py).

python scripts/results_doc.py
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
BENCH = ROOT / "benchmarks" / "results"
DECIDED = ("motion", "relation", "shape")  # the criteria the decision-noise table follows
TARGETS = {"shapes-image": 0.90, "shapes-video": 0.90, "shapes-multiview": 0.90}


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def _where(train: dict) -> str:
    """Where and how long a run trained, from its eval JSON's training record."""
    m = train.get("machine")
    if m:
        return (
            f"trained on one {m.get('device')} (torch {m.get('torch')}) for {m.get('time_limit_s'):.0f} s of "
            f"training loop ({train.get('step_seconds')} s of step time), sharing the GPU with its full-attention "
            "baseline"
        )
    cpu = train.get("cpu")  # recorded by scripts/bundle_models.py on the machine that trained the run
    threads = (train.get("changes") or {}).get("train.threads")  # a stage run alone with its own threads
    cores = f"2 cores, {_threads(threads)}" if threads else "2 cores shared by the runs"
    where = f"the CPU ({cpu}, {cores})" if cpu else f"{cores} (CPU model not recorded)"
    return f"{train.get('step_seconds')} s of step time on {where}"


def _flags(train: dict) -> str:
    """A training record's overrides of its config (scripts/bundle_models.py) as command-line flags."""
    changes = train.get("changes") or {}
    return "".join(
        f' --{k} "{json.dumps(v)}"' if isinstance(v, list) else f" --{k} {v}" for k, v in changes.items()
    )


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _is_train(path: Path) -> bool:
    return path.stem.endswith("_train")


def _train_split(world: str, baseline: bool = False) -> dict | None:
    """The `ptdit eval --split train` report of `world` (training compositions), if one was recorded."""
    return _read_json((RESULTS / "baseline" if baseline else RESULTS) / f"eval_{world}_train.json")


def _score_table(columns: list[str], rows: list[tuple[list, dict]], keys: list[str]) -> list[str]:
    """A markdown table of reports' scores: the leading `columns`, then one per score in `keys`; each row is
    (its leading cells, its report)."""
    return [
        "| " + " | ".join(columns + keys) + " |",
        "|" + "---|" * (len(columns) + len(keys)),
        *(
            "| " + " | ".join([*map(str, cells), *(_fmt(r["scores"].get(k)) for k in keys)]) + " |"
            for cells, r in rows
        ),
    ]


def train_split_lines(world: str, keys: list[str]) -> list[str]:
    """Scores on training compositions next to the held-out ones: learning vs compositional generalisation."""
    ours, base = _train_split(world), _train_split(world, baseline=True)
    if ours is None:
        return []
    rows = [("PT-DiT", ours)] + ([("full attention", base)] if base else [])
    out = "docs/results" + ("[/baseline]" if base else "")
    return [
        f"On prompts of training compositions (`ptdit eval --split train --n {ours['settings']['n']}`, written to "
        f"`{out}/eval_{world}_train.json`) the same models score:",
        "",
        *_score_table(["model (training compositions)"], [([name], r) for name, r in rows], keys),
        "",
    ]


def _ablations(world: str) -> list[tuple[Path, dict, dict | None, dict | None]]:
    """(folder, about, PT-DiT report or None, baseline report or None) of each ablation folder of `world`."""
    found = []
    for f in sorted((RESULTS / "ablations").glob("*/")):
        ours, base = _read_json(f / f"eval_{world}.json"), _read_json(f / "baseline" / f"eval_{world}.json")
        if ours or base:  # either model may be absent
            found.append((f, _read_json(f / "about.json"), ours, base))
    return found


def ablation_lines(world: str, report: dict, keys: list[str]) -> list[str]:
    """Runs of `world` that differ from the bundled one in one setting, next to it: each folder of
    docs/results/ablations/ holds eval_<world>.json and/or baseline/eval_<world>.json, and about.json
    ({"label", "change"})."""
    found = _ablations(world)
    if not found:
        return []
    rows = [("PT-DiT", "bundled", report)]
    rows += [("PT-DiT", about["label"], r) for _, about, r, _ in found]
    rows += [("full attention", "bundled", _baseline(world))]
    rows += [("full attention", about["label"], b) for _, about, _, b in found]
    rows = [row for row in rows if row[2] is not None]
    text = "; ".join(
        f"`{folder.relative_to(ROOT)}/` ({about['label']}): {about['change']}"
        for folder, about, _, _ in found
    )
    return [
        f"**Ablations** (the same held-out evaluation): {text}.",
        "",
        *_score_table(
            ["model", "run", "steps"], [([name, run, _steps(r)], r) for name, run, r in rows], keys
        ),
        "",
    ]


@functools.cache
def _baseline(world: str) -> dict | None:
    """The full-attention baseline's evaluation of `world`, if one was recorded."""
    return _read_json(RESULTS / "baseline" / f"eval_{world}.json")


def _headline(report: dict) -> float:
    return next(iter(report["headline"].values()))


def summary(reports: list[dict]) -> list[str]:
    """One line per world: headline score against its target, PT-DiT and the baseline."""
    lines = [
        "| world | score | PT-DiT | full-attention baseline | target | trained on |",
        "|---|---|---|---|---|---|",
    ]
    for report in reports:
        world = report["world"]
        ((headline, value),) = report["headline"].items()
        base = (_baseline(world) or {}).get("headline", {}).get(headline)
        train = report.get("training", {})
        where = train["machine"]["device"] if train.get("machine") else "CPU"
        lines.append(
            f"| {world} | {headline} | {value:.3f} | {_fmt(base)} | {TARGETS.get(world, 0):.0%} | "
            f"{where}, {_steps(report)} steps{_in_stages(report)} |"
        )
    return lines


def _stages(report: dict | None) -> list[dict]:
    """The training records of a report's model, first stage first: a later stage keeps the record of the
    model it started from under training["init"]["training"] (scripts/bundle_models.py)."""
    stages, record = [], (report or {}).get("training") or {}
    while record:
        stages.insert(0, record)
        record = (record.get("init") or {}).get("training") or {}
    return stages


def _nsteps(report: dict | None) -> int:
    """Steps of all the stages of a report's model."""
    return sum(stage.get("steps") or 0 for stage in _stages(report))


def _seconds(report: dict | None) -> float:
    """Step time of all the stages of a report's model."""
    return round(sum(stage.get("step_seconds") or 0 for stage in _stages(report)), 1)


def _steps(report: dict | None) -> str:
    n = _nsteps(report)
    return f"{n:,}" if n else "?"


def _in_stages(report: dict | None) -> str:
    """ " in N stages" for a model trained in more than one stage, else ""."""
    n = len(_stages(report))
    return f" in {n} stages" if n > 1 else ""


def _model_config(world: str) -> dict:
    """The bundled model's config.json (empty when the world has no bundled model)."""
    return _read_json(ROOT / "ptdit" / "assets" / "models" / world / "config.json") or {}


def _run_sentence(report: dict) -> str:
    """How one bundled model was trained, and against which baseline budget, from its files and config."""
    world = report["world"]
    train = report.get("training", {})
    machine = train.get("machine")
    cfg = _train_config(report)
    model = _model_config(world)
    shift = (
        f", timestep shift ratio {cfg['shift_ratio']:g}"
        if cfg.get("shift") and cfg.get("shift_ratio")
        else ""
    )
    recipe = (
        f"`{_config_file(report).relative_to(ROOT)}`: depth {model.get('depth')}, width {model.get('hidden_size')}, "
        f"patch {model.get('patch_size')}, window {tuple(model.get('window', ()))}, batch {cfg.get('batch_size')}{shift}"
    )
    where = f"an {machine['device']} run" if machine else "a CPU run"
    base_steps = _steps(_baseline(world))
    budget = (machine or {}).get("time_limit_s") or cfg.get("time_limit_s")
    if budget:
        beside = "on the one GPU" if machine else f"on the 2 cores ({_threads(cfg.get('threads'))} each)"
        how = (
            f"side by side with its baseline {beside} for the same {budget:.0f} s of training loop (baseline "
            f"{base_steps} steps)"
        )
    else:
        how = (
            f"trained in stages (`--resume`) for the same wall-clock time as its baseline on the 2 shared cores "
            f"(baseline {base_steps} steps)"
        )
    stages = _stages(report)
    if len(stages) > 1:
        later = sum(stage.get("steps") or 0 for stage in stages[1:])
        then = "a second stage" if len(stages) == 2 else f"{len(stages) - 1} later stages"
        changed = [f"stage {i + 1} with `{f.strip()}`" for i, st in enumerate(stages) if (f := _flags(st))]
        then += f" ({'; '.join(changed)})" if changed else ""
        how = (
            f"its first stage ({stages[0].get('steps'):,} steps) {how}, then {then} of {later:,} steps, each from "
            f"the EMA weights of the stage before: {_seconds(report)} s of step time in all against the "
            f"baseline's {_seconds(_baseline(world))} s"
        )
    return f"The {world.split('-', 1)[1]} model is {where} ({recipe}) of {_steps(report)} steps, {how}."


def _image_note(held: dict, train: dict | None) -> str:
    """Which image criteria fail: the weakest one on training compositions, the one that falls most on
    held-out compositions; next to the full-attention baseline's where its files exist."""
    if train is None:
        return ""
    base, base_train = _baseline("shapes-image"), _train_split("shapes-image", baseline=True)
    keys = [
        k for k, v in train["scores"].items() if k != "accuracy" and None not in (v, held["scores"].get(k))
    ]
    weak = min(keys, key=lambda k: train["scores"][k])
    drop = max(keys, key=lambda k: train["scores"][k] - held["scores"][k])

    def vs(report: dict | None, key: str) -> str:
        return f", full attention {_fmt(report['scores'][key])}" if report else ""

    text = (
        f" On prompts of training compositions the image model scores accuracy {_fmt(train['scores']['accuracy'])}"
        f"{vs(base_train, 'accuracy')}; its weakest criterion there is {weak} ({_fmt(train['scores'][weak])}"
        f"{vs(base_train, weak)}). From training to held-out compositions {drop} falls most: "
        f"{_fmt(train['scores'][drop])} to {_fmt(held['scores'][drop])}"
    )
    if base and base_train:
        text += f" (full attention {_fmt(base_train['scores'][drop])} to {_fmt(base['scores'][drop])})"
    return text + "."


def where_this_stands(reports: list[dict]) -> list[str]:
    """The summary paragraph; scores and step counts are read from the evaluation files."""
    below = [r["world"] for r in reports if _headline(r) < TARGETS.get(r["world"], 0)]
    met = [r["world"] for r in reports if r["world"] not in below]
    verdict = (
        "No bundled model reaches the issue's 90% targets yet."
        if not met
        else f"Meets its 90% target: {', '.join(met)}; below: {', '.join(below) or 'none'}."
    )
    pairs = [(r, b) for r in reports if (b := _baseline(r["world"]))]
    equal = [(r, b) for r, b in pairs if len(_stages(r)) == 1]  # one stage: the same budget as the baseline
    fewer = [r["world"] for r, b in equal if _nsteps(r) < _nsteps(b)]
    more = [r["world"] for r, b in equal if _nsteps(r) > _nsteps(b)]
    better = [r["world"] for r, b in pairs if _headline(b) > _headline(r)]
    image = next((r for r in reports if r["world"] == "shapes-image"), None)
    image_note = _image_note(image, _train_split("shapes-image")) if image else ""
    weights = {r["world"]: r.get("training", {}).get("weights", "ema") for r in reports}
    bundled = (
        "All bundle their EMA weights."
        if set(weights.values()) == {"ema"}
        else "Bundled weights: " + ", ".join(f"{w} {k}" for w, k in weights.items()) + "."
    )
    cost = (
        f"In equal wall-clock budgets PT-DiT takes fewer steps than full attention on {', '.join(fewer) or 'none'} "
        f"and more on {', '.join(more) or 'none'}: its block runs five attentions to the baseline's two, and its "
        "window and proxy attentions save more of full attention's work the more tokens a sample has."
    )
    compare = (
        f" The baseline scores higher on {', '.join(better)}."
        if better
        else " PT-DiT scores as well as or better than the baseline on every world."
    )
    longer = [r["world"] for r, b in pairs if len(_stages(r)) > 1]
    if longer:
        compare += (
            f" On {', '.join(longer)} the bundled PT-DiT trained in later stages beyond the baseline's budget; its "
            "equal-budget first stage is the ablation `first stage` of its section."
        )
    remaining = (
        " Longer runs are remaining work (`ptdit train CONFIG --resume` continues any run exactly; `--init.from` "
        "starts a later stage)"
        + (
            ", and for images so is generalising to held-out compositions (the table of held-out kinds below)."
            if "shapes-image" in below
            else "."
        )
        if below
        else ""
    )
    return [
        f"**Where this stands.** {verdict} "
        + " ".join(_run_sentence(r) for r in reports)
        + f"{image_note} {bundled} {cost}{compare}{remaining}",
        "",
    ]


def _threads(n: int | None) -> str:
    """How many threads a run used (train.threads; 0 or unset: all)."""
    n = n or 0
    return "all threads" if n == 0 else "one thread" if n == 1 else f"{n} threads"


def _config_file(report: dict) -> Path:
    """The repo config a report's model was trained with (recorded by GPU runs, else configs/<world>.yaml)."""
    world = report.get("world", "")
    default = f"configs/{world.replace('-', '_')}.yaml"
    return ROOT / report.get("training", {}).get("machine", {}).get("config", default)


def _train_config(report: dict) -> dict:
    """The `train` section of the config a report's model was trained with."""
    cfg_file = _config_file(report)
    return yaml.safe_load(cfg_file.read_text())["train"] if report.get("world") and cfg_file.is_file() else {}


def _training_lines(report: dict) -> list[str]:
    """The model's size and where it is bundled, then how it was trained: each stage's steps, time and machine."""
    world = report["world"]
    train = report.get("training", {})
    model_cfg = _model_config(world)
    cfg_file = _config_file(report)
    train_cfg = _train_config(report)
    size = ", ".join(
        f"{k} {model_cfg[k]}"
        for k in ("depth", "hidden_size", "num_heads", "patch_size", "window")
        if k in model_cfg
    )
    stages = _stages(report)
    first = stages[0] if stages else train
    later = "".join(
        f"; then a later stage from its EMA weights (`--init.from {(st.get('init') or {}).get('from')}{_flags(st)}`): "
        f"{st.get('steps')} steps, {_where(st)}"
        for st in stages[1:]
    )
    if train_cfg.get("time_limit_s") and not first.get("machine"):
        stop = f" (stopped by `train.time_limit_s` = {train_cfg['time_limit_s']:.0f} s of training loop)"
    elif train_cfg.get("steps") != first.get("steps"):
        stop = f" (stopped early; the config asks for {train_cfg.get('steps')})"
    else:
        stop = ""
    return [
        "",
        f"Model: PT-DiT ({model_cfg.get('block', 'official')} block, {model_cfg.get('attention', 'proxy')} attention; "
        f"{size}), bundled at `ptdit/assets/models/{world}` (bf16 weights).",
        f"Training{_in_stages(report)}: `ptdit train {cfg_file.relative_to(ROOT)}{_flags(first)}` — "
        f"{first.get('steps')} steps"
        + stop
        + f" of batch {train_cfg.get('batch_size')}, {_where(first)}{later}"
        + (f"; {_steps(report)} steps in all" if later else "")
        + f", final loss {_fmt(train.get('final_loss'))}; bundled weights: {train.get('weights', 'ema')}.",
        "",
        f"![samples of {world}](results/eval_{world}.png)",
        "",
    ]


def _baseline_lines(report: dict, keys: list[str]) -> list[str]:
    """The full-attention baseline: its budget against PT-DiT's, both models' scores and its sample grid."""
    world = report["world"]
    base = _baseline(world)
    if base is None:
        return [
            "Full-attention baseline: not trained yet (`ptdit train "
            f"configs/{world.replace('-', '_')}.yaml --model.attention full --checkpoint.dir "
            f"runs/{world.replace('-', '_')}_full`).",
            "",
        ]
    btrain = base.get("training", {})
    stages = _stages(report)
    if btrain.get("machine"):
        budget = (
            f"the same data and batch and the same {btrain['machine'].get('time_limit_s'):.0f} s training-loop "
            f"budget on the same GPU: {_steps(base)} steps against PT-DiT's {_steps(report)}"
        )
    elif _nsteps(base) == _nsteps(report):
        budget = f"the same data, steps and batch; {btrain.get('step_seconds')} s of step time"
    else:
        budget = (
            f"the same data and batch, {_steps(base)} steps against PT-DiT's {_steps(report)}: "
            f"{_seconds(base)} s of step time against {_seconds(report)} s"
            + (f" (PT-DiT's first stage alone: {stages[0].get('step_seconds')} s)" if len(stages) > 1 else "")
        )
    return [
        f"Full-attention baseline (`--model.attention full`, the PixArt-alpha block at the same width and depth, "
        f"{budget}).",
        "",
        *_score_table(["model"], [(["PT-DiT"], report), (["full attention"], base)], keys),
        "",
        f"![samples of the full-attention baseline](results/baseline/eval_{world}.png)",
        "",
    ]


def section(report: dict) -> list[str]:
    """One world's part of docs/results.md: headline, scores, training, baseline, ablations, splits."""
    world = report["world"]
    ((headline, value),) = report["headline"].items()
    target = TARGETS.get(world)
    verdict = (
        ""
        if target is None
        else (" — **meets**" if value >= target else " — **below**") + f" the {target:.0%} target"
    )
    keys = [k for k, v in report["scores"].items() if not isinstance(v, dict)]
    lines = [
        f"## {world}",
        "",
        f"**{headline}: {value:.3f}**{verdict} (n = {report['settings']['n']} held-out prompts, "
        f"{report['settings']['steps']} Euler steps, CFG {report['settings']['cfg']}).",
        "",
        "| score | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {_fmt(report['scores'][k])} |" for k in keys]
    lines += _training_lines(report)
    lines += _baseline_lines(report, keys)
    lines += ablation_lines(world, report, keys)
    lines += train_split_lines(world, keys)
    lines += heldout_kind_lines(report)
    return lines


def _image_kind(prompt: str) -> str:
    from ptdit.worlds.shapes_image import heldout_kind, parse_prompt

    return heldout_kind(parse_prompt(prompt)) or "none"


def _video_objects(prompt: str) -> str:
    from ptdit.worlds.shapes_video import parse_prompt

    return ("one", "two")[len(parse_prompt(prompt)["objects"]) - 1]


def _two_object_share(n: int = 2000) -> str:
    """The share of two-object clips in `n` training draws of the video world as it draws them by default."""
    from ptdit.worlds.shapes_video import make_dataset

    ds = make_dataset("train", length=n, seed=0)
    two = sum(len(ds.spec_and_caption(i)[0]["objects"]) == 2 for i in range(n))
    return f"{two} of {n} training draws ({two / n:.0%}) have two objects"


def _object_motions(sample: dict) -> dict[str, list[bool]]:
    """Whether each object of a video prompt shows its motion, split into held-out combos and the others;
    nothing when the sample has no judged motions (files written before `ptdit eval` recorded them)."""
    from ptdit.worlds.shapes_video import HELDOUT_COMBOS, parse_prompt

    motions = (sample.get("judged") or {}).get("motions")
    if motions is None:
        return {}
    out: dict[str, list[bool]] = {"held-out combo moves": [], "other object moves": []}
    for o, seen in zip(parse_prompt(sample["prompt"])["objects"], motions):
        held = (o["color"], o["shape"], o["motion"]) in HELDOUT_COMBOS
        out["held-out combo moves" if held else "other object moves"].append(seen == o["motion"])
    return out


class KindTable(NamedTuple):
    """How a world's held-out samples are split into kinds, and what the table shows of each kind."""

    split_by: str  # the column naming the kind
    intro: Callable[[], str]  # the sentence above the table
    kind_of: Callable[[str], str]  # a prompt's kind
    keys: tuple[str, ...]  # the verdicts shown: a sample's criteria, then `per_sample`'s keys
    per_sample: Callable[[dict], dict[str, list[bool]]] = (
        lambda sample: {}
    )  # more verdicts read from a sample


KIND_TABLES = {
    "shapes-image": KindTable(
        "held-out kind",
        lambda: (
            "By the kind of held-out composition in the prompt (from the per-sample records of the same files; "
            "colour-shape: the prompt names a held-out colour-shape pair; layout: only its shape layout is held "
            "out):"
        ),
        _image_kind,
        ("shape", "relation", "ok"),
    ),
    "shapes-video": KindTable(
        "objects",
        lambda: (
            "By the number of objects in the prompt (from the per-sample records of the same files; the "
            "held-out prompts follow the world's default draw, which starts over when two objects would touch: "
            f"{_two_object_share()}). `held-out combo moves`: the share of prompted objects with a held-out "
            "colour-shape-motion combo that show their motion; `other object moves`: the same for the other "
            "objects (from the judge's reading of each object's motion, recorded by `ptdit eval` since the fourth "
            "video stage; – in older files):"
        ),
        _video_objects,
        ("count", "motion", "ok", "held-out combo moves", "other object moves"),
        _object_motions,
    ),
}


def _kind_scores(report: dict) -> dict[str, dict]:
    """Held-out samples grouped as KIND_TABLES says for the report's world: n and the share passing each of
    its verdicts (among the samples the verdict asks about; "ok" is the whole prompt)."""
    table = KIND_TABLES[report["world"]]
    groups: dict[str, list[dict]] = {}
    for s in report.get("samples", []):
        groups.setdefault(table.kind_of(s["prompt"]), []).append(s)
    out = {}
    for kind, rows in sorted(groups.items()):
        rate: dict[str, list[bool]] = {k: [] for k in table.keys}
        for r in rows:
            for k in table.keys:
                if r.get(k) is not None:
                    rate[k].append(r[k])
            for k, verdicts in table.per_sample(r).items():
                rate[k] += verdicts
        out[kind] = {"n": len(rows), **{k: (sum(v) / len(v) if v else None) for k, v in rate.items()}}
    return out


def heldout_kind_lines(report: dict) -> list[str]:
    """Held-out scores split by kind of prompt, for every model of the world: for images, prompts with a
    held-out colour-shape pair against prompts whose only held-out composition is a layout (attributes vs the
    relation); for video, one-object against two-object prompts."""
    world = report["world"]
    if world not in KIND_TABLES or not report.get("samples"):
        return []
    table = KIND_TABLES[world]
    rows = [("PT-DiT", "bundled", report), ("full attention", "bundled", _baseline(world))]
    for _, about, ours, base in _ablations(world):
        rows += [("PT-DiT", about["label"], ours), ("full attention", about["label"], base)]
    rows = [row for row in rows if row[2] is not None and row[2].get("samples")]
    keys = table.keys
    names = [("accuracy" if k == "ok" else k) for k in keys]
    lines = [
        table.intro(),
        "",
        f"| model | run | {table.split_by} | n | " + " | ".join(names) + " |",
        "|---|---|---|---|" + "---|" * len(keys),
    ]
    for name, run, rep in rows:
        for kind, sc in _kind_scores(rep).items():
            cells = " | ".join(_fmt(sc[k]) for k in keys)
            lines.append(f"| {name} | {run} | {kind} | {sc['n']} | {cells} |")
    return lines + [""]


def decision_section() -> list[str]:
    """Where samples are decided, from benchmarks/results/decision_noise_*.json (benchmarks/decision_noise.py)."""
    files = sorted(BENCH.glob("decision_noise_*.json"))
    if not files:
        return []
    reports = [json.loads(p.read_text()) for p in files]
    taus = sorted({r["tau0"] for rep in reports for m in rep["models"] for r in m["rows"]}, reverse=True)
    lines = [
        "## Where samples are decided",
        "",
        "`python benchmarks/decision_noise.py` noises ground-truth training scenes to a level tau0, samples them "
        "back with the model and judges them against their own captions (tau0 = 1: plain generation). A criterion "
        "that passes from 0.8 but not from 1 is decided by the model's predictions above 0.8. `train mass`: the "
        "share of training draws of tau above 0.8 under the run's timestep distribution. Sources: "
        + ", ".join(f"`{p.relative_to(ROOT).with_suffix('.md')}`" for p in files)
        + ". A model under `/tmp/ptdit-<commit>` is the one bundled at that commit "
        "(`git worktree add /tmp/ptdit-<commit> <commit>`); in a source whose name ends in a commit, "
        "`ptdit/assets/models/...` is the model bundled at that commit.",
        "",
        "| world | model | train mass > 0.8 | criterion | "
        + " | ".join(f"tau0 {t:.2f}" for t in taus)
        + " |",
        "|---" * (4 + len(taus)) + "|",
    ]
    for rep in reports:
        for m in rep["models"]:
            rows = {r["tau0"]: r for r in m["rows"]}
            mass = rows.get(0.8, {}).get("train_mass_above")
            for key in (k for k in DECIDED if m["rows"][0].get(k) is not None):
                cells = " | ".join(_fmt(rows[t].get(key)) if t in rows else "" for t in taus)
                lines.append(f"| {rep['world']} | `{m['model']}` | {_fmt(mass)} | {key} | {cells} |")
    return lines + [""]


def relation_section() -> list[str]:
    """Whether the image models read the relation from the caption at pure noise, from
    benchmarks/results/relation_probe_*.json (benchmarks/relation_probe.py)."""
    files = sorted(BENCH.glob("relation_probe_*.json"))
    if not files:
        return []
    reports = [json.loads(p.read_text()) for p in files]
    taus = sorted({float(t) for rep in reports for m in rep["models"] for t in m["rates"]}, reverse=True)
    lines = [
        "## Does the image model read the relation?",
        "",
        "`python benchmarks/relation_probe.py` noises two-colour scenes to a level tau, averages the model's x0 "
        "prediction (CFG 4) over several noises and counts the scenes where object A's colour lies on the side "
        "of B's that the caption names. At tau = 1 the input is pure noise, so only the caption can place the "
        "objects: 0.5 means the relation is ignored there. Sources: "
        + ", ".join(f"`{p.relative_to(ROOT).with_suffix('.md')}`" for p in files)
        + ". A `runs/.../bundled` model is the export of a run that is not bundled (a full-attention baseline or an "
        "ablation: `scripts/bundle_models.py --baselines image [--ablation NAME] [--runs DIR]`); a source whose name "
        "ends in a commit was measured on the models of that commit (`ptdit/assets/models/shapes-image` then was "
        "the model bundled at it).",
        "",
        "| source | split | model | " + " | ".join(f"tau {t:.2f}" for t in taus) + " |",
        "|---|---|---|" + "---|" * len(taus),
    ]
    for path, rep in zip(files, reports):
        for m in rep["models"]:
            rates = {float(t): r for t, r in m["rates"].items()}
            cells = " | ".join(_fmt(rates.get(t)) if t in rates else "" for t in taus)
            lines.append(f"| {path.stem} | {rep['split']} (n = {rep['n']}) | `{m['model']}` | {cells} |")
    return lines + [""]


def main() -> None:
    reports = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("eval_*.json")) if not _is_train(p)]
    lines = [
        "# Results of the bundled models",
        "",
        "Generated by `python scripts/results_doc.py` from `docs/results/eval_*.json`, which "
        "`python scripts/bundle_models.py` writes by running `ptdit eval` on the bundled models. Do not edit by hand.",
        "",
        "Each world is scored on prompts of compositions held out of training (see `ptdit/worlds/shapes_*.py`), by "
        "the deterministic judges of `ptdit/worlds/judges.py` (validated at 100% on ground truth and on mismatched "
        "prompts: `python -m ptdit.worlds.judges`).",
        "",
        *summary(reports),
        "",
        *where_this_stands(reports),
        "",
    ]
    for report in reports:
        lines += section(report)
    lines += decision_section()
    lines += relation_section()
    path = ROOT / "docs" / "results.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""The grid config of `ptdit ablate`: a base training config, variants (config overrides), seeds, a budget."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TOP_KEYS = ("name", "base", "runs_dir", "results_dir", "seeds", "overrides", "budget", "curve", "eval",
            "variants", "orderings", "metrics", "sizing", "notes")  # fmt: skip
BUDGET_KEYS = ("steps", "flops", "seconds")
EVAL_KEYS = ("world", "n", "steps", "cfg", "batch_size", "seed")
CURVE_KEYS = ("every", "n")
DIRECTIONS = ("lower", "higher")
# which way each score is better; a config's `metrics` adds or replaces entries
DEFAULT_METRICS = {
    "heldout_loss": "lower",
    "fid": "lower",
    "classifier_accuracy": "higher",
    "accuracy": "higher",
}


@dataclass(frozen=True)
class RunSpec:
    """One training run of the grid: a variant at a seed."""

    variant: str
    seed: int
    overrides: dict[str, Any]  # "section.key" -> value, the grid's then the variant's

    @property
    def key(self) -> str:
        return f"{self.variant}-s{self.seed}"


@dataclass
class Variant:
    name: str
    label: str
    seeds: list[int]
    overrides: dict[str, Any]


@dataclass
class Grid:
    name: str
    path: Path  # the grid config file
    base: Path  # the base training config
    runs_dir: Path  # run folders (checkpoints, logs, samples): git-ignored
    results_dir: Path  # per-run JSONs, the table, the plots: committed
    overrides: dict[str, Any]
    budget: dict[str, float]  # exactly one of steps / flops / seconds (per run)
    curve: dict[str, int]  # held-out loss every `every` steps on `n` held-out items
    eval: dict[str, Any]  # ptdit eval settings: world, n, steps, cfg, batch_size, seed
    variants: list[Variant]
    orderings: list[dict[str, str]]
    metrics: dict[str, str]
    raw: dict[str, Any] = field(default_factory=dict)

    def runs(self) -> list[RunSpec]:
        """Every (variant, seed) run, seed-major (every variant's first seed, then every second seed, ...), so
        that an interrupted grid has compared the variants before it repeats them."""
        order = sorted(
            ((i, j) for j, v in enumerate(self.variants) for i in range(len(v.seeds))), key=lambda ij: ij
        )
        return [
            RunSpec(
                self.variants[j].name,
                self.variants[j].seeds[i],
                {**self.overrides, **self.variants[j].overrides},
            )
            for i, j in order
        ]

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)

    def result_path(self, spec: RunSpec) -> Path:
        return self.results_dir / "runs" / f"{spec.key}.json"

    def run_dir(self, spec: RunSpec) -> Path:
        return self.runs_dir / spec.key


def _need(ok: bool, path: Path, message: str) -> None:
    if not ok:
        raise ValueError(f"{path}: {message}")


def _keys(section: Any, allowed: tuple[str, ...], where: str, path: Path) -> dict[str, Any]:
    _need(isinstance(section, dict), path, f"{where} must be a mapping")
    unknown = sorted(set(section) - set(allowed))
    _need(not unknown, path, f"unknown {where} key(s) {unknown}; valid: {list(allowed)}")
    return dict(section)


def _overrides(value: Any, where: str, path: Path) -> dict[str, Any]:
    value = {} if value is None else value
    _need(isinstance(value, dict), path, f"{where} must be a mapping of 'section.key': value")
    for key in value:
        _need(isinstance(key, str) and key.count(".") >= 1, path, f"{where}: {key!r} is not 'section.key'")
    return dict(value)


def _seeds(value: Any, where: str, path: Path) -> list[int]:
    ok = (
        isinstance(value, list)
        and value
        and all(isinstance(s, int) and not isinstance(s, bool) for s in value)
    )
    _need(bool(ok), path, f"{where} must be a non-empty list of integers, got {value!r}")
    _need(len(set(value)) == len(value), path, f"{where} repeats a seed: {value}")
    return list(value)


def load_grid(path: str | Path, root: str | Path | None = None) -> Grid:
    """Read and check a grid config; relative paths are relative to `root` (default: the working directory)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"grid config {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    raw = _keys(raw, TOP_KEYS, "top-level", path)
    root = Path(root) if root is not None else Path.cwd()
    for key in ("name", "base", "runs_dir", "results_dir", "variants", "budget"):
        _need(key in raw, path, f"missing key {key!r}")
    base = root / raw["base"]
    _need(base.is_file(), path, f"base config {raw['base']} does not exist")
    budget = _keys(raw["budget"], BUDGET_KEYS, "budget", path)
    _need(len(budget) == 1, path, f"budget needs exactly one of {list(BUDGET_KEYS)}, got {sorted(budget)}")
    _need(
        all(isinstance(v, (int, float)) and v > 0 for v in budget.values()),
        path,
        "budget values must be numbers > 0 (YAML reads 1e14 as text: write 1.0e+14)",
    )
    curve = {"every": 0, "n": 256, **_keys(raw.get("curve", {}), CURVE_KEYS, "curve", path)}
    ev = {"n": 200, "seed": 0, "batch_size": 50, **_keys(raw.get("eval", {}), EVAL_KEYS, "eval", path)}
    metrics = {**DEFAULT_METRICS, **(raw.get("metrics") or {})}
    _need(all(d in DIRECTIONS for d in metrics.values()), path, f"metrics directions must be {DIRECTIONS}")
    default_seeds = _seeds(raw.get("seeds", [0]), "seeds", path)
    _need(isinstance(raw["variants"], list) and raw["variants"], path, "variants must be a non-empty list")
    variants = []
    for i, v in enumerate(raw["variants"]):
        v = _keys(v, ("name", "label", "seeds", "overrides"), f"variants[{i}]", path)
        _need(isinstance(v.get("name"), str) and v["name"], path, f"variants[{i}] needs a name")
        name = v["name"]
        _need("-s" not in name and "/" not in name, path, f"variant name {name!r} may not hold '-s' or '/'")
        seeds = _seeds(v["seeds"], f"variant {name} seeds", path) if "seeds" in v else default_seeds
        variants.append(
            Variant(name, v.get("label", name), seeds, _overrides(v.get("overrides"), name, path))
        )
    names = [v.name for v in variants]
    _need(len(set(names)) == len(names), path, f"variant names repeat: {names}")
    orderings = []
    for i, o in enumerate(raw.get("orderings") or []):
        o = _keys(o, ("better", "worse", "metric", "paper"), f"orderings[{i}]", path)
        for side in ("better", "worse"):
            _need(o.get(side) in names, path, f"orderings[{i}].{side} {o.get(side)!r} is not a variant")
        _need(
            o.get("metric") in metrics,
            path,
            f"orderings[{i}].metric {o.get('metric')!r}: one of {list(metrics)}",
        )
        orderings.append({k: str(v) for k, v in o.items()})
    return Grid(
        name=str(raw["name"]),
        path=path,
        base=base,
        runs_dir=root / raw["runs_dir"],
        results_dir=root / raw["results_dir"],
        overrides=_overrides(raw.get("overrides"), "overrides", path),
        budget={k: float(v) for k, v in budget.items()},
        curve={k: int(v) for k, v in curve.items()},
        eval=ev,
        variants=variants,
        orderings=orderings,
        metrics=metrics,
        raw=raw,
    )


def override_args(overrides: dict[str, Any]) -> list[str]:
    """{"model.window": [1, 4, 4], "train.bf16": True} -> ptdit train's ["--model.window", "[1, 4, 4]", ...]."""
    args = []
    for key, value in overrides.items():
        text = json.dumps(value) if isinstance(value, (bool, list, dict)) or value is None else str(value)
        args += [f"--{key}", text]
    return args

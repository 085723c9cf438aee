"""ptdit ablate: grid expansion, runs of 2 steps (resume skips finished runs), the per-run JSON, the table with
mean ± std and the ordering verdict, one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from ptdit.ablate import load_grid, verdict
from ptdit.ablate.cli import pending, run_grid
from ptdit.ablate.report import costs_markdown, curve_style, refill_markdown, write_report
from ptdit.cli import main
from ptdit.worlds import fashion_mnist as fm

needs_fmnist = pytest.mark.skipif(not fm.dataset_available(), reason="Fashion-MNIST files are not installed")

BASE = {
    "model": {"depth": 1, "hidden_size": 16, "num_heads": 2, "patch_size": 2, "window": [1, 2, 2],
              "in_channels": "auto", "caption_channels": "auto"},
    "data": {"world": "fashion-mnist", "size": 32, "num_items": 32},
    "text": {"encoder": "random:8"},
    "autoencoder": {"spec": "identity"},
    "train": {"steps": 2, "batch_size": 4, "lr": 1e-3, "shift": False, "bf16": True, "threads": 1},
    "checkpoint": {"dir": "unused", "every": 0},
    "log": {"progress": False, "plot_every": 0, "sample_every": 0},
}  # fmt: skip


def write_grid(tmp: Path, **changes) -> Path:
    (tmp / "base.yaml").write_text(yaml.safe_dump(BASE))
    grid = {
        "name": "tiny",
        "base": "base.yaml",
        "runs_dir": "runs",
        "results_dir": "results",
        "seeds": [0, 1],
        "budget": {"steps": 2},
        "curve": {"every": 1, "n": 8},
        "eval": {"world": "fashion-mnist", "n": 4, "steps": 2, "batch_size": 4},
        "variants": [{"name": "ptdit"}, {"name": "full", "label": "full attention",
                                         "overrides": {"model.attention": "full"}}],
        "orderings": [{"better": "ptdit", "worse": "full", "metric": "heldout_loss", "paper": "test"}],
        **changes,
    }  # fmt: skip
    path = tmp / "grid.yaml"
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    return path


def test_grid_expands_variants_times_seeds(tmp_path):
    grid = load_grid(write_grid(tmp_path, variants=[
        {"name": "a", "seeds": [0, 1, 2]}, {"name": "b", "overrides": {"model.use_giim": False}}], orderings=[]), tmp_path)  # fmt: skip
    assert [s.key for s in grid.runs()] == ["a-s0", "b-s0", "a-s1", "b-s1", "a-s2"]
    assert grid.runs()[3].overrides == {"model.use_giim": False}


def test_verdict_two_standard_errors():
    assert verdict([0.9, 0.91, 0.92], [0.5, 0.52, 0.51], "higher")["verdict"] == "holds"
    assert verdict([0.5, 0.52, 0.51], [0.9, 0.91, 0.92], "higher")["verdict"] == "reversed"
    assert verdict([0.5, 0.9], [0.6, 0.7], "higher")["verdict"] == "unresolved"
    assert verdict([1.0, 1.1], [2.0, 2.1], "lower")["verdict"] == "holds"  # lower is better (FID, loss)
    assert verdict([1.0], [2.0, 2.1], "lower")["verdict"] == "unresolved"  # one seed: no error bar


def test_curves_of_a_large_grid_look_different():
    """tab10 has 10 colours: the 11th curve on must differ from the first by line style and marker."""
    styles = [tuple(sorted(curve_style(i).items())) for i in range(30)]
    assert len(set(styles)) == 30
    assert curve_style(10)["color"] == curve_style(0)["color"] and curve_style(10)["linestyle"] != "-"


@needs_fmnist
def test_tiny_grid_runs_resumes_and_reports(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grid = load_grid(write_grid(tmp_path), tmp_path)
    assert len(pending(grid)) == 4
    first = pending(grid)[0]
    run_grid(grid, inline=True, threads=1)
    assert pending(grid) == []
    record = json.loads(grid.result_path(first).read_text())
    assert len(record["commit"]) in (40, 7) or record["commit"] == "unknown"
    assert record["steps"] == 2 and record["train_flops"] == 2 * record["train_flops_per_step"] > 0
    assert [c["step"] for c in record["curve"]] == [1, 2]
    assert set(record["scores"]) >= {"fid", "classifier_accuracy", "heldout_loss"}
    stamp = grid.result_path(first).stat().st_mtime_ns
    assert run_grid(grid, inline=True) == []  # finished runs are not redone
    assert grid.result_path(first).stat().st_mtime_ns == stamp
    summary = write_report(grid)
    full = json.loads(grid.result_path(grid.runs()[1]).read_text())
    assert (
        full["train_flops_per_step"] > record["train_flops_per_step"]
    )  # 256 tokens: full attention costs more
    row = summary["rows"][0]
    losses = [json.loads(grid.result_path(s).read_text())["scores"]["heldout_loss"] for s in grid.runs()[::2]]
    assert math.isclose(row["heldout_loss"]["mean"], sum(losses) / 2)
    records = [json.loads(grid.result_path(s).read_text()) for s in grid.runs()]
    train_hours = sum(r["train_seconds"] * r["threads"] for r in records) / 3600
    assert summary["core_hours"]["train"] == pytest.approx(train_hours) and train_hours > 0
    assert summary["core_hours"]["eval"] == pytest.approx(sum(r["eval_seconds"] for r in records) / 3600)
    table = (grid.results_dir / "table.md").read_text()
    assert "full attention | 2/2 |" in table and " ± " in table
    assert f"training steps {summary['core_hours']['train']:.2f}" in table
    assert summary["orderings"][0]["verdict"] in ("holds", "reversed", "unresolved")
    assert (grid.results_dir / "curve_flops.png").is_file() and (
        grid.results_dir / "curve_time.png"
    ).is_file()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"budget": {"steps": 2, "flops": 1e9}}, "budget needs exactly one"),
        ({"variants": [{"name": "a"}, {"name": "a"}]}, "variant names repeat"),
        ({"orderings": [{"better": "ptdit", "worse": "nope", "metric": "fid"}]}, "is not a variant"),
        ({"colour": 1}, "unknown top-level key"),
    ],
)
def test_bad_config_is_one_line(tmp_path, monkeypatch, capsys, change, message):
    monkeypatch.chdir(tmp_path)
    assert main(["ablate", str(write_grid(tmp_path, **change))]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("ptdit ablate: error:") and message in err and "\n" not in err


@needs_fmnist
def test_measure_converts_a_flop_budget_to_steps(tmp_path, monkeypatch):
    from ptdit.ablate.run import measure_costs

    monkeypatch.chdir(tmp_path)
    grid = load_grid(write_grid(tmp_path, budget={"flops": 1e10}), tmp_path)
    record = measure_costs(grid, time_steps=0)
    ptdit, full = record["variants"]
    assert full["flops_ratio_to_first"] > 1  # 256 tokens of global attention cost more than windows + proxies
    for row in (ptdit, full):
        assert row["steps"] == int(1e10 // row["train_flops_per_step"])
    assert json.loads((grid.results_dir / "costs.json").read_text())["variants"][1]["variant"] == "full"
    doc = tmp_path / "doc.md"
    doc.write_text("x\n<!-- ablate:tiny:costs -->\nold\n<!-- /ablate:tiny:costs -->\ny\n")
    refill_markdown(doc, "tiny:costs", costs_markdown(record))
    text = doc.read_text()
    assert "old" not in text and "| full | 256 |" in text and text.endswith("y\n")


@needs_fmnist
def test_a_run_stopped_by_a_signal_writes_no_result(tmp_path, monkeypatch):
    import types

    import ptdit.training
    from ptdit.ablate.run import run_one

    monkeypatch.chdir(tmp_path)
    grid = load_grid(write_grid(tmp_path), tmp_path)
    stopped = types.SimpleNamespace(step=1, stopped_by=15)
    monkeypatch.setattr(ptdit.training, "train", lambda cfg, progress=None: stopped)
    with pytest.raises(SystemExit, match="stopped by 15 at step 1"):
        run_one(grid, grid.runs()[0])
    assert pending(grid) == grid.runs()  # not recorded as finished


def test_git_commit_sees_changed_ptdit_sources_from_the_grid_folder(tmp_path):
    import subprocess

    from ptdit.ablate.run import git_commit

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    (tmp_path / "ptdit").mkdir()
    (tmp_path / "configs" / "ablations").mkdir(parents=True)
    (tmp_path / "ptdit" / "model.py").write_text("x = 1\n")
    (tmp_path / "configs" / "ablations" / "grid.yaml").write_text("name: g\n")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    grid_dir = tmp_path / "configs" / "ablations"  # where run_one asks from
    clean = git_commit(grid_dir)
    assert len(clean["commit"]) == 40 and clean["dirty"] is False
    (tmp_path / "ptdit" / "model.py").write_text("x = 2\n")
    assert git_commit(grid_dir)["dirty"] is True

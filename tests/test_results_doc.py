"""scripts/results_doc.py: the tables of docs/results.md follow the JSON files that hold the measurements."""

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


results_doc = _load("results_doc", REPO / "scripts" / "results_doc.py")


def test_doc_tables_are_current():
    """Fails after an evaluation or a benchmark is rerun until `python scripts/results_doc.py` has been run."""
    assert results_doc.main(["--check"]) == 0


def test_benchmark_markdown_is_current():
    """Each decision-noise and relation-probe .md is what its script writes from the JSON beside it."""
    for name in ("decision_noise", "relation_probe"):
        script = _load(name, REPO / "benchmarks" / f"{name}.py")
        for path in sorted((REPO / "benchmarks" / "results").glob(f"{name}_*.json")):
            report = json.loads(path.read_text())
            assert path.with_suffix(".md").read_text() == script.markdown(report), path.name


def test_fill_rewrites_only_between_markers():
    text = "hand\n<!-- t: a x -->\nold\n<!-- /t: a x -->\nhand too\n"
    assert results_doc.fill(text, lambda name: [name.upper()], "t") == text.replace("old", "A X")
    with pytest.raises(ValueError, match="needs its"):
        results_doc.fill("<!-- t: a -->\nold\n", lambda name: [], "t")


def test_table_leaves_out_empty_columns():
    assert results_doc.table(["a", "b", "c"], [[1, None, 0.5], [12345, None, None]]) == [
        "| a | c |", "|---|---|", "| 1 | 0.500 |", "| 12,345 | – |"
    ]  # fmt: skip


def _write(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report))


def test_runs_and_stages(tmp_path, monkeypatch):
    monkeypatch.setattr(results_doc, "RESULTS", tmp_path)
    monkeypatch.setattr(results_doc, "DOC", tmp_path.parent / "results.md")
    first = {"steps": 100, "step_seconds": 50.0}
    second = {"steps": 40, "step_seconds": 20.4, "init": {"from": "x", "training": first}}
    report = {"world": "shapes-image", "scores": {"accuracy": 0.5}, "training": second}
    _write(tmp_path / "eval_shapes-image.json", report)
    for name, sub in (("captions", "baseline"), ("longer", "")):  # an ablation may hold only one model
        _write(tmp_path / "ablations" / name / "about.json", {"label": name, "change": "-"})
        _write(tmp_path / "ablations" / name / sub / "eval_shapes-image.json", {**report, "training": first})
    found = results_doc.runs("shapes-image")
    assert [(r.model, r.name) for r in found] == [
        ("PT-DiT", "bundled"), ("full attention", "captions"), ("PT-DiT", "longer")
    ]  # fmt: skip
    assert found[1].label == f"[captions]({tmp_path.name}/ablations/captions/about.json)"
    assert [s["steps"] for s in results_doc._stages(report)] == [100, 40]
    assert results_doc._steps(report) == 140 and results_doc._seconds(report) == 70


def test_image_kinds_split_attribute_and_layout_failures():
    samples = [  # two with a held-out pair (red triangle), one held-out layout only, one training composition
        {"prompt": "a red triangle", "ok": False, "shape": False, "relation": None},
        {"prompt": "a red triangle above a green square", "ok": True, "shape": True, "relation": True},
        {"prompt": "a gray circle left of a green triangle", "ok": False, "shape": True, "relation": False},
        {"prompt": "a green circle left of a white square", "ok": True, "shape": True, "relation": True},
    ]
    assert results_doc.kind_scores({"world": "shapes-image", "samples": samples}) == {
        "colour-shape": {"n": 2, "shape": 0.5, "relation": 1.0, "ok": 0.5},
        "layout": {"n": 1, "shape": 1.0, "relation": 0.0, "ok": 0.0},
        "none": {"n": 1, "shape": 1.0, "relation": 1.0, "ok": 1.0},
    }


def test_video_kinds_count_each_objects_motion():
    # "a red circle moving right" is a held-out combo; without the judge's readings the motions are unknown
    swap = "a gray circle growing and a magenta square moving downward"
    samples = [
        {"prompt": "a blue square falling", "ok": False, "count": True, "motion": True},
        {"prompt": swap, "ok": False, "count": True, "motion": False, "judged": {"motions": ["down", "grow"]}},
        {"prompt": "a red circle moving right and a blue square growing", "ok": False, "count": True,
         "motion": False, "judged": {"motions": ["right", "still"]}},
    ]  # fmt: skip
    kinds = results_doc.kind_scores({"world": "shapes-video", "samples": samples})
    assert kinds["one"] == {
        "n": 1,
        "motion": 1.0,
        "ok": 0.0,
        "held-out combo moves": None,
        "other object moves": None,
    }
    assert kinds["two"]["held-out combo moves"] == 0.5 and kinds["two"]["other object moves"] == 0.0

"""README.md quotes only measured numbers: scripts/sync_readme.py rebuilds them, benchmarks/quickstart.py times
the README's own commands."""

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


sync_readme = _load("sync_readme", REPO / "scripts" / "sync_readme.py")
quickstart = _load("quickstart", REPO / "benchmarks" / "quickstart.py")
README = (REPO / "README.md").read_text()


def test_readme_numbers_match_their_sources():
    """Fails after a benchmark or an evaluation is rerun until `python scripts/sync_readme.py` has been run."""
    assert sync_readme.render(README) == README, "README.md is out of date: run python scripts/sync_readme.py"


def test_timed_commands_are_the_readmes():
    for _name, command, _files in quickstart.GENERATE_COMMANDS:
        assert command in README
    block = quickstart.train_example(README)
    assert "ptdit train configs/example_folder.yaml" in block and "ptdit generate" in block
    assert "bash scripts/setup.sh && " + quickstart.GENERATE_COMMANDS[0][1] in README  # the main command


def test_train_example_needs_exactly_one_block():
    with pytest.raises(ValueError, match="exactly one"):
        quickstart.train_example("```bash\necho\n```\n")


def test_run_once_times_and_checks_outputs(tmp_path):
    seconds = quickstart.run_once(
        "mkdir -p outputs && echo x > outputs/a.txt && test -L .venv", ("outputs/a.txt",)
    )
    assert 0 < seconds < 30
    with pytest.raises(SystemExit, match="missing \\['outputs/b.txt'\\]"):
        quickstart.run_once("true", ("outputs/b.txt",))
    with pytest.raises(SystemExit, match="exit 3"):
        quickstart.run_once("exit 3", ())


def _fake_sources(tmp_path, monkeypatch, scores: dict[str, float]):
    bench, results = tmp_path / "bench", tmp_path / "results"
    bench.mkdir(exist_ok=True)
    results.mkdir(exist_ok=True)
    rows = [{"name": n, "command": "c", "seconds": [s, s / 2]} for n, s in
            [("image", 9.4, ), ("video", 12.2), ("multiview", 11.6), ("train-example", 80.3)]]  # fmt: skip
    env = {"cpu": "x", "cores": 2, "load_avg_1m": 0.0, "torch": "t", "python": "p", "commit": "c"}
    (bench / "quickstart.json").write_text(json.dumps({"environment": env, "rows": rows}))
    for world, (score, _task, _words) in sync_readme.WORLD_WORDS.items():
        (results / f"eval_{world}.json").write_text(json.dumps({"scores": {score: scores[world]}}))
    monkeypatch.setattr(sync_readme, "BENCH", bench)
    monkeypatch.setattr(sync_readme, "RESULTS", results)


def test_quickstart_paragraph_follows_the_scores(tmp_path, monkeypatch):
    _fake_sources(
        tmp_path, monkeypatch, {"shapes-image": 0.912, "shapes-video": 0.3, "shapes-multiview": 0.955}
    )
    text = sync_readme.quickstart()
    assert "9 s for the command above on 2 CPU cores" in text and "12 s and 12 s" in text
    assert "on 91.2% of them; the multi-view model keeps its object consistent across the views on 95.5% of them " \
           "(both meet the target)" in text  # fmt: skip
    assert (
        "(both meet the target); below it, the video model moves its objects as the prompt says on 30.0% of them."
        in text
    )
    _fake_sources(
        tmp_path, monkeypatch, {"shapes-image": 0.95, "shapes-video": 0.95, "shapes-multiview": 0.95}
    )
    assert "below it," not in sync_readme.quickstart() and "all meet the target" in sync_readme.quickstart()
    assert "in 80 s" in sync_readme.train_example()


def test_render_needs_both_markers():
    broken = README.replace("<!-- /sync_readme: gpu-table -->", "")
    with pytest.raises(ValueError, match="gpu-table"):
        sync_readme.render(broken)


def test_wrap_keeps_tables_and_width():
    text = " ".join(["word"] * 60) + "\n\n| a | b |\n| --- | --- |"
    wrapped = sync_readme._wrap(text, width=40)
    assert all(len(line) <= 40 for line in wrapped.splitlines())
    assert wrapped.endswith("| a | b |\n| --- | --- |")

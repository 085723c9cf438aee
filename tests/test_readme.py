"""README.md quotes only measured numbers: each number in a `<!-- numbers: NAME -->` block equals its JSON, the
tables come from scripts/sync_readme.py, and benchmarks/quickstart.py times the README's own commands."""

import importlib.util
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"
BENCH = REPO / "benchmarks" / "results"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sync_readme = _load("sync_readme", REPO / "scripts" / "sync_readme.py")
results_doc = _load("results_doc", REPO / "scripts" / "results_doc.py")
quickstart = _load("quickstart", REPO / "benchmarks" / "quickstart.py")
README = (REPO / "README.md").read_text()


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _sources() -> dict[str, list[str]]:
    """Each numbers block's numbers, in the order the README quotes them, as written from their JSON."""
    run = _json(BENCH / "quickstart.json")
    first = {row["name"]: f"{row['seconds'][0]:.0f}" for row in run["rows"]}  # a new user's first run, in s
    cores = str(run["environment"]["cores"])
    pipe = _json(REPO / "ptdit" / "assets" / "models" / "shapes-image" / "pipeline.json")
    lora = _json(BENCH / "lora_new_colour.json")

    def acc(model: str, prompts: str) -> str:  # judge accuracy, in %
        return f"{100 * lora[model][prompts]['accuracy']:.1f}"

    def score(world: str) -> str:  # the held-out headline score, in %
        return f"{100 * next(iter(_json(RESULTS / f'eval_{world}.json')['headline'].values())):.1f}"

    worlds = ("shapes-image", "shapes-video", "shapes-multiview")
    assert len({results_doc.TARGETS[w] for w in worlds}) == 1  # the README quotes one target
    return {
        "quickstart": [str(pipe["height"]), str(pipe["width"]), first["image"], cores, first["video"],
                       first["multiview"], *map(score, worlds), f"{100 * results_doc.TARGETS[worlds[0]]:.0f}"],
        "train-example": [first["train-example"], cores],
        "lora": [str(lora["machine"]["cores"]), f"{lora['training']['wall_s']:.0f}",
                 str(lora["base"]["new_heldout"]["n"]), acc("base", "new_heldout"), acc("lora", "new_heldout"),
                 str(lora["base"]["old_heldout"]["n"]), acc("base", "old_heldout"), acc("lora", "old_heldout")],
    }  # fmt: skip


def prose_numbers(text: str) -> list[str]:
    """The numbers of a markdown text outside code spans and link targets ("mp4" holds none)."""
    text = re.sub(r"`[^`]*`", "", re.sub(r"\]\([^)]*\)", "]", text))
    return re.findall(r"(?<![\w.])\d+(?:[.,]\d+)*", text)


def test_prose_numbers():
    assert prose_numbers("in 4 s on 2 cores (`outputs/0000.png`, mp4) at 95.5% of 32×32 [a](b1.md)") == [
        "4", "2", "95.5", "32", "32"
    ]  # fmt: skip


def test_readme_numbers_match_their_json():
    """Fails after a benchmark or an evaluation is rerun until the README's numbers are updated by hand."""
    blocks = dict(re.findall(r"<!-- numbers: (\S+) -->\n(.*?)<!-- /numbers: \1 -->", README, flags=re.S))
    expected = _sources()
    assert set(blocks) == set(expected)
    for name, text in blocks.items():
        assert prose_numbers(text) == expected[name], f"README.md block {name!r}: update its numbers"


def test_readme_tables_are_current():
    """Fails after a benchmark is rerun until `python scripts/sync_readme.py` has rewritten the tables."""
    assert sync_readme.main(["--check"]) == 0


def test_quickstart_markdown_is_current():
    assert (BENCH / "quickstart.md").read_text() == quickstart.markdown(_json(BENCH / "quickstart.json"))


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

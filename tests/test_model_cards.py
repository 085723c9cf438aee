"""The model cards (README.md) of the bundled models: their tables say what config.json, pipeline.json, the weights
and the evaluation files say, so that a card cannot drift from its model. The prose is not tested."""

import json
import re
from pathlib import Path

import pytest
from safetensors import safe_open

from ptdit import PTDiT
from ptdit.pipeline_config import BUNDLED, BUNDLED_DIR, PipelineDefaults

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"
# a score-table column -> the evaluation file it is read from ({world}: shapes-image, {task}: image)
COLUMNS = {
    "this model": "eval_{world}.json",
    "stage 1 only": "ablations/{task}_first_stage/eval_{world}.json",
    "full attention": "baseline/eval_{world}.json",
}
CARDS = [(task, BUNDLED_DIR / name) for task, name in BUNDLED.items()]


def sections(text: str) -> dict[str, list[list[str]]]:
    """'## Heading' -> the rows of the first markdown table under it (cells stripped, separator row dropped)."""
    out: dict[str, list[list[str]]] = {}
    heading = None
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
        elif heading and line.startswith("|") and not re.fullmatch(r"\|(\s*-+\s*\|)+", line.strip()):
            out.setdefault(heading, []).append([c.strip() for c in line.strip().strip("|").split("|")])
    return out


def card(folder: Path) -> tuple[dict[str, str], dict[str, list[list[str]]]]:
    text = (folder / "README.md").read_text()
    front = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert front, f"{folder / 'README.md'} has no metadata block (--- ... ---)"
    meta = dict(line.split(": ", 1) for line in front.group(1).splitlines() if ": " in line)
    return meta, sections(text)


def stages(report: dict) -> list[dict]:
    """The training records of a model's stages, first stage first."""
    chain, record = [], report["training"]
    while record:
        chain.append(record)
        record = (record.get("init") or {}).get("training")
    return chain[::-1]


def _value(cell: str):
    try:
        return json.loads(cell)
    except json.JSONDecodeError:
        return cell


@pytest.mark.parametrize("task,folder", CARDS, ids=[t for t, _ in CARDS])
def test_model_table_matches_the_model_files(task, folder):
    _, tables = card(folder)
    rows = {field: value for field, value in tables["Model"][1:]}
    config = json.loads((folder / "config.json").read_text())
    pipeline = json.loads((folder / "pipeline.json").read_text())
    assert {"depth", "hidden_size", "window", "parameters", "steps"} <= set(rows)
    for field, value in rows.items():
        if field == "parameters":
            count = 0
            for weights in folder.glob("*.safetensors"):
                with safe_open(weights, "pt") as f:
                    count += sum(f.get_tensor(k).numel() for k in f.keys())
            assert value == f"{count:,}", f"{folder.name}: parameters {value} != {count:,}"
        else:
            source = config if field in config else pipeline
            assert field in source, f"{folder.name}: {field} is neither in config.json nor in pipeline.json"
            assert _value(value) == source[field], f"{folder.name}: {field} {value} != {source[field]}"
    assert rows["text_encoder"] == pipeline["text_encoder"] and pipeline["task"] == task


@pytest.mark.parametrize("task,folder", CARDS, ids=[t for t, _ in CARDS])
def test_training_table_matches_the_training_record(task, folder):
    _, tables = card(folder)
    world = f"shapes-{task}"
    report = json.loads((RESULTS / f"eval_{world}.json").read_text())
    header, *rows = tables["Training"]
    assert header[0] == "stage" and header[2:] == ["steps", "step time (s)"]
    records = stages(report)
    assert len(rows) == len(records), (
        f"{folder.name}: {len(rows)} stages in the card, {len(records)} recorded"
    )
    for i, (row, record) in enumerate(zip(rows, records), 1):
        assert row[0] == str(i)
        assert row[2] == f"{record['steps']:,}" and row[3] == f"{record['step_seconds']:,.0f}", (
            folder.name,
            row,
        )
        for flag, value in (record.get("changes") or {}).items():
            assert f"--{flag} {value}" in row[1], f"{folder.name}: stage {i} does not show --{flag} {value}"


@pytest.mark.parametrize("task,folder", CARDS, ids=[t for t, _ in CARDS])
def test_score_table_matches_the_evaluation_files(task, folder):
    """Every number of the held-out score table is its evaluation file's score, to 3 decimals, and every score
    of the files is in the table."""
    _, tables = card(folder)
    world = f"shapes-{task}"
    header, *rows = tables["Held-out scores"]
    assert header[0] == "score" and header[1].startswith("this model") and len(header) >= 3
    for column, title in enumerate(header[1:], 1):
        (source,) = [path for key, path in COLUMNS.items() if title.startswith(key)]
        scores = json.loads((RESULTS / source.format(world=world, task=task)).read_text())["scores"]
        assert [row[0] for row in rows] == list(scores), f"{folder.name}: {title}: rows != {list(scores)}"
        for row in rows:
            assert row[column] == f"{scores[row[0]]:.3f}", f"{folder.name}: {title} {row[0]} {row[column]}"
    assert "full attention" in " ".join(header)
    report = json.loads((RESULTS / f"eval_{world}.json").read_text())
    assert report["settings"]["n"] == 200 and report["model"].endswith(folder.name)


@pytest.mark.parametrize("task,folder", CARDS, ids=[t for t, _ in CARDS])
def test_card_metadata_and_loading(task, folder):
    """The licence is the project's; the card is package data and the loaders ignore it."""
    meta, _ = card(folder)
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(rf'^license = "{meta["license"]}"', pyproject, re.I | re.M)
    assert re.search(r'^ptdit = \["assets/\*\*/\*"\]', pyproject, re.M)  # README.md ships with the weights
    assert PipelineDefaults.read(folder).task == task
    assert PTDiT.from_pretrained(folder).num_parameters() > 0

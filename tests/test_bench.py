"""`ptdit bench`: model names, windows, one measured row, OOM safety, outputs and the CLI."""

import json

import pytest
import torch

import ptdit.bench as bench
from ptdit import PTDiTConfig, complexity
from ptdit.bench import Case, cli_main, default_window, measure_case, parse_model, parse_sizes, write_outputs
from ptdit.bench.cases import TINY_PRESET
from ptdit.config import PRESETS

REQUIRED = ("model", "height", "width", "frames", "device", "forward_ms", "train_ms", "peak_mem_gb")


@pytest.fixture
def tiny_preset(monkeypatch):
    """A 2-block preset 'PT-DiT-T' (D = 64), so that a measured row costs a second, not a minute."""
    monkeypatch.setitem(PRESETS, *TINY_PRESET)


pytestmark = pytest.mark.usefixtures("one_thread")


def test_parse_model_names_and_flags():
    assert parse_model("PT-DiT-L-lean+fast") == ("PT-DiT-L-lean", {"fuse", "auto-windows"})
    assert parse_model("PT-DiT-L+fast+flex") == ("PT-DiT-L", {"fuse", "flex"})
    assert parse_model("PixArt-alpha+graph") == ("PixArt-alpha", {"graph"})
    assert parse_model("PT-DiT-XL-full") == ("PT-DiT-XL-full", set())
    for bad, match in (
        ("PT-DiT-Q", "unknown model"),
        ("PT-DiT-S+turbo", "unknown flag"),
        ("PixArt-alpha+split", "peer"),
        ("PT-DiT-S+split+flex", "one of"),
    ):
        with pytest.raises(ValueError, match=match):
            parse_model(bad)


def test_default_windows_divide_the_token_grid():
    assert default_window(1024, 1024, 1) == (1, 8, 8)
    assert default_window(256, 256, 1) == (1, 2, 2)
    assert default_window(480, 720, 13) == (1, 15, 15)  # 49x480x720: 13 latent frames, 30 x 45 tokens
    assert default_window(512, 512, 24) == (4, 4, 4)  # 96x512^2: 24 latent frames


def test_parse_sizes():
    assert parse_sizes("256, 512x768,49x480x720") == [(1, 256, 256), (1, 512, 768), (49, 480, 720)]
    assert parse_sizes(["256", "512x768", "49x480x720"]) == parse_sizes("256,512x768,49x480x720")
    with pytest.raises(ValueError, match="FxHxW"):
        parse_sizes("big")


def test_measure_case_row_is_complete_and_consistent(tiny_preset):
    torch.manual_seed(0)
    row = measure_case(Case("PT-DiT-T+fast", 256, 256), "cpu", torch.float32, batch=2, warmup=0, repeats=2)
    assert all(k in row for k in REQUIRED), row
    assert row["notes"].startswith("window (1, 2, 2)") and "failed" not in row["notes"]
    assert row["forward_ms"] > 0 and row["train_ms"] > 0 and row["peak_mem_gb"] > 0
    assert len(row["forward_ms_all"]) == 2
    macs = complexity.count_ptdit(PTDiTConfig.from_preset("PT-DiT-T", window=(1, 2, 2)), 256, 256).total
    assert row["gmacs"] == pytest.approx(macs / 1e9)
    assert row["forward_tflops"] == pytest.approx(2 * macs * 2 / (row["forward_ms"] / 1000) / 1e12)
    assert row["tokens"] == 256 and row["tokens_per_s"] == pytest.approx(2 * 256 / (row["forward_ms"] / 1000))


def test_peer_builds_with_published_config_scaled_down():
    row = measure_case(
        Case("PixArt-alpha-S", 256, 256), "cpu", torch.float32, warmup=0, repeats=1, train=False
    )
    assert row["forward_ms"] > 0 and row["train_ms"] is None and not row["notes"]
    assert row["gmacs"] == pytest.approx(
        complexity.count_pixart(
            256, 256, spec=complexity.PixArtSpec(depth=10, hidden_size=384, num_heads=6)
        ).total
        / 1e9
    )


def test_out_of_memory_and_bad_cases_become_notes(monkeypatch):
    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80 GiB")

    monkeypatch.setattr(bench.measure, "build", oom)  # the name measure_case calls
    row = measure_case(Case("PT-DiT-XL", 4096, 4096), "cpu", torch.float32)
    assert row["forward_ms"] is None and row["notes"].startswith("out of memory")
    monkeypatch.undo()
    row = measure_case(Case("PT-DiT-S", 250, 250), "cpu", torch.float32)
    assert row["forward_ms"] is None and "multiple of 16" in row["notes"]


def test_write_outputs(tmp_path):
    rows = [
        dict(model=m, height=s, width=s, frames=1, device="cpu", device_name="cpu", torch="x", threads=1,
             dtype="float32", batch=2, train_batch=2, forward_ms=ms, train_ms=None, peak_mem_gb=1.0,
             sdpa_backend="MATH", notes="")
        for m, s, ms in (("A", 256, 10.0), ("B", 256, 5.0), ("A", 512, 40.0), ("B", 512, 10.0))
    ]  # fmt: skip
    md = write_outputs(rows, tmp_path / "r.json", tmp_path / "r.md", tmp_path / "r.png", reference="A")
    assert json.loads((tmp_path / "r.json").read_text()) == rows
    assert "| 512² | B |" in md and "| 0.25 |" in md  # the ratio column against the reference model
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_json_rows(tmp_path, capsys, tiny_preset):
    out = tmp_path / "rows.json"
    argv = ["--models", "PT-DiT-T-lean", "--sizes", "256", "--device", "cpu", "--no-train"]
    assert cli_main(argv + ["--repeats", "1", "--warmup", "0", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert len(rows) == 1 and all(rows[0][k] is not None for k in REQUIRED if k not in ("train_ms",))
    assert rows[0]["dtype"] == "float32" and rows[0]["batch"] == 2
    printed = capsys.readouterr().out
    assert "PT-DiT-T-lean" in printed and f"wrote {out}" in printed


def test_cli_list_options_take_spaces_or_commas():
    from ptdit.bench.cli import build_parser

    args = build_parser().parse_args(
        ["--models", "PT-DiT-S", "PixArt-alpha-S,DiT-XL/2", "--sizes", "256", "49x480x720"]
    )
    assert args.models == ["PT-DiT-S", "PixArt-alpha-S", "DiT-XL/2"]
    assert parse_sizes(args.sizes) == [(1, 256, 256), (49, 480, 720)]
    assert build_parser().parse_args(["--models", "PT-DiT-S,PixArt-alpha-S"]).models == [
        "PT-DiT-S",
        "PixArt-alpha-S",
    ]


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--models", "PT-DiT-Z"], "unknown model"),
        (["--sizes", "256x"], "FxHxW"),
        (["--batch", "0"], "--batch"),
    ],
)
def test_cli_rejects_bad_arguments(argv, match):
    with pytest.raises(ValueError, match=match):
        cli_main(argv + ["--device", "cpu"])


def test_cpu_timer_choice():
    bench.set_cpu_timer("process")
    try:
        assert bench.environment("cpu", torch.float32)["timer"] == "process"
        assert len(bench.time_ms(lambda: None, torch.device("cpu"), warmup=0, repeats=3)) == 3
    finally:
        bench.set_cpu_timer("wall")
    with pytest.raises(ValueError, match="CPU timer"):
        bench.set_cpu_timer("sundial")


def test_cli_peers_table(tmp_path, capsys, tiny_preset):
    """`ptdit bench --peers`: the steady protocol's rows and ratios (with the FLOP ratio) as JSON and markdown."""
    out, md = tmp_path / "peers.json", tmp_path / "peers.md"
    argv = [
        "--peers",
        "--models",
        "PT-DiT-T",
        "PixArt-alpha-T",
        "--sizes",
        "128",
        "--modes",
        "eager",
        "graph",
    ]
    argv += [
        "--phases",
        "forward",
        "--repeats",
        "2",
        "--device",
        "cpu",
        "--json",
        str(out),
        "--markdown",
        str(md),
    ]
    assert cli_main(argv) == 0
    data = json.loads(out.read_text())
    timed = [r for r in data["rows"] if r["median_ms"]]
    assert [r["model"] for r in timed] == ["PT-DiT-T", "PixArt-alpha-T"]
    assert all(len(r["pass_medians_ms"]) == 2 and r["min_ms"] <= r["median_ms"] <= r["max_ms"] for r in timed)
    assert all(r["skipped"] for r in data["rows"] if r["mode"] == "graph")
    ratio = data["ratios"][0]
    assert ratio["peer"] == "PixArt-alpha-T" and ratio["eager_ratio"] > 0 and 0 < ratio["flop_ratio"] < 1
    assert "FLOP ratio" in md.read_text() and "pass 2 128x128 forward eager" in capsys.readouterr().out

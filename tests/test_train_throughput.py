"""The trainer's log interval and throughput: interval means, tokens/s, samples/s and MFU from the analytic FLOPs,
no host read of a device value between log steps, and the NaN guard across an interval."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ptdit.complexity.counts import count_ptdit
from ptdit.training import TrainingDiverged, train
from ptdit.training.checkpoint import list_checkpoints
from ptdit.training.logs import read_log

sys.path.insert(0, str(Path(__file__).parent))
from test_train import cfg_of, tiny  # noqa: E402
from train_fixtures import NaNAfter  # noqa: E402


def test_records_are_interval_means_with_throughput(tmp_path):
    per_step = train(cfg_of(tiny(tmp_path / "a", train={"steps": 7}, checkpoint={"every": 0})))
    result = train(
        cfg_of(
            tiny(
                tmp_path / "b",
                train={"steps": 7, "peak_tflops": 0.5},
                checkpoint={"every": 0},
                log={"every": 3},
            )
        )
    )
    steps = read_log(tmp_path / "a" / "train_log.jsonl")
    records = read_log(tmp_path / "b" / "train_log.jsonl")
    assert [(r["step"], r["steps"]) for r in records] == [(3, 3), (6, 3), (7, 1)]
    for r, chunk in zip(records, (steps[0:3], steps[3:6], steps[6:7])):  # the same run, read less often
        assert r["loss"] == pytest.approx(sum(s["loss"] for s in chunk) / len(chunk), rel=1e-6)
        assert r["grad_norm"] == pytest.approx(sum(s["grad_norm"] for s in chunk) / len(chunk), rel=1e-6)
        assert r["grad_norm_max"] == pytest.approx(max(s["grad_norm"] for s in chunk), rel=1e-6)
        assert r["tau_min"] == min(s["tau_min"] for s in chunk) and r["tau_max"] == max(
            s["tau_max"] for s in chunk
        )
    assert result.loss == records[-1]["loss"] and per_step.loss == steps[-1]["loss"]

    # 8x8 px, identity autoencoder, patch 2 -> 16 tokens; batch 4; text 6 tokens (max_length)
    config = result.model_config
    flops = 3 * 2 * count_ptdit(config, 8, 8, 1, text_len=6, vae_factor=1).total * 4
    for r in records:
        rate = r["steps"] / r["seconds"]
        assert r["samples_per_s"] == pytest.approx(4 * rate, rel=2e-3)  # 4 significant digits
        assert r["tokens_per_s"] == pytest.approx(16 * 4 * rate, rel=2e-3)
        assert r["tflops"] == pytest.approx(flops * rate / 1e12, rel=2e-3)
        assert r["mfu"] == pytest.approx(r["tflops"] / 0.5, rel=2e-3)


def test_measured_peak_gives_a_positive_mfu(tmp_path):
    train(cfg_of(tiny(tmp_path / "run", train={"steps": 2}, log={"every": 2})))
    (record,) = read_log(tmp_path / "run" / "train_log.jsonl")
    assert 0 < record["mfu"] < 1 and record["tflops"] > 0


class _HostReads(TorchDispatchMode):
    """Counts reads of a tensor's value into Python (item / float / bool / int of a tensor)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


def test_steps_between_log_records_read_nothing_into_python(tmp_path):
    """The loss and grad norm stay tensors until the log step: more steps in one interval, no more reads (the
    data are preloaded, so the fixture dataset's own reads happen before the first step)."""
    counts = []
    for steps in (2, 6):
        with _HostReads() as reads:
            train(cfg_of(tiny(tmp_path / f"r{steps}", data={"preload": True}, train={"steps": steps},
                              checkpoint={"every": 0}, log={"every": 100})))  # fmt: skip
        counts.append(reads.count)
    assert counts[0] > 0 and counts[1] == counts[0], counts


def test_nan_inside_an_interval_names_its_step_and_writes_nothing_after_it(tmp_path):
    run = tmp_path / "nan"
    with pytest.raises(TrainingDiverged, match="step 5: the loss is nan"):
        train(
            cfg_of(tiny(run, train={"steps": 12}, checkpoint={"every": 8}, log={"every": 4})),
            autoencoder=NaNAfter(4),
        )
    assert list_checkpoints(run) == [] and not (run / "model").exists()
    assert [r["step"] for r in read_log(run / "train_log.jsonl")] == [4]  # the good interval only

"""At which noise level does a Shapes model decide what its sample shows? (motion, shape, relation, ...)

For each model and each start level tau0: ground-truth training-split scenes are noised to
x_tau0 = (1 - tau0) x0 + tau0 eps (the same eps for every model and level), sampled back to tau = 0 by Euler
with classifier-free guidance on a uniform grid of max(1, round(steps * tau0)) steps, and judged against their
own captions. tau0 = 1 is plain generation from noise; a criterion that passes from tau0 = 0.8 but not from 1 is
decided by the model's predictions at tau > 0.8. Next to each level the table gives the share of training draws
above it, P(tau > tau0), for the timestep distribution a model was trained with (from its training config, when
given with --config; logit-normal(logit_mean, logit_std) shifted by its ratio).

usage: python benchmarks/decision_noise.py --world shapes-video --model DIR [--config CONFIG.yaml] \
           [--model DIR2 [--config CONFIG2.yaml]] [--n 48] [--taus 1,0.95,0.9,0.8,0.6,0.4] [--steps 20]
           [--cfg 4] [--threads N] [--out benchmarks/results/decision_noise_video]

benchmarks/results/decision_noise_<world>.json holds the bundled model and its shift-off ablation, the model bundled
at 027bbb8 (image) or 6d0d9f5 (video), unpacked with `git archive C ptdit/assets/models configs | tar -x -C
/tmp/ptdit-C`:
    python benchmarks/decision_noise.py --world shapes-image \
        --model ptdit/assets/models/shapes-image --config configs/shapes_image.yaml \
        --model /tmp/ptdit-027bbb8/ptdit/assets/models/shapes-image --config /tmp/ptdit-027bbb8/configs/shapes_image.yaml \
        --out benchmarks/results/decision_noise_image
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ptdit.flow import NUM_TRAIN_TIMESTEPS, add_noise  # noqa: E402
from ptdit.generation import load_pipeline  # noqa: E402
from ptdit.io import atomic_write_text  # noqa: E402
from ptdit.pipeline_folders import read_defaults  # noqa: E402
from ptdit.sampling import sample_euler  # noqa: E402
from ptdit.worlds.judges import WORLDS, judge, world_module  # noqa: E402


def training_mass_above(config: str | None, taus: list[float], height: int, width: int, frames: int):
    """P(tau > tau0) under a training config's timestep distribution, per tau0 (None without a config)."""
    if config is None:
        return None
    from ptdit.training.config import TrainConfig

    t = TrainConfig.from_yaml(config).train
    r = t.timestep_shift(height, width, frames)
    out = []
    for tau0 in taus:
        if tau0 >= 1.0:
            out.append(0.0)
            continue
        base = tau0 / (r - (r - 1) * tau0)  # the unshifted tau that the shift maps to tau0
        if t.timestep_distribution == "uniform":
            out.append(1.0 - base)
        else:
            z = (math.log(base / (1 - base)) - t.logit_mean) / t.logit_std
            out.append(0.5 * math.erfc(z / math.sqrt(2)))
    return out


@torch.no_grad()
def run_model(model_dir: str, world: str, n: int, taus: list[float], steps: int, cfg: float, batch: int):
    pipe = load_pipeline(model_dir, device="cpu")
    d = read_defaults(model_dir)
    ds = world_module(world).make_dataset(split="train", length=n, seed=7)
    items = [ds[i] for i in range(n)]
    captions = [it["caption"] for it in items]
    x0 = torch.stack([torch.as_tensor(it["pixels"]) for it in items]).float()  # (B, C, F, H, W)
    latents0 = pipe.autoencoder.encode(x0)
    eps = torch.randn(latents0.shape, generator=torch.Generator().manual_seed(0))
    emb, mask, uncond, uncond_mask = pipe.encode_prompt(captions, device=torch.device("cpu"))
    rows = []
    for tau0 in taus:
        k = max(1, round(steps * tau0))
        timesteps = torch.linspace(tau0, 0.0, k + 1)[:-1] * NUM_TRAIN_TIMESTEPS
        start = add_noise(latents0, eps, torch.full((n,), tau0))
        pixels = []
        for s in range(0, n, batch):
            lat = sample_euler(
                pipe.transformer, start[s : s + batch], emb[s : s + batch], mask[s : s + batch], uncond, uncond_mask,
                timesteps=timesteps, cfg_scale=cfg,
            )  # fmt: skip
            pixels.extend(pipe.autoencoder.decode(lat).float().clamp(-1, 1))
        results = [judge(world, px, c) for px, c in zip(pixels, captions)]
        rates = {"ok": sum(r.ok for r in results) / n}
        for key in results[0].criteria:
            asked = [r.criteria[key] for r in results if r.criteria[key] is not None]
            rates[key] = sum(asked) / len(asked) if asked else None
        rows.append({"tau0": tau0, "steps": k, **rates})
        print(f"  {model_dir}: tau0 {tau0:.2f} ({k} steps) " + " ".join(f"{a} {b:.3f}" for a, b in rates.items()
              if b is not None), flush=True)  # fmt: skip
    return rows, (d.frames, d.height, d.width)


def markdown(report: dict) -> str:
    """The report as tables: its settings, then per model the judged criteria at each start level tau0 next to
    P(train tau > tau0), the share of training draws above it."""
    criteria = [k for k in report["models"][0]["rows"][0] if k not in ("tau0", "steps", "train_mass_above")]
    settings = [report["world"], report["n"], report["steps"], report["cfg"], report["seconds"]]
    lines = [
        f"# Where {report['world']} samples are decided (benchmarks/decision_noise.py)",
        "",
        "| world | training scenes per level | Euler steps from tau0 = 1 | CFG | seconds on the CPU |",
        "|---|---|---|---|---|",
        "| " + " | ".join(map(str, settings)) + " |",
        "",
    ]
    for m in report["models"]:
        lines += [f"**`{m['model']}`**" + (f" (`{m['config']}`)" if m["config"] else ""), ""]
        lines += ["| tau0 | steps | P(train tau > tau0) | " + " | ".join(criteria) + " |"]
        lines += ["|---" * (3 + len(criteria)) + "|"]
        for r in m["rows"]:
            mass = "" if r["train_mass_above"] is None else f"{r['train_mass_above']:.3f}"
            vals = " | ".join("" if r[c] is None else f"{r[c]:.3f}" for c in criteria)
            lines.append(f"| {r['tau0']:.2f} | {r['steps']} | {mass} | {vals} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--world", choices=sorted(WORLDS), required=True)
    ap.add_argument("--model", action="append", required=True, help="model directory (repeatable)")
    ap.add_argument("--config", action="append", default=[], help="its training config, in --model order")
    ap.add_argument("--n", type=int, default=48, help="ground-truth scenes per level")
    ap.add_argument("--taus", default="1,0.95,0.9,0.8,0.6,0.4")
    ap.add_argument("--steps", type=int, default=20, help="Euler steps of a full (tau0 = 1) sample")
    ap.add_argument("--cfg", type=float, default=4.0)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    args = ap.parse_args(argv)
    if args.config and len(args.config) != len(args.model):
        ap.error("give one --config per --model, in the same order (or none)")
    if args.n < 1 or args.steps < 1:
        ap.error("--n and --steps must be >= 1")
    try:
        taus = [float(t) for t in args.taus.split(",")]
    except ValueError:
        ap.error(f"--taus must be comma-separated numbers in (0, 1], got {args.taus!r}")
    if not all(0 < t <= 1 for t in taus):
        ap.error(f"--taus must be in (0, 1], got {args.taus!r}")
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {"world": args.world, "n": args.n, "steps": args.steps, "cfg": args.cfg, "models": []}
    start = time.perf_counter()
    for i, model in enumerate(args.model):
        rows, (frames, height, width) = run_model(
            model, args.world, args.n, taus, args.steps, args.cfg, args.batch_size
        )
        config = args.config[i] if args.config else None
        mass = training_mass_above(config, taus, height, width, frames)
        for row, m in zip(rows, mass or [None] * len(rows)):
            row["train_mass_above"] = m
        report["models"].append({"model": model, "config": config, "rows": rows})
    report["seconds"] = round(time.perf_counter() - start, 1)

    text = markdown(report)
    print(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
        atomic_write_text(out.with_suffix(".md"), text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

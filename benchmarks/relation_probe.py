"""Does a Shapes image model read the relation from its caption before the noise shows a layout?

For two-object training-split (or held-out) scenes of two different colours: the scene is noised to a level tau
(x_tau = (1 - tau) x0 + tau eps), the model predicts x0_hat = x_tau + tau v with classifier-free guidance, and
x0_hat is averaged over `--seeds` noises. In that average each object's colour is located (a soft colour match,
its centroid); the probe counts the scenes where object A's centroid lies on the side of B's that the caption
names (left of / right of / above / below). At tau = 1 the input is pure noise, so the caption alone must place
the objects: a model that reads the relation scores near 1, one that ignores it near 0.5.

usage: python benchmarks/relation_probe.py --model DIR [--model DIR2 ...] [--split train] [--n 96] [--seeds 8]
           [--taus 1,0.9] [--cfg 4] [--threads 1] [--out benchmarks/results/relation_probe]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ptdit.flow import NUM_TRAIN_TIMESTEPS  # noqa: E402
from ptdit.generation import load_pipeline  # noqa: E402
from ptdit.io import atomic_write_text  # noqa: E402
from ptdit.sampling import cfg_text_batch, guided_velocity  # noqa: E402
from ptdit.worlds.judges import world_module  # noqa: E402
from ptdit.worlds.shapes import PALETTE  # noqa: E402

WORLD = "shapes-image"


def two_colour_scenes(split: str, n: int, seed: int = 11) -> list[dict]:
    """`n` scenes of `split` with two objects of different colours (a relation to place them by)."""
    ds = world_module(WORLD).make_dataset(split=split, length=20 * n, seed=seed)
    out = []
    for i in range(len(ds)):
        it = ds[i]
        objs = it["spec"]["objects"]
        if it["spec"]["relation"] is not None and objs[0]["color"] != objs[1]["color"]:
            out.append(it)
            if len(out) == n:
                return out
    raise ValueError(f"found only {len(out)} two-colour scenes in {20 * n} of split {split!r}")


def on_named_side(image: np.ndarray, spec: dict) -> bool:
    """Whether object A's colour centroid lies on B's named side in `image` (H, W, 3) in [-1, 1]."""
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    centroids = []
    for o in spec["objects"]:
        c = np.array(PALETTE[o["color"]], dtype=np.float64) / 127.5 - 1
        weight = np.exp(-((image - c) ** 2).sum(-1) / 0.5)
        weight = weight / weight.sum()
        centroids.append(((weight * xs).sum(), (weight * ys).sum()))
    (ax, ay), (bx, by) = centroids
    gap = {"left": bx - ax, "right": ax - bx, "above": by - ay, "below": ay - by}[spec["relation"]]
    return bool(gap > 0)


@torch.no_grad()
def probe(
    model_dir: str, scenes: list[dict], taus: list[float], seeds: int, cfg: float
) -> dict[float, float]:
    """tau -> share of scenes whose seed-averaged x0 prediction puts A on the named side."""
    pipe = load_pipeline(model_dir, device="cpu")
    captions = [s["caption"] for s in scenes]
    emb, mask, uncond, uncond_mask = pipe.encode_prompt(captions, device=torch.device("cpu"))
    text, text_mask, guided = cfg_text_batch(emb, mask, uncond, uncond_mask, cfg)
    x0 = pipe.autoencoder.encode(torch.stack([s["pixels"] for s in scenes]).float())
    rates = {}
    for tau in taus:
        mean = torch.zeros_like(x0, dtype=torch.float32)
        for seed in range(seeds):
            eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
            xt = (1 - tau) * x0 + tau * eps
            t = torch.tensor(tau * NUM_TRAIN_TIMESTEPS)
            v = guided_velocity(pipe.transformer, xt, t, text, text_mask, guided, cfg)
            mean += (xt + tau * v).float() / seeds
        pixels = pipe.autoencoder.decode(mean).float()[:, :, 0].permute(0, 2, 3, 1).numpy()  # (N, H, W, 3)
        rates[tau] = float(np.mean([on_named_side(p, s["spec"]) for p, s in zip(pixels, scenes)]))
    return rates


def markdown(report: dict) -> str:
    """The report as tables: its settings, then each model's share of scenes on the captioned side per tau."""
    taus = list(report["models"][0]["rates"])
    settings = [
        report["world"],
        report["split"],
        report["n"],
        report["seeds"],
        report["cfg"],
        report["seconds"],
    ]
    return "\n".join([
        "# Does the model place the objects by the caption's relation? (benchmarks/relation_probe.py)",
        "",
        "| world | split | scenes | noises averaged | CFG | seconds on the CPU |",
        "|---|---|---|---|---|---|",
        "| " + " | ".join(map(str, settings)) + " |",
        "",
        "| model | " + " | ".join(f"tau {float(t):.2f}" for t in taus) + " |",
        "|---|" + "---|" * len(taus),
        *(f"| `{m['model']}` | " + " | ".join(f"{r:.3f}" for r in m["rates"].values()) + " |"
          for m in report["models"]),
    ]) + "\n"  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", required=True, help="model directory (repeatable)")
    ap.add_argument("--split", choices=("train", "heldout"), default="train")
    ap.add_argument("--n", type=int, default=96, help="scenes")
    ap.add_argument("--seeds", type=int, default=8, help="noises the x0 prediction is averaged over")
    ap.add_argument("--taus", default="1,0.9")
    ap.add_argument("--cfg", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    args = ap.parse_args(argv)
    try:
        taus = [float(t) for t in args.taus.split(",")]
    except ValueError:
        ap.error(f"--taus must be comma-separated numbers in (0, 1], got {args.taus!r}")
    if not all(0 < t <= 1 for t in taus) or args.n < 1 or args.seeds < 1:
        ap.error("--taus must be in (0, 1]; --n and --seeds must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    scenes = two_colour_scenes(args.split, args.n)
    report = {
        "world": WORLD,
        "split": args.split,
        "n": args.n,
        "seeds": args.seeds,
        "cfg": args.cfg,
        "models": [],
    }
    for model in args.model:
        rates = probe(model, scenes, taus, args.seeds, args.cfg)
        report["models"].append({"model": model, "rates": {str(t): r for t, r in rates.items()}})
        print(f"{model}: " + "  ".join(f"tau {t:.2f}: {r:.3f}" for t, r in rates.items()), flush=True)
    report["seconds"] = round(time.perf_counter() - start, 1)
    if args.out:
        out = Path(args.out)
        atomic_write_text(out.with_suffix(".json"), json.dumps(report, indent=1) + "\n")
        atomic_write_text(out.with_suffix(".md"), markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fashion-MNIST judges trained inside the project: a small CNN classifier and its features for FID.

One network does both jobs. `FMNISTClassifier` (three 3x3 conv blocks, then a 128-d hidden layer) is trained
on the train split; its accuracy on generated images tells whether a text-to-image model drew the class it
was asked for, and its 128-d penultimate activations replace Inception-v3 features in the Frechet distance
(FID), which Inception cannot give on 28x28 grayscale clothes. `FMNISTFeatures` wraps it in the form
torchmetrics' `FrechetInceptionDistance(feature=<module>)` takes (a `num_features` attribute, always in eval
mode), so no torch-fidelity is needed.

    python -m ptdit.worlds.fmnist_nets train   # retrain ptdit/assets/fmnist_classifier.safetensors
    python -m ptdit.worlds.fmnist_nets eval    # test accuracy and reference FIDs of the bundled weights

Images everywhere are (N, 1, H, W) (or (N, 1, 1, H, W), one frame) in [-1, 1], or uint8 in [0, 255], with
H = W = 28 or 32; 28-pixel images are padded with black to 32, as the dataset does.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from torch import Tensor, nn

from ptdit.extras import require
from ptdit.io import load_state_dict_strict, read_safetensors, save_safetensors_atomic
from ptdit.worlds.fashion_mnist import CLASS_NAMES, load_split, to_pixels

DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "assets" / "fmnist_classifier.safetensors"
IMAGE_SIZE = 32  # the networks see 32x32; 28x28 inputs are padded


# ---------------------------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------------------------


def prepare_images(images: Tensor) -> Tensor:
    """Bring an image batch to the networks' input: float32 (N, 1, 32, 32) in [-1, 1].

    Accepts (N, C, H, W) or (N, C, 1, H, W) with C = 1 (or C = 3, averaged to gray), H = W in {28, 32},
    float in [-1, 1] or uint8 in [0, 255].
    """
    if not isinstance(images, Tensor):
        raise ValueError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() == 5:
        if images.shape[2] != 1:
            raise ValueError(f"images (N, C, F, H, W) must have one frame, got shape {tuple(images.shape)}")
        images = images[:, :, 0]
    if (
        images.dim() != 4
        or images.shape[1] not in (1, 3)
        or images.shape[-1] != images.shape[-2]
        or images.shape[-1] not in (28, 32)
    ):
        raise ValueError(f"images must be (N, 1 or 3, H, W) with H = W = 28 or 32, got {tuple(images.shape)}")
    x = images.float() / 127.5 - 1.0 if images.dtype == torch.uint8 else images.float()
    if x.shape[1] == 3:
        x = x.mean(dim=1, keepdim=True)
    pad = (IMAGE_SIZE - x.shape[-1]) // 2
    if pad:
        x = F.pad(x, (pad, pad, pad, pad), value=-1.0)
    return x


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)
    )


class FMNISTClassifier(nn.Module):
    """Three conv blocks (3x3 conv, BatchNorm, ReLU, 2x2 max-pool: 32 -> 16 -> 8 -> 4), a hidden layer, logits.

    forward: (N, 1, 32, 32) in [-1, 1] -> logits (N, 10); features: the same input -> (N, num_features),
    the post-ReLU hidden layer that FID uses.
    """

    def __init__(self, widths: tuple[int, int, int] = (32, 64, 64), num_features: int = 128) -> None:
        super().__init__()
        self.widths, self.num_features = tuple(int(w) for w in widths), int(num_features)
        w1, w2, w3 = self.widths
        self.convs = nn.Sequential(_conv_block(1, w1), _conv_block(w1, w2), _conv_block(w2, w3))
        self.hidden = nn.Linear(w3 * (IMAGE_SIZE // 8) ** 2, self.num_features)
        self.head = nn.Linear(self.num_features, len(CLASS_NAMES))

    def features(self, x: Tensor) -> Tensor:
        h = self.convs(x)  # (N, w3, 4, 4)
        return F.relu(self.hidden(h.flatten(1)))  # (N, num_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # (N, 10)


class FMNISTFeatures(nn.Module):
    """The classifier's penultimate features as a frozen FID feature extractor.

    forward: images as `prepare_images` takes them -> float32 (N, num_features). Usable directly as
    `torchmetrics.image.fid.FrechetInceptionDistance(feature=FMNISTFeatures(classifier))`. The module stays in
    eval mode (BatchNorm running statistics) even when a metric that holds it is put in train mode.
    """

    def __init__(self, classifier: FMNISTClassifier) -> None:
        super().__init__()
        self.classifier = classifier
        self.num_features = classifier.num_features
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> FMNISTFeatures:
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        return self.classifier.features(prepare_images(images).to(self.classifier.head.weight.device))


# ---------------------------------------------------------------------------------------------------------
# weights
# ---------------------------------------------------------------------------------------------------------


def load_fmnist_classifier(path: str | Path | None = None) -> FMNISTClassifier:
    """The trained classifier (eval mode) from a safetensors file; default: the bundled weights."""
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(
            f"Fashion-MNIST classifier weights {path} not found; "
            "train them with `python -m ptdit.worlds.fmnist_nets train`"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path} is not a readable safetensors file ({e})") from None
    if "widths" not in meta or "num_features" not in meta:
        raise ValueError(f"{path} lacks the 'widths' / 'num_features' metadata of an FMNISTClassifier file")
    model = FMNISTClassifier(tuple(json.loads(meta["widths"])), int(meta["num_features"]))
    load_state_dict_strict(model, read_safetensors(path), str(path))
    return model.eval()


@functools.lru_cache(maxsize=1)
def _bundled_features() -> FMNISTFeatures:
    return FMNISTFeatures(load_fmnist_classifier())


# ---------------------------------------------------------------------------------------------------------
# evaluation API
# ---------------------------------------------------------------------------------------------------------


@torch.no_grad()
def predict(images: Tensor, classifier: FMNISTClassifier | None = None, batch_size: int = 1000) -> Tensor:
    """Predicted labels int64 (N,) for images (N, 1, H, W) in [-1, 1] (see `prepare_images`)."""
    classifier = classifier if classifier is not None else _bundled_features().classifier
    x = prepare_images(images)
    was_training = classifier.training
    classifier.eval()
    device = classifier.head.weight.device
    out = torch.cat(
        [
            classifier(x[i : i + batch_size].to(device)).argmax(1).cpu()
            for i in range(0, x.shape[0], batch_size)
        ]
    )
    classifier.train(was_training)
    return out


def classifier_accuracy(
    images: Tensor, labels: Tensor | list[int], classifier: FMNISTClassifier | None = None
) -> float:
    """Fraction of images (N, 1, H, W) in [-1, 1] that the classifier assigns to their label (N,)."""
    labels = torch.as_tensor(labels, dtype=torch.int64).flatten()
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"got {images.shape[0]} images but {labels.shape[0]} labels")
    if labels.numel() == 0:
        raise ValueError("classifier_accuracy needs at least one image")
    return float((predict(images, classifier) == labels).float().mean())


@torch.no_grad()
def fid(
    real_images: Tensor, fake_images: Tensor, feature: nn.Module | None = None, batch_size: int = 1000
) -> float:
    """Frechet distance between the feature statistics of two image sets.

    real_images, fake_images: (N, 1, H, W) in [-1, 1] (see `prepare_images`), N >= 2 each. feature: the
    extractor, default the bundled classifier's 128-d features; any module with a `num_features` attribute
    mapping a batch to (N, d) works (inputs are then passed to it unchanged). Computed by torchmetrics'
    FrechetInceptionDistance in float64.
    """
    require("torchmetrics", "eval", "the Fashion-MNIST FID")
    from torchmetrics.image.fid import FrechetInceptionDistance

    for name, x in (("real_images", real_images), ("fake_images", fake_images)):
        if not isinstance(x, Tensor) or x.dim() < 2 or x.shape[0] < 2:
            raise ValueError(
                f"{name} must be a tensor batch of at least 2 items, got "
                f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}"
            )
    feature = feature if feature is not None else _bundled_features()
    metric = FrechetInceptionDistance(feature=feature)
    for x, real in ((real_images, True), (fake_images, False)):
        for i in range(0, x.shape[0], batch_size):
            metric.update(x[i : i + batch_size], real=real)
    return float(metric.compute())


# ---------------------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------------------


@torch.no_grad()
def _test_accuracy(model: FMNISTClassifier, root: str | Path | None) -> float:
    images, labels = load_split("test", root)
    return classifier_accuracy(to_pixels(images, IMAGE_SIZE)[:, None], labels, model)


def train_fmnist_nets(
    out_path: str | Path | None = None,
    epochs: int = 3,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 4e-3,
    root: str | Path | None = None,
    train_limit: int | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Train the classifier on the train split (AdamW, one-cycle schedule) and save it as safetensors.

    Deterministic on CPU for a given seed and thread count: a rerun gives the same weights bit for bit
    and the same metadata (safetensors may store the metadata keys in another order). `train_limit` keeps the first images only (quick checks). Returns
    {"test_accuracy", "train_seconds", "epochs", "seed"}; all but the time are stored in the file's metadata.
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    out_path = Path(out_path) if out_path is not None else DEFAULT_WEIGHTS
    images, labels = load_split("train", root)  # uint8 (60000, 28, 28), int64 (60000,)
    if train_limit is not None:
        images, labels = images[:train_limit], labels[:train_limit]
    steps_per_epoch = images.shape[0] // batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size {batch_size} is larger than the {images.shape[0]} training images")
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FMNISTClassifier()
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
        for epoch in range(epochs):
            model.train()
            perm = torch.randperm(images.shape[0], generator=gen)
            total = 0.0
            for step in range(steps_per_epoch):
                idx = perm[step * batch_size : (step + 1) * batch_size]
                x = to_pixels(images[idx], IMAGE_SIZE)[:, None]  # (B, 1, 32, 32)
                loss = F.cross_entropy(model(x), labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item()
            log(
                f"epoch {epoch + 1}/{epochs}: train loss {total / steps_per_epoch:.4f} "
                f"({time.perf_counter() - start:.0f} s)"
            )
    seconds = time.perf_counter() - start
    model.eval()
    accuracy = _test_accuracy(model, root)
    meta = {
        "widths": json.dumps(list(model.widths)),
        "num_features": str(model.num_features),
        "test_accuracy": f"{accuracy:.4f}",
        "epochs": str(epochs),
        "seed": str(seed),
        "train_images": str(images.shape[0]),
        "torch_threads": str(torch.get_num_threads()),
    }
    save_safetensors_atomic(model.state_dict(), out_path, metadata=meta)
    log(f"test accuracy {accuracy:.4f}; trained in {seconds:.0f} s; saved {out_path}")
    return {"test_accuracy": accuracy, "train_seconds": round(seconds, 1), "epochs": epochs, "seed": seed}


# ---------------------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------------------


def cli_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ptdit.worlds.fmnist_nets",
        description="train or evaluate the Fashion-MNIST classifier / FID features",
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train", help="train the classifier and write its safetensors file")
    tr.add_argument("--out", default=str(DEFAULT_WEIGHTS), help="output file (default: the bundled asset)")
    tr.add_argument("--epochs", type=int, default=3)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--root", default=None, help="Fashion-MNIST directory (default /usr/share/datasets/...)")
    ev = sub.add_parser("eval", help="test accuracy and reference FIDs of a weights file")
    ev.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    ev.add_argument("--root", default=None)
    ev.add_argument("--fid-samples", type=int, default=5000, help="images per side for the reference FIDs")
    args = parser.parse_args(argv)
    if args.cmd == "train":
        train_fmnist_nets(args.out, epochs=args.epochs, seed=args.seed, root=args.root)
        return 0
    model = load_fmnist_classifier(args.weights)
    print(f"test accuracy: {_test_accuracy(model, args.root):.4f} (10000 test images)")
    n = args.fid_samples
    if n < 2 or 2 * n > 10000:
        raise ValueError(f"--fid-samples must be in 2..5000, got {n}")
    test = to_pixels(load_split("test", args.root)[0], IMAGE_SIZE)[:, None]
    train = to_pixels(load_split("train", args.root)[0][:n], IMAGE_SIZE)[:, None]
    feature = FMNISTFeatures(model)
    noise = torch.rand(n, 1, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0)) * 2 - 1
    print(f"FID test[:{n}] vs test[{n}:{2 * n}]: {fid(test[:n], test[n : 2 * n], feature):.3f}")
    print(f"FID test[:{n}] vs train[:{n}]: {fid(test[:n], train, feature):.3f}")
    print(f"FID test[:{n}] vs uniform noise: {fid(test[:n], noise, feature):.3f}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(cli_main(sys.argv[1:]))
    except (ValueError, FileNotFoundError) as e:
        print(f"fmnist_nets: error: {e}", file=sys.stderr)
        sys.exit(1)

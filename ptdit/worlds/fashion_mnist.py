"""Fashion-MNIST as a small real-data text-to-image world: idx reader, captioned dataset, prompt parser.

The images come from the Debian package `dataset-fashion-mnist` (files in /usr/share/datasets/fashion-mnist/).
Each item is one 28x28 grayscale product photo, padded with black to 32x32 by default so that 2x2 patches
and (1, 2, 2) / (1, 4, 4) windows divide the token grid; its caption names its class in one of a few
templates ("a photo of a sneaker", "an ankle boot, product photo", ...).
"""

from __future__ import annotations

import functools
import gzip
import re
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
INSTALL_HINT = "install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu) or pass root=<dir>"
SPLITS = {"train": "train", "test": "t10k"}
SIZES = (28, 32)

# the dataset's official class names, index = label
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# the noun phrase each caption uses for a class, article included
CLASS_PHRASES = (
    "a t-shirt",
    "a pair of trousers",
    "a pullover",
    "a dress",
    "a coat",
    "a sandal",
    "a shirt",
    "a sneaker",
    "a bag",
    "an ankle boot",
)
TEMPLATES = (
    "{}",
    "a photo of {}",
    "{}, product photo",
    "a grayscale photo of {}",
    "a picture of {} on a black background",
)
# words that name each class in a prompt; checked in this order, and a matched span is removed before the
# next class is tried, so "t-shirt" never also counts as "shirt" and "ankle boot" never as a bare "boot".
_CLASS_PATTERNS: tuple[tuple[int, str], ...] = (
    (0, r"t[- ]?shirts?|tees?|tops?"),
    (9, r"ankle[- ]boots?|boots?"),
    (7, r"sneakers?|trainers?"),
    (1, r"trousers?|pants|jeans"),
    (2, r"pullovers?|sweaters?|jumpers?"),
    (3, r"dress(?:es)?"),
    (4, r"coats?|jackets?"),
    (5, r"sandals?"),
    (6, r"shirts?"),
    (8, r"bags?|handbags?|purses?"),
)


# ---------------------------------------------------------------------------------------------------------
# idx reader
# ---------------------------------------------------------------------------------------------------------


def read_idx(path: str | Path) -> np.ndarray:
    """Read one idx file (raw or gzip-compressed) of unsigned bytes into an array of its stored shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an idx file (bad magic number)")
    if data[2] != 0x08:
        raise ValueError(f"{path}: idx element type 0x{data[2]:02x} is not unsigned byte (0x08)")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but the file holds {len(data) - offset} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def _find(root: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"Fashion-MNIST file {stem}[.gz] not found in {root}; {INSTALL_HINT}")


@functools.lru_cache(maxsize=4)
def _load_split_cached(root: str, split: str) -> tuple[Tensor, Tensor]:
    prefix = SPLITS[split]
    images = read_idx(_find(Path(root), f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find(Path(root), f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != (images.shape[0],):
        raise ValueError(
            f"Fashion-MNIST {split} files in {root} have unexpected shapes {images.shape} and {labels.shape}"
        )
    if int(labels.max()) >= len(CLASS_NAMES):
        raise ValueError(
            f"Fashion-MNIST {split} labels in {root} go up to {int(labels.max())}, expected < 10"
        )
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def load_split(split: str = "train", root: str | Path | None = None) -> tuple[Tensor, Tensor]:
    """Load a split as (images uint8 (N, 28, 28), labels int64 (N,)); N = 60000 for train, 10000 for test."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    root = Path(root) if root is not None else DEFAULT_ROOT
    if not root.is_dir():
        raise FileNotFoundError(f"Fashion-MNIST directory {root} does not exist; {INSTALL_HINT}")
    return _load_split_cached(str(root.resolve()), split)


def dataset_available(root: str | Path | None = None) -> bool:
    """True when the four idx files of both splits can be found."""
    root = Path(root) if root is not None else DEFAULT_ROOT
    try:
        for prefix in SPLITS.values():
            _find(root, f"{prefix}-images-idx3-ubyte")
            _find(root, f"{prefix}-labels-idx1-ubyte")
    except FileNotFoundError:
        return False
    return True


def to_pixels(images: Tensor, size: int = 32) -> Tensor:
    """uint8 (..., 28, 28) in [0, 255] -> float32 (..., size, size) in [-1, 1], black (-1) padding for 32."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size}")
    x = images.float() / 127.5 - 1.0
    pad = (size - x.shape[-1]) // 2
    if pad > 0:
        x = torch.nn.functional.pad(x, (pad, pad, pad, pad), value=-1.0)
    return x


# ---------------------------------------------------------------------------------------------------------
# captions
# ---------------------------------------------------------------------------------------------------------


def caption(label: int, template: int = 0) -> str:
    """The caption of class `label` (0..9) in template `template` (0..len(TEMPLATES)-1)."""
    if not 0 <= int(label) < len(CLASS_NAMES):
        raise ValueError(f"label must be in 0..{len(CLASS_NAMES) - 1}, got {label}")
    if not 0 <= int(template) < len(TEMPLATES):
        raise ValueError(f"template must be in 0..{len(TEMPLATES) - 1}, got {template}")
    return TEMPLATES[int(template)].format(CLASS_PHRASES[int(label)])


def class_prompts(template: int = 1) -> list[str]:
    """One prompt per class, index = label: ["a photo of a t-shirt", ..., "a photo of an ankle boot"]."""
    return [caption(label, template) for label in range(len(CLASS_NAMES))]


def parse_prompt(prompt: str) -> int:
    """The class label (0..9) that `prompt` names; ValueError when it names none or several classes."""
    text = prompt.lower()
    found: list[int] = []
    for label, pattern in _CLASS_PATTERNS:
        text, n = re.subn(rf"\b(?:{pattern})\b", " ", text)
        if n and label not in found:
            found.append(label)
    if not found:
        raise ValueError(
            f"prompt {prompt!r} names no Fashion-MNIST class; name one of "
            f"{', '.join(CLASS_NAMES)} (e.g. {class_prompts()[7]!r})"
        )
    if len(found) > 1:
        names = ", ".join(CLASS_NAMES[i] for i in found)
        raise ValueError(f"prompt {prompt!r} names several Fashion-MNIST classes ({names}); name exactly one")
    return found[0]


# ---------------------------------------------------------------------------------------------------------
# dataset
# ---------------------------------------------------------------------------------------------------------


class FashionMNIST(Dataset):
    """Fashion-MNIST with captions, per the shared dataset contract.

    item = {"pixels": float32 (1, 1, size, size) in [-1, 1]  (C = 1 grayscale, F = 1 frame),
            "caption": str naming the class, "label": int in 0..9}

    The caption template of item i is fixed by (i, seed), so an epoch is reproducible while the templates
    still vary across items. `limit` keeps the first `limit` items (for quick runs).
    """

    def __init__(
        self,
        split: str = "train",
        size: int = 32,
        root: str | Path | None = None,
        limit: int | None = None,
        seed: int = 0,
    ) -> None:
        if size not in SIZES:
            raise ValueError(f"size must be one of {SIZES}, got {size}")
        images, labels = load_split(split, root)
        if limit is not None:
            if limit < 1:
                raise ValueError(f"limit must be >= 1, got {limit}")
            images, labels = images[:limit], labels[:limit]
        self.split, self.size, self.seed = split, size, seed
        self.images, self.labels = images, labels  # uint8 (N, 28, 28), int64 (N,)

    def __len__(self) -> int:
        return self.labels.shape[0]

    def template_of(self, index: int) -> int:
        return (index * 7919 + self.seed * 104729) % len(TEMPLATES)

    def bucket_of(self, index: int) -> tuple[int, int, int]:
        return (1, self.size, self.size)

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        index = index % len(self)
        label = int(self.labels[index])
        pixels = to_pixels(self.images[index], self.size)[None, None]  # (1, 1, size, size)
        return {"pixels": pixels, "caption": caption(label, self.template_of(index)), "label": label}

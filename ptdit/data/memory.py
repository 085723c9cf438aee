"""Preloading (data.preload): every item of a dataset decoded or rendered once, then served from memory.

Procedural worlds render each item on the CPU (a Shapes multi-view scene takes ~4 ms); on a GPU a small model
asks for hundreds of items per step, so the training loop would wait for the data. `preload(dataset)` renders
all items once, in `num_workers` DataLoader processes, and keeps their pixels (unchanged: same dtype and
values) with their captions, `bucket_of` and any item "key" (the latent cache's key). A preloaded run is
therefore the same run as one without preloading, only faster.

Workers send one stacked tensor per chunk of same-size items (one shared-memory handle per chunk, not per item:
tens of thousands of per-item handles exhaust the open-file limit), and the chunks are copied out of shared
memory, so no file descriptor stays open per item.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

logger = logging.getLogger(__name__)


def _keep(items: list[dict]) -> tuple[list[Tensor] | Tensor, list[str], list[Any]]:
    """Collate for the preloading DataLoader: (pixels stacked when the items share a size, captions, keys)."""
    pixels = [it["pixels"] for it in items]
    if len({tuple(p.shape) for p in pixels}) == 1:
        pixels = torch.stack(pixels)
    return pixels, [str(it["caption"]) for it in items], [it.get("key") for it in items]


class InMemoryDataset(Dataset):
    """Items (pixels (C, F, H, W), caption[, key]) held in memory; built by `preload`."""

    def __init__(
        self, pixels: list[Tensor], captions: list[str], keys: list[Any], buckets: list[tuple] | None
    ) -> None:
        if not len(pixels) == len(captions) == len(keys):
            raise ValueError("pixels, captions and keys must have one entry per item")
        self.pixels, self.captions, self.keys, self.buckets = pixels, captions, keys, buckets

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, index: int) -> dict:
        item = {"pixels": self.pixels[index], "caption": self.captions[index]}
        if self.keys[index] is not None:
            item["key"] = self.keys[index]
        return item

    def bucket_of(self, index: int) -> tuple:
        return self.buckets[index] if self.buckets is not None else tuple(self.pixels[index].shape[1:])

    def nbytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.pixels)


def preload(dataset: Dataset, num_workers: int = 0, batch_size: int = 64) -> InMemoryDataset:
    """All items of `dataset` in memory, decoded/rendered by `num_workers` processes."""
    n = len(dataset)
    if n == 0:
        raise ValueError("data.preload: the dataset is empty")
    start = time.perf_counter()
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=_keep)
    pixels: list[Tensor] = []
    captions: list[str] = []
    keys: list[Any] = []
    for chunk_pixels, chunk_captions, chunk_keys in loader:
        if isinstance(chunk_pixels, Tensor):
            pixels.extend(chunk_pixels.clone().unbind(0))  # out of shared memory, one block per chunk
        else:
            pixels.extend(p.clone() for p in chunk_pixels)
        captions.extend(chunk_captions)
        keys.extend(chunk_keys)
    bucket_of = getattr(dataset, "bucket_of", None)
    buckets = [tuple(bucket_of(i)) for i in range(n)] if callable(bucket_of) else None
    out = InMemoryDataset(pixels, captions, keys, buckets)
    logger.info("preloaded %d items (%.0f MB) in %.1f s", n, out.nbytes() / 1e6, time.perf_counter() - start)
    return out

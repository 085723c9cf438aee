"""A deterministic, resumable, per-rank batch order with same-size buckets.

Epoch e shuffles the indices with seed + e, groups them by `dataset.bucket_of(i)` (contract 1; one bucket if the
dataset has none), cuts full batches, shuffles the batches, and deals them round-robin to the ranks. The order is
a pure function of (seed, epoch), so a run resumes exactly from (epoch, batches consumed), with any number of
DataLoader workers.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, Sampler


def _buckets(dataset: Dataset, n: int) -> list[tuple]:
    bucket_of = getattr(dataset, "bucket_of", None)
    return [tuple(bucket_of(i)) for i in range(n)] if callable(bucket_of) else [()] * n


class ShardedBatchOrder(Sampler[list[int]]):
    """Yields this rank's batches (lists of indices) of one epoch, from batch `start` on.

    Every rank gets the same number of batches per epoch (the last incomplete round is dropped), so the
    ranks stay in step. Raises ValueError when an epoch has no batch for some rank.
    """

    def __init__(
        self, dataset: Dataset, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        self.n = len(dataset)
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.keys = _buckets(dataset, self.n)
        self.epoch, self.start = 0, 0
        if self.batches_per_epoch() == 0:
            raise ValueError(
                f"the dataset has {self.n} items: too few for batch_size {batch_size} x {world_size} rank(s) "
                "within one size bucket; add data or lower train.batch_size"
            )

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """All batches of an epoch, before dealing to ranks."""
        g = torch.Generator().manual_seed(self.seed * 100003 + epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        groups: dict[tuple, list[int]] = {}
        for i in perm:
            groups.setdefault(self.keys[i], []).append(i)
        batches = []
        for key in sorted(groups):
            idx = groups[key]
            batches += [
                idx[j : j + self.batch_size]
                for j in range(0, len(idx) - self.batch_size + 1, self.batch_size)
            ]
        order = torch.randperm(len(batches), generator=g).tolist()
        batches = [batches[k] for k in order]
        usable = len(batches) - len(batches) % self.world_size
        return batches[:usable]

    def batches_per_epoch(self) -> int:
        return len(self.epoch_batches(0)) // self.world_size

    def set_position(self, epoch: int, start: int) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self) -> Iterator[list[int]]:
        mine = self.epoch_batches(self.epoch)[self.rank :: self.world_size]
        yield from mine[self.start :]

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.start


def collate(items: list[dict]) -> dict:
    """Stack contract-1 items: pixels (B, C, F, H, W), captions list[str]; other keys as lists."""
    shapes = {tuple(it["pixels"].shape) for it in items}
    if len(shapes) != 1:
        raise ValueError(f"a batch mixes item sizes {sorted(shapes)}: the dataset needs bucket_of(index)")
    out = {
        "pixels": torch.stack([it["pixels"] for it in items]),
        "caption": [str(it["caption"]) for it in items],
    }
    for key in items[0]:
        if key not in out:
            out[key] = [it.get(key) for it in items]
    return out


class IndexedDataset(Dataset):
    """Adds the item's index ("index") to each item, so a batch can be matched to cache entries."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return {**self.dataset[index], "index": index}

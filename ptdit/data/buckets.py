"""Aspect-ratio buckets (PixArt-style) and a batch sampler that draws every batch from one bucket.

A bucket is a pixel size (H, W) with about the area of base_size^2, both sides multiples of `multiple` so
that the model can take it: multiple = autoencoder factor * patch size * window (e.g. 8 * 2 * 8 = 128 for
the 1024 model), see `size_multiple`. An image goes to the bucket nearest its aspect ratio and is resized
to it with a centre crop.

`BucketBatchSampler` yields index batches of one bucket each. For DDP it forms global batches of
batch_size * world_size indices from one bucket and gives each rank its slice, so all ranks run the same
number of steps on same-sized inputs. Its order depends only on (seed, epoch), and `set_epoch(epoch,
start_batch=k)` skips the first k batches exactly, for resuming inside an epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import Sampler

Size = tuple[int, int]  # (H, W) in pixels


def size_multiple(spatial_factor: int, patch_size: int, window: Sequence[int] = (1, 1, 1)) -> Size:
    """(multiple of H, multiple of W) a PT-DiT accepts without padding: autoencoder factor * patch * window."""
    return spatial_factor * patch_size * int(window[1]), spatial_factor * patch_size * int(window[2])


def _multiple_pair(multiple: int | Sequence[int]) -> Size:
    pair = (multiple, multiple) if isinstance(multiple, int) else tuple(int(m) for m in multiple)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"multiple must be a positive int or an (H, W) pair of them, got {multiple!r}")
    return pair


class BucketSet:
    """An ordered list of (H, W) pixel sizes, with `nearest_bucket(h, w)` by aspect ratio."""

    def __init__(self, sizes: Sequence[Sequence[int]]) -> None:
        sizes = [tuple(int(v) for v in s) for s in sizes]
        if not sizes or any(len(s) != 2 or min(s) < 1 for s in sizes):
            raise ValueError(
                f"buckets must be a non-empty list of positive (height, width) pairs, got {sizes}"
            )
        self.sizes: tuple[Size, ...] = tuple(dict.fromkeys(sizes))  # deduplicated, order kept

    @classmethod
    def pixart(cls, base_size: int, multiple: int | Sequence[int] = 64, max_aspect: float = 4.0) -> BucketSet:
        """Sizes of about base_size^2 pixels with aspect ratios up to `max_aspect`, sides multiples of `multiple`.

        As PixArt's tables: the long side runs over multiples of `multiple` from base_size up to
        base_size * sqrt(max_aspect), the short side is base_size^2 / long side rounded to its multiple.
        """
        mh, mw = _multiple_pair(multiple)
        if base_size < max(mh, mw):
            raise ValueError(f"base_size {base_size} is smaller than the size multiple {(mh, mw)}")
        if max_aspect < 1:
            raise ValueError(f"max_aspect must be >= 1, got {max_aspect}")
        area = base_size * base_size
        sizes: list[Size] = []
        for long_multiple, short_multiple, portrait in ((mh, mw, True), (mw, mh, False)):
            longest = base_size * math.sqrt(max_aspect)
            side = math.ceil(base_size / long_multiple) * long_multiple
            while side <= longest + 1e-9:
                short = max(short_multiple, round(area / side / short_multiple) * short_multiple)
                if side / short <= max_aspect + 1e-9:
                    sizes.append((side, short) if portrait else (short, side))
                side += long_multiple
        sizes.sort(key=lambda s: s[0] / s[1])
        return cls(sizes)

    @classmethod
    def square(cls, size: int) -> BucketSet:
        return cls([(size, size)])

    def nearest_bucket(self, height: int, width: int) -> Size:
        """The size whose aspect ratio is nearest (in log scale) to height/width; ties go to the nearer area."""
        if height < 1 or width < 1:
            raise ValueError(f"an image size must be positive, got {(height, width)}")
        target = math.log(height / width)
        return min(
            self.sizes,
            key=lambda s: (round(abs(math.log(s[0] / s[1]) - target), 9), abs(s[0] * s[1] - height * width)),
        )

    def __len__(self) -> int:
        return len(self.sizes)

    def __iter__(self) -> Iterator[Size]:
        return iter(self.sizes)

    def __repr__(self) -> str:
        return f"BucketSet({list(self.sizes)})"


def as_bucket_set(buckets: BucketSet | Sequence[Sequence[int]] | Mapping[str, Any]) -> BucketSet:
    """A BucketSet from a BucketSet, a list of (H, W) pairs, or the keyword arguments of `BucketSet.pixart`
    (e.g. {"base_size": 256, "multiple": 32}, as a YAML config would give them)."""
    if isinstance(buckets, BucketSet):
        return buckets
    if isinstance(buckets, Mapping):
        unknown = sorted(set(buckets) - {"base_size", "multiple", "max_aspect"})
        if unknown or "base_size" not in buckets:
            raise ValueError(
                f"bucket options must be base_size (required), multiple and max_aspect; got {dict(buckets)}"
            )
        return BucketSet.pixart(**buckets)
    return BucketSet(buckets)


def nearest_bucket(height: int, width: int, buckets: BucketSet | Sequence[Sequence[int]]) -> Size:
    """The bucket (H, W) of `buckets` whose aspect ratio is nearest to height/width."""
    return as_bucket_set(buckets).nearest_bucket(height, width)


class BucketBatchSampler(Sampler[list[int]]):
    """Index batches of one bucket each, shuffled per (seed, epoch), sharded over ranks, resumable.

    dataset: anything with `__len__` and `bucket_of(index)` (items without `bucket_of` form one bucket).
    Each epoch the indices of every bucket are shuffled and cut into global batches of
    batch_size * world_size; the global batches of all buckets are shuffled together; rank r takes the
    r-th slice of batch_size indices of each. drop_last=True drops each bucket's incomplete global batch
    (so every batch has batch_size items); drop_last=False keeps it, padded with the bucket's first
    indices up to a multiple of world_size, so every rank still gets the same number of batches (with one
    rank, every index then appears exactly once per epoch).
    """

    def __init__(
        self,
        dataset,
        batch_size: int,
        seed: int = 0,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.batch_size, self.seed, self.drop_last = batch_size, seed, drop_last
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start_batch = 0, 0
        bucket_of = getattr(dataset, "bucket_of", None)
        groups: dict = {}
        for i in range(len(dataset)):
            groups.setdefault(bucket_of(i) if bucket_of is not None else None, []).append(i)
        self.groups: list[list[int]] = list(groups.values())
        self.bucket_keys = list(groups)
        if not self.groups:
            raise ValueError("the dataset is empty; a BucketBatchSampler needs at least one item")
        if self.batches_per_epoch() == 0:
            biggest = max(len(g) for g in self.groups)
            raise ValueError(
                f"no bucket holds batch_size * world_size = {batch_size * world_size} items "
                f"(the largest holds {biggest}); lower the batch size or pass drop_last=False"
            )

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Use the order of `epoch`, starting after its first `start_batch` batches (for exact resume)."""
        if not 0 <= start_batch <= self.batches_per_epoch():
            raise ValueError(f"start_batch must be in [0, {self.batches_per_epoch()}], got {start_batch}")
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def batches_per_epoch(self) -> int:
        """Batches each rank gets in a whole epoch (the same on every rank)."""
        g = self.batch_size * self.world_size
        return sum(len(group) // g if self.drop_last else -(-len(group) // g) for group in self.groups)

    def __len__(self) -> int:
        """Batches the next iteration yields: the epoch's batches after `start_batch`."""
        return self.batches_per_epoch() - self.start_batch

    def _global_batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        g = self.batch_size * self.world_size
        batches = []
        for group in self.groups:
            order = [group[i] for i in torch.randperm(len(group), generator=generator).tolist()]
            for start in range(0, len(order), g):
                chunk = order[start : start + g]
                if len(chunk) < g:
                    if self.drop_last:
                        continue
                    padded = -(-len(chunk) // self.world_size) * self.world_size
                    chunk = chunk + [order[k % len(order)] for k in range(padded - len(chunk))]
                batches.append(chunk)
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]

    def __iter__(self) -> Iterator[list[int]]:
        for chunk in self._global_batches()[self.start_batch :]:
            per_rank = len(chunk) // self.world_size
            yield chunk[self.rank * per_rank : (self.rank + 1) * per_rank]

"""Tiny in-memory objects for the trainer tests (importable by subprocesses: tests/ is put on PYTHONPATH)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

COLORS = ("red", "green", "blue", "white")


class TinyDataset(Dataset):
    """Contract-1 items: a coloured square on black, pixels (C, F, H, W) in [-1, 1], caption naming the colour.

    `sizes` (list of [F, H, W]) gives items of several sizes with `bucket_of`; a pure function of (seed, index).
    """

    def __init__(
        self,
        n: int = 32,
        size: int = 8,
        frames: int = 1,
        channels: int = 3,
        seed: int = 0,
        sizes: list | None = None,
    ) -> None:
        self.n, self.channels, self.seed = n, channels, seed
        self.sizes = [tuple(s) for s in sizes] if sizes else [(frames, size, size)]

    def __len__(self) -> int:
        return self.n

    def bucket_of(self, index: int) -> tuple[int, int, int]:
        return self.sizes[index % len(self.sizes)]

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.n:
            raise IndexError(index)
        g = torch.Generator().manual_seed(self.seed * 7919 + index)
        F, H, W = self.bucket_of(index)
        color = index % len(COLORS)
        x = -torch.ones(self.channels, F, H, W)
        y0, x0 = (int(v) for v in torch.randint(0, max(1, H // 2), (2,), generator=g))
        value = torch.tensor(
            [[1, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, 1]][color][: self.channels] + [1] * 3
        )
        x[:, :, y0 : y0 + H // 2, x0 : x0 + W // 2] = value[: self.channels].view(-1, 1, 1, 1).float()
        x = x + 0.05 * torch.randn(x.shape, generator=g)
        return {"pixels": x.clamp(-1, 1), "caption": f"a {COLORS[color]} square"}


def make_dataset(**kwargs) -> TinyDataset:
    return TinyDataset(**kwargs)


class RecordingEncoder:
    """A contract-2 encoder (dim 16) that records the prompts it was given."""

    def __init__(self, dim: int = 16, length: int = 4, device: torch.device | str = "cpu") -> None:
        self.dim, self.length, self.calls = dim, length, []

    def __call__(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        self.calls.append(list(prompts))
        emb = torch.zeros(len(prompts), self.length, self.dim)
        mask = torch.zeros(len(prompts), self.length, dtype=torch.bool)
        for i, p in enumerate(prompts):
            words = p.split()[: self.length] or [""]
            for j, w in enumerate(words):
                g = torch.Generator().manual_seed(sum(map(ord, w)) * 31 + len(w))
                emb[i, j] = torch.randn(self.dim, generator=g)
                mask[i, j] = True
        return emb, mask


class NaNAfter(torch.nn.Module):
    """An identity autoencoder whose encode returns NaN from call `after` + 1 on."""

    latent_channels, spatial_factor, temporal_factor = 3, 1, 1

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after, self.calls = after, 0

    def encode(self, pixels: Tensor) -> Tensor:
        self.calls += 1
        return (
            pixels * float("nan") if self.calls > self.after + 1 else pixels
        )  # call 1 is the trainer's probe

    def decode(self, latents: Tensor) -> Tensor:
        return latents

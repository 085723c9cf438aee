"""Build the dataset, text encoder and autoencoder of a training config (imports are lazy).

Besides the built-in specs, each accepts a Python factory "package.module:function" (data.factory, or the spec
prefix "py:" for text.encoder and autoencoder.spec), so a run can train on any contract-1 Dataset.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from .config import AutoencoderSection, DataSection, TextSection


def import_factory(target: str, what: str) -> Any:
    """ "package.module:function" -> the function (ValueError naming the problem otherwise)."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{what}={target!r} must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"{what}={target!r}: cannot import {module_name} ({e})") from None
    if not hasattr(module, attr):
        raise ValueError(f"{what}={target!r}: {module_name} has no attribute {attr!r}")
    return getattr(module, attr)


def build_dataset(data: DataSection) -> Dataset:
    """A contract-1 dataset from the data section (a world, a caption folder or a factory)."""
    height, width = data.size, data.width or data.size
    opts = dict(data.options)
    if not (data.factory or data.world or data.folder):
        raise ValueError("the data section names no data: set data.world, data.folder or data.factory")
    if data.factory:
        dataset = import_factory(data.factory, "data.factory")(**opts)
    elif data.world:
        dataset = _world(data, opts)
    else:
        from pathlib import Path

        root = Path(data.folder)
        if not root.is_dir():
            raise FileNotFoundError(f"data.folder={data.folder} is not a readable directory")
        size = opts.pop("size", [height, width])
        if data.kind == "image":
            from ..data.images import ImageFolderDataset

            if opts.get("buckets") == "pixart":  # PixArt's aspect-ratio buckets around data.size
                from ..data.buckets import BucketSet

                opts["buckets"] = BucketSet.pixart(height, multiple=int(opts.pop("bucket_multiple", 64)))
            dataset = ImageFolderDataset(root, size=None if "buckets" in opts else size, **opts)
        elif data.kind == "video":
            from ..data.videos import VideoFolderDataset

            dataset = VideoFolderDataset(root, num_frames=data.frames, size=size, seed=data.seed, **opts)
        else:
            from ..data.multiview import MultiViewFolderDataset

            dataset = MultiViewFolderDataset(root, num_views=data.frames, size=size, **opts)
    if len(dataset) == 0:
        source = data.factory or data.world or data.folder
        raise ValueError(f"the dataset from {source} is empty: no item with a caption was found")
    return dataset


def _world(data: DataSection, opts: dict) -> Dataset:
    kw = dict(seed=data.seed, **opts)
    if data.num_items > 0:
        kw["length"] = data.num_items
    if data.world == "shapes-image":
        from ..worlds.shapes_image import ShapesImageDataset

        return ShapesImageDataset(size=data.size, **kw)
    if data.world == "shapes-video":
        from ..worlds.shapes_video import ShapesVideoDataset

        return ShapesVideoDataset(size=data.size, frames=data.frames, **kw)
    if data.world == "shapes-multiview":
        from ..worlds.shapes_multiview import ShapesMultiviewDataset

        return ShapesMultiviewDataset(size=data.size, **kw)  # its 8 views (an orbit) are the frames
    from ..worlds.fashion_mnist import FashionMNIST

    limit = data.num_items if data.num_items > 0 else None
    return FashionMNIST(size=data.size, limit=limit, seed=data.seed, **opts)


def build_text_encoder(text: TextSection, device: torch.device) -> Any:
    """A contract-2 encoder: prompts -> (emb (B, L, dim), mask (B, L)); has `.dim`."""
    if text.encoder.startswith("py:"):
        return import_factory(text.encoder[3:], "text.encoder")(device=device)
    from ..text import load_text_encoder

    encoder = load_text_encoder(text.encoder, device=device, max_length=text.max_length or None)
    if text.cache_dir:
        from ..text import EmbeddingCache

        encoder = _CachedEncoder(EmbeddingCache(encoder, text.cache_dir), encoder.dim)
    if text.memory_cache:
        from ..text import MemoryCachedEncoder

        encoder = MemoryCachedEncoder(encoder, encoder.dim)
    return encoder


class _CachedEncoder:
    """An EmbeddingCache with the encoder's `dim`, so the trainer sees a contract-2 encoder."""

    def __init__(self, cache: Any, dim: int) -> None:
        self.cache, self.dim = cache, dim

    def __call__(self, prompts: list[str]):
        return self.cache(prompts)


def build_autoencoder(
    section: AutoencoderSection, device: torch.device, pixel_channels: int = 3
) -> nn.Module:
    """The latent space; plain "identity" takes the data's channel count (e.g. 1 for Fashion-MNIST)."""
    if section.spec.startswith("py:"):
        return import_factory(section.spec[3:], "autoencoder.spec")()
    from ..autoencoders import load_autoencoder

    spec = f"identity:{pixel_channels}" if section.spec == "identity" else section.spec
    return load_autoencoder(spec, device=device)

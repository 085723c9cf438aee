"""LatentCache: encoded latents on disk, one safetensors file per item, written atomically.

The key of an item hashes what determines its latents: the source file(s) (path, size, modification time),
the bucket, any sampling choice (all in the folder datasets' `sample_key(index)` or their items' "key"),
and the autoencoder id. A changed file, bucket or autoencoder therefore misses the cache instead of
returning stale latents. A cache file that cannot be read is treated as a miss and rewritten.

    cache = LatentCache("cache/latents", autoencoder_id="sd-vae:/models/vae")
    item = dataset[i]
    x0 = cache.get_or_compute(cache.key(item["key"]), lambda: ae.encode(item["pixels"][None])[0])
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from torch import Tensor

from ..io import read_safetensors, save_safetensors_atomic

logger = logging.getLogger(__name__)

Latents = Tensor | dict[str, Tensor]
_SINGLE = "latents"  # the tensor name under which a single-tensor entry is stored


def file_identity(
    paths: str | Path | Sequence[str | Path], bucket: Sequence[int] = (), extra: str = ""
) -> str:
    """A string naming `paths` as they are now (resolved path, size, mtime in ns), plus bucket and `extra`."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    parts = []
    for path in paths:
        path = Path(path).resolve()
        try:
            st = path.stat()
            parts.append(f"{path}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{path}:missing")
    return "|".join([*parts, "x".join(map(str, bucket)), extra])


class LatentCache:
    """Latents keyed by item and autoencoder, stored as directory/ab/abcdef....safetensors."""

    def __init__(self, directory: str | Path, autoencoder_id: str) -> None:
        if not autoencoder_id:
            raise ValueError(
                "autoencoder_id must name the autoencoder (e.g. its spec), so that latents of "
                "different autoencoders never mix"
            )
        self.directory = Path(directory).expanduser()
        self.autoencoder_id = autoencoder_id
        self.hits = self.misses = 0

    def key(self, *parts: str) -> str:
        """sha256 hex of the autoencoder id and `parts` (e.g. a dataset item's "key" or a `file_identity`)."""
        digest = hashlib.sha256(self.autoencoder_id.encode())
        for part in parts:
            digest.update(b"\0" + str(part).encode())
        return digest.hexdigest()

    def key_for_file(self, path: str | Path, bucket: Sequence[int] = (), extra: str = "") -> str:
        """The key of a file as it is now: hash of its path, mtime, size, the bucket, `extra` and the autoencoder."""
        return self.key(file_identity(path, bucket, extra))

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.safetensors"

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    def get(self, key: str) -> Latents | None:
        """The stored latents (a tensor, or the dict that was stored), or None if absent or unreadable."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            tensors = read_safetensors(path)
        except ValueError as e:
            logger.warning("latent cache: ignoring unreadable %s (%s); it will be recomputed", path, e)
            return None
        return tensors[_SINGLE] if set(tensors) == {_SINGLE} else tensors

    def put(self, key: str, latents: Latents) -> None:
        """Store a tensor or a {name: tensor} dict under `key` (atomically: a crash leaves no partial file)."""
        tensors = dict(latents) if isinstance(latents, Mapping) else {_SINGLE: latents}
        save_safetensors_atomic(
            tensors, self.path(key), metadata={"autoencoder_id": self.autoencoder_id}, durable=False
        )

    def get_or_compute(self, key: str, fn: Callable[[], Latents]) -> Latents:
        """The cached latents for `key` (loaded on the CPU), or `fn()` stored under `key` and returned as is."""
        cached = self.get(key)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        latents = fn()
        self.put(key, latents)
        return latents

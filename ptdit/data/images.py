"""ImageFolderDataset: captioned images from a folder, at one size or in aspect-ratio buckets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from torch import Tensor

from .buckets import BucketSet, as_bucket_set
from .folders import (
    FIT_MODES,
    IMAGE_EXTENSIONS,
    FolderDataset,
    Sample,
    check_choice,
    list_files,
    load_image,
    parse_size,
    relative_name,
)


class ImageFolderDataset(FolderDataset):
    """Images (*.png, *.jpg, *.jpeg, *.webp, searched recursively) with captions; items (C, 1, H, W) in [-1, 1].

    Pass either `size` (every image resized to (H, W)) or `buckets` (a BucketSet, a list of (H, W), or
    {"base_size": ..., "multiple": ..., "max_aspect": ...} for `BucketSet.pixart`); each image goes to the
    bucket nearest its aspect ratio, read from the file header at construction.
    fit="crop" scales to cover and crops the centre, fit="stretch" ignores the aspect ratio.
    Captions: metadata.jsonl (`file_name`, `text`) or `name.txt` beside the image; an image without one is
    skipped and counted (missing_caption="skip"), given "" ("empty"), or reported ("error").
    C = 3 (RGB), or 1 with grayscale=True.
    """

    kind = "images"
    patterns = "*" + ", *".join(IMAGE_EXTENSIONS)

    def __init__(
        self,
        root: str | Path,
        size: int | Sequence[int] | None = None,
        buckets: BucketSet | Sequence[Sequence[int]] | Mapping[str, Any] | None = None,
        fit: str = "crop",
        grayscale: bool = False,
        missing_caption: str = "skip",
        caption_column: str = "text",
        recursive: bool = True,
    ) -> None:
        super().__init__(root, missing_caption, caption_column)
        check_choice("fit", fit, FIT_MODES)
        if (size is None) == (buckets is None):
            raise ValueError(
                "pass exactly one of size= (one (H, W) for all images) or buckets= "
                "(aspect-ratio buckets, e.g. BucketSet.pixart(256, multiple=32))"
            )
        self.fit, self.grayscale = fit, grayscale
        self.bucket_set = None if buckets is None else as_bucket_set(buckets)
        fixed = None if size is None else parse_size(size)
        for path in list_files(self.root, IMAGE_EXTENSIONS, recursive):
            name = relative_name(path, self.root)
            if path.stat().st_size == 0:
                self._reject(path, "empty file")
                continue
            caption = self._caption_or_skip(path)
            if caption is None:
                continue
            if fixed is not None:
                h, w = fixed
            else:
                try:
                    with Image.open(path) as image:  # reads the header only
                        w0, h0 = image.size
                except Exception as e:  # noqa: BLE001 - an unreadable header leaves the file out
                    self._skip(name, f"unreadable image header ({type(e).__name__}: {e})")
                    continue
                h, w = self.bucket_set.nearest_bucket(h0, w0)
            self.samples.append(Sample(name, (path,), caption, (1, h, w)))
        self._finish_scan()

    def _extra_key(self, index: int) -> str:
        return f"image:fit={self.fit}:gray={self.grayscale}"

    def _load(self, sample: Sample, index: int) -> Tensor:
        _, h, w = sample.bucket
        return load_image(sample.files[0], h, w, self.grayscale, self.fit).unsqueeze(1)  # (C, 1, H, W)

"""MultiViewFolderDataset: one folder per object holding its views in orbit order, as a V-frame item."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from .folders import (
    FIT_MODES,
    IMAGE_EXTENSIONS,
    FolderDataset,
    Sample,
    check_choice,
    list_files,
    load_image,
    natural_key,
    parse_size,
)

VIEW_SELECTIONS = ("even", "first")


class MultiViewFolderDataset(FolderDataset):
    """Objects as sub-folders of `root`, each holding view images (*.png, *.jpg, *.jpeg, *.webp) in orbit
    order by natural file-name order (view_2 before view_10); items (C, V, H, W) in [-1, 1], the V views as
    frames.

    Caption: `caption.txt` in the object's folder, or a line of root/metadata.jsonl whose `file_name` is the
    folder name. An object with more than `num_views` views gives `num_views` of them evenly spaced around
    the orbit (view_selection="even") or its first ones ("first"); one with fewer is left out and counted.
    """

    kind = "object folders"
    patterns = "sub-folders of view images " + ", ".join("*" + e for e in IMAGE_EXTENSIONS)

    def __init__(
        self,
        root: str | Path,
        num_views: int,
        size: int | Sequence[int] = 256,
        view_selection: str = "even",
        fit: str = "crop",
        grayscale: bool = False,
        missing_caption: str = "skip",
        caption_column: str = "text",
    ) -> None:
        super().__init__(root, missing_caption, caption_column)
        if num_views < 1:
            raise ValueError(f"num_views must be >= 1, got {num_views}")
        check_choice("view_selection", view_selection, VIEW_SELECTIONS)
        check_choice("fit", fit, FIT_MODES)
        self.num_views, self.view_selection, self.fit, self.grayscale = (
            num_views,
            view_selection,
            fit,
            grayscale,
        )
        self.size = parse_size(size)
        folders = sorted(
            (p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: natural_key(p.name),
        )
        for folder in folders:
            views = list_files(folder, IMAGE_EXTENSIONS, recursive=False)
            if len(views) < num_views:
                self._reject(folder, f"{len(views)} view image(s), fewer than num_views={num_views}")
                continue
            if any(v.stat().st_size == 0 for v in views):
                self._reject(folder, "holds an empty view file")
                continue
            caption = self._caption_or_skip(folder)
            if caption is not None:
                chosen = tuple(views[i] for i in self._select(len(views)))
                self.samples.append(Sample(folder.name, chosen, caption, (num_views, *self.size)))
        self._finish_scan()

    def _select(self, count: int) -> list[int]:
        """Indices of the views used out of `count` in orbit order."""
        if self.view_selection == "first":
            return list(range(self.num_views))
        return [k * count // self.num_views for k in range(self.num_views)]

    def _extra_key(self, index: int) -> str:
        return f"multiview:fit={self.fit}:gray={self.grayscale}"

    def _load(self, sample: Sample, index: int) -> Tensor:
        h, w = self.size
        return torch.stack([load_image(p, h, w, self.grayscale, self.fit) for p in sample.files], dim=1)

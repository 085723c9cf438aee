"""VideoFolderDataset: captioned clips (mp4, webm via imageio-ffmpeg; gif via Pillow) sampled to F frames."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..extras import require
from .folders import (
    FIT_MODES,
    FolderDataset,
    Sample,
    check_choice,
    fit_image,
    list_files,
    logger,
    parse_size,
    pil_to_pixels,
    to_mode,
)

VIDEO_EXTENSIONS = (".mp4", ".webm", ".gif")
SHORT_POLICIES = ("loop", "skip")
SAMPLINGS = ("random", "center", "first")


class VideoTooShort(ValueError):
    """A clip has fewer frames than (num_frames - 1) * frame_stride + 1 and short="skip"."""


# ---------------------------------------------------------------------------------------------- readers
class _VideoReader:
    """One forward pass over a video's frames as (H, W, 3) uint8 arrays; `frame_count` and `exact` say how
    many frames to expect (gif: exact; ffmpeg: duration * fps from the header, an estimate, or None)."""

    def __init__(self, path: Path) -> None:
        self.path, self._gif, self._stream = path, None, None
        if path.suffix.lower() == ".gif":
            self._gif = Image.open(path)
            self.frame_count, self.exact = int(getattr(self._gif, "n_frames", 1)), True
        else:
            imageio_ffmpeg = require("imageio_ffmpeg", "video", f"reading {path.suffix} clips")

            self._stream = imageio_ffmpeg.read_frames(str(path))
            meta = next(self._stream)
            self._width, self._height = meta["size"]
            duration, fps = meta.get("duration"), meta.get("fps")
            ok = all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in (duration, fps))
            self.frame_count, self.exact = (round(duration * fps) if ok else None), False

    def frames(self) -> Iterator[np.ndarray]:
        if self._gif is not None:
            for k in range(self.frame_count):
                self._gif.seek(k)
                yield np.asarray(self._gif.convert("RGB"))
        else:
            for raw in self._stream:
                yield np.frombuffer(raw, dtype=np.uint8).reshape(self._height, self._width, 3)

    def close(self) -> None:
        if self._gif is not None:
            self._gif.close()
        if self._stream is not None:
            self._stream.close()  # stops the ffmpeg process

    def __enter__(self) -> _VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------- dataset
class VideoFolderDataset(FolderDataset):
    """Clips (*.mp4, *.webm, *.gif, searched recursively) with captions; items (C, F, H, W) in [-1, 1].

    Each item takes `num_frames` frames `frame_stride` apart, i.e. a window of
    span = (num_frames - 1) * frame_stride + 1 source frames. Its start is drawn from (seed, epoch, index)
    with sampling="random" (call `set_epoch` each epoch for new windows), or is the middle ("center") or the
    first frame ("first"). A clip shorter than the span is looped (short="loop": frame k is source frame
    (k * frame_stride) mod length; recorded in `dataset.looped`) or skipped like an unreadable file
    (short="skip"). Frames are resized to `size` as in ImageFolderDataset (fit="crop" or "stretch").
    """

    kind = "videos"
    patterns = "*" + ", *".join(VIDEO_EXTENSIONS)

    def __init__(
        self,
        root: str | Path,
        num_frames: int,
        frame_stride: int = 1,
        size: int | Sequence[int] = 256,
        seed: int = 0,
        sampling: str = "random",
        short: str = "loop",
        fit: str = "crop",
        grayscale: bool = False,
        missing_caption: str = "skip",
        caption_column: str = "text",
        recursive: bool = True,
    ) -> None:
        super().__init__(root, missing_caption, caption_column)
        if num_frames < 1 or frame_stride < 1:
            raise ValueError(f"num_frames and frame_stride must be >= 1, got {num_frames} and {frame_stride}")
        check_choice("sampling", sampling, SAMPLINGS)
        check_choice("short", short, SHORT_POLICIES)
        check_choice("fit", fit, FIT_MODES)
        self.num_frames, self.frame_stride, self.seed, self.epoch = num_frames, frame_stride, seed, 0
        self.sampling, self.short, self.fit, self.grayscale = sampling, short, fit, grayscale
        self.size = parse_size(size)
        self.looped: dict[str, int] = {}  # clips shorter than the span -> their frame count
        bucket = (num_frames, *self.size)
        for path in list_files(self.root, VIDEO_EXTENSIONS, recursive):
            if path.stat().st_size == 0:
                self._reject(path, "empty file")
                continue
            caption = self._caption_or_skip(path)
            if caption is not None:
                self.samples.append(Sample(path.relative_to(self.root).as_posix(), (path,), caption, bucket))
        self._finish_scan()

    @property
    def span(self) -> int:
        """Source frames one item covers: (num_frames - 1) * frame_stride + 1."""
        return (self.num_frames - 1) * self.frame_stride + 1

    def set_epoch(self, epoch: int) -> None:
        """With sampling="random", draw new clip windows for this epoch."""
        self.epoch = int(epoch)

    def _extra_key(self, index: int) -> str:
        key = f"video:stride={self.frame_stride}:{self.sampling}:{self.short}:fit={self.fit}:gray={self.grayscale}"
        return key + (
            f":seed={self.seed}:epoch={self.epoch}:index={index}" if self.sampling == "random" else ""
        )

    def _positions(self, count: int, index: int) -> list[int]:
        """Source frame numbers of the item's frames, for a clip of `count` frames."""
        span, stride = self.span, self.frame_stride
        if count < span:
            return [(k * stride) % count for k in range(self.num_frames)]
        if self.sampling == "random":
            start = int(np.random.default_rng([self.seed, self.epoch, index]).integers(0, count - span + 1))
        else:
            start = (count - span) // 2 if self.sampling == "center" else 0
        return [start + k * stride for k in range(self.num_frames)]

    def _collect(self, reader: _VideoReader, positions: list[int]) -> tuple[dict[int, Tensor], int]:
        """Decode and fit the frames at `positions`: ({position: (C, H, W)}, frames read)."""
        h, w = self.size
        wanted, got, seen = set(positions), {}, 0
        for k, frame in enumerate(reader.frames()):
            seen = k + 1
            if k in wanted:
                got[k] = pil_to_pixels(
                    fit_image(to_mode(Image.fromarray(frame), self.grayscale), h, w, self.fit)
                )
                if len(got) == len(wanted):
                    break
        return got, seen

    def _check_length(self, count: int) -> None:
        if count < 1:
            raise ValueError("no frame could be decoded")
        if count < self.span and self.short == "skip":
            raise VideoTooShort(f"{count} frames, fewer than the {self.span} needed (short='skip')")

    def _load(self, sample: Sample, index: int) -> Tensor:
        path, short_count = sample.files[0], None
        with _VideoReader(path) as reader:
            count, exact = reader.frame_count, reader.exact
            if exact:
                self._check_length(count)
                short_count = count if count < self.span else None
            trusted = count is not None and (exact or count >= self.span)
            positions = self._positions(count if trusted else self.span, index)
            got, seen = self._collect(reader, positions)
        if not all(p in got for p in positions):
            # the header's frame count was wrong or the clip is short: `seen` is now its true length
            self._check_length(seen)
            short_count = seen if seen < self.span else None
            positions = self._positions(seen, index)
            with _VideoReader(path) as reader:
                got, seen = self._collect(reader, positions)
            if not all(p in got for p in positions):
                raise ValueError(f"decoding stopped after {seen} frames on a second pass")
        if short_count is not None and sample.name not in self.looped:
            self.looped[sample.name] = short_count
            logger.info(
                "%s: looping %s (%d frames < span %d)", self.root, sample.name, short_count, self.span
            )
        return torch.stack([got[p] for p in positions], dim=1)  # (C, F, H, W)

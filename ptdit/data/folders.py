"""What the folder datasets share: caption pairing, scanning, resize/crop, and skip-don't-crash item loading.

A caption belongs to a media file in one of two ways (the first that applies wins):
  1. a `metadata.jsonl` in the dataset root, one JSON object a line with `file_name` (relative to the root,
     as in diffusers' ImageFolder) and `text`;
  2. a side-car `name.txt` beside `name.ext`.

Bad data never crashes a run. Cheap checks (the file exists, is not empty, has a known extension and a
caption) happen once at construction; files failing them are left out and recorded. Files that fail to
decode later, in `__getitem__`, are replaced by the next readable item of the same bucket (a deterministic
choice, so the batch keeps one size) and recorded too. `dataset.skip_reasons` maps each left-out file to
why, `dataset.skipped` counts them. Each DataLoader worker holds its own copy of these records (the
warnings are logged from the worker that met the file).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor
from torch.utils.data import Dataset

from .cache import file_identity

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
METADATA_FILE = "metadata.jsonl"
MISSING_CAPTION_POLICIES = ("skip", "empty", "error")
FIT_MODES = ("crop", "stretch")
MAX_LOGGED_SKIPS = 10  # distinct skipped files logged one by one; later ones are only recorded

Bucket = tuple[int, int, int]  # (F, H, W) in pixels


# ---------------------------------------------------------------------------------------------- helpers
def natural_key(name: str) -> list:
    """Sort key under which "view_2" < "view_10": digit runs compare as numbers, the rest case-insensitively."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def parse_size(size: int | Sequence[int], name: str = "size") -> tuple[int, int]:
    """An int S -> (S, S); a pair (H, W) -> (H, W); anything else -> ValueError."""
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a (height, width) pair, got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"{name} must be positive, got {(h, w)}")
    return h, w


def check_root(root: str | Path, what: str) -> Path:
    """The dataset folder as a Path; FileNotFoundError naming it (and `what` it should hold) if it is missing."""
    root = Path(root).expanduser()
    if not root.is_dir():
        state = "is not a folder" if root.exists() else "does not exist"
        raise FileNotFoundError(f"dataset folder {root} {state}; expected a folder holding {what}")
    return root


def read_metadata(root: Path, caption_column: str = "text") -> dict[str, str]:
    """`root/metadata.jsonl` as {file_name (normalised, relative to root): caption}; {} if there is none."""
    path = root / METADATA_FILE
    if not path.is_file():
        return {}
    captions: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(
                f"{path} line {number} is not valid JSON ({e}); each line must be an object "
                f'like {{"file_name": "a.png", "{caption_column}": "a caption"}}'
            ) from None
        if not isinstance(row, dict) or "file_name" not in row or caption_column not in row:
            raise ValueError(
                f"{path} line {number} needs the keys 'file_name' and '{caption_column}', "
                f"got {line.strip()[:120]!r}"
            )
        captions[_normalise(str(row["file_name"]))] = str(row[caption_column]).strip()
    return captions


def _normalise(relative: str) -> str:
    parts = [p for p in relative.replace("\\", "/").split("/") if p not in ("", ".")]
    return "/".join(parts)


def relative_name(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def sidecar_caption(path: Path) -> str | None:
    """The text of `name.txt` beside `path` (a file, or a folder's `caption.txt`), or None if there is none."""
    txt = path / "caption.txt" if path.is_dir() else path.with_suffix(".txt")
    if not txt.is_file():
        return None
    return txt.read_text(encoding="utf-8", errors="replace").strip()


def list_files(root: Path, extensions: Sequence[str], recursive: bool = True) -> list[Path]:
    """Files under `root` with one of `extensions` (any case), hidden files and folders left out, natural order."""
    pattern = root.rglob("*") if recursive else root.iterdir()
    files = [
        p
        for p in pattern
        if p.suffix.lower() in extensions
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return sorted(files, key=lambda p: natural_key(relative_name(p, root)))


def fit_image(image: Image.Image, height: int, width: int, fit: str = "crop") -> Image.Image:
    """Resize `image` to exactly (height, width).

    fit="crop": scale (bicubic, antialiased) until the image covers the target, then crop the centre;
    fit="stretch": resize to the target ignoring the aspect ratio.
    """
    w0, h0 = image.size
    if fit == "stretch":
        return image.resize((width, height), Image.BICUBIC) if (w0, h0) != (width, height) else image
    scale = max(height / h0, width / w0)
    w1, h1 = max(width, math.ceil(w0 * scale - 1e-6)), max(height, math.ceil(h0 * scale - 1e-6))
    if (w1, h1) != (w0, h0):
        image = image.resize((w1, h1), Image.BICUBIC, reducing_gap=3.0)
    left, top = (w1 - width) // 2, (h1 - height) // 2
    return image.crop((left, top, left + width, top + height))


def to_mode(image: Image.Image, grayscale: bool) -> Image.Image:
    """Upright (EXIF orientation applied) RGB or L; transparent pixels are composited over white."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return image.convert("L" if grayscale else "RGB")


def pil_to_pixels(image: Image.Image) -> Tensor:
    """PIL image (RGB or L) -> FloatTensor (C, H, W) in [-1, 1]."""
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def load_image(path: Path, height: int, width: int, grayscale: bool = False, fit: str = "crop") -> Tensor:
    """Decode, orient, convert and fit one image file: FloatTensor (C, H, W) in [-1, 1]."""
    with Image.open(path) as image:
        image.load()  # decode now, so a truncated or corrupt file fails here
        return pil_to_pixels(fit_image(to_mode(image, grayscale), height, width, fit))


def check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {tuple(allowed)}")


# ---------------------------------------------------------------------------------------------- base class
@dataclass(frozen=True)
class Sample:
    """One training item as found by the scan: its file(s), caption and pixel bucket (F, H, W)."""

    name: str  # path relative to the root (a file, or an object's folder for multi-view)
    files: tuple[Path, ...]  # the media file(s), in order
    caption: str
    bucket: Bucket


class FolderDataset(Dataset):
    """Base of the folder datasets: holds the scanned samples and loads items without ever crashing.

    Subclasses scan in `__init__` (`_caption_or_skip` pairs a candidate with its caption, `_reject` records
    one failing another cheap check, `_finish_scan` ends the scan) and implement
    `_load(sample, index) -> pixels (C, F, H, W)`, raising on bad data.
    """

    kind = "media files"  # what the folder should hold, for error messages
    patterns = ""  # the file patterns it looks for, for error messages

    def __init__(self, root: str | Path, missing_caption: str = "skip", caption_column: str = "text") -> None:
        check_choice("missing_caption", missing_caption, MISSING_CAPTION_POLICIES)
        self.root = check_root(root, f"{self.kind} ({self.patterns})")
        self.missing_caption = missing_caption
        self.metadata = read_metadata(self.root, caption_column)
        self.samples: list[Sample] = []
        self.skip_reasons: dict[str, str] = {}
        self._bad: set[int] = set()
        self._found = 0
        self._candidates: set[str] = set()
        self._uncaptioned: list[str] = []

    # -------------------------------------------------------------- scanning
    def caption_for(self, path: Path) -> str | None:
        """The caption of a media file or object folder, by metadata.jsonl first, then the side-car file."""
        caption = self.metadata.get(relative_name(path, self.root))
        return caption if caption is not None else sidecar_caption(path)

    def _caption_or_skip(self, path: Path) -> str | None:
        """The caption, "" under missing_caption="empty", or None after recording the file as skipped."""
        self._found += 1
        self._candidates.add(relative_name(path, self.root))
        caption = self.caption_for(path)
        if caption is not None:
            return caption
        if self.missing_caption == "empty":
            return ""
        self._uncaptioned.append(relative_name(path, self.root))
        sidecar = "caption.txt" if path.is_dir() else path.with_suffix(".txt").name
        self._skip(relative_name(path, self.root), f"no caption (no {METADATA_FILE} entry, no {sidecar})")
        return None

    def _reject(self, path: Path, reason: str) -> None:
        """Record a candidate that fails a cheap check at scan time."""
        self._found += 1
        self._candidates.add(relative_name(path, self.root))
        self._skip(relative_name(path, self.root), reason)

    def _skip(self, name: str, reason: str) -> None:
        self.skip_reasons[name] = reason

    def _finish_scan(self) -> None:
        """Check what the scan found: raise on an empty folder or (missing_caption="error") missing captions."""
        for name in sorted(set(self.metadata) - self._candidates):
            self._skip(name, f"listed in {METADATA_FILE} but no such {self.patterns} under {self.root}")
        if self._uncaptioned and self.missing_caption == "error":
            shown = ", ".join(self._uncaptioned[:5])
            more = f" and {len(self._uncaptioned) - 5} more" if len(self._uncaptioned) > 5 else ""
            raise ValueError(
                f"{len(self._uncaptioned)} file(s) in {self.root} have no caption: {shown}{more}; "
                f"add name.txt beside each or a {METADATA_FILE} line with file_name and text, "
                "or pass missing_caption='skip' or 'empty'"
            )
        if not self.samples:
            found = (
                f"found {self._found} candidate(s), all left out: " + _summary(self.skip_reasons)
                if self._found
                else "found none"
            )
            raise ValueError(
                f"no usable {self.kind} in {self.root} ({found}); expected {self.patterns} with "
                f"captions in name.txt files or in {METADATA_FILE} (file_name, text)"
            )
        if self.skip_reasons:
            logger.warning(
                "%s: left out %d of %d candidates at scan: %s",
                self.root,
                len(self.skip_reasons),
                self._found,
                _summary(self.skip_reasons),
            )
        self._members: dict[Bucket, list[int]] = {}
        for i, sample in enumerate(self.samples):
            self._members.setdefault(sample.bucket, []).append(i)
        self._position = {i: k for members in self._members.values() for k, i in enumerate(members)}

    # -------------------------------------------------------------- items
    @property
    def skipped(self) -> int:
        """How many distinct files (or object folders) have been left out, at scan or at load time."""
        return len(self.skip_reasons)

    def __len__(self) -> int:
        return len(self.samples)

    def bucket_of(self, index: int) -> Bucket:
        """The (F, H, W) pixel size of item `index` (known without decoding it)."""
        return self.samples[index].bucket

    def buckets(self) -> dict[Bucket, int]:
        """{bucket: number of items} over the dataset."""
        return {bucket: len(members) for bucket, members in self._members.items()}

    def _load(self, sample: Sample, index: int) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def _extra_key(self, index: int) -> str:
        """Anything beyond the files and bucket that changes an item's pixels (e.g. a video's start frame)."""
        return ""

    def sample_key(self, index: int) -> str:
        """A string that changes whenever item `index`'s pixels would: its files' names, sizes and
        modification times, its bucket and any sampling choice. Feed it to `LatentCache.key`."""
        sample = self.samples[index]
        return file_identity(sample.files, sample.bucket, self._extra_key(index))

    def __getitem__(self, index: int) -> dict:
        """{"pixels": FloatTensor (C, F, H, W) in [-1, 1], "caption": str, "key": str (see `sample_key`)}.

        If item `index` cannot be decoded, the next readable item of the same bucket is returned instead.
        """
        if not 0 <= index < len(self.samples):
            raise IndexError(f"index {index} out of range for a dataset of {len(self.samples)} items")
        members = self._members[self.samples[index].bucket]
        start = self._position[index]
        failed = []  # logged once a readable item is found; if none is, the error below says it all
        for step in range(len(members)):
            i = members[(start + step) % len(members)]
            if i in self._bad:
                continue
            sample = self.samples[i]
            try:
                pixels = self._load(sample, i)
            except Exception as e:  # noqa: BLE001 - any decoding failure must skip the file, not end the run
                self._bad.add(i)
                self._skip(sample.name, f"{type(e).__name__}: {e}")
                failed.append((sample.name, len(self._bad)))
                continue
            for name, count in failed:
                self._log_skip(name, count)
            return {"pixels": pixels, "caption": sample.caption, "key": self.sample_key(i)}
        raise ValueError(
            f"every one of the {len(members)} item(s) of size {self.samples[index].bucket} in "
            f"{self.root} failed to load ({_summary(self.skip_reasons)}); replace or remove the unreadable files"
        )

    def _log_skip(self, name: str, loaded_failures: int) -> None:
        if loaded_failures <= MAX_LOGGED_SKIPS:
            logger.warning(
                "%s: skipping %s (%s); %d file(s) skipped so far",
                self.root,
                name,
                self.skip_reasons[name],
                self.skipped,
            )
        if loaded_failures == MAX_LOGGED_SKIPS:
            logger.warning(
                "%s: further unreadable files are skipped without a log line; see dataset.skip_reasons",
                self.root,
            )


def _summary(reasons: dict[str, str], shown: int = 3) -> str:
    items = [f"{name}: {why}" for name, why in list(reasons.items())[:shown]]
    more = f"; ... ({len(reasons)} in all)" if len(reasons) > shown else ""
    return "; ".join(items) + more

"""What `ptdit bench` measures: a `Case` (model name and size), model names with +flags, default windows."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import PRESETS, ratio_for_size

VAE_FACTOR = 8
TEMPORAL_FACTOR = 4  # causal video VAEs: 1 + 4k frames -> 1 + k latent frames
FLAGS = ("fuse", "split", "flex", "fast", "compile", "graph")
PEERS = ("PixArt-alpha", "PixArt-alpha-S", "PixArt-alpha-T", "DiT-XL/2", "Sana-0.6B", "CogVideoX-2B")
IMAGE_PEERS = ("PixArt-alpha", "PixArt-alpha-S", "PixArt-alpha-T", "DiT-XL/2", "Sana-0.6B")
# smoke runs (CPU tests of the GPU scripts): a 2-block PT-DiT, beside "PixArt-alpha-T" (2 blocks, D = 96)
TINY_PRESET = ("PT-DiT-T", dict(depth=2, hidden_size=64, num_heads=4))


@dataclass(frozen=True)
class Case:
    """One model at one size. frames are pixel frames (1 for images); latent frames = 1 + (frames - 1) // 4."""

    model: str
    height: int
    width: int
    frames: int = 1

    @property
    def latent_frames(self) -> int:
        return 1 + (self.frames - 1) // TEMPORAL_FACTOR

    @property
    def label(self) -> str:
        size = f"{self.height}x{self.width}"
        return size if self.frames == 1 else f"{self.frames}x{size}"


def parse_model(name: str) -> tuple[str, set[str]]:
    """'PT-DiT-L+fuse+split' -> ('PT-DiT-L', {'fuse', 'split'}); unknown names or flags raise ValueError."""
    base, *flags = name.split("+")
    unknown = sorted(set(flags) - set(FLAGS))
    if unknown:
        raise ValueError(
            f"unknown flag(s) {unknown} in model {name!r}; flags: {', '.join('+' + f for f in FLAGS)}"
        )
    flags_set = set(flags)
    if "fast" in flags_set:  # fused QKV + the shifted-window path that is faster on the device (see build)
        flags_set |= {"fuse", "auto-windows"}
        flags_set.discard("fast")
        if flags_set & {"split", "flex"}:
            flags_set.discard("auto-windows")
    if {"split", "flex"} <= flags_set:
        raise ValueError(f"model {name!r}: choose one of +split and +flex")
    if base in PEERS:
        if flags_set - {"compile", "graph"}:
            raise ValueError(f"peer {base} takes only +compile and +graph, got {name!r}")
        return base, flags_set
    preset, _ = _ptdit_variant(base)
    if preset not in PRESETS:
        raise ValueError(
            f"unknown model {name!r}; use PT-DiT-S|B|L|XL|H with -lean or -full and +flags, or one of {PEERS}"
        )
    return base, flags_set


def _ptdit_variant(base: str) -> tuple[str, str]:
    for suffix in ("-lean", "-full"):
        if base.endswith(suffix):
            return base[: -len(suffix)], suffix[1:]
    return base, "official"


def _largest_divisor(tokens: int, cap: int = 16) -> int:
    return max(d for d in range(1, cap + 1) if tokens % d == 0)


def default_window(height: int, width: int, latent_frames: int, patch: int = 2) -> tuple[int, int, int]:
    """The paper's compression ratio (ptdit.config.ratio_for_size), made to divide the token grid.

    Images keep 8 x 8 windows per side; video takes p_f = 4 when the latent frames divide by 4, else 1; when a
    side's token count does not divide by the ratio, both sides take their largest divisor <= 16
    (49x480x720 -> (1, 15, 15), as in docs/paper.md §8.3).
    """
    pf, ph, pw = ratio_for_size(height, width, latent_frames)
    h, w = height // (VAE_FACTOR * patch), width // (VAE_FACTOR * patch)
    pf = pf if latent_frames % pf == 0 else 1
    if h % ph or w % pw:
        ph, pw = _largest_divisor(h), _largest_divisor(w)
    return pf, ph, pw


def _check_case(case: Case, factor: int, patch: int) -> None:
    for name, s in (("height", case.height), ("width", case.width)):
        if s < 1 or s % (factor * patch):
            raise ValueError(
                f"{case.model}: {name} {s}px must be a multiple of {factor * patch} (VAE factor {factor} x patch {patch})"
            )
    if case.frames < 1 or (case.frames - 1) % TEMPORAL_FACTOR and case.frames % TEMPORAL_FACTOR:
        raise ValueError(f"{case.model}: frames {case.frames} must be 1, 4k or 4k + 1")

"""ptdit: PT-DiT, the Proxy-Tokenized Diffusion Transformer of Qihoo-T2X, in PyTorch."""

from typing import Any

from .config import PRESETS, PTDiTConfig, ratio_for_size
from .model import PTDiT

__all__ = ["PTDiT", "PTDiTConfig", "PRESETS", "ratio_for_size", "PTDiTPipeline", "PTDiTPipelineOutput"]
__version__ = "0.2.0"


def __getattr__(name: str) -> Any:
    """`ptdit.PTDiTPipeline` and `ptdit.PTDiTPipelineOutput`, imported on first use (diffusers' pipeline machinery
    is not needed to build or train a model)."""
    if name in ("PTDiTPipeline", "PTDiTPipelineOutput"):
        from . import diffusers_pipeline

        return getattr(diffusers_pipeline, name)
    raise AttributeError(f"module 'ptdit' has no attribute {name!r}")

"""ptdit: PT-DiT, the Proxy-Tokenized Diffusion Transformer of Qihoo-T2X, in PyTorch."""

from .config import PRESETS, PTDiTConfig, ratio_for_size
from .model import PTDiT

__all__ = ["PTDiT", "PTDiTConfig", "PRESETS", "ratio_for_size"]
__version__ = "0.1.0"

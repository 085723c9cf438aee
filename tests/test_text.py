"""Text encoders: MiniLM (bundled), T5 from a local directory (a tiny random one), the random test encoder, cache."""

from __future__ import annotations

import pytest
import torch

from ptdit.text import (
    EmbeddingCache,
    MiniLMEncoder,
    RandomTextEncoder,
    T5Encoder,
    clean_caption,
    encode_cached,
    load_text_encoder,
    prepare_t5_prompt,
)


@pytest.fixture(scope="module")
def minilm():
    return load_text_encoder("minilm", max_length=16)


def test_minilm_shapes_and_mask(minilm):
    emb, mask = minilm(["a red square on the left", ""])
    assert isinstance(minilm, MiniLMEncoder) and minilm.dim == 384
    assert emb.shape == (2, 16, 384) and emb.dtype == torch.float32
    assert mask.dtype == torch.bool and mask.shape == (2, 16)
    assert mask[1].sum() == 2  # "" -> [CLS] [SEP]
    assert mask[0].sum() == 8  # [CLS] a red square on the left [SEP]
    emb2, _ = minilm("a red square on the left")
    torch.testing.assert_close(emb2[0], emb[0], atol=1e-5, rtol=1e-5)  # batch-independent
    long, lmask = minilm(["word " * 100])
    assert long.shape[1] == 16 and lmask.all()  # truncated at max_length


def test_minilm_longest_padding():
    enc = MiniLMEncoder(max_length=16, padding="longest")
    emb, mask = enc(["a", "a red square"])
    assert emb.shape == (2, 5, 384) and mask.sum(1).tolist() == [3, 5]
    with pytest.raises(ValueError, match="padding"):
        MiniLMEncoder(padding="none")


def test_t5_from_local_directory(t5_dir):
    enc = load_text_encoder(f"t5:{t5_dir}", max_length=8)
    assert isinstance(enc, T5Encoder) and enc.dim == 16 and enc.max_length == 8
    emb, mask = enc(["A Red  <b>square</b> https://x.com/a", ""])
    assert emb.shape == (2, 8, 16) and emb.dtype == torch.float32
    assert mask[0].tolist() == [True] * 4 + [False] * 4  # a red square </s>
    assert mask[1].tolist() == [True] + [False] * 7  # "" -> </s>
    ids = enc.tokenizer(["a red square"], return_tensors="pt")["input_ids"]
    ref = enc.model(input_ids=ids).last_hidden_state  # same prompt, no padding at all
    torch.testing.assert_close(emb[0, :4], ref[0], atol=1e-5, rtol=1e-5)  # the mask reached T5's attention
    assert load_text_encoder(f"t5:{t5_dir}").max_length == 200  # the release's default


def test_t5_offload_and_reload(t5_dir):
    enc = T5Encoder(t5_dir, max_length=4)
    before, _ = enc(["a cat"])
    enc.offload()
    assert next(enc.model.parameters()).device.type == "cpu"
    after, _ = enc(["a cat"])
    torch.testing.assert_close(before, after)


def test_t5_pipeline_layout(t5_dir, tmp_path):
    (tmp_path / "text_encoder").symlink_to(t5_dir, target_is_directory=True)
    (tmp_path / "tokenizer").symlink_to(t5_dir, target_is_directory=True)
    assert load_text_encoder(f"t5:{tmp_path}", max_length=4).dim == 16


def test_clean_caption():
    assert clean_caption("  A <i>Cat</i> &amp; a DOG\nsee https://example.com/x.png  ") == "a cat & a dog see"
    assert prepare_t5_prompt("") == ""
    assert prepare_t5_prompt("www.site.org Hello") == "hello"


def test_random_encoder_is_deterministic():
    enc = load_text_encoder("random:12", max_length=6)
    assert isinstance(enc, RandomTextEncoder) and enc.dim == 12
    emb, mask = enc(["Red square", "red cat", ""])
    assert emb.shape == (3, 6, 12) and mask.sum(1).tolist() == [3, 3, 1]
    torch.testing.assert_close(emb[0, 0], emb[1, 0])  # same word, same vector
    assert not torch.allclose(emb[0, 1], emb[1, 1])
    torch.testing.assert_close(emb, RandomTextEncoder(12, max_length=6)(["red square", "red cat", ""])[0])
    assert torch.equal(emb[:, 3:][~mask[:, 3:]], torch.zeros(int((~mask[:, 3:]).sum()), 12))


def test_bad_specs(tmp_path):
    with pytest.raises(ValueError, match="unknown text encoder spec"):
        load_text_encoder("clip")
    with pytest.raises(ValueError, match="integer"):
        load_text_encoder("random:big")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_text_encoder(f"t5:{tmp_path / 'nope'}")
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_text_encoder(f"t5:{tmp_path}")
    with pytest.raises(ValueError, match="empty list"):
        RandomTextEncoder(4)([])


def test_embedding_cache(tmp_path):
    enc = RandomTextEncoder(8, max_length=5)
    calls = []
    original = enc._encode
    enc._encode = lambda prompts: calls.append(list(prompts)) or original(prompts)
    cache = EmbeddingCache(enc, tmp_path / "cache")
    emb, mask = cache(["a cat", "", "a cat"])
    assert calls == [["a cat", ""]]  # unique misses, one batch
    ref_emb, ref_mask = enc(["a cat", "", "a cat"])
    torch.testing.assert_close(emb, ref_emb)
    assert torch.equal(mask, ref_mask)
    calls.clear()
    emb2, _ = encode_cached(enc, ["", "a cat"], tmp_path / "cache")
    assert calls == [] and torch.equal(emb2[0], emb[1])  # served from disk
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 2
    other = EmbeddingCache(RandomTextEncoder(8, max_length=4), tmp_path / "cache")
    assert other.key("a cat") != cache.key("a cat")  # max_length is part of the key
    assert encode_cached(enc, ["a"])[0].shape == (1, 5, 8)  # no cache: plain encode


def test_embedding_cache_trims_t5_padding(t5_dir, tmp_path):
    enc = T5Encoder(t5_dir, max_length=6)
    prompts = ["a red cat", ""]
    ref_emb, ref_mask = enc(prompts)
    emb, mask = EmbeddingCache(enc, tmp_path / "trim")(prompts)
    assert emb.shape == ref_emb.shape and torch.equal(mask, ref_mask)
    torch.testing.assert_close(emb[mask], ref_emb[ref_mask])  # real tokens as encoded
    assert emb[~mask].abs().sum() == 0 and ref_emb[~ref_mask].abs().sum() > 0  # padding stored as zeros
    full, _ = EmbeddingCache(enc, tmp_path / "full", trim=False)(prompts)
    torch.testing.assert_close(full, ref_emb, atol=0, rtol=0)


def test_minilm_spec_with_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_text_encoder(f"minilm:{tmp_path / 'nope'}")

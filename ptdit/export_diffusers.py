"""`ptdit export-diffusers NAME_OR_DIR OUT`: write a diffusers pipeline folder (`PTDiTPipeline.save_pretrained`).

NAME_OR_DIR: a bundled model (shapes-image, shapes-video, shapes-multiview), a ptdit model folder (config.json +
diffusion_pytorch_model.safetensors + pipeline.json: `ptdit convert-official` output, `ptdit train --export`
output), a training run folder (its exported run/model/), or a pipeline folder (saved again). The text encoder and
the autoencoder named in pipeline.json are built and saved as text_encoder/ + tokenizer/ and vae/ (MiniLM: about
90 MB); the transformer keeps the dtype of its weights unless --dtype says otherwise.

    ptdit export-diffusers shapes-image out/shapes-image
    ptdit generate "a red circle" --model out/shapes-image
    python -c "from ptdit import PTDiTPipeline; PTDiTPipeline.from_pretrained('out/shapes-image')"
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from .model import CONFIG_NAME, PTDiT
from .pipeline import BUNDLED, BUNDLED_DIR
from .pipeline_config import PIPELINE_NAME
from .pipeline_folders import is_pipeline_folder

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_source(name_or_dir: str) -> Path:
    """The folder to export: a bundled model by name, a pipeline folder, a model folder or a run's model/."""
    if name_or_dir in BUNDLED.values():
        return BUNDLED_DIR / name_or_dir
    path = Path(name_or_dir).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"{name_or_dir} is neither a bundled model ({', '.join(BUNDLED.values())}) nor a folder"
        )
    if is_pipeline_folder(path) or (path / CONFIG_NAME).is_file():
        return path
    if (path / "model" / CONFIG_NAME).is_file():  # a training run: its exported model
        return path / "model"
    raise FileNotFoundError(
        f"{path} holds neither model_index.json (a pipeline folder) nor {CONFIG_NAME} (a ptdit model folder); for "
        "a training run without run/model, write one first: ptdit train --export RUN/step_XXXXXX --out DIR"
    )


def check_out(out: Path, source: Path, overwrite: bool) -> None:
    """OUT is a new or empty folder, or (with --overwrite) an earlier pipeline folder, not the source."""
    if out.resolve() == source.resolve() or source.resolve() in out.resolve().parents:
        raise ValueError(f"OUT {out} is (inside) the source folder {source}: choose another folder")
    if out.exists() and not out.is_dir():
        raise ValueError(f"OUT {out} is a file: give a folder")
    if out.is_dir() and any(out.iterdir()) and not (overwrite and is_pipeline_folder(out)):
        hint = (
            "pass --overwrite to replace it" if is_pipeline_folder(out) else "choose an empty or new folder"
        )
        raise ValueError(f"OUT {out} already holds files: {hint}")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"OUT {out}: {parent} is not writable; choose a folder you can write to")


def export(
    name_or_dir: str,
    out: str | Path,
    dtype: str = "saved",
    text_encoder: str | None = None,
    vae: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the pipeline folder of NAME_OR_DIR into `out`; returns it. dtype: "saved" (the transformer's weights
    as stored) or fp32 / bf16 / fp16; text_encoder / vae: ptdit specs replacing those of pipeline.json."""
    from .autoencoders.components import vae_component
    from .diffusers_pipeline import PTDiTPipeline
    from .text_components import text_components

    if dtype != "saved" and dtype not in DTYPES:
        raise ValueError(f"--dtype must be saved or one of {sorted(DTYPES)}, got {dtype!r}")
    source, out = resolve_source(name_or_dir), Path(out).expanduser()
    check_out(out, source, overwrite)
    folder = source / "transformer" if is_pipeline_folder(source) else source
    kwargs: dict = {}
    if dtype == "saved":
        kwargs["transformer"] = PTDiT.from_pretrained(folder)
    else:
        kwargs["transformer"] = PTDiT.from_pretrained(folder, torch_dtype=DTYPES[dtype])
    if text_encoder:
        kwargs["text_encoder"], kwargs["tokenizer"] = text_components(text_encoder)
    if vae:
        kwargs["vae"] = vae_component(vae)
    pipe = PTDiTPipeline.from_pretrained(source, **kwargs)
    return pipe.save_pretrained(out)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ptdit export-diffusers",
        description="Write a diffusers pipeline folder (model_index.json + transformer/, scheduler/, "
        "text_encoder/, tokenizer/, vae/) that PTDiTPipeline.from_pretrained, DiffusionPipeline.from_pretrained "
        "(custom_pipeline='pipeline_ptdit', trust_remote_code=True) and ptdit generate --model read.",
    )
    p.add_argument(
        "source",
        metavar="NAME_OR_DIR",
        help=f"a bundled model ({', '.join(BUNDLED.values())}), a ptdit model folder (with {PIPELINE_NAME}), a "
        "training run folder or a pipeline folder",
    )
    p.add_argument("out", metavar="OUT", help="the pipeline folder to write (new or empty)")
    p.add_argument(
        "--dtype",
        choices=("saved", *DTYPES),
        default="saved",
        help="the transformer's weights (default: as saved)",
    )
    p.add_argument(
        "--text-encoder", help='replace the text encoder: "minilm", "t5:DIR" (default: the model\'s)'
    )
    p.add_argument(
        "--vae", help='replace the autoencoder: "identity", "vae:DIR", "osp:DIR" (default: the model\'s)'
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it is an earlier pipeline folder")
    return p


def cli_main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    out = export(args.source, args.out, args.dtype, args.text_encoder, args.vae, args.overwrite)
    print(f"wrote {out}: PTDiTPipeline.from_pretrained({str(out)!r}) or ptdit generate --model {out}")
    return 0

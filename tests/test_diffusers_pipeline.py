"""`ptdit.PTDiTPipeline`, in the style of diffusers' pipeline tests: the release's sampler reproduced (timesteps, the
v -> eps - x0 sign, CFG) within 1e-5 in fp32, save/load round trips (ptdit and transformers text encoders, the
custom-pipeline entry point of `DiffusionPipeline`), determinism, output types and shapes per task, a swapped
DPM-Solver scheduler, callbacks, LoRA in diffusers' format, model CPU offload (GPU only), `ptdit export-diffusers`
and `ptdit generate --model` on pipeline folders, and one-line errors for bad folders and components.

Tiny models (1 block, 16 px, 2-4 steps) with the hash text encoder ("random:16") and pixel space, except one test
of the bundled image model with its MiniLM text encoder.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from ptdit import PTDiT, PTDiTPipeline
from ptdit.autoencoders.vae_models import IdentityVAE, OSPCausalVAEModel
from ptdit.cli import main
from ptdit.flow import shift_timesteps
from ptdit.flow_scheduler import flow_match_scheduler, set_flow_timesteps
from ptdit.generation import generate_pixels, load_pipeline
from ptdit.io import read_safetensors
from ptdit.pipeline_config import PipelineDefaults
from ptdit.sampling import (
    base_taus,
    initial_noise,
    make_scheduler,
    rflow_timesteps,
    sample_diffusers,
    sample_euler,
)
from ptdit.text import load_text_encoder
from ptdit.text_components import HashTextEncoder, encode_text, text_components

sys.path.insert(0, str(Path(__file__).parent))
from model_helpers import randomize_zero_init  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
WINDOWS = {"image": (1, 2, 2), "video": (2, 2, 2), "multiview": (1, 2, 2)}
PROMPTS = ["a red circle", "a blue square"]


def tiny_transformer(task: str = "image", seed: int = 0) -> PTDiT:
    """A 1-block PT-DiT on 3-channel pixels with 16-d text, its zero-initialised layers redrawn (a new model
    outputs zero, which any sampler would reproduce)."""
    torch.manual_seed(seed)
    model = PTDiT(depth=1, hidden_size=32, num_heads=2, in_channels=3, out_channels=3, caption_channels=16,
                  window=WINDOWS[task])  # fmt: skip
    return randomize_zero_init(model, std=0.2, generator=torch.Generator().manual_seed(seed)).eval()


def tiny_pipe(task: str = "image", shift: float | None = 2.0, **config) -> PTDiTPipeline:
    frames = {"image": 1, "video": 4, "multiview": 2}[task]
    pipe = PTDiTPipeline(
        None, HashTextEncoder(dim=16), IdentityVAE(channels=3), tiny_transformer(task), flow_match_scheduler(),
        task=task, shift=shift, height=16, width=16, frames=frames, num_inference_steps=3, guidance_scale=3.0,
        **config,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generators(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


def released(
    pipe: PTDiTPipeline, prompts: list[str], seeds: list[int], steps: int, cfg: float, frames: int = 1
):
    """ptdit.sampling.sample_euler with rflow timesteps, the release's sampler: latents (B, C, F, h, w)."""
    encoder = load_text_encoder("random:16")
    emb, mask = encoder(prompts)
    uncond, uncond_mask = encoder([""])
    noise = torch.cat([initial_noise(pipe.latent_shape(1, frames, 16, 16), s) for s in seeds])
    if pipe.config.shift is None:
        timesteps = rflow_timesteps(steps, 16, 16, frames if pipe.config.task == "video" else 1)
    else:
        timesteps = shift_timesteps(base_taus(steps), pipe.config.shift) * 1000
    return sample_euler(pipe.transformer, noise, emb, mask, uncond, uncond_mask, timesteps, cfg)


# ---------------------------------------------------------------------------------------------- the sampler
@pytest.mark.parametrize(
    "steps,height,width,frames", [(30, 1024, 1024, 1), (20, 32, 32, 1), (7, 512, 768, 33)]
)
def test_scheduler_walks_the_released_timesteps(steps, height, width, frames):
    from ptdit.flow import shift_ratio

    scheduler = flow_match_scheduler()
    timesteps = set_flow_timesteps(scheduler, steps, shift_ratio(height, width, frames))
    expected = rflow_timesteps(steps, height, width, frames)
    assert torch.allclose(timesteps, expected, rtol=0, atol=2e-4)  # float32 rounding on the 0..1000 scale
    assert torch.allclose(scheduler.sigmas[:-1] * 1000, expected, rtol=0, atol=2e-4)
    assert scheduler.sigmas[-1] == 0 and timesteps[0] == 1000


@pytest.mark.parametrize("task,shift", [("image", 2.0), ("image", None), ("video", None), ("multiview", 3.0)])
def test_pipeline_equals_the_released_euler_sampler_with_guidance(task, shift):
    """The model's v = x0 - eps goes to the scheduler as eps - x0: a wrong sign, shift or guidance would not match."""
    pipe = tiny_pipe(task, shift=shift)
    frames = pipe.config.frames
    out = pipe(
        PROMPTS, generator=generators(3, 4), num_inference_steps=4, guidance_scale=3.0, output_type="latent"
    )
    latents = out.frames if task == "video" else out.images
    expected = released(pipe, PROMPTS, [3, 4], 4, 3.0, frames)
    expected = expected[:, :, 0] if task == "image" else expected
    assert latents.dtype == torch.float32 and expected.abs().max() > 1
    assert (latents - expected).abs().max() < 1e-5
    pixels = pipe(PROMPTS, generator=generators(3, 4), num_inference_steps=4, output_type="pt")
    pixels = pixels.frames if task == "video" else pixels.images
    if task == "image":
        assert torch.allclose(pixels, (expected / 2 + 0.5).clamp(0, 1), atol=1e-5)
    else:
        assert torch.allclose(pixels, (expected / 2 + 0.5).clamp(0, 1).transpose(1, 2), atol=1e-5)


def test_no_guidance_at_scale_one_and_prompt_embeds_give_the_same_sample():
    pipe = tiny_pipe()
    plain = pipe(PROMPTS[0], generator=generators(1), guidance_scale=1.0, output_type="latent").images
    expected = released(pipe, PROMPTS[:1], [1], 3, 1.0)[:, :, 0]
    assert (plain - expected).abs().max() < 1e-5
    emb, mask, neg, neg_mask = pipe.encode_prompt(PROMPTS[0])
    guided = pipe(PROMPTS[0], generator=generators(1), output_type="latent").images
    from_embeds = pipe(
        prompt_embeds=emb, prompt_attention_mask=mask, negative_prompt_embeds=neg,
        negative_prompt_attention_mask=neg_mask, generator=generators(1), output_type="latent",
    ).images  # fmt: skip
    assert torch.equal(guided, from_embeds) and not torch.allclose(guided, plain)


def test_swapped_dpm_solver_scheduler_keeps_the_shift():
    from diffusers import DPMSolverMultistepScheduler

    pipe = tiny_pipe(shift=3.0)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(
        pipe.scheduler.config,
        use_flow_sigmas=True,
        prediction_type="flow_prediction",
        final_sigmas_type="zero",
    )
    latents = pipe(PROMPTS, generator=generators(5, 6), num_inference_steps=4, output_type="latent").images
    encoder = load_text_encoder("random:16")
    (emb, mask), (uncond, uncond_mask) = encoder(PROMPTS), encoder([""])
    noise = torch.cat([initial_noise((1, 3, 1, 16, 16), s) for s in (5, 6)])
    expected = sample_diffusers(
        pipe.transformer, make_scheduler("flow-dpm", shift=3.0), noise, emb, mask, uncond, uncond_mask, 4, 3.0
    )[:, :, 0]
    assert (latents - expected).abs().max() < 1e-5
    euler = tiny_pipe(shift=3.0)(
        PROMPTS, generator=generators(5, 6), num_inference_steps=4, output_type="latent"
    )
    assert (euler.images - latents).abs().max() > 1e-3  # a different sampler, not the default one again


# ---------------------------------------------------------------------------------------------- calls
def test_determinism_with_a_generator_and_per_sample_noise():
    pipe = tiny_pipe()
    a = pipe(PROMPTS, generator=torch.Generator().manual_seed(0), output_type="np").images
    b = pipe(PROMPTS, generator=torch.Generator().manual_seed(0), output_type="np").images
    c = pipe(PROMPTS, generator=torch.Generator().manual_seed(1), output_type="np").images
    assert np.array_equal(a, b) and np.abs(a - c).max() > 1e-3
    pair = pipe(PROMPTS, generator=generators(7, 8), output_type="np").images
    alone = pipe(PROMPTS[1], generator=generators(8), output_type="np").images
    assert np.allclose(pair[1], alone[0], atol=1e-6)  # a sample's noise does not depend on its batch
    twice = pipe(PROMPTS[0], num_images_per_prompt=2, generator=generators(7, 8), output_type="np").images
    assert np.allclose(twice[0], pair[0], atol=1e-6) and np.abs(twice[0] - twice[1]).max() > 1e-3


@pytest.mark.parametrize("task", ["image", "video", "multiview"])
def test_output_types_and_shapes(task):
    pipe = tiny_pipe(task)
    F = pipe.config.frames
    outs = {t: pipe(PROMPTS, output_type=t, generator=generators(0, 1), num_inference_steps=2)
            for t in ("pil", "np", "pt", "latent")}  # fmt: skip
    field = "frames" if task == "video" else "images"
    assert all(getattr(o, "images" if field == "frames" else "frames") is None for o in outs.values())
    pil, arr, pt, latent = (getattr(outs[t], field) for t in ("pil", "np", "pt", "latent"))
    if task == "image":
        assert len(pil) == 2 and all(isinstance(i, PIL.Image.Image) and i.size == (16, 16) for i in pil)
        assert arr.shape == (2, 16, 16, 3) and pt.shape == (2, 3, 16, 16) and latent.shape == (2, 3, 16, 16)
    else:  # a list of frames / views per prompt
        assert len(pil) == 2 and all(len(p) == F and all(i.size == (16, 16) for i in p) for p in pil)
        assert arr.shape == (2, F, 16, 16, 3) and pt.shape == (2, F, 3, 16, 16)
        assert latent.shape == (2, 3, F, 16, 16)
    assert arr.min() >= 0 and arr.max() <= 1 and np.allclose(arr, pt.movedim(-3, -1).numpy(), atol=1e-6)
    first_pil, first_np = (pil[0], arr[0]) if task == "image" else (pil[0][0], arr[0, 0])
    assert np.array_equal(np.asarray(first_pil), (first_np * 255).round().astype(np.uint8))
    as_tuple = pipe(
        PROMPTS, output_type="pt", return_dict=False, generator=generators(0, 1), num_inference_steps=2
    )
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], pt)


def test_callback_sees_every_step_and_can_stop():
    pipe = tiny_pipe()
    seen = []

    def callback(p, step, timestep, tensors):
        seen.append((step, float(timestep), tuple(tensors["latents"].shape), sorted(tensors)))
        return {"latents": tensors["latents"]}

    pipe("a red circle", num_inference_steps=3, callback_on_step_end=callback,
         callback_on_step_end_tensor_inputs=["latents", "prompt_embeds"], output_type="latent")  # fmt: skip
    assert [s[0] for s in seen] == [0, 1, 2] and seen[0][1] == 1000.0
    assert all(s[2] == (1, 3, 1, 16, 16) and s[3] == ["latents", "prompt_embeds"] for s in seen)

    def stop(p, step, timestep, tensors):
        p._interrupt = True
        return {}

    noise = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    one = pipe(
        "a red circle", latents=noise, num_inference_steps=3, callback_on_step_end=stop, output_type="latent"
    )
    full = pipe("a red circle", latents=noise, num_inference_steps=3, output_type="latent")
    assert not torch.allclose(one.images, full.images)  # stopped after the first step


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"prompt": None}, "pass `prompt`"),
        ({"prompt": []}, "non-empty list of strings"),
        ({"height": 18}, "does not fit this model"),
        ({"num_frames": 2}, "num_frames must be 1"),
        ({"num_inference_steps": 0}, "num_inference_steps must be >= 1"),
        ({"output_type": "jpg"}, "output_type must be one of"),
        ({"negative_prompt": ["a", "b", "c"]}, "3 negative prompts for 2 prompts"),
        ({"generator": generators(1)}, "1 generators for a batch of 2"),
        ({"latents": torch.zeros(2, 3, 8, 8)}, "latents must be (2, 3, 1, 16, 16)"),
        ({"callback_on_step_end_tensor_inputs": ["noise"]}, "are not among"),
    ],
)
def test_bad_call_arguments_are_one_line_errors(kwargs, message):
    pipe = tiny_pipe()
    call = {"prompt": PROMPTS, "num_inference_steps": 1, **kwargs}
    with pytest.raises(ValueError) as e:
        pipe(**call)
    assert message in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------- folders
def test_save_load_round_trip_gives_equal_outputs(tmp_path):
    pipe = tiny_pipe("video", shift=None, world="shapes-video", fps=12.0, text_max_length=8)
    before = pipe(PROMPTS, generator=generators(0, 1), output_type="np").frames
    assert pipe.save_pretrained(tmp_path / "pipe") == tmp_path / "pipe"
    files = sorted(
        str(p.relative_to(tmp_path / "pipe")) for p in (tmp_path / "pipe").rglob("*") if p.is_file()
    )
    assert files == [
        "model_index.json", "pipeline_ptdit.py", "scheduler/scheduler_config.json", "text_encoder/config.json",
        "transformer/config.json", "transformer/diffusion_pytorch_model.safetensors", "vae/config.json",
    ]  # fmt: skip
    index = json.loads((tmp_path / "pipe" / "model_index.json").read_text())
    assert index["transformer"] == ["ptdit.model", "PTDiT"] and index["tokenizer"] == [None, None]
    assert index["scheduler"] == ["diffusers", "FlowMatchEulerDiscreteScheduler"]
    loaded = PTDiTPipeline.from_pretrained(tmp_path / "pipe")
    loaded.set_progress_bar_config(disable=True)
    for key in ("task", "world", "shift", "fps", "text_max_length", "height", "width", "frames",
                "num_inference_steps", "guidance_scale"):  # fmt: skip
        assert loaded.config[key] == pipe.config[key], key
    assert np.array_equal(loaded(PROMPTS, generator=generators(0, 1), output_type="np").frames, before)
    assert not list(tmp_path.glob(".pipe*"))  # the temporary folder is gone
    pipe.save_pretrained(tmp_path / "pipe")  # saving again replaces the folder
    assert (tmp_path / "pipe" / "model_index.json").is_file()


def test_transformers_text_encoder_round_trip_and_parity_with_ptdit_text(t5_dir, tmp_path):
    text_encoder, tokenizer = text_components(f"t5:{t5_dir}")
    prompts = ["a red square on the left", ""]
    emb, mask = encode_text(text_encoder, tokenizer, prompts, 200)
    ref_emb, ref_mask = load_text_encoder(f"t5:{t5_dir}")(prompts)
    assert torch.equal(mask, ref_mask) and torch.allclose(emb, ref_emb, atol=1e-6)
    pipe = PTDiTPipeline(tokenizer, text_encoder, IdentityVAE(), tiny_transformer(), flow_match_scheduler(),
                         height=16, width=16, text_max_length=12, num_inference_steps=2)  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    before = pipe("a red square", generator=generators(2), output_type="pt").images
    pipe.save_pretrained(tmp_path / "pipe")
    assert (tmp_path / "pipe" / "tokenizer" / "tokenizer_config.json").is_file()
    loaded = PTDiTPipeline.from_pretrained(tmp_path / "pipe")
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded.text_encoder).__name__ == "T5EncoderModel" and loaded.tokenizer is not None
    assert torch.allclose(
        loaded("a red square", generator=generators(2), output_type="pt").images, before, atol=1e-6
    )


def test_diffusion_pipeline_loads_through_the_custom_pipeline_file(tmp_path, monkeypatch):
    from diffusers import DiffusionPipeline
    from diffusers.utils import dynamic_modules_utils

    monkeypatch.setattr(dynamic_modules_utils, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    pipe = tiny_pipe()
    pipe.save_pretrained(tmp_path / "pipe")
    loaded = DiffusionPipeline.from_pretrained(tmp_path / "pipe", custom_pipeline="pipeline_ptdit",
                                               trust_remote_code=True)  # fmt: skip
    assert type(loaded) is PTDiTPipeline
    loaded.set_progress_bar_config(disable=True)
    a = pipe("a red circle", generator=generators(0), output_type="pt").images
    assert torch.equal(loaded("a red circle", generator=generators(0), output_type="pt").images, a)


def test_bad_pipeline_folders_are_one_line_errors(tmp_path):
    pipe = tiny_pipe()
    pipe.save_pretrained(tmp_path / "good")

    def broken(name, edit):
        folder = tmp_path / name
        shutil.copytree(tmp_path / "good", folder)
        edit(folder)
        return folder

    def set_field(folder, file, key, value):
        data = json.loads((folder / file).read_text())
        data[key] = value
        (folder / file).write_text(json.dumps(data))

    cases = [
        (tmp_path / "missing", FileNotFoundError, "does not exist"),
        (broken("no_vae", lambda f: shutil.rmtree(f / "vae")), FileNotFoundError, "vae/config.json is missing"),
        (broken("no_weights", lambda f: (f / "transformer" / "diffusion_pytorch_model.safetensors").unlink()),
         FileNotFoundError, "holds no weights"),
        (broken("unlisted", lambda f: set_field(f, "model_index.json", "vae", None)), ValueError, "names no 'vae'"),
        (broken("caption", lambda f: set_field(f, "transformer/config.json", "caption_channels", 32)),
         ValueError, "takes caption_channels=32 but the text encoder gives 16-d"),
        (broken("channels", lambda f: set_field(f, "vae/config.json", "channels", 1)),
         ValueError, "the vae has 1 latent channels"),
        (broken("other", lambda f: set_field(f, "model_index.json", "_class_name", "SanaPipeline")),
         ValueError, "not a PTDiTPipeline one"),
    ]  # fmt: skip
    for folder, error, message in cases:
        with pytest.raises(error) as e:
            PTDiTPipeline.from_pretrained(folder)
        assert message in str(e.value) and "\n" not in str(e.value), (folder.name, str(e.value))
    with pytest.raises(ValueError, match="^the text encoder gives 8-d states but the transformer takes"):
        PTDiTPipeline(None, HashTextEncoder(dim=8), IdentityVAE(), tiny_transformer(), flow_match_scheduler())
    with pytest.raises(ValueError, match="needs its tokenizer"):
        PTDiTPipeline(
            None, *text_components("minilm")[:1], IdentityVAE(), tiny_transformer(), flow_match_scheduler()
        )
    with pytest.raises(ValueError, match="unknown task 'audio'"):
        PTDiTPipeline(None, HashTextEncoder(dim=16), IdentityVAE(), tiny_transformer(), flow_match_scheduler(),
                      task="audio")  # fmt: skip


def test_osp_causalvae_is_a_vae_component(tmp_path):
    from ptdit.autoencoders.osp_causalvae import OSPCausalVAEConfig

    config = OSPCausalVAEConfig(hidden_size=8, hidden_size_mult=(1, 2, 2, 2), num_groups=4, tile_sample_min_size=32,
                                tile_overlap_factor=0.25, tile_sample_min_size_t=5, tile_latent_min_size_t=2)  # fmt: skip
    torch.manual_seed(0)
    vae = OSPCausalVAEModel(osp_config=config.to_dict()).eval()
    vae.save_pretrained(tmp_path / "vae")
    loaded = OSPCausalVAEModel.from_pretrained(tmp_path / "vae").eval()
    latents = torch.randn(1, 4, 2, 2, 2, generator=torch.Generator().manual_seed(0))
    assert vae.decode(latents).shape == (1, 3, 5, 16, 16)
    assert torch.equal(loaded.decode(latents), vae.decode(latents))
    assert loaded.latent_size(5, 16, 16) == (2, 2, 2) and loaded.vae.config == config


# ---------------------------------------------------------------------------------------------- LoRA
def test_lora_save_and_load_round_trip(tmp_path):
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = tiny_pipe()
    base = pipe("a red circle", generator=generators(0), output_type="latent").images
    pipe.transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out"],
                                            init_lora_weights=False))  # fmt: skip
    adapted = pipe("a red circle", generator=generators(0), output_type="latent").images
    assert (adapted - base).abs().max() > 1e-3
    PTDiTPipeline.save_lora_weights(
        tmp_path / "lora", transformer_lora_layers=get_peft_model_state_dict(pipe.transformer)
    )
    assert (tmp_path / "lora" / "pytorch_lora_weights.safetensors").is_file()
    fresh = tiny_pipe()
    fresh.load_lora_weights(tmp_path / "lora", adapter_name="shapes")
    assert fresh.get_active_adapters() == ["shapes"]
    assert torch.allclose(
        fresh("a red circle", generator=generators(0), output_type="latent").images, adapted, atol=1e-6
    )
    fresh.fuse_lora()
    fresh.unload_lora_weights()  # the fused weights stay
    assert torch.allclose(
        fresh("a red circle", generator=generators(0), output_type="latent").images, adapted, atol=1e-5
    )
    with pytest.raises(ValueError, match="not a LoRA checkpoint"):
        tiny_pipe().load_lora_weights({"transformer.blocks.0.weight": torch.zeros(1)})


# ---------------------------------------------------------------------------------------------- offload
@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="enable_model_cpu_offload needs a GPU; this machine has none"
)
def test_model_cpu_offload_gives_the_same_images():
    pipe = tiny_pipe().to("cuda")
    on_gpu = pipe(PROMPTS, generator=generators(0, 1), output_type="pt").images.cpu()
    offloaded = tiny_pipe()
    offloaded.enable_model_cpu_offload()
    out = offloaded(PROMPTS, generator=generators(0, 1), output_type="pt").images.cpu()
    assert offloaded._execution_device.type == "cuda" and torch.allclose(out, on_gpu, atol=1e-4)


# ---------------------------------------------------------------------------------------------- commands
def make_model_dir(path: Path, task: str = "video") -> Path:
    tiny_transformer(task).save_pretrained(path)
    PipelineDefaults(task=task, text_encoder="random:16", autoencoder="identity", height=16, width=16,
                     frames=4 if task == "video" else 1, steps=2, cfg=3.0, shift=2.0).write(path)  # fmt: skip
    return path


def test_export_diffusers_and_generate_from_the_pipeline_folder(tmp_path, capsys):
    model = make_model_dir(tmp_path / "model")
    assert main(["export-diffusers", str(model), str(tmp_path / "pipe")]) == 0
    assert (tmp_path / "pipe" / "model_index.json").is_file()
    exported = PTDiTPipeline.from_pretrained(tmp_path / "pipe")
    assert exported.config.task == "video" and exported.config.frames == 4 and exported.config.shift == 2.0
    runs = {}
    for name, folder in (("model", model), ("pipe", tmp_path / "pipe")):
        out = tmp_path / f"out_{name}"
        assert main(["generate", "a dot moving right", "--model", str(folder), "--out", str(out), "--quiet",
                     "--upscale", "1", "--device", "cpu"]) == 0  # fmt: skip
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["task"] == "video" and manifest["settings"]["frames"] == 4
        gif = [f for f in manifest["outputs"][0]["files"] if f.endswith(".gif")][0]
        runs[name] = [
            np.asarray(f.convert("RGB")) for f in PIL.ImageSequence.Iterator(PIL.Image.open(out / gif))
        ]
    assert len(runs["pipe"]) == 4 and all(np.array_equal(a, b) for a, b in zip(runs["model"], runs["pipe"]))
    # refused before any work: a non-empty OUT, an unknown source
    assert main(["export-diffusers", str(model), str(tmp_path / "pipe")]) == 1
    assert "pass --overwrite to replace it" in capsys.readouterr().err
    assert main(["export-diffusers", "shapes-audio", str(tmp_path / "x")]) == 1
    assert "neither a bundled model" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main(["export-diffusers", str(model), str(tmp_path / "pipe"), "--overwrite"]) == 0


def test_a_converted_checkpoint_exports_with_its_t5_and_causalvae(t5_dir, tmp_path, capsys):
    """A folder like `ptdit convert-official` writes (pipeline.json names no text encoder or autoencoder: the user's
    T5 and Open-Sora-Plan VAE folders), with tiny stand-ins for the T5 and the CausalVAE."""
    from ptdit.autoencoders.osp_causalvae import OSPCausalVAE, OSPCausalVAEConfig

    torch.manual_seed(0)
    OSPCausalVAE(OSPCausalVAEConfig(hidden_size=8, hidden_size_mult=(1, 2, 2, 2), num_groups=4,
                                    tile_sample_min_size=32, tile_overlap_factor=0.25, tile_sample_min_size_t=5,
                                    tile_latent_min_size_t=2)).save_pretrained(tmp_path / "osp")  # fmt: skip
    model = PTDiT(depth=1, hidden_size=32, num_heads=2, patch_size=1, in_channels=4, out_channels=8,
                  caption_channels=16, window=(1, 2, 2))  # fmt: skip
    model.save_pretrained(tmp_path / "converted")
    PipelineDefaults(task="image", text_encoder=None, text_max_length=200, autoencoder=None, height=16, width=16,
                     steps=2).write(tmp_path / "converted")  # fmt: skip
    argv = ["export-diffusers", str(tmp_path / "converted"), str(tmp_path / "pipe")]
    assert main(argv) == 1 and "--text-encoder SPEC" in capsys.readouterr().err
    assert main([*argv, "--text-encoder", f"t5:{t5_dir}", "--vae", f"osp:{tmp_path / 'osp'}"]) == 0
    pipe = PTDiTPipeline.from_pretrained(tmp_path / "pipe")
    pipe.set_progress_bar_config(disable=True)
    assert (
        type(pipe.vae).__name__ == "OSPCausalVAEModel"
        and type(pipe.text_encoder).__name__ == "T5EncoderModel"
    )
    assert pipe.text_max_length == 200 and pipe.latent_shape(1, 1, 16, 16) == (1, 4, 1, 2, 2)
    image = pipe("a red square", generator=generators(0)).images[0]
    assert image.size == (16, 16)


def test_generate_pixels_matches_the_deprecated_pipeline(tmp_path):
    from ptdit.pipeline import Pipeline

    model = make_model_dir(tmp_path / "model", task="image")
    with pytest.warns(FutureWarning, match="Pipeline is deprecated"):
        old = Pipeline.from_pretrained(model, device="cpu")
    expected = old(PROMPTS, [4, 5], 16, 16, steps=3, cfg=3.0, batch_size=1)
    pipe = load_pipeline(model, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # the new path is not deprecated
        pixels = generate_pixels(pipe, PROMPTS, [4, 5], 16, 16, steps=3, cfg=3.0, batch_size=2)
    assert all(p.shape == (3, 1, 16, 16) for p in pixels)
    assert all(torch.allclose(p, e.clamp(-1, 1), atol=1e-5) for p, e in zip(pixels, expected))


def test_a_trained_run_loads_and_exports(tmp_path):
    pytest.importorskip("yaml")
    from ptdit.training import TrainConfig, train

    d = {
        "model": {"depth": 1, "hidden_size": 32, "num_heads": 2, "window": [1, 2, 2]},
        "data": {"factory": "train_fixtures:make_dataset", "options": {"n": 8, "size": 8}, "size": 8},
        "text": {"encoder": "random:16", "max_length": 6},
        "autoencoder": {"spec": "identity"},
        "train": {"steps": 2, "batch_size": 4, "lr": 1e-3, "warmup_steps": 1, "ema_decay": 0.9, "threads": 1},
        "checkpoint": {"dir": str(tmp_path / "run"), "every": 2, "keep_last": 1, "export_pipeline": True},
        "log": {"every": 1, "progress": False, "plot_every": 0},
    }
    result = train(TrainConfig.from_dict(d))
    pipe = PTDiTPipeline.from_pretrained(result.model_dir)  # run/model: the compact layout
    assert pipe.config.height == 8 and pipe.config.text_max_length == 6
    assert main(["export-diffusers", str(tmp_path / "run"), str(tmp_path / "pipe")]) == 0
    pipe.set_progress_bar_config(disable=True)
    exported = PTDiTPipeline.from_pretrained(tmp_path / "pipe")
    exported.set_progress_bar_config(disable=True)
    a = pipe("a red square", generator=generators(0), num_inference_steps=2, output_type="pt").images
    assert torch.equal(
        exported("a red square", generator=generators(0), num_inference_steps=2, output_type="pt").images, a
    )
    trained = PTDiTPipeline.from_pretrained(tmp_path / "run" / "pipeline")  # checkpoint.export_pipeline: true
    trained.set_progress_bar_config(disable=True)
    assert (tmp_path / "run" / "pipeline" / "model_index.json").is_file()
    assert torch.equal(
        trained("a red square", generator=generators(0), num_inference_steps=2, output_type="pt").images, a
    )


def test_bundled_model_exports_with_its_minilm_text_encoder(tmp_path):
    """The bundled image model through the compatibility path and as an exported pipeline folder draws the same
    image with ptdit generate; the saved MiniLM encodes as ptdit.text does."""
    assert main(["export-diffusers", "shapes-image", str(tmp_path / "pipe")]) == 0
    pipe = PTDiTPipeline.from_pretrained(tmp_path / "pipe")  # float32 unless torch_dtype says otherwise
    assert type(pipe.text_encoder).__name__ == "BertModel" and pipe.transformer.dtype == torch.float32
    weights = read_safetensors(tmp_path / "pipe" / "transformer" / "diffusion_pytorch_model.safetensors")
    assert all(w.dtype == torch.bfloat16 for w in weights.values())  # exported as stored
    prompts = ["a red triangle below a gray circle", ""]
    emb, mask = encode_text(pipe.text_encoder, pipe.tokenizer, prompts, pipe.text_max_length)
    ref_emb, ref_mask = load_text_encoder("minilm", max_length=24)(prompts)
    assert torch.equal(mask, ref_mask) and torch.allclose(emb, ref_emb, atol=1e-5)
    images = []
    for model in ([], ["--model", str(tmp_path / "pipe")]):
        out = tmp_path / f"out{len(images)}"
        assert main(["generate", prompts[0], *model, "--steps", "2", "--out", str(out), "--quiet", "--upscale", "1",
                     "--device", "cpu"]) == 0  # fmt: skip
        manifest = json.loads((out / "manifest.json").read_text())
        images.append(np.asarray(PIL.Image.open(out / manifest["outputs"][0]["files"][0])))
    assert images[0].shape == (32, 32, 3) and np.array_equal(images[0], images[1])


def test_shift_ratio_follows_the_size_when_the_pipeline_has_none():
    pipe = tiny_pipe(shift=None)
    assert pipe.shift_ratio(1024, 1024, 1) == 2.0 and pipe.shift_ratio(512, 512, 1) == 1.0
    video = tiny_pipe("video", shift=None)
    assert math.isclose(video.shift_ratio(512, 512, 34), math.sqrt(10))  # 34 // 17 * 5 = 10
    assert tiny_pipe(shift=3.0).shift_ratio(1024, 1024, 1) == 3.0

"""The training loop: rectified flow (flow.py) with AdamW, warmup, clipping, EMA, bf16 autocast, gradient
checkpointing and accumulation, DDP / FSDP2, exact resume, JSONL / PNG logs and sample grids.

One optimizer step:
    for each of grad_accum micro-batches (batch_size items per rank):
        x0 = autoencoder.encode(pixels); captions -> "" with probability caption_dropout -> (emb, mask)
        tau ~ logit-normal, shifted by shift_ratio(pixel H, W, frames); eps ~ N(0, 1)
        x_tau = (1 - tau) x0 + tau eps;  v = x0 - eps
        loss = MSE(model(x_tau, 1000 tau, emb, mask)[:, :in_channels], v)
    clip -> AdamW -> EMA; the loss and grad norm stay on the device (no host sync in a step)

Every log.every steps, and before every checkpoint, the interval's losses and grad norms are read once (averaged
over ranks), checked (a NaN / inf stops the run before any checkpoint of that state) and logged as the interval's
mean with its throughput: tokens/s, samples/s, TFLOP/s and MFU (training/throughput.py).
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from .. import flow
from ..config import PTDiTConfig
from ..model import PTDiT
from ..text import check_text_mask
from . import checkpoint as ckpt
from .batches import IndexedDataset, ShardedBatchOrder, collate
from .builders import build_autoencoder, build_dataset, build_text_encoder
from .config import TrainConfig
from .distributed import (
    DistInfo,
    all_mean,
    barrier,
    broadcast_object,
    copy_full_into,
    full_model_state,
    full_optimizer_state,
    full_tensors,
    init_distributed,
    load_full_model_state,
    load_full_optimizer_state,
    no_grad_sync,
    shutdown,
    wrap_model,
)
from .ema import EMA
from .logs import LOG_NAME, PLOT_NAME, JsonlLog, plot_losses
from .signals import StopSignals, agreed_signal, ignore_stop_signals
from .throughput import StepCost, measured_peak_tflops, step_cost, throughput


class TrainingDiverged(ValueError):
    """The loss or the gradient norm became NaN/inf; no checkpoint is written from that state."""


@dataclass
class TrainResult:
    step: int  # the last optimizer step done
    loss: float  # the mean loss of the last logged interval (ending at `step`)
    run_dir: Path
    checkpoint: Path | None  # the newest checkpoint
    model_dir: Path | None  # the exported model (EMA weights), if checkpoint.export
    seconds: float  # wall time of this process's loop
    model_config: PTDiTConfig
    rank: int = 0
    stopped_by: int | None = None  # the signal (SIGTERM / SIGINT) that stopped the run at `step`, if one did


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of optimizer step `step` (1-based): linear warmup, then constant or cosine to min_lr."""
    t = cfg.train
    if t.warmup_steps > 0 and step <= t.warmup_steps:
        return t.lr * step / t.warmup_steps
    if t.schedule == "cosine":
        span = max(1, t.steps - t.warmup_steps)
        progress = min(1.0, (step - t.warmup_steps) / span)
        return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1 + math.cos(math.pi * progress))
    return t.lr


def _device(name: str, info_local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("train.device=cuda but no CUDA device is available; use train.device: cpu")
        return torch.device("cuda", info_local_rank)
    return torch.device(name)


def _rng_state(generator: torch.Generator, noise: torch.Generator) -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "trainer": generator.get_state(),
    }
    if noise is not generator:
        state["noise"] = noise.get_state()
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], generator: torch.Generator, noise: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    generator.set_state(state["trainer"])
    if noise is not generator:
        if "noise" in state:
            noise.set_state(state["noise"])
        else:  # written by ptdit 0.1 (noise drawn on the CPU) or on a CPU: the run goes on with a fresh stream
            warnings.warn(
                "this checkpoint holds no GPU noise-generator state (ptdit 0.1 drew the noise on the CPU): the "
                "resumed run draws other noise than an uninterrupted 0.1 run would",
                stacklevel=2,
            )
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class LogInterval:
    """The steps since the last log record. Sums stay on the device until `Trainer._log` reads them (one sync)."""

    def __init__(self, device: torch.device) -> None:
        self.start = time.perf_counter()
        self.paused = 0.0  # seconds spent on checkpoints, plots and sample grids (not training)
        self.steps = 0
        zero = torch.zeros((), device=device)
        self.loss, self.grad, self.grad_max = zero, zero.clone(), zero.clone()
        self.bad_loss = torch.zeros((), dtype=torch.long, device=device)  # first step with a non-finite loss
        self.bad_grad = torch.zeros((), dtype=torch.long, device=device)
        self.empty_text = torch.zeros((), dtype=torch.bool, device=device)
        self.taus: list[Tensor] = []  # on the host (drawn there)

    def add(self, step: int, loss: Tensor, grad_norm: Tensor, taus: list[Tensor]) -> None:
        grad_norm = grad_norm.float()
        self.loss = self.loss + loss
        self.grad = self.grad + grad_norm
        self.grad_max = torch.maximum(self.grad_max, grad_norm)  # NaN propagates
        self.bad_loss = torch.where((self.bad_loss == 0) & ~torch.isfinite(loss), step, self.bad_loss)
        self.bad_grad = torch.where((self.bad_grad == 0) & ~torch.isfinite(grad_norm), step, self.bad_grad)
        self.taus.extend(taus)
        self.steps += 1


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


class Trainer:
    """Holds the run's objects; `run()` trains to cfg.train.steps. Build it through `train()`."""

    def __init__(
        self,
        cfg: TrainConfig,
        dataset: Dataset | None = None,
        text_encoder: Any = None,
        autoencoder: nn.Module | None = None,
    ) -> None:
        self.cfg = cfg
        t = cfg.train
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.device = _device(t.device, local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.info: DistInfo = init_distributed(self.device)
        self.parallel = t.parallel if t.parallel != "auto" else ("ddp" if self.info.enabled else "none")
        if self.parallel != "none" and not self.info.enabled:
            self.parallel = "none"  # one process: nothing to wrap
        if t.threads > 0:
            torch.set_num_threads(t.threads)
        if t.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        self.run_dir = Path(cfg.checkpoint.dir)

        # ---- where to start: a checkpoint of this run, or fresh
        resume = None
        if self.info.is_main:
            ckpt.clean_temporaries(self.run_dir)
            resume = ckpt.resolve_resume(self.run_dir, cfg.checkpoint.resume)
            if resume is None and not cfg.checkpoint.resume and ckpt.list_checkpoints(self.run_dir):
                raise ValueError(
                    f"checkpoint.dir {self.run_dir} already holds checkpoints: pass --resume (checkpoint.resume: "
                    "auto) to continue that run, or choose a new checkpoint.dir"
                )
        resume = broadcast_object(str(resume) if resume else "", self.info)
        self.resume_from = Path(resume) if resume else None

        # ---- data, text, latent space
        self.dataset = dataset if dataset is not None else build_dataset(cfg.data)
        if cfg.data.preload:
            from ..data.memory import preload

            self.dataset = preload(self.dataset, num_workers=t.num_workers)
        self.text_encoder = (
            text_encoder if text_encoder is not None else build_text_encoder(cfg.text, self.device)
        )
        probe = self.dataset[0]["pixels"]  # (C, F, H, W)
        self.pixel_size = tuple(int(v) for v in probe.shape[1:])
        if autoencoder is None:
            autoencoder = build_autoencoder(cfg.autoencoder, self.device, pixel_channels=int(probe.shape[0]))
        self.autoencoder = autoencoder.to(self.device).eval().requires_grad_(False)
        with torch.no_grad():
            latent = self.autoencoder.encode(probe[None].to(self.device))
        self.latent_cache = None
        if cfg.autoencoder.cache_dir:
            from ..data.cache import LatentCache

            self.latent_cache = LatentCache(cfg.autoencoder.cache_dir, autoencoder_id=cfg.autoencoder.spec)
            self.dataset_id = yaml.safe_dump(dataclasses.asdict(cfg.data), sort_keys=True)
        self.model_config = cfg.model_config(
            in_channels=int(latent.shape[1]), caption_channels=int(self.text_encoder.dim)
        )
        if cfg.lora.rank and not cfg.model:  # a LoRA run without a model section: the base model's config
            self.model_config = PTDiTConfig.from_json(
                ckpt.resolve_weights(cfg.init.from_, cfg.init.weights)[1]
            )

        # ---- model (the same init on every rank), optional earlier-stage weights
        _seed_all(t.seed)
        model = PTDiT(self.model_config)
        model.check_size(*(int(v) for v in latent.shape[2:]))  # the data fits the window, before any work
        self.init_summary = None
        if cfg.init.from_ and (self.resume_from is None or cfg.lora.rank):  # LoRA checkpoints hold no base
            self.init_summary = ckpt.init_from(model, cfg.init.from_, cfg.init.weights, cfg.init.ignore)
        self.lora_note = None
        if cfg.lora.rank:  # freeze the base, add the adapter (ptdit/training/lora.py)
            from . import lora

            lora.add_lora(model, cfg.lora)
            self.lora_note = lora.base_note({**self.init_summary, "from": cfg.init.from_}, cfg.lora)
        model.to(self.device).train()
        if t.grad_checkpointing:
            model.enable_gradient_checkpointing()  # diffusers' switch (sets the checkpoint function too)
        if t.compile:
            from ..fast import compile_model

            compile_model(model, t.compile_scope)  # in place: parameter names (and checkpoints) do not change
        self.raw = model
        self.model = wrap_model(model, self.parallel, self.info, self.device)
        decay = [p for p in model.parameters() if p.dim() >= 2 and p.requires_grad]  # LoRA: the adapter only
        no_decay = [p for p in model.parameters() if p.dim() < 2 and p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=t.lr,
            betas=tuple(t.betas),
            eps=t.eps,
            # one kernel for all parameters (CPU and CUDA); FSDP2 keeps foreach
            fused=self.parallel != "fsdp",
        )
        self.ema = EMA(model, t.ema_decay, t.ema_start) if t.ema_decay > 0 else None

        # ---- data order and the trainer's generator (tau, noise, caption dropout), one stream per rank
        self.order = ShardedBatchOrder(
            self.dataset, t.batch_size, t.seed, self.info.rank, self.info.world_size
        )
        self.generator = torch.Generator().manual_seed(t.seed * 1000 + 17 + self.info.rank)
        # the noise is drawn where it is used: on a GPU by a generator of its own (no copy from the host)
        self.noise_generator = self.generator
        if self.device.type != "cpu":
            self.noise_generator = torch.Generator(self.device).manual_seed(
                t.seed * 1000 + 23 + self.info.rank
            )
        _seed_all(t.seed * 1000 + 29 + self.info.rank)
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.last_checkpoint: Path | None = None
        self.cost: StepCost | None = None  # what a step processes, known from the first batch
        if self.resume_from is not None:
            self._load(self.resume_from)

    # ------------------------------------------------------------------ checkpoints
    def _load(self, path: Path) -> None:
        state, rng = ckpt.load_trainer_state(path, self.info.rank)
        if state["world_size"] != self.info.world_size:
            raise ValueError(
                f"{path} was written by {state['world_size']} rank(s); resume it with the same number of ranks "
                f"(this run has {self.info.world_size}), or start a new stage with init.from={path}"
            )
        saved = PTDiTConfig.from_dict(state["model_config"])
        if saved != self.model_config:
            raise ValueError(
                f"the model config of {path} differs from this config's model section: {saved} vs {self.model_config}"
            )
        from ..io import read_safetensors
        from ..model import weights_file

        if self.lora_note is not None:
            self._load_lora(path)
        else:
            load_full_model_state(self.raw, read_safetensors(weights_file(path)), self.info)
        load_full_optimizer_state(self.raw, self.optimizer, state["optimizer"])
        if self.ema is not None and self.lora_note is None:
            if not (path / ckpt.EMA_NAME).is_file():
                raise FileNotFoundError(f"{path / ckpt.EMA_NAME} is missing but train.ema_decay > 0")
            copy_full_into(self.ema.shadow, read_safetensors(path / ckpt.EMA_NAME))
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        _set_rng_state(rng, self.generator, self.noise_generator)
        self.last_checkpoint = path

    def _load_lora(self, path: Path) -> None:
        """The adapter (and its EMA) of a LoRA checkpoint, onto the same base (lora_base.json is checked)."""
        from . import lora

        lora.check_same_base(lora.read_base_note(path), self.lora_note, path)
        lora.load_adapter_state(self.raw, lora.read_lora_file(path / lora.LORA_WEIGHTS_NAME))
        if self.ema is not None:
            ema = lora.read_lora_file(path / lora.EMA_LORA_WEIGHTS_NAME)
            copy_full_into(self.ema.shadow, {n: ema[lora.peft_key(n)] for n in self.ema.shadow})

    def _save_lora(self, tmp: Path) -> None:
        """Rank 0: the adapter files and the base note of a LoRA checkpoint (no base weights)."""
        from . import lora

        config = self.raw.peft_config[lora.ADAPTER]
        lora.write_lora_file(tmp, lora.adapter_state(self.raw), config)
        if self.ema is not None:
            ema = lora.adapter_state(self.raw, self.ema.shadow)
            lora.write_lora_file(tmp, ema, config, lora.EMA_LORA_WEIGHTS_NAME)
        lora.write_base_note(tmp, self.lora_note)

    def save(self) -> Path:
        """Write step_XXXXXX atomically (all ranks take part: FSDP gathers are collectives)."""
        model_state = full_model_state(self.raw) if self.lora_note is None else None
        optim_state = full_optimizer_state(self.raw, self.optimizer)
        ema_state = None
        if self.ema is not None and self.lora_note is None:
            ema_state = full_tensors(self.ema.shadow)
        tmp = ckpt.tmp_dir_for(self.run_dir, self.step)
        if self.info.is_main:
            ckpt.begin(self.run_dir, self.step)
        barrier(self.info)
        ckpt.write_rng(tmp, self.info.rank, _rng_state(self.generator, self.noise_generator))
        barrier(self.info)
        final = self.run_dir / ckpt.step_dir_name(self.step)
        if self.info.is_main:
            if ema_state is not None:
                ema_state = {**model_state, **{k: v.to(model_state[k].dtype) for k, v in ema_state.items()}}
            trainer_state = {
                "step": self.step,
                "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch,
                "optimizer": optim_state,
                "lr": lr_at(self.step, self.cfg),
                "world_size": self.info.world_size,
                "model_config": self.model_config.to_dict(),
            }
            ckpt.write_main(tmp, model_state, ema_state, self.model_config, self.cfg.to_yaml(), trainer_state)
            if self.lora_note is not None:
                self._save_lora(tmp)
            self._write_pipeline(tmp)
            final = ckpt.commit(self.run_dir, self.step, self.cfg.checkpoint.keep_last)
        barrier(self.info)
        self.last_checkpoint = final
        return final

    def pipeline_defaults(self) -> dict[str, Any]:
        """What `ptdit generate` needs to sample this model (written as pipeline.json beside the weights)."""
        cfg = self.cfg
        frames, height, width = self.pixel_size
        world = cfg.data.world or None
        task = {"shapes-video": "video", "shapes-multiview": "multiview"}.get(world or "", cfg.data.kind)
        if cfg.data.world in ("shapes-image", "fashion-mnist"):
            task = "image"
        t = cfg.train
        if t.shift and t.shift_ratio == 0 and t.shift_scale == 1.0:
            shift = None  # the released sqrt(H*W/512^2) rule at the sampled size
        else:  # a fixed ratio: none (1), shift_ratio, or the rule times shift_scale at the trained size
            shift = t.timestep_shift(height, width, frames if task == "video" else 1)
        ae = cfg.autoencoder.spec
        if ae == "identity":
            ae = f"identity:{self.model_config.in_channels}"
        return {
            "task": task,
            "text_encoder": None if cfg.text.encoder.startswith("py:") else cfg.text.encoder,
            "text_max_length": cfg.text.max_length or None,
            "autoencoder": "identity" if ae.startswith("py:") else ae,
            "height": height,
            "width": width,
            "frames": frames,
            "steps": cfg.log.sample_steps,
            "cfg": cfg.log.sample_cfg,
            "shift": shift,
            "world": world,
        }

    def _write_pipeline(self, directory: Path) -> None:
        from ..pipeline import PipelineDefaults

        PipelineDefaults(**self.pipeline_defaults()).write(directory)

    # ------------------------------------------------------------------ data
    def batches(self) -> Iterator[dict]:
        """Endless stream of collated batches from the saved position (what `train_step` takes); keeps
        (epoch, batch_in_epoch) current."""
        t = self.cfg.train
        while True:
            self.order.set_position(self.epoch, self.batch_in_epoch)
            loader = DataLoader(
                IndexedDataset(self.dataset),
                batch_sampler=self.order,
                num_workers=0 if self.cfg.data.preload else t.num_workers,  # preloaded items cost nothing
                collate_fn=collate,
                pin_memory=self.device.type == "cuda",
                worker_init_fn=ignore_stop_signals,  # SIGTERM / SIGINT stop the main loop, not the workers
            )
            for batch in loader:
                self.batch_in_epoch += 1
                yield batch
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0

    # ------------------------------------------------------------------ one micro-batch
    def _encode(self, pixels: Tensor, batch: dict) -> Tensor:
        """x0 = autoencoder.encode(pixels) (B, C', F', h, w), through the latent cache when one is configured."""
        if self.latent_cache is None:
            return self.autoencoder.encode(pixels).float()
        cache = self.latent_cache
        keys = [
            cache.key(k if k is not None else f"{self.dataset_id}:{i}")
            for k, i in zip(batch.get("key", [None] * len(batch["index"])), batch["index"])
        ]
        found = [cache.get(k) for k in keys]
        missing = [j for j, f in enumerate(found) if f is None]
        if missing:
            fresh = self.autoencoder.encode(pixels[missing]).float()
            for j, lat in zip(missing, fresh):
                cache.put(keys[j], lat.cpu())
                found[j] = lat
        cache.hits += len(keys) - len(missing)
        cache.misses += len(missing)
        return torch.stack([f.to(self.device).float() for f in found])

    def _loss(self, batch: dict, interval: LogInterval) -> tuple[Tensor, Tensor]:
        """The micro-batch's loss (a device scalar) and its tau (B,) on the host."""
        t = self.cfg.train
        pixels = batch["pixels"].to(self.device, non_blocking=True)
        B, _, frames, height, width = pixels.shape
        with torch.no_grad():
            x0 = self._encode(pixels, batch)
            captions = list(batch["caption"])
            drop = torch.rand(B, generator=self.generator) < t.caption_dropout
            captions = ["" if d else c for c, d in zip(captions, drop.tolist())]
            emb, mask = self.text_encoder(captions)
            if mask.device.type == "cpu":
                check_text_mask(mask, captions)  # the model's forward does not check (it would sync there)
            else:  # read with the interval's losses (the NaN it would cause is reported as this)
                interval.empty_text |= ~mask.bool().any(dim=1).all()
            emb, mask = emb.to(self.device).float(), mask.to(self.device)
        if self.cost is None:
            self.cost = step_cost(
                self.model_config,
                tuple(int(v) for v in x0.shape[2:]),
                int(mask.shape[1]),
                B * t.grad_accum * self.info.world_size,
            )
        ratio = t.timestep_shift(height, width, frames)
        tau_host = flow.sample_training_tau(
            B,
            ratio,
            generator=self.generator,
            distribution=t.timestep_distribution,
            loc=t.logit_mean,
            scale=t.logit_std,
        )
        noise = torch.randn(x0.shape, generator=self.noise_generator, device=self.noise_generator.device)
        tau = tau_host.to(self.device, non_blocking=True)
        x_t = flow.add_noise(x0, noise, tau)
        target = flow.velocity_target(x0, noise)  # "v-prediction" in the paper = this velocity
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=t.bf16):
            out = self.model(x_t, flow.NUM_TRAIN_TIMESTEPS * tau, emb, mask, return_dict=False)[0]
        loss = F.mse_loss(out[:, : self.model_config.in_channels].float(), target)
        return loss, tau_host

    def train_step(
        self, step: int, batches: Iterator[dict], interval: LogInterval, params: list[Tensor]
    ) -> float:
        """One optimizer step (grad_accum micro-batches of `batches`); adds its loss and grad norm to `interval`
        without reading them. Returns the step's learning rate."""
        t = self.cfg.train
        lr = lr_at(step, self.cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        total, taus = torch.zeros((), device=self.device), []
        for micro in range(t.grad_accum):
            batch = next(batches)
            with no_grad_sync(self.model, self.parallel, sync=micro == t.grad_accum - 1):
                loss, tau = self._loss(batch, interval)
                (loss / t.grad_accum).backward()
            total += loss.detach() / t.grad_accum
            taus.append(tau)
        max_norm = t.grad_clip if t.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        if hasattr(grad_norm, "full_tensor"):
            grad_norm = grad_norm.full_tensor()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.raw, step)
        self.step = step
        interval.add(step, total, grad_norm, taus)
        return lr

    # ------------------------------------------------------------------ the loop
    def run(self, progress: bool | None = None) -> TrainResult:
        cfg, t = self.cfg, self.cfg.train
        main = self.info.is_main
        log = JsonlLog(self.run_dir / LOG_NAME, self.step if self.resume_from else None) if main else None
        show = (cfg.log.progress if progress is None else progress) and main
        bar = None
        if show:
            from tqdm.auto import tqdm

            bar = tqdm(total=t.steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True)
        batches = self.batches()
        params = [p for p in self.raw.parameters() if p.requires_grad]
        start, loss_value = time.perf_counter(), float("nan")
        interval = LogInterval(self.device)
        stop, stopped_by = StopSignals().install(), None  # SIGTERM / SIGINT: finish the step, checkpoint
        try:
            while self.step < t.steps:
                if t.time_limit_s and self._out_of_time(start):
                    break  # the checkpoint and export below are written as at the last step
                stopped_by = agreed_signal(stop.signum, self.info.enabled, self.device)
                if stopped_by:
                    break  # the checkpoint below is written at this step; no export
                step = self.step + 1
                lr = self.train_step(step, batches, interval, params)
                if bar is not None:
                    bar.update(1)
                every = cfg.checkpoint.every
                checkpoint = every and step % every == 0 and step < t.steps
                if step % cfg.log.every == 0 or checkpoint or step == t.steps:
                    loss_value = self._log(interval, lr, log, bar)
                    interval = LogInterval(self.device)
                paused = time.perf_counter()
                if checkpoint:
                    self.save()
                if main and cfg.log.plot_every and step % cfg.log.plot_every == 0:
                    plot_losses(self.run_dir / LOG_NAME, self.run_dir / PLOT_NAME)
                if cfg.log.sample_every and step % cfg.log.sample_every == 0:
                    self.sample_grid()
                interval.paused += time.perf_counter() - paused
            if interval.steps:  # stopped by the time limit or a signal between log steps
                loss_value = self._log(interval, lr_at(self.step, cfg), log, bar)
            if self.last_checkpoint is None or self.last_checkpoint.name != ckpt.step_dir_name(self.step):
                self.save()
            model_dir = None
            if cfg.checkpoint.export and main and not stopped_by:
                model_dir = ckpt.export_model(self.last_checkpoint, self.run_dir / "model")
                self._write_pipeline(model_dir)
                if (
                    cfg.checkpoint.export_pipeline
                ):  # the diffusers layout, as `ptdit export-diffusers` writes it
                    from ..export_diffusers import export

                    export(str(model_dir), self.run_dir / "pipeline", overwrite=True)
            if main and not stopped_by:
                plot_losses(self.run_dir / LOG_NAME, self.run_dir / PLOT_NAME)
            barrier(self.info)
        finally:
            batches.close()  # shuts the DataLoader workers down now, not at interpreter exit
            stop.restore()
            if bar is not None:
                bar.close()
            if log is not None:
                log.close()
        return TrainResult(
            self.step,
            loss_value,
            self.run_dir,
            self.last_checkpoint,
            model_dir,
            time.perf_counter() - start,
            self.model_config,
            stopped_by=stopped_by,
        )

    def _log(self, interval: LogInterval, lr: float, log: JsonlLog | None, bar: Any) -> float:
        """Read the interval (one host sync, one collective), stop on a non-finite value, log its means."""
        loss_sum = all_mean(interval.loss, self.info)
        values = torch.stack(
            [loss_sum, interval.grad, interval.grad_max, interval.bad_loss.float(), interval.bad_grad.float(),
             interval.empty_text.float()]
        ).tolist()  # fmt: skip
        seconds = time.perf_counter() - interval.start - interval.paused
        loss_sum, grad_sum, grad_max, bad_loss, bad_grad, empty_text = values
        n, step = interval.steps, self.step
        if empty_text:
            raise ValueError(
                f"steps {step - n + 1}-{step}: the text encoder gave a caption no token (its attention mask is "
                'all False); every caption, "" included, needs at least one token: check the text encoder'
            )
        if not math.isfinite(loss_sum):
            self._diverged(int(bad_loss) or step, "loss", loss_sum / n)
        if not math.isfinite(grad_sum):
            self._diverged(int(bad_grad) or step, "gradient norm", grad_sum / n)
        loss = loss_sum / n
        if log is None and bar is None:
            return loss
        tau = torch.cat(interval.taus)
        record = {
            "step": step,
            "steps": n,  # optimizer steps in this record; loss and grad_norm are their means
            "loss": loss,
            "lr": lr,
            "grad_norm": grad_sum / n,
            "grad_norm_max": grad_max,
            "tau_mean": float(tau.mean()),
            "tau_min": float(tau.min()),
            "tau_max": float(tau.max()),
            "epoch": self.epoch,
            "seconds": round(
                seconds, 6
            ),  # the interval's training time (checkpoints, plots, samples left out)
            **throughput(self.cost, n, seconds, self.peak_tflops(), self.info.world_size),
        }
        if log is not None:
            log.write(record)
        if bar is not None:
            shown = {"loss": f"{loss:.4f}", "lr": f"{lr:.2e}"}
            if "mfu" in record:
                shown.update(
                    {"tok/s": f"{record['tokens_per_s']:,.0f}", "MFU": f"{100 * record['mfu']:.1f}%"}
                )
            bar.set_postfix(ordered_dict=shown)  # in this order (keyword arguments would be sorted)
        return loss

    def peak_tflops(self) -> float:
        """train.peak_tflops, or the dense matmul rate of the device in the compute dtype (measured once)."""
        if self.cfg.train.peak_tflops > 0:
            return self.cfg.train.peak_tflops
        return measured_peak_tflops(self.device, torch.bfloat16 if self.cfg.train.bf16 else torch.float32)

    def _out_of_time(self, start: float) -> bool:
        """train.time_limit_s spent (rank 0's clock decides, so all ranks stop at the same step)."""
        late = time.perf_counter() - start >= self.cfg.train.time_limit_s
        return bool(broadcast_object(late, self.info)) if self.info.enabled else late

    def _diverged(self, step: int, what: str, value: float) -> None:
        kept = (
            f"the last good checkpoint is {self.last_checkpoint}"
            if self.last_checkpoint
            else "no checkpoint was written yet"
        )
        raise TrainingDiverged(
            f"step {step}: the {what} is {value}; training stopped without writing a checkpoint from this state "
            f"({kept}). Lower train.lr, keep train.grad_clip > 0 or check the data, then resume."
        )

    # ------------------------------------------------------------------ samples
    @torch.no_grad()
    def sample_grid(self) -> Path | None:
        """A PNG grid of log.sample_prompts (rows) x frames (columns) with the current (raw) weights.

        With FSDP2 every rank takes part in the forward passes; rank 0 writes the file.
        """
        if not self.info.is_main and self.parallel != "fsdp":
            return None
        from .samples import sample_grid

        self.raw.eval()
        try:
            return sample_grid(self, self.run_dir / "samples" / f"{ckpt.step_dir_name(self.step)}.png")
        finally:
            self.raw.train()


def train(
    cfg: TrainConfig,
    dataset: Dataset | None = None,
    text_encoder: Any = None,
    autoencoder: nn.Module | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train from a TrainConfig; the optional objects replace what the data/text/autoencoder sections build."""
    trainer = Trainer(cfg, dataset=dataset, text_encoder=text_encoder, autoencoder=autoencoder)
    try:
        return trainer.run(progress)
    finally:
        shutdown(trainer.info)

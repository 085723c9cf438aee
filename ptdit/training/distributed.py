"""Process groups, DDP / FSDP2 wrapping, full state dicts and the deterministic per-rank data sharding.

Launch with torchrun (`torchrun --nproc_per_node N -m ptdit train CONFIG.yaml`): RANK / WORLD_SIZE /
LOCAL_RANK come from the environment; the backend is nccl on CUDA and gloo on CPU.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistInfo:
    """Join the torchrun process group if WORLD_SIZE > 1 (or reuse one that is already initialised)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), True)


def shutdown(info: DistInfo) -> None:
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_mean(x: Tensor, info: DistInfo) -> Tensor:
    """Mean of a tensor over ranks (identity on one process)."""
    if info.enabled:
        x = x.clone()
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        x /= info.world_size
    return x


def broadcast_object(obj, info: DistInfo):
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap_model(model: nn.Module, mode: str, info: DistInfo, device: torch.device) -> nn.Module:
    """mode none | ddp | fsdp. FSDP2 shards every block, then the root (in place); DDP wraps the module."""
    if mode == "fsdp":
        from torch.distributed.fsdp import fully_shard

        # PTDiT returns a cropped view of its output; the trainer never modifies it in place
        warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
        for block in model.blocks:
            fully_shard(block)
        fully_shard(model)
        return model
    if mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = (
            [device.index if device.index is not None else info.local_rank] if device.type == "cuda" else None
        )
        return DistributedDataParallel(model, device_ids=ids)
    return model


@contextmanager
def no_grad_sync(wrapped: nn.Module, mode: str, sync: bool) -> Iterator[None]:
    """Skip the gradient all-reduce on micro-batches that are not the last of an accumulation."""
    if sync or mode == "none":
        yield
    elif mode == "ddp":
        with wrapped.no_sync():
            yield
    else:  # fsdp
        wrapped.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            wrapped.set_requires_gradient_sync(True)


def _options(**kwargs):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(**kwargs)


def full_model_state(model: nn.Module) -> dict[str, Tensor]:
    """The full (unsharded) CPU state dict; with FSDP2 it is complete on rank 0 only (a collective)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_options(full_state_dict=True, cpu_offload=True))


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(
        model, optimizer, options=_options(full_state_dict=True, cpu_offload=True)
    )


def load_full_model_state(model: nn.Module, state: dict[str, Tensor], info: DistInfo) -> None:
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    set_model_state_dict(model, state, options=_options(full_state_dict=True, strict=True))


def load_full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=_options(full_state_dict=True))


def full_tensors(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """Gather DTensors (FSDP2 shards) into full CPU tensors; plain tensors are copied to CPU (a collective)."""
    out = {}
    for name, t in tensors.items():
        if hasattr(t, "full_tensor"):
            t = t.full_tensor()
        out[name] = t.detach().cpu().clone()
    return out


@torch.no_grad()
def copy_full_into(targets: dict[str, Tensor], full: dict[str, Tensor]) -> None:
    """Copy full tensors into (possibly sharded) targets: each rank keeps its own shard."""
    from torch.distributed.tensor import distribute_tensor

    for name, t in targets.items():
        src = full[name]
        if hasattr(t, "device_mesh"):
            shard = distribute_tensor(src.to(t.to_local().device, t.dtype), t.device_mesh, t.placements)
            t.to_local().copy_(shard.to_local())
        else:
            t.copy_(src.to(t.device, t.dtype))

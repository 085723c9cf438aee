"""LoRA weights for `PTDiTPipeline` in diffusers' format: `load_lora_weights`, `save_lora_weights`, `fuse_lora`,
`unfuse_lora`, `set_adapters`, ... as on SanaPipeline (LoRA on the transformer only).

A LoRA file is `pytorch_lora_weights.safetensors` with PEFT keys prefixed by the component,
`transformer.blocks.0.text_attn.to_k.lora_A.weight`, and the adapter's LoraConfig in its metadata. It goes into the
transformer through diffusers' PEFT integration (`PTDiT` is a `PeftAdapterMixin`); `peft` is a core dependency.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from diffusers.loaders.lora_base import LoraBaseMixin, _fetch_state_dict


class PTDiTLoraLoaderMixin(LoraBaseMixin):
    """Load and save LoRA layers of the pipeline's `transformer` (a `PTDiT`)."""

    _lora_loadable_modules = ["transformer"]
    transformer_name = "transformer"

    @classmethod
    def lora_state_dict(
        cls, pretrained_model_name_or_path_or_dict: str | os.PathLike | dict[str, torch.Tensor], **kwargs: Any
    ) -> dict[str, torch.Tensor] | tuple[dict[str, torch.Tensor], dict | None]:
        """The LoRA state dict of a local folder (`weight_name=` picks the file), a .safetensors file's folder, or
        a dict. With `return_lora_metadata=True`: (state dict, metadata)."""
        return_metadata = kwargs.pop("return_lora_metadata", False)
        use_safetensors = kwargs.pop("use_safetensors", None)
        state_dict, metadata = _fetch_state_dict(
            pretrained_model_name_or_path_or_dict=pretrained_model_name_or_path_or_dict,
            weight_name=kwargs.pop("weight_name", None),
            use_safetensors=True if use_safetensors is None else use_safetensors,
            local_files_only=kwargs.pop("local_files_only", True),
            cache_dir=kwargs.pop("cache_dir", None),
            force_download=False,
            proxies=None,
            token=None,
            revision=None,
            subfolder=kwargs.pop("subfolder", None),
            user_agent={"file_type": "attn_procs_weights", "framework": "pytorch"},
            allow_pickle=use_safetensors is None,
        )
        return (state_dict, metadata) if return_metadata else state_dict

    def load_lora_weights(
        self,
        pretrained_model_name_or_path_or_dict: str | os.PathLike | dict[str, torch.Tensor],
        adapter_name: str | None = None,
        hotswap: bool = False,
        **kwargs: Any,
    ) -> None:
        """Add the LoRA of a folder / file / state dict to the transformer as adapter `adapter_name`."""
        if isinstance(pretrained_model_name_or_path_or_dict, dict):
            pretrained_model_name_or_path_or_dict = pretrained_model_name_or_path_or_dict.copy()
        low_cpu_mem_usage = kwargs.pop("low_cpu_mem_usage", False)
        kwargs["return_lora_metadata"] = True
        state_dict, metadata = self.lora_state_dict(pretrained_model_name_or_path_or_dict, **kwargs)
        if not state_dict or not all("lora" in key for key in state_dict):
            raise ValueError(
                "not a LoRA checkpoint: every weight name must contain 'lora' (e.g. "
                "transformer.blocks.0.text_attn.to_k.lora_A.weight); save one with save_lora_weights"
            )
        self.load_lora_into_transformer(
            state_dict,
            transformer=self.transformer,
            adapter_name=adapter_name,
            metadata=metadata,
            _pipeline=self,
            low_cpu_mem_usage=low_cpu_mem_usage,
            hotswap=hotswap,
        )

    @classmethod
    def load_lora_into_transformer(
        cls,
        state_dict: dict[str, torch.Tensor],
        transformer: torch.nn.Module,
        adapter_name: str | None = None,
        _pipeline: Any = None,
        low_cpu_mem_usage: bool = False,
        hotswap: bool = False,
        metadata: dict | None = None,
    ) -> None:
        transformer.load_lora_adapter(
            state_dict,
            network_alphas=None,
            adapter_name=adapter_name,
            metadata=metadata,
            _pipeline=_pipeline,
            low_cpu_mem_usage=low_cpu_mem_usage,
            hotswap=hotswap,
        )

    @classmethod
    def save_lora_weights(
        cls,
        save_directory: str | os.PathLike,
        transformer_lora_layers: dict[str, torch.nn.Module | torch.Tensor] | None = None,
        is_main_process: bool = True,
        weight_name: str | None = None,
        save_function: Callable | None = None,
        safe_serialization: bool = True,
        transformer_lora_adapter_metadata: dict | None = None,
    ) -> None:
        """Write `transformer_lora_layers` (e.g. `peft.utils.get_peft_model_state_dict(pipe.transformer)`) as
        `save_directory/pytorch_lora_weights.safetensors`, with the adapter's LoraConfig as metadata."""
        if not transformer_lora_layers:
            raise ValueError(
                "save_lora_weights needs transformer_lora_layers, e.g. "
                "peft.utils.get_peft_model_state_dict(pipe.transformer)"
            )
        cls._save_lora_weights(
            save_directory=save_directory,
            lora_layers={cls.transformer_name: transformer_lora_layers},
            lora_metadata={cls.transformer_name: transformer_lora_adapter_metadata},
            is_main_process=is_main_process,
            weight_name=weight_name,
            save_function=save_function,
            safe_serialization=safe_serialization,
        )

    def fuse_lora(
        self,
        components: list[str] | None = None,
        lora_scale: float = 1.0,
        safe_fusing: bool = False,
        adapter_names: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Merge the LoRA into the transformer's weights (scaled by `lora_scale`)."""
        super().fuse_lora(
            components=components or ["transformer"],
            lora_scale=lora_scale,
            safe_fusing=safe_fusing,
            adapter_names=adapter_names,
            **kwargs,
        )

    def unfuse_lora(self, components: list[str] | None = None, **kwargs: Any) -> None:
        """Undo `fuse_lora`."""
        super().unfuse_lora(components=components or ["transformer"], **kwargs)

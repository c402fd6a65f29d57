"""Choose the backbone's weight dtype: bf16 where the hardware multiplies bf16 natively and faster than fp32."""

from __future__ import annotations

import torch

from tasktune.provenance import cpu_info

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def cpu_has_bf16() -> bool:
    return bool({"avx512_bf16", "amx_bf16"} & cpu_info()[1])


def cpu_prefers_bf16() -> bool:
    """bf16 instructions, and bf16 matmuls measured at least MARGIN faster than fp32 on this machine (once,
    cached): a CPU that lists avx512_bf16 may still run them slower than fp32 (backbone/matmul_speed.py)."""
    if not cpu_has_bf16():
        return False
    from tasktune.backbone.matmul_speed import cpu_matmul_speed

    return cpu_matmul_speed().bf16_wins


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto` -> bf16 on CUDA with bf16 support, or on a CPU with AVX512-BF16/AMX where bf16 matmuls measured
    faster than fp32 (cpu_prefers_bf16); else fp32."""
    if name != "auto":
        if name not in DTYPES:
            from tasktune import TasktuneError

            raise TasktuneError(f"unknown dtype '{name}': use auto, {', '.join(sorted(DTYPES))}")
        return DTYPES[name]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if cpu_prefers_bf16() else torch.float32


PRECISIONS = ("auto", "fp32", "bf16-mixed")


def compute_context(precision: str, device: torch.device):
    """Autocast for methods that train backbone weights: the weights stay fp32 (master copies the
    optimizer updates), matmuls run in bf16 (`bf16-mixed`). `auto` picks bf16-mixed where
    `resolve_dtype` picks bf16."""
    from contextlib import nullcontext

    if precision not in PRECISIONS:
        from tasktune import TasktuneError

        raise TasktuneError(f"unknown precision '{precision}': use {', '.join(PRECISIONS)}")
    if precision == "fp32" or (precision == "auto" and resolve_dtype("auto", device) != torch.bfloat16):
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)

"""Where the work runs and in what precision: the device from an argument, its name for a record,
waiting for its queued work, and the one table from a precision setting to an autocast dtype.

    device = get_device(None)          # cuda if there is one, else cpu
    autocast_dtype("auto", device)     # bfloat16 / float16 on a GPU, None (float32) on a CPU
    fast_precisions(device)            # ["fp32", "bf16", ...]: what is worth measuring here

Mixed precision follows Micikevicius et al., "Mixed Precision Training" (arXiv 1710.03740): float16
needs a gradient scaler, bfloat16 (same exponent range as float32) does not.
"""
from __future__ import annotations

import platform

import torch

# The one precision table: a precision setting -> the autocast dtype (None: float32, no autocast).
PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def default_device() -> torch.device:
    """`cuda` when a GPU is visible, else `cpu`."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def get_device(device: str | torch.device | None = None) -> torch.device:
    """THE device from an argument: None (or "") -> `default_device()`; a name ("cpu", "cuda:1")
    or a `torch.device` -> that device. Raises RuntimeError (torch's) on a name it does not know."""
    return torch.device(device) if device else default_device()


def device_name(device: str | torch.device) -> str:
    """A device in words for a run record: the GPU's name, or "CPU (<processor>, <n> threads)"."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def synchronize(device: str | torch.device) -> None:
    """Wait until the device has run its queued work (a no-op on the CPU, which runs eagerly)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast_dtype(precision: str, device: str | torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision ("auto" or a key of `PRECISIONS`); None for float32.

    "auto": None on a CPU; on a GPU bfloat16 where supported, else float16. Raises KeyError on an
    unknown setting (`TrainConfig` validates it first)."""
    device = torch.device(device)
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return PRECISIONS[precision]


def fast_precisions(device: str | torch.device) -> list[str]:
    """The precisions worth measuring here: fp32 always; bf16 where the device computes it natively
    (an Ampere or newer GPU, a CPU with AVX-512 bf16); fp16 on GPUs."""
    device = torch.device(device)
    if device.type == "cuda":
        return ["fp32", "bf16", "fp16"] if torch.cuda.is_bf16_supported() else ["fp32", "fp16"]
    return ["fp32", "bf16"] if torch.ops.mkldnn._is_mkldnn_bf16_supported() else ["fp32"]


__all__ = ["PRECISIONS", "default_device", "get_device", "device_name", "synchronize",
           "autocast_dtype", "fast_precisions"]

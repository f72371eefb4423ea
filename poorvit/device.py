"""Where the work runs and in what precision: the device from an argument, its name for a record,
waiting for its queued work, and the one table from a precision setting to an autocast dtype.

    device = get_device(None)          # $POORVIT_DEVICE, else cuda if there is one, else cpu
    autocast_dtype("auto", device)     # bfloat16 on Ampere+, float16 on older GPUs, None on a CPU
    fast_precisions(device)            # ["fp32", "bf16", ...]: what is worth measuring here
    configure_backends(device)         # TF32 on Ampere+ (off before): the flags, for a run record

Mixed precision follows Micikevicius et al., "Mixed Precision Training" (arXiv 1710.03740): float16
needs a gradient scaler, bfloat16 (same exponent range as float32) does not. Native bfloat16 (and
TF32) tensor cores start at compute capability 8.0 (Ampere); `torch.cuda.is_bf16_supported()` also
answers True where bfloat16 is only emulated (a T4, 7.5), so the choice here reads the capability.
"""
from __future__ import annotations

import os
import platform
from typing import Mapping

import torch
import torch.distributed as dist

# The one precision table: a precision setting -> the autocast dtype (None: float32, no autocast).
PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def default_device() -> torch.device:
    """`$POORVIT_DEVICE` when set (the tests set `cpu`: tests/conftest.py), else `cuda` when a GPU
    is visible, else `cpu`."""
    if os.environ.get("POORVIT_DEVICE", "").strip():
        return torch.device(os.environ["POORVIT_DEVICE"].strip())
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


def ampere_or_newer(device: str | torch.device) -> bool:
    """True for a CUDA device of compute capability >= 8.0 (Ampere: A100, RTX 30xx, L4, H100...):
    native bfloat16 and TF32 tensor cores. False on a CPU and on older GPUs (a T4 is 7.5, a V100
    7.0), where bfloat16 is at best emulated."""
    device = torch.device(device)
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0)


def autocast_dtype(precision: str, device: str | torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision ("auto" or a key of `PRECISIONS`); None for float32.

    "auto": None on a CPU; on a GPU bfloat16 where native (`ampere_or_newer`), else float16 (with
    a gradient scaler: `train.TrainStep`). Raises KeyError on an unknown setting (`TrainConfig`
    validates it first)."""
    device = torch.device(device)
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if ampere_or_newer(device) else torch.float16
    return PRECISIONS[precision]


def fast_precisions(device: str | torch.device) -> list[str]:
    """The precisions worth measuring here: fp32 always; bf16 where the device computes it natively
    (`ampere_or_newer`, a CPU with AVX-512 bf16); fp16 on GPUs."""
    device = torch.device(device)
    if device.type == "cuda":
        return ["fp32", "bf16", "fp16"] if ampere_or_newer(device) else ["fp32", "fp16"]
    return ["fp32", "bf16"] if torch.ops.mkldnn._is_mkldnn_bf16_supported() else ["fp32"]


def backend_flags() -> dict[str, bool]:
    """The `torch.backends` settings that change a GPU run's numbers or speed, for a run record:
    TF32 in matmuls and in cuDNN convolutions, cuDNN's autotuner."""
    return {"tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "tf32_cudnn": torch.backends.cudnn.allow_tf32,
            "cudnn_benchmark": torch.backends.cudnn.benchmark}


def configure_backends(device: str | torch.device) -> dict[str, bool]:
    """THE place that sets `torch.backends` for a run on `device`, and returns `backend_flags()`.

    On a GPU: TF32 (10-bit mantissa inputs, float32 accumulation) for float32 matmuls and
    convolutions on Ampere or newer, where tensor cores compute it (the float32 parts of a
    mixed-precision run, and all of an fp32 run); off on older GPUs, which have no TF32. cuDNN's
    autotuner stays off (the patch conv is one fixed shape; off keeps runs repeatable). On a CPU
    nothing is changed."""
    device = torch.device(device)
    if device.type == "cuda":
        tf32 = ampere_or_newer(device)
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = False
    return backend_flags()


# ---- several processes (torchrun) ----------------------------------------------------------------

def all_sum(*values: float, device: torch.device) -> list[float]:
    """`values` summed over the processes of a distributed run (as they are in a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def distributed_plan(env: Mapping[str, str], device: str | torch.device | None,
                     n_cuda: int) -> tuple[torch.device, str] | None:
    """(device, process-group backend) of this process under torchrun; None outside it (no
    `WORLD_SIZE` above 1 in `env`). A pure function of torchrun's variables (`env`), the `device`
    asked for (None: a GPU per process where there are enough) and the GPUs visible (`n_cuda`).

    `cpu` (asked for, or no GPU visible) -> gloo. A GPU -> NCCL on `cuda:LOCAL_RANK` (one GPU per
    process: NCCL refuses two processes on one GPU). Raises ValueError when GPUs are visible (or
    asked for) but fewer than the process's LOCAL_RANK needs."""
    if int(env.get("WORLD_SIZE", "1")) <= 1:
        return None
    local = int(env.get("LOCAL_RANK", "0"))
    wanted = torch.device(device) if device else torch.device("cuda" if n_cuda else "cpu")
    if wanted.type != "cuda":
        return wanted, "gloo"
    index = local if wanted.index is None else wanted.index
    if index >= n_cuda:
        raise ValueError(f"torchrun process {local} needs cuda:{index}, but {n_cuda} GPU(s) are "
                         f"visible: start at most {n_cuda} process(es) per node "
                         f"(--nproc_per_node), or pass --device cpu")
    return torch.device("cuda", index), "nccl"


def init_distributed(device: str | torch.device | None = None
                 ) -> tuple[int, int, torch.device | None]:
    """(rank, world size, device) under torchrun, the process group created (on the device chosen
    by `distributed_plan`, set first); (0, 1, None) otherwise."""
    plan = distributed_plan(os.environ, device, torch.cuda.device_count())
    if plan is None:
        return 0, 1, None
    device, backend = plan
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size(), device


__all__ = ["PRECISIONS", "default_device", "get_device", "device_name", "synchronize",
           "ampere_or_newer", "autocast_dtype", "fast_precisions", "backend_flags",
           "configure_backends", "all_sum", "distributed_plan", "init_distributed"]

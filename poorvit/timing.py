"""Timing: the one synchronized timer, where the time of a training step goes (data, forward,
backward, optimizer), the operators that take it, and a device's practical matmul ceiling.

The study times one step of its baseline on a GPU and finds the backward pass taking about three
times the forward (Wu, arXiv 2501.06220; `poorvit.study.STEP_TIME_MS`). This module measures the
same split on whatever device runs it, and what changes it:

    with Timer(device) as t:                # THE timer: synchronizes the device on enter and exit
        model(x)
    t.ms                                    # milliseconds
    step = BenchStep(get_config("paper"), train_cfg, data.train_x, data.train_y, device)
    t = time_step(step, steps=5)            # StepTimes: t.parts_ms {"data", "forward", ...}
    ops = top_operators(step)               # torch.profiler: the operators that take the time
    peak = matmul_peak(device)              # FLOP/s of one large matmul: the practical ceiling

`BenchStep` is `train.TrainStep` (the step `train()` takes: autocast, label-smoothed cross-entropy,
gradient scaler for float16, gradient clipping, AdamW over `param_groups`) with its own batches and
the levers chapter 9 measures, cut into four phases. On a GPU the work is queued and runs later, so
`Timer` synchronizes before reading the clock; without it the forward would look free and the
optimizer would pay for everything queued before it.
"""
from __future__ import annotations

import contextlib
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Iterator

import torch
import torch.nn as nn

from .attention import explicit_attention
from .augment import TrainTransform, per_image_loader
from .config import TrainConfig, ViTConfig
from .data import DeviceLoader
from .device import device_name, get_device, synchronize
from .model import ViT
from .train import TrainStep

PHASES = ("data", "forward", "backward", "optimizer")


class Timer:
    """THE synchronized timer: `with Timer(device) as t: ...`, then `t.ms` (milliseconds, float).

    Waits for the device's queued work on enter and on exit (`device.synchronize`; a no-op on the
    CPU), so that the time of the work inside the block is charged to it. `t.ms` is NaN until the
    block has ended. `device`: None is `device.get_device`'s default (a GPU where there is one)."""

    def __init__(self, device: str | torch.device | None = None):
        self.device = get_device(device)
        self.ms = float("nan")

    def __enter__(self) -> Timer:
        synchronize(self.device)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        self.ms = 1e3 * (time.perf_counter() - self._t0)


def _forever(loader) -> Iterator:
    """Batches of `loader`, epoch after epoch (calling `set_epoch` where the loader has it)."""
    epoch = 0
    while True:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        yield from loader
        epoch += 1


class BenchStep:
    """`train.TrainStep` on its own batches, in four phases that can be timed one by one:
    `data()`, `forward(x, y)` (the loss), `backward(loss)`, `optimizer()` (gradient clipping as
    `train_cfg.grad_clip` says, the step, zero_grad); calling the object runs one whole step.

    The levers: `fused` / `foreach` (AdamW's implementation, see `optim.adamw_kind`; None: the
    package default), `attention` ("sdpa" fused kernels or "explicit" softmax(q k^T) v, through
    `attention.explicit_attention`), `loader` ("device": the device-resident `DeviceLoader`;
    "dataloader": torchvision transforms image by image in a DataLoader with `workers` processes,
    `augment.per_image_loader`; batch mixing is left out there),
    `channels_last` (memory format of the images and the patch conv), `train_cfg.precision` and
    `train_cfg.compile`. `model` replaces the `ViT(model_cfg)` (the benchmark passes timm's). Only
    the first `n_images` of `images` (uint8 (n, 3, H, W)) and `labels` (n,) are used (default:
    enough for 4 batches). `backend`: torch.compile's backend when compiled (`TrainStep`). Raises
    ValueError on an unknown `attention` or `loader`.
    """

    def __init__(self, model_cfg: ViTConfig, train_cfg: TrainConfig, images: torch.Tensor,
                 labels: torch.Tensor, device: torch.device | str | None = None, *,
                 fused: bool | None = None, attention: str = "sdpa", foreach: bool | None = None,
                 loader: str = "device", channels_last: bool = False, workers: int = 0,
                 model: nn.Module | None = None, n_images: int | None = None,
                 backend: str = "inductor"):
        if attention not in ("sdpa", "explicit") or loader not in ("device", "dataloader"):
            raise ValueError(f"attention must be 'sdpa' or 'explicit' (got {attention!r}), "
                             f"loader 'device' or 'dataloader' (got {loader!r})")
        self.device = get_device(device)
        self.batch_size = train_cfg.batch_size
        torch.manual_seed(train_cfg.seed)
        model = (model if model is not None else ViT(model_cfg)).to(self.device).train()
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        model.to(memory_format=self.memory_format)
        self.step = TrainStep(model, train_cfg, self.device, fused=fused, backend=backend)
        if foreach is not None:                           # AdamW reads it per group at every step
            for group in self.opt.param_groups:
                group["foreach"] = foreach
        self.explicit = attention == "explicit"
        self.batches = _forever(self._loader(model_cfg, train_cfg, images, labels, loader, workers,
                                             n_images))

    def _loader(self, model_cfg: ViTConfig, train_cfg: TrainConfig, images: torch.Tensor,
                labels: torch.Tensor, loader: str, workers: int, n_images: int | None):
        n = min(len(labels), n_images or 4 * self.batch_size)
        if loader == "device":
            transform = TrainTransform.from_config(train_cfg, model_cfg.n_classes)
            return DeviceLoader(images[:n], labels[:n], self.batch_size, True, self.device,
                                train_cfg.seed, transform)
        return per_image_loader(images[:n], labels[:n], train_cfg, self.batch_size, workers,
                                pin_memory=self.device.type == "cuda")

    @property
    def model(self) -> nn.Module:
        return self.step.model

    @property
    def net(self) -> nn.Module:
        return self.step.net

    @property
    def opt(self) -> torch.optim.Optimizer:
        return self.step.optimizer

    @property
    def dtype(self) -> torch.dtype | None:
        return self.step.dtype

    def data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch on the device: images (B, 3, H, W) float in the memory format, labels (B,)
        or soft targets (B, n_classes)."""
        x, y = next(self.batches)
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        return x, y.to(self.device, non_blocking=True)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss (float32 scalar) of `TrainStep.forward`, on the explicit path if asked."""
        attention = explicit_attention(self.model) if self.explicit else contextlib.nullcontext()
        with attention:
            return self.step.forward(x, y)[0]

    def backward(self, loss: torch.Tensor) -> None:
        self.step.backward(loss)

    def optimizer(self) -> None:
        self.step.optimizer_step()

    def __call__(self) -> torch.Tensor:
        x, y = self.data()
        loss = self.forward(x, y)
        self.backward(loss)
        self.optimizer()
        return loss


@dataclass
class StepTimes:
    """One measured setting: per-phase times of a training step (medians over the timed steps)."""

    label: str
    device: str
    batch_size: int
    parts_ms: dict                       # phase -> median ms per step
    first_step_ms: float                 # the first step (allocation, autotuning, compiling)
    per_step: list = field(default_factory=list)   # every timed step: {phase: ms}
    lever: str = ""                      # what this setting changes (chapter 9's `measure_levers`)
    overrides: dict = field(default_factory=dict)  # ... and how, e.g. {"precision": "bf16"}

    @property
    def precision(self) -> str:
        return self.overrides.get("precision", "fp32")

    @property
    def step_ms(self) -> float:
        """The step time: the sum of the per-phase medians (so the parts add up to it exactly)."""
        return sum(self.parts_ms.values())

    @property
    def images_per_s(self) -> float:
        return 1e3 * self.batch_size / self.step_ms

    def row(self) -> dict:
        return {"setting": self.label, "batch": self.batch_size, "step ms": self.step_ms,
                "images/s": self.images_per_s, **{f"{k} ms": v for k, v in self.parts_ms.items()}}


def _timed(step: BenchStep) -> dict:
    """One training step, each phase under its own `Timer`: {phase: ms}."""
    ms = {}
    with Timer(step.device) as t:
        x, y = step.data()
    ms["data"] = t.ms
    with Timer(step.device) as t:
        loss = step.forward(x, y)
    ms["forward"] = t.ms
    with Timer(step.device) as t:
        step.backward(loss)
    ms["backward"] = t.ms
    with Timer(step.device) as t:
        step.optimizer()
    ms["optimizer"] = t.ms
    return ms


def time_steps(settings: dict, steps: int = 5, warmup: int = 1) -> dict:
    """Time several `BenchStep`s side by side ({label: step} -> {label: StepTimes}): each round runs
    one step of every setting in turn, so that a change in the machine's load falls on all of them
    alike. The first `warmup` rounds are not counted; each phase keeps its median over the `steps`
    timed rounds. Raises ValueError unless steps >= 1 and warmup >= 0."""
    if steps < 1 or warmup < 0:
        raise ValueError(f"need steps >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}")
    records, first = {k: [] for k in settings}, {}
    for i in range(warmup + steps):
        for label, step in settings.items():
            ms = _timed(step)
            first.setdefault(label, sum(ms.values()))
            if i >= warmup:
                records[label].append(ms)
    return {label: StepTimes(label, device_name(step.device), step.batch_size,
                             {p: statistics.median(r[p] for r in records[label]) for p in PHASES},
                             first[label], records[label]) for label, step in settings.items()}


def time_step(step: BenchStep, steps: int = 5, warmup: int = 1, label: str = "") -> StepTimes:
    """Run `warmup` + `steps` training steps of one setting, timing each phase (`time_steps`)."""
    return time_steps({label: step}, steps, warmup)[label]


@contextlib.contextmanager
def _quiet_fd2():
    """Hide what the profiler's C++ library writes straight to file descriptor 2 (start/stop)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def top_operators(step: BenchStep, steps: int = 2, warmup: int = 1, n: int = 10) -> list[dict]:
    """The `n` operators with the most self time over `steps` steps, with `torch.profiler`.

    Each row: operator, ms per step (self time: the operator's own work, not its callees), calls
    per step, and share of all operators' self time. On a GPU: the kernels' time on the device.
    """
    from torch.profiler import ProfilerActivity, profile, record_function
    for _ in range(warmup):
        step()
    cuda = step.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with _quiet_fd2(), profile(activities=activities) as prof:
        for _ in range(steps):
            with record_function("phase: data"):
                x, y = step.data()
            with record_function("phase: forward"):
                loss = step.forward(x, y)
            with record_function("phase: backward"):
                step.backward(loss)
            with record_function("phase: optimizer"):
                step.optimizer()
        synchronize(step.device)
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if not e.key.startswith("phase: ")   # operators,
              and (not cuda or e.device_type == torch.autograd.DeviceType.CPU)]   # not kernels
    total = sum(getattr(e, key) for e in events) or 1.0
    events.sort(key=lambda e: getattr(e, key), reverse=True)
    return [{"operator": e.key, "ms per step": getattr(e, key) / 1e3 / steps,
             "calls per step": e.count / steps, "share": getattr(e, key) / total}
            for e in events[:n]]


def matmul_size(device: torch.device | str | None = None) -> int:
    """The side n of `matmul_peak`'s square matmuls: 8192 on a GPU, 2048 on a CPU (large enough to
    reach the device's ceiling, small enough to time in about a second)."""
    return 8192 if get_device(device).type == "cuda" else 2048


def matmul_peak(device: torch.device | str | None = None,
                dtype: torch.dtype | None = torch.float32, n: int | None = None,
                repeats: int = 5) -> float:
    """FLOP/s of the fastest of `repeats` (n x n) @ (n x n) matmuls: 2 n^3 FLOPs each. A practical
    ceiling for a model made of matmuls (n: `matmul_size(device)` unless given). `dtype`: the
    operands' dtype; None is float32, so `device.PRECISIONS[precision]` can be passed as it is.
    `device`: None is `device.get_device`'s default."""
    device = get_device(device)
    n = n or matmul_size(device)
    dtype = dtype or torch.float32
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        with Timer(device) as t:
            a @ b
        best = min(best, t.ms / 1e3)
    return 2 * n ** 3 / best


__all__ = ["Timer", "PHASES", "BenchStep", "StepTimes", "time_steps", "time_step",
           "top_operators", "matmul_size", "matmul_peak"]

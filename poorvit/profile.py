"""Where the time of a training step goes: data, forward, backward, optimizer; the operators; FLOP utilisation.

The study times one step of its baseline on a GPU and finds the backward pass taking about three times
the forward (Wu, arXiv 2501.06220; `poorvit.study.STEP_TIME_MS`). This module measures the same split on
whatever device runs it, and what changes it:

    step = TrainingStep(get_config("paper"), train_cfg, data.train_x, data.train_y, device)
    t = time_step(step, steps=5)            # StepTimes: t.parts_ms {"data", "forward", "backward", "optimizer"}
    ops = top_operators(step)               # torch.profiler: the operators that take the time
    peak = matmul_peak(device)              # FLOP/s of one large matmul: the device's practical ceiling
    mfu(train_flops(cfg, 64), t.step_ms / 1e3, peak)       # model FLOP utilisation, 0..1

`TrainingStep` is `train()`'s step (autocast, label-smoothed cross-entropy, gradient scaler for float16,
AdamW over `param_groups`) cut into its four phases. On a GPU the work is queued and runs later, so each
phase ends with `torch.cuda.synchronize()` before the clock is read; without it the forward would look
free and the optimizer would pay for everything queued before it.
"""
from __future__ import annotations

import contextlib
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from .attention import explicit_attention
from .augment import TrainTransform
from .config import TrainConfig, ViTConfig, with_overrides
from .data import MEAN, STD, DeviceLoader
from .model import ViT, flops_per_image
from .optim import make_optimizer
from .runs import device_name
from .study import STEP_TIME_MS
from .train import autocast_dtype

PHASES = ("data", "forward", "backward", "optimizer")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# How much to measure at each scale: the `paper` model at a batch a CPU steps in well under a second at
# `smoke`; the study's batch of 256 on a GPU. `compile`: include torch.compile (tens of seconds to compile).
PLANS = {
    "smoke": dict(batch_size=32, steps=3, warmup=1, compile=False),
    "demo": dict(batch_size=256, steps=10, warmup=3, compile=True),
    "paper": dict(batch_size=256, steps=30, warmup=5, compile=True),
}


def synchronize(device: torch.device | str) -> None:
    """Wait until the device has finished all queued work (a no-op on the CPU, which runs eagerly)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fast_precisions(device: torch.device | str) -> list[str]:
    """The precisions worth measuring here: fp32 always; bf16 where the device computes it natively
    (an Ampere or newer GPU, a CPU with AVX-512); fp16 on GPUs."""
    device = torch.device(device)
    if device.type == "cuda":
        return ["fp32", "bf16", "fp16"] if torch.cuda.is_bf16_supported() else ["fp32", "fp16"]
    return ["fp32", "bf16"] if torch.ops.mkldnn._is_mkldnn_bf16_supported() else ["fp32"]


class _PerImage(torch.utils.data.Dataset):
    """The usual torchvision pipeline: one image at a time, uint8 (3, H, W) -> normalized float."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig):
        from torchvision.transforms import v2
        tf = [v2.RandomCrop(images.shape[-1], padding=cfg.crop_pad)] if cfg.crop_pad else []
        tf += [v2.RandomHorizontalFlip()] if cfg.flip else []
        tf += [v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)] if cfg.autoaugment else []
        tf += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
        tf += [v2.RandomErasing(cfg.random_erasing)] if cfg.random_erasing else []
        self.images, self.labels, self.tf = images, labels, v2.Compose(tf)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.tf(self.images[i]), self.labels[i]


def _forever(loader):
    epoch = 0
    while True:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        yield from loader
        epoch += 1


class TrainingStep:
    """`train()`'s step, in four phases that can be timed one by one: `data()`, `forward(x, y)`,
    `backward(loss)`, `optimizer()`; calling the object runs one whole step.

    The levers: `fused` / `foreach` (AdamW's implementation, see `adamw_kind`; None: the package default), `attention` ("sdpa" fused
    kernels or "explicit" softmax(q k^T) v), `loader` ("device": the device-resident `DeviceLoader`;
    "dataloader": torchvision transforms image by image in a `torch.utils.data.DataLoader` with `workers`
    processes; batch mixing is left out there), `channels_last` (memory format of the images and the patch
    conv), `train_cfg.precision` and `train_cfg.compile`. `model` replaces the `ViT(model_cfg)` (the
    benchmark passes timm's). Only the first `n_images` images are used (default: enough for 4 batches).
    """

    def __init__(self, model_cfg: ViTConfig, train_cfg: TrainConfig, images: torch.Tensor, labels: torch.Tensor,
                 device: torch.device | str = "cpu", *, fused: bool | None = None, attention: str = "sdpa",
                 foreach: bool | None = None, loader: str = "device", channels_last: bool = False, workers: int = 0,
                 model: nn.Module | None = None, n_images: int | None = None):
        if attention not in ("sdpa", "explicit") or loader not in ("device", "dataloader"):
            raise ValueError(f"attention must be 'sdpa' or 'explicit' (got {attention!r}), "
                             f"loader 'device' or 'dataloader' (got {loader!r})")
        self.device = torch.device(device)
        self.batch_size = train_cfg.batch_size
        torch.manual_seed(train_cfg.seed)
        self.model = (model if model is not None else ViT(model_cfg)).to(self.device).train()
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        self.net = torch.compile(self.model) if train_cfg.compile else self.model
        self.opt = make_optimizer(self.model, train_cfg, fused=fused)
        if foreach is not None:                           # AdamW reads it per group at every step
            for group in self.opt.param_groups:
                group["foreach"] = foreach
        self.dtype = autocast_dtype(train_cfg.precision, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=train_cfg.label_smoothing)
        self.attention = explicit_attention if attention == "explicit" else contextlib.nullcontext
        n = min(len(labels), n_images or 4 * self.batch_size)
        if loader == "device":
            transform = TrainTransform.from_config(train_cfg, model_cfg.n_classes)
            batches = DeviceLoader(images[:n], labels[:n], self.batch_size, True, self.device, train_cfg.seed, transform)
        else:
            batches = torch.utils.data.DataLoader(
                _PerImage(images[:n], labels[:n], train_cfg), batch_size=self.batch_size, shuffle=True,
                drop_last=True, num_workers=workers, persistent_workers=workers > 0,
                pin_memory=self.device.type == "cuda")
        self.batches = _forever(batches)

    def data(self):
        x, y = next(self.batches)
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        return x, y.to(self.device, non_blocking=True)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with self.attention(), torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            return self.criterion(self.net(x).float(), y)

    def backward(self, loss: torch.Tensor) -> None:
        with self.attention():
            self.scaler.scale(loss).backward()

    def optimizer(self) -> None:
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)

    def __call__(self) -> torch.Tensor:
        x, y = self.data()
        loss = self.forward(x, y)
        self.backward(loss)
        self.optimizer()
        return loss


def adamw_kind(opt: torch.optim.Optimizer) -> str:
    """Which implementation an AdamW step runs: "fused" (one kernel for the whole update), "foreach" (a few
    operations over lists of tensors) or "for-loop" (several operations per parameter tensor: torch's
    default on a CPU when neither is asked for)."""
    group = opt.param_groups[0]
    if group.get("fused"):
        return "fused"
    if group.get("foreach") or (group.get("foreach") is None and next(iter(group["params"])).is_cuda):
        return "foreach"
    return "for-loop"


@dataclass
class StepTimes:
    """One measured setting: per-phase times of a training step (median over the timed steps, in ms)."""

    label: str
    device: str
    batch_size: int
    parts_ms: dict                       # phase -> median ms per step
    first_step_ms: float                 # the first step (warm-up: allocation, autotuning, compilation)
    per_step: list = field(default_factory=list)   # every timed step: {phase: ms}
    lever: str = ""                      # what this setting changes (`measure_levers`)
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


def _timed(step: TrainingStep) -> dict:
    """One training step, reading a synchronized clock before the first phase and after each: {phase: ms}."""
    synchronize(step.device)
    t = [time.perf_counter()]
    x, y = step.data()
    synchronize(step.device)
    t.append(time.perf_counter())
    loss = step.forward(x, y)
    synchronize(step.device)
    t.append(time.perf_counter())
    step.backward(loss)
    synchronize(step.device)
    t.append(time.perf_counter())
    step.optimizer()
    synchronize(step.device)
    t.append(time.perf_counter())
    return {p: 1e3 * (b - a) for p, a, b in zip(PHASES, t, t[1:])}


def time_steps(settings: dict, steps: int = 5, warmup: int = 1) -> dict:
    """Time several `TrainingStep`s side by side ({label: step} -> {label: StepTimes}): each round runs one
    step of every setting in turn, so that a change in the machine's load falls on all of them alike.
    The first `warmup` rounds are not counted; each phase keeps its median over the `steps` timed rounds."""
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


def time_step(step: TrainingStep, steps: int = 5, warmup: int = 1, label: str = "") -> StepTimes:
    """Run `warmup` + `steps` training steps of one setting, reading a synchronized clock after each phase."""
    return time_steps({label: step}, steps, warmup)[label]


@contextlib.contextmanager
def _quiet_fd2():
    """Hide what the profiler's C++ library writes straight to file descriptor 2 (start/stop lines)."""
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


def top_operators(step: TrainingStep, steps: int = 2, warmup: int = 1, n: int = 10) -> list[dict]:
    """The `n` operators with the most self time over `steps` steps, with `torch.profiler`.

    Each row: operator, ms per step (self time: the operator's own work, not its callees), calls per step,
    and share of all operators' self time. On a GPU the time is the kernels' time on the device.
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
    events = [e for e in prof.key_averages() if not e.key.startswith("phase: ")
              and (not cuda or e.device_type == torch.autograd.DeviceType.CPU)]   # operators, not their kernels
    total = sum(getattr(e, key) for e in events) or 1.0
    events.sort(key=lambda e: getattr(e, key), reverse=True)
    return [{"operator": e.key, "ms per step": getattr(e, key) / 1e3 / steps, "calls per step": e.count / steps,
             "share": getattr(e, key) / total} for e in events[:n]]


def matmul_peak(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, n: int | None = None,
                repeats: int = 5) -> float:
    """FLOP/s of the fastest of `repeats` (n x n) @ (n x n) matmuls: 2 n^3 FLOPs each. A practical
    ceiling for a model made of matmuls (n: 2048 on a CPU, 8192 on a GPU)."""
    device = torch.device(device)
    n = n or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


def train_flops(model_cfg: ViTConfig, batch_size: int) -> int:
    """FLOPs of one training step (forward and backward over `batch_size` images), counted by
    `flops_per_image(..., backward=True)`: matmuls and convolutions only, a multiply-add counting 2."""
    return flops_per_image(ViT(model_cfg), backward=True)["total"] * batch_size


def mfu(flops: float, seconds: float, peak_flops: float) -> float:
    """Model FLOP utilisation: the FLOP/s a step achieves (`flops` in `seconds`) over the device's peak."""
    return flops / seconds / peak_flops


def study_breakdown() -> dict:
    """The study's step (ms) in this module's phases: what its forward, backward and optimizer leave of
    the total is counted as data and other work."""
    s = STEP_TIME_MS
    return {"data": s["total"] - s["forward"] - s["backward"] - s["optimizer"], "forward": s["forward"],
            "backward": s["backward"], "optimizer": s["optimizer"]}


def levers(batch_size: int, device: torch.device | str, compile: bool = False) -> list[tuple[str, str, dict]]:
    """The settings the chapter measures, as (lever, label, overrides): each changes one thing of the
    baseline (float32, SDPA, AdamW as the package builds it, the device loader, batch `batch_size`, eager)."""
    device = torch.device(device)
    rows = [("baseline", f"baseline (fp32, batch {batch_size})", {}),
            ("batch size", f"batch {batch_size // 2}", dict(batch_size=batch_size // 2)),
            ("batch size", f"batch {batch_size * 2}", dict(batch_size=batch_size * 2))]
    rows += [("precision", f"{p} autocast", dict(precision=p)) for p in fast_precisions(device) if p != "fp32"]
    rows += [("attention", "explicit attention", dict(attention="explicit")),
             *((("optimizer", "foreach AdamW", dict(fused=False)),) if device.type == "cuda" else   # default: fused
               (("optimizer", "foreach AdamW", dict(foreach=True)), ("optimizer", "fused AdamW", dict(fused=True)))),
             ("loader", "DataLoader, per image", dict(loader="dataloader")),
             ("memory format", "channels_last", dict(channels_last=True))]
    if compile:
        rows.append(("compile", "torch.compile", dict(compile=True)))
        if "bf16" in fast_precisions(device):        # the fastest setting on a recent GPU: both together
            rows.append(("compile", "bf16 + torch.compile", dict(precision="bf16", compile=True)))
    return rows


def measure_levers(model_cfg: ViTConfig, train_cfg: TrainConfig, images: torch.Tensor, labels: torch.Tensor,
                   device: torch.device | str, batch_size: int, steps: int = 3, warmup: int = 1,
                   compile: bool = False, workers: int | None = None, progress=print) -> list[StepTimes]:
    """Time the baseline and each of `levers(...)` side by side (`time_steps`): one `StepTimes` per setting,
    `.lever` and `.overrides` saying what it changed.

    `train_cfg` gives the augmentation and the optimizer; precision is float32 and compile off unless a
    lever says otherwise. `workers`: the DataLoader's processes (default: 0 on a CPU, which has no cores
    to spare, up to 4 with a GPU). `progress(line)` is called once per setting at the end (None: silent).
    """
    device = torch.device(device)
    workers = workers if workers is not None else 0 if device.type == "cpu" else min(4, os.cpu_count() or 1)
    base = with_overrides(train_cfg, batch_size=batch_size, precision="fp32", compile=False)
    settings, what = {}, {}
    for lever, label, over in levers(batch_size, device, compile):
        cfg_over = {k: v for k, v in over.items() if k in ("batch_size", "precision", "compile")}
        kw = {k: v for k, v in over.items() if k not in cfg_over}
        settings[label] = TrainingStep(model_cfg, with_overrides(base, **cfg_over), images, labels, device,
                                       workers=workers, **kw)
        what[label] = (lever, over)
    out = list(time_steps(settings, steps, warmup).values())
    for t in out:
        t.lever, t.overrides = what[t.label]
        if progress:
            progress(f"{t.label:28s} {t.step_ms:9.1f} ms/step {t.images_per_s:9.1f} images/s"
                     f"   (first step {t.first_step_ms / 1e3:.1f} s)")
    return out


def lever_table(times: list[StepTimes], model_cfg: ViTConfig, peaks: dict) -> list[dict]:
    """Rows for the chapter's table: each setting's step time, images/s, speed-up over the first (the
    baseline), achieved GFLOP/s and model FLOP utilisation against `peaks[precision]` (FLOP/s, e.g. from
    `matmul_peak`; a setting whose precision has no peak gets none)."""
    per_image = train_flops(model_cfg, 1)
    rows = []
    for t in times:
        achieved = per_image * t.batch_size / (t.step_ms / 1e3)
        peak = peaks.get(t.precision)
        rows.append({"setting": t.label, "batch": t.batch_size, "step ms": t.step_ms, "images/s": t.images_per_s,
                     "x baseline": t.images_per_s / times[0].images_per_s, "GFLOP/s": achieved / 1e9,
                     "MFU %": 100 * achieved / peak if peak else None})
    return rows


def load_records(folder: str | os.PathLike | None = None) -> tuple[list[dict], str]:
    """Measured records in a results folder (default: the repository's `results/cpu/`, if this package
    runs from a clone): every JSON file flattened into rows (a run record becomes one row: its accuracy,
    steps, epochs and wall time), and the folder's README text ("" if none).
    Returns ([], "") when the folder does not exist, e.g. on Colab, where only the package is installed."""
    import json

    from .report import _differences
    folder = Path(folder) if folder else Path(__file__).resolve().parents[1] / "results" / "cpu"
    if not folder.is_dir():
        return [], ""
    rows = []
    for path in sorted(folder.glob("*.json")):
        try:
            obj = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(obj, dict) and obj.get("complete") and "final_acc" in obj:     # a run record: one row
            train = obj.get("train", {})
            changes = [c for c in _differences({**obj, "scale": "cpu"}).split(", ")     # against the recipe now
                       if c and not c.startswith("minutes=")]
            threads = [w for w in obj.get("device_name", "").rstrip(")").split(", ") if w.endswith("threads")]
            when = [f"{train.get('minutes', 0):g} minutes", f"seed {obj.get('seed')}", *threads]
            obj = {"lever": f"a run: {', '.join(changes) or 'the recipe as it is now'}; {', '.join(when)}",
                   "test acc %": round(100 * obj["final_acc"], 2), "steps": obj.get("steps"),
                   "epochs": round(obj.get("steps", 0) * train.get("batch_size", 0) / 50_000, 2),
                   "params": obj.get("params"), "wall s": round(obj.get("seconds", 0), 1)}
        items = obj if isinstance(obj, list) else obj.get("rows", [obj]) if isinstance(obj, dict) else []
        for item in items:
            if isinstance(item, dict):                       # scalars as they are, short lists joined
                rows.append({"file": path.name, **{k: " ".join(map(str, v)) if isinstance(v, list) else v
                                                   for k, v in item.items() if not isinstance(v, dict)
                                                   and not (isinstance(v, list) and len(v) > 8)}})
    readme = folder / "README.md"
    return rows, readme.read_text() if readme.exists() else ""


__all__ = ["PHASES", "DTYPES", "PLANS", "lever_table", "adamw_kind", "TrainingStep", "StepTimes", "time_step", "top_operators", "matmul_peak",
           "train_flops", "mfu", "study_breakdown", "levers", "measure_levers", "time_steps", "synchronize", "fast_precisions",
           "load_records"]

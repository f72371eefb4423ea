"""`train()`: the course's one training loop, from a CPU in CI to several GPUs under torchrun.

    run = train(get_config("paper"), get_train_config("demo"))    # -> Run: history, record, model
    run.history[-1]["test_acc"], run.final_acc, run.record["device_name"]

`TrainStep` is THE training step (`timing.BenchStep` times it phase by phase): forward under
autocast (bfloat16 on GPUs that have it, float16 with a gradient scaler on the others, float32 on
the CPU unless asked; Micikevicius et al., arXiv 1710.03740), label-smoothed cross-entropy on
float32 logits (Szegedy et al., arXiv 1512.00567), backward, optional gradient clipping, the
optimizer step. With `train_cfg.compile` the forward and the loss are one compiled graph and
the backward its compiled twin (torch.compile, static shapes: training batches are all full),
replayed as CUDA graphs with `compile="reduce-overhead"`; AdamW is fused on a GPU.

Nothing in a training step waits for the device (tests/test_sync.py counts): augmentation draws
what decides control flow on the host, the epoch's loss, accuracy and first NaN/inf step are
summed on the device (`EpochSums`) and read once per epoch, and the gradient scaler (float16 only)
hands its inf check to the fused AdamW. What still reads a value, and where: the scaler with Lion
(`optim.ForeachLion` is not fused: the inf flag, once per step); the CPU's unfused AdamW, its step
counter (a CPU tensor: no device to wait for); once per epoch, the sums, the evaluation and the
checkpoint.

`train()` reads as its parts: the run cache (`runs.cached_run`), the clock (`optim.Clock`: steps
or a time budget, and the warmup-cosine lr), the model and its step, resuming (`_resume`, on
`runs.load_checkpoint`), one epoch (`_train_epoch`: a NaN or inf loss stops the run at the end of
its epoch, naming the first bad step and keeping the last good checkpoint), its history row
(`_epoch_row`), the checkpoint (`_save_checkpoint`), the record (`_record`) and the finished run's
files (`runs.save_run`).
A time budget (`minutes > 0`) covers the whole run, final evaluation included. An interrupted run
resumes to the same final weights as an uninterrupted one.

Under `torchrun --nproc_per_node K -m poorvit train ...` each process takes 1/K of every batch
(DistributedDataParallel: NCCL on GPUs, gloo on CPUs; `device.init_distributed`); metrics are
summed over processes and only rank 0 writes files.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import __version__
from .augment import TrainTransform
from .config import COMPILE_MODES, TrainConfig, ViTConfig, with_overrides
from .cost import count_params
from .data import CIFAR10, DeviceLoader, load_cifar10, model_input, normalize
from .device import (all_sum, autocast_dtype, configure_backends, device_name, get_device,
                     init_distributed, synchronize)
from .init import whiten_patch_embed
from .model import ViT, eval_mode
from .optim import Clock, make_optimizer, set_lr
from .runs import (START_OVER, Run, atomic_save, cached_run, git_commit, load_checkpoint,
                   run_key, runs_root, save_run)


class TrainStep:
    """THE training step: `loss, logits = step(x, y)` runs forward, backward and the optimizer step.

    model: the module whose parameters train (its state is what a checkpoint saves); `net` is what
    runs the forward: `model`, wrapped in DistributedDataParallel when `ddp`, compiled when
    `train_cfg.compile`. The optimizer is `optim.make_optimizer(model, train_cfg, fused)`, `dtype`
    the autocast dtype of `train_cfg.precision` on `device` (None: float32), `scaler` a gradient
    scaler (active for float16 only), `criterion` cross-entropy with `train_cfg.label_smoothing`,
    `backends` the `torch.backends` flags it set (`device.configure_backends`: TF32 on Ampere+).
    Phases (`timing.BenchStep` times them one by one): `forward(x, y)`, `backward(loss)`,
    `optimizer_step()`.

    Compiled (`train_cfg.compile`: True or a mode, `config.COMPILE_MODES`), `forward` is one
    torch.compile graph of the model and the loss (static shapes; the backward is compiled with
    it), `compile_mode` says which mode ("reduce-overhead": CUDA graphs on a GPU), and `net` is
    compiled too (evaluation); `backend` replaces inductor (e.g. "aot_eager" for a quick check).
    """

    def __init__(self, model: nn.Module, train_cfg: TrainConfig,
                 device: str | torch.device | None = None, *, ddp: bool = False,
                 fused: bool | None = None, backend: str = "inductor"):
        self.device = get_device(device)
        self.backends = configure_backends(self.device)
        self.model = model
        net = nn.parallel.DistributedDataParallel(model) if ddp else model
        self.compile_mode, self.backend = compile_mode(train_cfg.compile), backend
        self._forward = self._eager_forward
        self.net = net
        if self.compile_mode is not None:
            options = dict(mode=self.compile_mode, dynamic=False, backend=backend)
            if backend != "inductor":
                options.pop("mode")
            self.net = torch.compile(net, **options)
            self._forward = torch.compile(self._eager_forward, **options)
        self._graphs = self.compile_mode in ("reduce-overhead", "max-autotune")
        self.optimizer = make_optimizer(model, train_cfg, fused=fused)
        self.dtype = autocast_dtype(train_cfg.precision, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=train_cfg.label_smoothing)
        self.grad_clip = train_cfg.grad_clip
        self.ema, self._ema_update = None, None
        if train_cfg.ema > 0:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
            self.ema = AveragedModel(model, use_buffers=True)      # a copy: W_0 = the model's
            self._ema_update = get_ema_multi_avg_fn(train_cfg.ema)
            pairs = [(a, b) for a, b in zip([*self.ema.module.parameters(),
                                             *self.ema.module.buffers()],
                                            [*model.parameters(), *model.buffers()])
                     if a.is_floating_point()]
            self._ema_pairs = ([a for a, _ in pairs], [b for _, b in pairs])

    @property
    def eval_net(self) -> nn.Module:
        """What evaluation runs: the moving average of the weights when the recipe keeps one
        (`train_cfg.ema`), else `net`."""
        return self.ema.module if self.ema is not None else self.net

    def update_ema(self) -> None:
        """One step of the weights' exponential moving average (torch's `get_ema_multi_avg_fn`:
        a foreach lerp towards the weights by 1 - decay; floating tensors only). Called directly
        rather than through `AveragedModel.update_parameters`, which reads its step counter (a
        wait for a GPU) every step; the average starts as a copy of the model, so it needs none."""
        self._ema_update(*self._ema_pairs, None)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, logits) of images `x` (B, 3, H, W) against `y`: labels (B,) or soft targets
        (B, n_classes) from Mixup/CutMix. The loss is a float32 scalar, on float32 logits; the
        logits (B, n_classes) are in the autocast dtype. Under CUDA graphs ("reduce-overhead")
        they are overwritten by the next step: read them before it."""
        if self._graphs:
            torch.compiler.cudagraph_mark_step_begin()
        return self._forward(x, y)

    def _eager_forward(self, x: torch.Tensor, y: torch.Tensor):
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            logits = self.net(x)
            return self.criterion(logits.float(), y), logits

    def backward(self, loss: torch.Tensor) -> None:
        """Gradients of `loss` (scaled by the gradient scaler when it is active)."""
        self.scaler.scale(loss).backward()

    def optimizer_step(self) -> None:
        """Unscale and clip the gradients to norm `train_cfg.grad_clip` (when > 0), step, update the
        scaler, and drop the gradients (`zero_grad(set_to_none=True)`)."""
        if self.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One whole step on a batch: (loss, logits) as `forward` returns them."""
        loss, logits = self.forward(x, y)
        self.backward(loss)
        self.optimizer_step()
        if self.ema is not None:
            self.update_ema()
        return loss, logits

    def state_dict(self) -> dict:
        """The model, optimizer and scaler states, and the weights' moving average if kept (what
        a checkpoint keeps of the step)."""
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scaler": self.scaler.state_dict()}
        if self.ema is not None:
            state["ema"] = self.ema.module.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict()`'s output. A checkpoint from a run without float16 (a CPU, a
        bfloat16 GPU) holds no scaler state (an empty dict): resumed where this step uses float16,
        the scaler starts fresh, as at the start of a run."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            self.ema.module.load_state_dict(state["ema"])


def compile_mode(value: bool | str) -> str | None:
    """torch.compile's mode for `TrainConfig.compile`: None (eager) for False, "default" for True,
    else the mode named (`config.COMPILE_MODES`; ValueError for another)."""
    if value is False or value is None:
        return None
    if value is True:
        return "default"
    if value not in COMPILE_MODES:
        raise ValueError(f"compile={value!r}: use False, True or one of {COMPILE_MODES}")
    return value


class EpochSums:
    """An epoch's training sums, kept on the device and read once (`read`): the loss summed over
    samples, the correct predictions, and the first step whose loss was NaN or inf, found with a
    step counter on the device (the first step index is `first_step`)."""

    def __init__(self, device: torch.device, first_step: int = 0):
        self.loss = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.first_bad = torch.full((), -1, device=device, dtype=torch.long)
        self.index = torch.full((), first_step, device=device, dtype=torch.long)
        self.seen = 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        """One step's `loss` (a scalar mean over the batch), `logits` (B, n_classes) and targets
        `y` (class ids (B,) or soft (B, n_classes): the argmax is the class): queued, no wait."""
        loss = loss.detach()
        bad = ~torch.isfinite(loss)
        self.first_bad = torch.where(bad & (self.first_bad < 0), self.index, self.first_bad)
        self.index += 1
        self.loss += loss * len(y)
        self.correct += (logits.argmax(-1) == (y if y.ndim == 1 else y.argmax(-1))).sum()
        self.seen += len(y)

    def read(self) -> tuple[float, int, int, int]:
        """(summed loss, correct, samples, first bad step or -1), in one read from the device."""
        loss, correct, bad = torch.stack([self.loss.double(), self.correct.double(),
                                          self.first_bad.double()]).tolist()
        return loss, int(correct), self.seen, int(bad)


def build_model(model_cfg: ViTConfig, train_cfg: TrainConfig, data: CIFAR10 | None = None,
                device: torch.device | str = "cpu") -> ViT:
    """The seeded model, with the whitening init if the recipe asks (then `data` is required) from
    `_whitening_images`; under the study's init (`model_cfg.init`) the conv's bias is left as it
    is, as the study's `init_whitening_conv` does."""
    torch.manual_seed(train_cfg.seed)
    model = ViT(model_cfg)
    if train_cfg.whiten != "off":
        whiten_patch_embed(model, _whitening_images(data, train_cfg, model_cfg.n_classes, device),
                           eps=train_cfg.whiten_eps, freeze=train_cfg.whiten == "frozen",
                           zero_bias=model_cfg.init != "study")
    return model.to(device)


def _whitening_images(data: CIFAR10, cfg: TrainConfig, n_classes: int,
                      device: torch.device | str) -> torch.Tensor:
    """The whitening sample, normalized (n_images, 3, H, W) on the CPU: `whiten_source="images"`,
    the first `whiten_images` training images (at most `train_subset`) as stored; `"loader"`, the
    study's rule (`finetune.py`): batches of the training loader (epoch 0's order, augmented,
    normalized, not mixed: the study mixes in its training loop) until more than `whiten_images`
    are taken."""
    if cfg.whiten_source == "images":
        n = min(cfg.train_subset or cfg.whiten_images, cfg.whiten_images)
        return normalize(data.train_x[:n])
    unmixed = with_overrides(cfg, mixup_alpha=0.0, cutmix_alpha=0.0)
    loader = DeviceLoader(data.train_x, data.train_y, cfg.batch_size, True, device, cfg.seed,
                          TrainTransform.from_config(unmixed, n_classes), cfg.train_subset,
                          cfg.repeats, full_repeats=cfg.full_repeats)
    batches, count = [], 0
    for x, _ in loader:
        batches.append(x.cpu())
        count += len(x)
        if count > cfg.whiten_images:
            break
    return torch.cat(batches)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DeviceLoader, dtype: torch.dtype | None = None,
             flip: bool = False) -> tuple[float, float, int]:
    """(summed cross-entropy, correct, count) of `model` over a loader's batches (images
    (B, 3, H, W), labels (B,)), under `dtype` autocast (None: float32), in eval mode (the model's
    mode is restored on any exit: `model.eval_mode`). Under torchrun each process sees its share:
    sum over processes to divide. `flip`: test-time augmentation, the mean of the logits of each
    image and its mirror image (twice the forward passes)."""
    loss = torch.zeros((), device=loader.device)
    correct = torch.zeros((), device=loader.device, dtype=torch.long)
    count = 0
    with eval_mode(model):
        for x, y in loader:
            with torch.autocast(loader.device.type, dtype=dtype, enabled=dtype is not None):
                logits = model(x)
                if flip:
                    logits = (logits.float() + model(x.flip(-1)).float()) / 2
            loss += F.cross_entropy(logits.float(), y, reduction="sum")
            correct += (logits.argmax(-1) == y).sum()
            count += len(y)
    return loss.item(), correct.item(), count


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Softmax probabilities (n_images, n_classes) of `model` in eval mode, on the CPU.

    `images`: uint8 (n_images, 3, H, W) as stored (normalized here with CIFAR-10's statistics) or
    floats already normalized; float images that are raw pixels ([0, 1] or [0, 255]) raise
    ValueError saying to call `data.normalize` (the rule: `data.model_input`). Runs in batches on
    the model's device; the model's train/eval mode is restored on any exit.
    """
    device = next(model.parameters()).device
    out = []
    with eval_mode(model):
        for i in range(0, len(images), batch_size):
            x = model_input(images[i:i + batch_size].to(device))
            out.append(model(x).float().softmax(-1).cpu())
    return torch.cat(out)


def print_epoch(row: dict) -> None:
    """The default progress: one line per epoch."""
    acc = row.get("test_acc")
    test = f"test acc {acc:.4f}" if acc is not None else "test acc   -   "
    print(f"epoch {row['epoch']:>3}  loss {row['loss']:.4f}  train acc {row['train_acc']:.4f}  "
          f"{test}  lr {row['lr']:.2e}  {row['seconds']:6.1f}s  {row['images_per_s']:,.0f} img/s",
          flush=True)


def _final_eval_seconds(net: nn.Module, data: CIFAR10, dtype: torch.dtype | None,
                        device: torch.device, rank: int, world: int, flip: bool = False) -> float:
    """Seconds the final full-test evaluation will take (`flip`: with the mirror images too), timed
    on 500 test images (after one untimed pass) and scaled up with a 25 % margin: a timed run
    stops training early enough to evaluate."""
    from .timing import Timer       # timing builds on this module's TrainStep: imported when needed
    probe = DeviceLoader(data.test_x[:500], data.test_y[:500], 500, False, device, rank=rank,
                         world=world)
    evaluate(net, probe, dtype, flip)   # untimed first: a compiled model compiles here
    with Timer(device) as t:
        evaluate(net, probe, dtype, flip)
    return 1.25 * t.ms / 1e3 * len(data.test_y) / 500


@dataclass
class _Progress:
    """Where a run stands: what a checkpoint keeps besides the step's state."""

    history: list = field(default_factory=list)     # one row per finished epoch
    epoch: int = 0                                  # epochs finished
    step: int = 0                                   # optimizer steps taken
    elapsed: float = 0.0                            # seconds in training epochs, over every attempt
    done: bool = False                              # the clock or the step count ended training


def _loaders(data: CIFAR10, model_cfg: ViTConfig, cfg: TrainConfig, device: torch.device,
             rank: int, world: int) -> tuple[DeviceLoader, DeviceLoader, DeviceLoader]:
    """(augmented training batches, the per-epoch test subset, the full test set) on `device`."""
    transform = TrainTransform.from_config(cfg, model_cfg.n_classes)
    train_loader = DeviceLoader(data.train_x, data.train_y, cfg.batch_size, True, device, cfg.seed,
                                transform, cfg.train_subset, cfg.repeats, rank, world,
                                full_repeats=cfg.full_repeats)
    test_loader = DeviceLoader(data.test_x, data.test_y, 500, False, device,
                               subset=cfg.test_subset, rank=rank, world=world)
    full_test = DeviceLoader(data.test_x, data.test_y, 500, False, device, rank=rank, world=world)
    return train_loader, test_loader, full_test


def _resume(step: TrainStep, ckpt_path: Path, model_cfg: ViTConfig, train_cfg: TrainConfig,
            say: bool) -> _Progress:
    """Load `ckpt_path` (`runs.load_checkpoint`: safe, for these configs only) into `step` and
    return where it stood; a fresh start if there is none. Raises ValueError (one line, saying what
    to do) if the checkpoint cannot be used."""
    ckpt = load_checkpoint(ckpt_path, model_cfg, train_cfg, step.device)
    if ckpt is None:
        return _Progress()
    try:
        step.load_state_dict(ckpt)
        state = _Progress(ckpt["history"], ckpt["epoch"], ckpt["step"], ckpt["elapsed"])
    except (KeyError, RuntimeError, TypeError, ValueError) as err:
        raise ValueError(f"{ckpt_path} is incomplete or from another version of poorvit "
                         f"({type(err).__name__}: {str(err).splitlines()[0][:120]}); delete it "
                         f"or {START_OVER}") from err
    if say:
        print(f"resuming {ckpt_path.parent.name} after epoch {state.epoch} (step {state.step})")
    return state


def regulariser_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of an epoch's per-sample regularisers on process `rank`: the drop-path and
    PatchDropout draws (`model.drop_path`, `model.patch_dropout`) come from torch's global
    generator, seeded with this at the start of every epoch, so a resumed epoch draws what it drew
    the first time. Rank 0 (and a single process) gets `seed * 1000 + epoch`; every other rank its
    own stream, `rank` times an odd 32-bit constant further on (modulo 2**32: torch's CPU
    generator reads only the low 32 bits of a seed), so that under torchrun the processes drop
    different samples and tokens instead of the same ones (a run is reproducible for a given seed
    and world size). Augmentation needs none of this: each process keeps its own slice of one
    global batch, every sample with its own draws (`data.DeviceLoader`)."""
    base = seed * 1000 + epoch
    return base if rank == 0 else (base + rank * 0x9E3779B1) % 2 ** 32


def _train_epoch(step: TrainStep, loader: DeviceLoader, clock: Clock, state: _Progress,
                 ckpt_path: Path, bar=None) -> tuple[float, float, int, float]:
    """Epoch `state.epoch` of training, until the loader, the step count or the clock ends it
    (`state.done`); advances `state.step` and `state.elapsed`. Returns (summed loss, correct,
    images, seconds) of this process. Raises FloatingPointError after an epoch in which a loss
    was NaN or inf, naming the first such step. No step waits for the device: the sums stay there
    (`EpochSums`) and are read once, at the end of the epoch."""
    cfg, device = clock.cfg, step.device
    torch.manual_seed(regulariser_seed(cfg.seed, state.epoch, loader.rank))
    loader.set_epoch(state.epoch)
    step.net.train()
    t0 = clock.now()
    sums = EpochSums(device, state.step)
    for x, y in loader:
        progress = clock.progress(state.step, state.elapsed, t0)
        if state.step >= clock.total_steps or progress >= 1:
            state.done = True
            break
        set_lr(step.optimizer, clock.lr(progress))
        if cfg.patch_drop_until < 1:            # every token late in training (a ViT only)
            step.model.patch_drop = (step.model.cfg.patch_drop
                                     if progress < cfg.patch_drop_until else 0.0)
        loss, logits = step(x, y)
        sums.add(loss, logits, y)
        state.step += 1
        if bar is not None:
            bar.update(1)
    loss_sum, correct, seen, first_bad = sums.read()
    if first_bad >= 0:
        raise FloatingPointError(
            f"the loss became NaN or inf at step {first_bad} (epoch {state.epoch + 1}); "
            f"training stopped. The last good checkpoint "
            f"({ckpt_path if ckpt_path.exists() else 'none yet'}) is kept. "
            f"Lower lr (now {cfg.lr}), set grad_clip, or use precision='fp32'.")
    synchronize(device)
    seconds = clock.now() - t0
    state.elapsed += seconds
    return loss_sum, correct, seen, seconds


def _epoch_row(step: TrainStep, sums: tuple, test_loader: DeviceLoader, clock: Clock,
               state: _Progress) -> dict:
    """The history row of the epoch just trained (`sums` from `_train_epoch`), summed over
    processes, with the test subset's loss and accuracy every `eval_every` epochs and at the end."""
    loss_sum, correct, seen, seconds = sums
    loss_total, correct_total, seen_total = all_sum(loss_sum, correct, seen, device=step.device)
    last = state.epoch == clock.n_epochs - 1 or clock.finished(state)
    test_acc = test_loss = None
    if (state.epoch + 1) % clock.cfg.eval_every == 0 or last:
        loss, right, n = all_sum(*evaluate(step.eval_net, test_loader, step.dtype,
                                           clock.cfg.tta_flip), device=step.device)
        test_acc, test_loss = right / n, loss / n
    return {"epoch": state.epoch + 1, "step": state.step, "loss": loss_total / max(seen_total, 1),
            "train_acc": correct_total / max(seen_total, 1), "test_loss": test_loss,
            # the schedule's lr: the last group's (AdamW's beside Muon; every group's otherwise)
            "test_acc": test_acc, "lr": step.optimizer.param_groups[-1]["lr"], "seconds": seconds,
            "images_per_s": seen_total / max(seconds, 1e-9)}


def _save_checkpoint(step: TrainStep, state: _Progress, model_cfg: ViTConfig,
                     train_cfg: TrainConfig, ckpt_path: Path) -> None:
    """The step's state and `state`, written atomically (what `_resume` reads)."""
    atomic_save({**step.state_dict(), "epoch": state.epoch, "step": state.step,
                 "history": state.history, "elapsed": state.elapsed,
                 "model_cfg": asdict(model_cfg), "train_cfg": asdict(train_cfg)}, ckpt_path)


def _step_bar(clock: Clock, state: _Progress):
    """A tqdm progress bar over the run's steps, starting at the steps already taken."""
    from tqdm.auto import tqdm
    return tqdm(total=clock.total_steps, initial=state.step, unit="step")


def _record(step: TrainStep, state: _Progress, full_test: DeviceLoader, clock: Clock,
            model_cfg: ViTConfig, train_cfg: TrainConfig, *, key: str, dataset: str, world: int,
            started: str) -> dict:
    """The final evaluation on the full test set, and the run record: what produced the run
    (configs, `key`, dataset, device, version, commit, ...), its history and results."""
    loss, right, n = all_sum(*evaluate(step.eval_net, full_test, step.dtype, train_cfg.tta_flip),
                             device=step.device)
    tested = [r["test_acc"] for r in state.history if r["test_acc"] is not None]
    return {
        "key": key, "complete": True, "config": asdict(model_cfg),
        "train": asdict(train_cfg), "seed": train_cfg.seed, "scale": train_cfg.scale,
        "dataset": dataset, "device": step.device.type, "device_name": device_name(step.device),
        "autocast_dtype": str(step.dtype or torch.float32).removeprefix("torch."),
        "backends": step.backends,
        "world_size": world, "version": __version__, "commit": git_commit(),
        "torch": torch.__version__, "params": count_params(model_cfg), "started": started,
        "seconds": clock.now() - clock.start, "train_seconds": state.elapsed,
        "steps": state.step, "epochs_run": len(state.history), "final_acc": right / n,
        "final_loss": loss / n, "best_acc": max(tested + [right / n]), "history": state.history,
        # the study's README does not say whether it reports its best or its last evaluation; the
        # course compares the last (`final_acc`: no choice made on the test set), best_acc beside it
        "compared": "final_acc",
    }


def train(model_cfg: ViTConfig, train_cfg: TrainConfig, data: CIFAR10 | None = None,
          callbacks: Iterable[Callable[[dict], None]] = (), *, out: str | os.PathLike | None = None,
          resume: bool = True, cache: bool = True, device: str | torch.device | None = None,
          progress: str | None = "line") -> Run:
    """Train `model_cfg` with `train_cfg` on CIFAR-10 (`data`, default `load_cifar10()`); returns
    the `Run` (history, record, the model with its final weights, in eval mode).

    out: the run folder (default: `runs_root()/<hash of the configs and dataset>`). resume: go on
    from `out/checkpoint.pt` if there is one (same configs only; else ValueError). cache: return the
    finished run in `out` instead of training again. device: default `device.get_device(None)`
    (under torchrun: the process's own, `distributed_plan`). callbacks: called with each epoch's
    history row.
    progress: "line" (one line per epoch), "bar" (tqdm over steps) or None.
    """
    rank, world, dist_device = init_distributed(device)
    device = dist_device if dist_device is not None else get_device(device)
    data = data if data is not None else load_cifar10()
    key = run_key(model_cfg, train_cfg, data.label)
    path = Path(out) if out is not None else runs_root() / key
    say = rank == 0 and bool(progress)
    if cache and (cached := cached_run(path, key, device)) is not None:
        if say:
            print(f"loaded the finished run {path.name} from the run cache: final test acc "
                  f"{cached.final_acc:.4f} ({cached.record['dataset']}, "
                  f"{cached.record['device_name']})")
        return cached
    if rank == 0:
        path.mkdir(parents=True, exist_ok=True)

    clock = Clock(train_cfg)            # a time budget covers the whole run: build, train, evaluate
    model = build_model(model_cfg, train_cfg, data, device)
    step = TrainStep(model, train_cfg, device, ddp=world > 1)
    train_loader, test_loader, full_test = _loaders(data, model_cfg, train_cfg, device, rank, world)
    final_eval = (_final_eval_seconds(step.eval_net, data, step.dtype, device, rank, world,
                                      train_cfg.tta_flip)
                  if clock.budget else 0.0)
    clock.plan(len(train_loader), final_eval)
    ckpt_path = path / "checkpoint.pt"
    state = _resume(step, ckpt_path, model_cfg, train_cfg, say) if resume else _Progress()
    state.done = clock.budget > 0 and state.elapsed >= clock.budget
    bar = _step_bar(clock, state) if progress == "bar" and rank == 0 else None
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")

    while state.epoch < clock.n_epochs and not clock.finished(state):
        sums = _train_epoch(step, train_loader, clock, state, ckpt_path, bar)
        row = _epoch_row(step, sums, test_loader, clock, state)
        state.history.append(row)
        state.epoch += 1
        if rank == 0:
            _save_checkpoint(step, state, model_cfg, train_cfg, ckpt_path)
            if progress == "line":
                print_epoch(row)
            for cb in callbacks:
                cb(row)
    if bar is not None:
        bar.close()

    record = _record(step, state, full_test, clock, model_cfg, train_cfg, key=key,
                     dataset=data.label, world=world, started=started)
    model = step.eval_net if step.ema is not None else model    # the weights evaluated
    if rank == 0:
        save_run(model, record, path)
        if progress:
            print(f"final test acc {record['final_acc']:.4f} on {len(data.test_y):,} {data.label} "
                  f"test images  ({record['seconds']:.0f}s on {record['device_name']})")
    return Run(model_cfg, train_cfg, state.history, record, model.eval(), path)


__all__ = ["TrainStep", "EpochSums", "compile_mode", "train", "evaluate", "predict", "build_model",
           "print_epoch", "regulariser_seed"]

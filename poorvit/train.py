"""`train()`: the course's one training loop, from a CPU in CI to several GPUs under torchrun.

    run = train(get_config("paper"), get_train_config("demo"))       # -> Run: history, record, model
    run.history[-1]["test_acc"], run.final_acc, run.record["device_name"]

What it does, in order: seeds; builds the model (whitening init if asked); keeps CIFAR-10 on the device
(`DeviceLoader`); per step sets the warmup-cosine learning rate, runs forward under autocast (bfloat16
on GPUs that have it, float16 with a gradient scaler on the others, float32 on the CPU unless asked),
label-smoothed cross-entropy, backward, optional gradient clipping, the optimizer step. Per epoch:
evaluation, one line of progress, an atomic checkpoint. With a time budget (`minutes > 0`) the whole
run fits in it: warmup and decay follow the clock, and training stops early enough to leave room for
the evaluations so far and the final one on the full test set (timed on 500 test images at the start;
training keeps at least half the budget, so a budget too short for its evaluations still trains).
A NaN or inf loss stops the run naming the step and leaves the last good checkpoint in place. An
interrupted run continues from its checkpoint (`resume=True`, the default) to the same final weights as
an uninterrupted one. A run whose folder already holds a complete record is loaded, not retrained
(`cache=True`).

Under `torchrun --nproc_per_node K -m poorvit train ...` each process takes 1/K of every batch
(DistributedDataParallel: NCCL on GPUs, gloo on CPUs); metrics are summed over processes and only rank 0
writes files.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from . import __version__
from .augment import TrainTransform
from .config import TrainConfig, ViTConfig
from .data import CIFAR10, DeviceLoader, load_cifar10, normalize
from .init import whiten_patch_embed
from .model import ViT, count_params
from .optim import lr_at, make_optimizer, set_lr
from .runs import Run, atomic_save, device_name, git_commit, run_key, runs_root, write_json


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision setting, or None for plain float32."""
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def build_model(model_cfg: ViTConfig, train_cfg: TrainConfig, data: CIFAR10 | None = None,
                device: torch.device | str = "cpu") -> ViT:
    """The seeded model, with the whitening init from up to 10,000 training images if the recipe asks."""
    torch.manual_seed(train_cfg.seed)
    model = ViT(model_cfg)
    if train_cfg.whiten != "off":
        n = min(train_cfg.train_subset or 10_000, 10_000)
        whiten_patch_embed(model, normalize(data.train_x[:n]), eps=train_cfg.whiten_eps,
                           freeze=train_cfg.whiten == "frozen")
    return model.to(device)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DeviceLoader, dtype: torch.dtype | None = None) -> tuple[float, float, int]:
    """(summed loss, correct, count) over a loader; sum over processes before dividing."""
    was = model.training
    model.eval()
    loss = torch.zeros((), device=loader.device)
    correct = torch.zeros((), device=loader.device, dtype=torch.long)
    count = 0
    for x, y in loader:
        with torch.autocast(loader.device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(x)
        loss += F.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(-1) == y).sum()
        count += len(y)
    model.train(was)
    return loss.item(), correct.item(), count


def _all_sum(*values: float, device: torch.device) -> list[float]:
    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _distributed() -> tuple[int, int, torch.device | None]:
    """(rank, world size, device) under torchrun; (0, 1, None) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, None
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return dist.get_rank(), world, device


def print_epoch(row: dict) -> None:
    """The default progress: one line per epoch."""
    test = f"test acc {row['test_acc']:.4f}" if row.get("test_acc") is not None else "test acc   -   "
    print(f"epoch {row['epoch']:>3}  loss {row['loss']:.4f}  train acc {row['train_acc']:.4f}  {test}  "
          f"lr {row['lr']:.2e}  {row['seconds']:6.1f}s  {row['images_per_s']:,.0f} img/s", flush=True)


def _final_eval_seconds(net: nn.Module, data: CIFAR10, dtype, device, rank: int, world: int) -> float:
    """The time the final full-test evaluation will take, timed on 500 test images (after one untimed pass)
    and scaled up with a 25 % margin: a timed run stops training early enough to evaluate within its budget."""
    probe = DeviceLoader(data.test_x[:500], data.test_y[:500], 500, False, device, rank=rank, world=world)
    evaluate(net, probe, dtype)        # once untimed: a compiled model compiles here, not in the estimate
    t = time.perf_counter()
    evaluate(net, probe, dtype)
    return 1.25 * (time.perf_counter() - t) * len(data.test_y) / 500


def train(model_cfg: ViTConfig, train_cfg: TrainConfig, data: CIFAR10 | None = None,
          callbacks: Iterable[Callable[[dict], None]] = (), *, out: str | os.PathLike | None = None,
          resume: bool = True, cache: bool = True, device: str | torch.device | None = None,
          progress: str | None = "line") -> Run:
    """Train `model_cfg` with `train_cfg` on CIFAR-10 (`data`, default `load_cifar10()`); return the Run.

    out: the run folder (default: `runs_root()/<hash of the configs and dataset>`).
    resume: continue from `out/checkpoint.pt` if an earlier attempt left one (same configs only).
    cache: return the finished run in `out` instead of training again.
    callbacks: called with each epoch's history row. progress: "line" (one line per epoch), "bar"
    (a tqdm bar over steps, for a person watching) or None.
    """
    rank, world, dist_device = _distributed()
    device = dist_device if dist_device is not None else torch.device(device) if device else default_device()
    data = data if data is not None else load_cifar10()
    key = run_key(model_cfg, train_cfg, data.label)
    path = Path(out) if out is not None else runs_root() / key
    if cache and (path / "record.json").exists() and (path / "model.pt").exists():
        from .runs import load_run
        run = load_run(path, device)
        if run.record.get("key") == key:
            if rank == 0 and progress:
                print(f"loaded the finished run {path.name} from the run cache: final test acc {run.final_acc:.4f} "
                      f"({run.record['dataset']}, {run.record['device_name']})")
            return run
    if rank == 0:
        path.mkdir(parents=True, exist_ok=True)

    wall0 = time.perf_counter()                  # a time budget covers the whole run: build, train, evaluate
    model = build_model(model_cfg, train_cfg, data, device)
    net = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    if train_cfg.compile:
        net = torch.compile(net)
    optimizer = make_optimizer(model, train_cfg)
    dtype = autocast_dtype(train_cfg.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    transform = TrainTransform.from_config(train_cfg, model_cfg.n_classes)
    train_loader = DeviceLoader(data.train_x, data.train_y, train_cfg.batch_size, True, device, train_cfg.seed,
                                transform, train_cfg.train_subset, train_cfg.repeats, rank, world)
    test_loader = DeviceLoader(data.test_x, data.test_y, 500, False, device, subset=train_cfg.test_subset,
                               rank=rank, world=world)
    full_test = DeviceLoader(data.test_x, data.test_y, 500, False, device, rank=rank, world=world)
    steps_per_epoch = len(train_loader)
    total_steps = max(1, math.ceil(train_cfg.epochs * steps_per_epoch))
    n_epochs = math.ceil(train_cfg.epochs)
    budget = train_cfg.minutes * 60
    warmup = train_cfg.warmup_epochs / train_cfg.epochs
    # kept for after training: the final evaluation, plus 1 % of the budget for the last epoch's own
    # evaluation and checkpoint (with 0.5 % and a 10 % margin on the estimate, 10-minute runs measured up to 605 s)
    final_eval = _final_eval_seconds(net, data, dtype, device, rank, world) + 0.01 * budget if budget else 0.0

    history, start_epoch, step, elapsed = [], 0, 0, 0.0
    ckpt_path = path / "checkpoint.pt"
    if resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        if ckpt["model_cfg"] != asdict(model_cfg) or ckpt["train_cfg"] != asdict(train_cfg):
            raise ValueError(f"{ckpt_path} belongs to a different configuration; pass resume=False (CLI: --fresh) "
                             f"to start over, or another out folder")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        history, start_epoch, step, elapsed = ckpt["history"], ckpt["epoch"], ckpt["step"], ckpt["elapsed"]
        if rank == 0 and progress:
            print(f"resuming {path.name} after epoch {start_epoch} (step {step})")

    criterion = nn.CrossEntropyLoss(label_smoothing=train_cfg.label_smoothing)
    bar = None
    if progress == "bar" and rank == 0:
        from tqdm.auto import tqdm
        bar = tqdm(total=total_steps, initial=step, unit="step")
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    done = budget > 0 and elapsed >= budget
    epoch = start_epoch
    for epoch in range(start_epoch, n_epochs):
        if done or step >= total_steps:
            break
        torch.manual_seed(train_cfg.seed * 1000 + epoch)          # drop-path draws: reproducible per epoch
        train_loader.set_epoch(epoch)
        net.train()
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        first_bad = torch.full((), -1, device=device, dtype=torch.long)
        seen = 0
        for x, y in train_loader:
            if budget:     # progress on the clock: training time / what the budget leaves for training
                now = time.perf_counter()
                trained = elapsed + now - t0
                outside = max(now - wall0 - trained, 0.0)            # build, evaluations, checkpoints
                progress_now = trained / max(budget - outside - final_eval, budget / 2)   # training keeps >= half
            else:
                progress_now = step / total_steps
            if step >= total_steps or progress_now >= 1:
                done = True
                break
            set_lr(optimizer, lr_at(progress_now, train_cfg.lr, train_cfg.min_lr, warmup))
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = net(x)
                loss = criterion(logits.float(), y)
            scaler.scale(loss).backward()
            if train_cfg.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            bad = ~torch.isfinite(loss.detach())
            first_bad = torch.where(bad & (first_bad < 0), torch.tensor(step, device=device), first_bad)
            loss_sum += loss.detach() * len(x)
            correct += (logits.argmax(-1) == (y if y.ndim == 1 else y.argmax(-1))).sum()
            seen += len(x)
            step += 1
            if bar is not None:
                bar.update(1)
            if device.type == "cpu" and bad:
                break
        if first_bad.item() >= 0:
            bad_step = first_bad.item()
            msg = (f"the loss became NaN or inf at step {bad_step} (epoch {epoch + 1}); training stopped. "
                   f"The last good checkpoint ({ckpt_path if ckpt_path.exists() else 'none yet'}) is kept. "
                   f"Lower lr (now {train_cfg.lr}), set grad_clip, or use precision='fp32'.")
            raise FloatingPointError(msg)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
        elapsed += seconds
        loss_total, correct_total, seen_total = _all_sum(loss_sum.item(), correct.item(), seen, device=device)
        last = epoch == n_epochs - 1 or done or step >= total_steps
        test_acc = test_loss = None
        if (epoch + 1) % train_cfg.eval_every == 0 or last:
            l, c, n = _all_sum(*evaluate(net, test_loader, dtype), device=device)
            test_acc, test_loss = c / n, l / n
        row = {"epoch": epoch + 1, "step": step, "loss": loss_total / max(seen_total, 1),
               "train_acc": correct_total / max(seen_total, 1), "test_loss": test_loss, "test_acc": test_acc,
               "lr": optimizer.param_groups[0]["lr"], "seconds": seconds,
               "images_per_s": seen_total / max(seconds, 1e-9)}
        history.append(row)
        if rank == 0:
            atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "scaler": scaler.state_dict(), "epoch": epoch + 1, "step": step, "history": history,
                         "elapsed": elapsed, "model_cfg": asdict(model_cfg), "train_cfg": asdict(train_cfg)},
                        ckpt_path)
            if progress == "line":
                print_epoch(row)
            for cb in callbacks:
                cb(row)
    if bar is not None:
        bar.close()

    l, c, n = _all_sum(*evaluate(net, full_test, dtype), device=device)
    tested = [r["test_acc"] for r in history if r["test_acc"] is not None]
    record = {
        "key": key, "complete": True, "config": asdict(model_cfg), "train": asdict(train_cfg),
        "seed": train_cfg.seed, "scale": train_cfg.scale, "dataset": data.label,
        "device": device.type, "device_name": device_name(device), "world_size": world,
        "version": __version__, "commit": git_commit(), "torch": torch.__version__,
        "params": count_params(model_cfg), "started": started,
        "seconds": time.perf_counter() - wall0, "train_seconds": elapsed, "steps": step,
        "epochs_run": len(history), "final_acc": c / n, "final_loss": l / n,
        "best_acc": max(tested + [c / n]), "history": history,
    }
    if rank == 0:
        atomic_save(model.state_dict(), path / "model.pt")
        write_json(record, path / "record.json")
        ckpt_path.unlink(missing_ok=True)
        if progress:
            print(f"final test acc {c / n:.4f} on {n:,} {data.label} test images  "
                  f"({record['seconds']:.0f}s on {record['device_name']})")
    return Run(model_cfg, train_cfg, history, record, model.eval(), path)


__all__ = ["train", "evaluate", "build_model", "autocast_dtype", "default_device", "print_epoch"]

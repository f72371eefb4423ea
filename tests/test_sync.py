"""No training step waits for the device: real steps of the smoke model with the study's full
augmentation (crop, flip, AutoAugment in both forms, erasing, Mixup/CutMix, repeats), counted under
a dispatch mode that sees every call that would stop a GPU from running ahead, must count zero; an
epoch reads the device once, at its end. On a GPU each of these calls waits for the queued work;
on this CPU they cost nothing, which is why they are counted rather than timed.

What is counted (`SyncCounter`): a tensor read into Python (`aten._local_scalar_dense`: `.item()`,
`int()`, `float()`, `bool()` of a tensor, `if tensor:`), `Tensor.tolist()` (patched: it reads
without dispatching), `torch.tensor(...)` (patched: Python data made into a tensor, on a GPU a
blocking copy from the host), and the operators whose output size depends on the data (`nonzero`,
`masked_select`, `unique`, `bincount`, `repeat_interleave` by a tensor, boolean-mask indexing),
which wait for the device to size their output.

Not counted: `Tensor.numpy()` and `torch.from_numpy(a).to(device, non_blocking=True)`: the first
cannot run on a GPU tensor at all, the second is an asynchronous copy; the host draws of
`autoaugment.host_generator` go through them, on the CPU where they are drawn.
"""
from __future__ import annotations

import collections
import contextlib
import os

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import poorvit.train as T
from poorvit.augment import TrainTransform
from poorvit.config import get_config, get_train_config
from poorvit.data import DeviceLoader
from poorvit.model import ViT
from poorvit.optim import Clock

aten = torch.ops.aten
SYNC_OPS = {aten._local_scalar_dense.default, aten.nonzero.default, aten.masked_select.default,
            aten.bincount.default, aten._unique2.default, aten.unique_dim.default,
            aten.unique_consecutive.default, aten.repeat_interleave.Tensor, aten.equal.default}
MASK_INDEXING = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default}


class SyncCounter(TorchDispatchMode):
    """Counts the calls that synchronize a GPU with its host (see the module's docstring) while
    active: `counts` {name: calls}, `total`."""

    def __init__(self):
        super().__init__()
        self.counts = collections.Counter()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in SYNC_OPS:
            self.counts[str(func)] += 1
        elif func in MASK_INDEXING and any(
                isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8)
                for i in args[1] if i is not None):
            self.counts[f"{func} with a boolean mask"] += 1
        return func(*args, **kwargs)


@contextlib.contextmanager
def counting(monkeypatch):
    """A `SyncCounter`, with `Tensor.tolist` and `torch.tensor` counted too."""
    counter = SyncCounter()
    real_tolist, real_tensor = torch.Tensor.tolist, torch.tensor

    def tolist(self):
        counter.counts["Tensor.tolist"] += 1
        return real_tolist(self)

    def tensor(*args, **kwargs):
        counter.counts["torch.tensor"] += 1
        return real_tensor(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(torch.Tensor, "tolist", tolist)
        m.setattr(torch, "tensor", tensor)
        with counter:
            yield counter


# the study's full augmentation on the smoke model, every op on: mixed batches, repeats, clipping
FULL = dict(autoaugment=True, random_erasing=0.25, mixup_alpha=1.0, cutmix_alpha=1.0,
            mix_prob=0.5, repeats=3, crop_pad=4, flip=True, grad_clip=1.0, label_smoothing=0.1,
            batch_size=16, train_subset=0, precision="fp32")
CASES = {"torchvision AutoAugment, AdamW": dict(augment_impl="torchvision", optimizer="adamw"),
         "study AutoAugment, permuted partners, Lion": dict(augment_impl="study",
                                                            mix_partner="permute",
                                                            optimizer="lion")}


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    return (torch.randint(0, 256, (96, 3, 32, 32), dtype=torch.uint8, generator=g),
            torch.randint(0, 10, (96,), generator=g))


def _setup(images, **over):
    """(TrainStep, loader, transform) as `train()` builds them, AdamW fused as on a GPU."""
    cfg = get_train_config("smoke", **{**FULL, **over})
    torch.manual_seed(0)
    step = T.TrainStep(ViT(get_config("smoke")), cfg, "cpu", fused=cfg.optimizer == "adamw")
    transform = TrainTransform.from_config(cfg)
    loader = DeviceLoader(*images, cfg.batch_size, True, "cpu", cfg.seed, transform,
                          repeats=cfg.repeats)
    return step, loader, transform


def _steps(step, loader, transform, monkeypatch, n: int, inject=None):
    """Sync counts of `n` whole steps (the next batch, augmented; the step; the epoch sums as
    `_train_epoch` keeps them), after one uncounted step; and what the mixing did on each."""
    batches = iter(loader)
    step(*next(batches))                               # the first step allocates; not counted
    sums = T.EpochSums(torch.device("cpu")) if hasattr(T, "EpochSums") else None
    mixed = []
    with counting(monkeypatch) as counter:
        for _ in range(n):
            x, y = next(batches)
            loss, logits = step(x, y)
            if sums is not None:
                sums.add(loss, logits, y)
            if inject is not None:
                inject(loss)
            mixed.append(transform.last["op"])
    return counter, mixed


@pytest.mark.parametrize("case", list(CASES))
def test_training_steps_with_the_full_augmentation_never_wait_for_the_device(images, case,
                                                                             monkeypatch):
    step, loader, transform = _setup(images, **CASES[case])
    counter, mixed = _steps(step, loader, transform, monkeypatch, n=4)
    assert counter.total == 0, f"{case}: synchronizing calls in 4 steps: {dict(counter.counts)}"
    assert len(set(mixed)) >= 2          # the counted steps mixed some batches and not others


def test_the_counter_catches_one_injected_read(images, monkeypatch):
    step, loader, transform = _setup(images, **CASES["torchvision AutoAugment, AdamW"])
    counter, _ = _steps(step, loader, transform, monkeypatch, n=2, inject=lambda loss: loss.item())
    assert dict(counter.counts) == {"aten._local_scalar_dense.default": 2}     # one per step
    with counting(monkeypatch) as counter:
        torch.ones(3).tolist()
        torch.tensor([1.0, 2.0])
        torch.arange(4)[torch.arange(4) > 1]
    assert counter.total == 3 and "Tensor.tolist" in counter.counts


def test_an_epoch_reads_the_device_once_and_a_nan_still_names_its_first_step(images, tmp_path,
                                                                             monkeypatch):
    step, loader, _ = _setup(images, **CASES["torchvision AutoAugment, AdamW"])
    step(*next(iter(loader)))         # not counted: the optimizer's state, AutoAugment's tables
    clock = Clock(step_cfg := get_train_config("smoke", **FULL, epochs=2))
    clock.plan(len(loader))
    state = T._Progress()
    with counting(monkeypatch) as counter:
        loss, correct, seen, _ = T._train_epoch(step, loader, clock, state, tmp_path / "ckpt.pt")
    assert state.step == len(loader) == 6 and seen == 6 * step_cfg.batch_size
    assert counter.total == 1, dict(counter.counts)     # the epoch's sums, in one read
    assert loss > 0 and 0 <= correct <= seen
    state.epoch += 1                                    # as train() does after an epoch
    with torch.no_grad():                               # the next epoch's first step is bad
        step.model.head.bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match=r"at step 6 \(epoch 2\)"):
        T._train_epoch(step, loader, clock, state, tmp_path / "ckpt.pt")


@pytest.mark.parametrize("optimizer, per_step", [("adamw", 0), ("lion", 1)])
def test_float16_with_the_gradient_scaler(images, optimizer, per_step, monkeypatch):
    """float16 (a GPU without bfloat16, e.g. a T4): the scaler hands its inf check to the fused
    AdamW (no read); Lion is not fused, so the scaler reads the inf flag once per step: what is
    left of the syncs, and where (poorvit.train's docstring)."""
    step, loader, transform = _setup(images, optimizer=optimizer, precision="fp16")
    assert step.dtype == torch.float16 and step.scaler.is_enabled()
    counter, _ = _steps(step, loader, transform, monkeypatch, n=3)
    assert counter.total == 3 * per_step, dict(counter.counts)


@pytest.mark.skipif(not (torch.cuda.is_available() and os.environ.get("POORVIT_TEST_GPU") == "1"),
                    reason="needs a CUDA GPU and POORVIT_TEST_GPU=1")
@pytest.mark.parametrize("case", list(CASES))
def test_on_a_gpu_no_step_synchronizes(images, case):
    """The same steps on a GPU under `torch.cuda.set_sync_debug_mode("error")`: any call that
    waits for the device (a read, a blocking copy, a data-dependent size) raises."""
    cfg = get_train_config("smoke", **{**FULL, **CASES[case], "precision": "auto"})
    torch.manual_seed(0)
    step = T.TrainStep(ViT(get_config("smoke")).cuda(), cfg, "cuda")
    loader = DeviceLoader(*images, cfg.batch_size, True, "cuda", cfg.seed,
                          TrainTransform.from_config(cfg), repeats=cfg.repeats)
    batches = iter(loader)
    step(*next(batches))
    sums = T.EpochSums(torch.device("cuda"))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(4):
            x, y = next(batches)
            sums.add(*step(x, y), y)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert sums.read()[2] == 4 * cfg.batch_size

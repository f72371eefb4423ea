"""Optimizers and the learning-rate schedule.

* AdamW (Loshchilov & Hutter, arXiv 1711.05101) from torch, with no weight decay on norms, biases,
  positional embeddings and class tokens (decaying those pulls them to zero for no gain), unless
  the recipe's `decay_all` asks for the study's code, which decays every parameter.
* Lion (Chen et al., "Symbolic Discovery of Optimization Algorithms", arXiv 2302.06675) from
  lion-pytorch: the sign of an interpolated momentum, so every coordinate moves by exactly lr; it
  keeps one state tensor per parameter where AdamW keeps two. `ForeachLion` runs its update on all
  parameters at once (the same numbers, a few kernels a step on a GPU).
* Muon (Jordan et al., "Muon: an optimizer for hidden layers in neural networks", 2024;
  `torch.optim.Muon`, PyTorch >= 2.9): Nesterov momentum whose update matrix is orthogonalized by a
  few Newton-Schulz iterations, for the 2-D weight matrices inside the blocks; `MuonAdamW` steps it
  beside AdamW, which takes the patch embedding, positions, class tokens, norms, biases and head.
* Linear warmup then cosine decay to `min_lr`, a function of training progress in [0, 1] so it can
  follow steps or wall time, set on the optimizer every iteration; `Clock` says what that progress
  is, by steps or, for a run on a time budget, by the clock.
"""
from __future__ import annotations

import inspect
import math
import time

import torch
import torch.nn as nn
from lion_pytorch import Lion

from .config import TrainConfig


def param_groups(model: nn.Module, weight_decay: float, decay_all: bool = False) -> list[dict]:
    """Two groups: matrices and conv kernels are decayed; norms, biases, positions and class tokens
    are not (with `decay_all`, they are too: the study's code decays every parameter).

    A patch conv whose first channels are frozen by the whitening init (`frozen_channels > 0`) is
    not decayed either, so that the frozen filters stay exactly as written.
    """
    frozen = {id(m.proj.weight) for m in model.modules() if getattr(m, "frozen_channels", 0)}
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        exempt = p.ndim < 2 or name.endswith(("pos_embed", "cls_token"))
        if (exempt and not decay_all) or id(p) in frozen:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, cfg: TrainConfig,
                   fused: bool | None = None) -> torch.optim.Optimizer:
    """AdamW, Lion or Muon (`MuonAdamW`) over `param_groups(model)`, at the peak learning rate
    `cfg.lr` (Muon's matrices at `cfg.muon_lr`). AdamW is
    fused (one kernel for the whole update) on a GPU unless `fused` says otherwise (see
    `adamw_kind`); Lion ignores `fused`. Fused AdamW also takes the float16 gradient scaler's inf
    check on the device (`_step_supports_amp_scaling`), so a scaled step never waits for the GPU;
    Lion (`ForeachLion`, lion-pytorch's update on all parameters at once) leaves the scaler to
    read the inf flag once a step, and the CPU's default for-loop AdamW reads its step counter,
    a CPU tensor
    (tests/test_sync.py). The CPU keeps the for-loop AdamW: fused would change the CPU's numbers
    at the same seed."""
    if cfg.optimizer == "muon":
        return MuonAdamW(model, cfg, fused=fused)
    groups = param_groups(model, cfg.weight_decay, cfg.decay_all)
    if cfg.optimizer == "lion":
        return ForeachLion(groups, lr=cfg.lr, betas=lion_betas(cfg), weight_decay=cfg.weight_decay)
    on_cuda = next(model.parameters()).is_cuda
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                             weight_decay=cfg.weight_decay,
                             fused=on_cuda if fused is None else fused)


class ForeachLion(Lion):
    """lion-pytorch's `Lion` (the study's optimizer), its update run over all the parameters at
    once with torch's multi-tensor ops (`torch._foreach_*`): the same arithmetic in the same
    order as its `update_fn` (weight decay, the sign of the interpolated momentum, the momentum
    update), a few kernel launches a step on a GPU instead of eight per parameter tensor (~900
    for the paper model, milliseconds of host time a step). On a CPU the multi-tensor ops run
    tensor by tensor: the same numbers as `Lion` (tests/test_train.py)."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            lr, wd, (beta1, beta2) = group["lr"], group["weight_decay"], group["betas"]
            if self.decoupled_wd:
                wd /= self._init_lr
            for p in params:
                if len(self.state[p]) == 0:
                    self.state[p]["exp_avg"] = torch.zeros_like(p)
            grads = [p.grad for p in params]
            exp_avgs = [self.state[p]["exp_avg"] for p in params]
            torch._foreach_mul_(params, 1.0 - lr * wd)
            update = torch._foreach_mul(exp_avgs, beta1)
            torch._foreach_add_(update, grads, alpha=1.0 - beta1)
            torch._foreach_sign_(update)
            torch._foreach_add_(params, update, alpha=-lr)
            torch._foreach_mul_(exp_avgs, beta2)
            torch._foreach_add_(exp_avgs, grads, alpha=1.0 - beta2)
        return loss


def muon_matrices(model: nn.Module) -> list[str]:
    """Names of the parameters Muon trains: the trainable 2-D weight matrices inside the
    transformer blocks (attention projections, low-rank factors, MLP layers). The patch embedding
    (a 4-D conv kernel), positions, class tokens, norms, biases and the head stay with AdamW, as in
    Muon's own recipe: the first and last layers and the vectors are not hidden-layer matrices."""
    return [name for name, p in model.named_parameters()
            if p.requires_grad and p.ndim == 2 and name.startswith("blocks.")]


class MuonAdamW:
    """`torch.optim.Muon` for the blocks' matrices (`muon_matrices`) and `torch.optim.AdamW` for
    every other parameter (`param_groups`, with `cfg.weight_decay` and `decay_all`), stepped as one
    optimizer: `param_groups` lists Muon's group then AdamW's, `step`, `zero_grad`, `state` and
    `state_dict` cover both (a checkpoint keeps both states).

    Muon's group runs at peak lr `cfg.muon_lr` with weight decay `cfg.muon_weight_decay`, Nesterov
    momentum `cfg.muon_momentum`, 5 Newton-Schulz steps with torch's coefficients and its default
    shape scaling (the update times sqrt(max(1, fan_out / fan_in))). `set_lr` moves both groups
    along one schedule: each group's `lr_scale` (Muon's: muon_lr / lr) multiplies the scheduled
    lr. Raises RuntimeError on a PyTorch without `torch.optim.Muon` (before 2.9), saying to
    upgrade or to choose adamw or lion."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, fused: bool | None = None):
        muon_cls = getattr(torch.optim, "Muon", None)
        if muon_cls is None:
            raise RuntimeError(f"optimizer='muon' needs torch.optim.Muon (PyTorch 2.9 or later; "
                               f"this is {torch.__version__}): upgrade torch, or set "
                               f"optimizer='adamw' or 'lion'")
        names = set(muon_matrices(model))
        matrices = [p for name, p in model.named_parameters() if name in names]
        if not matrices:
            raise ValueError("optimizer='muon' found no 2-D matrices inside the model's blocks")
        ids = {id(p) for p in matrices}     # every other trainable parameter: AdamW's groups
        rest = [{**g, "params": [p for p in g["params"] if id(p) not in ids]}
                for g in param_groups(model, cfg.weight_decay, cfg.decay_all)]
        self.muon = muon_cls([{"params": matrices, "lr_scale": cfg.muon_lr / cfg.lr}],
                             lr=cfg.muon_lr, weight_decay=cfg.muon_weight_decay,
                             momentum=cfg.muon_momentum, nesterov=True)
        on_cuda = matrices[0].is_cuda
        self.adamw = torch.optim.AdamW([g for g in rest if g["params"]], lr=cfg.lr,
                                       betas=(cfg.beta1, cfg.beta2),
                                       weight_decay=cfg.weight_decay,
                                       fused=on_cuda if fused is None else fused)

    @property
    def param_groups(self) -> list[dict]:
        """Muon's group, then AdamW's (the live dicts: a group's lr set here is the one used)."""
        return self.muon.param_groups + self.adamw.param_groups

    @property
    def state(self) -> dict:
        """Per-parameter state of both optimizers (Muon: a momentum buffer; AdamW: two moments)."""
        return {**self.muon.state, **self.adamw.state}

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.muon.step()
        self.adamw.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none=set_to_none)
        self.adamw.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != {"muon", "adamw"}:
            raise ValueError("the optimizer state is not a Muon + AdamW state (keys "
                             f"{sorted(state)[:4]}): it comes from a run with another optimizer")
        self.muon.load_state_dict(state["muon"])
        self.adamw.load_state_dict(state["adamw"])


def lion_betas(cfg: TrainConfig) -> tuple[float, float]:
    """Lion's (beta1, beta2) for a recipe: `lion-pytorch`'s own defaults (read from its signature:
    (0.9, 0.99), what the study's `Lion(params, lr, weight_decay)` ran) or the recipe's
    (beta1, beta2)."""
    if cfg.lion_betas == "lion-pytorch":
        return tuple(inspect.signature(Lion).parameters["betas"].default)
    return cfg.beta1, cfg.beta2


def adamw_kind(opt: torch.optim.Optimizer) -> str:
    """Which implementation an AdamW step runs: "fused" (one kernel for the whole update), "foreach"
    (a few operations over lists of tensors) or "for-loop" (several operations per parameter
    tensor: torch's default on a CPU when neither is asked for)."""
    group = opt.param_groups[0]
    if group.get("fused"):
        return "fused"
    if group.get("foreach") or (group.get("foreach") is None
                                and next(iter(group["params"])).is_cuda):
        return "foreach"
    return "for-loop"


def lr_at(progress: float, lr: float, min_lr: float, warmup: float) -> float:
    """Learning rate at `progress` in [0, 1] of training (clamped): linear from 0 over the first
    `warmup` fraction, then a half cosine from `lr` down to `min_lr` at progress 1."""
    progress = min(max(progress, 0.0), 1.0)
    if warmup > 0 and progress < warmup:
        return lr * progress / warmup
    t = (progress - warmup) / max(1.0 - warmup, 1e-12)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * t))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group: `lr`, times the group's `lr_scale` where it
    has one (Muon's matrices in `MuonAdamW`: muon_lr / lr)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def state_floats_per_param(optimizer: torch.optim.Optimizer) -> float:
    """Floats of optimizer state kept per model parameter (AdamW: 2, Lion: 1), after at least one
    step (before it, the state is empty: 0)."""
    n_params = sum(p.numel() for g in optimizer.param_groups for p in g["params"])
    n_state = sum(v.numel() for s in optimizer.state.values() for v in s.values()
                  if torch.is_tensor(v) and v.numel() > 1)
    return n_state / n_params



class Clock:
    """Training progress in [0, 1], by steps or, with a time budget, by the clock; and the lr there.

    With `train_cfg.minutes > 0` the budget covers the whole run from this object's creation (build,
    training, evaluations, checkpoints): progress is the training time over what the budget leaves
    for training once the time spent outside training and `reserve` seconds (the final evaluation)
    are taken out; training keeps at least half the budget. `plan` must be called before `progress`.
    """

    def __init__(self, train_cfg: TrainConfig):
        self.start = self.now()
        self.cfg, self.budget = train_cfg, train_cfg.minutes * 60
        self.total_steps, self.n_epochs, self.reserve = 1, 1, 0.0

    def plan(self, steps_per_epoch: int, reserve: float = 0.0) -> None:
        """The step count (`epochs` x `steps_per_epoch`, at least 1), the number of epochs (a
        fractional `epochs` ends inside its last one) and the seconds kept for after training:
        `reserve` plus 1 % of the budget for the last epoch's evaluation and checkpoint (0 if no
        budget; with 0.5 % and a 10 % margin on the estimate, 10-minute runs took up to 605 s)."""
        self.total_steps = max(1, math.ceil(self.cfg.epochs * steps_per_epoch))
        self.n_epochs = math.ceil(self.cfg.epochs)
        self.reserve = reserve + 0.01 * self.budget if self.budget else 0.0

    @staticmethod
    def now() -> float:
        """The run's clock, in seconds (`time.perf_counter`): every duration of a run reads it."""
        return time.perf_counter()

    def progress(self, step: int, elapsed: float, t0: float) -> float:
        """Progress before step `step`: `elapsed` seconds of training before this epoch, which began
        at `t0` (a `now()` reading)."""
        if not self.budget:
            return step / self.total_steps
        now = self.now()
        trained = elapsed + now - t0
        outside = max(now - self.start - trained, 0.0)           # build, evaluations, checkpoints
        return trained / max(self.budget - outside - self.reserve, self.budget / 2)

    def lr(self, progress: float) -> float:
        """The warmup-cosine learning rate at `progress` (warmup: `warmup_epochs / epochs`)."""
        cfg = self.cfg
        return lr_at(progress, cfg.lr, cfg.min_lr, cfg.warmup_epochs / cfg.epochs)

    def finished(self, state) -> bool:
        """No more epochs: the clock or the step count ended training (`state`: a run's
        progress, with `done` and `step`, as `train()` keeps it)."""
        return state.done or state.step >= self.total_steps

__all__ = ["param_groups", "make_optimizer", "ForeachLion", "MuonAdamW", "muon_matrices",
           "lion_betas", "adamw_kind", "lr_at", "set_lr", "Clock", "state_floats_per_param"]

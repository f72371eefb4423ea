"""Configurations: the model (`ViTConfig`), the recipe (`TrainConfig`), named presets, scales.

One source of truth for every number the course uses. Notebooks, the CLI and the tests take a preset
and override a few fields; they never retype a size. The `paper` preset is the baseline of
Wu, *Powerful Design of Small Vision Transformer on CIFAR10* (arXiv 2501.06220).

    cfg = get_config("paper", n_kv_head=4)          # a model preset plus overrides
    tcfg = get_train_config("smoke", epochs=2)       # a scale's training recipe plus overrides
    scale = default_scale()                          # POORVIT_SCALE, or demo with CUDA, else smoke

A config that cannot work raises `ValueError` at construction, naming the field, the value and what
would be valid, never as a shape error in the middle of a forward pass.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch


def _check(ok: bool, name: str, value: Any, valid: str) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r} is not valid: {valid}.")


def _check_choice(name: str, value: Any, choices) -> None:
    _check(value in choices, name, value, "choose one of " + ", ".join(repr(c) for c in choices))


# torch.compile's modes a recipe may ask for (`TrainConfig.compile`; True is "default").
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def _plain_values(cfg) -> None:
    """Replace numpy scalars and 0-d tensors in `cfg`'s fields by plain Python numbers (`.item()`),
    so that records (JSON) and checkpoints (`torch.load(weights_only=True)`) hold only plain types:
    `get_train_config(lr=np.logspace(-3, -2, 3)[0])` stores `lr` as a float."""
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        if isinstance(v, np.generic) or (isinstance(v, torch.Tensor) and v.ndim == 0):
            object.__setattr__(cfg, f.name, v.item())


def n_tokens(image_size: int, patch_size: int, n_cls: int = 1) -> int:
    """Tokens attention sees, T: (image_size / patch_size)^2 patches (N) plus `n_cls` class tokens;
    the one formula (`ViTConfig.n_tokens`, `cost.patch_cost`).

    Raises `ValueError` when `patch_size` does not divide `image_size`."""
    if image_size % patch_size:
        raise ValueError(f"patch_size={patch_size} must divide image_size={image_size}")
    return (image_size // patch_size) ** 2 + n_cls


@dataclass(frozen=True)
class ViTConfig:
    """The architecture of a small Vision Transformer. Derived sizes are properties.

    Two different low-rank ideas live here, named apart: `q_rank`/`kv_rank` are the widths of MLA's
    latents (DeepSeek-V2, arXiv 2405.04434); `lowrank`/`lowrank_dim` are the study's own bottleneck
    (Wu, arXiv 2501.06220) on the projections it names.
    """

    image_size: int = 32          # side of the square input image, pixels
    in_chans: int = 3             # input channels (3 for RGB)
    patch_size: int = 4           # side of a square patch, pixels; N = (image_size / patch_size)^2
    patch_kernel: int = 0         # side of the window each token sees (0: = patch_size); larger
                                  #   windows overlap, centred on their patch (zero padding at the
                                  #   borders), with the same stride
    stem: str = "patch"           # images to tokens: "patch" (one linear map per patch: a ViT's
                                  #   own) or "conv" (3x3 convolutions of stride 2, BatchNorm, ReLU,
                                  #   then a 1x1 convolution: Xiao et al., arXiv 2106.14881)
    n_embd: int = 192             # width of every token (channels, C)
    n_layer: int = 9              # number of transformer blocks
    n_head: int = 12              # query heads (H); each head is n_embd / n_head channels wide (d)
    n_kv_head: int | None = None  # key/value heads: None (= n_head) is MHA, 1 is MQA, a divisor of
                                  #   n_head is GQA
    q_rank: int = 0               # MLA: width of the low-rank query latent (0: full-rank queries)
    kv_rank: int = 0              # MLA: width of the one latent keys and values come from (0: off)
    lowrank: str = ""             # the study's bottleneck: which of "q", "k", "v" pass through it
    lowrank_dim: int = 64         # width of that bottleneck (channels); 64 in the study
    mlp_ratio: float = 2.0        # hidden width of the MLP / n_embd
    n_cls: int = 1                # number of class tokens prepended to the patch tokens
    cls_head: str = "concat"      # tokens to logits: the class tokens "concat"enated (the study's
                                  #   code) or their "mean", or "gap": the mean of the patch tokens
                                  #   (global average pooling; n_cls may be 0)
    pos_embed: str = "learned"    # positional embedding: "learned", "sincos" (fixed 2-D) or "none"
    drop_path: float = 0.1        # stochastic-depth rate of the last block; block i gets
                                  #   i / (n_layer - 1) of it
    patch_drop: float = 0.0       # training only: share of patch tokens dropped per image (0: off)
    n_classes: int = 10           # classifier outputs
    qkv_bias: bool = True         # bias on the query/key/value projections
    norm_eps: float = 1e-5        # eps of every LayerNorm (the study's code: 1e-6)
    init: str = "course"          # "course": `init.init_weights`' table (trunc-normal cut at
                                  #   ±2 std, the patch conv included); "study": the study's
                                  #   code (its trunc_normal_ cuts at ±2 absolute, so at std 0.02
                                  #   a plain normal; the patch conv keeps PyTorch's default init)

    def __post_init__(self):
        _plain_values(self)
        self._check_sizes()
        self._check_attention()
        C = self.n_embd
        _check(self.mlp_ratio > 0 and int(C * self.mlp_ratio) >= 1, "mlp_ratio", self.mlp_ratio,
               "a positive number")
        _check_choice("cls_head", self.cls_head, ("concat", "mean", "gap"))
        _check_choice("pos_embed", self.pos_embed, ("learned", "sincos", "none"))
        _check(self.norm_eps > 0, "norm_eps", self.norm_eps, "a positive number such as 1e-5")
        _check_choice("init", self.init, ("course", "study"))
        if self.pos_embed == "sincos":
            _check(C % 4 == 0, "n_embd", C, "2-D sin-cos positions need a width divisible by 4")
        _check(0.0 <= self.drop_path < 1.0, "drop_path", self.drop_path, "a probability in [0, 1)")
        _check(0.0 <= self.patch_drop < 1.0, "patch_drop", self.patch_drop, "a fraction in [0, 1)")

    def _check_sizes(self) -> None:
        """Whole-number sizes, patches that tile the image, windows centred on their patch."""
        for name in ("image_size", "in_chans", "patch_size", "n_embd", "n_layer", "n_head", "n_cls",
                     "n_classes"):
            v = getattr(self, name)
            least = 0 if name == "n_cls" and self.cls_head == "gap" else 1
            _check(isinstance(v, int) and not isinstance(v, bool) and v >= least, name, v,
                   "a whole number >= 1"
                   + (" (0 class tokens only with cls_head='gap')" if name == "n_cls" else ""))
        _check(self.image_size % self.patch_size == 0, "patch_size", self.patch_size,
               f"it must divide image_size={self.image_size} (e.g. {_divisors(self.image_size)})")
        _check_choice("stem", self.stem, ("patch", "conv"))
        if self.stem == "conv":
            p = self.patch_size
            _check(p >= 2 and p & (p - 1) == 0 and self.patch_kernel == 0, "patch_size", p,
                   "the conv stem halves the image per 3x3 convolution: a power of 2 >= 2, and "
                   "no patch_kernel")
        k, p = self.patch_kernel, self.patch_size
        _check(k == 0 or (k >= p and (k - p) % 2 == 0), "patch_kernel", k,
               f"0, or patch_size={p} plus an even number of pixels "
               "(a window centred on its patch)")

    def _check_attention(self) -> None:
        """Heads that divide the width, GQA groups that divide the heads, MLA ranks and the study's
        bottleneck within the width, and never two compressions of the same projection."""
        C = self.n_embd
        _check(C % self.n_head == 0, "n_head", self.n_head,
               f"it must divide n_embd={C} (e.g. {_divisors(C)})")
        kv = self.kv_heads
        _check(isinstance(kv, int) and 1 <= kv <= self.n_head and self.n_head % kv == 0,
               "n_kv_head", self.n_kv_head,
               f"it must divide n_head={self.n_head} (e.g. {_divisors(self.n_head)}), "
               "or be None for MHA")
        for name in ("q_rank", "kv_rank"):
            # a rank of n_embd saves nothing, but lets a test build full-rank MLA from a config
            r = getattr(self, name)
            _check(isinstance(r, int) and 0 <= r <= C, name, r,
                   f"0 turns MLA off; a latent is 1 .. n_embd={C} wide")
        _check(isinstance(self.lowrank, str) and set(self.lowrank) <= set("qkv")
               and len(set(self.lowrank)) == len(self.lowrank), "lowrank", self.lowrank,
               'a subset of "qkv" such as "q", "kv" or "qkv", or "" for none')
        if self.lowrank:
            _check(0 < self.lowrank_dim < C, "lowrank_dim", self.lowrank_dim,
                   f"1 .. {C - 1} (narrower than n_embd)")
        _check(not (self.q_rank and "q" in self.lowrank), "lowrank", self.lowrank,
               "q_rank already compresses the queries; drop 'q' from lowrank or set q_rank=0")
        _check(not (self.kv_rank and set("kv") & set(self.lowrank)), "lowrank", self.lowrank,
               "kv_rank already compresses keys and values; "
               "drop 'k'/'v' from lowrank or set kv_rank=0")

    # derived sizes
    @property
    def kv_heads(self) -> int:
        """Key/value heads actually used (n_head when n_kv_head is None)."""
        return self.n_head if self.n_kv_head is None else self.n_kv_head

    @property
    def head_dim(self) -> int:
        """Channels per head, d = n_embd / n_head."""
        return self.n_embd // self.n_head

    @property
    def kernel(self) -> int:
        """Side of the window the patch embedding reads per token (patch_kernel, or patch_size)."""
        return self.patch_kernel or self.patch_size

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.image_size // self.patch_size

    @property
    def n_patches(self) -> int:
        """Patch tokens, N = grid^2."""
        return self.grid ** 2

    @property
    def n_tokens(self) -> int:
        """Sequence length seen by attention, T: class tokens plus patch tokens (`n_tokens`)."""
        return n_tokens(self.image_size, self.patch_size, self.n_cls)

    @property
    def mlp_hidden(self) -> int:
        return int(self.n_embd * self.mlp_ratio)

    @property
    def attention_kind(self) -> str:
        """A short name: MHA, GQA, MQA, MLA or low-rank (the study's bottleneck)."""
        if self.q_rank or self.kv_rank:
            return "MLA"
        if self.lowrank:
            return f"low-rank {self.lowrank}"
        return "MHA" if self.kv_heads == self.n_head else "MQA" if self.kv_heads == 1 else "GQA"


def _divisors(n: int) -> str:
    return ", ".join(str(d) for d in range(1, n + 1) if n % d == 0)


# Named model presets. Sizes in the comments are parameter counts (a unit test holds them).
PRESETS: dict[str, dict] = {
    # the study's baseline: patch 4, 192 wide, 9 blocks, 12 heads, MLP ratio 2    2,697,610 params
    # (LayerNorm eps and init as the study's code: models/build_model.py, models/vit.py)
    "paper": dict(patch_size=4, n_embd=192, n_layer=9, n_head=12, mlp_ratio=2.0, drop_path=0.1,
                  norm_eps=1e-6, init="study"),
    # the CPU recipe's model: trains to a useful accuracy in minutes on two cores  ~0.5 M params
    # (half of the patch tokens dropped in training, so each step costs about half; no class
    # token: the classifier reads the average of the patch tokens. results/cpu/README.md: how each
    # choice was measured)
    "cpu": dict(patch_size=4, n_embd=128, n_layer=4, n_head=4, mlp_ratio=2.0, drop_path=0.0,
                patch_drop=0.5, n_cls=0, cls_head="gap"),
    # the chapters' smoke-scale model: seconds per epoch of a subset on a CPU       ~0.1 M params
    "smoke": dict(patch_size=4, n_embd=64, n_layer=4, n_head=4, mlp_ratio=2.0, drop_path=0.0),
    # unit tests: the smallest model that still exercises every code path           ~15 k params
    "micro": dict(patch_size=8, n_embd=32, n_layer=2, n_head=4, mlp_ratio=2.0, drop_path=0.0),
}


def get_config(name: str = "paper", **overrides) -> ViTConfig:
    """The model preset `name` with `overrides` applied, validated (a bad field: `ValueError`)."""
    _check_choice("preset", name, tuple(PRESETS))
    return _build(ViTConfig, {**PRESETS[name], **overrides})


@dataclass(frozen=True)
class TrainConfig:
    """A training recipe. The defaults are the study's recipe in its main settings; the `paper`
    scale adds the study's code where it differs from the course's chapters (`SCALES`, `_STUDY`;
    `study.FIDELITY` lists every setting)."""

    epochs: float = 100            # epochs of n samples each (n / repeats distinct images with
                                   #   repeated augmentation)
    minutes: float = 0.0           # > 0: a wall-clock budget for the whole run, final evaluation
                                   #   included; warmup and decay follow the clock, `epochs` a cap
    batch_size: int = 256          # images per optimizer step (summed over all processes)
    optimizer: str = "adamw"       # "adamw", "lion" or "muon" (Muon for the blocks' matrices,
                                   #   AdamW at lr/weight_decay for everything else)
    lr: float = 1e-3               # peak learning rate, reached at the end of warmup
    min_lr: float = 1e-6           # learning rate at the end of the cosine decay
    weight_decay: float = 0.05     # decoupled weight decay (none on norms, biases, positions,
                                   #   class tokens unless decay_all)
    decay_all: bool = False        # True: decay every parameter (the study's code)
    beta1: float = 0.9             # first-moment decay (AdamW) / interpolation (Lion)
    beta2: float = 0.999           # second-moment decay (AdamW) / momentum (Lion)
    muon_lr: float = 0.02          # Muon's peak lr (its matrices follow the same warmup-cosine
                                   #   schedule, muon_lr / lr times the AdamW groups' lr)
    muon_weight_decay: float = 0.0  # Muon's decoupled weight decay (torch: p -= lr * wd * p)
    muon_momentum: float = 0.95    # Muon's Nesterov momentum
    lion_betas: str = "shared"     # Lion's betas: "shared" (beta1, beta2 above) or "lion-pytorch"
                                   #   (that package's own defaults, (0.9, 0.99): the study's code)
    warmup_epochs: float = 10      # linear warmup length, epochs (a fraction of `minutes` when
                                   #   timed: see train.py)
    label_smoothing: float = 0.1   # mass spread evenly over all classes in the target
    grad_clip: float = 0.0         # max global gradient norm; 0 turns clipping off
    train_subset: int = 0          # train on the first n training images (0: all 50,000)
    test_subset: int = 0           # evaluate during training on the first n test images (0: all)
    crop_pad: int = 4              # random crop after zero-padding by this many pixels (0: no crop)
    flip: bool = True              # random horizontal flip
    autoaugment: bool = True       # AutoAugment, CIFAR-10 policy
    random_erasing: float = 0.25   # probability of erasing one random rectangle per image
    augment_impl: str = "torchvision"  # AutoAugment and erasing as torchvision's ("torchvision")
                                   #   or as the study's code ("study": grey fill, one-way rotation,
                                   #   bicubic shear; erasing area 0.02-0.4, mean constants)
    mixup_alpha: float = 1.0       # Beta(alpha, alpha) for Mixup (0: off)
    cutmix_alpha: float = 1.0      # Beta(alpha, alpha) for CutMix (0: off)
    mix_prob: float = 0.5          # fraction of batches that get Mixup or CutMix (one, evenly)
    mix_partner: str = "reverse"   # whom a sample mixes with: "reverse" (the reversed batch, timm)
                                   #   or "permute" (a random permutation: the study's code)
    repeats: int = 3               # repeated augmentation: each drawn image appears this many
                                   #   times, side by side
    full_repeats: bool = False     # True: an epoch shows every image `repeats` times (n * repeats
                                   #   samples: the study's sampler); False: n samples, n / repeats
                                   #   distinct images (DeiT's)
    whiten: str = "off"            # patch-embedding init from data: "off", "trainable", "frozen"
    whiten_eps: float = 1e-2       # added to the eigenvalues before 1/sqrt in the whitening filters
    whiten_source: str = "images"  # the whitening sample: "images" (the first training images
                                   #   as stored, normalized) or "loader" (augmented, normalized
                                   #   batches of the training loader, unmixed: the study's code)
    whiten_images: int = 10_000    # images in that sample ("loader": batches until more than this)
    ema: float = 0.0               # > 0: evaluate (and keep) an exponential moving average of the
                                   #   weights with this decay per step, e.g. 0.999 (0: off)
    tta_flip: bool = False         # evaluate each test image and its mirror image (mean logits)
    patch_drop_until: float = 1.0  # share of training after which PatchDropout stops and every
                                   #   token is seen (1: throughout; the model's patch_drop rate)
    precision: str = "auto"        # "auto" (bf16/fp16 on CUDA, fp32 on CPU), "fp32", "bf16", "fp16"
    compile: bool | str = False    # torch.compile the step: False, True (torch's default mode) or
                                   #   a mode of COMPILE_MODES ("reduce-overhead": CUDA graphs)
    eval_every: int = 1            # evaluate on the test set every n epochs (and always at the end)
    seed: int = 0                  # seeds weights, data order and augmentation
    scale: str = "custom"          # the scale this recipe came from (smoke, demo ...), for records

    def __post_init__(self):
        _plain_values(self)
        _check(self.epochs > 0, "epochs", self.epochs, "a positive number of epochs")
        _check(self.minutes >= 0, "minutes", self.minutes,
               "0 (no time budget) or a positive number")
        _check(isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size",
               self.batch_size, "a whole number >= 1")
        _check_choice("optimizer", self.optimizer, ("adamw", "lion", "muon"))
        _check(self.muon_lr > 0, "muon_lr", self.muon_lr, "a positive learning rate")
        _check(self.muon_weight_decay >= 0, "muon_weight_decay", self.muon_weight_decay,
               "0 or more")
        _check(0 <= self.muon_momentum < 1, "muon_momentum", self.muon_momentum,
               "a number in [0, 1)")
        _check_choice("compile", self.compile, (False, True) + COMPILE_MODES)
        _check(self.lr > 0, "lr", self.lr, "a positive learning rate")
        _check(0 <= self.min_lr <= self.lr, "min_lr", self.min_lr, f"between 0 and lr={self.lr}")
        _check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "0 or more")
        for name in ("beta1", "beta2"):
            _check(0 <= getattr(self, name) < 1, name, getattr(self, name), "a number in [0, 1)")
        _check(0 <= self.warmup_epochs, "warmup_epochs", self.warmup_epochs, "0 or more")
        # a warmup as long as the run never reaches the peak lr and never decays; timed runs too:
        # their warmup is the fraction warmup_epochs / epochs of the budget (train.Clock.lr)
        _check(self.warmup_epochs < self.epochs, "warmup_epochs",
               self.warmup_epochs, f"the warmup must end before the run does (epochs="
               f"{self.epochs:g}): lower warmup_epochs (e.g. warmup_epochs={self.epochs / 10:g}) "
               f"or raise epochs")
        _check(0 <= self.label_smoothing < 1, "label_smoothing", self.label_smoothing,
               "a number in [0, 1)")
        _check(self.grad_clip >= 0, "grad_clip", self.grad_clip, "0 (off) or a positive norm")
        for name in ("train_subset", "test_subset", "crop_pad"):
            v = getattr(self, name)
            _check(isinstance(v, int) and v >= 0, name, v, "0 or a whole number")
        _check(0 <= self.random_erasing <= 1, "random_erasing", self.random_erasing,
               "a probability in [0, 1]")
        _check(self.mixup_alpha >= 0 and self.cutmix_alpha >= 0, "mixup_alpha/cutmix_alpha",
               (self.mixup_alpha, self.cutmix_alpha), "0 (off) or a positive Beta parameter")
        _check(0 <= self.mix_prob <= 1, "mix_prob", self.mix_prob, "a probability in [0, 1]")
        _check(isinstance(self.repeats, int) and self.repeats >= 1, "repeats", self.repeats,
               "a whole number >= 1")
        _check_choice("whiten", self.whiten, ("off", "trainable", "frozen"))
        _check(self.whiten_eps > 0, "whiten_eps", self.whiten_eps, "a positive number")
        _check_choice("whiten_source", self.whiten_source, ("images", "loader"))
        _check(isinstance(self.whiten_images, int) and self.whiten_images >= 1, "whiten_images",
               self.whiten_images, "a whole number >= 1")
        _check_choice("lion_betas", self.lion_betas, ("shared", "lion-pytorch"))
        _check_choice("augment_impl", self.augment_impl, ("torchvision", "study"))
        _check_choice("mix_partner", self.mix_partner, ("reverse", "permute"))
        _check(0 <= self.ema < 1, "ema", self.ema, "0 (off) or a decay in (0, 1), e.g. 0.999")
        _check(0 <= self.patch_drop_until <= 1, "patch_drop_until", self.patch_drop_until,
               "a share of training in [0, 1] (1: PatchDropout throughout)")
        _check_choice("precision", self.precision, ("auto", "fp32", "bf16", "fp16"))
        _check(isinstance(self.eval_every, int) and self.eval_every >= 1, "eval_every",
               self.eval_every, "a whole number >= 1")


def planned_steps(cfg: TrainConfig, n_train: int = 50_000) -> tuple[int, int]:
    """(optimizer steps per epoch, steps in the run) of a step-based recipe on `n_train` training
    images (at most `train_subset`), as `data.DeviceLoader` and `train.Clock` count them: an epoch
    is n samples (n * repeats with `full_repeats`), drop-last. A timed recipe (`minutes > 0`)
    stops on the clock: its second number is then only the cap."""
    n = min(cfg.train_subset or n_train, n_train) * (cfg.repeats if cfg.full_repeats else 1)
    per_epoch = n // cfg.batch_size
    return per_epoch, max(1, math.ceil(cfg.epochs * per_epoch))


# The scales: the same code from a CPU in CI to a GPU. Each names a model preset, a recipe, whether
# the chapters (notebooks) run at it, and what it is for; a chapter scale also says how much chapter
# 9 measures ("profile": batch size, timed steps, warm-up steps, whether to include torch.compile).
# The order is the reports' (`report.SCALE_ORDER`). The recipes:
_PLAIN = dict(autoaugment=False, random_erasing=0.0, mixup_alpha=0.0, cutmix_alpha=0.0, repeats=1)
# the CPU recipe family: AdamW at a high peak lr with small batches (more steps in a short budget),
# label smoothing 0.1, horizontal flips only: a few epochs are too short for heavy augmentation to
# pay back, and even random crops cost more than they teach while the model underfits
# (results/cpu/README.md)
_CPU = dict(batch_size=32, lr=3e-3, weight_decay=0.05, label_smoothing=0.1, **_PLAIN, crop_pad=0)
# The CPU recipes keep the course's own defaults where the study's code differs, on purpose: no
# decay on norms, biases, positions and class tokens (decay_all=False: decaying them pulls them to
# zero for no gain, chapter 5); the whitening sample of real images with eps 1e-2 (chapter 7: the
# few-epoch runs gain from damping the noisy directions); AutoAugment and erasing are off (_PLAIN);
# one pass per epoch (few steps: every step sees a new image); float32 on a CPU anyway.
# The study's code, setting by setting (../shared/STUDY.md; `study.FIDELITY` shows each one):
_STUDY = dict(
    full_repeats=True,            # an epoch = 3 passes (repeated augmentation 3): 585 steps of 256
    lion_betas="lion-pytorch",    # Lion(lr, weight_decay) with the package's betas (0.9, 0.99)
    decay_all=True,               # AdamW/Lion over model.parameters(): every parameter decayed
    augment_impl="study",         # DeepVoltaire's AutoAugment port, Zhong et al.'s erasing
    mix_partner="permute",        # x[randperm(B)]; its mixed loss equals ours on soft targets
    whiten_eps=5e-4, whiten_source="loader", whiten_images=5000,   # airbench's whitening
)
# Issue 17's budget for the `demo` scale: each chapter's trainings in at most this many seconds on a
# T4 (Colab's free GPU) in float16, so that a chapter opened from the book runs within a session
# (`poorvit.ledger` estimates each chapter's time; `python -m poorvit chapters --check`, in CI).
DEMO_BUDGET_S = 300.0
SCALES: dict[str, dict] = {
    # 3 epochs of 5,000 images (470 steps of 32): ~15 s of training on 2 free cores; step-based,
    # so cacheable
    "smoke": {"model": "smoke", "notebooks": True,
              "for": "a CPU or CI: seconds a run on a subset; the model must still learn",
              "train": dict(_CPU, epochs=3, warmup_epochs=0.3, train_subset=5000,
                            test_subset=1000),
              # chapter 9's measurement: the paper model at a batch a CPU steps in well under a
              # second; no torch.compile (tens of seconds to compile)
              "profile": dict(batch_size=32, steps=6, warmup=1, compile=False),
              # named regimes a chapter trains at each scale (poorvit.ledger re-derives them):
              # chapter 3's small data, no augmentation, until it overfits (ch03_first_vit)
              "regimes": {"small data": dict(train_subset=1000, epochs=30, eval_every=2)}},
    "demo": {"model": "paper", "notebooks": True,
             "for": "one GPU: the study's model and recipe on a short schedule, at most "
                    f"~{DEMO_BUDGET_S / 60:g} minutes of training a chapter on Colab's T4",
             # the study's recipe shortened to fit issue 17's budget: each chapter's trainings in
             # at most ~5 minutes on a T4 in float16, and the busiest chapters train 5 runs, so a
             # run gets about a minute (`python -m poorvit chapters --check` holds it, from the
             # FLOPs of the trainings the chapters really run: poorvit/ledger.py). 4 epochs of
             # 50,000 samples (780 steps of 256; repeated augmentation 3 as in the study, but an
             # epoch is one pass of samples, not the study's 3: a learning curve with 4 points),
             # warmup 10 % as in the study; mixed precision (float16 on a T4) and an evaluation
             # every epoch (the chapters plot the curve; evaluating does not change training)
             "train": dict(_STUDY, full_repeats=False, epochs=4, warmup_epochs=0.4),
             # chapter 9: the study's batch of 256 on a GPU, torch.compile included
             "profile": dict(batch_size=256, steps=10, warmup=3, compile=True),
             "regimes": {"small data": dict(train_subset=5000, epochs=30, eval_every=5)}},
    # the study's code: 100 epochs of 585 steps (58,500), the forward in float32 as its code ran
    # it (autocast only in its CutMix-only branch), an evaluation every 5 epochs
    "paper": {"model": "paper", "notebooks": True,
              "for": "the study's full recipe: its model, 100 epochs",
              "train": dict(_STUDY, precision="fp32", eval_every=5),
              "profile": dict(batch_size=256, steps=30, warmup=5, compile=True),
              "regimes": {"small data": dict(train_subset=5000, epochs=30, eval_every=5)}},
    # 10 minutes of wall time in all (build, train, final evaluation); warmup 3 % of the budget;
    # `epochs` a cap. lr 1e-3, not the smoke's 3e-3: the cpu model is wider (128 vs 64), and at
    # 3e-3 a wide model learned far less (results/cpu/levers-2min-128x6-lr3e-3.json: 21 % vs 45 %
    # after 2 minutes)
    "cpu": {"model": "cpu", "notebooks": False,
            "for": "the CPU recipe, a wall-clock command-line run (`python -m poorvit train "
                   "--preset cpu`: all of CIFAR-10 in 10 minutes on 2 cores), not the chapters",
            "train": dict(_CPU, lr=2e-3, minutes=10, epochs=100, warmup_epochs=3,
                          whiten="trainable", test_subset=1000, optimizer="muon",
                          muon_lr=0.005, patch_drop_until=0.8, tta_flip=True)},
}

# The scales the chapters take (`poorvit.course.setup()` refuses the others).
NOTEBOOK_SCALES: tuple[str, ...] = tuple(name for name, s in SCALES.items() if s["notebooks"])

# Model presets that come with a recipe of their own: `python -m poorvit train --preset cpu` trains
# the `cpu` model with the `cpu` recipe (unless --scale names another recipe).
PRESET_SCALES: dict[str, str] = {"cpu": "cpu"}


def default_scale() -> str:
    """`POORVIT_SCALE` if set, else `demo` where the default device (`device.default_device`:
    `POORVIT_DEVICE`, else CUDA where present) is a GPU, else `smoke`.

    Raises `ValueError` naming the scales when `POORVIT_SCALE` names none of them."""
    from .device import default_device
    name = (os.environ.get("POORVIT_SCALE", "").strip()
            or ("demo" if default_device().type == "cuda" else "smoke"))
    _check_choice("POORVIT_SCALE", name, tuple(SCALES))
    return name


def get_train_config(scale: str | None = None, **overrides) -> TrainConfig:
    """The recipe of `scale` (default: `default_scale()`) with `overrides` applied."""
    scale = scale or default_scale()
    _check_choice("scale", scale, tuple(SCALES))
    return _build(TrainConfig, {**SCALES[scale]["train"], "scale": scale, **overrides})


def scale_model(scale: str | None = None, **overrides) -> ViTConfig:
    """The model preset a scale trains (the `smoke` model on a CPU, the study's `paper` model on a
    GPU), with `overrides` applied."""
    scale = scale or default_scale()
    _check_choice("scale", scale, tuple(SCALES))
    return get_config(SCALES[scale]["model"], **overrides)


def _build(cls, values: dict):
    valid = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - valid)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field {', '.join(unknown)}; "
                         f"valid fields: {', '.join(sorted(valid))}.")
    return cls(**values)


def with_overrides(cfg, **overrides):
    """`dataclasses.replace` that names the valid fields when one is unknown."""
    return _build(type(cfg), {**asdict(cfg), **overrides})


def to_dict(cfg) -> dict:
    """A JSON-ready dict of a config (for run records and cache keys)."""
    return asdict(cfg)


__all__ = ["ViTConfig", "TrainConfig", "COMPILE_MODES", "PRESETS", "SCALES", "NOTEBOOK_SCALES",
           "PRESET_SCALES", "get_config", "get_train_config", "planned_steps", "scale_model",
           "default_scale", "with_overrides", "n_tokens", "to_dict"]

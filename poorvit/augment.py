"""Batched data augmentation on the training device, each sample drawing its own random parameters.

A ViT has no built-in locality or translation bias, so on 50,000 images it needs far more
augmentation than a CNN (DeiT, Touvron et al., arXiv 2012.12877). The study's recipe (Wu, arXiv
2501.06220), in order: random crop (zero padding 4) and horizontal flip; AutoAugment with the
CIFAR-10 policy (Cubuk et al., arXiv 1805.09501); normalization; random erasing (Zhong et al., arXiv
1708.04896) with probability 0.25; then on half of the batches either Mixup (Zhang et al., arXiv
1710.09412) or CutMix (Yun et al., arXiv 1905.04899), Beta(1, 1) each. Label smoothing is not here:
`train()`'s `nn.CrossEntropyLoss(label_smoothing=...)` applies it to class ids and soft targets
alike, which equals folding it into the mixed targets as timm's `Mixup` does.

Every op works on a whole batch at once on the device the batch lives on, and every random number
comes from the loader's seeded generator (torchvision's ops take none), so a seed reproduces an
epoch exactly. Nothing waits for the device: the draws that decide Python control flow
(AutoAugment's grouping of samples by op, whether and how a batch is mixed, a CutMix box) come from
the host stream that goes with the generator (`autoaugment.host_generator`: the generator itself on
a CPU, so a CPU epoch draws exactly what it drew before; a CPU generator seeded from it on a GPU),
every other draw stays on the device, and no tensor is made from Python data per batch
(tests/test_sync.py counts).

    transform = TrainTransform.from_config(train_cfg, n_classes=10)
    x, target = transform(x_uint8, y, generator)   # float normalized images; class ids, or
                                                   # (B, n_classes) soft targets when mixed
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .autoaugment import AutoAugment, apply_op, cifar10_policy, host_generator, op_magnitude
from .config import TrainConfig
from .data import MEAN, STD, normalize

# The augmentation fields of TrainConfig, in pipeline order (`study.study_augmentation()` reads the
# study's values of them).
AUGMENT_FIELDS = ("crop_pad", "flip", "autoaugment", "random_erasing", "mixup_alpha",
                  "cutmix_alpha", "mix_prob", "augment_impl", "mix_partner")


def random_crop(x: torch.Tensor, pad: int, g: torch.Generator | None = None,
                flip: float = 0.0) -> torch.Tensor:
    """Zero-pad by `pad` and cut a random window of the original size, a different one per sample;
    with `flip` > 0 also mirror left-right the samples that draw heads (probability `flip`), in the
    same gather: the one horizontal flip of the package (`random_crop(x, 0, g, flip=0.5)` flips
    alone). Draws nothing with both off; else, in order, the row offsets, the column offsets
    (also when `pad` is 0) and the flips.
    x: (B, C, H, W), any dtype."""
    if pad == 0 and not flip:
        return x
    B, C, H, W = x.shape
    Hp, Wp = H + 2 * pad, W + 2 * pad
    padded = F.pad(x, (pad, pad, pad, pad)).reshape(B, C, Hp * Wp)
    dy = torch.randint(0, 2 * pad + 1, (B,), device=x.device, generator=g)
    dx = torch.randint(0, 2 * pad + 1, (B,), device=x.device, generator=g)
    rows = dy[:, None] + torch.arange(H, device=x.device)                     # (B, H)
    cols = torch.arange(W, device=x.device).expand(B, W)                      # (B, W)
    if flip:
        mirror = torch.rand(B, device=x.device, generator=g) < flip
        cols = torch.where(mirror[:, None], W - 1 - cols, cols)
    index = (rows[:, :, None] * Wp + (dx[:, None] + cols)[:, None, :]).view(B, 1, H * W)
    return padded.gather(2, index.expand(B, C, H * W)).view(B, C, H, W)


# ---- random erasing, Mixup, CutMix -------------------------------------------------------------

def random_erasing(x: torch.Tensor, p: float, g: torch.Generator | None = None, scale=(0.02, 0.33),
                   ratio=(0.3, 3.3), value: float | tuple = 0.0, tries: int = 10,
                   log_ratio: bool = True) -> torch.Tensor:
    """Erase one random rectangle per sample with probability `p` (torchvision's `RandomErasing`
    rule: area a uniform fraction `scale` of the image, log aspect ratio uniform in `ratio`, the
    first of `tries` draws that fits), filled with `value` (0 on normalized images: the dataset's
    mean colour; a tuple: one value per channel). All samples at once. `log_ratio=False`: the
    aspect ratio itself uniform in `ratio` (Zhong et al.'s code; `STUDY_ERASING` is the study's
    form)."""
    B, C, H, W = x.shape
    dev = x.device
    u_area = torch.rand(B, tries, device=dev, generator=g)
    area = H * W * (scale[0] + (scale[1] - scale[0]) * u_area)
    u_ratio = torch.rand(B, tries, device=dev, generator=g)
    if log_ratio:
        log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u_ratio
    else:
        log_r = torch.log(ratio[0] + (ratio[1] - ratio[0]) * u_ratio)
    h = torch.sqrt(area * log_r.exp()).round().long()
    w = torch.sqrt(area / log_r.exp()).round().long()
    fits = (h < H) & (w < W)
    first = fits.long().argmax(1, keepdim=True)      # the first draw that fits (0 when none does)
    h, w = h.gather(1, first)[:, 0], w.gather(1, first)[:, 0]
    u = torch.rand(B, 3, device=dev, generator=g)
    erase = (u[:, 0] < p) & fits.any(1)
    top = (u[:, 1] * (H - h + 1)).long()
    left = (u[:, 2] * (W - w + 1)).long()
    rows = torch.arange(H, device=dev)
    cols = torch.arange(W, device=dev)
    inside = (((rows >= top[:, None]) & (rows < (top + h)[:, None]))[:, :, None]
              & ((cols >= left[:, None]) & (cols < (left + w)[:, None]))[:, None, :])   # (B, H, W)
    mask = (inside & erase[:, None, None])[:, None]
    if isinstance(value, (tuple, list)):         # per channel, filled on the device (no copy)
        fill = torch.stack([x.new_full((), v) for v in value]).view(1, C, 1, 1)
        return torch.where(mask, fill, x)
    return x.masked_fill(mask, value)


# The study's erasing (Zhong et al.'s `RandomErasing(probability, sh=0.4, r1=0.3, mean=...)`,
# `utils/transforms.py`): area 2-40 % of the image, aspect ratio uniform in [0.3, 1/0.3], up to 100
# tries, the constants (0.4914, 0.4822, 0.4465) written into the normalized image.
STUDY_ERASING = dict(scale=(0.02, 0.4), ratio=(0.3, 1 / 0.3), value=MEAN, tries=100,
                     log_ratio=False)


def _partner(t: torch.Tensor, perm: torch.Tensor | None) -> torch.Tensor:
    """Each sample's partner: the reversed batch (perm None), else `t[perm]`."""
    return t.flip(0) if perm is None else t[perm]


def mixup(x: torch.Tensor, target: torch.Tensor, lam: float,
          perm: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend each sample with its partner in the reversed batch: lam * own + (1 - lam) * partner,
    for the images and for the (B, n_classes) soft targets alike (timm's `Mixup`, batch mode);
    `perm` (B,): the partners are `x[perm]` instead (the study's code)."""
    return (x * lam + _partner(x, perm) * (1 - lam),
            target * lam + _partner(target, perm) * (1 - lam))


def cutmix_box(height: int, width: int, lam: float,
               rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of a box of about (1 - lam) of the image, centred uniformly,
    clipped at the borders (timm's `rand_bbox`)."""
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(height * cut), int(width * cut)
    cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
    return (max(cy - ch // 2, 0), min(cy + ch // 2, height),
            max(cx - cw // 2, 0), min(cx + cw // 2, width))


def cutmix(x: torch.Tensor, target: torch.Tensor, box: tuple[int, int, int, int],
           perm: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste the box of each sample's partner (reversed batch, or `x[perm]`) into it; the targets
    mix by the pasted area."""
    top, bottom, left, right = box
    H, W = x.shape[-2:]
    partner = _partner(x, perm)
    x = x.clone()
    x[..., top:bottom, left:right] = partner[..., top:bottom, left:right]
    lam = 1.0 - (bottom - top) * (right - left) / (H * W)
    return x, target * lam + _partner(target, perm) * (1 - lam)


def mix_batch(x: torch.Tensor, y: torch.Tensor, n_classes: int, mixup_alpha: float,
              cutmix_alpha: float, mix_prob: float, g: torch.Generator | None = None,
              partner: str = "reverse", host: torch.Generator | None = None):
    """With probability `mix_prob` mix the batch by Mixup or CutMix (one of the two, evenly, when
    both alphas are on), lam ~ Beta(alpha, alpha). Returns (x, target, info): target is `y` when the
    batch is left alone, else (B, n_classes) soft targets; info says what happened ({"op": None |
    "mixup" | "cutmix", "lam": ...}). `partner="permute"`: each sample mixes with a random
    permutation of the batch (the study's code; its loss `lam * CE(out, y_a) + (1 - lam) *
    CE(out, y_b)` equals cross-entropy on these soft targets, CE being linear in the target).
    The choices (mixed or not, which op, lam, the box) are drawn on the host from `host` (default
    `host_generator(g)`), so no step waits for the device; the permutation is drawn from `g`."""
    choices = [op for op, a in (("mixup", mixup_alpha), ("cutmix", cutmix_alpha)) if a > 0]
    if not choices or mix_prob <= 0:
        return x, y, {"op": None, "lam": 1.0}
    host = host_generator(g) if host is None else host
    # numpy draws Beta from this seed (a host tensor read on the host: no sync)
    seed = int(torch.randint(0, 2 ** 62, (1,), generator=host).numpy()[0])
    rng = np.random.default_rng(seed)
    if rng.random() >= mix_prob:
        return x, y, {"op": None, "lam": 1.0}
    op = choices[int(rng.random() * len(choices))]
    lam = float(rng.beta(*(2 * [mixup_alpha if op == "mixup" else cutmix_alpha])))
    # one-hot targets (F.one_hot checks the labels' range with two host reads on a CPU)
    soft = torch.zeros(len(y), n_classes, device=x.device, dtype=x.dtype).scatter_(1, y[:, None], 1)
    perm = (torch.randperm(len(x), device=x.device, generator=g) if partner == "permute"
            else None)
    if op == "mixup":
        x, target = mixup(x, soft, lam, perm)
        return x, target, {"op": op, "lam": lam}
    box = cutmix_box(x.shape[-2], x.shape[-1], lam, rng)
    x, target = cutmix(x, soft, box, perm)
    pasted = (box[1] - box[0]) * (box[3] - box[2]) / (x.shape[-2] * x.shape[-1])
    return x, target, {"op": op, "lam": 1.0 - pasted, "box": box}


class TrainTransform:
    """The training pipeline: crop, flip, AutoAugment (uint8) -> normalize -> random erasing (float)
    -> Mixup or CutMix (batch). `TrainTransform()` is crop and flip only; `from_config` builds a
    recipe's pipeline.

    Called as `transform(x_uint8, y, generator) -> (x, target)`; `target` is the class ids, or soft
    targets (B, n_classes) when a batch is mixed. `last` holds what the last call's mixing did.
    """

    def __init__(self, crop_pad: int = 4, flip: bool = True, autoaugment: bool = False,
                 random_erasing: float = 0.0, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0,
                 mix_prob: float = 0.5, augment_impl: str = "torchvision",
                 mix_partner: str = "reverse", n_classes: int = 10):
        self.crop_pad, self.flip, self.random_erasing = crop_pad, flip, random_erasing
        self.augment_impl, self.mix_partner = augment_impl, mix_partner
        self.autoaugment = AutoAugment(variant=augment_impl) if autoaugment else None
        self.erasing = STUDY_ERASING if augment_impl == "study" else {}
        self.mixup_alpha, self.cutmix_alpha, self.mix_prob = mixup_alpha, cutmix_alpha, mix_prob
        self.n_classes = n_classes
        self.last = {"op": None, "lam": 1.0}

    @classmethod
    def from_config(cls, cfg: TrainConfig, n_classes: int = 10) -> "TrainTransform":
        return cls(**{name: getattr(cfg, name) for name in AUGMENT_FIELDS}, n_classes=n_classes)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, g: torch.Generator | None = None):
        x = random_crop(x, self.crop_pad, g, flip=0.5 if self.flip else 0.0)
        if self.autoaugment is not None:
            x = self.autoaugment(x, g)
        x = normalize(x)
        if self.random_erasing:
            x = random_erasing(x, self.random_erasing, g, **self.erasing)
        x, target, self.last = mix_batch(x, y, self.n_classes, self.mixup_alpha, self.cutmix_alpha,
                                         self.mix_prob, g, self.mix_partner)
        return x, target

    def __repr__(self) -> str:
        on = [f"crop(pad {self.crop_pad})" if self.crop_pad else "", "flip" if self.flip else "",
              ("AutoAugment(CIFAR-10" + (", study's port)" if self.augment_impl == "study"
                                         else ")")) if self.autoaugment else "", "normalize",
              f"erasing(p {self.random_erasing})" if self.random_erasing else "",
              f"Mixup(alpha {self.mixup_alpha})" if self.mixup_alpha else "",
              f"CutMix(alpha {self.cutmix_alpha})" if self.cutmix_alpha else ""]
        mixing = self.mixup_alpha or self.cutmix_alpha
        mix = f", mixing {self.mix_prob:.0%} of batches" if mixing else ""
        return "TrainTransform(" + " -> ".join(s for s in on if s) + mix + ")"


class PerImage(torch.utils.data.Dataset):
    """The usual torchvision v2 pipeline, one image at a time, for a `torch.utils.data.DataLoader`:
    uint8 (3, H, W) -> normalized float (3, H, W), with the crop, flip, AutoAugment and random
    erasing of `cfg` (no batch mixing: `per_image_loader` adds it). The per-image baseline that
    `TrainTransform` is measured against."""

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


class _MixedBatches:
    """The batches of `loader` with `mix(x, y)` applied to each in the main process."""

    def __init__(self, loader, mix):
        self.loader, self.mix = loader, mix

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for x, y in self.loader:
            yield self.mix(x, y)


def per_image_loader(images: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig,
                     batch_size: int, workers: int = 0, n_classes: int = 10, mix: bool = False,
                     pin_memory: bool = False):
    """The per-image baseline `TrainTransform` is measured against: `PerImage(images, labels, cfg)`
    (uint8 (n, 3, H, W), labels (n,)) in a `torch.utils.data.DataLoader` of `workers` processes,
    shuffled, batches of `batch_size`, the last partial batch dropped. `mix`: the recipe's batch
    Mixup/CutMix as torchvision v2's `MixUp`/`CutMix` (one of the two at random on a share
    `cfg.mix_prob` of the batches), applied in the main process as timm and the study's code do;
    the targets of a mixed batch are then soft (B, n_classes). Used by the `bench loader` command
    (mix=True) and `timing.BenchStep(loader="dataloader")` (no mixing). Returns an iterable of
    (x, target) batches with `len()`."""
    loader = torch.utils.data.DataLoader(
        PerImage(images, labels, cfg), batch_size=batch_size, shuffle=True, drop_last=True,
        num_workers=workers, persistent_workers=workers > 0, pin_memory=pin_memory)
    if not mix:
        return loader
    from torchvision.transforms import v2
    mixers = [cls(alpha=a, num_classes=n_classes)
              for cls, a in ((v2.MixUp, cfg.mixup_alpha), (v2.CutMix, cfg.cutmix_alpha)) if a > 0]
    if not mixers or cfg.mix_prob <= 0:
        return loader
    return _MixedBatches(loader, v2.RandomApply([v2.RandomChoice(mixers)], p=cfg.mix_prob))


__all__ = ["TrainTransform", "PerImage", "per_image_loader", "AutoAugment", "random_crop",
           "random_erasing", "mixup", "cutmix", "cutmix_box", "mix_batch", "apply_op",
           "op_magnitude", "cifar10_policy", "AUGMENT_FIELDS", "STUDY_ERASING"]

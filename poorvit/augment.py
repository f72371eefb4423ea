"""Batched data augmentation on the training device, each sample drawing its own random parameters.

A ViT has no built-in locality or translation bias, so on 50,000 images it needs far more augmentation
than a CNN (DeiT, Touvron et al., arXiv 2012.12877). Every op here works on a whole batch at once on
the device the batch lives on, and every random number comes from the loader's seeded generator, so a
seed reproduces an epoch exactly.

    transform = TrainTransform.from_config(train_cfg, n_classes=10)
    x, target = transform(x_uint8, y, generator)     # float normalized images, class ids or soft targets
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import TrainConfig
from .data import normalize


def random_crop(x: torch.Tensor, pad: int, g: torch.Generator | None = None) -> torch.Tensor:
    """Zero-pad by `pad` and cut a random window of the original size, a different one per sample."""
    if pad == 0:
        return x
    B, C, H, W = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (B,), device=x.device, generator=g)
    dx = torch.randint(0, 2 * pad + 1, (B,), device=x.device, generator=g)
    rows = (dy[:, None] + torch.arange(H, device=x.device))[:, :, None]      # (B, H, 1)
    cols = (dx[:, None] + torch.arange(W, device=x.device))[:, None, :]      # (B, 1, W)
    batch = torch.arange(B, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def random_flip(x: torch.Tensor, g: torch.Generator | None = None, p: float = 0.5) -> torch.Tensor:
    """Mirror left-right the samples that draw heads (probability `p` each)."""
    flip = torch.rand(x.shape[0], device=x.device, generator=g) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


class TrainTransform:
    """The training pipeline: crop and flip (uint8) -> normalize (float).

    Called as `transform(x_uint8, y, generator) -> (x, target)`; `target` is the class ids, or soft
    targets (B, n_classes) when a batch is mixed.
    """

    def __init__(self, crop_pad: int = 4, flip: bool = True, n_classes: int = 10):
        self.crop_pad, self.flip, self.n_classes = crop_pad, flip, n_classes

    @classmethod
    def from_config(cls, cfg: TrainConfig, n_classes: int = 10) -> "TrainTransform":
        for name in ("autoaugment", "random_erasing", "mixup_alpha", "cutmix_alpha"):
            if getattr(cfg, name):
                raise NotImplementedError(f"{name} is not available yet; set {name} to off (0/False)")
        return cls(crop_pad=cfg.crop_pad, flip=cfg.flip, n_classes=n_classes)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, g: torch.Generator | None = None):
        x = random_crop(x, self.crop_pad, g)
        if self.flip:
            x = random_flip(x, g)
        return normalize(x), y


__all__ = ["TrainTransform", "random_crop", "random_flip"]

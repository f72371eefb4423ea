"""The one call at the top of every chapter: scale, device, seed and data, printed for the record.

    course = poorvit.setup()
    # poorvit 0.1.0 | scale smoke | device CPU (x86_64, 2 threads) | data CIFAR-10 (JPEG copy): 50,000 train, 10,000 test
    course.model_cfg, course.train_cfg      # the scale's model and recipe; override with get_config / with_overrides
    run = course.baseline()                 # the scale's plain baseline run: trained once, then loaded from the cache
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import __version__
from .config import TrainConfig, ViTConfig, default_scale, get_train_config, scale_model
from .data import CIFAR10, load_cifar10
from .runs import Run, device_name
from .train import default_device, train


@dataclass
class Course:
    scale: str
    device: torch.device
    data: CIFAR10
    model_cfg: ViTConfig
    train_cfg: TrainConfig
    seed: int

    def train(self, model_cfg: ViTConfig | None = None, train_cfg: TrainConfig | None = None, **kwargs) -> Run:
        """`train()` on this course's data and device; defaults to the scale's model and recipe."""
        return train(model_cfg or self.model_cfg, train_cfg or self.train_cfg, self.data, device=self.device, **kwargs)

    def baseline(self, **kwargs) -> Run:
        """The scale's baseline: its model preset and its recipe, shared by every chapter through the cache."""
        return self.train(**kwargs)


def setup(scale: str | None = None, seed: int = 0, device: str | None = None, quiet: bool = False) -> Course:
    """Pick the scale (`POORVIT_SCALE`, else demo with CUDA, else smoke), seed everything, load CIFAR-10."""
    scale = scale or default_scale()
    torch.manual_seed(seed)
    dev = torch.device(device) if device else default_device()
    data = load_cifar10()
    course = Course(scale, dev, data, scale_model(scale), get_train_config(scale, seed=seed), seed)
    if not quiet:
        print(f"poorvit {__version__} | scale {scale} | device {device_name(dev)} | data {data.label}: "
              f"{len(data.train_y):,} train, {len(data.test_y):,} test images")
    return course


__all__ = ["Course", "setup"]

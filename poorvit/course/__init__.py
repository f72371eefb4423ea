"""What the chapters need, apart from the library: the one setup call, plots and widgets, the
exercise registry, the classroom tools, and one module per chapter (`ch01_tokens` ...
`ch10_together`) holding that chapter's plots, explorers, analyses and exercise checks.

    import poorvit.course
    course = poorvit.course.setup()
    # poorvit 0.1.0 | scale smoke | device CPU (x86_64, 2 threads) | data CIFAR-10 (JPEG copy): ...
    course.model_cfg, course.train_cfg      # the scale's model and recipe
    run = course.baseline()                 # the scale's plain baseline: trained once, then cached

    from poorvit.course import ch07_whitening as ch, plots
    ch.whitening_panel(sigma, 1e-2)

    from poorvit.course import numbers
    numbers(ch3_final_acc=100 * run.final_acc)   # numbers for the book's prose ({glue:text})

This module stays light: it imports no chapter module, and nothing Colab lacks (no myst-nb).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .. import __version__
from ..config import (NOTEBOOK_SCALES, SCALES, TrainConfig, ViTConfig, default_scale,
                      get_train_config, scale_model)
from ..data import CIFAR10, load_cifar10
from ..device import device_name, get_device
from ..ledger import note
from ..runs import Run, run_key, runs_root
from ..train import train


@dataclass
class Course:
    """What `setup()` chose for a chapter: the scale, the device, CIFAR-10 in memory, the scale's
    model and recipe, and the seed; `train()` and `baseline()` train with them."""

    scale: str
    device: torch.device
    data: CIFAR10
    model_cfg: ViTConfig
    train_cfg: TrainConfig
    seed: int

    def train(self, model_cfg: ViTConfig | None = None, train_cfg: TrainConfig | None = None,
              **kwargs) -> Run:
        """`train()` on this course's data and device; defaults to the scale's model and recipe.
        While `POORVIT_CHAPTER` names a chapter (the root conftest.py), each training is noted in
        the run folder's ledger (`ledger.note`: how long each chapter takes at each scale)."""
        model_cfg, train_cfg = model_cfg or self.model_cfg, train_cfg or self.train_cfg
        key = run_key(model_cfg, train_cfg, self.data.label)
        folder = Path(kwargs.get("out") or runs_root() / key)
        cached = kwargs.get("cache", True) and (folder / "record.json").exists()
        run = train(model_cfg, train_cfg, self.data, device=self.device, **kwargs)
        note(run.record, cached)
        return run

    def baseline(self, **kwargs) -> Run:
        """The scale's baseline: its model preset and its recipe, shared by every chapter through
        the cache."""
        return self.train(**kwargs)


def check_scale(scale: str) -> None:
    """Raise ValueError, naming the scales chapters take, when `scale` is not one of them."""
    if scale in NOTEBOOK_SCALES:
        return
    known = "; ".join(f"{s} ({SCALES[s]['for']})" for s in NOTEBOOK_SCALES)
    raise ValueError(f"scale {scale!r} is not one the chapters run at. Chapters take: {known}. "
                     "Set POORVIT_SCALE to one of them. The `cpu` recipe is a wall-clock run of "
                     "its own: python -m poorvit train --preset cpu")


def glue(name: str, value, display: bool = False) -> None:
    """Hand `value` to the book under `name` (myst-nb's `glue`, read by `{glue:text}` roles) when
    myst-nb is installed, as where the book is built; elsewhere (Colab, which does not ship myst-nb)
    nothing, or `value` shown when `display`. The chapters glue every number through this."""
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display:
            from IPython.display import display as show
            show(value)
        return
    myst_glue(name, value, display=display)


def numbers(**values) -> None:
    """Hand several numbers to the book at once, one `glue(name, value)` each: the one call a cell
    makes, at its end, for the numbers its prose quotes (`numbers(ch3_final_acc=100 * acc,
    ch3_epochs=n)`). Nothing is shown; on Colab (no myst-nb) it does nothing."""
    for name, value in values.items():
        glue(name, value)


def setup(scale: str | None = None, seed: int = 0, device: str | None = None,
          quiet: bool = False) -> Course:
    """Pick the scale (`POORVIT_SCALE`, else demo with CUDA, else smoke), seed everything, load
    CIFAR-10. A scale the chapters cannot run at (`cpu`, the CLI's wall-clock recipe) is refused."""
    scale = scale or default_scale()
    check_scale(scale)
    torch.manual_seed(seed)
    dev = get_device(device)
    data = load_cifar10()
    course = Course(scale, dev, data, scale_model(scale), get_train_config(scale, seed=seed), seed)
    if not quiet:
        print(f"poorvit {__version__} | scale {scale} | device {device_name(dev)} | "
              f"data {data.label}: {len(data.train_y):,} train, {len(data.test_y):,} test images")
    return course


__all__ = ["Course", "setup", "check_scale", "glue", "numbers"]

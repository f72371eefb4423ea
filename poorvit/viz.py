"""Plots for the course, one import for all of them: `from poorvit import viz`.

Every function draws on a matplotlib `Axes` (made for you when not given) and returns the figure or
axes, with labelled axes, so a chapter can add a one-line caption. Images are (3, H, W) or (B, 3, H, W)
tensors, uint8 or normalized floats (undone with CIFAR-10's statistics). The plots live in four modules:

* `viz_basic`: image, patch and class grids, attention on an image, filters, curves, confusion matrices,
  bars, markdown tables;
* `viz_tokens`: chapters 1-3 (patches and their cost, positions, attention per head, softmax saturation);
* `viz_recipe`: chapters 4, 5 and 9 (augmented views, schedules, optimizer paths, the phases of a step);
* `viz_design`: chapters 6-8 (attention variants, whitening, many class tokens).
"""
from .viz_basic import *  # noqa: F401,F403
from .viz_design import *  # noqa: F401,F403
from .viz_recipe import *  # noqa: F401,F403
from .viz_tokens import *  # noqa: F401,F403
from . import viz_basic, viz_design, viz_recipe, viz_tokens

__all__ = viz_basic.__all__ + viz_tokens.__all__ + viz_recipe.__all__ + viz_design.__all__

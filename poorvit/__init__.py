"""poorvit: small Vision Transformers that train well on CIFAR-10.

The package behind the course *Powerful design of small Vision Transformers on CIFAR-10*, after
Wu, *Powerful Design of Small Vision Transformer on CIFAR10* (arXiv 2501.06220). One module per concept:
config, tokens, attention, model, init, data, augment, optim, train, profile, viz, widgets, exercises;
the plots live in viz_* and the exercise checks in checks_* modules, reached through viz and exercises.
"""
__version__ = "0.1.0"

from .attention import Attention, explicit_attention
from .config import (PRESETS, SCALES, TrainConfig, ViTConfig, default_scale, get_config, get_train_config,
                     scale_model)
from .model import ViT, count_params, flops_per_image, model_report
from .course import setup

__all__ = ["Attention", "explicit_attention", "PRESETS", "SCALES", "TrainConfig", "ViTConfig", "default_scale",
           "get_config", "get_train_config", "scale_model", "ViT", "count_params", "flops_per_image", "model_report",
           "setup", "__version__"]

"""poorvit: small Vision Transformers that train well on CIFAR-10.

The library behind the course *Powerful design of small Vision Transformers on CIFAR-10*, after Wu,
*Powerful Design of Small Vision Transformer on CIFAR10* (arXiv 2501.06220). Read it in this order:

    config.py     ViTConfig, TrainConfig, the named presets and the scales
    tokens.py     images -> patch tokens (+ class tokens, positions)
    attention.py  one Attention for MHA, GQA, MQA, MLA and the study's low-rank bottleneck
    model.py      Block and ViT
    train.py      the one training step and train()

and beside them: data.py (CIFAR-10, the device-resident loader), augment.py and autoaugment.py,
init.py (init and whitening), optim.py (AdamW, Lion, the schedule), device.py (devices and
precisions), runs.py (run records and the cache), cost.py (every closed-form count, the FLOP
counter), timing.py (the synchronized timer, the phases of a step), study.py (the study's numbers,
rows and recipe), sweep.py and report.py. The chapters' own code is in `poorvit.course`, the
commands in `poorvit.cli`; importing `poorvit` loads neither.
"""
__version__ = "0.1.0"

from .attention import Attention
from .config import (PRESETS, SCALES, TrainConfig, ViTConfig, default_scale, get_config,
                     get_train_config, scale_model)
from .cost import count_params, flops_per_image, model_report
from .model import ViT

__all__ = ["Attention", "PRESETS", "SCALES", "TrainConfig", "ViTConfig", "default_scale",
           "get_config", "get_train_config", "scale_model", "ViT", "count_params",
           "flops_per_image", "model_report", "__version__"]

"""The Vision Transformer: pre-norm blocks over [class tokens; patch tokens], a classifier head.

Dosovitskiy et al., arXiv 2010.11929; the small-model settings follow Wu, arXiv 2501.06220. Several
class tokens (`n_cls`) are pooled for the classifier either by concatenation into one linear head
(the study's code) or by their mean. With `n_cls == 1` both are the usual ViT head on the one class
token. `cls_head="gap"` instead averages the patch tokens (global average pooling, as in Beyer et
al., "Better plain ViT baselines for ImageNet-1k", arXiv 2205.01580); it needs no class token.

Shapes: images (B, 3, H, W); tokens (B, T, C) with T = n_cls + N, N patch tokens.

    model = ViT(get_config("paper"))
    logits = model(images)                   # (B, n_classes)
    feats = model.forward_features(images)   # (B, T, C), normalized
    maps = model.attention_maps(images)      # (n_layer, B, H, T, T)

Parameter and FLOP counts are in `poorvit.cost` (`count_params`, `flops_per_image`, `model_report`).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn as nn

from .attention import Attention, explicit_attention
from .config import ViTConfig
from .init import init_weights
from .tokens import TokenEmbed


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """`module` (and every submodule) in eval mode inside the `with` block; on any exit, an
    exception or an interrupt included, each submodule gets back the mode it had (train or eval).

        with eval_mode(model):
            logits = model(x)
    """
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth (Huang et al., arXiv 1603.09382): drop a residual branch for whole samples.

    The kept samples are scaled by 1 / (1 - p) through the (B, 1, 1) mask, not the (B, T, C)
    tensor: one full-size op fewer forward and backward (about 2 % of a CPU training step of the
    `paper` model)."""
    if p == 0.0 or not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - p).div_(1 - p)
    return x * keep


def patch_dropout(x: torch.Tensor, p: float, n_cls: int, training: bool) -> torch.Tensor:
    """PatchDropout (Liu et al., arXiv 2208.07220): in training keep a random `1 - p` of each
    image's patch tokens (class tokens always), positions already added; evaluation sees every
    token. (B, n_cls + N, C) -> (B, n_cls + keep, C). Every block then costs about `1 - p` as much:
    a cheaper step that also regularises."""
    if p == 0.0 or not training:
        return x
    B, T, C = x.shape
    N = T - n_cls
    keep = max(1, round(N * (1 - p)))
    idx = torch.rand(B, N, device=x.device).argsort(dim=1)[:, :keep] + n_cls          # (B, keep)
    return torch.cat([x[:, :n_cls], x.gather(1, idx[..., None].expand(-1, -1, C))], dim=1)


class MLP(nn.Sequential):
    """Linear (C -> hidden), GELU, Linear (hidden -> C)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class Block(nn.Module):
    """x + attn(norm(x)), then x + mlp(norm(x)), each branch dropped per sample with prob
    `drop_path`. (B, T, C) -> (B, T, C)."""

    def __init__(self, cfg: ViTConfig, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps)
        self.attn = Attention(cfg)
        self.norm2 = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps)
        self.mlp = MLP(cfg.n_embd, cfg.mlp_hidden)
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + drop_path(self.attn(self.norm1(x)), self.drop_path, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)


class ViT(nn.Module):
    """Tokens (`TokenEmbed`), `n_layer` pre-norm `Block`s with stochastic depth rising linearly to
    `cfg.drop_path`, a final LayerNorm and a linear head; initialised by `init.init_weights`."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_drop = cfg.patch_drop    # PatchDropout's rate now (a schedule may change it)
        self.tokens = TokenEmbed(cfg)
        rates = [cfg.drop_path * i / max(cfg.n_layer - 1, 1) for i in range(cfg.n_layer)]
        self.blocks = nn.ModuleList(Block(cfg, r) for r in rates)
        self.norm = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps)
        head_in = cfg.n_embd * cfg.n_cls if cfg.cls_head == "concat" else cfg.n_embd
        self.head = nn.Linear(head_in, cfg.n_classes)
        init_weights(self, kind=cfg.init)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Normalized tokens (B, T, C) of images (B, 3, H, W); in training, with `patch_drop`, only
        the kept patch tokens: (B, n_cls + kept, C). The rate is `self.patch_drop` (the config's
        `patch_drop` unless a training schedule changed it: `TrainConfig.patch_drop_until`)."""
        x = patch_dropout(self.tokens(images), self.patch_drop, self.cfg.n_cls, self.training)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits (B, n_classes) from the class tokens of feats (B, T, C), concatenated (the study's
        code) or averaged, or ("gap") from the average of the patch tokens."""
        if self.cfg.cls_head == "gap":
            return self.head(feats[:, self.cfg.n_cls:].mean(dim=1))
        cls = feats[:, : self.cfg.n_cls]                                 # (B, n_cls, C)
        return self.head(cls.flatten(1) if self.cfg.cls_head == "concat" else cls.mean(dim=1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W), normalized -> logits (B, n_classes)."""
        return self.forward_head(self.forward_features(images))

    @torch.no_grad()
    def attention_maps(self, images: torch.Tensor) -> torch.Tensor:
        """All attention maps, stacked: (n_layer, B, H, T, T), computed in eval mode on the explicit
        path (the tokens pass each block as they do when it returns its maps); the mode is restored.
        `images` (B, 3, H, W): uint8 pixels or standardized floats (`data.model_input`: raw float
        pixels raise ValueError)."""
        from .data import model_input     # data imports torchvision: loaded when maps are asked
        with eval_mode(self), explicit_attention(self):
            x, maps = self.tokens(model_input(images)), []
            for block in self.blocks:
                maps.append(block.attn.maps(block.norm1(x)))
                x = block(x)
        return torch.stack(maps)


__all__ = ["ViT", "Block", "MLP", "drop_path", "patch_dropout", "eval_mode"]

"""The Vision Transformer: pre-norm blocks over [class tokens; patch tokens], a classifier on the class tokens.

Dosovitskiy et al., arXiv 2010.11929; the small-model settings follow Wu, arXiv 2501.06220. Several
class tokens (`n_cls`) are pooled for the classifier either by concatenation into one linear head (the
study's code) or by their mean. With `n_cls == 1` both are the usual ViT head on the one class token.
`cls_head="gap"` instead averages the patch tokens (global average pooling, as in Beyer et al., "Better
plain ViT baselines for ImageNet-1k", arXiv 2205.01580); it needs no class token (`n_cls=0`).

    model = ViT(get_config("paper"))
    logits = model(images)                                  # (B, n_classes)
    feats, maps = model.forward_features(images, return_attn=True)   # maps: one (B, H, T, T) per block
    model_report(cfg)                                       # parameters and FLOPs per image
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from .attention import Attention, explicit_attention
from .config import ViTConfig
from .init import init_weights
from .tokens import TokenEmbed


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth (Huang et al., arXiv 1603.09382): drop a residual branch for whole samples.

    The kept samples are scaled by 1 / (1 - p) through the (B, 1, 1) mask, not the (B, N, C) tensor: one
    full-size op fewer forward and backward (about 2 % of a CPU training step of the `paper` model)."""
    if p == 0.0 or not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - p).div_(1 - p)
    return x * keep


def patch_dropout(x: torch.Tensor, p: float, n_cls: int, training: bool) -> torch.Tensor:
    """PatchDropout (Liu et al., arXiv 2208.07220): in training keep a random `1 - p` of each image's patch
    tokens (class tokens always), positions already added; evaluation sees every token. (B, n_cls + N, C) ->
    (B, n_cls + keep, C). Every block then costs about `1 - p` as much: a cheaper step that also regularises."""
    if p == 0.0 or not training:
        return x
    B, T, C = x.shape
    N = T - n_cls
    keep = max(1, round(N * (1 - p)))
    idx = torch.rand(B, N, device=x.device).argsort(dim=1)[:, :keep] + n_cls          # (B, keep)
    return torch.cat([x[:, :n_cls], x.gather(1, idx[..., None].expand(-1, -1, C))], dim=1)


class MLP(nn.Sequential):
    def __init__(self, dim: int, hidden: int):
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class Block(nn.Module):
    """x + attn(norm(x)), then x + mlp(norm(x)), each branch dropped per sample with prob `drop_path`."""

    def __init__(self, cfg: ViTConfig, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.n_embd)
        self.attn = Attention(cfg.n_embd, cfg.n_head, cfg.kv_heads, cfg.q_rank, cfg.kv_rank, cfg.lowrank,
                              cfg.lowrank_dim, bias=cfg.qkv_bias)
        self.norm2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = MLP(cfg.n_embd, cfg.mlp_hidden)
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor, return_attn: bool = False):
        a = self.attn(self.norm1(x), return_attn=return_attn)
        a, attn = a if return_attn else (a, None)
        x = x + drop_path(a, self.drop_path, self.training)
        x = x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)
        return (x, attn) if return_attn else x


class ViT(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.cfg = cfg
        self.tokens = TokenEmbed(cfg)
        rates = [cfg.drop_path * i / max(cfg.n_layer - 1, 1) for i in range(cfg.n_layer)]
        self.blocks = nn.ModuleList(Block(cfg, r) for r in rates)
        self.norm = nn.LayerNorm(cfg.n_embd)
        head_in = cfg.n_embd * cfg.n_cls if cfg.cls_head == "concat" else cfg.n_embd
        self.head = nn.Linear(head_in, cfg.n_classes)
        init_weights(self)

    def forward_features(self, images: torch.Tensor, return_attn: bool = False):
        """Normalized tokens (B, n_cls + N, C); with `return_attn`, also a list of per-block maps (B, H, T, T)."""
        x = patch_dropout(self.tokens(images), self.cfg.patch_drop, self.cfg.n_cls, self.training)
        maps = []
        for block in self.blocks:
            if return_attn:
                x, attn = block(x, return_attn=True)
                maps.append(attn)
            else:
                x = block(x)
        x = self.norm(x)
        return (x, maps) if return_attn else x

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits from the class tokens, concatenated (the study's code) or averaged, or ("gap") from the
        average of the patch tokens."""
        if self.cfg.cls_head == "gap":
            return self.head(feats[:, self.cfg.n_cls:].mean(dim=1))
        cls = feats[:, : self.cfg.n_cls]                                 # (B, n_cls, C)
        return self.head(cls.flatten(1) if self.cfg.cls_head == "concat" else cls.mean(dim=1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(images))

    @torch.no_grad()
    def attention_maps(self, images: torch.Tensor) -> torch.Tensor:
        """All attention maps, stacked: (n_layer, B, n_head, T, T), computed in eval mode."""
        was = self.training
        self.eval()
        _, maps = self.forward_features(images, return_attn=True)
        self.train(was)
        return torch.stack(maps)


def count_params(cfg: ViTConfig) -> int:
    """The parameter count in closed form (a unit test holds it equal to the built model)."""
    C, H, d = cfg.n_embd, cfg.n_head, cfg.head_dim
    kv = cfg.kv_heads * d

    def lin(i, o, bias=True):
        return i * o + (o if bias else 0)

    def latent(r, o, norm):          # down (no bias), RMSNorm weight, up
        return C * r + (r if norm else 0) + lin(r, o, cfg.qkv_bias)

    def proj(o, which):
        return latent(cfg.lowrank_dim, o, False) if which in cfg.lowrank else lin(C, o, cfg.qkv_bias)

    q = latent(cfg.q_rank, C, True) if cfg.q_rank else proj(C, "q")
    k_v = latent(cfg.kv_rank, 2 * kv, True) if cfg.kv_rank else proj(kv, "k") + proj(kv, "v")
    block = 2 * 2 * C + q + k_v + lin(C, C) + lin(C, cfg.mlp_hidden) + lin(cfg.mlp_hidden, C)
    embed = lin(cfg.in_chans * cfg.kernel ** 2, C) + cfg.n_cls * C
    embed += cfg.n_tokens * C if cfg.pos_embed == "learned" else 0
    head = lin(C * cfg.n_cls if cfg.cls_head == "concat" else C, cfg.n_classes)
    return embed + cfg.n_layer * block + 2 * C + head


def flops_per_image(model: nn.Module, image_size: int | None = None, backward: bool = False) -> dict:
    """FLOPs of one image's forward (and, with `backward`, forward + backward), measured with
    `torch.utils.flop_counter`; attention runs on its explicit path so that every matmul is counted.
    Returns {"total": int, "by_module": {name: int}} (a multiply-add counts as 2 FLOPs)."""
    cfg = getattr(model, "cfg", None)
    size = image_size or cfg.image_size
    p = next(model.parameters())
    x = torch.zeros(1, cfg.in_chans if cfg else 3, size, size, device=p.device, dtype=p.dtype)
    was = model.training
    model.eval()
    with explicit_attention(), FlopCounterMode(display=False) as counter:
        out = model(x)
        if backward:
            out.sum().backward()
    model.train(was)
    if backward:
        model.zero_grad(set_to_none=True)
    by_module = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
    return {"total": counter.get_total_flops(), "by_module": by_module}


def model_report(cfg_or_model) -> dict:
    """Parameters (total and by part) and forward FLOPs per image of a config or a built model."""
    model = cfg_or_model if isinstance(cfg_or_model, nn.Module) else ViT(cfg_or_model)
    cfg = model.cfg
    parts = {"tokens": model.tokens, "blocks": model.blocks, "norm + head": [model.norm, model.head]}
    by_part = {}
    for name, mods in parts.items():
        mods = mods if isinstance(mods, list) else [mods]
        by_part[name] = sum(p.numel() for m in mods for p in m.parameters())
    flops = flops_per_image(model)
    attn = sum(v for k, v in flops["by_module"].items() if k.endswith(".attn"))
    return {"preset": cfg, "attention": cfg.attention_kind, "params": sum(by_part.values()), "params_by_part": by_part,
            "tokens": cfg.n_tokens, "flops": flops["total"], "attention_flops": attn}


__all__ = ["ViT", "Block", "MLP", "drop_path", "patch_dropout", "count_params", "flops_per_image", "model_report"]


# ---- chapter 8, many class tokens: what each class token looks at, and how alike their outputs are -------

@torch.no_grad()
def class_token_attention(model: ViT, images: torch.Tensor, block: int = -1) -> torch.Tensor:
    """Where each class token looks: its attention over the patch tokens in one block (default: the
    last), averaged over heads, as a (B, n_cls, grid, grid) map. Each map sums to 1 minus the attention
    that token gives to the class tokens. `images`: normalized (B, 3, H, W)."""
    p = next(model.parameters())
    maps = model.attention_maps(images.to(p.device, p.dtype))[block]  # (B, H, T, T)
    k, g = model.cfg.n_cls, model.cfg.grid
    return maps.mean(1)[:, :k, k:].reshape(len(images), k, g, g)


def cosine_matrix(tokens: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every pair of tokens: (B, k, C) -> (B, k, k)."""
    t = nn.functional.normalize(tokens.float(), dim=-1)
    return t @ t.transpose(1, 2)


@torch.no_grad()
def class_token_similarity(model: ViT, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Cosine similarity between the class tokens' final normalized outputs (what the head reads),
    averaged over `images` (normalized, (B, 3, H, W)): (n_cls, n_cls), ones on the diagonal."""
    p = next(model.parameters())
    was = model.training
    model.eval()
    total = torch.zeros(model.cfg.n_cls, model.cfg.n_cls)
    for chunk in images.split(batch_size):
        feats = model.forward_features(chunk.to(p.device, p.dtype))     # (B, n_cls + N, C)
        total += cosine_matrix(feats[:, : model.cfg.n_cls]).sum(0).cpu()
    model.train(was)
    return total / len(images)


def off_diagonal_mean(sim: torch.Tensor) -> float:
    """Mean of the off-diagonal entries of a (k, k) similarity matrix: 1.0 means the k tokens have
    collapsed into one; NaN for k == 1 (nothing to compare)."""
    k = sim.shape[0]
    if k < 2:
        return float("nan")
    return ((sim.sum() - sim.diagonal().sum()) / (k * k - k)).item()


def effective_count(sim: torch.Tensor) -> float:
    """How many distinct tokens a (k, k) similarity matrix holds: its participation ratio
    trace(S)^2 / ||S||_F^2 (= (sum of eigenvalues)^2 / sum of their squares). 1 when all k tokens are
    copies of one, k when they are orthogonal, 2 for two groups of copies orthogonal to each other."""
    s = sim.double()
    return (s.diagonal().sum() ** 2 / s.square().sum()).item()


__all__ += ["class_token_attention", "cosine_matrix", "class_token_similarity", "off_diagonal_mean",
            "effective_count"]

"""One `Attention` for MHA, GQA, MQA, Multi-head Latent Attention and the study's low-rank
bottleneck.

Every choice comes from the model's `ViTConfig`:

* MHA (Vaswani et al., arXiv 1706.03762): `n_kv_head` None (= `n_head`).
* GQA (Ainslie et al., arXiv 2305.13245): `n_head % n_kv_head == 0`; each key/value head serves a
  group of `n_head / n_kv_head` query heads. MQA (Shazeer, arXiv 1911.02150) is `n_kv_head == 1`.
* MLA as in DeepSeek-V2 (arXiv 2405.04434): queries pass through a low-rank latent `q_rank` wide;
  keys *and* values are decompressed from one shared latent `kv_rank` wide; an RMSNorm sits on each
  latent. (DeepSeek's decoupled RoPE keys have no counterpart here: a ViT adds positions to its
  tokens.)
* The study's low-rank attention (Wu, arXiv 2501.06220): each projection named in `lowrank` ("q",
  "k", "v") passes through its own bottleneck `lowrank_dim` wide, with no norm and no sharing.

Two paths compute the same thing: the fast one calls `F.scaled_dot_product_attention` (fused
kernels, `enable_gqa` for shared heads); the explicit one writes out softmax(q k^T / sqrt(d)) v.
`attn.explicit` picks the path per module; `explicit_attention(model)` sets it on every `Attention`
of a model for a block of code, e.g. for `torch.utils.flop_counter`, which does not count the fused
CPU kernels. `attn.maps(x)` returns the attention maps themselves.

Shapes: x (B, T, C) with T tokens (class + patch), H query heads, H_kv key/value heads, d = C / H.

    attn = Attention(get_config("paper", n_kv_head=4))
    y = attn(x)                          # (B, T, C)
    maps = attn.maps(x)                  # (B, H, T, T), each row sums to 1
    with explicit_attention(model):      # every Attention inside `model` takes the explicit path
        ...
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ViTConfig


class Latent(nn.Module):
    """A low-rank projection (B, T, dim) -> (B, T, out): down to `rank` channels (no bias), an
    optional RMSNorm, up to `out` channels (with a bias when `bias`)."""

    def __init__(self, dim: int, rank: int, out: int, norm: bool, bias: bool = True):
        super().__init__()
        self.down = nn.Linear(dim, rank, bias=False)
        self.norm = nn.RMSNorm(rank) if norm else nn.Identity()
        self.up = nn.Linear(rank, out, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.norm(self.down(x)))


class Attention(nn.Module):
    """Multi-head self-attention over (B, T, C) tokens; the variant is chosen by `cfg` (see the
    module docstring). Validation is `ViTConfig`'s: a config that cannot work raises `ValueError`.

    Modules: `qkv` (one fused Linear for q, k, v) when nothing is compressed; otherwise `q` (a
    Linear or a `Latent`) and either `kv` (MLA's shared `Latent`, both keys and values) or `k` and
    `v` (Linears, or `Latent`s for the study's bottleneck). `proj` is the output projection.
    MLA latents carry an RMSNorm (a test that needs a latent without it replaces `attn.q.norm` /
    `attn.kv.norm` by `nn.Identity()`); the study's bottleneck has none.
    """

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        C, bias = cfg.n_embd, cfg.qkv_bias
        self.n_head, self.n_kv_head, self.head_dim = cfg.n_head, cfg.kv_heads, cfg.head_dim
        kv_dim = self.n_kv_head * self.head_dim
        self.split = (C, kv_dim, kv_dim)
        self.explicit = False                 # True: softmax(q k^T / sqrt(d)) v written out
        self.qkv = self.q = self.k = self.v = self.kv = None
        if not (cfg.q_rank or cfg.kv_rank or cfg.lowrank):
            self.qkv = nn.Linear(C, C + 2 * kv_dim, bias=bias)     # one fused matmul for q, k, v
        else:
            def proj(out: int, which: str) -> nn.Module:
                if which in cfg.lowrank:                          # the study's bottleneck, no norm
                    return Latent(C, cfg.lowrank_dim, out, norm=False, bias=bias)
                return nn.Linear(C, out, bias=bias)
            self.q = Latent(C, cfg.q_rank, C, True, bias) if cfg.q_rank else proj(C, "q")
            if cfg.kv_rank:                                       # MLA: one latent, both K and V
                self.kv = Latent(C, cfg.kv_rank, 2 * kv_dim, True, bias)
            else:
                self.k, self.v = proj(kv_dim, "k"), proj(kv_dim, "v")
        self.proj = nn.Linear(C, C)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, C) -> queries (B, H, T, d) and keys, values (B, H_kv, T, d)."""
        B, T, _ = x.shape
        if self.qkv is not None:
            q, k, v = self.qkv(x).split(self.split, dim=-1)
        else:
            q = self.q(x)
            if self.kv is not None:
                k, v = self.kv(x).split(self.split[1:], dim=-1)
            else:
                k, v = self.k(x), self.v(x)
        d = self.head_dim
        return (q.view(B, T, self.n_head, d).transpose(1, 2),
                k.view(B, T, self.n_kv_head, d).transpose(1, 2),
                v.view(B, T, self.n_kv_head, d).transpose(1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, C), on the explicit path when `self.explicit`, else the fused one."""
        B, T, C = x.shape
        q, k, v = self.project(x)
        if self.explicit:
            y = explicit_sdpa(q, k, v)[0]
        else:
            y = F.scaled_dot_product_attention(q, k, v, enable_gqa=self.n_kv_head != self.n_head)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        """The attention maps softmax(q k^T / sqrt(d)) of tokens x (B, T, C): (B, H, T, T), each row
        summing to 1 (a key/value head shared by a group appears in each of its query heads)."""
        return explicit_sdpa(*self.project(x))[1]


def explicit_sdpa(q: torch.Tensor, k: torch.Tensor,
                  v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d)) v, written out; key/value heads are repeated for their query groups.

    q (B, H, T, d), k and v (B, H_kv, T, d) with H % H_kv == 0. Returns the output (B, H, T, d) and
    the attention maps (B, H, T, T), rows summing to 1.
    """
    groups = q.shape[1] // k.shape[1]
    if groups > 1:
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    attn = (q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5).softmax(dim=-1)
    return attn @ v, attn


@contextlib.contextmanager
def explicit_attention(model: nn.Module, enabled: bool = True):
    """Within this block every `Attention` inside `model` (or `model` itself, if it is one) takes
    the explicit path (`enabled=False`: the fused one); each module's own setting is restored on
    exit."""
    modules = [m for m in model.modules() if isinstance(m, Attention)]
    old = [m.explicit for m in modules]
    for m in modules:
        m.explicit = enabled
    try:
        yield model
    finally:
        for m, was in zip(modules, old):
            m.explicit = was


__all__ = ["Attention", "Latent", "explicit_sdpa", "explicit_attention"]

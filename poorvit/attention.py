"""One `Attention` for MHA, GQA, MQA, Multi-head Latent Attention and the study's low-rank bottleneck.

* MHA (Vaswani et al., arXiv 1706.03762): `n_kv_head == n_head`.
* GQA (Ainslie et al., arXiv 2305.13245): `n_head % n_kv_head == 0`; each key/value head serves a group
  of `n_head / n_kv_head` query heads. MQA (Shazeer, arXiv 1911.02150) is GQA with `n_kv_head == 1`.
* MLA as in DeepSeek-V2 (arXiv 2405.04434): queries pass through a low-rank latent of width `q_rank`;
  keys *and* values are decompressed from one shared latent of width `kv_rank`; an RMSNorm sits on each
  latent. (DeepSeek's decoupled RoPE keys have no counterpart here: a ViT adds positions to its tokens.)
* The study's low-rank attention (Wu, arXiv 2501.06220): each projection named in `lowrank` ("q", "k",
  "v") passes through its own bottleneck of width `lowrank_dim`, with no norm and no sharing.

Two paths compute the same thing: the fast one calls `F.scaled_dot_product_attention` (fused kernels,
`enable_gqa` for shared heads); the explicit one writes out softmax(q k^T / sqrt(d)) v and can return
the attention maps for plots. `explicit_attention()` forces the explicit path everywhere, e.g. for
`torch.utils.flop_counter`, which does not count the fused CPU kernels.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

_FORCE_EXPLICIT = False


@contextlib.contextmanager
def explicit_attention(enabled: bool = True):
    """Within this block every `Attention` takes the explicit (maps-returning) path."""
    global _FORCE_EXPLICIT
    old, _FORCE_EXPLICIT = _FORCE_EXPLICIT, enabled
    try:
        yield
    finally:
        _FORCE_EXPLICIT = old


class Latent(nn.Module):
    """A low-rank projection: down to `rank` channels (no bias), an optional RMSNorm, up to `out`."""

    def __init__(self, dim: int, rank: int, out: int, norm: bool, bias: bool = True):
        super().__init__()
        self.down = nn.Linear(dim, rank, bias=False)
        self.norm = nn.RMSNorm(rank) if norm else nn.Identity()
        self.up = nn.Linear(rank, out, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.norm(self.down(x)))


class Attention(nn.Module):
    """Multi-head self-attention over (B, N, C) tokens; the variant is chosen by the arguments.

    Ranks may here reach `dim` (used by the equivalence tests); `ViTConfig` keeps them below `n_embd`,
    since a latent as wide as the model saves nothing.
    """

    def __init__(self, dim: int, n_head: int, n_kv_head: int | None = None, q_rank: int = 0, kv_rank: int = 0,
                 lowrank: str = "", lowrank_dim: int = 64, bias: bool = True, latent_norm: bool = True):
        super().__init__()
        n_kv_head = n_head if n_kv_head is None else n_kv_head
        if dim % n_head or n_head % n_kv_head:
            raise ValueError(f"need dim % n_head == 0 and n_head % n_kv_head == 0, got {dim}, {n_head}, {n_kv_head}")
        for name, r in (("q_rank", q_rank), ("kv_rank", kv_rank)):
            if not 0 <= r <= dim:
                raise ValueError(f"{name}={r} must be 0 (off) or in 1..{dim}")
        self.n_head, self.n_kv_head, self.head_dim = n_head, n_kv_head, dim // n_head
        kv_dim = n_kv_head * self.head_dim
        self.split = (dim, kv_dim, kv_dim)
        self.qkv = self.q = self.k = self.v = self.kv = None
        if not (q_rank or kv_rank or lowrank):
            self.qkv = nn.Linear(dim, dim + 2 * kv_dim, bias=bias)     # one fused matmul for q, k, v
        else:
            def proj(out: int, which: str) -> nn.Module:
                if which in lowrank:
                    return Latent(dim, lowrank_dim, out, norm=False, bias=bias)
                return nn.Linear(dim, out, bias=bias)
            self.q = Latent(dim, q_rank, dim, latent_norm, bias) if q_rank else proj(dim, "q")
            if kv_rank:
                self.kv = Latent(dim, kv_rank, 2 * kv_dim, latent_norm, bias)  # one latent, both K and V
            else:
                self.k, self.v = proj(kv_dim, "k"), proj(kv_dim, "v")
        self.proj = nn.Linear(dim, dim)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries (B, H, N, d) and keys, values (B, H_kv, N, d)."""
        B, N, _ = x.shape
        if self.qkv is not None:
            q, k, v = self.qkv(x).split(self.split, dim=-1)
        else:
            q = self.q(x)
            k, v = self.kv(x).split(self.split[1:], dim=-1) if self.kv is not None else (self.k(x), self.v(x))
        d = self.head_dim
        return (q.view(B, N, self.n_head, d).transpose(1, 2), k.view(B, N, self.n_kv_head, d).transpose(1, 2),
                v.view(B, N, self.n_kv_head, d).transpose(1, 2))

    def forward(self, x: torch.Tensor, return_attn: bool = False, explicit: bool = False):
        B, N, C = x.shape
        q, k, v = self.project(x)
        attn = None
        if return_attn or explicit or _FORCE_EXPLICIT:
            y, attn = explicit_sdpa(q, k, v)
        else:
            y = F.scaled_dot_product_attention(q, k, v, enable_gqa=self.n_kv_head != self.n_head)
        y = self.proj(y.transpose(1, 2).reshape(B, N, C))
        return (y, attn) if return_attn else y


def explicit_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d)) v, written out; key/value heads are repeated for their query groups.

    Returns the output (B, H, N, d) and the attention maps (B, H, N, N), rows summing to 1.
    """
    groups = q.shape[1] // k.shape[1]
    if groups > 1:
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    attn = (q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5).softmax(dim=-1)
    return attn @ v, attn


__all__ = ["Attention", "Latent", "explicit_sdpa", "explicit_attention"]

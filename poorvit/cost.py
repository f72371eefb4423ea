"""What attention costs as the number of tokens grows: closed-form FLOPs, and measurements that check them.

A ViT cuts an `image_size` x `image_size` image into `(image_size / patch_size)^2` patch tokens and
prepends `n_cls` class tokens: T tokens in all. One multi-head attention layer of width C costs, per image
(a multiply-add counts as 2 FLOPs, the convention of `torch.utils.flop_counter`):

    projections   2*T*C*3C (q, k, v)  +  2*T*C*C (output)     grows like T
    scores        2*T*T*C  (q k^T)    +  2*T*T*C (weights v)  grows like T^2

Halving the patch size multiplies T by about 4 and the score FLOPs by about 16 (Dosovitskiy et al.,
arXiv 2010.11929, section 3.1; Vaswani et al., arXiv 1706.03762, table 1). `measure_attention` counts
the FLOPs of a real `Attention` with `flop_counter` and times its forward pass; a unit test holds the
formula equal to the count.

    attention_flops(65, 64)                   # {"projections": ..., "scores": ..., "total": ...}
    patch_cost(32, 4, n_embd=64)              # tokens and attention FLOPs for patch size 4
    attention_scaling([16, 64, 256], 64, 4)   # measured FLOPs and seconds per token count
"""
from __future__ import annotations

import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from .attention import Attention, explicit_attention


def n_tokens(image_size: int, patch_size: int, n_cls: int = 1) -> int:
    """Tokens attention sees: (image_size / patch_size)^2 patches plus `n_cls` class tokens."""
    if image_size % patch_size:
        raise ValueError(f"patch_size={patch_size} must divide image_size={image_size}")
    return (image_size // patch_size) ** 2 + n_cls


def attention_flops(n_tokens: int, n_embd: int) -> dict:
    """FLOPs of one multi-head attention layer on one image of `n_tokens` tokens, `n_embd` wide.

    Returns {"projections", "scores", "total"}; the split does not depend on the number of heads.
    """
    T, C = n_tokens, n_embd
    projections = 2 * T * C * 3 * C + 2 * T * C * C
    scores = 2 * T * T * C + 2 * T * T * C
    return {"projections": projections, "scores": scores, "total": projections + scores}


def patch_cost(image_size: int, patch_size: int, n_embd: int, n_cls: int = 1) -> dict:
    """Patch size -> patches, tokens and attention FLOPs of one layer (one image)."""
    T = n_tokens(image_size, patch_size, n_cls)
    return {"patch_size": patch_size, "patches": T - n_cls, "tokens": T, "patch_values": 3 * patch_size ** 2,
            **{f"attention_{k}": v for k, v in attention_flops(T, n_embd).items()}}


@torch.no_grad()
def measure_attention(n_tokens: int, n_embd: int, n_head: int, repeats: int = 5, batch: int = 1,
                      device: str | torch.device = "cpu", seed: int = 0) -> dict:
    """One `Attention` layer on random tokens (batch, n_tokens, n_embd): its FLOPs per image, counted by
    `flop_counter` on the explicit path, and its seconds per image on the fast path, the fastest of
    `repeats` timed forward passes (the one least disturbed by other work on the machine)."""
    torch.manual_seed(seed)
    attn = Attention(n_embd, n_head).to(device).eval()
    x = torch.randn(batch, n_tokens, n_embd, device=device)
    with explicit_attention(), FlopCounterMode(display=False) as counter:
        attn(x[:1])                                           # one image: the T x T maps of a batch can be big
    attn(x)                                                   # warm-up
    times = []
    for _ in range(repeats):
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        attn(x)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return {"tokens": n_tokens, "flops": counter.get_total_flops(), "seconds": min(times) / batch}


def attention_scaling(token_counts, n_embd: int, n_head: int, repeats: int = 5, batch: int = 1,
                      device: str | torch.device = "cpu") -> list[dict]:
    """`measure_attention` at each token count, with the formula's FLOPs beside the measured ones."""
    rows = []
    for T in token_counts:
        row = measure_attention(T, n_embd, n_head, repeats, batch, device)
        row["formula_flops"] = attention_flops(T, n_embd)["total"]
        rows.append(row)
    return rows


__all__ = ["n_tokens", "attention_flops", "patch_cost", "measure_attention", "attention_scaling"]

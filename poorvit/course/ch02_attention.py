"""Chapter 2, attention from scratch: where each block and head looks (`attention_grid`,
`attention_explorer`), why scores are divided by sqrt(d) (`softmax_stats`, `softmax_saturation`),
what attention costs as the token count grows, measured (`measure_attention`, `attention_scaling`,
`cost_curve`), and the `attention/*` exercise checks.

    from poorvit.course import ch02_attention as ch
    rows = ch.attention_scaling([16, 64, 256], n_embd=64, n_head=4)   # counted FLOPs, measured time
    ch.cost_curve(rows)
"""
from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch

from ..attention import Attention
from ..config import get_config
from ..cost import attention_flops, count_flops
from ..device import get_device
from ..timing import Timer
from .exercises import ExerciseError, exercise, expect_close
from .plots import attention_on_image
from .widgets import explorer


# ---- where attention looks -----------------------------------------------------------------------

def attention_grid(image: torch.Tensor, maps: torch.Tensor, n_cls: int = 1, query: int = 0,
                   blocks=None, heads=None, size: float = 1.1):
    """Where token `query` (default: the first class token) looks, laid over its image: one row per
    block, one column per head in `heads` (default: all, at most the first 7, so that a row fits a
    book's column), and the mean over all heads last. `maps`: (n_layer, n_head, T, T) of one image.
    Each panel has its own colour scale."""
    L, H = maps.shape[:2]
    blocks = list(range(L) if blocks is None else blocks)
    heads = list(range(min(H, 7)) if heads is None else heads)
    fig, axes = plt.subplots(len(blocks), len(heads) + 1, squeeze=False,
                             figsize=((len(heads) + 1) * size, len(blocks) * size + 0.3))
    for r, b in enumerate(blocks):
        for c, h in enumerate([*heads, "mean"]):
            a = maps[b].mean(0) if h == "mean" else maps[b, h]
            attention_on_image(image, a[query, n_cls:], ax=axes[r, c])
            if r == 0:
                axes[r, c].set_title("mean" if h == "mean" else f"head {h}", fontsize=8)
        axes[r, 0].text(-0.08, 0.5, f"block {b}", transform=axes[r, 0].transAxes, rotation=90,
                        ha="right", va="center", fontsize=8)
    fig.tight_layout(pad=0.3)
    return fig


def attention_explorer(images, maps, n_cls: int = 1) -> W.Widget:
    """Pick an image, a block, a head (or their mean) and a query token (0 is the class token); see
    where that token attends. `maps`: (n_layer, B, n_head, T, T) from `ViT.attention_maps`."""
    L, B, H, T, _ = maps.shape
    g = int(round((T - n_cls) ** 0.5))
    p = images.shape[-1] // g

    def draw(image, block, head, query):
        m = maps[block, image]
        a = m.mean(0) if head == "mean" else m[head]
        which = "mean of heads" if head == "mean" else f"head {head}"
        token = "class token" if query < n_cls else f"patch {query - n_cls}"
        ax = attention_on_image(images[image], a[query, n_cls:],
                                title=f"block {block}, {which}, query {token}")
        if query >= n_cls:           # outline the query patch
            r, c = divmod(query - n_cls, g)
            ax.add_patch(plt.Rectangle((c * p - 0.5, r * p - 0.5), p, p, fill=False, ec="cyan",
                                       lw=1.5))
        ax.figure.set_size_inches(3.6, 3.6)
        plt.show()

    return explorer(draw, image=W.IntSlider(value=0, min=0, max=B - 1),
                    block=W.IntSlider(value=L - 1, min=0, max=L - 1),
                    head=W.Dropdown(options=["mean", *range(H)], value="mean"),
                    query=W.IntSlider(value=0, min=0, max=T - 1))


# ---- why divide by sqrt(d) -----------------------------------------------------------------------

def softmax_stats(head_dim: int, n_tokens: int = 65, scaled: bool = True, samples: int = 64,
                  seed: int = 0) -> dict:
    """softmax(q kᵀ [/ sqrt(d)]) for random q, k with unit-variance entries: the mean largest weight
    of a row (1/n_tokens: uniform, 1: all on one token) and the median over rows of the Frobenius
    norm of the softmax Jacobian diag(p) - p pᵀ (how much gradient a typical row passes back to its
    scores; 0 once the row is saturated)."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(samples, n_tokens, head_dim, generator=g, dtype=torch.float64)
    k = torch.randn(samples, n_tokens, head_dim, generator=g, dtype=torch.float64)
    logits = q @ k.transpose(-2, -1) * (head_dim ** -0.5 if scaled else 1.0)
    p = logits.softmax(-1)
    s2, s3 = (p ** 2).sum(-1), (p ** 3).sum(-1)
    jac = (s2 - 2 * s3 + s2 ** 2).clamp_min(0).sqrt()  # ||diag(p) - p p^T||_F per row
    return {"peak": p.max(-1).values.mean().item(), "jacobian": jac.median().item(),
            "logit_std": logits.std().item()}


def softmax_saturation(head_dims=(4, 8, 16, 32, 64, 128, 256, 512), n_tokens: int = 65,
                       samples: int = 64, axes=None):
    """Why attention divides by sqrt(d): with and without the scale, the largest attention weight
    (left) and the gradient the softmax passes back (right), against the head width d."""
    if axes is None:
        axes = plt.subplots(1, 2, figsize=(8.4, 3.2))[1]
    for scaled, style, label in ((True, "o-", "q·k / sqrt(d)"), (False, "s--", "q·k (no scale)")):
        stats = [softmax_stats(d, n_tokens, scaled, samples) for d in head_dims]
        axes[0].plot(head_dims, [s["peak"] for s in stats], style, label=label)
        axes[1].plot(head_dims, [s["jacobian"] for s in stats], style, label=label)
    axes[0].axhline(1 / n_tokens, color="gray", lw=0.8, ls=":")
    axes[0].annotate("uniform (1/T)", (head_dims[0], 1 / n_tokens), fontsize=8, va="bottom",
                     color="gray")
    axes[0].set_ylabel("mean largest attention weight")
    axes[1].set_ylabel("‖softmax Jacobian‖, median row")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("head width d")
        ax.grid(alpha=0.3)
    axes[0].set_title(f"T = {n_tokens} random tokens, unit-variance q and k", fontsize=9)
    axes[0].legend(fontsize=8)
    axes[0].figure.tight_layout()
    return axes


# ---- what attention costs, measured --------------------------------------------------------------

@torch.no_grad()
def measure_attention(n_tokens: int, n_embd: int, n_head: int, repeats: int = 5, batch: int = 1,
                      device: str | torch.device | None = None, seed: int = 0) -> dict:
    """One `Attention` layer on random tokens (batch, n_tokens, n_embd): its FLOPs per image,
    counted by `cost.count_flops` on the explicit path, and its seconds per image on the fast path:
    `seconds` the fastest of `repeats` timed forward passes (the one least disturbed by other work
    on the machine), `median` their median (how much the tries spread). `device`: None is
    `device.get_device`'s default."""
    device = get_device(device)
    torch.manual_seed(seed)
    attn = Attention(get_config("micro", n_embd=n_embd, n_head=n_head)).to(device).eval()
    x = torch.randn(batch, n_tokens, n_embd, device=device)
    flops = count_flops(attn, x[:1])  # one image: the T x T maps of a batch are big
    attn(x)                                               # warm-up
    times = []
    for _ in range(repeats):
        with Timer(device) as t:
            attn(x)
        times.append(t.ms / 1e3)
    return {"tokens": n_tokens, "flops": flops, "seconds": min(times) / batch,
            "median": float(np.median(times)) / batch}


def attention_scaling(token_counts, n_embd: int, n_head: int, repeats: int = 5, batch: int = 1,
                      device: str | torch.device | None = None) -> list[dict]:
    """`measure_attention` at each token count, with the formula's FLOPs beside the measured
    ones."""
    rows = []
    for T in token_counts:
        row = measure_attention(T, n_embd, n_head, repeats, batch, device)
        row["formula_flops"] = attention_flops(T, n_embd)["total"]
        rows.append(row)
    return rows


def cost_curve(rows: list[dict], ax=None):
    """Measured FLOPs and time of one attention layer against the token count T (rows from
    `attention_scaling`), each relative to the smallest T, on log-log axes with ∝ T and ∝ T²
    guides."""
    T = np.array([r["tokens"] for r in rows], dtype=float)
    flops = np.array([r["flops"] for r in rows], dtype=float)
    secs = np.array([r["seconds"] for r in rows], dtype=float)
    ax = ax or plt.subplots(figsize=(5, 3.6))[1]
    ax.loglog(T, flops / flops[0], "o-", label="FLOPs (counted)")
    ax.loglog(T, secs / secs[0], "s-", label="time (measured)")
    ax.loglog(T, T / T[0], "--", color="gray", lw=1, label="∝ T")
    ax.loglog(T, (T / T[0]) ** 2, ":", color="black", lw=1, label="∝ T²")
    ax.set_xlabel("tokens T")
    ax.set_ylabel(f"cost relative to T = {int(T[0])}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return ax


# ---- exercise checks ("attention/...") -----------------------------------------------------------

@exercise("attention/gqa",
          hint="query head h uses key/value head h // (n_head / n_kv_head): repeat each key/value "
               "head that many times side by side (repeat_interleave on dim 1, not repeat), then "
               "attend as usual.")
def _check_gqa(fn) -> str:
    """fn(q, k, v) -> grouped-query attention: q (B, H, T, d), k and v (B, H_kv, T, d) with H_kv
    dividing H."""
    from ..attention import explicit_sdpa

    g = torch.Generator().manual_seed(21)
    for B, H, H_kv, T, d in ((2, 4, 2, 9, 8), (1, 6, 1, 17, 4), (2, 4, 4, 5, 8), (1, 8, 2, 65, 16)):
        q = torch.randn(B, H, T, d, generator=g)
        k, v = torch.randn(B, H_kv, T, d, generator=g), torch.randn(B, H_kv, T, d, generator=g)
        expect_close(fn(q, k, v), explicit_sdpa(q, k, v)[0],
                     f"attention with n_head={H}, n_kv_head={H_kv}")
    return ("your grouped-query attention matches the package's, "
            "from MHA (groups of 1) to MQA (one group)")


@exercise("attention/entropy",
          hint="take maps[:, :, :, 0] (the class token's row, (L, B, H, T)); entropy -sum(a * log "
               "a) over the last dim; then mean over the images (dim 1).")
def _check_entropy(fn) -> str:
    """fn(maps) -> (L, H): the entropy in nats of the class token's attention row (row 0, over all T
    keys), averaged over the B images, for maps (L, B, H, T, T)."""
    g = torch.Generator().manual_seed(22)
    for L, B, H, T in ((2, 3, 4, 9), (1, 1, 1, 5), (3, 2, 2, 17)):
        maps = (3 * torch.randn(L, B, H, T, T, generator=g)).softmax(-1)
        row = maps[:, :, :, 0]                                            # (L, B, H, T)
        want = -(row * row.log()).sum(-1).mean(1)                         # (L, H)
        expect_close(torch.as_tensor(fn(maps)), want, f"entropy of {L} blocks x {H} heads")
    uniform = torch.full((1, 1, 1, 4, 4), 0.25)
    got = torch.as_tensor(fn(uniform)).flatten()[0].item()
    if abs(got - torch.log(torch.tensor(4.0)).item()) > 1e-4:
        raise ExerciseError(f"uniform attention over 4 tokens has entropy log 4 = 1.3863 nats; "
                            f"got {got:.4f}")
    return ("your entropies match; uniform attention over T tokens gives log T, "
            "attention on one token gives 0")


@exercise("attention/rollout",
          hint="average the heads; for each block A, use 0.5*I + 0.5*A, divide each row by its "
               "sum, and multiply it onto the running product from the left (A_l ... A_1).")
def _check_rollout(fn) -> str:
    """fn(maps) -> attention rollout (B, T, T) of maps (L, B, H, T, T), residual weight 0.5."""
    from .plots import attention_rollout

    g = torch.Generator().manual_seed(23)
    for L, B, H, T in ((3, 2, 4, 5), (1, 1, 2, 9), (6, 2, 3, 17)):
        maps = torch.randn(L, B, H, T, T, generator=g).softmax(-1)
        expect_close(fn(maps), attention_rollout(maps), f"rollout of {L} blocks")
    return "your rollout matches poorvit.course.plots.attention_rollout"


__all__ = ["attention_grid", "attention_explorer", "softmax_stats", "softmax_saturation",
           "measure_attention", "attention_scaling", "cost_curve"]

"""Plots of chapters 1-3: patches and their cost, positions, attention per block and head, softmax
saturation, the cost of attention against the token count (re-exported by `poorvit.viz`)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from .viz_basic import attention_on_image, patch_grid

__all__: list[str] = []


# ---- chapters 1-3 (images to tokens, attention from scratch, a first ViT) -----------------------------
# patch sizes and their cost, position similarity, attention per block and head, softmax saturation,
# attention cost against the token count.

def _cost_bars(ax, image_size: int, sizes, n_embd: int, n_cls: int = 1, highlight: int | None = None):
    """Attention FLOPs of one layer per patch size, split into the part linear in T and the part in T^2."""
    from .cost import patch_cost
    costs = [patch_cost(image_size, p, n_embd, n_cls) for p in sizes]
    x = np.arange(len(sizes))
    for dx, key, label, color in ((-0.2, "attention_projections", "projections (∝ T)", "tab:blue"),
                                  (0.2, "attention_scores", "scores q kᵀ and weights·v (∝ T²)", "tab:red")):
        ax.bar(x + dx, [c[key] for c in costs], width=0.4, color=color, label=label,
               edgecolor=["black" if p == highlight else "none" for p in sizes], linewidth=2)
    for i, c in enumerate(costs):
        top = max(c["attention_projections"], c["attention_scores"])
        ax.annotate(f"T={c['tokens']}", (i, top), ha="center", va="bottom", fontsize=7,
                    fontweight="bold" if sizes[i] == highlight else "normal")
    ax.set_yscale("log")
    ax.set_xticks(x, [str(p) for p in sizes])
    ax.set_xlabel("patch size p (pixels)")
    ax.set_ylabel("FLOPs of one attention layer")
    ax.set_title(f"attention cost per image (n_embd = {n_embd})", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    ax.margins(y=0.15)
    return ax


def patch_view(image: torch.Tensor, patch_size: int, n_embd: int, n_cls: int = 1, sizes=None, axes=None):
    """One image cut into p x p patches (left), and the attention FLOPs of one layer for every patch size
    in `sizes` (default: every divisor of the image side below it), the chosen one outlined (right)."""
    from .cost import patch_cost
    H = image.shape[-1]
    sizes = list(sizes or [p for p in range(1, H) if H % p == 0])
    if axes is None:
        axes = plt.subplots(1, 2, figsize=(8, 3.4), gridspec_kw={"width_ratios": [1, 1.5]})[1]
    patch_grid(image, patch_size, ax=axes[0])
    c = patch_cost(H, patch_size, n_embd, n_cls)
    axes[0].set_title(f"p = {patch_size}: {c['patches']} patches of {c['patch_values']} values\n"
                      f"+ {n_cls} class token = {c['tokens']} tokens", fontsize=9)
    _cost_bars(axes[1], H, sizes, n_embd, n_cls, highlight=patch_size)
    axes[1].figure.tight_layout()
    return axes


def patch_sizes(image: torch.Tensor, sizes=(2, 4, 8, 16), n_embd: int = 192, n_cls: int = 1):
    """The static page of `patch_view`: the image at every patch size in `sizes`, then their attention cost."""
    n = len(sizes)
    fig, axes = plt.subplots(1, n + 1, figsize=(2.3 * n + 4, 3.0), gridspec_kw={"width_ratios": [1] * n + [1.9]})
    for ax, p in zip(axes, sizes):
        patch_grid(image, p, ax=ax)
        ax.set_title(f"p = {p}: {(image.shape[-1] // p) ** 2} patches", fontsize=9)
    _cost_bars(axes[-1], image.shape[-1], list(sizes), n_embd, n_cls)
    fig.tight_layout()
    return fig


def position_similarity(pos: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every position embedding with every other: (N, C) -> (N, N)."""
    p = torch.nn.functional.normalize(pos.detach().float().cpu(), dim=-1)
    return p @ p.T


def similarity_canvas(sim: torch.Tensor, grid: int) -> np.ndarray:
    """Lay row i of an (N, N) similarity (N = grid^2) out as a grid x grid map at the place of position i:
    a (grid*(grid+1)-1)^2 image, NaN in the one-pixel gaps between maps."""
    step = grid + 1
    canvas = np.full((grid * step - 1, grid * step - 1), np.nan)
    s = sim.detach().float().cpu().numpy()
    for i in range(grid * grid):
        r, c = divmod(i, grid)
        canvas[r * step:r * step + grid, c * step:c * step + grid] = s[i].reshape(grid, grid)
    return canvas


def similarity_maps(pos: torch.Tensor, grid: int, ax=None, title: str | None = None, full_range: bool = False):
    """Position embeddings (grid^2, C) -> for every position, its cosine similarity to all positions,
    each drawn as a small map in the position's own place (ViT paper, figure 7 centre). Colours span the
    off-diagonal similarities of this table (the diagonal, always 1, saturates), or [-1, 1] with `full_range`."""
    sim = position_similarity(pos)
    off = sim[~torch.eye(len(sim), dtype=torch.bool)]
    lo, hi = (-1.0, 1.0) if full_range else (off.min().item(), off.max().item())
    canvas = similarity_canvas(sim, grid)
    ax = ax or plt.subplots(figsize=(3.6, 3.4))[1]
    cmap = plt.get_cmap("RdBu_r" if full_range else "viridis").with_extremes(bad="white")
    im = ax.imshow(np.ma.masked_invalid(canvas), cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
    step = grid + 1
    ticks = np.arange(grid) * step + (grid - 1) / 2
    ax.set_xticks(ticks, range(grid), fontsize=6)
    ax.set_yticks(ticks, range(grid), fontsize=6)
    ax.set_xlabel("patch column")
    ax.set_ylabel("patch row")
    if title:
        ax.set_title(title, fontsize=9)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, label="cosine similarity")
    return ax


def attention_grid(image: torch.Tensor, maps: torch.Tensor, n_cls: int = 1, query: int = 0, blocks=None,
                   size: float = 1.05):
    """Where token `query` (default: the first class token) looks, laid over its image: one row per block,
    one column per head, and the mean over heads last. `maps`: (n_layer, n_head, T, T) of one image.
    Each panel has its own colour scale."""
    L, H = maps.shape[:2]
    blocks = list(range(L) if blocks is None else blocks)
    fig, axes = plt.subplots(len(blocks), H + 1, figsize=((H + 1) * size, len(blocks) * size + 0.3), squeeze=False)
    for r, b in enumerate(blocks):
        for h in range(H + 1):
            a = maps[b].mean(0) if h == H else maps[b, h]
            attention_on_image(image, a[query, n_cls:], ax=axes[r, h])
            if r == 0:
                axes[r, h].set_title("mean" if h == H else f"head {h}", fontsize=8)
        axes[r, 0].text(-0.08, 0.5, f"block {b}", transform=axes[r, 0].transAxes, rotation=90, ha="right",
                        va="center", fontsize=8)
    fig.tight_layout(pad=0.3)
    return fig


def attention_compare(images: torch.Tensor, rows: dict, titles: list[str] | None = None, size: float = 1.4):
    """Several attention read-outs side by side: {row name: (B, N) attention over patches} laid over the
    B images, one row per read-out (e.g. last block vs rollout)."""
    B = len(images)
    fig, axes = plt.subplots(len(rows), B, figsize=(B * size, len(rows) * size + 0.3), squeeze=False)
    for r, (name, attn) in enumerate(rows.items()):
        for i in range(B):
            attention_on_image(images[i], attn[i], ax=axes[r, i], title=titles[i] if titles and r == 0 else None)
        axes[r, 0].text(-0.08, 0.5, name, transform=axes[r, 0].transAxes, rotation=90, ha="right", va="center",
                        fontsize=8)
    fig.tight_layout(pad=0.3)
    return fig


def softmax_stats(head_dim: int, n_tokens: int = 65, scaled: bool = True, samples: int = 64, seed: int = 0) -> dict:
    """softmax(q kᵀ [/ sqrt(d)]) for random q, k with unit-variance entries: the mean largest weight of a
    row (1/n_tokens: uniform, 1: all on one token) and the median over rows of the Frobenius norm of the
    softmax Jacobian diag(p) - p pᵀ (how much gradient a typical row passes back to its scores; 0 once
    the row is saturated)."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(samples, n_tokens, head_dim, generator=g, dtype=torch.float64)
    k = torch.randn(samples, n_tokens, head_dim, generator=g, dtype=torch.float64)
    logits = q @ k.transpose(-2, -1) * (head_dim ** -0.5 if scaled else 1.0)
    p = logits.softmax(-1)
    s2, s3 = (p ** 2).sum(-1), (p ** 3).sum(-1)
    jac = (s2 - 2 * s3 + s2 ** 2).clamp_min(0).sqrt()                 # ||diag(p) - p p^T||_F per row
    return {"peak": p.max(-1).values.mean().item(), "jacobian": jac.median().item(),
            "logit_std": logits.std().item()}


def softmax_saturation(head_dims=(4, 8, 16, 32, 64, 128, 256, 512), n_tokens: int = 65, samples: int = 64, axes=None):
    """Why attention divides by sqrt(d): with and without the scale, the largest attention weight (left)
    and the gradient the softmax passes back (right), against the head width d."""
    if axes is None:
        axes = plt.subplots(1, 2, figsize=(8.4, 3.2))[1]
    for scaled, style, label in ((True, "o-", "q·k / sqrt(d)"), (False, "s--", "q·k (no scale)")):
        stats = [softmax_stats(d, n_tokens, scaled, samples) for d in head_dims]
        axes[0].plot(head_dims, [s["peak"] for s in stats], style, label=label)
        axes[1].plot(head_dims, [s["jacobian"] for s in stats], style, label=label)
    axes[0].axhline(1 / n_tokens, color="gray", lw=0.8, ls=":")
    axes[0].annotate("uniform (1/T)", (head_dims[0], 1 / n_tokens), fontsize=7, va="bottom", color="gray")
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


def cost_curve(rows: list[dict], ax=None):
    """Measured FLOPs and time of one attention layer against the token count T (rows from
    `cost.attention_scaling`), each relative to the smallest T, on log-log axes with ∝ T and ∝ T² guides."""
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


__all__ += ["patch_view", "patch_sizes", "position_similarity", "similarity_canvas", "similarity_maps",
            "attention_grid", "attention_compare", "softmax_stats", "softmax_saturation", "cost_curve"]

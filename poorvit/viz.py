"""Plots for the course: image grids, patch grids, attention maps, filters, curves and result tables.

Every function draws on a matplotlib `Axes` (made for you when not given) and returns the figure or
axes, with labelled axes, so a chapter can add a one-line caption. Images are (3, H, W) or (B, 3, H, W)
tensors, uint8 or normalized floats (undone with CIFAR-10's statistics).
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from .data import denormalize


def to_display(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) uint8 / [0, 1] float / normalized float -> (H, W, 3) float in [0, 1] for imshow."""
    img = img.detach().cpu()
    if img.dtype == torch.uint8:
        img = img.float() / 255
    elif img.min() < 0 or img.max() > 1:
        img = denormalize(img)
    return img.permute(1, 2, 0).clamp(0, 1).numpy()


def image_grid(images: torch.Tensor, titles: list[str] | None = None, ncols: int = 8, size: float = 1.2,
               suptitle: str | None = None):
    """A grid of images with optional titles; returns the figure."""
    n = len(images)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * (1.25 if titles else 1)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(to_display(images[i]), interpolation="nearest")
            if titles:
                ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def class_grid(images: torch.Tensor, labels: torch.Tensor, classes, per_class: int = 8, size: float = 1.0):
    """`per_class` examples of every class, one row each, the class name on the left; returns the figure."""
    fig, axes = plt.subplots(len(classes), per_class, figsize=(per_class * size, len(classes) * size), squeeze=False)
    for c, name in enumerate(classes):
        idx = (labels == c).nonzero().flatten()[:per_class]
        for j, ax in enumerate(axes[c]):
            ax.set_xticks([]), ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if j < len(idx):
                ax.imshow(to_display(images[idx[j]]), interpolation="nearest")
        axes[c, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    fig.tight_layout()
    return fig


def patch_grid(image: torch.Tensor, patch_size: int, ax=None, gap: int = 1):
    """One image cut into its patches, drawn with a gap between patches, numbered in raster order."""
    img = to_display(image)
    H, W, _ = img.shape
    g = H // patch_size
    step = patch_size + gap
    canvas = np.ones((g * step - gap, g * step - gap, 3))
    for r in range(g):
        for c in range(g):
            canvas[r * step:r * step + patch_size, c * step:c * step + patch_size] = \
                img[r * patch_size:(r + 1) * patch_size, c * patch_size:(c + 1) * patch_size]
    ax = ax or plt.subplots(figsize=(3, 3))[1]
    ax.imshow(canvas, interpolation="nearest")
    ax.set_title(f"p = {patch_size}: {g * g} tokens")
    ax.axis("off")
    return ax


def attention_on_image(image: torch.Tensor, attn: torch.Tensor, ax=None, title: str | None = None, alpha: float = 0.6):
    """A (grid x grid) attention vector over patches, upsampled and laid over its image."""
    img = to_display(image)
    g = int(round(math.sqrt(attn.numel())))
    heat = attn.detach().float().cpu().reshape(g, g).numpy()
    ax = ax or plt.subplots(figsize=(2.5, 2.5))[1]
    ax.imshow(img, interpolation="nearest")
    ax.imshow(heat, cmap="inferno", alpha=alpha, extent=(-0.5, img.shape[1] - 0.5, img.shape[0] - 0.5, -0.5),
              interpolation="bilinear")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=8)
    return ax


def attention_rollout(maps: torch.Tensor, residual: float = 0.5) -> torch.Tensor:
    """Abnar & Zuidema (arXiv 2005.00928): multiply head-averaged maps through the blocks, each mixed
    with the identity for the residual path. maps (L, B, H, T, T) -> (B, T, T)."""
    A = maps.float().mean(2)                                          # (L, B, T, T)
    eye = torch.eye(A.shape[-1], device=A.device)
    out = eye.expand_as(A[0]).clone()
    for a in A:
        a = residual * eye + (1 - residual) * a
        out = (a / a.sum(-1, keepdim=True)) @ out
    return out


def filters_grid(weight: torch.Tensor, ncols: int = 12, ax=None, title: str | None = None, size: float = 0.45,
                 shared: bool = False):
    """Conv filters (K, 3, p, p) as small RGB tiles, each scaled to its own [0, 1] range; with `shared`,
    all on one scale with 0 as mid-grey, so that a filter's brightness shows its size."""
    w = weight.detach().float().cpu()
    if shared:
        w = w / (2 * w.abs().max() + 1e-12) + 0.5
    else:
        lo = w.flatten(1).min(1).values.view(-1, 1, 1, 1)
        hi = w.flatten(1).max(1).values.view(-1, 1, 1, 1)
        w = (w - lo) / (hi - lo + 1e-12)
    k, _, p, _ = w.shape
    nrows = math.ceil(k / ncols)
    canvas = np.ones((nrows * (p + 1) - 1, ncols * (p + 1) - 1, 3))
    for i in range(k):
        r, c = divmod(i, ncols)
        canvas[r * (p + 1):r * (p + 1) + p, c * (p + 1):c * (p + 1) + p] = w[i].permute(1, 2, 0).numpy()
    if ax is None:
        ax = plt.subplots(figsize=(ncols * size, nrows * size))[1]
    ax.imshow(canvas, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def curves(runs: dict, keys=("loss", "test_acc"), xkey: str = "epoch", axes=None):
    """Training curves of several runs side by side: {label: Run or history list} -> one panel per key."""
    labels = {"loss": "training loss", "test_acc": "test accuracy", "train_acc": "training accuracy", "lr": "learning rate"}
    if axes is None:
        fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2), squeeze=False)
        axes = axes[0]
    for name, run in runs.items():
        history = run.history if hasattr(run, "history") else run
        for ax, key in zip(axes, keys):
            pts = [(row[xkey], row[key]) for row in history if row.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", ms=3, label=name)
    for ax, key in zip(axes, keys):
        ax.set_xlabel(xkey)
        ax.set_ylabel(labels.get(key, key))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[0].figure.tight_layout()
    return axes


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, classes, ax=None, normalize: bool = True):
    """Rows: true class, columns: predicted class; each row sums to 1 when `normalize`."""
    n = len(classes)
    cm = torch.bincount(target.cpu() * n + pred.cpu(), minlength=n * n).view(n, n).float()
    if normalize:
        cm = cm / cm.sum(1, keepdim=True).clamp_min(1)
    ax = ax or plt.subplots(figsize=(5, 4.5))[1]
    im = ax.imshow(cm.numpy(), cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    for i in range(n):
        for j in range(n):
            v = cm[i, j].item()
            ax.text(j, i, f"{v:.2f}" if normalize else f"{int(v)}", ha="center", va="center", fontsize=6,
                    color="white" if v > cm.max().item() / 2 else "black")
    ax.figure.colorbar(im, ax=ax, fraction=0.046)
    return ax


def bars(values: dict, ylabel: str, ax=None, fmt: str = "{:,.0f}", title: str | None = None, color=None):
    """A labelled bar chart of {name: value}, each bar annotated with its value."""
    ax = ax or plt.subplots(figsize=(max(3, 0.8 * len(values)), 3))[1]
    names, vals = list(values), list(values.values())
    rects = ax.bar(names, vals, color=color)
    for r, v in zip(rects, vals):
        ax.annotate(fmt.format(v), (r.get_x() + r.get_width() / 2, r.get_height()), ha="center", va="bottom", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", rotation=30)
    if title:
        ax.set_title(title)
    return ax


def markdown_table(rows: list[dict], columns: list[str] | None = None, formats: dict | None = None) -> str:
    """A Markdown table of dicts (for `IPython.display.Markdown` and myst-nb `glue`)."""
    columns = columns or list(rows[0])
    formats = formats or {}
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        cells = [formats.get(c, "{}").format(row.get(c, "")) if row.get(c) is not None else "–" for c in columns]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


__all__ = ["to_display", "image_grid", "class_grid", "patch_grid", "attention_on_image", "attention_rollout",
           "filters_grid", "curves", "confusion_matrix", "bars", "markdown_table"]


# ---- chapter 7, whitening the patch embedding --------------------------------------------------------------

def second_moment_image(sigma: torch.Tensor, ax=None, title: str | None = None, channels: int = 3):
    """A (D, D) second-moment (or covariance) matrix of flattened patches, D = channels * p * p, on a
    diverging scale around 0; thin lines separate the colour channels' blocks of p * p pixels."""
    m = sigma.detach().float().cpu().numpy()
    vmax = float(np.abs(m).max())
    ax = ax or plt.subplots(figsize=(4, 3.4))[1]
    im = ax.imshow(m, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
    block = m.shape[0] // channels
    names = list("RGB") if channels == 3 else [str(c) for c in range(channels)]
    centres = [c * block + (block - 1) / 2 for c in range(channels)]
    for c in range(1, channels):
        ax.axhline(c * block - 0.5, color="k", lw=0.5)
        ax.axvline(c * block - 0.5, color="k", lw=0.5)
    ax.set_xticks(centres, names)
    ax.set_yticks(centres, names)
    ax.set_xlabel("patch entry: channel, then row and column")
    ax.set_ylabel("patch entry")
    ax.figure.colorbar(im, ax=ax, fraction=0.046)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def eigen_spectrum(eigvals: torch.Tensor, eps: float | None = None, ax=None, label: str | None = None):
    """Eigenvalues, largest first, on a log scale; with `eps`, the line below which whitening damps."""
    lam = eigvals.detach().double().cpu().clamp_min(1e-12).numpy()
    ax = ax or plt.subplots(figsize=(4, 3))[1]
    ax.semilogy(np.arange(1, len(lam) + 1), lam, marker="o", ms=3, label=label)
    if eps is not None:
        ax.axhline(eps, color="C3", ls="--", lw=1, label=f"eps = {eps:.0e}")
    ax.set_xlabel("direction (largest eigenvalue first)")
    ax.set_ylabel("eigenvalue (variance along it)")
    ax.grid(alpha=0.3, which="both")
    if eps is not None or label:
        ax.legend(fontsize=8)
    return ax


def whitening_panel(sigma: torch.Tensor, eps: float, axes=None):
    """What `eps` does, in three panels: the whitening filters on one shared scale (a bright filter
    has a large gain), the second moment of whitened patches (the identity where eps is negligible),
    and per direction the variance kept, lambda / (lambda + eps), beside the gain 1 / sqrt(lambda + eps)."""
    from .init import whitening_filters

    filters, lam = whitening_filters(sigma, eps)
    D = len(lam)
    p = int(round(math.sqrt(D / 3)))
    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), gridspec_kw={"width_ratios": [1.3, 1, 1.1]})
    f = filters.double()
    white = f @ sigma.double() @ f.T                                    # second moment after whitening
    filters_grid(filters.view(D, 3, p, p), ncols=12, ax=axes[0], shared=True,
                 title=f"whitening filters, eps = {eps:.1e} (one shared scale)")
    im = axes[1].imshow(white.float().numpy(), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    axes[1].figure.colorbar(im, ax=axes[1], fraction=0.046)
    axes[1].set_title("second moment of whitened patches", fontsize=10)
    axes[1].set_xlabel("whitened channel")
    axes[1].set_ylabel("whitened channel")
    idx = np.arange(1, D + 1)
    kept = (lam / (lam + eps)).numpy()
    axes[2].plot(idx, kept, marker="o", ms=3, color="C0", label="variance kept")
    axes[2].set_ylim(0, 1.05)
    axes[2].set_xlabel("direction (largest eigenvalue first)")
    axes[2].set_ylabel("variance after whitening", color="C0")
    gain = axes[2].twinx()
    gain.semilogy(idx, (1 / torch.sqrt(lam.double() + eps)).numpy(), ls="--", color="C1", label="gain")
    gain.set_ylabel("gain 1 / sqrt(lambda + eps)", color="C1")
    axes[2].set_title("per direction", fontsize=10)
    axes[2].grid(alpha=0.3)
    axes[0].figure.tight_layout()
    return axes


# ---- chapter 8, many class tokens --------------------------------------------------------------------------

def token_maps(images: torch.Tensor, maps: torch.Tensor, row_labels: list[str] | None = None,
               size: float = 1.3, suptitle: str | None = None):
    """Attention maps of several tokens on the same images: the images in the top row, then one row per
    token. images (B, 3, H, W); maps (B, k, g, g). Returns the figure."""
    B, k = maps.shape[:2]
    fig, axes = plt.subplots(k + 1, B, figsize=(B * size, (k + 1) * size), squeeze=False)
    for j in range(B):
        axes[0, j].imshow(to_display(images[j]), interpolation="nearest")
        axes[0, j].axis("off")
        for t in range(k):
            attention_on_image(images[j], maps[j, t], ax=axes[t + 1, j])
    labels = row_labels or [f"token {t}" for t in range(k)]
    for t in range(k):
        axes[t + 1, 0].axis("on")
        axes[t + 1, 0].set_xticks([]), axes[t + 1, 0].set_yticks([])
        for sp in axes[t + 1, 0].spines.values():
            sp.set_visible(False)
        axes[t + 1, 0].set_ylabel(labels[t], fontsize=8, rotation=0, ha="right", va="center")
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def similarity_matrix(sim: torch.Tensor, ax=None, title: str | None = None, label: str = "class token"):
    """A (k, k) cosine-similarity matrix on a fixed [-1, 1] scale, each cell annotated."""
    m = sim.detach().float().cpu().numpy()
    k = m.shape[0]
    ax = ax or plt.subplots(figsize=(0.5 * k + 2, 0.5 * k + 1.6))[1]
    im = ax.imshow(m, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if abs(m[i, j]) > 0.6 else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel(label)
    ax.set_ylabel(label)
    ax.figure.colorbar(im, ax=ax, fraction=0.046)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


__all__ += ["second_moment_image", "eigen_spectrum", "whitening_panel", "token_maps", "similarity_matrix"]


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


# ---- chapter 6, attention variants (MHA, GQA, MQA, MLA) ---------------------------------------------------

def head_sharing(n_head: int, n_kv_head: int, ax=None, title: str | None = None, q_rank: int = 0, kv_rank: int = 0):
    """Query heads (top row) linked to the key/value head each one reads (bottom row), one colour per
    group; with ranks, the latent each side is decompressed from is drawn below as a bar."""
    ax = ax or plt.subplots(figsize=(max(3.0, 0.32 * n_head + 1), 2.4))[1]
    g = n_head // n_kv_head
    cmap = plt.get_cmap("tab10" if n_kv_head <= 10 else "tab20")
    xq = np.linspace(0, 1, n_head) if n_head > 1 else np.array([0.5])
    xk = np.array([xq[i * g:(i + 1) * g].mean() for i in range(n_kv_head)])
    for h in range(n_head):
        ax.plot([xq[h], xk[h // g]], [1, 0], color=cmap(h // g % cmap.N), lw=1, alpha=0.7, zorder=1)
    width_pt = ax.get_window_extent().width * 72 / ax.figure.dpi / 1.85      # points per unit of x
    size = [min(cap, (0.8 * width_pt / max(n - 1, 1)) ** 2) for cap, n in ((90, n_head), (150, n_kv_head))]
    ax.scatter(xq, np.ones(n_head), s=size[0], c=[cmap(h // g % cmap.N) for h in range(n_head)], zorder=2,
               edgecolors="k", linewidths=0.5)
    ax.scatter(xk, np.zeros(n_kv_head), s=size[1], marker="s", c=[cmap(i % cmap.N) for i in range(n_kv_head)],
               zorder=2, edgecolors="k", linewidths=0.5)
    ax.text(-0.06, 1, f"{n_head} query heads", ha="right", va="center", fontsize=8)
    ax.text(-0.06, 0, f"{n_kv_head} K/V head" + ("s" if n_kv_head > 1 else ""), ha="right", va="center", fontsize=8)
    bottom = -0.25
    for y, rank, side in ((1.35, q_rank, "query latent"), (-0.45, kv_rank, "shared K/V latent")):
        if rank:
            ax.add_patch(plt.Rectangle((0.2, y - 0.08), 0.6, 0.16, color="0.75"))
            ax.text(0.5, y, f"{side}, width {rank}", ha="center", va="center", fontsize=7)
            bottom = min(bottom, y - 0.2)
    ax.set_xlim(-0.75, 1.1)
    ax.set_ylim(bottom, 1.6 if q_rank else 1.3)
    ax.axis("off")
    ax.set_title(title or ("MHA" if g == 1 else "MQA" if n_kv_head == 1 else f"GQA, groups of {g}"), fontsize=9)
    return ax


def attention_budget(cfg, reference=None, axes=None):
    """The view of the chapter's widget, for one config: its head sharing, and one block's attention
    parameters and FLOPs per image by part beside a reference config's (default: MHA at the same width)."""
    from .config import with_overrides
    from .variants import attention_breakdown

    reference = reference or with_overrides(cfg, n_kv_head=None, q_rank=0, kv_rank=0, lowrank="")
    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), gridspec_kw={"width_ratios": [1.3, 1, 1]})
    head_sharing(cfg.n_head, cfg.kv_heads, ax=axes[0], q_rank=cfg.q_rank, kv_rank=cfg.kv_rank,
                 title=f"{cfg.attention_kind}: who reads which keys and values")
    ref, this = attention_breakdown(reference), attention_breakdown(cfg)
    for ax, key, unit, scale in ((axes[1], "params", "parameters per block (thousands)", 1e3),
                                 (axes[2], "flops", "FLOPs per block and image (millions)", 1e6)):
        names = ["MHA" if reference.attention_kind == "MHA" else reference.attention_kind, cfg.attention_kind]
        bottom = np.zeros(2)
        for i, part in enumerate(this[key]):
            vals = np.array([ref[key][part], this[key][part]]) / scale
            ax.bar(names, vals, bottom=bottom, label=part, color=f"C{i}", width=0.55)
            bottom += vals
        for x, total in enumerate(bottom):
            ax.annotate(f"{total:,.1f}", (x, total), ha="center", va="bottom", fontsize=8)
        ax.set_ylabel(unit, fontsize=8)
        ax.set_ylim(0, bottom.max() * 1.6)
        ax.legend(fontsize=7, loc="upper right")
    axes[1].set_title("parameters", fontsize=9)
    axes[2].set_title(f"FLOPs ({cfg.n_tokens} tokens)", fontsize=9)
    axes[0].figure.tight_layout()
    return axes


def variant_costs(rows: list[dict], device: str = "", axes=None):
    """The chapter's table as four panels of horizontal bars, one bar per variant: parameters, forward
    FLOPs per image, attention's activation memory per image (fused kernel, and explicit as a hollow bar),
    and the measured training-step time."""
    if axes is None:
        fig, axes = plt.subplots(1, 4, figsize=(14, 0.32 * len(rows) + 1.4), sharey=True)
    names = [r["variant"] for r in rows]
    y = np.arange(len(rows))
    panels = [("params", 1e6, "parameters (millions)"), ("flops", 1e6, "forward FLOPs per image (millions)"),
              ("act_bytes", 2 ** 20, "attention activations per image (MiB)"), ("step_ms", 1, "training step (ms)")]
    for ax, (key, scale, label) in zip(axes, panels):
        vals = np.array([np.nan if r.get(key) is None else r[key] / scale for r in rows])
        ax.barh(y, vals, color=[f"C{i % 10}" for i in range(len(rows))])
        if key == "act_bytes":
            ax.barh(y, [r["act_bytes_explicit"] / scale for r in rows], fill=False, edgecolor="0.4", ls="--",
                    label="explicit path (keeps the N x N maps)")
            ax.legend(fontsize=7, loc="lower right")
        ax.set_xlabel(label + (f"\n{device}" if key == "step_ms" and device else ""), fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, names, fontsize=8)
    axes[0].invert_yaxis()
    axes[0].figure.tight_layout()
    return axes


def accuracy_vs_params(points: list[dict], ax=None, xkey: str = "params", title: str | None = None):
    """Test accuracy against parameters: {"label", "kind", xkey, "acc"} per run; MHA, GQA and MQA as single
    markers, the MLA runs joined by a line (the rank sweep), every point labelled."""
    ax = ax or plt.subplots(figsize=(5.5, 3.8))[1]
    markers = {"MHA": "o", "GQA": "s", "MQA": "D", "MLA": "^"}
    mla = sorted((p for p in points if p["kind"] == "MLA"), key=lambda p: p[xkey])
    if len(mla) > 1:
        ax.plot([p[xkey] for p in mla], [100 * p["acc"] for p in mla], color="C3", lw=1, alpha=0.6)
    for p in points:
        kind = p["kind"] if p["kind"] in markers else "other"
        ax.scatter(p[xkey], 100 * p["acc"], marker=markers.get(kind, "x"), s=50,
                   color={"MHA": "C0", "GQA": "C1", "MQA": "C2", "MLA": "C3"}.get(kind, "C4"), zorder=3)
        ax.annotate(p["label"], (p[xkey], 100 * p["acc"]), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v / 1e3:,.0f}k" if abs(v) >= 1e4 else f"{v:,.0f}"))
    ax.margins(x=0.18, y=0.15)
    ax.set_xlabel("parameters" if xkey == "params" else xkey)
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def head_similarity_plot(sim: torch.Tensor, n_kv_head: int, ax=None, title: str | None = None):
    """`similarity_matrix` of the heads' attention maps (e.g. `variants.head_similarity`), with a box
    around each group of query heads that shares a key/value head."""
    ax = similarity_matrix(sim, ax=ax, title=title, label="head")
    H = sim.shape[0]
    g = H // n_kv_head
    for i in range(n_kv_head):
        ax.add_patch(plt.Rectangle((i * g - 0.5, i * g - 0.5), g, g, fill=False, lw=2, edgecolor="k"))
    return ax


__all__ += ["head_sharing", "attention_budget", "variant_costs", "accuracy_vs_params", "head_similarity_plot"]


# ---- chapter 9, profiling a training step ----------------------------------------------------------------

PHASE_COLORS = {"data": "#9e9e9e", "forward": "#4c72b0", "backward": "#dd8452", "optimizer": "#55a868"}


def phase_bars(rows: dict, ax=None, shares: bool = False, unit: str = "ms per step", title: str | None = None):
    """One horizontal stacked bar per row of {label: {phase: time}} (phases data, forward, backward,
    optimizer), first row on top; `shares` draws each bar as percent of its own total. Totals are written
    at the end of each bar."""
    labels = list(rows)
    ax = ax or plt.subplots(figsize=(7.5, 0.55 * len(labels) + 1.2))[1]
    y = np.arange(len(labels))[::-1]
    totals = [sum(rows[k].values()) for k in labels]
    left = np.zeros(len(labels))
    for phase, color in PHASE_COLORS.items():
        vals = np.array([rows[k].get(phase, 0.0) for k in labels], dtype=float)
        vals = 100 * vals / np.array(totals) if shares else vals
        ax.barh(y, vals, left=left, color=color, label=phase, height=0.6)
        for yi, l, v in zip(y, left, vals):
            if v > (8 if shares else 0.08 * max(totals)):
                ax.text(l + v / 2, yi, f"{v:.0f}%" if shares else f"{v:.3g}", ha="center", va="center", fontsize=7,
                        color="white")
        left += vals
    if not shares:
        for yi, tot in zip(y, totals):
            ax.text(tot, yi, f" {tot:.3g}", va="center", fontsize=7)
        ax.set_xlim(0, 1.12 * max(totals))
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel("share of the step (%)" if shares else unit)
    ax.legend(ncol=4, fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    if title:
        ax.set_title(title, fontsize=9, pad=22)
    ax.grid(axis="x", alpha=0.3)
    return ax


def speedup_bars(rows: list[dict], ax=None, title: str | None = None):
    """Images/s of each setting relative to the first (the baseline): rows with "setting" and "images/s"."""
    base = rows[0]["images/s"]
    labels = [r["setting"] for r in rows]
    vals = np.array([r["images/s"] / base for r in rows])
    ax = ax or plt.subplots(figsize=(6.5, 0.4 * len(rows) + 1.0))[1]
    y = np.arange(len(rows))[::-1]
    ax.barh(y, vals, color=["#4c72b0" if v >= 1 else "#c44e52" for v in vals], height=0.6)
    for yi, v in zip(y, vals):
        ax.text(v, yi, f" {v:.2f}x", va="center", fontsize=7)
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel("training throughput relative to the baseline (images/s ratio)")
    ax.set_xlim(0, 1.15 * vals.max())
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return ax


__all__ += ["PHASE_COLORS", "phase_bars", "speedup_bars"]


# ---- chapters 4 and 5, augmentation and optimizers --------------------------------------------------------

def _soft_title(target: torch.Tensor, classes) -> str:
    """'0.62 cat\\n0.38 ship' for a soft target (the two largest shares), the class name for a hard one."""
    if target.ndim == 0:
        return classes[int(target)]
    share, idx = target.topk(2)
    lines = [f"{s:.2f} {classes[i]}" for s, i in zip(share.tolist(), idx.tolist()) if s > 0.005]
    return "\n".join(lines)


def augment_rows(images: torch.Tensor, labels: torch.Tensor, ops, classes, seed: int = 0, size: float = 1.15):
    """One row per op of the study's pipeline (`augment.single_op` names), the originals on top: each image
    in a row is its own random draw. Mixup/CutMix rows pair each image with its mirror in the row (the
    reversed batch) and are titled with their soft labels. images uint8 (B, 3, H, W). Returns the figure."""
    from .augment import single_op

    B = len(images)
    fig, axes = plt.subplots(len(ops) + 1, B, figsize=(B * size, (len(ops) + 1) * size * 1.22), squeeze=False)
    rows = [("original", images, labels)]
    for k, op in enumerate(ops):
        x, target = single_op(op, len(classes))(images, labels, torch.Generator().manual_seed(seed + k))
        rows.append((op, denormalize(x), target))
    for r, (name, x, target) in enumerate(rows):
        for j, ax in enumerate(axes[r]):
            ax.imshow(to_display(x[j]), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(_soft_title(target[j], classes), fontsize=6.5)
        axes[r, 0].set_ylabel(name.replace("_", " "), fontsize=8)
    fig.tight_layout()
    return fig


_OP_NAMES = {"random_erasing": "random erasing (p = 1)", "study": "the study's whole pipeline"}


def _grid_two_line_titles(images, titles, ncols, size, suptitle):
    """`image_grid` with room for titles of two lines."""
    fig = image_grid(images, titles=titles, ncols=ncols, size=size, suptitle=suptitle)
    if titles and any("\n" in t for t in titles):
        w, h = fig.get_size_inches()
        fig.set_size_inches(w, h * 1.2)
        fig.tight_layout()
    return fig


def augment_views(image: torch.Tensor, label: int, op: str, partners: torch.Tensor, partner_labels: torch.Tensor,
                  classes, n: int = 16, seed: int = 0, ncols: int = 8, size: float = 1.15):
    """`n` random draws of one op (`augment.single_op` names) on one uint8 image (3, H, W). Ops that mix
    (Mixup, CutMix, the whole pipeline) pair it with image i of `partners` in draw i, each draw its own batch
    and so its own coin and lambda; the titles then give the soft label."""
    from .augment import single_op

    transform = single_op(op, len(classes))
    g = torch.Generator().manual_seed(seed)
    mixes = op in ("mixup", "cutmix", "study")
    if mixes:
        views, targets = [], []
        for i in range(n):
            x, t = transform(torch.stack([image, partners[i % len(partners)]]),
                             torch.tensor([label, int(partner_labels[i % len(partners)])]), g)
            views.append(x[0]), targets.append(t[0])
        x, targets = torch.stack(views), targets
    else:
        x, targets = transform(image.expand(n, -1, -1, -1), torch.full((n,), label), g)
    titles = [_soft_title(t, classes) for t in targets] if mixes else None
    return _grid_two_line_titles(denormalize(x), titles, ncols, size,
                                 f"{n} random draws of {_OP_NAMES.get(op, op)} on one image")


def _op_label(op: str, m: float) -> str:
    """What an AutoAugment magnitude means, in the op's own unit."""
    if op.startswith("Shear"):
        return f"{op}\nslope {m:.2f}"
    if op.startswith("Translate"):
        return f"{op}\n{int(m)} px"
    if op == "Rotate":
        return f"{op}\n{m:.1f} deg"
    if op in ("Brightness", "Color", "Contrast", "Sharpness"):
        return f"{op}\nfactor {1 + m:.2f}"
    if op == "Posterize":
        return f"{op}\n{int(m)} bits"
    if op == "Solarize":
        return f"{op}\nabove {255 * m:.0f}"
    return op


def autoaugment_gallery(image: torch.Tensor, bin: int = 9, ncols: int = 8, size: float = 1.3):
    """Every op AutoAugment can draw, on one uint8 image (3, H, W), at magnitude `bin` of 10 (positive sign)."""
    from torchvision.transforms import v2

    from .autoaugment import apply_op, op_magnitude

    shown, titles = [image], ["original"]
    for op in v2.AutoAugment._AUGMENTATION_SPACE:
        m, _ = op_magnitude(op, bin, *image.shape[-2:])
        shown.append(apply_op(op, image[None], torch.tensor([m], dtype=torch.float64))[0])
        titles.append(_op_label(op, m))
    return _grid_two_line_titles(torch.stack(shown), titles, ncols, size,
                                 f"AutoAugment's operations at magnitude bin {bin} of 10")


def study_vs_measured(study: dict, measured: dict, labels: dict, scale: str, axes=None):
    """Two panels of bars over the same rows: the study's reported accuracy and this run's measured one (%)."""
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.2))
    for ax, values, title, color in ((axes[0], study, "reported by the study (paper scale)", "tab:blue"),
                                     (axes[1], measured, f"measured here ({scale} scale)", "tab:orange")):
        shown = {labels[k]: v for k, v in values.items()}
        bars(shown, "CIFAR-10 test accuracy (%)", ax=ax, fmt="{:.2f}" if values is study else "{:.1f}",
             title=title, color=color)
        lo, hi = min(shown.values()), max(shown.values())
        ax.set_ylim(max(0, lo - 2 * (hi - lo) - 1), hi + (hi - lo) + 1)
    axes[0].figure.tight_layout()
    return axes


def lr_schedules(configs: dict, ax=None, steps: int = 400):
    """Learning rate against training progress (epochs) for {label: TrainConfig}: linear warmup, then a half
    cosine down to `min_lr` (`optim.lr_at`), the end of each warmup marked."""
    from .optim import lr_at

    ax = ax or plt.subplots(figsize=(5, 3))[1]
    for k, (label, cfg) in enumerate(configs.items()):
        p = np.linspace(0, 1, steps)
        ax.plot(p * cfg.epochs, [lr_at(t, cfg.lr, cfg.min_lr, cfg.warmup_epochs / cfg.epochs) for t in p],
                color=f"C{k}", label=label)
        ax.axvline(cfg.warmup_epochs, color=f"C{k}", ls=":", lw=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def lr_sweep(results: dict, ax=None, title: str | None = None):
    """Final test accuracy against peak learning rate, one line per optimizer: {name: [(lr, acc 0..1), ...]}."""
    ax = ax or plt.subplots(figsize=(5.2, 3.3))[1]
    for k, (name, points) in enumerate(results.items()):
        lrs, accs = zip(*sorted(points))
        ax.plot(lrs, [100 * a for a in accs], marker="o", color=f"C{k}", label=name)
        best = int(np.argmax(accs))
        ax.scatter([lrs[best]], [100 * accs[best]], s=120, facecolors="none", edgecolors=f"C{k}")
    ax.set_xscale("log")
    swept = sorted({lr for points in results.values() for lr, _ in points})
    ax.set_xticks(swept, [f"{lr:.1e}" for lr in swept])
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def update_sizes(updates: dict, ax=None):
    """Cumulative distribution of per-coordinate update sizes |delta theta| / lr, one curve per optimizer:
    {name: 1-D tensor}. A sign update is a step at 1; an adaptive one spreads below it."""
    ax = ax or plt.subplots(figsize=(5.2, 3))[1]
    for k, (name, u) in enumerate(updates.items()):
        v = np.sort(u.detach().float().cpu().numpy())
        ax.plot(np.concatenate([[0.0], v]), np.linspace(0, 1, len(v) + 1), color=f"C{k}", lw=2, label=name,
                drawstyle="steps-post")
    ax.set_xlabel("|update| / learning rate, per coordinate")
    ax.set_ylabel("share of coordinates at or below")
    ax.set_xlim(0, None)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def optimizer_paths(lr_adamw: float = 0.1, lr_lion: float = 0.1, steps: int = 60, noise: float = 0.0,
                    seed: int = 0, ax=None):
    """AdamW and Lion (torch, lion-pytorch) on the valley 0.5 * (x - 1)^2 + 5 * (y - 0.5)^2 from (-2, 1.5),
    on its contours: Lion moves every coordinate by exactly lr each step, AdamW by a step that shrinks as
    its gradients stop agreeing. `noise` adds Gaussian noise to the gradient, as minibatches do."""
    from lion_pytorch import Lion

    g = torch.Generator().manual_seed(seed)
    grad_noise = noise * torch.randn(steps, 2, generator=g)
    paths = {}
    for name, make in (("AdamW", lambda p: torch.optim.AdamW([p], lr=lr_adamw, weight_decay=0.0)),
                       ("Lion", lambda p: Lion([p], lr=lr_lion, weight_decay=0.0))):
        p = torch.tensor([-2.0, 1.5], requires_grad=True)
        opt, path = make(p), [p.detach().clone()]
        for t in range(steps):
            loss = 0.5 * (p[0] - 1) ** 2 + 5 * (p[1] - 0.5) ** 2
            opt.zero_grad()
            loss.backward()
            p.grad += grad_noise[t]
            opt.step()
            path.append(p.detach().clone())
        paths[name] = torch.stack(path).numpy()
    ax = ax or plt.subplots(figsize=(5.2, 3.4))[1]
    X, Y = np.meshgrid(np.linspace(-2.5, 2, 200), np.linspace(-0.5, 2, 200))
    ax.contour(X, Y, 0.5 * (X - 1) ** 2 + 5 * (Y - 0.5) ** 2, levels=np.geomspace(0.01, 20, 12), colors="0.8",
               linewidths=0.7)
    for k, (name, path) in enumerate(paths.items()):
        ax.plot(path[:, 0], path[:, 1], marker="o", ms=2.5, lw=1, color=f"C{k}", label=f"{name} ({steps} steps)")
    ax.scatter([1], [0.5], marker="*", s=120, color="black", zorder=3, label="minimum")
    ax.set_xlabel("parameter x")
    ax.set_ylabel("parameter y")
    ax.set_xlim(-2.5, 2)
    ax.set_ylim(-0.5, 2)
    ax.legend(fontsize=7, loc="upper right")
    return paths


__all__ += ["augment_rows", "augment_views", "autoaugment_gallery", "study_vs_measured", "lr_schedules", "lr_sweep",
            "update_sizes", "optimizer_paths"]

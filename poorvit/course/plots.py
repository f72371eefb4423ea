"""The course's generic plots, used by several chapters: image, class and patch grids, attention on
an image and attention rollout, filters, training curves, confusion matrices, bars, similarity
matrices and Markdown tables. A chapter's own plots live in its module
(`poorvit.course.ch07_whitening`, ...).

Every function draws on a matplotlib `Axes` (made for you when not given) and returns the figure or
axes, with labelled axes, so a chapter can add a one-line caption. Images are (3, H, W) or (B, 3, H,
W) tensors, uint8 or normalized floats (undone with CIFAR-10's statistics).
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..data import denormalize

# The widest figure (inches) the book shows readably: its text column is ~690 px at a 1280 px window
# and notebook figures are saved at 100 dpi, so 10 in is shown at 69 % (.ci/check_pages.py fails a
# figure shown at under half its size). Grids shrink their panels to fit; single plots stay under.
MAX_WIDTH = 10.0


def to_display(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) uint8 / [0, 1] float / normalized float -> (H, W, 3) float in [0, 1] for imshow."""
    img = img.detach().cpu()
    if img.dtype == torch.uint8:
        img = img.float() / 255
    elif img.min() < 0 or img.max() > 1:
        img = denormalize(img)
    return img.permute(1, 2, 0).clamp(0, 1).numpy()


def image_grid(images: torch.Tensor, titles: list[str] | None = None, ncols: int = 8,
               size: float = 1.2, suptitle: str | None = None):
    """A grid of images with optional titles; returns the figure."""
    n = len(images)
    nrows = math.ceil(n / ncols)
    size = min(size, MAX_WIDTH / ncols)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=(ncols * size, nrows * size * (1.25 if titles else 1)))
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


def class_grid(images: torch.Tensor, labels: torch.Tensor, classes, per_class: int = 8,
               size: float = 1.0):
    """`per_class` examples of every class, one row each, the class name on the left; returns the
    figure."""
    size = min(size, MAX_WIDTH / per_class)
    fig, axes = plt.subplots(len(classes), per_class, squeeze=False,
                             figsize=(per_class * size, len(classes) * size))
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
    """One image cut into its patches, drawn with a gap between patches, in raster order."""
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


def attention_on_image(image: torch.Tensor, attn: torch.Tensor, ax=None, title: str | None = None,
                       alpha: float = 0.6):
    """A (grid x grid) attention vector over patches, upsampled and laid over its image."""
    img = to_display(image)
    g = int(round(math.sqrt(attn.numel())))
    heat = attn.detach().float().cpu().reshape(g, g).numpy()
    ax = ax or plt.subplots(figsize=(2.5, 2.5))[1]
    ax.imshow(img, interpolation="nearest")
    ax.imshow(heat, cmap="inferno", alpha=alpha, interpolation="bilinear",
              extent=(-0.5, img.shape[1] - 0.5, img.shape[0] - 0.5, -0.5))
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=8)
    return ax


def attention_compare(images: torch.Tensor, rows: dict, titles: list[str] | None = None,
                      size: float = 1.4):
    """Several attention read-outs side by side: {row name: (B, N) attention over patches} laid over
    the B images, one row per read-out (e.g. last block vs rollout)."""
    B = len(images)
    size = min(size, MAX_WIDTH / B)
    fig, axes = plt.subplots(len(rows), B, figsize=(B * size, len(rows) * size + 0.3),
                             squeeze=False)
    for r, (name, attn) in enumerate(rows.items()):
        for i in range(B):
            attention_on_image(images[i], attn[i], ax=axes[r, i],
                               title=titles[i] if titles and r == 0 else None)
        axes[r, 0].text(-0.08, 0.5, name, transform=axes[r, 0].transAxes, rotation=90, ha="right",
                        va="center", fontsize=8)
    fig.tight_layout(pad=0.3)
    return fig


def attention_rollout(maps: torch.Tensor, residual: float = 0.5) -> torch.Tensor:
    """Abnar & Zuidema (arXiv 2005.00928): multiply head-averaged maps through the blocks, each
    mixed with the identity for the residual path. maps (L, B, H, T, T) -> (B, T, T)."""
    A = maps.float().mean(2)                                          # (L, B, T, T)
    eye = torch.eye(A.shape[-1], device=A.device)
    out = eye.expand_as(A[0]).clone()
    for a in A:
        a = residual * eye + (1 - residual) * a
        out = (a / a.sum(-1, keepdim=True)) @ out
    return out


def filters_grid(weight: torch.Tensor, ncols: int = 12, ax=None, title: str | None = None,
                 size: float = 0.45, shared: bool = False):
    """Conv filters (K, 3, p, p) as small RGB tiles, each scaled to its own [0, 1] range; with
    `shared`, all on one scale with 0 as mid-grey, so that a filter's brightness shows its size."""
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
        canvas[r * (p + 1):r * (p + 1) + p, c * (p + 1):c * (p + 1) + p] = \
            w[i].permute(1, 2, 0).numpy()
    if ax is None:
        size = min(size, MAX_WIDTH / ncols)
        ax = plt.subplots(figsize=(ncols * size, nrows * size))[1]
    ax.imshow(canvas, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def curves(runs: dict, keys=("loss", "test_acc"), xkey: str = "epoch", axes=None):
    """Training curves of several runs side by side: {label: Run or history list} -> one panel per
    key."""
    labels = {"loss": "training loss", "test_acc": "test accuracy",
              "train_acc": "training accuracy", "lr": "learning rate"}
    if axes is None:
        fig, axes = plt.subplots(1, len(keys), figsize=(min(4.2 * len(keys), MAX_WIDTH), 3.2),
                                 squeeze=False)
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


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, classes, ax=None,
                     normalize: bool = True):
    """Rows: true class, columns: predicted class; each row sums to 1 when `normalize`."""
    n = len(classes)
    cm = torch.bincount(target.cpu() * n + pred.cpu(), minlength=n * n).view(n, n).float()
    if normalize:
        cm = cm / cm.sum(1, keepdim=True).clamp_min(1)
    ax = ax or plt.subplots(figsize=(6, 5.2))[1]
    im = ax.imshow(cm.numpy(), cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    for i in range(n):
        for j in range(n):
            v = cm[i, j].item()
            ax.text(j, i, f"{v:.2f}" if normalize else f"{int(v)}", ha="center", va="center",
                    fontsize=8, color="white" if v > cm.max().item() / 2 else "black")
    ax.figure.colorbar(im, ax=ax, fraction=0.046)
    return ax


def similarity_matrix(sim: torch.Tensor, ax=None, title: str | None = None,
                      label: str = "class token"):
    """A (k, k) cosine-similarity matrix on a fixed [-1, 1] scale, each cell annotated."""
    m = sim.detach().float().cpu().numpy()
    k = m.shape[0]
    ax = ax or plt.subplots(figsize=(0.5 * k + 2, 0.5 * k + 1.6))[1]
    im = ax.imshow(m, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if abs(m[i, j]) > 0.6 else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel(label)
    ax.set_ylabel(label)
    ax.figure.colorbar(im, ax=ax, fraction=0.046)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def bars(values: dict, ylabel: str, ax=None, fmt: str = "{:,.0f}", title: str | None = None,
         color=None):
    """A labelled bar chart of {name: value}, each bar annotated with its value."""
    ax = ax or plt.subplots(figsize=(min(max(3, 0.8 * len(values)), MAX_WIDTH), 3))[1]
    names, vals = list(values), list(values.values())
    rects = ax.bar(names, vals, color=color)
    for r, v in zip(rects, vals):
        ax.annotate(fmt.format(v), (r.get_x() + r.get_width() / 2, r.get_height()), ha="center",
                    va="bottom", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", rotation=30)
    if title:
        ax.set_title(title)
    return ax


def markdown_table(rows: list[dict], columns: list[str] | None = None,
                   formats: dict | None = None) -> str:
    """A Markdown table of dicts (for `IPython.display.Markdown` and myst-nb `glue`)."""
    columns = columns or list(rows[0])
    formats = formats or {}
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        cells = [formats.get(c, "{}").format(row.get(c, "")) if row.get(c) is not None else "–"
                 for c in columns]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


__all__ = ["to_display", "image_grid", "class_grid", "patch_grid", "attention_on_image",
           "attention_compare", "attention_rollout", "filters_grid", "curves", "confusion_matrix",
           "similarity_matrix", "bars", "markdown_table"]

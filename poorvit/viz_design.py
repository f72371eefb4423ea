"""Plots of chapters 6-8: attention variants (head sharing, budgets, costs), the whitening of the patch
embedding (second moments, spectra) and many class tokens (re-exported by `poorvit.viz`)."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from .viz_basic import attention_on_image, filters_grid, to_display

__all__: list[str] = []


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

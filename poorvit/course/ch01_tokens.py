"""Chapter 1, images to tokens: what the chapter draws (patches and their cost, position-embedding
similarity), its explorer (`patch_explorer`), and the `tokens/*` exercise checks.

    from poorvit.course import ch01_tokens as ch
    ch.patch_sizes(image, sizes=(2, 4, 8, 16), n_embd=192)
    ch.similarity_maps(model.tokens.pos_embed[0, 1:], grid=8)
"""
from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch

from ..cost import attention_flops, n_tokens, patch_cost
from .exercises import ExerciseError, as_int, exercise, expect_close
from .plots import patch_grid
from .widgets import explorer


# ---- patch sizes and their cost ------------------------------------------------------------------

def _cost_bars(ax, image_size: int, sizes, n_embd: int, n_cls: int = 1,
               highlight: int | None = None):
    """Attention FLOPs of one layer per patch size, split into the part linear in T and the part
    in T^2."""
    costs = [patch_cost(image_size, p, n_embd, n_cls) for p in sizes]
    x = np.arange(len(sizes))
    for dx, key, label, color in (
            (-0.2, "attention_projections", "projections (∝ T)", "tab:blue"),
            (0.2, "attention_scores", "scores q kᵀ and weights·v (∝ T²)", "tab:red")):
        ax.bar(x + dx, [c[key] for c in costs], width=0.4, color=color, label=label,
               edgecolor=["black" if p == highlight else "none" for p in sizes], linewidth=2)
    for i, c in enumerate(costs):
        top = max(c["attention_projections"], c["attention_scores"])
        ax.annotate(f"T={c['tokens']}", (i, top), ha="center", va="bottom", fontsize=8,
                    fontweight="bold" if sizes[i] == highlight else "normal")
    ax.set_yscale("log")
    ax.set_xticks(x, [str(p) for p in sizes])
    ax.set_xlabel("patch size p (pixels)")
    ax.set_ylabel("FLOPs of one attention layer")
    ax.set_title(f"attention cost per image (n_embd = {n_embd})", fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    ax.margins(y=0.15)
    return ax


def patch_view(image: torch.Tensor, patch_size: int, n_embd: int, n_cls: int = 1, sizes=None,
               axes=None):
    """One image cut into p x p patches (left), and the attention FLOPs of one layer for every patch
    size in `sizes` (default: every divisor of the image side below it), the chosen one outlined
    (right)."""
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
    """The static page of `patch_view`: the image at every patch size in `sizes`, two to a row on
    the left (sized for a book's text column, about 9.5 inches wide), then their attention cost on
    the right."""
    n = len(sizes)
    rows = -(-n // 2)
    fig = plt.figure(figsize=(9.5, 2.3 * rows + 0.4))
    grid = fig.add_gridspec(rows, 3, width_ratios=[1, 1, 2.3])
    for i, p in enumerate(sizes):
        ax = fig.add_subplot(grid[i // 2, i % 2])
        patch_grid(image, p, ax=ax)
        ax.set_title(f"p = {p}: {(image.shape[-1] // p) ** 2} patches", fontsize=9)
    _cost_bars(fig.add_subplot(grid[:, 2]), image.shape[-1], list(sizes), n_embd, n_cls)
    fig.tight_layout()
    return fig


def patch_explorer(images, names, n_embd: int, n_cls: int = 1) -> W.Widget:
    """Pick an image and a patch size; see the patch grid, the token count and the attention cost
    of every patch size (`patch_view`)."""
    H = images.shape[-1]
    sizes = [p for p in range(1, H) if H % p == 0]

    def draw(image, patch_size):
        patch_view(images[image], patch_size, n_embd, n_cls, sizes=sizes)
        plt.show()

    return explorer(draw, image=W.Dropdown(options=[(n, i) for i, n in enumerate(names)], value=0),
                    patch_size=W.SelectionSlider(options=sizes, value=4 if 4 in sizes else sizes[0],
                                                 description="patch size"))


# ---- position embeddings -------------------------------------------------------------------------

def position_similarity(pos: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every position embedding with every other: (N, C) -> (N, N)."""
    p = torch.nn.functional.normalize(pos.detach().float().cpu(), dim=-1)
    return p @ p.T


def similarity_canvas(sim: torch.Tensor, grid: int) -> np.ndarray:
    """Lay row i of an (N, N) similarity (N = grid^2) out as a grid x grid map at the place of
    position i: a (grid*(grid+1)-1)^2 image, NaN in the one-pixel gaps between maps."""
    step = grid + 1
    canvas = np.full((grid * step - 1, grid * step - 1), np.nan)
    s = sim.detach().float().cpu().numpy()
    for i in range(grid * grid):
        r, c = divmod(i, grid)
        canvas[r * step:r * step + grid, c * step:c * step + grid] = s[i].reshape(grid, grid)
    return canvas


def similarity_maps(pos: torch.Tensor, grid: int, ax=None, title: str | None = None,
                    full_range: bool = False):
    """Position embeddings (grid^2, C) -> for every position, its cosine similarity to all
    positions, each drawn as a small map in the position's own place (ViT paper, figure 7 centre).
    Colours span the off-diagonal similarities of this table (the diagonal, always 1, saturates), or
    [-1, 1] with `full_range`."""
    sim = position_similarity(pos)
    off = sim[~torch.eye(len(sim), dtype=torch.bool)]
    lo, hi = (-1.0, 1.0) if full_range else (off.min().item(), off.max().item())
    canvas = similarity_canvas(sim, grid)
    ax = ax or plt.subplots(figsize=(3.6, 3.4))[1]
    cmap = plt.get_cmap("RdBu_r" if full_range else "viridis").with_extremes(bad="white")
    im = ax.imshow(np.ma.masked_invalid(canvas), cmap=cmap, vmin=lo, vmax=hi,
                   interpolation="nearest")
    step = grid + 1
    ticks = np.arange(grid) * step + (grid - 1) / 2
    ax.set_xticks(ticks, range(grid), fontsize=8)
    ax.set_yticks(ticks, range(grid), fontsize=8)
    ax.set_xlabel("patch column")
    ax.set_ylabel("patch row")
    if title:
        ax.set_title(title, fontsize=9)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, label="cosine similarity")
    return ax


# ---- exercise checks ("tokens/...") --------------------------------------------------------------

@exercise("tokens/patchify",
          hint="view (B, C, H, W) as (B, C, H/p, p, W/p, p), permute to (B, H/p, W/p, C, p, p), "
               "then reshape to (B, N, C*p*p): patches in raster order, values in (c, row, col) "
               "order.")
def _check_patchify(fn) -> str:
    """fn(images, p) -> (B, N, C*p*p), equal to `poorvit.tokens.patchify`."""
    from ..tokens import patchify

    g = torch.Generator().manual_seed(11)
    for shape, p in (((2, 3, 8, 8), 2), ((3, 3, 32, 32), 4), ((1, 3, 32, 32), 8),
                     ((2, 3, 8, 16), 4)):
        x = torch.randn(*shape, generator=g)
        expect_close(fn(x, p), patchify(x, p), f"patchify of a {shape} batch with p={p}")
    return ("your patches match poorvit.tokens.patchify "
            "(raster order, values in (channel, row, column) order)")


@exercise("tokens/patch-embed-matmul",
          hint="flatten the conv weight (C, 3, p, p) to a (C, 3*p*p) matrix W; the tokens are "
               "patchify(images, p) @ W.T + bias.")
def _check_patch_embed_matmul(fn) -> str:
    """fn(embed: PatchEmbed, images) -> (B, N, n_embd), equal to `embed(images)`, computed with one
    matmul."""
    from ..tokens import PatchEmbed

    torch.manual_seed(12)
    for p, C in ((4, 16), (8, 24), (2, 8)):
        embed = PatchEmbed(p, 3, C)
        x = torch.randn(2, 3, 16, 16)
        with torch.no_grad():
            expect_close(fn(embed, x), embed(x),
                         f"tokens of PatchEmbed(patch_size={p}, n_embd={C})")
    return "one matrix product of flattened patches gives exactly the strided convolution's tokens"


@exercise("tokens/attention-flops",
          hint="T = (image_size / patch_size)^2 + 1 tokens; q, k, v and the output projection cost "
               "2*T*C*C each; q kᵀ and weights @ v cost 2*T*T*C each.")
def _check_attention_flops(fn) -> str:
    """fn(image_size, patch_size, n_embd) -> FLOPs of one attention layer on one image (one class
    token)."""
    for size, p, C in ((32, 4, 192), (32, 2, 64), (32, 8, 128), (64, 4, 32), (32, 1, 16)):
        want = attention_flops(n_tokens(size, p), C)["total"]
        got = as_int(fn(size, p, C), f"FLOPs for image_size={size}, patch_size={p}")
        if got != want:
            raise ExerciseError(f"image_size={size}, patch_size={p}, n_embd={C}: "
                                f"expected {want:,} FLOPs, got {got:,}")
    return ("your formula matches poorvit.cost.attention_flops "
            "(which a test holds equal to flop_counter)")


__all__ = ["patch_view", "patch_sizes", "patch_explorer", "position_similarity",
           "similarity_canvas", "similarity_maps"]

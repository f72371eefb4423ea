"""Chapter 8, many class tokens: what each class token looks at (`class_token_attention`,
`token_maps`, `class_token_explorer`), how alike their outputs are (`cosine_matrix`,
`class_token_similarity`, `off_diagonal_mean`, `effective_count`, `similarity_grid`), accuracy
against the count with its noise band (`accuracy_by_count`), and the `cls-tokens/*` exercise
checks. The similarity matrices are drawn with `plots.similarity_matrix`.

    from poorvit.course import ch08_class_tokens as ch
    sim = ch.class_token_similarity(run.model, normalize(data.test_x[:500]))
    ch.off_diagonal_mean(sim), ch.effective_count(sim)     # 1.0 and 1.0: collapsed into one token
"""
from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import torch
import torch.nn as nn

from ..data import model_input
from ..model import ViT, eval_mode
from .exercises import ExerciseError, as_float, as_int, exercise, expect_close
from .plots import attention_on_image, to_display
from .widgets import explorer

# ---- what each class token looks at, and how alike their outputs are -----------------------------


@torch.no_grad()
def class_token_attention(model: ViT, images: torch.Tensor, block: int = -1) -> torch.Tensor:
    """Where each class token looks: its attention over the patch tokens in one block (default: the
    last), averaged over heads, as a (B, n_cls, grid, grid) map. Each map sums to 1 minus the
    attention that token gives to the class tokens. `images` (B, 3, H, W): uint8 pixels or
    normalized floats (`data.model_input`; raw float pixels raise ValueError)."""
    p = next(model.parameters())
    maps = model.attention_maps(model_input(images).to(p.device, p.dtype))[block]  # (B, H, T, T)
    k, g = model.cfg.n_cls, model.cfg.grid
    return maps.mean(1)[:, :k, k:].reshape(len(images), k, g, g)


def cosine_matrix(tokens: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every pair of tokens: (B, k, C) -> (B, k, k)."""
    t = nn.functional.normalize(tokens.float(), dim=-1)
    return t @ t.transpose(1, 2)


@torch.no_grad()
def class_token_similarity(model: ViT, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Cosine similarity between the class tokens' final normalized outputs (what the head reads),
    averaged over `images` ((B, 3, H, W): uint8 pixels or normalized floats, `data.model_input`):
    (n_cls, n_cls), ones on the diagonal. The model's mode is restored on any exit."""
    p = next(model.parameters())
    total = torch.zeros(model.cfg.n_cls, model.cfg.n_cls)
    with eval_mode(model):
        for chunk in images.split(batch_size):
            feats = model.forward_features(model_input(chunk).to(p.device, p.dtype))  # (B, T, C)
            total += cosine_matrix(feats[:, : model.cfg.n_cls]).sum(0).cpu()
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
    trace(S)^2 / ||S||_F^2 (= (sum of eigenvalues)^2 / sum of their squares). 1 when all k tokens
    are copies of one, k when they are orthogonal, 2 for two groups of copies orthogonal to each
    other."""
    s = sim.double()
    return (s.diagonal().sum() ** 2 / s.square().sum()).item()


# ---- plots and the explorer ----------------------------------------------------------------------

def token_maps(images: torch.Tensor, maps: torch.Tensor, row_labels: list[str] | None = None,
               size: float = 1.3, suptitle: str | None = None):
    """Attention maps of several tokens on the same images: the images in the top row, then one row
    per token. images (B, 3, H, W); maps (B, k, g, g). Returns the figure."""
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


def similarity_grid(sims: dict, ncols: int = 2, size: float = 3.4):
    """Several (k, k) class-token similarity matrices ({title: matrix}, e.g. from
    `class_token_similarity`), `ncols` to a row, each titled with its mean off-diagonal entry and
    effective count; the numbers in the cells at 8 pt (one decimal above 5 tokens). Returns the
    figure."""
    import math

    from .plots import similarity_matrix

    nrows = math.ceil(len(sims) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * (size - 0.2)),
                             squeeze=False)
    for ax, (name, sim) in zip(axes.flat, sims.items()):
        similarity_matrix(sim, ax=ax, title=f"{name}\nmean off-diagonal "
                                            f"{off_diagonal_mean(sim):.2f}, "
                                            f"effective count {effective_count(sim):.1f}")
        ax.title.set_fontsize(9)
        for text in ax.texts:                                # the numbers in the cells
            text.set_fontsize(8)
            if len(sim) > 5:                                 # one decimal fits a small cell
                text.set_text(f"{float(text.get_text()):.1f}")
    for ax in list(axes.flat)[len(sims):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def accuracy_by_count(accs: dict, noise: float, ax=None, reference: int = 1):
    """Final test accuracy (%) against the number of class tokens ({n_cls: acc}), with the
    `reference` count's accuracy ± `noise` (the noise band of one run against another) shaded: a
    point inside the band is within noise of it."""
    ax = ax or plt.subplots(figsize=(4, 3))[1]
    ref = accs[reference]
    ax.axhspan(ref - noise, ref + noise, color="0.85", lw=0, zorder=0,
               label=f"n_cls = {reference} ± noise band")
    ax.plot(list(accs), list(accs.values()), marker="o")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(accs), [str(k) for k in accs])
    ax.minorticks_off()
    ax.set_xlabel("number of class tokens (n_cls)")
    ax.set_ylabel("final test accuracy (%)")
    ax.set_title("accuracy against the count", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return ax


def class_token_explorer(maps: dict, images) -> W.Widget:
    """Pick a model by its number of class tokens and one of its tokens: that token's attention on
    the images, drawn with `token_maps`. maps: {n_cls: (B, n_cls, g, g)} from
    `class_token_attention`; images (B, 3, H, W)."""
    counts = sorted(maps)

    def draw(n_cls, token):
        t = min(token, n_cls - 1)
        token_maps(images, maps[n_cls][:, t:t + 1], row_labels=[f"token {t}"],
                   suptitle=f"n_cls = {n_cls}: attention of class token {t} over the patches "
                            "(last block)")
        plt.show()

    return explorer(draw, n_cls=W.Dropdown(options=counts, value=counts[-1], description="n_cls"),
                    token=W.IntSlider(value=0, min=0, max=max(counts) - 1, description="token"))


# ---- exercise checks ("cls-tokens/...") ----------------------------------------------------------

@exercise("cls-tokens/mean-head",
          hint="take the first n_cls tokens, feats[:, :n_cls], average them over dim 1, and apply "
               "the head.")
def _check_cls_mean_head(fn) -> str:
    """fn(feats, n_cls, head) -> logits from the average of the class tokens (the `cls_head="mean"`
    pooling)."""
    from ..config import get_config

    torch.manual_seed(0)
    for k in (1, 3):
        model = ViT(get_config("micro", n_cls=k, cls_head="mean")).eval()
        with torch.no_grad():
            feats = model.forward_features(torch.randn(4, 3, 32, 32))
            expect_close(torch.as_tensor(fn(feats, k, model.head)), model.forward_head(feats),
                         f"logits with n_cls={k}")
    return "mean pooling of the class tokens matches ViT(cls_head='mean')"


@exercise("cls-tokens/extra-params",
          hint="count what grows with n_cls: the class tokens, their learned positions "
               "(pos_embed='learned' only) and, with cls_head='concat', the head's input.")
def _check_cls_extra_params(fn) -> str:
    """fn(cfg) -> how many more parameters cfg has than the same config with n_cls = 1."""
    from ..config import get_config, with_overrides
    from ..cost import count_params

    for over in (dict(n_cls=4), dict(n_cls=8, cls_head="mean"), dict(n_cls=3, pos_embed="sincos"),
                 dict(n_cls=2, pos_embed="none", n_classes=100), dict(n_cls=1)):
        cfg = get_config("smoke", **over)
        want = count_params(cfg) - count_params(with_overrides(cfg, n_cls=1))
        got = as_int(fn(cfg), f"extra parameters for {over}")
        if got != want:
            raise ExerciseError(f"for {over} expected {want:,} extra parameters, got {got:,}")
    return "the extra parameters match count_params for every head and positional embedding"


@exercise("cls-tokens/collapse",
          hint="normalize each token to unit length, form the (B, k, k) matrix of dot products, "
               "average it over the images, then average its k * (k - 1) off-diagonal entries.")
def _check_cls_collapse(fn) -> str:
    """fn(tokens) -> mean off-diagonal cosine similarity of (B, k, C) tokens, averaged over the B
    images."""
    g = torch.Generator().manual_seed(3)
    for shared in (0.0, 0.8):
        base = torch.randn(5, 1, 16, generator=g)
        tokens = shared * base + (1 - shared) * torch.randn(5, 4, 16, generator=g)
        want = off_diagonal_mean(cosine_matrix(tokens).mean(0))
        got = as_float(fn(tokens), "the mean off-diagonal similarity")
        if abs(got - want) > 1e-4:
            raise ExerciseError(f"expected a mean off-diagonal similarity of {want:.4f}, "
                                f"got {got:.4f}")
    return "your collapse measure matches off_diagonal_mean(cosine_matrix(tokens).mean(0))"


__all__ = ["class_token_attention", "cosine_matrix", "class_token_similarity", "off_diagonal_mean",
           "effective_count", "token_maps", "similarity_grid", "accuracy_by_count",
           "class_token_explorer"]

"""Chapter 7, whitening the patch embedding: the second moment of patches and its spectrum
(`second_moment_image`, `eigen_spectrum`), what `eps` does (`whitening_panel`,
`whitening_explorer`), and the `whitening/*` exercise checks. The whitening itself is the library's
(`poorvit.init`).

    from poorvit.course import ch07_whitening as ch
    sigma = second_moment(stride1_patches(images, 4))
    ch.whitening_panel(sigma, eps=1e-2)
"""
from __future__ import annotations

import math

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch

from ..init import whitening_filters
from .exercises import ExerciseError, as_int, exercise, expect_close
from .plots import filters_grid
from .widgets import explorer


def second_moment_image(sigma: torch.Tensor, ax=None, title: str | None = None, channels: int = 3):
    """A (D, D) second-moment (or covariance) matrix of flattened patches, D = channels * p * p, on
    a diverging scale around 0; thin lines separate the colour channels' blocks of p * p pixels."""
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


def eigen_spectrum(eigvals: torch.Tensor, eps: float | None = None, ax=None,
                   label: str | None = None):
    """Eigenvalues, largest first, on a log scale; with `eps`, the line below which whitening "
      "damps."""
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
    and per direction the variance kept, lambda / (lambda + eps), beside the gain
    1 / sqrt(lambda + eps)."""
    filters, lam = whitening_filters(sigma, eps)
    D = len(lam)
    p = int(round(math.sqrt(D / 3)))
    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(10, 3.4),
                                 gridspec_kw={"width_ratios": [1.3, 1, 1.1]})
    f = filters.double()
    white = f @ sigma.double() @ f.T  # second moment after whitening
    filters_grid(filters.view(D, 3, p, p), ncols=8, ax=axes[0], shared=True,
                 title=f"whitening filters, eps = {eps:.1e}\n(one shared scale)")
    im = axes[1].imshow(white.float().numpy(), cmap="viridis", vmin=0, vmax=1,
                        interpolation="nearest")
    axes[1].figure.colorbar(im, ax=axes[1], fraction=0.046)
    axes[1].set_title("second moment\nof whitened patches", fontsize=10)
    axes[1].set_xlabel("whitened channel")
    axes[1].set_ylabel("whitened channel")
    idx = np.arange(1, D + 1)
    kept = (lam / (lam + eps)).numpy()
    axes[2].plot(idx, kept, marker="o", ms=3, color="C0", label="variance kept")
    axes[2].set_ylim(0, 1.05)
    axes[2].set_xlabel("direction (largest eigenvalue first)")
    axes[2].set_ylabel("variance after whitening", color="C0")
    gain = axes[2].twinx()
    gain.semilogy(idx, (1 / torch.sqrt(lam.double() + eps)).numpy(), ls="--", color="C1",
                  label="gain")
    gain.set_ylabel("gain 1 / sqrt(lambda + eps)", color="C1")
    axes[2].set_title("per direction", fontsize=10)
    axes[2].grid(alpha=0.3)
    axes[0].figure.tight_layout()
    return axes


def whitening_explorer(sigma, eps: float = 1e-1) -> W.Widget:
    """A log slider for `eps` (starting at `eps`), redrawing `whitening_panel(sigma, eps)`: the
    filters on one scale, the second moment of whitened patches, and the variance kept per
    direction."""
    def draw(eps):
        whitening_panel(sigma, eps)
        plt.show()

    return explorer(draw, eps=W.FloatLogSlider(value=eps, base=10, min=-6, max=1, step=0.25,
                                               description="eps", readout_format=".1e"))


# ---- exercise checks ("whitening/...") -----------------------------------------------------------

def _random_second_moment(D: int = 12, seed: int = 0) -> torch.Tensor:
    """A second-moment matrix of correlated random data whose eigenvalues span orders of
    magnitude."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.logspace(0, -2, D, dtype=torch.float64)
    mix = torch.randn(D, D, generator=g, dtype=torch.float64) * scale
    x = torch.randn(4000, D, generator=g, dtype=torch.float64) @ mix.T
    return x.T @ x / len(x)


@exercise("whitening/filters",
          hint="torch.linalg.eigh returns eigenvalues in ascending order; flip both, then divide "
               "each eigenvector (a column of V) by sqrt(eigenvalue + eps) and stack them as rows.")
def _check_whitening_filters(fn) -> str:
    """fn(sigma, eps) -> (D, D) filters, one per row, v_i / sqrt(lambda_i + eps), largest eigenvalue
    first."""
    for seed, eps in ((1, 1e-2), (2, 1e-4)):
        sigma = _random_second_moment(seed=seed)
        want, lam = whitening_filters(sigma, eps)
        got = torch.as_tensor(fn(sigma, eps)).double()
        want = want.double()
        if got.shape != want.shape:
            raise ExerciseError(f"expected filters of shape {tuple(want.shape)} (one row per "
                                f"direction), got {tuple(got.shape)}")
        sign = torch.sign((got * want).sum(1, keepdim=True))  # an eigenvector's sign is arbitrary
        sign[sign == 0] = 1
        expect_close(got * sign, want, f"filters for eps={eps} (up to the sign of each row)",
                     atol=1e-4, rtol=1e-3)
    return "the rows whiten: filters @ sigma @ filters.T = diag(lambda / (lambda + eps))"


@exercise("whitening/kept",
          hint="whitening leaves the variance lambda / (lambda + eps) along a direction with "
               "eigenvalue lambda.")
def _check_whitening_kept(fn) -> str:
    """fn(eigvals, eps) -> how many directions keep more than 90 % of their variance after
    whitening."""
    g = torch.Generator().manual_seed(7)
    for eps in (1e-1, 1e-2, 1e-3):
        lam = torch.logspace(1, -4, 48) * (1 + 0.1 * torch.rand(48, generator=g))
        want = int((lam / (lam + eps) > 0.9).sum())
        got = as_int(fn(lam, eps), f"directions kept for eps={eps:g}")
        if got != want:
            raise ExerciseError(f"for eps={eps:g}, {want} of 48 directions keep more than 90 % of "
                                f"their variance; your function says {got}")
    return "directions keep 90 % of their variance exactly where lambda > 9 * eps"


@exercise("whitening/freeze",
          hint="register a hook on conv.weight (and conv.bias) that multiplies the gradient by a "
               "mask with zeros in the first k rows: "
               "conv.weight.register_hook(lambda g: g * mask).")
def _check_whitening_freeze(fn) -> str:
    """fn(conv, k) makes the first k output channels of a Conv2d receive no gradient; the rest still
    learn."""
    import torch.nn as nn

    torch.manual_seed(0)
    conv = nn.Conv2d(3, 16, kernel_size=4, stride=4)
    fn(conv, 5)
    conv(torch.randn(2, 3, 8, 8)).square().sum().backward()
    if conv.weight.grad is None:
        raise ExerciseError("conv.weight got no gradient at all: "
                            "only the first k channels should be frozen")
    frozen = conv.weight.grad[:5].abs().sum().item()
    if frozen != 0:
        raise ExerciseError(f"the first 5 filters still get a gradient (sum of |grad| = "
                            f"{frozen:.3g}); expected 0")
    if not conv.weight.grad[5:].abs().sum() > 0:
        raise ExerciseError("the filters after the first 5 got a zero gradient: "
                            "they should keep learning")
    if conv.bias.grad is not None and conv.bias.grad[:5].abs().sum() != 0:
        raise ExerciseError("the weights are frozen but the first 5 biases still get a gradient; "
                            "mask conv.bias too")
    return "the first k filters get a zero gradient, the others learn"


__all__ = ["second_moment_image", "eigen_spectrum", "whitening_panel", "whitening_explorer"]

"""Weight initialisation, and the whitening init of the patch embedding.

Whitening: the patch embedding sees 3*p*p pixel values per patch, strongly correlated with each
other. The eigenvectors of their second-moment matrix, each scaled by 1/sqrt(eigenvalue + eps), are
filters whose outputs are decorrelated with unit variance. Writing them into the first 3*p*p output
channels of the patch conv gives the network a well-conditioned start: the trick of the CNN
speed-runs (Page's "How to train your ResNet", Keller Jordan's airbench, arXiv 2404.00498) that the
study (Wu, arXiv 2501.06220) brings to a ViT's patch tokens. Built from small pure functions of
data:

    patches = stride1_patches(images, p)      # (M, 3*p*p), every p x p window
    sigma = second_moment(patches)            # (3*p*p, 3*p*p)
    filters, eigvals = whitening_filters(sigma, eps)   # rows ordered by eigenvalue, largest first
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def init_weights(model: nn.Module, std: float = 0.02, kind: str = "course") -> None:
    """Initialise every tensor of a `ViT` in place (`kind="course"`: the table below; `"study"`:
    the study's code, `models/vit.py`: its `trunc_normal_(std=0.02)` cuts at ±2 in absolute terms,
    so nothing is cut, and the patch conv keeps PyTorch's default init).

    | tensor                                  | init                                   |
    |-----------------------------------------|----------------------------------------|
    | `nn.Linear` weights (q/k/v, latents, proj, MLP, head) | truncated normal, std 0.02 (±2 std) |
    | `nn.Linear` biases                      | 0                                      |
    | patch conv weight (`tokens.patch.proj`) | truncated normal, std 0.02             |
    | patch conv bias                         | 0                                      |
    | class tokens                            | truncated normal, std 0.02             |
    | learned positional embedding            | truncated normal, std 0.02             |
    | sin-cos positional embedding            | fixed, not a parameter                 |
    | LayerNorm / RMSNorm weight, bias        | 1, 0                                   |
    """
    cut = 2.0 if kind == "study" else 2 * std
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and kind == "study":
            continue
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(m.weight, std=std, a=-cut, b=cut)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.LayerNorm, nn.RMSNorm)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
    tokens = getattr(model, "tokens", None)
    if tokens is not None:
        if tokens.cls_token is not None:
            nn.init.trunc_normal_(tokens.cls_token, std=std, a=-cut, b=cut)
        if isinstance(tokens.pos_embed, nn.Parameter):
            nn.init.trunc_normal_(tokens.pos_embed, std=std, a=-cut, b=cut)


def stride1_patches(images: torch.Tensor, p: int) -> torch.Tensor:
    """Every p x p window of a batch of images (stride 1):
    (B, C, H, W) -> (B*(H-p+1)*(W-p+1), C*p*p)."""
    B, C = images.shape[:2]
    return F.unfold(images.float(), kernel_size=p, stride=1).transpose(1, 2).reshape(-1, C * p * p)


def second_moment(patches: torch.Tensor) -> torch.Tensor:
    """E[x x^T] of the rows of `patches` (M, D), computed in float64: (D, D)."""
    x = patches.double()
    return x.T @ x / len(x)


def patch_second_moment(images: torch.Tensor, p: int, chunk: int = 500) -> torch.Tensor:
    """`second_moment(stride1_patches(images, p))`, summed `chunk` images at a time, so that memory
    stays small however many images and however large the window: (3*p*p, 3*p*p), float64."""
    total, count = 0, 0
    for i in range(0, len(images), chunk):
        x = stride1_patches(images[i: i + chunk], p)
        total, count = total + second_moment(x) * len(x), count + len(x)
    return total / count


def whitening_filters(sigma: torch.Tensor, eps: float = 1e-2) -> tuple[torch.Tensor, torch.Tensor]:
    """Filters (D, D), one per row, `v_i / sqrt(lambda_i + eps)`, ordered by eigenvalue (largest
    first).

    Applied to patches x, `filters @ x` has second moment diag(lambda / (lambda + eps)): the
    identity up to how much `eps` damps the directions whose eigenvalue is below it. Returns
    (filters, eigenvalues).
    """
    eigvals, eigvecs = torch.linalg.eigh(sigma.double())            # ascending
    eigvals, eigvecs = eigvals.flip(0).clamp_min(0), eigvecs.flip(1)
    filters = eigvecs.T / torch.sqrt(eigvals + eps)[:, None]
    return filters.float(), eigvals.float()


def whiten_patch_embed(model: nn.Module, images: torch.Tensor, eps: float = 1e-2,
                       freeze: bool = False, zero_bias: bool = True) -> torch.Tensor:
    """Write whitening filters of `images` (normalized, (B, 3, H, W)) into the patch conv of a
    `ViT`.

    The first `3*k*k` output channels (k the conv's window: the patch size, or `patch_kernel`) get
    the filters (largest eigenvalue first) and a zero bias; the other channels keep their init. A
    window with more values than the token has channels gets its leading `n_embd` filters. With
    `freeze`, a gradient hook zeroes those rows, so they stay fixed (the optimizer must not decay
    them either: `optim.param_groups` reads `frozen_channels`). Returns the eigenvalues.
    """
    if getattr(model.cfg, "stem", "patch") != "patch":
        raise ValueError(f"the whitening init writes a patch embedding's filters; this model has "
                         f"stem={model.cfg.stem!r}: set whiten='off' (or stem='patch')")
    conv = model.tokens.patch.proj
    p, out_ch = conv.kernel_size[0], conv.out_channels
    filters, eigvals = whitening_filters(patch_second_moment(images, p), eps)
    k = min(len(filters), out_ch)
    with torch.no_grad():
        conv.weight[:k] = filters[:k].view(k, *conv.weight.shape[1:]).to(conv.weight)
        if zero_bias:           # the study's `init_whitening_conv` leaves the bias as it was
            conv.bias[:k] = 0
    model.tokens.patch.frozen_channels = k if freeze else 0
    if freeze:
        conv.weight.register_hook(_zero_leading_rows(k))
        conv.bias.register_hook(_zero_leading_rows(k))
    return eigvals


def _zero_leading_rows(k: int):
    """A gradient hook: the gradient with its first `k` rows (output channels) zeroed. It holds no
    tensor: what it builds is made from the gradient, on the gradient's device and dtype, so the
    hook follows the parameter wherever the model moves (`model.to("cuda")` after whitening)."""
    def hook(g: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(g[:k]), g[k:]])
    return hook


__all__ = ["init_weights", "stride1_patches", "second_moment", "patch_second_moment",
           "whitening_filters", "whiten_patch_embed"]

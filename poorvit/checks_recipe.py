"""The checks of chapters 4, 5, 7 and 8 (augmentation, optimizers, whitening, many class tokens),
registered in `poorvit.exercises.CHECKS` on import."""
from __future__ import annotations

import torch

from .exercises import ExerciseError, exercise, expect_close


# ---- chapter 4, augmentation ("augmentation/...") -------------------------------------------------------

def _soft_targets(B: int = 8, K: int = 10, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, 3, 16, 16, generator=g)
    y = torch.randint(0, K, (B,), generator=g)
    return x, torch.nn.functional.one_hot(y, K).float(), g


@exercise("augmentation/mixup", hint="pair each sample with the reversed batch, x.flip(0): "
                                     "lam * x + (1 - lam) * x.flip(0), and the same for the targets.")
def _check_mixup(fn) -> str:
    """fn(x, target, lam) -> (mixed images, mixed soft targets), partner = the reversed batch."""
    from .augment import mixup

    for seed, lam in ((0, 0.3), (1, 0.81), (2, 0.5)):
        x, t, _ = _soft_targets(seed=seed)
        want_x, want_t = mixup(x, t, lam)
        got = fn(x.clone(), t.clone(), lam)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise ExerciseError("return a pair: (mixed images, mixed targets)")
        expect_close(got[0], want_x, f"mixed images for lam={lam}")
        expect_close(got[1], want_t, f"mixed targets for lam={lam}")
    return "Mixup blends images and labels by the same lambda"


@exercise("augmentation/cutmix-target", hint="the pasted box covers (bottom - top) * (right - left) of the H * W "
                                             "pixels; that share of the label goes to the partner, target.flip(0).")
def _check_cutmix_target(fn) -> str:
    """fn(target, box, height, width) -> soft targets after pasting `box` from the reversed batch."""
    import numpy as np

    from .augment import cutmix, cutmix_box

    rng = np.random.default_rng(0)
    for lam in (0.2, 0.5, 0.9, 0.999):
        x, t, _ = _soft_targets(seed=int(lam * 10))
        box = cutmix_box(16, 16, lam, rng)
        _, want = cutmix(x, t, box)
        got = fn(t.clone(), box, 16, 16)
        expect_close(torch.as_tensor(got), want, f"targets for box (top, bottom, left, right) = {box} on 16 x 16 images")
    return "the labels mix by the area actually pasted (boxes clipped at the border paste less)"


@exercise("augmentation/smoothing", hint="CrossEntropyLoss(label_smoothing=eps) trains towards "
                                         "(1 - eps) * target + eps / n_classes.")
def _check_smoothing(fn) -> str:
    """fn(target, eps) -> the soft targets that label smoothing trains towards, for (B, K) soft targets."""
    from .augment import mixup

    for seed, eps in ((0, 0.1), (1, 0.3)):
        x, t, g = _soft_targets(seed=seed)
        _, t = mixup(x, t, 0.7)
        logits = torch.randn(t.shape, generator=g)
        got = torch.as_tensor(fn(t.clone(), eps))
        expect_close(got, (1 - eps) * t + eps / t.shape[1], f"smoothed targets for eps={eps}")
        loss = -(got * logits.log_softmax(-1)).sum(-1).mean()
        want = torch.nn.CrossEntropyLoss(label_smoothing=eps)(logits, t)
        expect_close(loss, want, "cross-entropy on your targets vs CrossEntropyLoss(label_smoothing)")
    return "smoothing a mixed target is one line, and equals CrossEntropyLoss(label_smoothing=eps)"


# ---- chapter 5, optimizers ("optimizers/...") ------------------------------------------------------------

@exercise("optimizers/adamw-step", hint="m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; "
                                        "p = p (1 - lr wd) - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).")
def _check_adamw_step(fn) -> str:
    """fn(p, grad, m, v, t, lr, beta1, beta2, eps, weight_decay) -> (p, m, v) after AdamW step t (from 1)."""
    g = torch.Generator().manual_seed(0)
    p0 = torch.randn(50, generator=g, dtype=torch.float64)
    hp = dict(lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
    ref = p0.clone().requires_grad_()
    opt = torch.optim.AdamW([ref], **hp)
    p, m, v = p0.clone(), torch.zeros_like(p0), torch.zeros_like(p0)
    for t in range(1, 6):
        grad = torch.randn(50, generator=g, dtype=torch.float64)
        ref.grad = grad.clone()
        opt.step()
        p, m, v = fn(p, grad.clone(), m, v, t, hp["lr"], *hp["betas"], hp["eps"], hp["weight_decay"])
        expect_close(torch.as_tensor(p), ref.detach(), f"parameters after step {t} (vs torch.optim.AdamW)",
                     atol=1e-10, rtol=1e-8)
    return "your AdamW matches torch.optim.AdamW step for step"


@exercise("optimizers/warmup-cosine", hint="below `warmup` the rate is lr * progress / warmup; after it, with "
                                           "t = (progress - warmup) / (1 - warmup): min_lr + (lr - min_lr) (1 + cos(pi t)) / 2.")
def _check_warmup_cosine(fn) -> str:
    """fn(progress, lr, min_lr, warmup) -> the learning rate at `progress` in [0, 1] of training."""
    from .optim import lr_at

    for lr, min_lr, warmup in ((1e-3, 1e-6, 0.1), (2e-3, 0.0, 0.25)):
        for progress in (0.0, 0.05, warmup, 0.3, 0.5, 0.77, 1.0):
            want, got = lr_at(progress, lr, min_lr, warmup), float(fn(progress, lr, min_lr, warmup))
            if abs(got - want) > 1e-9 + 1e-6 * want:
                raise ExerciseError(f"lr={lr:g}, min_lr={min_lr:g}, warmup={warmup:g}: at progress {progress:g} "
                                    f"expected {want:.6g}, got {got:.6g}")
    return "linear warmup, then a half cosine down to min_lr"


@exercise("optimizers/lion-recipe", hint="divide the learning rate by k and multiply the weight decay by k: "
                                         "the decay per step, lr * weight_decay, stays the same.")
def _check_lion_recipe(fn) -> str:
    """fn(adamw_lr, adamw_wd, k) -> (lion_lr, lion_wd) by the Lion paper's rule of thumb."""
    for lr, wd, k in ((1e-3, 0.05, 10), (3e-4, 0.1, 3)):
        got = fn(lr, wd, k)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise ExerciseError("return a pair: (lion_lr, lion_wd)")
        l_lr, l_wd = float(got[0]), float(got[1])
        if abs(l_lr - lr / k) > 1e-12 or abs(l_wd - wd * k) > 1e-9:
            raise ExerciseError(f"AdamW lr={lr:g}, wd={wd:g}, k={k}: expected Lion lr={lr / k:g}, wd={wd * k:g}; "
                                f"got lr={l_lr:g}, wd={l_wd:g}")
    return "k times smaller steps, k times stronger decay: lr * weight_decay unchanged"
# ---- chapter 7, whitening the patch embedding --------------------------------------------------------------

def _random_second_moment(D: int = 12, seed: int = 0) -> torch.Tensor:
    """A second-moment matrix of correlated random data whose eigenvalues span orders of magnitude."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(D, D, generator=g, dtype=torch.float64) * torch.logspace(0, -2, D, dtype=torch.float64)
    x = torch.randn(4000, D, generator=g, dtype=torch.float64) @ mix.T
    return x.T @ x / len(x)


@exercise("whitening/filters", hint="torch.linalg.eigh returns eigenvalues in ascending order; flip both, then "
                                    "divide each eigenvector (a column of V) by sqrt(eigenvalue + eps) and stack them as rows.")
def _check_whitening_filters(fn) -> str:
    """fn(sigma, eps) -> (D, D) filters, one per row, v_i / sqrt(lambda_i + eps), largest eigenvalue first."""
    from .init import whitening_filters

    for seed, eps in ((1, 1e-2), (2, 1e-4)):
        sigma = _random_second_moment(seed=seed)
        want, lam = whitening_filters(sigma, eps)
        got = torch.as_tensor(fn(sigma, eps)).double()
        want = want.double()
        if got.shape != want.shape:
            raise ExerciseError(f"expected filters of shape {tuple(want.shape)} (one row per direction), got {tuple(got.shape)}")
        sign = torch.sign((got * want).sum(1, keepdim=True))              # an eigenvector's sign is arbitrary
        sign[sign == 0] = 1
        expect_close(got * sign, want, f"filters for eps={eps} (up to the sign of each row)", atol=1e-4, rtol=1e-3)
    return "the rows whiten: filters @ sigma @ filters.T = diag(lambda / (lambda + eps))"


@exercise("whitening/kept", hint="whitening leaves the variance lambda / (lambda + eps) along a direction with eigenvalue lambda.")
def _check_whitening_kept(fn) -> str:
    """fn(eigvals, eps) -> how many directions keep more than 90 % of their variance after whitening."""
    g = torch.Generator().manual_seed(7)
    for eps in (1e-1, 1e-2, 1e-3):
        lam = torch.logspace(1, -4, 48) * (1 + 0.1 * torch.rand(48, generator=g))
        want = int((lam / (lam + eps) > 0.9).sum())
        got = fn(lam, eps)
        got = int(got.item() if torch.is_tensor(got) else got)
        if got != want:
            raise ExerciseError(f"for eps={eps:g}, {want} of 48 directions keep more than 90 % of their variance; "
                                f"your function says {got}")
    return "directions keep 90 % of their variance exactly where lambda > 9 * eps"


@exercise("whitening/freeze", hint="register a hook on conv.weight (and conv.bias) that multiplies the gradient by a "
                                   "mask with zeros in the first k rows: conv.weight.register_hook(lambda g: g * mask).")
def _check_whitening_freeze(fn) -> str:
    """fn(conv, k) makes the first k output channels of a Conv2d receive no gradient; the rest still learn."""
    import torch.nn as nn

    torch.manual_seed(0)
    conv = nn.Conv2d(3, 16, kernel_size=4, stride=4)
    fn(conv, 5)
    conv(torch.randn(2, 3, 8, 8)).square().sum().backward()
    if conv.weight.grad is None:
        raise ExerciseError("conv.weight got no gradient at all: only the first k channels should be frozen")
    frozen = conv.weight.grad[:5].abs().sum().item()
    if frozen != 0:
        raise ExerciseError(f"the first 5 filters still get a gradient (sum of |grad| = {frozen:.3g}); expected 0")
    if not conv.weight.grad[5:].abs().sum() > 0:
        raise ExerciseError("the filters after the first 5 got a zero gradient: they should keep learning")
    if conv.bias.grad is not None and conv.bias.grad[:5].abs().sum() != 0:
        raise ExerciseError("the weights are frozen but the first 5 biases still get a gradient; mask conv.bias too")
    return "the first k filters get a zero gradient, the others learn"


# ---- chapter 8, many class tokens --------------------------------------------------------------------------

@exercise("cls-tokens/mean-head", hint="take the first n_cls tokens, feats[:, :n_cls], average them over dim 1, "
                                       "and apply the head.")
def _check_cls_mean_head(fn) -> str:
    """fn(feats, n_cls, head) -> logits from the average of the class tokens (the `cls_head="mean"` pooling)."""
    from .config import get_config
    from .model import ViT

    torch.manual_seed(0)
    for k in (1, 3):
        model = ViT(get_config("micro", n_cls=k, cls_head="mean")).eval()
        with torch.no_grad():
            feats = model.forward_features(torch.randn(4, 3, 32, 32))
            expect_close(torch.as_tensor(fn(feats, k, model.head)), model.forward_head(feats),
                         f"logits with n_cls={k}")
    return "mean pooling of the class tokens matches ViT(cls_head='mean')"


@exercise("cls-tokens/extra-params", hint="count what grows with n_cls: the class tokens, their learned positions "
                                          "(pos_embed='learned' only) and, with cls_head='concat', the head's input.")
def _check_cls_extra_params(fn) -> str:
    """fn(cfg) -> how many more parameters cfg has than the same config with n_cls = 1."""
    from .config import get_config, with_overrides
    from .model import count_params

    for over in (dict(n_cls=4), dict(n_cls=8, cls_head="mean"), dict(n_cls=3, pos_embed="sincos"),
                 dict(n_cls=2, pos_embed="none", n_classes=100), dict(n_cls=1)):
        cfg = get_config("smoke", **over)
        want = count_params(cfg) - count_params(with_overrides(cfg, n_cls=1))
        got = int(fn(cfg))
        if got != want:
            raise ExerciseError(f"for {over} expected {want:,} extra parameters, got {got:,}")
    return "the extra parameters match count_params for every head and positional embedding"


@exercise("cls-tokens/collapse", hint="normalize each token to unit length, form the (B, k, k) matrix of dot products, "
                                      "average it over the images, then average its k * (k - 1) off-diagonal entries.")
def _check_cls_collapse(fn) -> str:
    """fn(tokens) -> mean off-diagonal cosine similarity of (B, k, C) tokens, averaged over the B images."""
    from .model import cosine_matrix, off_diagonal_mean

    g = torch.Generator().manual_seed(3)
    for shared in (0.0, 0.8):
        base = torch.randn(5, 1, 16, generator=g)
        tokens = shared * base + (1 - shared) * torch.randn(5, 4, 16, generator=g)
        want = off_diagonal_mean(cosine_matrix(tokens).mean(0))
        got = float(fn(tokens))
        if abs(got - want) > 1e-4:
            raise ExerciseError(f"expected a mean off-diagonal similarity of {want:.4f}, got {got:.4f}")
    return "your collapse measure matches model.off_diagonal_mean(model.cosine_matrix(tokens).mean(0))"

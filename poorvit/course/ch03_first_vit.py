"""Chapter 3, a first ViT: reading a trained classifier (its accuracy per class, the mistakes it
makes with the most confidence) and the `first-vit/*` exercise checks. Its predictions come from
`poorvit.train.predict`; the plots it draws are the generic ones of `poorvit.course.plots`.

    probs = predict(run.model, data.test_x)       # (n_images, n_classes) probabilities, on the CPU
    ch.per_class_accuracy(probs.argmax(1), data.test_y, 10)
    idx = ch.confident_mistakes(probs, data.test_y, k=16)   # the wrong answers it was surest of
"""
from __future__ import annotations

import torch

from ..config import TrainConfig
from .exercises import ExerciseError, as_int, exercise, expect_close


def per_class_accuracy(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Fraction of each class's images predicted right, (n_classes,); NaN for a class with no
    images."""
    pred, target = pred.cpu(), target.cpu()
    total = torch.bincount(target, minlength=n_classes).float()
    right = torch.bincount(target[pred == target], minlength=n_classes).float()
    return torch.where(total > 0, right / total.clamp_min(1), torch.full_like(total, float("nan")))


def confident_mistakes(probs: torch.Tensor, target: torch.Tensor, k: int = 16) -> torch.Tensor:
    """Indices of the (at most) `k` wrongly classified images whose wrong answer had the highest
    probability, most confident first."""
    conf, pred = probs.max(-1)
    wrong = (pred != target.to(pred.device)).nonzero().flatten()
    order = conf[wrong].argsort(descending=True)
    return wrong[order[:k]]


def augmentation_words(cfg: TrainConfig) -> list[str]:
    """What a recipe adds to flips, in words, read from its config: crops, AutoAugment, erasing,
    Mixup/CutMix, repeated augmentation. Empty for a plain recipe."""
    words = []
    if cfg.crop_pad:
        words.append(f"random crops (padding {cfg.crop_pad})")
    if cfg.autoaugment:
        words.append("AutoAugment")
    if cfg.random_erasing:
        words.append(f"random erasing (p {cfg.random_erasing:g})")
    mixes = [name for name, alpha in (("Mixup", cfg.mixup_alpha), ("CutMix", cfg.cutmix_alpha))
             if alpha]
    if mixes:
        words.append(" and ".join(mixes))
    if cfg.repeats > 1:
        words.append(f"each image {cfg.repeats} times an epoch (repeated augmentation)")
    return words


def recipe_against(other: TrainConfig, here: TrainConfig) -> str:
    """How recipe `other` (e.g. the `demo` scale's) trains compared with `here`, for the chapter's
    prose: "with this same plain recipe" only when their augmentation is the same, else what
    `other` adds or leaves out (`augmentation_words`)."""
    adds = [w for w in augmentation_words(other) if w not in augmentation_words(here)]
    drops = [w for w in augmentation_words(here) if w not in augmentation_words(other)]
    if not adds and not drops:
        plain = "plain " if not augmentation_words(here) else ""
        return f"with this same {plain}recipe"
    if not drops:
        return "with more augmentation than this recipe: " + ", ".join(adds)
    if not adds:
        return "with less augmentation than this recipe (no " + ", ".join(drops) + ")"
    return "with other augmentation: " + ", ".join(adds) + " instead of " + ", ".join(drops)


# ---- exercise checks ("first-vit/...") -----------------------------------------------------------

@exercise("first-vit/param-count",
          hint="patch conv 3*p*p*C + C; class token C; positions T*C; per block: two LayerNorms "
               "4C, qkv 3C*C + 3C, proj C*C + C, MLP 2*C*hidden + hidden + C; final LayerNorm 2C; "
               "head C*n_classes + n_classes.")
def _check_param_count(fn) -> str:
    """fn(cfg) -> the parameter count of a plain ViT (MHA, one class token, learned positions)."""
    from ..config import get_config
    from ..cost import count_params

    for name, over in (("smoke", {}), ("paper", {}), ("micro", {}),
                       ("smoke", dict(n_embd=96, n_layer=2, mlp_ratio=4.0)),
                       ("paper", dict(patch_size=2, n_classes=100))):
        cfg = get_config(name, **over)
        want, got = count_params(cfg), as_int(fn(cfg), f"the parameter count of {name}")
        if got != want:
            raise ExerciseError(f"the {name} preset with {over or 'no overrides'}: expected "
                                f"{want:,} parameters, got {got:,} (off by {got - want:+,})")
    return "your count matches the built models for every preset"


@exercise("first-vit/per-class-accuracy",
          hint="for each class c: among the images whose target is c, the fraction whose "
               "prediction is c (torch.bincount does all classes at once).")
def _check_per_class_accuracy(fn) -> str:
    """fn(pred, target, n_classes) -> (n_classes,) accuracy of each class."""
    g = torch.Generator().manual_seed(31)
    for n, k in ((200, 10), (57, 3)):
        target = torch.cat([torch.arange(k), torch.randint(0, k, (n - k,), generator=g)])
        pred = torch.where(torch.rand(n, generator=g) < 0.6, target,
                           torch.randint(0, k, (n,), generator=g))
        got = fn(pred, target, k)
        expect_close(torch.as_tensor(got, dtype=torch.float32), per_class_accuracy(pred, target, k),
                     f"per-class accuracy of {n} predictions over {k} classes")
    return "your per-class accuracies match poorvit.course.ch03_first_vit.per_class_accuracy"


@exercise("first-vit/confident-mistakes",
          hint="take the probability and the class of each row's maximum; keep the rows where that "
               "class is not the target; sort them by probability, largest first.")
def _check_confident_mistakes(fn) -> str:
    """fn(probs, target, k) -> indices of the k wrong predictions made with the highest
    probability."""
    g = torch.Generator().manual_seed(32)
    for n, c, k in ((300, 10, 8), (40, 4, 5)):
        probs = (3 * torch.randn(n, c, generator=g)).softmax(-1)
        target = torch.randint(0, c, (n,), generator=g)
        want, got = confident_mistakes(probs, target, k), torch.as_tensor(fn(probs, target, k))
        if got.tolist() != want.tolist():
            raise ExerciseError(f"expected indices {want.tolist()}, got {got.tolist()}")
    return ("your mistakes are the ones poorvit.course.ch03_first_vit.confident_mistakes finds, "
            "in the same order")


__all__ = ["per_class_accuracy", "confident_mistakes", "augmentation_words", "recipe_against"]

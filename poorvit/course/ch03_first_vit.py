"""Chapter 3, a first ViT: reading a trained classifier (its accuracy per class, the mistakes it
makes with the most confidence) and the `first-vit/*` exercise checks. Its predictions come from
`poorvit.train.predict`; its plots are the generic ones of `poorvit.course.plots`, plus
`overfitting_curves`.

    probs = predict(run.model, data.test_x)       # (n_images, n_classes) probabilities, on the CPU
    ch.per_class_accuracy(probs.argmax(1), data.test_y, 10)
    idx = ch.confident_mistakes(probs, data.test_y, k=16)   # the wrong answers it was surest of

It also holds the chapter's small-data regime (`small_data_config`: a few thousand images, many
epochs, no augmentation, where train accuracy climbs far above test), which chapter 4 reuses to
show augmentation closing the gap; `train_test_accuracy` measures that gap (its noise band:
`report.sampling_noise`).

    tcfg = ch.small_data_config(course.scale, seed=0)
    run = course.train(train_cfg=tcfg)
    train_acc, test_acc = ch.train_test_accuracy(run, data)
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..config import NOTEBOOK_SCALES, SCALES, TrainConfig, default_scale, get_train_config
from ..data import CIFAR10
from ..runs import Run
from ..train import predict
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


# ---- the small-data regime ----------------------------------------------------------------------

# Per scale: (training images, epochs, evaluate every n epochs), from the scale's table
# (`config.SCALES[scale]["regimes"]["small data"]`). smoke: 1,000 images for 30 epochs (930 steps
# of 32) overfit within about half a minute on two cores; demo and paper: the study's model on
# 5,000 images for 30 epochs of 256 (under a minute on a T4, by the course's estimate).
SMALL_DATA = {scale: (r["train_subset"], r["epochs"], r["eval_every"])
              for scale in NOTEBOOK_SCALES
              for r in [SCALES[scale]["regimes"]["small data"]]}
# augmentation off, field by field (mix_prob, augment_impl, mix_partner then do nothing)
NO_AUGMENTATION = dict(crop_pad=0, flip=False, autoaugment=False, random_erasing=0.0,
                       mixup_alpha=0.0, cutmix_alpha=0.0, repeats=1, full_repeats=False)


def small_data_config(scale: str | None = None, seed: int = 0, **overrides) -> TrainConfig:
    """The small-data regime of `scale` (default `default_scale()`): the scale's recipe (optimizer,
    lr, weight decay, label smoothing, batch size) on a few thousand training images for many
    epochs, with no augmentation at all (`NO_AUGMENTATION`) and a linear warmup of a tenth of the
    run, so that the model memorizes its training images: train accuracy climbs far above test.
    `overrides`: any `TrainConfig` field (chapter 4 adds augmentation to this same regime).
    Raises ValueError for a scale the chapters do not run at (`SMALL_DATA`)."""
    scale = scale or default_scale()
    if scale not in SMALL_DATA:
        raise ValueError(f"no small-data regime for scale {scale!r}; "
                         f"choose one of {', '.join(SMALL_DATA)}")
    n, epochs, every = SMALL_DATA[scale]
    values = dict(NO_AUGMENTATION, train_subset=n, epochs=epochs, eval_every=every, seed=seed)
    values.update(overrides)
    values.setdefault("warmup_epochs", values["epochs"] / 10)
    return get_train_config(scale, **values)


def overfitting_curves(runs, axes=None):
    """Runs of one regime (several seeds): per epoch, accuracy (left) and loss (right) on the
    training batches as the model trains (solid) and on the test images each evaluation
    (dashed); the gap between the seeds' mean train and test accuracy shaded. Returns the axes."""
    if axes is None:
        axes = plt.subplots(1, 2, figsize=(9, 3.4))[1]
    train_rows, test_rows = {}, {}
    for i, run in enumerate(runs):
        h = run.history
        tested = [r for r in h if r["test_acc"] is not None]
        first = i == 0
        axes[0].plot([r["epoch"] for r in h], [100 * r["train_acc"] for r in h], "-",
                     color="tab:blue", lw=1.2, label="train (its batches)" if first else None)
        axes[0].plot([r["epoch"] for r in tested], [100 * r["test_acc"] for r in tested], "--",
                     color="tab:orange", lw=1.2, label="test" if first else None)
        axes[1].plot([r["epoch"] for r in h], [r["loss"] for r in h], "-", color="tab:blue",
                     lw=1.2, label="train (label-smoothed)" if first else None)
        axes[1].plot([r["epoch"] for r in tested], [r["test_loss"] for r in tested], "--",
                     color="tab:orange", lw=1.2, label="test" if first else None)
        for r in tested:
            train_rows.setdefault(r["epoch"], []).append(100 * r["train_acc"])
            test_rows.setdefault(r["epoch"], []).append(100 * r["test_acc"])
    epochs = sorted(train_rows)
    axes[0].fill_between(epochs, [np.mean(train_rows[e]) for e in epochs],
                         [np.mean(test_rows[e]) for e in epochs], color="tab:red", alpha=0.12,
                         label="the gap")
    axes[0].set_ylabel("accuracy (%)")
    axes[1].set_ylabel("cross-entropy")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].figure.tight_layout()
    return axes


def train_test_accuracy(run: Run, data: CIFAR10) -> tuple[float, float]:
    """(train accuracy, test accuracy) of a finished run, as fractions: its model in eval mode on
    the training images its recipe trained on (the first `train_subset`, unaugmented), and the
    run's final accuracy on the full test set (`run.final_acc`, measured by `train()`)."""
    n = run.train_cfg.train_subset or len(data.train_y)
    pred = predict(run.model, data.train_x[:n]).argmax(-1)
    return (pred == data.train_y[:n]).float().mean().item(), run.final_acc


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


__all__ = ["per_class_accuracy", "confident_mistakes", "augmentation_words", "recipe_against",
           "small_data_config", "train_test_accuracy", "overfitting_curves",
           "SMALL_DATA", "NO_AUGMENTATION"]

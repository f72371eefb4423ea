"""Chapter 4, augmentation: one op of the study's pipeline at a time (`single_op`, `SINGLE_OPS`),
what each does to an image (`augment_rows`, `augment_views`, `autoaugment_gallery`,
`augmentation_explorer`), augmentation at work in chapter 3's small-data regime
(`small_data_figure`), and the `augmentation/*` exercise checks.

    from poorvit.course import ch04_augmentation as ch
    ch.augment_rows(x8, y8, ["crop", "flip", "autoaugment", "random_erasing", "study"],
                    data.classes)
"""
from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import torch

from ..augment import TrainTransform
from ..data import denormalize
from ..study import study_augmentation
from .exercises import ExerciseError, exercise, expect_close
from .plots import image_grid, to_display
from .widgets import explorer

SINGLE_OPS = ("crop", "flip", "autoaugment", "random_erasing", "mixup", "cutmix", "study")
_OP_NAMES = {"random_erasing": "random erasing (p = 1)", "study": "the study's whole pipeline"}


def single_op(op: str, n_classes: int = 10) -> TrainTransform:
    """A pipeline of one op of the study's recipe, for figures: "crop", "flip", "autoaugment",
    "random_erasing" (every sample erased, p = 1), "mixup" or "cutmix" (every batch mixed), or
    "study" (the whole recipe as it trains)."""
    study = study_augmentation()
    if op == "study":
        return TrainTransform(**study, n_classes=n_classes)
    only = {"crop": dict(crop_pad=study["crop_pad"]), "flip": dict(flip=True),
            "autoaugment": dict(autoaugment=True), "random_erasing": dict(random_erasing=1.0),
            "mixup": dict(mixup_alpha=study["mixup_alpha"]),
            "cutmix": dict(cutmix_alpha=study["cutmix_alpha"])}
    if op not in only:
        raise ValueError(f"op={op!r}: choose one of {', '.join([*only, 'study'])}")
    return TrainTransform(**{"crop_pad": 0, "flip": False, "mix_prob": 1.0, **only[op]},
                          n_classes=n_classes)


def _soft_title(target: torch.Tensor, classes) -> str:
    """'0.62 cat\\n0.38 ship' for a soft target (the two largest shares), the class name for a hard
    one."""
    if target.ndim == 0:
        return classes[int(target)]
    share, idx = target.topk(2)
    lines = [f"{s:.2f} {classes[i]}" for s, i in zip(share.tolist(), idx.tolist()) if s > 0.005]
    return "\n".join(lines)


def augment_rows(images: torch.Tensor, labels: torch.Tensor, ops, classes, seed: int = 0,
                 size: float = 1.15):
    """One row per op of the study's pipeline (`single_op` names), the originals on top: each image
    in a row is its own random draw. Mixup/CutMix rows pair each image with its mirror in the row
    (the reversed batch) and are titled with their soft labels. images uint8 (B, 3, H, W). Returns
    the figure."""
    B = len(images)
    fig, axes = plt.subplots(len(ops) + 1, B, squeeze=False,
                             figsize=(B * size, (len(ops) + 1) * size * 1.22))
    rows = [("original", images, labels)]
    for k, op in enumerate(ops):
        g = torch.Generator().manual_seed(seed + k)
        x, target = single_op(op, len(classes))(images, labels, g)
        rows.append((op, denormalize(x), target))
    for r, (name, x, target) in enumerate(rows):
        for j, ax in enumerate(axes[r]):
            ax.imshow(to_display(x[j]), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(_soft_title(target[j], classes), fontsize=8)
        axes[r, 0].set_ylabel(name.replace("_", " "), fontsize=8)
    fig.tight_layout()
    return fig


def _grid_two_line_titles(images, titles, ncols, size, suptitle):
    """`image_grid` with room for titles of two lines."""
    fig = image_grid(images, titles=titles, ncols=ncols, size=size, suptitle=suptitle)
    if titles and any("\n" in t for t in titles):
        w, h = fig.get_size_inches()
        fig.set_size_inches(w, h * 1.2)
        fig.tight_layout()
    return fig


def augment_views(image: torch.Tensor, label: int, op: str, partners: torch.Tensor,
                  partner_labels: torch.Tensor, classes, n: int = 16, seed: int = 0, ncols: int = 8,
                  size: float = 1.15):
    """`n` random draws of one op (`single_op` names) on one uint8 image (3, H, W). Ops that mix
    (Mixup, CutMix, the whole pipeline) pair it with image i of `partners` in draw i, each draw its
    own batch and so its own coin and lambda; the titles then give the soft label."""
    transform = single_op(op, len(classes))
    g = torch.Generator().manual_seed(seed)
    mixes = op in ("mixup", "cutmix", "study")
    if mixes:
        views, targets = [], []
        for i in range(n):
            j = i % len(partners)
            x, t = transform(torch.stack([image, partners[j]]),
                             torch.tensor([label, int(partner_labels[j])]), g)
            views.append(x[0]), targets.append(t[0])
        x = torch.stack(views)
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


def autoaugment_gallery(image: torch.Tensor, bin: int = 9, ncols: int = 8, size: float = 1.2):
    """Every op AutoAugment can draw, on one uint8 image (3, H, W), at magnitude `bin` of 10
    (positive sign)."""
    from torchvision.transforms import v2

    from ..autoaugment import apply_op, op_magnitude

    shown, titles = [image], ["original"]
    for op in v2.AutoAugment._AUGMENTATION_SPACE:
        m, _ = op_magnitude(op, bin, *image.shape[-2:])
        shown.append(apply_op(op, image[None], torch.tensor([m], dtype=torch.float64))[0])
        titles.append(_op_label(op, m))
    return _grid_two_line_titles(torch.stack(shown), titles, ncols, size,
                                 f"AutoAugment's operations at magnitude bin {bin} of 10")


def small_data_figure(results: dict, n_images: int, ax=None):
    """Train and test accuracy of the small-data regime, one pair of bars per recipe (the means over
    seeds, each seed a dot): results {recipe: [(train %, test %) per seed]}. The space between a
    recipe's two bars is its overfitting gap."""
    ax = ax or plt.subplots(figsize=(5.6, 3.3))[1]
    width = 0.38
    kinds = ((f"train (its {n_images:,} images)", "tab:blue"),
             ("test (the test set)", "tab:orange"))
    for k, (label, runs) in enumerate(results.items()):
        for j, (what, color) in enumerate(kinds):
            values = [run[j] for run in runs]
            x = k + (j - 0.5) * width
            mean = sum(values) / len(values)
            ax.bar(x, mean, width, color=color, alpha=0.85, label=what if k == 0 else None)
            ax.scatter([x] * len(values), values, s=14, color="black", zorder=3)
            ax.text(x, mean / 2, f"{mean:.1f}", ha="center", va="center", fontsize=9,
                    color="white", fontweight="bold")
    ax.set_xticks(range(len(results)), list(results))
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    return ax


def augmentation_explorer(images, labels, classes, n: int = 16) -> W.Widget:
    """Pick an image, an op of the study's pipeline and a seed: `n` random draws of that op on that
    image (`augment_views`). images uint8 (B, 3, H, W); Mixup/CutMix partners are the other
    images."""
    def draw(image, op, seed):
        augment_views(images[image], int(labels[image]), op, images, labels, classes, n=n,
                      seed=seed)
        plt.show()

    return explorer(draw,
                    image=W.IntSlider(value=0, min=0, max=len(images) - 1, description="image"),
                    op=W.Dropdown(options=list(SINGLE_OPS), value="autoaugment", description="op"),
                    seed=W.IntSlider(value=0, min=0, max=20, description="seed"))


# ---- exercise checks ("augmentation/...") --------------------------------------------------------

def _soft_targets(B: int = 8, K: int = 10, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, 3, 16, 16, generator=g)
    y = torch.randint(0, K, (B,), generator=g)
    return x, torch.nn.functional.one_hot(y, K).float(), g


@exercise("augmentation/mixup",
          hint="pair each sample with the reversed batch, x.flip(0): lam * x + (1 - lam) * "
               "x.flip(0), and the same for the targets.")
def _check_mixup(fn) -> str:
    """fn(x, target, lam) -> (mixed images, mixed soft targets), partner = the reversed batch."""
    from ..augment import mixup

    for seed, lam in ((0, 0.3), (1, 0.81), (2, 0.5)):
        x, t, _ = _soft_targets(seed=seed)
        want_x, want_t = mixup(x, t, lam)
        got = fn(x.clone(), t.clone(), lam)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise ExerciseError("return a pair: (mixed images, mixed targets)")
        expect_close(got[0], want_x, f"mixed images for lam={lam}")
        expect_close(got[1], want_t, f"mixed targets for lam={lam}")
    return "Mixup blends images and labels by the same lambda"


@exercise("augmentation/cutmix-target",
          hint="the pasted box covers (bottom - top) * (right - left) of the H * W pixels; that "
               "share of the label goes to the partner, target.flip(0).")
def _check_cutmix_target(fn) -> str:
    """fn(target, box, height, width) -> soft targets after pasting `box` from the reversed
    batch."""
    import numpy as np

    from ..augment import cutmix, cutmix_box

    rng = np.random.default_rng(0)
    for lam in (0.2, 0.5, 0.9, 0.999):
        x, t, _ = _soft_targets(seed=int(lam * 10))
        box = cutmix_box(16, 16, lam, rng)
        _, want = cutmix(x, t, box)
        got = fn(t.clone(), box, 16, 16)
        expect_close(torch.as_tensor(got), want,
                     f"targets for box (top, bottom, left, right) = {box} on 16 x 16 images")
    return "the labels mix by the area actually pasted (boxes clipped at the border paste less)"


@exercise("augmentation/smoothing",
          hint="CrossEntropyLoss(label_smoothing=eps) trains towards "
               "(1 - eps) * target + eps / n_classes.")
def _check_smoothing(fn) -> str:
    """fn(target, eps) -> the soft targets that label smoothing trains towards, for (B, K) soft
    targets."""
    from ..augment import mixup

    for seed, eps in ((0, 0.1), (1, 0.3)):
        x, t, g = _soft_targets(seed=seed)
        _, t = mixup(x, t, 0.7)
        logits = torch.randn(t.shape, generator=g)
        got = torch.as_tensor(fn(t.clone(), eps))
        expect_close(got, (1 - eps) * t + eps / t.shape[1], f"smoothed targets for eps={eps}")
        loss = -(got * logits.log_softmax(-1)).sum(-1).mean()
        want = torch.nn.CrossEntropyLoss(label_smoothing=eps)(logits, t)
        expect_close(loss, want, "cross-entropy on your targets vs "
                                 "CrossEntropyLoss(label_smoothing)")
    return "smoothing a mixed target is one line, and equals CrossEntropyLoss(label_smoothing=eps)"


__all__ = ["SINGLE_OPS", "single_op", "augment_rows", "augment_views", "autoaugment_gallery",
           "small_data_figure", "augmentation_explorer"]

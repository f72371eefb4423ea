"""Plots of chapters 4, 5 and 9: augmented views, learning-rate schedules and sweeps, optimizer paths, and
the phases of a training step (re-exported by `poorvit.viz`)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from .data import denormalize
from .viz_basic import bars, image_grid, to_display

__all__: list[str] = []


# ---- chapters 4 and 5, augmentation and optimizers --------------------------------------------------------

def _soft_title(target: torch.Tensor, classes) -> str:
    """'0.62 cat\\n0.38 ship' for a soft target (the two largest shares), the class name for a hard one."""
    if target.ndim == 0:
        return classes[int(target)]
    share, idx = target.topk(2)
    lines = [f"{s:.2f} {classes[i]}" for s, i in zip(share.tolist(), idx.tolist()) if s > 0.005]
    return "\n".join(lines)


def augment_rows(images: torch.Tensor, labels: torch.Tensor, ops, classes, seed: int = 0, size: float = 1.15):
    """One row per op of the study's pipeline (`augment.single_op` names), the originals on top: each image
    in a row is its own random draw. Mixup/CutMix rows pair each image with its mirror in the row (the
    reversed batch) and are titled with their soft labels. images uint8 (B, 3, H, W). Returns the figure."""
    from .augment import single_op

    B = len(images)
    fig, axes = plt.subplots(len(ops) + 1, B, figsize=(B * size, (len(ops) + 1) * size * 1.22), squeeze=False)
    rows = [("original", images, labels)]
    for k, op in enumerate(ops):
        x, target = single_op(op, len(classes))(images, labels, torch.Generator().manual_seed(seed + k))
        rows.append((op, denormalize(x), target))
    for r, (name, x, target) in enumerate(rows):
        for j, ax in enumerate(axes[r]):
            ax.imshow(to_display(x[j]), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(_soft_title(target[j], classes), fontsize=6.5)
        axes[r, 0].set_ylabel(name.replace("_", " "), fontsize=8)
    fig.tight_layout()
    return fig


_OP_NAMES = {"random_erasing": "random erasing (p = 1)", "study": "the study's whole pipeline"}


def _grid_two_line_titles(images, titles, ncols, size, suptitle):
    """`image_grid` with room for titles of two lines."""
    fig = image_grid(images, titles=titles, ncols=ncols, size=size, suptitle=suptitle)
    if titles and any("\n" in t for t in titles):
        w, h = fig.get_size_inches()
        fig.set_size_inches(w, h * 1.2)
        fig.tight_layout()
    return fig


def augment_views(image: torch.Tensor, label: int, op: str, partners: torch.Tensor, partner_labels: torch.Tensor,
                  classes, n: int = 16, seed: int = 0, ncols: int = 8, size: float = 1.15):
    """`n` random draws of one op (`augment.single_op` names) on one uint8 image (3, H, W). Ops that mix
    (Mixup, CutMix, the whole pipeline) pair it with image i of `partners` in draw i, each draw its own batch
    and so its own coin and lambda; the titles then give the soft label."""
    from .augment import single_op

    transform = single_op(op, len(classes))
    g = torch.Generator().manual_seed(seed)
    mixes = op in ("mixup", "cutmix", "study")
    if mixes:
        views, targets = [], []
        for i in range(n):
            x, t = transform(torch.stack([image, partners[i % len(partners)]]),
                             torch.tensor([label, int(partner_labels[i % len(partners)])]), g)
            views.append(x[0]), targets.append(t[0])
        x, targets = torch.stack(views), targets
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


def autoaugment_gallery(image: torch.Tensor, bin: int = 9, ncols: int = 8, size: float = 1.3):
    """Every op AutoAugment can draw, on one uint8 image (3, H, W), at magnitude `bin` of 10 (positive sign)."""
    from torchvision.transforms import v2

    from .autoaugment import apply_op, op_magnitude

    shown, titles = [image], ["original"]
    for op in v2.AutoAugment._AUGMENTATION_SPACE:
        m, _ = op_magnitude(op, bin, *image.shape[-2:])
        shown.append(apply_op(op, image[None], torch.tensor([m], dtype=torch.float64))[0])
        titles.append(_op_label(op, m))
    return _grid_two_line_titles(torch.stack(shown), titles, ncols, size,
                                 f"AutoAugment's operations at magnitude bin {bin} of 10")


def study_vs_measured(study: dict, measured: dict, labels: dict, scale: str, axes=None):
    """Two panels of bars over the same rows: the study's reported accuracy and this run's measured one (%)."""
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.2))
    for ax, values, title, color in ((axes[0], study, "reported by the study (paper scale)", "tab:blue"),
                                     (axes[1], measured, f"measured here ({scale} scale)", "tab:orange")):
        shown = {labels[k]: v for k, v in values.items()}
        bars(shown, "CIFAR-10 test accuracy (%)", ax=ax, fmt="{:.2f}" if values is study else "{:.1f}",
             title=title, color=color)
        lo, hi = min(shown.values()), max(shown.values())
        ax.set_ylim(max(0, lo - 2 * (hi - lo) - 1), hi + (hi - lo) + 1)
    axes[0].figure.tight_layout()
    return axes


def lr_schedules(configs: dict, ax=None, steps: int = 400):
    """Learning rate against training progress (epochs) for {label: TrainConfig}: linear warmup, then a half
    cosine down to `min_lr` (`optim.lr_at`), the end of each warmup marked."""
    from .optim import lr_at

    ax = ax or plt.subplots(figsize=(5, 3))[1]
    for k, (label, cfg) in enumerate(configs.items()):
        p = np.linspace(0, 1, steps)
        ax.plot(p * cfg.epochs, [lr_at(t, cfg.lr, cfg.min_lr, cfg.warmup_epochs / cfg.epochs) for t in p],
                color=f"C{k}", label=label)
        ax.axvline(cfg.warmup_epochs, color=f"C{k}", ls=":", lw=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def lr_sweep(results: dict, ax=None, title: str | None = None):
    """Final test accuracy against peak learning rate, one line per optimizer: {name: [(lr, acc 0..1), ...]}."""
    ax = ax or plt.subplots(figsize=(5.2, 3.3))[1]
    for k, (name, points) in enumerate(results.items()):
        lrs, accs = zip(*sorted(points))
        ax.plot(lrs, [100 * a for a in accs], marker="o", color=f"C{k}", label=name)
        best = int(np.argmax(accs))
        ax.scatter([lrs[best]], [100 * accs[best]], s=120, facecolors="none", edgecolors=f"C{k}")
    ax.set_xscale("log")
    swept = sorted({lr for points in results.values() for lr, _ in points})
    ax.set_xticks(swept, [f"{lr:.1e}" for lr in swept])
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def update_sizes(updates: dict, ax=None):
    """Cumulative distribution of per-coordinate update sizes |delta theta| / lr, one curve per optimizer:
    {name: 1-D tensor}. A sign update is a step at 1; an adaptive one spreads below it."""
    ax = ax or plt.subplots(figsize=(5.2, 3))[1]
    for k, (name, u) in enumerate(updates.items()):
        v = np.sort(u.detach().float().cpu().numpy())
        ax.plot(np.concatenate([[0.0], v]), np.linspace(0, 1, len(v) + 1), color=f"C{k}", lw=2, label=name,
                drawstyle="steps-post")
    ax.set_xlabel("|update| / learning rate, per coordinate")
    ax.set_ylabel("share of coordinates at or below")
    ax.set_xlim(0, None)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def optimizer_paths(lr_adamw: float = 0.1, lr_lion: float = 0.1, steps: int = 60, noise: float = 0.0,
                    seed: int = 0, ax=None):
    """AdamW and Lion (torch, lion-pytorch) on the valley 0.5 * (x - 1)^2 + 5 * (y - 0.5)^2 from (-2, 1.5),
    on its contours: Lion moves every coordinate by exactly lr each step, AdamW by a step that shrinks as
    its gradients stop agreeing. `noise` adds Gaussian noise to the gradient, as minibatches do."""
    from lion_pytorch import Lion

    g = torch.Generator().manual_seed(seed)
    grad_noise = noise * torch.randn(steps, 2, generator=g)
    paths = {}
    for name, make in (("AdamW", lambda p: torch.optim.AdamW([p], lr=lr_adamw, weight_decay=0.0)),
                       ("Lion", lambda p: Lion([p], lr=lr_lion, weight_decay=0.0))):
        p = torch.tensor([-2.0, 1.5], requires_grad=True)
        opt, path = make(p), [p.detach().clone()]
        for t in range(steps):
            loss = 0.5 * (p[0] - 1) ** 2 + 5 * (p[1] - 0.5) ** 2
            opt.zero_grad()
            loss.backward()
            p.grad += grad_noise[t]
            opt.step()
            path.append(p.detach().clone())
        paths[name] = torch.stack(path).numpy()
    ax = ax or plt.subplots(figsize=(5.2, 3.4))[1]
    X, Y = np.meshgrid(np.linspace(-2.5, 2, 200), np.linspace(-0.5, 2, 200))
    ax.contour(X, Y, 0.5 * (X - 1) ** 2 + 5 * (Y - 0.5) ** 2, levels=np.geomspace(0.01, 20, 12), colors="0.8",
               linewidths=0.7)
    for k, (name, path) in enumerate(paths.items()):
        ax.plot(path[:, 0], path[:, 1], marker="o", ms=2.5, lw=1, color=f"C{k}", label=f"{name} ({steps} steps)")
    ax.scatter([1], [0.5], marker="*", s=120, color="black", zorder=3, label="minimum")
    ax.set_xlabel("parameter x")
    ax.set_ylabel("parameter y")
    ax.set_xlim(-2.5, 2)
    ax.set_ylim(-0.5, 2)
    ax.legend(fontsize=7, loc="upper right")
    return paths


__all__ += ["augment_rows", "augment_views", "autoaugment_gallery", "study_vs_measured", "lr_schedules", "lr_sweep",
            "update_sizes", "optimizer_paths"]
# ---- chapter 9, profiling a training step ----------------------------------------------------------------

PHASE_COLORS = {"data": "#9e9e9e", "forward": "#4c72b0", "backward": "#dd8452", "optimizer": "#55a868"}


def phase_bars(rows: dict, ax=None, shares: bool = False, unit: str = "ms per step", title: str | None = None):
    """One horizontal stacked bar per row of {label: {phase: time}} (phases data, forward, backward,
    optimizer), first row on top; `shares` draws each bar as percent of its own total. Totals are written
    at the end of each bar."""
    labels = list(rows)
    ax = ax or plt.subplots(figsize=(7.5, 0.55 * len(labels) + 1.2))[1]
    y = np.arange(len(labels))[::-1]
    totals = [sum(rows[k].values()) for k in labels]
    left = np.zeros(len(labels))
    for phase, color in PHASE_COLORS.items():
        vals = np.array([rows[k].get(phase, 0.0) for k in labels], dtype=float)
        vals = 100 * vals / np.array(totals) if shares else vals
        ax.barh(y, vals, left=left, color=color, label=phase, height=0.6)
        for yi, l, v in zip(y, left, vals):
            if v > (8 if shares else 0.08 * max(totals)):
                ax.text(l + v / 2, yi, f"{v:.0f}%" if shares else f"{v:.3g}", ha="center", va="center", fontsize=7,
                        color="white")
        left += vals
    if not shares:
        for yi, tot in zip(y, totals):
            ax.text(tot, yi, f" {tot:.3g}", va="center", fontsize=7)
        ax.set_xlim(0, 1.12 * max(totals))
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel("share of the step (%)" if shares else unit)
    ax.legend(ncol=4, fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    if title:
        ax.set_title(title, fontsize=9, pad=22)
    ax.grid(axis="x", alpha=0.3)
    return ax


def speedup_bars(rows: list[dict], ax=None, title: str | None = None):
    """Images/s of each setting relative to the first (the baseline): rows with "setting" and "images/s"."""
    base = rows[0]["images/s"]
    labels = [r["setting"] for r in rows]
    vals = np.array([r["images/s"] / base for r in rows])
    ax = ax or plt.subplots(figsize=(6.5, 0.4 * len(rows) + 1.0))[1]
    y = np.arange(len(rows))[::-1]
    ax.barh(y, vals, color=["#4c72b0" if v >= 1 else "#c44e52" for v in vals], height=0.6)
    for yi, v in zip(y, vals):
        ax.text(v, yi, f" {v:.2f}x", va="center", fontsize=7)
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel("training throughput relative to the baseline (images/s ratio)")
    ax.set_xlim(0, 1.15 * vals.max())
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return ax


__all__ += ["PHASE_COLORS", "phase_bars", "speedup_bars"]

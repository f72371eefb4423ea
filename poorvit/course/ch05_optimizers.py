"""Chapter 5, optimizers: learning-rate schedules and sweeps (`lr_schedules`, `lr_sweep`), the size
of each coordinate's update (`update_sizes`), Muon's Newton-Schulz iteration on singular values
(`ns_map`, `ns_curves`, `singular_values`) and a check of a from-scratch Muon step
(`check_muon_step`), what a sweep shows against its seed spread (`seed_spread`, `sweep_verdicts`,
`best_verdicts`), AdamW and Lion on a valley (`optimizer_paths`, `optimizer_explorer`), and the
`optimizers/*` exercise checks.

    from poorvit.course import ch05_optimizers as ch
    ch.optimizer_paths(lr_adamw=0.1, lr_lion=0.1, steps=60)
"""
from __future__ import annotations

import math

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch

from ..optim import lr_at
from .exercises import ExerciseError, as_float, exercise, expect_close
from .widgets import explorer

# Muon's quintic Newton-Schulz coefficients (Jordan et al. 2024; torch.optim.Muon's defaults):
# each step maps a singular value s to a s + b s^3 + c s^5, slope a = 3.4445 at s = 0
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
COLORS = {"AdamW": "C0", "Lion": "C1", "Muon": "C2"}     # one colour per optimizer, every figure


def lr_schedules(configs: dict, ax=None, steps: int = 400):
    """Learning rate against training progress (epochs) for {label: TrainConfig}: linear warmup,
    then a half cosine down to `min_lr` (`optim.lr_at`), the end of each warmup marked."""
    ax = ax or plt.subplots(figsize=(5, 3))[1]
    for k, (label, cfg) in enumerate(configs.items()):
        p = np.linspace(0, 1, steps)
        warmup = cfg.warmup_epochs / cfg.epochs
        ax.plot(p * cfg.epochs, [lr_at(t, cfg.lr, cfg.min_lr, warmup) for t in p], color=f"C{k}",
                label=label)
        ax.axvline(cfg.warmup_epochs, color=f"C{k}", ls=":", lw=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def _seed_lists(points) -> list[tuple[float, list[float]]]:
    """[(lr, [acc, ...]), ...] sorted by lr, from points whose acc is a number or a seed list."""
    def seeds(acc):
        return [float(a) for a in (acc if isinstance(acc, (list, tuple)) else [acc])]
    return sorted((float(lr), seeds(acc)) for lr, acc in points)


def seed_spread(results: dict) -> float:
    """The seed spread of a sweep, in points (%): the pooled sample standard deviation of the
    accuracy over seeds, sqrt(mean of the per-point variances), over every grid point with at least
    two seeds. results {name: [(lr, [acc 0..1 per seed]), ...]}.

    Raises ValueError when no point has two seeds."""
    variances = [np.var([100 * a for a in accs], ddof=1)
                 for points in results.values() for _, accs in _seed_lists(points) if len(accs) > 1]
    if not variances:
        raise ValueError("seed_spread: no grid point has two seeds; train each point with at least "
                         "two seeds (TrainConfig.seed)")
    return float(math.sqrt(np.mean(variances)))


def _band(spread: float, na: int, nb: int, k: float = 2.0) -> float:
    """The noise band (points) of a difference of two means of na and nb seeds, from the pooled
    seed spread: k * spread * sqrt(1/na + 1/nb) (`report.verdict`'s rule, with the pooled std)."""
    return k * spread * math.sqrt(1 / na + 1 / nb)


def sweep_verdicts(results: dict, spread: float | None = None) -> dict:
    """What a learning-rate sweep shows, each comparison by `report.verdict` against the noise band
    of the pooled seed spread (`seed_spread`, points). results {name: [(lr, [acc 0..1 per seed]),
    ...]}, the same grid for every optimizer.

    Returns {name: {"best_lr", "best_acc" (mean, %), "near": the rates whose mean is within noise of
    the best, "largest": the largest rate's `Verdict` against the best}, "spread": the seed spread,
    "order": how the best rates compare ("below", "above", "same", or "unclear" when the rates
    within noise of each best overlap), "by_rate": {lr: `Verdict` of Lion against AdamW at that
    rate}, with Lion and AdamW read as the second and first name when those two are not swept}."""
    from ..report import verdict

    spread = seed_spread(results) if spread is None else spread
    out: dict = {"spread": spread}
    for name, points in results.items():
        pts = _seed_lists(points)
        means = [float(np.mean(accs)) for _, accs in pts]
        b = int(np.argmax(means))
        best_lr, best = pts[b]

        def against_best(accs):
            return verdict([100 * a for a in accs], [100 * a for a in best],
                           noise=_band(spread, len(accs), len(best)))
        near = [lr for lr, accs in pts if lr == best_lr or against_best(accs).within]
        out[name] = {"best_lr": best_lr, "best_acc": 100 * means[b], "near": near,
                     "largest": against_best(pts[-1][1]), "largest_is_best": b == len(pts) - 1,
                     "smallest_is_best": b == 0}
    names = [n for n in results]
    first, second = ("AdamW", "Lion") if {"AdamW", "Lion"} <= set(names) else names[:2]
    mine, theirs = dict(_seed_lists(results[second])), dict(_seed_lists(results[first]))
    out["by_rate"] = {lr: verdict([100 * x for x in mine[lr]], [100 * x for x in theirs[lr]],
                                  noise=_band(spread, len(mine[lr]), len(theirs[lr])))
                      for lr in sorted(mine) if lr in theirs}
    out["pair"], out["names"] = (first, second), names
    a, o = out[first]["near"], out[second]["near"]
    if a == o and len(a) == 1:
        order = "same"
    elif max(o) < min(a):
        order = "below"
    elif min(o) > max(a):
        order = "above"
    else:
        order = "unclear"
    out["order"] = order
    return out


def sweep_sentences(found: dict) -> dict[str, str]:
    """The comparative sentences of a sweep, from `sweep_verdicts`' result: "rule" (where Lion's
    best rate lies against AdamW's, and what that says of the rule of thumb), "largest" (how each
    optimizer's largest rate did against its best), "by_rate" (Lion against AdamW at each rate) and
    "direction" (whether the largest rate hurt Lion beyond noise while AdamW's stayed within noise
    of its best, the direction the rule of thumb predicts). Each starts with a capital, without a
    final full stop."""
    rule = {
        "below": "Lion's best rate is below AdamW's by more than the noise, as the rule of thumb "
                 "predicts for sign updates",
        "same": "Both did best at the same rate of this grid, by more than the noise: this sweep "
                "does not show the rule of thumb",
        "above": "Lion's best rate is above AdamW's by more than the noise, against the rule of "
                 "thumb",
        "unclear": "The rates within noise of each optimizer's best overlap, so this sweep cannot "
                   "say whether Lion's best rate is below AdamW's: it neither confirms nor "
                   "contradicts the rule of thumb",
    }[found["order"]]
    parts = []
    for name in found["names"]:
        f = found[name]
        v = f["largest"]
        if f["largest_is_best"]:
            parts.append(f"the largest rate was {name}'s best" + (
                ", by more than the noise" if len(f["near"]) == 1
                else ", within noise of a smaller one"))
        elif v.within:
            parts.append(f"{name}'s largest rate was within noise of its best "
                         f"({v.diff:+.1f} points, noise band {v.noise:.1f})")
        else:
            parts.append(f"{name}'s largest rate was {-v.diff:.1f} points below its best, more "
                         f"than the noise band of {v.noise:.1f}")
    largest = "; ".join(parts)
    first, second = found["pair"]
    rates = [f"{v.word} at {lr:.1e} ({v.diff:+.1f} points)" for lr, v in found["by_rate"].items()]
    by_rate = (f"Rate by rate, {second} against {first}: " + ", ".join(rates)
               + f" (noise band ±{max(v.noise for v in found['by_rate'].values()):.1f})")
    # the rule of thumb's direction: a large rate hurts the sign update first
    top = max(found["by_rate"])
    shown = (not found["by_rate"][top].within and found["by_rate"][top].diff < 0
             and found[first]["largest"].within)
    direction = (f"What the grid does show is the direction the rule of thumb predicts: the "
                 f"largest rate cost {second} more than the noise, and {first} not" if shown
                 else f"The grid does not show the largest rate hurting {second} more than "
                      f"{first}")
    return {"rule": rule, "largest": largest[:1].upper() + largest[1:], "by_rate": by_rate,
            "direction": direction}


def best_verdicts(results: dict, found: dict, against: str = "AdamW") -> dict:
    """Each optimizer's best grid point against `against`'s best, by `report.verdict` with the
    noise band of the pooled seed spread (`found`: `sweep_verdicts`' result for `results`):
    {name: Verdict} for every other optimizer. Each best is the highest mean of a grid of the same
    size, so both sides carry the same small upward bias of a maximum."""
    from ..report import verdict

    spread = found["spread"]
    best = {name: dict(_seed_lists(points))[found[name]["best_lr"]]
            for name, points in results.items()}
    ref = best[against]
    return {name: verdict([100 * a for a in accs], [100 * a for a in ref],
                          noise=_band(spread, len(accs), len(ref)))
            for name, accs in best.items() if name != against}


def best_sentences(found: dict, bests: dict, against: str = "AdamW") -> dict[str, str]:
    """Sentences (capitalized, no final full stop) from `sweep_verdicts`' and `best_verdicts`'
    results: {name: how its best compares with `against`'s best} and {name + "_rates": the rates
    within noise of its best, and whether its best sits at an edge of its grid}."""
    out = {}
    for name, v in bests.items():
        if v.within:
            out[name] = (f"{name}'s best was within noise of {against}'s best ({v.diff:+.1f} "
                         f"points, noise band {v.noise:.1f})")
        else:
            out[name] = (f"{name}'s best was {abs(v.diff):.1f} points "
                         f"{'above' if v.diff > 0 else 'below'} {against}'s best, more than the "
                         f"noise band of {v.noise:.1f}")
    for name in found["names"]:
        f = found[name]
        near = ", ".join(f"{lr:.1e}" for lr in f["near"])
        edge = ""
        if len(f["near"]) == 1 and (f["largest_is_best"] or f["smallest_is_best"]):
            side = "largest" if f["largest_is_best"] else "smallest"
            edge = (f", by more than the noise the {side} rate of its grid: a rate beyond it "
                    f"might do better still")
        out[name + "_rates"] = (f"{name}'s rates within noise of its best: {near}" + edge)
    return out


def lr_sweep(results: dict, spread: float | None = None, ax=None, title: str | None = None,
             refs: dict | None = None, xlabel: str = "peak learning rate"):
    """Final test accuracy against peak learning rate, one line per optimizer through the mean over
    seeds, each seed a dot: {name: [(lr, acc 0..1 or [acc per seed]), ...]}. With `spread` (the
    seed spread, points: `seed_spread`) a shaded band under each optimizer's best mean marks the
    noise band of a difference of two means: a point inside its colour's band is within noise of
    that optimizer's best. `refs` {name: accuracy in %}: a dashed line at each (another
    optimizer's best, swept on another axis), in that optimizer's colour."""
    ax = ax or plt.subplots(figsize=(5.2, 3.3))[1]
    for name, acc in (refs or {}).items():
        ax.axhline(acc, color=COLORS.get(name, "0.5"), ls="--", lw=1,
                   label=f"{name}'s best ({acc:.1f} %)")
    for k, (name, points) in enumerate(results.items()):
        color = COLORS.get(name, f"C{k + 3}")
        pts = _seed_lists(points)
        lrs = [lr for lr, _ in pts]
        means = [100 * float(np.mean(accs)) for _, accs in pts]
        ax.plot(lrs, means, marker="o", color=color, label=f"{name} (mean over seeds)")
        for lr, accs in pts:
            ax.scatter([lr] * len(accs), [100 * a for a in accs], s=12, color=color, alpha=0.5)
        if spread is not None:
            best, n = max(means), len(pts[int(np.argmax(means))][1])
            ax.axhspan(best - _band(spread, n, n), best, color=color, alpha=0.12, lw=0,
                       label=f"{name}: within noise of its best")
    ax.set_xscale("log")
    swept = sorted({lr for points in results.values() for lr, _ in points})
    ax.set_xticks(swept, [f"{lr:.1e}" for lr in swept])
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def update_sizes(updates: dict, ax=None):
    """Cumulative distribution of per-coordinate update sizes |delta theta| / lr, one curve per
    optimizer: {name: 1-D tensor}. A sign update is a step at 1; an adaptive one spreads below
    it."""
    ax = ax or plt.subplots(figsize=(5.2, 3))[1]
    for k, (name, u) in enumerate(updates.items()):
        v = np.sort(u.detach().float().cpu().numpy())
        ax.plot(np.concatenate([[0.0], v]), np.linspace(0, 1, len(v) + 1), color=f"C{k}", lw=2,
                label=name, drawstyle="steps-post")
    ax.set_xlabel("|update| / learning rate, per coordinate")
    ax.set_ylabel("share of coordinates at or below")
    ax.set_xlim(0, None)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def ns_map(s, steps: int = 5, coefficients: tuple = NS_COEFFICIENTS) -> torch.Tensor:
    """What `steps` Newton-Schulz steps do to singular values `s` (in float64): each step maps s to
    a s + b s^3 + c s^5. On a matrix X (Frobenius norm 1, so every s <= 1), the step
    X <- a X + (b X X^T + c (X X^T)^2) X does exactly this to each singular value and keeps the
    singular vectors."""
    a, b, c = coefficients
    s = torch.as_tensor(s, dtype=torch.float64)
    for _ in range(steps):
        s = a * s + b * s ** 3 + c * s ** 5
    return s


def ns_curves(ax=None, steps: int = 5, band: tuple = (0.7, 1.2)):
    """The Newton-Schulz map on singular values in [0, 1] after 1..`steps` steps (`ns_map`), one
    curve each, with the band `band` shaded and the exact orthogonalization (every s > 0 to 1)
    dashed."""
    ax = ax or plt.subplots(figsize=(5.2, 3.3))[1]
    s = torch.linspace(0, 1, 501, dtype=torch.float64)
    ax.axhspan(*band, color="0.85", lw=0, label=f"[{band[0]:g}, {band[1]:g}]")
    ax.plot([0, 0, 1], [0, 1, 1], color="black", ls="--", lw=1, label=r"$UV^\top$ (every s to 1)")
    for k in range(1, steps + 1):
        ax.plot(s.numpy(), ns_map(s, k).numpy(), color=plt.cm.viridis(k / (steps + 1)), lw=1.5,
                label=f"{k} step" + ("" if k == 1 else "s"))
    ax.set_xlabel("singular value before (Frobenius norm 1)")
    ax.set_ylabel("singular value after")
    ax.set_xlim(0, 1)
    ax.legend(fontsize=8, ncol=2, loc="lower right")
    ax.grid(alpha=0.3)
    return ax


def singular_values(spectra: dict, ax=None):
    """Singular values of one matrix, largest first, one line per version of it: {label: 1-D
    tensor of singular values}, on a log scale."""
    ax = ax or plt.subplots(figsize=(5.2, 3.3))[1]
    for k, (label, sv) in enumerate(spectra.items()):
        v = torch.sort(torch.as_tensor(sv).double().flatten(), descending=True).values
        ax.plot(np.arange(1, len(v) + 1), v.clamp(min=1e-12).numpy(), marker="o", ms=2.5, lw=1,
                color=f"C{k + 4}", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("direction (by singular value, largest first)")
    ax.set_ylabel("singular value")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return ax


def optimizer_paths(lr_adamw: float = 0.1, lr_lion: float = 0.1, steps: int = 60,
                    noise: float = 0.0, seed: int = 0, ax=None):
    """AdamW and Lion (torch, lion-pytorch) on the valley 0.5 * (x - 1)^2 + 5 * (y - 0.5)^2 from
    (-2, 1.5), on its contours: Lion moves every coordinate by exactly lr each step, AdamW by a step
    that shrinks as its gradients stop agreeing. `noise` adds Gaussian noise to the gradient, as
    minibatches do."""
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
    ax.contour(X, Y, 0.5 * (X - 1) ** 2 + 5 * (Y - 0.5) ** 2, levels=np.geomspace(0.01, 20, 12),
               colors="0.8", linewidths=0.7)
    for k, (name, path) in enumerate(paths.items()):
        ax.plot(path[:, 0], path[:, 1], marker="o", ms=2.5, lw=1, color=f"C{k}",
                label=f"{name} ({steps} steps)")
    ax.scatter([1], [0.5], marker="*", s=120, color="black", zorder=3, label="minimum")
    ax.set_xlabel("parameter x")
    ax.set_ylabel("parameter y")
    ax.set_xlim(-2.5, 2)
    ax.set_ylim(-0.5, 2)
    ax.legend(fontsize=8, loc="upper right")
    return paths


def optimizer_explorer() -> W.Widget:
    """Learning rates of AdamW and Lion (log sliders), steps and gradient noise: their paths on a
    valley (`optimizer_paths`)."""
    def draw(lr_adamw, lr_lion, steps, noise):
        optimizer_paths(lr_adamw, lr_lion, steps, noise)
        plt.show()

    log = dict(base=10, min=-3, max=0, step=0.125, readout_format=".3f")
    return explorer(draw, lr_adamw=W.FloatLogSlider(value=0.1, description="AdamW lr", **log),
                    lr_lion=W.FloatLogSlider(value=0.1, description="Lion lr", **log),
                    steps=W.IntSlider(value=60, min=5, max=200, step=5, description="steps"),
                    noise=W.FloatSlider(value=0.0, min=0.0, max=5.0, step=0.25,
                                        description="grad noise"))


# ---- exercise checks ("optimizers/...") ----------------------------------------------------------

@exercise("optimizers/adamw-step",
          hint="m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; "
               "p = p (1 - lr wd) - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).")
def _check_adamw_step(fn) -> str:
    """fn(p, grad, m, v, t, lr, beta1, beta2, eps, weight_decay) -> (p, m, v) after AdamW step t
    (from 1)."""
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
        p, m, v = fn(p, grad.clone(), m, v, t, hp["lr"], *hp["betas"], hp["eps"],
                     hp["weight_decay"])
        expect_close(torch.as_tensor(p), ref.detach(),
                     f"parameters after step {t} (vs torch.optim.AdamW)", atol=1e-10, rtol=1e-8)
    return "your AdamW matches torch.optim.AdamW step for step"


@exercise("optimizers/warmup-cosine",
          hint="below `warmup` the rate is lr * progress / warmup; after it, with "
               "t = (progress - warmup) / (1 - warmup): "
               "min_lr + (lr - min_lr) (1 + cos(pi t)) / 2.")
def _check_warmup_cosine(fn) -> str:
    """fn(progress, lr, min_lr, warmup) -> the learning rate at `progress` in [0, 1] of training."""
    for lr, min_lr, warmup in ((1e-3, 1e-6, 0.1), (2e-3, 0.0, 0.25)):
        for progress in (0.0, 0.05, warmup, 0.3, 0.5, 0.77, 1.0):
            want, got = lr_at(progress, lr, min_lr, warmup), float(fn(progress, lr, min_lr, warmup))
            if abs(got - want) > 1e-9 + 1e-6 * want:
                raise ExerciseError(f"lr={lr:g}, min_lr={min_lr:g}, warmup={warmup:g}: at progress "
                                    f"{progress:g} expected {want:.6g}, got {got:.6g}")
    return "linear warmup, then a half cosine down to min_lr"


@exercise("optimizers/lion-recipe",
          hint="divide the learning rate by k and multiply the weight decay by k: the decay per "
               "step, lr * weight_decay, stays the same.")
def _check_lion_recipe(fn) -> str:
    """fn(adamw_lr, adamw_wd, k) -> (lion_lr, lion_wd) by the Lion paper's rule of thumb."""
    for lr, wd, k in ((1e-3, 0.05, 10), (3e-4, 0.1, 3)):
        got = fn(lr, wd, k)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise ExerciseError("return a pair: (lion_lr, lion_wd)")
        l_lr, l_wd = float(got[0]), float(got[1])
        if abs(l_lr - lr / k) > 1e-12 or abs(l_wd - wd * k) > 1e-9:
            raise ExerciseError(f"AdamW lr={lr:g}, wd={wd:g}, k={k}: expected Lion lr={lr / k:g}, "
                                f"wd={wd * k:g}; got lr={l_lr:g}, wd={l_wd:g}")
    return "k times smaller steps, k times stronger decay: lr * weight_decay unchanged"


MUON_STEP_HINT = ("buf <- momentum buf + (1 - momentum) grad; update = (1 - momentum) grad + "
                  "momentum buf (Nesterov); O = newton_schulz(update), on the matrix scaled to "
                  "Frobenius norm 1; p <- p (1 - lr wd) - lr sqrt(max(1, rows / cols)) O.")


def check_muon_step(fn) -> str:
    """Check a from-scratch Muon step: fn(p, grad, buf, lr, momentum, weight_decay) -> (p, buf)
    after one step of the matrix p, compared with torch.optim.Muon (Nesterov, 5 Newton-Schulz
    steps, its shape scaling) from the same parameters, gradient and momentum, 3 steps on a tall
    and on a wide random matrix. torch runs the iteration in bfloat16: a float32 one is accepted
    within 5 % of the step's norm. Returns a message; raises ExerciseError (with `MUON_STEP_HINT`)
    saying what differs. (A helper of the chapter's Muon section, not one of its exercises.)"""
    try:
        return _muon_step_differences(fn)
    except ExerciseError as err:
        raise ExerciseError(f"{err}\nHint: {MUON_STEP_HINT}") from None


def _muon_step_differences(fn) -> str:
    g = torch.Generator().manual_seed(0)
    hp = dict(lr=0.02, momentum=0.95, weight_decay=0.1)
    for shape in ((48, 16), (16, 40)):
        ref = torch.randn(*shape, generator=g).requires_grad_()
        opt = torch.optim.Muon([ref], nesterov=True, **hp)
        for t in range(1, 4):
            grad = torch.randn(*shape, generator=g)
            p0 = ref.detach().clone()
            buf0 = opt.state[ref]["momentum_buffer"].clone() if opt.state[ref] else \
                torch.zeros_like(p0)
            ref.grad = grad.clone()
            opt.step()
            got = fn(p0.clone(), grad.clone(), buf0.clone(), hp["lr"], hp["momentum"],
                     hp["weight_decay"])
            if not isinstance(got, (tuple, list)) or len(got) != 2:
                raise ExerciseError("return a pair: (p, buf)")
            p, buf = (torch.as_tensor(x) for x in got)
            expect_close(buf, opt.state[ref]["momentum_buffer"],
                         f"{shape} matrix, step {t}: the momentum buffer", atol=1e-6, rtol=1e-5)
            if p.shape != p0.shape:
                raise ExerciseError(f"{shape} matrix: p came back with shape {tuple(p.shape)}")
            want, step = ref.detach() - p0, p.float() - p0
            err = float((step - want).norm() / want.norm())
            if not math.isfinite(err) or err > 0.05:
                raise ExerciseError(
                    f"{shape} matrix, step {t}: your step differs from torch.optim.Muon's by "
                    f"{100 * err:.0f} % of its norm (at most 5 % is rounding: torch runs the "
                    f"iteration in bfloat16); its norm is {float(step.norm()):.4f}, torch's "
                    f"{float(want.norm()):.4f}")
    return "your Muon step matches torch.optim.Muon on a tall and a wide matrix"


@exercise("optimizers/ns-map",
          hint="each step maps s to a s + b s^3 + c s^5 with (a, b, c) = (3.4445, -4.7750, "
               "2.0315); repeat it `steps` times.")
def _check_ns_map(fn) -> str:
    """fn(s, steps) -> the singular values `s` (a 1-D float64 tensor in [0, 1]) after `steps`
    Newton-Schulz steps (`ns_map`: what the matrix iteration does to each singular value)."""
    s = torch.linspace(0, 1, 41, dtype=torch.float64)
    for steps in (1, 2, 5):
        got = torch.as_tensor(fn(s.clone(), steps), dtype=torch.float64)
        if got.shape != s.shape:
            raise ExerciseError(f"steps={steps}: expected {tuple(s.shape)} values, got "
                                f"{tuple(got.shape)}")
        want = ns_map(s, steps)
        bad = (got - want).abs().argmax()
        if not torch.allclose(got, want, atol=1e-9, rtol=1e-7):
            raise ExerciseError(f"steps={steps}: at s = {float(s[bad]):.3f} expected "
                                f"{float(want[bad]):.5f}, got {float(got[bad]):.5f}")
    top = as_float(fn(torch.tensor([1.0], dtype=torch.float64), 5), "the map of s = 1")
    return f"s -> a s + b s^3 + c s^5, 5 times: s = 1 lands at {top:.3f}"


__all__ = ["NS_COEFFICIENTS", "lr_schedules", "lr_sweep", "seed_spread", "sweep_verdicts",
           "sweep_sentences", "best_verdicts", "best_sentences", "update_sizes", "ns_map",
           "ns_curves", "singular_values", "check_muon_step", "optimizer_paths",
           "optimizer_explorer"]

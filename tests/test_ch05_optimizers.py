"""Chapter 5 (`poorvit.course.ch05_optimizers`): a sweep's verdicts come from its numbers and its
seed spread, the plots draw, and the `optimizers/*` checks accept the right answers and reject
wrong ones."""
import math

import matplotlib
import matplotlib.pyplot
import pytest

from poorvit.course import ch05_optimizers as ch
from poorvit.course.exercises import ExerciseError, check

matplotlib.use("Agg")
LRS = (3e-4, 1e-3, 3e-3)


def _sweep(adamw, lion):
    """{name: [(lr, [acc per seed])]} from accuracies in % (seed 0, seed 1) per rate."""
    return {name: [(lr, [a / 100 for a in accs]) for lr, accs in zip(LRS, rows)]
            for name, rows in (("AdamW", adamw), ("Lion", lion))}


def test_seed_spread_is_the_pooled_std():
    sweep = _sweep([(30, 31), (32, 32), (33, 35)], [(30, 30), (30, 30), (30, 30)])
    # per-point variances (points^2): 0.5, 0, 2, 0, 0, 0 -> mean 2.5 / 6
    assert ch.seed_spread(sweep) == pytest.approx(math.sqrt(2.5 / 6))
    with pytest.raises(ValueError, match="two seeds"):
        ch.seed_spread({"AdamW": [(1e-3, 0.3), (3e-3, [0.31])]})


def test_differences_inside_the_seed_spread_are_within_noise():
    # what chapter 5 printed before: best rates 0.1-0.4 points apart, the next sentence calling it
    # noise; with a seed spread of ~0.5 points the sweep cannot place the best rates
    sweep = _sweep([(31.0, 31.8), (31.5, 31.2), (30.9, 31.4)],
                   [(31.6, 31.0), (31.3, 31.1), (30.8, 31.5)])
    found = ch.sweep_verdicts(sweep)
    assert found["order"] == "unclear"
    assert found["AdamW"]["largest"].within and found["Lion"]["largest"].within
    said = ch.sweep_sentences(found)
    assert "neither confirms nor contradicts" in said["rule"]
    assert "within noise" in said["largest"] and "predicts" not in said["rule"]


def test_the_sweep_chapter_5_measured():
    """The smoke sweep of this round (2 seeds a point): Lion's largest rate fell beyond noise,
    nothing else did; the best rates cannot be placed."""
    sweep = _sweep([(25.9, 25.8), (26.0, 26.6), (24.6, 26.7)],
                   [(25.9, 26.6), (25.6, 27.0), (22.5, 23.6)])
    found = ch.sweep_verdicts(sweep)
    assert found["order"] == "unclear"
    assert found["AdamW"]["near"] == list(LRS) and found["AdamW"]["largest"].within
    assert found["Lion"]["largest"].word == "lower"
    assert [v.word for v in found["by_rate"].values()] == ["within noise", "within noise", "lower"]
    said = ch.sweep_sentences(found)
    assert said["direction"].startswith("What the grid does show is the direction")
    assert "lower at 3.0e-03 (-2.6 points)" in said["by_rate"]


def test_clear_differences_get_their_direction():
    # Lion clearly best at the smallest rate, AdamW clearly at the largest, seeds agree to 0.2
    sweep = _sweep([(30.0, 30.2), (33.0, 33.2), (36.0, 36.2)],
                   [(36.0, 36.2), (33.0, 33.2), (30.0, 30.2)])
    found = ch.sweep_verdicts(sweep)
    assert found["order"] == "below"
    assert found["AdamW"]["best_lr"] == 3e-3 and found["Lion"]["best_lr"] == 3e-4
    assert found["AdamW"]["near"] == [3e-3] and found["AdamW"]["largest_is_best"]
    largest = found["Lion"]["largest"]
    assert not largest.within and largest.diff == pytest.approx(-6)
    said = ch.sweep_sentences(found)
    assert said["rule"].startswith("Lion's best rate is below AdamW's")
    assert said["largest"].startswith("The largest rate was AdamW's best, by more than the noise")
    assert "Lion's largest rate was 6.0 points below its best" in said["largest"]
    assert said["direction"].startswith("What the grid does show")
    # the same sweep the other way round: Lion's best above AdamW's
    flipped = {"AdamW": sweep["Lion"], "Lion": sweep["AdamW"]}
    assert ch.sweep_verdicts(flipped)["order"] == "above"
    same = _sweep([(30.0, 30.2), (36.0, 36.2), (30.0, 30.2)],
                  [(30.0, 30.2), (36.0, 36.2), (30.0, 30.2)])
    assert ch.sweep_verdicts(same)["order"] == "same"


def test_plots_draw():
    sweep = _sweep([(30, 31), (32, 32), (33, 35)], [(31, 30), (30, 30.5), (29, 30)])
    ax = ch.lr_sweep(sweep, ch.seed_spread(sweep), title="t")
    assert len(ax.patches) == 2                       # one noise band per optimizer
    assert len(ax.lines) == 2 and ax.get_xlabel() == "peak learning rate"
    ax = ch.lr_sweep({"AdamW": [(1e-3, 0.3), (3e-3, 0.32)]})      # single runs: no band
    assert len(ax.patches) == 0
    fig, ax = matplotlib.pyplot.subplots()
    paths = ch.optimizer_paths(0.1, 0.01, steps=10, ax=ax)
    assert paths["Lion"].shape == (11, 2)
    assert min(t.get_fontsize() for t in ax.get_legend().get_texts()) >= 8   # readable on the page


def test_optimizer_checks():
    def adamw_step(p, grad, m, v, t, lr, beta1, beta2, eps, weight_decay):
        p = p * (1 - lr * weight_decay)
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad * grad
        m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
        return p - lr * m_hat / (v_hat.sqrt() + eps), m, v
    check("optimizers/adamw-step", adamw_step)
    with pytest.raises(ExerciseError):
        check("optimizers/adamw-step",
              lambda p, g, m, v, t, lr, b1, b2, eps, wd: adamw_step(p, g, m, v, t, lr, b1, b2,
                                                                    eps, 0.0))
    check("optimizers/lion-recipe", lambda lr, wd, k: (lr / k, wd * k))
    with pytest.raises(ExerciseError, match="expected Lion"):
        check("optimizers/lion-recipe", lambda lr, wd, k: (lr / k, wd))

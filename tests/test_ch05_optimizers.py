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


# ---- Muon: the chapter's from-scratch Newton-Schulz iteration and step ---------------------------

def _chapter_functions(*names):
    """The functions `names` as chapter 5's notebook defines them (its code cells, parsed): the
    tests below check the chapter's own code, not a copy of it."""
    import ast
    import json
    from pathlib import Path

    import torch

    nb = json.loads((Path(__file__).parents[1] / "notebooks/05_optimizers.ipynb").read_text())
    found = {}
    for cell in nb["cells"]:
        if cell["cell_type"] != "code" or "solution" in cell["metadata"].get("tags", []):
            continue
        source = "".join(cell["source"])
        if not any(f"def {n}(" in source for n in names):
            continue
        for node in ast.parse(source).body:
            if isinstance(node, ast.FunctionDef) and node.name in names:
                found[node.name] = ast.get_source_segment(source, node)
    assert set(found) == set(names), f"the notebook defines {sorted(found)} of {names}"
    space = {"torch": torch, "math": math}
    exec("\n\n".join(found[n] for n in names), space)
    return [space[n] for n in names]


def test_the_chapters_newton_schulz_is_torchs_iteration():
    import torch
    from torch.optim._muon import DEFAULT_A, DEFAULT_B, DEFAULT_C, _zeropower_via_newtonschulz

    (newton_schulz,) = _chapter_functions("newton_schulz")
    assert ch.NS_COEFFICIENTS == (DEFAULT_A, DEFAULT_B, DEFAULT_C)
    g = torch.Generator().manual_seed(0)
    for shape in ((128, 64), (192, 64), (64, 128)):        # not square: no tiny s
        G = torch.randn(*shape, generator=g)
        theirs = _zeropower_via_newtonschulz(G, ch.NS_COEFFICIENTS, 5, 1e-7)
        ours = newton_schulz(G)
        assert ours.dtype == torch.bfloat16 and ours.shape == G.shape
        torch.testing.assert_close(ours, theirs, atol=0, rtol=0)        # the same roundings
        # float32: the same iteration, different only by bfloat16's rounding (a random matrix:
        # all its singular values well above 0.01, so the rounding is not inflated)
        o32 = newton_schulz(G, dtype=torch.float32)
        assert 1e-4 < float((o32 - theirs.float()).norm() / o32.norm()) < 0.05
        # loosely U V^T: the singular vectors of G, singular values in about [0.7, 1.2]
        U, _, Vh = torch.linalg.svd(G.double(), full_matrices=False)
        sv = torch.linalg.svdvals(o32.double())
        assert 0.65 < sv.min() and sv.max() < 1.25
        assert float((o32.double() - U @ Vh).norm() / (U @ Vh).norm()) < 0.3
        # and what the iteration does to each singular value is `ns_map`'s polynomial
        s = torch.linalg.svdvals(G.double() / G.double().norm())
        torch.testing.assert_close(torch.sort(sv).values, torch.sort(ch.ns_map(s, 5)).values,
                                   atol=1e-5, rtol=1e-5)


def test_the_chapters_muon_step_is_torchs():
    import torch

    newton_schulz, muon_step = _chapter_functions("newton_schulz", "muon_step")
    g = torch.Generator().manual_seed(1)
    hp = dict(lr=0.02, momentum=0.95, weight_decay=0.1)
    for shape in ((96, 32), (32, 80)):                           # tall: a larger step; wide
        ref = torch.randn(*shape, generator=g).requires_grad_()
        opt = torch.optim.Muon([ref], nesterov=True, **hp)
        p, buf = ref.detach().clone(), torch.zeros(*shape)
        for _ in range(4):
            ref.grad = torch.randn(*shape, generator=g)
            p, buf = muon_step(p, ref.grad, buf, **hp)
            opt.step()
            torch.testing.assert_close(buf, opt.state[ref]["momentum_buffer"])
            torch.testing.assert_close(p, ref.detach())
    assert "matches torch.optim.Muon" in ch.check_muon_step(muon_step)


def test_the_muon_check_rejects_wrong_steps():
    import torch

    (newton_schulz,) = _chapter_functions("newton_schulz")

    def step(nesterov=True, shape_rule=True, orthogonalize=True, decay=True,
             dtype=torch.float32):
        def fn(p, grad, buf, lr, momentum, weight_decay):
            buf = momentum * buf + (1 - momentum) * grad
            update = (1 - momentum) * grad + momentum * buf if nesterov else buf
            # without the iteration: the plain momentum step
            o = newton_schulz(update, dtype=dtype).float() if orthogonalize else update
            scale = math.sqrt(max(1, p.shape[0] / p.shape[1])) if shape_rule else 1.0
            return p * (1 - lr * weight_decay * decay) - lr * scale * o, buf
        return fn

    ch.check_muon_step(step())                          # float32: within 5 %
    ch.check_muon_step(step(dtype=torch.bfloat16))
    for wrong, match in ((step(nesterov=False), "step 2"), (step(shape_rule=False), r"\(48, 16\)"),
                         (step(orthogonalize=False), "differs"), (step(decay=False), "differs")):
        with pytest.raises(ExerciseError, match=match):
            ch.check_muon_step(wrong)
    with pytest.raises(ExerciseError, match="momentum buffer"):
        ch.check_muon_step(lambda p, g, b, lr, m, wd: step()(p, g, b + g, lr, m, wd))


def test_ns_map_and_its_check():
    import torch

    s = torch.tensor([0.0, 1e-3, 0.01, 0.1, 0.5, 1.0], dtype=torch.float64)
    out = ch.ns_map(s, 5)
    assert out[0] == 0 and 0.4 < out[1] < 0.5                   # 0.001: not there in 5 steps
    assert bool(((out[2:] > 0.68) & (out[2:] < 1.21)).all())     # from 0.01 on: in the band
    a, b, c = ch.NS_COEFFICIENTS
    assert ch.ns_map(s, 1).tolist() == (a * s + b * s ** 3 + c * s ** 5).tolist()

    def right(s, steps):
        for _ in range(steps):
            s = 3.4445 * s - 4.7750 * s ** 3 + 2.0315 * s ** 5
        return s
    check("optimizers/ns-map", right)
    with pytest.raises(ExerciseError, match="steps=5"):            # one step short
        check("optimizers/ns-map", lambda s, steps: right(s, steps) if steps < 5 else right(s, 4))
    with pytest.raises(ExerciseError, match="steps=1"):            # the cubic term's sign
        check("optimizers/ns-map", lambda s, steps: right(s, steps) + 2 * 4.775 * s ** 3)


def test_muon_comparison_sentences():
    """Muon's best against AdamW's, by the seed spread's band; its rates and grid edge."""
    rows = {"AdamW": [(30, 30.4), (32, 32.2), (33, 33.4)],
            "Lion": [(33, 33.2), (32.6, 33), (30, 30.2)],
            "Muon": [(34, 34.2), (35, 35.2), (36.4, 36.6)]}
    lrs = {"AdamW": LRS, "Lion": LRS, "Muon": (6e-3, 2e-2, 6e-2)}
    sweep = {n: [(lr, [a / 100 for a in accs]) for lr, accs in zip(lrs[n], r)]
             for n, r in rows.items()}
    found = ch.sweep_verdicts(sweep)
    bests = ch.best_verdicts(sweep, found)
    assert set(bests) == {"Lion", "Muon"}
    assert bests["Muon"].word == "higher" and bests["Muon"].diff == pytest.approx(3.3)
    assert bests["Lion"].within
    told = ch.best_sentences(found, bests)
    assert told["Muon"].startswith("Muon's best was 3.3 points above AdamW's best")
    assert "within noise of AdamW's best" in told["Lion"]
    assert told["Muon_rates"] == ("Muon's rates within noise of its best: 6.0e-02, by more "
                                  "than the noise the largest rate of its grid: a rate beyond "
                                  "it might do better still")
    assert "the largest rate was Muon's best, by more than the noise" in \
        ch.sweep_sentences(found)["largest"]


def test_muon_figures_draw():
    import torch

    fig, axes = matplotlib.pyplot.subplots(1, 3)
    ax = ch.ns_curves(ax=axes[0])
    assert len(ax.lines) == 6 and ax.get_xlabel().startswith("singular value")
    ax = ch.singular_values({"a": torch.tensor([1.0, 0.1, 1e-3]), "b": torch.ones(3)}, ax=axes[1])
    assert ax.get_yscale() == "log" and len(ax.lines) == 2
    sweep = {"Muon": [(6e-3, [0.30, 0.31]), (2e-2, [0.32, 0.33])]}
    ax = ch.lr_sweep(sweep, 0.5, ax=axes[2], refs={"AdamW": 31.0}, xlabel="muon_lr")
    assert len(ax.lines) == 2 and ax.get_xlabel() == "muon_lr"
    matplotlib.pyplot.close(fig)

"""Chapter 8 (`poorvit.course.ch08_class_tokens`): the class-token analysis functions, the plots and
the explorer, and the `cls-tokens/*` checks accept the right answers and reject wrong ones."""
import pytest
import torch
import torch.nn as nn

from poorvit import ViT, count_params, get_config
from poorvit.config import with_overrides
from poorvit.course import ch08_class_tokens as ch
from poorvit.course import plots
from poorvit.course.exercises import ExerciseError, check


def test_class_token_attention_is_the_cls_rows_of_the_last_map():
    torch.manual_seed(0)
    model = ViT(get_config("micro", n_cls=3)).eval()
    x = torch.randn(2, 3, 32, 32)
    maps = ch.class_token_attention(model, x)
    g = model.cfg.grid
    assert maps.shape == (2, 3, g, g)
    last = model.attention_maps(x)[-1].mean(1)                      # (B, T, T)
    torch.testing.assert_close(maps.flatten(2), last[:, :3, 3:])
    # each class token's row sums to 1 over all tokens: what it gives the patches is at most 1
    torch.testing.assert_close(maps.flatten(2).sum(-1) + last[:, :3, :3].sum(-1), torch.ones(2, 3))


def test_class_token_similarity():
    torch.manual_seed(0)
    model = ViT(get_config("micro", n_cls=4)).eval()
    x = torch.randn(6, 3, 32, 32)
    sim = ch.class_token_similarity(model, x, batch_size=4)           # two chunks
    assert sim.shape == (4, 4)
    torch.testing.assert_close(sim.diagonal(), torch.ones(4))
    torch.testing.assert_close(sim, sim.T)
    feats = model.forward_features(x).detach()[:, :4]
    torch.testing.assert_close(sim, ch.cosine_matrix(feats).mean(0))
    # identical class tokens with identical positions give identical outputs: complete collapse
    with torch.no_grad():
        model.tokens.cls_token[:] = model.tokens.cls_token[:, :1]
        model.tokens.pos_embed[:, :4] = model.tokens.pos_embed[:, :1]
    assert ch.off_diagonal_mean(ch.class_token_similarity(model, x)) == pytest.approx(1.0, abs=1e-5)
    nan = ch.off_diagonal_mean(torch.ones(1, 1))
    assert nan != nan                                                   # NaN for one token


def test_off_diagonal_mean():
    sim = torch.tensor([[1.0, 0.2, 0.4], [0.2, 1.0, 0.6], [0.4, 0.6, 1.0]])
    assert ch.off_diagonal_mean(sim) == pytest.approx(0.4)


def test_effective_count():
    assert ch.effective_count(torch.ones(8, 8)) == pytest.approx(1.0)     # all copies of one
    assert ch.effective_count(torch.eye(8)) == pytest.approx(8.0)         # all orthogonal
    two_groups = torch.block_diag(torch.ones(4, 4), torch.ones(4, 4))
    assert ch.effective_count(two_groups) == pytest.approx(2.0)
    sim = ch.cosine_matrix(torch.randn(3, 5, 16)).mean(0)
    lam = torch.linalg.eigvalsh(sim.double())
    want = (lam.sum() ** 2 / lam.square().sum()).item()
    assert ch.effective_count(sim) == pytest.approx(want, rel=1e-6)


def test_class_token_plots_and_explorer():
    torch.manual_seed(0)
    images = torch.randn(3, 3, 32, 32)
    maps = {k: torch.rand(3, k, 8, 8) for k in (1, 2, 4)}
    fig = ch.token_maps(images, maps[4])
    assert len(fig.axes) == 5 * 3
    plots.similarity_matrix(torch.eye(4), title="similarity")
    widget = ch.class_token_explorer(maps, images)
    assert [c.description for c in widget.children[:2]] == ["n_cls", "token"]


def test_similarity_grid_fits_the_column_with_readable_numbers():
    sims = {f"n_cls = {k}": torch.eye(k) for k in (2, 4, 8)}
    fig = ch.similarity_grid(sims)
    assert fig.get_size_inches()[0] <= 10                    # the book's column rule
    panels = [ax for ax in fig.axes if ax.texts]
    assert len(panels) == 3 and len(panels[2].texts) == 64
    assert min(t.get_fontsize() for ax in panels for t in ax.texts) >= 8
    assert panels[0].get_title().startswith("n_cls = 2\nmean off-diagonal 0.00")
    assert panels[0].texts[0].get_text() == "1.00" and panels[2].texts[0].get_text() == "1.0"


def test_accuracy_by_count_shades_the_reference_band():
    ax = ch.accuracy_by_count({1: 30.0, 2: 31.0, 4: 33.0}, noise=1.5)
    band = ax.patches[0].get_path().get_extents().transformed(ax.patches[0].get_transform())
    lo, hi = ax.transData.inverted().transform([[0, band.y0], [0, band.y1]])[:, 1]
    assert abs(lo - 28.5) < 1e-6 and abs(hi - 31.5) < 1e-6


def test_class_token_checks():
    check("cls-tokens/mean-head", lambda feats, k, head: head(feats[:, :k].mean(1)))
    with pytest.raises(ExerciseError, match="values differ"):
        check("cls-tokens/mean-head", lambda feats, k, head: head(feats[:, 0]))

    def extra(cfg):
        k, C = cfg.n_cls - 1, cfg.n_embd
        n = cfg.n_classes if cfg.cls_head == "concat" else 0
        return k * C * (1 + (cfg.pos_embed == "learned") + n)
    check("cls-tokens/extra-params", extra)
    with pytest.raises(ExerciseError, match="extra parameters"):
        check("cls-tokens/extra-params", lambda cfg: (cfg.n_cls - 1) * cfg.n_embd)

    def collapse(tokens):
        t = nn.functional.normalize(tokens, dim=-1)
        sim = (t @ t.transpose(1, 2)).mean(0)
        k = sim.shape[0]
        return (sim.sum() - sim.trace()) / (k * k - k)
    check("cls-tokens/collapse", collapse)
    with pytest.raises(ExerciseError, match="expected a mean"):
        check("cls-tokens/collapse", lambda tokens: ch.cosine_matrix(tokens).mean())


def test_extra_params_formula_in_the_test_matches_count_params():
    cfg = get_config("smoke", n_cls=8)
    C, n = cfg.n_embd, cfg.n_classes
    assert count_params(cfg) - count_params(with_overrides(cfg, n_cls=1)) == 7 * C * (2 + n)

"""Chapters 7 and 8: the class-token analysis functions, the plots and explorers, and the exercise checks
accept the right answers and reject wrong ones."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from poorvit import ViT, count_params, get_config  # noqa: E402
from poorvit.config import with_overrides  # noqa: E402
from poorvit.exercises import ExerciseError, check  # noqa: E402
from poorvit.init import second_moment, stride1_patches, whitening_filters  # noqa: E402
from poorvit.model import (class_token_attention, class_token_similarity, cosine_matrix, effective_count,  # noqa: E402
                           off_diagonal_mean)
from poorvit.viz import (eigen_spectrum, second_moment_image, similarity_matrix, token_maps,  # noqa: E402
                         whitening_panel)
from poorvit.widgets import class_token_explorer, whitening_explorer  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# ---- class tokens ------------------------------------------------------------------------------------------

def test_class_token_attention_is_the_cls_rows_of_the_last_map():
    torch.manual_seed(0)
    model = ViT(get_config("micro", n_cls=3)).eval()
    x = torch.randn(2, 3, 32, 32)
    maps = class_token_attention(model, x)
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
    sim = class_token_similarity(model, x, batch_size=4)              # two chunks
    assert sim.shape == (4, 4)
    torch.testing.assert_close(sim.diagonal(), torch.ones(4))
    torch.testing.assert_close(sim, sim.T)
    feats = model.forward_features(x).detach()[:, :4]
    torch.testing.assert_close(sim, cosine_matrix(feats).mean(0))
    # identical class tokens with identical positions give identical outputs: complete collapse
    with torch.no_grad():
        model.tokens.cls_token[:] = model.tokens.cls_token[:, :1]
        model.tokens.pos_embed[:, :4] = model.tokens.pos_embed[:, :1]
    assert off_diagonal_mean(class_token_similarity(model, x)) == pytest.approx(1.0, abs=1e-5)
    assert off_diagonal_mean(torch.ones(1, 1)) != off_diagonal_mean(torch.ones(1, 1))   # NaN for one token


def test_off_diagonal_mean():
    sim = torch.tensor([[1.0, 0.2, 0.4], [0.2, 1.0, 0.6], [0.4, 0.6, 1.0]])
    assert off_diagonal_mean(sim) == pytest.approx(0.4)


def test_effective_count():
    assert effective_count(torch.ones(8, 8)) == pytest.approx(1.0)             # all copies of one
    assert effective_count(torch.eye(8)) == pytest.approx(8.0)                 # all orthogonal
    two_groups = torch.block_diag(torch.ones(4, 4), torch.ones(4, 4))
    assert effective_count(two_groups) == pytest.approx(2.0)
    sim = cosine_matrix(torch.randn(3, 5, 16)).mean(0)
    lam = torch.linalg.eigvalsh(sim.double())
    assert effective_count(sim) == pytest.approx((lam.sum() ** 2 / lam.square().sum()).item(), rel=1e-6)


# ---- plots and explorers -----------------------------------------------------------------------------------

def test_whitening_plots_and_explorer():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 16, 16)
    x = x + x.roll(1, dims=-1)                                          # neighbours correlate
    sigma = second_moment(stride1_patches(x, 4))
    filters, lam = whitening_filters(sigma)
    second_moment_image(sigma, title="sigma")
    eigen_spectrum(lam, eps=1e-2)
    axes = whitening_panel(sigma, 1e-2)
    assert len(axes) == 3 and axes[0].get_title().startswith("whitening filters")
    widget = whitening_explorer(sigma)
    assert widget.children[0].description == "eps"


def test_class_token_plots_and_explorer():
    torch.manual_seed(0)
    images = torch.randn(3, 3, 32, 32)
    maps = {k: torch.rand(3, k, 8, 8) for k in (1, 2, 4)}
    fig = token_maps(images, maps[4])
    assert len(fig.axes) == 5 * 3
    similarity_matrix(torch.eye(4), title="similarity")
    widget = class_token_explorer(maps, images)
    assert [c.description for c in widget.children[:2]] == ["n_cls", "token"]


# ---- exercise checks: the right answers pass, wrong ones explain -------------------------------------------

def test_whitening_checks():
    def filters(sigma, eps):
        lam, vec = torch.linalg.eigh(sigma)
        lam, vec = lam.flip(0), vec.flip(1)
        return -vec.T / torch.sqrt(lam + eps)[:, None]                   # any sign per row is fine
    check("whitening/filters", filters)
    with pytest.raises(ExerciseError, match="values differ"):
        check("whitening/filters", lambda s, e: torch.linalg.eigh(s)[1].T)  # ascending, unscaled
    check("whitening/kept", lambda lam, eps: (lam > 9 * eps).sum())
    with pytest.raises(ExerciseError, match="directions keep"):
        check("whitening/kept", lambda lam, eps: (lam > eps).sum())

    def freeze(conv, k):
        for p in (conv.weight, conv.bias):
            mask = torch.ones_like(p)
            mask[:k] = 0
            p.register_hook(lambda g, mask=mask: g * mask)
    check("whitening/freeze", freeze)
    with pytest.raises(ExerciseError, match="no gradient at all"):
        check("whitening/freeze", lambda conv, k: conv.weight.requires_grad_(False))


def test_class_token_checks():
    check("cls-tokens/mean-head", lambda feats, k, head: head(feats[:, :k].mean(1)))
    with pytest.raises(ExerciseError, match="values differ"):
        check("cls-tokens/mean-head", lambda feats, k, head: head(feats[:, 0]))

    def extra(cfg):
        k, C = cfg.n_cls - 1, cfg.n_embd
        return k * C * (1 + (cfg.pos_embed == "learned") + (cfg.n_classes if cfg.cls_head == "concat" else 0))
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
        check("cls-tokens/collapse", lambda tokens: cosine_matrix(tokens).mean())


def test_extra_params_formula_in_the_test_matches_count_params():
    cfg = get_config("smoke", n_cls=8)
    C, n = cfg.n_embd, cfg.n_classes
    assert count_params(cfg) - count_params(with_overrides(cfg, n_cls=1)) == 7 * C * (2 + n)

"""Chapter 7 (`poorvit.course.ch07_whitening`): the plots and the explorer draw, and the
`whitening/*` checks accept the right answers and reject wrong ones."""
import pytest
import torch

from poorvit.course import ch07_whitening as ch
from poorvit.course.exercises import ExerciseError, check
from poorvit.init import second_moment, stride1_patches, whitening_filters


def test_whitening_plots_and_explorer():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 16, 16)
    x = x + x.roll(1, dims=-1)                                          # neighbours correlate
    sigma = second_moment(stride1_patches(x, 4))
    filters, lam = whitening_filters(sigma)
    ch.second_moment_image(sigma, title="sigma")
    ch.eigen_spectrum(lam, eps=1e-2)
    axes = ch.whitening_panel(sigma, 1e-2)
    assert len(axes) == 3 and axes[0].get_title().startswith("whitening filters")
    assert axes[0].figure.get_size_inches()[0] <= 10            # the book's column rule
    widget = ch.whitening_explorer(sigma)
    assert widget.children[0].description == "eps"
    assert widget.children[0].value == pytest.approx(0.1)      # not the recipe's view


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

"""Chapter 4 (`poorvit.course.ch04_augmentation`): the figures fit the book's column and draw
what they say, and the `augmentation/*` checks accept the right answers and reject wrong ones."""
import matplotlib
import pytest
import torch

from poorvit.course import ch04_augmentation as ch
from poorvit.course.exercises import ExerciseError, check

matplotlib.use("Agg")
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]


def _images(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
            torch.randint(0, 10, (n,), generator=g))


def test_small_data_figure_shows_each_recipe_and_seed():
    results = {"no augmentation": [(60.0, 27.5), (58.0, 28.1)],
               "crop + flip": [(38.0, 30.2), (37.0, 30.8)]}
    ax = ch.small_data_figure(results, 1000)
    heights = [round(p.get_height(), 2) for p in ax.patches]
    assert heights == [59.0, 27.8, 37.5, 30.5]              # train, test per recipe: the means
    assert sum(len(c.get_offsets()) for c in ax.collections) == 8      # every seed a dot
    assert [t.get_text() for t in ax.get_xticklabels()] == list(results)
    assert ax.figure.get_size_inches()[0] <= 10


def test_figures_fit_the_column_and_fonts_are_readable():
    x, y = _images()
    fig = ch.augment_rows(x, y, ["crop", "mixup"], CLASSES)
    assert fig.get_size_inches()[0] <= 10
    assert min(ax.title.get_fontsize() for ax in fig.axes) >= 8
    fig = ch.autoaugment_gallery(x[0], bin=7)
    assert fig.get_size_inches()[0] <= 10


def test_augmentation_checks():
    check("augmentation/mixup",
          lambda x, t, lam: (lam * x + (1 - lam) * x.flip(0), lam * t + (1 - lam) * t.flip(0)))
    with pytest.raises(ExerciseError):
        check("augmentation/mixup", lambda x, t, lam: (lam * x + (1 - lam) * x.flip(0), t))
    check("augmentation/smoothing", lambda t, eps: (1 - eps) * t + eps / t.shape[-1])
    with pytest.raises(ExerciseError, match="smoothed targets"):
        check("augmentation/smoothing", lambda t, eps: (1 - eps) * t + eps / (t.shape[-1] - 1))


def test_smoothing_after_mixing_equals_smoothing_before():
    """Exercise 3's "Then": smoothing is affine and mixing weights sum to 1, so the order does not
    matter (what the solution says)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.eye(10)[torch.randint(0, 10, (2, 16), generator=g)]
    lam, eps = 0.3, 0.1

    def smooth(t):
        return (1 - eps) * t + eps / 10
    torch.testing.assert_close(smooth(lam * a + (1 - lam) * b),
                               lam * smooth(a) + (1 - lam) * smooth(b))

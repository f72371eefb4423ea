"""Chapter 1 (`poorvit.course.ch01_tokens`): the position
similarity maps, the plots and the explorer draw, and the `tokens/*` checks pass right answers and
explain wrong ones."""
import math

import pytest
import torch

from poorvit.course import ch01_tokens as ch
from poorvit.course.exercises import CHECKS, ExerciseError, check, load_checks
from poorvit.tokens import patchify, sincos_2d


def test_similarity_canvas_places_each_row_at_its_position():
    grid = 3
    sim = torch.arange(81, dtype=torch.float32).view(9, 9)
    canvas = ch.similarity_canvas(sim, grid)
    assert canvas.shape == (11, 11)
    assert (canvas[4:7, 0:3].flatten() == sim[3].numpy()).all()     # position 3 = row 1, column 0
    assert math.isnan(canvas[3, 0]) and math.isnan(canvas[0, 3])     # the gaps


def test_sincos_positions_are_most_similar_to_their_neighbours():
    sim = ch.position_similarity(sincos_2d(8, 64))
    torch.testing.assert_close(sim.diagonal(), torch.ones(64))
    i = 3 * 8 + 3
    assert sim[i, i + 1] > sim[i, i + 3] and sim[i, i + 8] > sim[i, i + 24]


def test_chapter_plots_draw_and_the_explorer_builds():
    torch.manual_seed(0)
    img = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    axes = ch.patch_view(img, 4, 64)
    assert "65 tokens" in axes[0].get_title()
    ch.patch_sizes(img, (4, 8), 64)
    ch.similarity_maps(sincos_2d(4, 16), 4, title="sin-cos")
    imgs = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    w = ch.patch_explorer(imgs, ["cat", "dog"], n_embd=64)
    assert [c.description for c in w.children[:2]] == ["image", "patch size"]


RIGHT = {
    "tokens/patchify": lambda x, p: x.unflatten(2, (-1, p)).unflatten(4, (-1, p))
    .permute(0, 2, 4, 1, 3, 5).flatten(3).flatten(1, 2),
    "tokens/patch-embed-matmul": lambda e, x: patchify(x, e.patch_size) @ e.proj.weight.flatten(1).T
    + e.proj.bias,
    "tokens/attention-flops": lambda s, p, C: 8 * ((s // p) ** 2 + 1) * C * C
    + 4 * ((s // p) ** 2 + 1) ** 2 * C,
}
WRONG = {
    "tokens/patchify": lambda x, p: x.unflatten(2, (-1, p)).unflatten(4, (-1, p))
    .permute(0, 2, 4, 3, 5, 1).flatten(3).flatten(1, 2),          # channels last: wrong value order
    "tokens/patch-embed-matmul": lambda e, x: patchify(x, e.patch_size)
    @ e.proj.weight.flatten(1).T,                                   # no bias
    "tokens/attention-flops": lambda s, p, C: 8 * (s // p) ** 2 * C * C,  # no scores, no cls token
}


def test_every_chapter_1_exercise_has_a_right_and_a_wrong_answer_here():
    load_checks()
    assert {n for n in CHECKS if n.startswith("tokens/")} == set(RIGHT) == set(WRONG)


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_exercise_checks_pass_right_answers_and_explain_wrong_ones(name, capsys):
    assert check(name, RIGHT[name]).startswith(f"✓ {name}")
    with pytest.raises(ExerciseError, match=f"✗ {name}: .+\nHint: "):
        check(name, WRONG[name])


def test_the_patch_size_figure_fits_a_book_column():
    """Four patch sizes: two images a row beside the cost panel (at most 3 panels a row), at most
    10 inches wide, with the T labels in readable type (the page shrinks wider figures)."""
    img = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    fig = ch.patch_sizes(img, (2, 4, 8, 16), 64)
    assert fig.get_size_inches()[0] <= 10
    columns = {round(ax.get_position().x0, 3) for ax in fig.axes}
    assert len(fig.axes) == 5 and len(columns) == 3
    labels = [t for t in fig.axes[-1].texts if t.get_text().startswith("T=")]
    assert [t.get_text() for t in labels] == ["T=257", "T=65", "T=17", "T=5"]
    assert min(t.get_fontsize() for t in labels) >= 8

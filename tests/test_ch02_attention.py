"""Chapter 2 (`poorvit.course.ch02_attention`): the measured attention cost against the formula, the
softmax saturation statistics, the plots and the explorer draw, and the `attention/*` checks pass
right answers and explain wrong ones."""
import pytest
import torch
import torch.nn.functional as F

from poorvit import ViT, get_config
from poorvit.cost import attention_flops
from poorvit.course import ch02_attention as ch
from poorvit.course import plots
from poorvit.course.exercises import CHECKS, ExerciseError, check, load_checks


@pytest.mark.parametrize("T,C,H", [(5, 16, 2), (65, 64, 4), (257, 32, 8)])
def test_attention_flops_formula_equals_flop_counter(T, C, H):
    measured = ch.measure_attention(T, C, H, repeats=1)
    assert measured["flops"] == attention_flops(T, C)["total"]
    assert measured["seconds"] > 0


def test_attention_scaling_rows():
    rows = ch.attention_scaling([8, 16], 16, 2, repeats=3)
    assert [r["tokens"] for r in rows] == [8, 16]
    assert all(r["flops"] == r["formula_flops"] for r in rows)
    # the fastest try and the median of the tries
    assert all(0 < r["seconds"] <= r["median"] for r in rows)


def test_attention_grid_of_many_heads_fits_a_book_column():
    """Twelve heads (the study's model): the first seven and their mean, at most 10 inches wide;
    asked for, any heads."""
    img = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    maps = torch.rand(2, 12, 65, 65).softmax(-1)                    # (L, H, T, T) of one image
    fig = ch.attention_grid(img, maps)
    assert len(fig.axes) == 2 * 8 and fig.get_size_inches()[0] <= 10
    assert [ax.get_title() for ax in fig.axes[:8]] == [f"head {h}" for h in range(7)] + ["mean"]
    fig = ch.attention_grid(img, maps, heads=[11], blocks=[1])
    assert [ax.get_title() for ax in fig.axes] == ["head 11", "mean"]


def test_softmax_without_the_scale_saturates():
    wide_scaled = ch.softmax_stats(256, scaled=True, samples=8)
    wide_raw = ch.softmax_stats(256, scaled=False, samples=8)
    assert wide_raw["peak"] > 0.8 > 0.3 > wide_scaled["peak"]
    assert wide_raw["jacobian"] < wide_scaled["jacobian"]
    assert wide_scaled["logit_std"] == pytest.approx(1.0, abs=0.1)
    assert wide_raw["logit_std"] == pytest.approx(16.0, rel=0.1)
    # the closed-form Jacobian norm against autograd's
    p = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    J = torch.autograd.functional.jacobian(lambda z: z.softmax(-1), p.log())
    s2, s3 = (p ** 2).sum(), (p ** 3).sum()
    assert (s2 - 2 * s3 + s2 ** 2).sqrt().item() == pytest.approx(J.norm().item())


def test_chapter_plots_draw():
    torch.manual_seed(0)
    img = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    model = ViT(get_config("micro"))
    maps = model.attention_maps(torch.randn(2, 3, 32, 32))           # (L, B, H, T, T)
    fig = ch.attention_grid(img, maps[:, 0])
    assert len(fig.axes) == maps.shape[0] * (maps.shape[2] + 1)
    roll = plots.attention_rollout(maps)[:, 0, 1:]
    plots.attention_compare(torch.stack([img, img]),
                            {"last block": maps[-1].mean(1)[:, 0, 1:], "rollout": roll}, ["a", "b"])
    ch.softmax_saturation((4, 16), samples=4)
    ch.cost_curve([{"tokens": 8, "flops": 10, "seconds": 1.0},
                   {"tokens": 16, "flops": 30, "seconds": 2.5}])


def test_the_explorer_builds():
    torch.manual_seed(0)
    imgs = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    maps = ViT(get_config("micro")).attention_maps(torch.randn(2, 3, 32, 32))
    w = ch.attention_explorer(imgs, maps)
    w.children[3].value = 5                                          # a patch as the query
    assert w.children[3].max == maps.shape[-1] - 1


def _rollout(maps):
    A = maps.mean(2)
    eye = torch.eye(A.shape[-1])
    out = eye.expand_as(A[0])
    for a in A:
        a = 0.5 * eye + 0.5 * a
        out = (a / a.sum(-1, keepdim=True)) @ out
    return out


def _entropy(maps):
    return -(maps[:, :, :, 0] * maps[:, :, :, 0].log()).sum(-1).mean(1)


def _tiled(q, k, v):                                                 # tiled, not grouped
    n = q.shape[1] // k.shape[1]
    return F.scaled_dot_product_attention(q, k.repeat(1, n, 1, 1), v.repeat(1, n, 1, 1))


RIGHT = {
    "attention/gqa": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, enable_gqa=True),
    "attention/entropy": _entropy,
    "attention/rollout": _rollout,
}
WRONG = {
    "attention/gqa": _tiled,
    "attention/entropy": lambda maps: _entropy(maps) / 2,
    "attention/rollout": lambda maps: maps.mean(2).prod(0),
}


def test_every_chapter_2_exercise_has_a_right_and_a_wrong_answer_here():
    load_checks()
    assert {n for n in CHECKS if n.startswith("attention/")} == set(RIGHT) == set(WRONG)


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_exercise_checks_pass_right_answers_and_explain_wrong_ones(name, capsys):
    assert check(name, RIGHT[name]).startswith(f"✓ {name}")
    with pytest.raises(ExerciseError, match=f"✗ {name}: .+\nHint: "):
        check(name, WRONG[name])


def test_an_unattempted_exercise_says_so():
    def stub(*args):
        raise NotImplementedError
    with pytest.raises(ExerciseError, match="not attempted"):
        check("attention/gqa", stub)

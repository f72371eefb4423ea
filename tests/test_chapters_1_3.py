"""The package functions behind chapters 1-3: the attention cost formula against flop_counter, predictions
and mistakes, the plots and widgets those chapters draw, and the exercise checks (right answers pass,
wrong ones fail with a message)."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from poorvit import ViT, get_config, model_report, viz, widgets  # noqa: E402
from poorvit.cost import attention_flops, attention_scaling, measure_attention, n_tokens, patch_cost  # noqa: E402
from poorvit.exercises import CHECKS, ExerciseError, check  # noqa: E402
from poorvit.predict import confident_mistakes, per_class_accuracy, predict  # noqa: E402
from poorvit.tokens import patchify, sincos_2d  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# ---- cost -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("T,C,H", [(5, 16, 2), (65, 64, 4), (257, 32, 8)])
def test_attention_flops_formula_equals_flop_counter(T, C, H):
    measured = measure_attention(T, C, H, repeats=1)
    assert measured["flops"] == attention_flops(T, C)["total"]
    assert measured["seconds"] > 0


def test_attention_flops_of_every_block_of_a_model_match_the_formula():
    for name in ("smoke", "micro"):
        cfg = get_config(name)
        report = model_report(cfg)
        assert report["attention_flops"] == cfg.n_layer * attention_flops(cfg.n_tokens, cfg.n_embd)["total"]


def test_patch_cost_counts_tokens_and_scores_grow_quadratically():
    assert n_tokens(32, 4) == 65 and n_tokens(32, 4, n_cls=4) == 68 and n_tokens(32, 32) == 2
    c2, c4 = patch_cost(32, 2, 64), patch_cost(32, 4, 64)
    assert (c2["patches"], c2["tokens"], c2["patch_values"]) == (256, 257, 12)
    assert c2["attention_scores"] / c4["attention_scores"] == pytest.approx((257 / 65) ** 2)
    assert c2["attention_projections"] / c4["attention_projections"] == pytest.approx(257 / 65)
    with pytest.raises(ValueError, match="patch_size=5"):
        n_tokens(32, 5)


def test_attention_scaling_rows():
    rows = attention_scaling([8, 16], 16, 2, repeats=1)
    assert [r["tokens"] for r in rows] == [8, 16]
    assert all(r["flops"] == r["formula_flops"] for r in rows)


# ---- predict ------------------------------------------------------------------------------------------

def test_predict_matches_the_model_on_normalized_images_and_restores_mode():
    torch.manual_seed(0)
    model = ViT(get_config("micro")).train()
    x = torch.randint(0, 256, (7, 3, 32, 32), dtype=torch.uint8)
    probs = predict(model, x, batch_size=3)
    assert model.training
    assert probs.shape == (7, 10)
    torch.testing.assert_close(probs.sum(-1), torch.ones(7))
    from poorvit.data import normalize
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(probs, model(normalize(x)).softmax(-1))
        torch.testing.assert_close(predict(model, normalize(x)), probs)


def test_per_class_accuracy_and_confident_mistakes():
    pred = torch.tensor([0, 1, 1, 2, 0, 2])
    target = torch.tensor([0, 1, 2, 2, 1, 2])
    acc = per_class_accuracy(pred, target, 4)
    torch.testing.assert_close(acc[:3], torch.tensor([1.0, 0.5, 2 / 3]))
    assert math.isnan(acc[3])
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.95, 0.05]])
    target = torch.tensor([0, 0, 1, 1, 1])
    assert confident_mistakes(probs, target, k=5).tolist() == [4, 1, 2]
    assert confident_mistakes(probs, target, k=1).tolist() == [4]


# ---- viz and widgets ----------------------------------------------------------------------------------

def test_similarity_canvas_places_each_row_at_its_position():
    grid = 3
    sim = torch.arange(81, dtype=torch.float32).view(9, 9)
    canvas = viz.similarity_canvas(sim, grid)
    assert canvas.shape == (11, 11)
    assert (canvas[4:7, 0:3].flatten() == sim[3].numpy()).all()     # position 3 = row 1, column 0
    assert math.isnan(canvas[3, 0]) and math.isnan(canvas[0, 3])     # the gaps


def test_sincos_positions_are_most_similar_to_their_neighbours():
    sim = viz.position_similarity(sincos_2d(8, 64))
    torch.testing.assert_close(sim.diagonal(), torch.ones(64))
    i = 3 * 8 + 3
    assert sim[i, i + 1] > sim[i, i + 3] and sim[i, i + 8] > sim[i, i + 24]


def test_softmax_without_the_scale_saturates():
    wide_scaled = viz.softmax_stats(256, scaled=True, samples=8)
    wide_raw = viz.softmax_stats(256, scaled=False, samples=8)
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
    axes = viz.patch_view(img, 4, 64)
    assert "65 tokens" in axes[0].get_title()
    viz.patch_sizes(img, (4, 8), 64)
    viz.similarity_maps(sincos_2d(4, 16), 4, title="sin-cos")
    model = ViT(get_config("micro"))
    maps = model.attention_maps(torch.randn(2, 3, 32, 32))           # (L, B, H, T, T)
    fig = viz.attention_grid(img, maps[:, 0])
    assert len(fig.axes) == maps.shape[0] * (maps.shape[2] + 1)
    roll = viz.attention_rollout(maps)[:, 0, 1:]
    viz.attention_compare(torch.stack([img, img]), {"last block": maps[-1].mean(1)[:, 0, 1:], "rollout": roll},
                          ["a", "b"])
    viz.softmax_saturation((4, 16), samples=4)
    viz.cost_curve([{"tokens": 8, "flops": 10, "seconds": 1.0}, {"tokens": 16, "flops": 30, "seconds": 2.5}])


def test_chapter_widgets_build():
    torch.manual_seed(0)
    imgs = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    w = widgets.patch_explorer(imgs, ["cat", "dog"], n_embd=64)
    assert [c.description for c in w.children[:2]] == ["image", "patch size"]
    maps = ViT(get_config("micro")).attention_maps(torch.randn(2, 3, 32, 32))
    w = widgets.attention_explorer(imgs, maps)
    w.children[3].value = 5                                          # a patch as the query
    assert w.children[3].max == maps.shape[-1] - 1


# ---- exercise checks -----------------------------------------------------------------------------------

def _rollout(maps):
    A = maps.mean(2)
    eye = torch.eye(A.shape[-1])
    out = eye.expand_as(A[0])
    for a in A:
        a = 0.5 * eye + 0.5 * a
        out = (a / a.sum(-1, keepdim=True)) @ out
    return out


def _params(cfg):
    from poorvit import count_params
    return count_params(cfg)


RIGHT = {
    "tokens/patchify": lambda x, p: x.unflatten(2, (-1, p)).unflatten(4, (-1, p)).permute(0, 2, 4, 1, 3, 5).flatten(3)
    .flatten(1, 2),
    "tokens/patch-embed-matmul": lambda e, x: patchify(x, e.patch_size) @ e.proj.weight.flatten(1).T + e.proj.bias,
    "tokens/attention-flops": lambda s, p, C: 8 * ((s // p) ** 2 + 1) * C * C + 4 * ((s // p) ** 2 + 1) ** 2 * C,
    "attention/gqa": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, enable_gqa=True),
    "attention/entropy": lambda maps: -(maps[:, :, :, 0] * maps[:, :, :, 0].log()).sum(-1).mean(1),
    "attention/rollout": _rollout,
    "first-vit/param-count": _params,
    "first-vit/per-class-accuracy": per_class_accuracy,
    "first-vit/confident-mistakes": confident_mistakes,
}
WRONG = {
    "tokens/patchify": lambda x, p: x.unflatten(2, (-1, p)).unflatten(4, (-1, p)).permute(0, 2, 4, 3, 5, 1).flatten(3)
    .flatten(1, 2),                                                   # channels last: wrong value order
    "tokens/patch-embed-matmul": lambda e, x: patchify(x, e.patch_size) @ e.proj.weight.flatten(1).T,   # no bias
    "tokens/attention-flops": lambda s, p, C: 8 * (s // p) ** 2 * C * C,                  # no scores, no class token
    "attention/gqa": lambda q, k, v: F.scaled_dot_product_attention(                      # tiled, not grouped
        q, k.repeat(1, q.shape[1] // k.shape[1], 1, 1), v.repeat(1, q.shape[1] // k.shape[1], 1, 1)),
    "attention/entropy": lambda maps: -(maps[:, :, :, 0] * maps[:, :, :, 0].log()).sum(-1).mean(1) / 2,
    "attention/rollout": lambda maps: maps.mean(2).prod(0),
    "first-vit/param-count": lambda cfg: _params(cfg) - cfg.n_embd,
    "first-vit/per-class-accuracy": lambda pred, target, k: torch.full((k,), (pred == target).float().mean()),
    "first-vit/confident-mistakes": lambda probs, target, k: probs.max(-1).values.argsort(descending=True)[:k],
}


def test_every_chapter_1_3_exercise_has_a_right_and_a_wrong_answer_here():
    mine = {n for n in CHECKS if n.split("/")[0] in ("tokens", "attention", "first-vit")}
    assert mine == set(RIGHT) == set(WRONG)


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


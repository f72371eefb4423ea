"""Chapter 3 (`poorvit.course.ch03_first_vit`): predictions of a trained classifier read per class
and by its confident mistakes, and the `first-vit/*` checks pass right answers and explain wrong
ones."""
import math

import pytest
import torch

from poorvit import ViT, count_params, get_config
from poorvit.course import ch03_first_vit as ch
from poorvit.course.exercises import CHECKS, ExerciseError, check, load_checks
from poorvit.data import normalize
from poorvit.train import predict


def test_predict_matches_the_model_on_normalized_images_and_restores_mode():
    torch.manual_seed(0)
    model = ViT(get_config("micro")).train()
    x = torch.randint(0, 256, (7, 3, 32, 32), dtype=torch.uint8)
    probs = predict(model, x, batch_size=3)
    assert model.training
    assert probs.shape == (7, 10)
    torch.testing.assert_close(probs.sum(-1), torch.ones(7))
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(probs, model(normalize(x)).softmax(-1))
        torch.testing.assert_close(predict(model, normalize(x)), probs)


def test_per_class_accuracy_and_confident_mistakes():
    pred = torch.tensor([0, 1, 1, 2, 0, 2])
    target = torch.tensor([0, 1, 2, 2, 1, 2])
    acc = ch.per_class_accuracy(pred, target, 4)
    torch.testing.assert_close(acc[:3], torch.tensor([1.0, 0.5, 2 / 3]))
    assert math.isnan(acc[3])
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.95, 0.05]])
    target = torch.tensor([0, 0, 1, 1, 1])
    assert ch.confident_mistakes(probs, target, k=5).tolist() == [4, 1, 2]
    assert ch.confident_mistakes(probs, target, k=1).tolist() == [4]


def _wrong_accuracy(pred, target, k):
    return torch.full((k,), (pred == target).float().mean())


RIGHT = {
    "first-vit/param-count": count_params,
    "first-vit/per-class-accuracy": ch.per_class_accuracy,
    "first-vit/confident-mistakes": ch.confident_mistakes,
}
WRONG = {
    "first-vit/param-count": lambda cfg: count_params(cfg) - cfg.n_embd,
    "first-vit/per-class-accuracy": _wrong_accuracy,
    "first-vit/confident-mistakes": lambda probs, target, k:
        probs.max(-1).values.argsort(descending=True)[:k],
}


def test_every_chapter_3_exercise_has_a_right_and_a_wrong_answer_here():
    load_checks()
    assert {n for n in CHECKS if n.startswith("first-vit/")} == set(RIGHT) == set(WRONG)


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_exercise_checks_pass_right_answers_and_explain_wrong_ones(name, capsys):
    assert check(name, RIGHT[name]).startswith(f"✓ {name}")
    with pytest.raises(ExerciseError, match=f"✗ {name}: .+\nHint: "):
        check(name, WRONG[name])


# ---- the small-data regime -----------------------------------------------------------------------

@pytest.mark.parametrize("scale", sorted(ch.SMALL_DATA))
def test_small_data_config_is_the_scales_recipe_on_few_images_without_augmentation(scale):
    from poorvit.augment import TrainTransform
    from poorvit.config import get_train_config

    tcfg = ch.small_data_config(scale, seed=3)
    recipe = get_train_config(scale)
    n, epochs, every = ch.SMALL_DATA[scale]
    assert (tcfg.train_subset, tcfg.epochs, tcfg.eval_every, tcfg.seed) == (n, epochs, every, 3)
    assert tcfg.warmup_epochs == pytest.approx(epochs / 10)
    # nothing but normalization happens to a batch
    assert repr(TrainTransform.from_config(tcfg)) == "TrainTransform(normalize)"
    assert tcfg.repeats == 1 and not tcfg.full_repeats
    for name in ("optimizer", "lr", "weight_decay", "label_smoothing", "batch_size", "scale",
                 "precision", "test_subset"):
        assert getattr(tcfg, name) == getattr(recipe, name), name
    # chapter 4's use: the same regime with augmentation; the warmup follows a changed length
    aug = ch.small_data_config(scale, crop_pad=4, flip=True, epochs=2 * epochs)
    assert "crop(pad 4)" in repr(TrainTransform.from_config(aug))
    assert aug.warmup_epochs == pytest.approx(2 * epochs / 10)
    assert ch.small_data_config(scale, warmup_epochs=1).warmup_epochs == 1


def test_small_data_config_refuses_the_cpu_recipe():
    with pytest.raises(ValueError, match="no small-data regime for scale 'cpu'"):
        ch.small_data_config("cpu")


def test_train_test_accuracy_scores_the_training_subset_in_eval_mode():
    from poorvit.config import get_train_config
    from poorvit.data import CIFAR10
    from poorvit.runs import Run

    torch.manual_seed(0)
    cfg = get_config("micro")
    model = ViT(cfg).train()
    x = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8)
    pred = predict(model, x).argmax(-1)
    y = pred.clone()
    y[:10] = (pred[:10] + 1) % 10                       # the first 10 of the first 20 wrong
    data = CIFAR10(x, y, x[:8], y[:8], tuple(str(i) for i in range(10)), "made-up", "")
    run = Run(cfg, get_train_config("smoke", train_subset=20), record={"final_acc": 0.25},
              model=model)
    train_acc, test_acc = ch.train_test_accuracy(run, data)
    assert train_acc == pytest.approx(0.5) and test_acc == 0.25
    assert model.training


def test_overfitting_curves_draw_every_seed_and_shade_the_gap():
    from types import SimpleNamespace

    def run(train, test):
        return SimpleNamespace(history=[
            {"epoch": e + 1, "train_acc": a, "loss": 2 - a,
             "test_acc": b if e % 2 else None, "test_loss": 2 - b if e % 2 else None}
            for e, (a, b) in enumerate(zip(train, test))])

    runs = [run([0.2, 0.4, 0.6, 0.8], [0.2, 0.25, 0.3, 0.3]),
            run([0.2, 0.5, 0.7, 0.9], [0.2, 0.2, 0.3, 0.3])]
    acc, loss = ch.overfitting_curves(runs)
    assert len(acc.lines) == len(loss.lines) == 4           # train and test, two seeds
    # test accuracy drawn at the evaluated epochs only (2 and 4)
    assert list(acc.lines[1].get_xdata()) == [2, 4]
    gap = acc.collections[0].get_paths()[0].vertices
    assert gap[:, 1].max() == pytest.approx(85) and gap[:, 1].min() == pytest.approx(22.5)
    assert [t.get_text() for t in acc.get_legend().texts] == ["train (its batches)", "test",
                                                              "the gap"]
    assert acc.figure.get_size_inches()[0] <= 10

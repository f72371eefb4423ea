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

"""The CPU recipe: its preset builds, `--preset cpu` alone selects the whole recipe, a timed run
fits its budget (final evaluation included), and the recipe learns at a CI-sized budget.

The 10-minute accuracy is a benchmark (`python -m poorvit bench cpu-recipe`), not a test."""
import types

import pytest
import torch

import poorvit.optim as optim
from poorvit.cli import build_parser
from poorvit.cli.train import configs
from poorvit.config import PRESET_SCALES, SCALES, get_config, get_train_config
from poorvit.cost import count_params
from poorvit.data import load_cifar10
from poorvit.model import ViT
import poorvit.train as T



@pytest.fixture(scope="module")
def data():
    return load_cifar10()


def test_cpu_preset_builds_and_runs():
    cfg = get_config("cpu")
    model = ViT(cfg)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert sum(p.numel() for p in model.parameters()) == count_params(cfg)


def test_preset_cpu_alone_selects_the_cpu_recipe():
    args = build_parser().parse_args(["train", "--preset", "cpu", "--minutes", "10"])
    model_cfg, train_cfg = configs(args)
    assert model_cfg == get_config("cpu")
    assert train_cfg == get_train_config("cpu", minutes=10) and train_cfg.scale == "cpu"
    # all 50,000 images, on the clock
    assert train_cfg.minutes == 10 and train_cfg.train_subset == 0
    args = build_parser().parse_args(["train", "--preset", "cpu", "--scale", "smoke"])
    # an explicit --scale wins
    assert configs(args)[1].scale == "smoke"
    assert PRESET_SCALES["cpu"] == "cpu" and SCALES["cpu"]["model"] == "cpu"


def test_smoke_recipe_is_step_based_and_derives_from_the_cpu_recipe():
    smoke, cpu = get_train_config("smoke"), get_train_config("cpu")
    assert smoke.minutes == 0 and smoke.train_subset and smoke.test_subset <= 2000
    for name in ("batch_size", "weight_decay", "label_smoothing", "crop_pad", "flip"):
        assert getattr(smoke, name) == getattr(cpu, name), name
    # the chapters keep AdamW (chapter 5 compares the optimizers); the clock's recipe takes Muon
    assert (smoke.optimizer, cpu.optimizer) == ("adamw", "muon")
    # the peak lr is tuned per model width: the smoke model is the narrower one
    assert smoke.lr > cpu.lr


def test_timed_run_leaves_room_for_the_final_evaluation(data, tmp_path, monkeypatch):
    """On a fake clock (each reading 0.1 s later), so that the test checks the logic, not the
    machine's load."""
    budget, final_eval = 9.0, 4.0                                            # seconds
    micro = ViT(get_config("micro"))
    assert T._final_eval_seconds(micro, data, None, torch.device("cpu"), 0, 1) > 0
    # the estimate, fixed for the test
    monkeypatch.setattr(T, "_final_eval_seconds", lambda *a: final_eval)
    ticks = iter(range(10**9))
    fake_time = types.SimpleNamespace(perf_counter=lambda: 0.1 * next(ticks))
    monkeypatch.setattr(optim, "time", fake_time)        # the run's clock: optim.Clock.now
    train_cfg = get_train_config("smoke", minutes=budget / 60, epochs=100, train_subset=640,
                                 batch_size=64,
                                 test_subset=200)
    run = T.train(get_config("micro"), train_cfg, data, out=tmp_path / "r", progress=None)
    # the clock stopped it, not the cap
    assert 1 < run.record["epochs_run"] < 100
    # training stopped as soon as the run so far plus the final evaluation filled the budget
    seconds = run.record["seconds"]
    assert budget - final_eval - 0.3 <= seconds <= budget - final_eval + 0.3, seconds
    # the cosine reached its end
    assert run.history[-1]["lr"] < 1e-4


def test_cpu_recipe_learns_at_a_short_budget(data, tmp_path):
    # the CPU recipe, step-based and shortened: 1 epoch of 3,000 images (93 steps), not 10 minutes
    train_cfg = get_train_config("cpu", minutes=0, epochs=1, warmup_epochs=0.1, train_subset=3000,
                                 test_subset=500)
    run = T.train(get_config("cpu"), train_cfg, data, out=tmp_path / "r", progress=None)
    print("final test accuracy", run.final_acc)
    assert run.final_acc > 0.2, run.history                                  # chance is 0.10


def test_patch_dropout_keeps_class_tokens_and_a_random_subset_in_training_only():
    from poorvit.model import patch_dropout
    B, n_cls, N, C = 3, 2, 64, 8
    x = torch.randn(B, n_cls + N, C)
    torch.manual_seed(0)
    y = patch_dropout(x, 0.5, n_cls, training=True)
    assert y.shape == (B, n_cls + 32, C)
    # class tokens always kept
    assert torch.equal(y[:, :n_cls], x[:, :n_cls])
    # each kept token is one of its image's
    for b in range(B):
        match = (y[b, n_cls:, None] == x[b, None, n_cls:]).all(-1)           # (32, N)
        assert (match.sum(1) == 1).all() and (match.sum(0) <= 1).all()       # ... and none twice
    assert patch_dropout(x, 0.5, n_cls, training=False) is x
    assert patch_dropout(x, 0.0, n_cls, True) is x
    # 64 patches -> 16 kept in training
    model = ViT(get_config("micro", patch_size=4, patch_drop=0.75))
    assert model.forward_features(torch.randn(2, 3, 32, 32)).shape[1] == 1 + 16
    model.eval()
    assert model.forward_features(torch.randn(2, 3, 32, 32)).shape[1] == 1 + 64
    with pytest.raises(ValueError, match="patch_drop=1.0 is not valid"):
        get_config("micro", patch_drop=1.0)

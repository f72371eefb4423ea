"""The `paper` scale is the study's code, setting by setting (issue 19; ../shared/STUDY.md)."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from poorvit import study
from poorvit.config import (TrainConfig, ViTConfig, get_config, get_train_config,
                            planned_steps, scale_model)
from poorvit.data import DeviceLoader
from poorvit.model import ViT
from poorvit.optim import make_optimizer, param_groups
from poorvit.report import identify
from poorvit.runs import find_runs, with_defaults

ROOT = Path(__file__).resolve().parents[1]
NEW_MODEL = {"norm_eps": 1e-5, "init": "course"}
NEW_TRAIN = {"decay_all": False, "lion_betas": "shared", "augment_impl": "torchvision",
             "mix_partner": "reverse", "full_repeats": False, "whiten_source": "images",
             "whiten_images": 10_000}


def test_every_fidelity_row_is_the_study_or_says_why():
    rows = study.fidelity("paper")
    assert len(rows) == len(study.FIDELITY) >= 20
    for r in rows:
        assert r["status"] == "same" or r["status"].startswith(("same; ", "differs: ")), r
        assert r["match"] or r["status"].startswith("differs: "), r


def test_the_paper_configs_hold_the_study_values_row_by_row():
    m, t = scale_model("paper"), get_train_config("paper")
    assert (m.patch_size, m.n_embd, m.n_layer, m.n_head, m.mlp_ratio) == (4, 192, 9, 12, 2.0)
    assert m.norm_eps == 1e-6 and m.init == "study"
    assert planned_steps(t) == (585, 58_500)                 # 3 passes of 50,000 at batch 256
    assert (t.lr, t.weight_decay, t.decay_all, t.min_lr, t.warmup_epochs) == (
        1e-3, 0.05, True, 1e-6, 10)
    assert (t.lion_betas, t.augment_impl, t.mix_partner) == ("lion-pytorch", "study", "permute")
    assert (t.whiten_eps, t.whiten_source, t.whiten_images) == (5e-4, "loader", 5000)
    assert (t.precision, t.eval_every) == ("fp32", 5)
    model = ViT(m)
    assert all(n.eps == 1e-6 for n in model.modules() if isinstance(n, torch.nn.LayerNorm))
    # the patch conv keeps PyTorch's default init (uniform +-1/sqrt(48)), the rest is uncut
    w = model.tokens.patch.proj.weight
    assert w.abs().max() > 0.1 and w.abs().max() <= 48 ** -0.5
    assert model.blocks[0].mlp[0].weight.abs().max() > 0.045      # not cut at 2 std (0.04)


def test_lion_and_decay_as_the_study_at_paper_and_as_the_course_at_smoke():
    model = ViT(get_config("micro"))
    t = get_train_config("paper", optimizer="lion")
    assert make_optimizer(model, t).param_groups[0]["betas"] == (0.9, 0.99)
    smoke = get_train_config("smoke", optimizer="lion")
    assert make_optimizer(model, smoke).param_groups[0]["betas"] == (0.9, 0.999)
    n_all = len(list(model.parameters()))
    assert len(param_groups(model, 0.05, decay_all=True)[0]["params"]) == n_all
    assert len(param_groups(model, 0.05)[0]["params"]) < n_all


def test_demo_is_the_paper_recipe_shortened_to_fit_a_t4():
    demo, paper = get_train_config("demo"), get_train_config("paper")
    steps = planned_steps(demo)[1]
    # about a minute a run on a T4: the busiest chapters train 5 runs within ~5 minutes
    # (poorvit.ledger; tests/test_course.py holds the chapters' estimates to the budget)
    assert 500 <= steps <= 1_000 and not demo.full_repeats    # an epoch: one pass of samples
    for name in ("lion_betas", "decay_all", "augment_impl", "mix_partner",
                 "whiten_eps", "whiten_source", "whiten_images", "repeats"):
        assert getattr(demo, name) == getattr(paper, name), name


@pytest.mark.parametrize("scale", ["smoke", "cpu"])
def test_new_fields_keep_the_cpu_scales_as_they_were(scale):
    m, t = scale_model(scale), get_train_config(scale)
    assert {k: getattr(m, k) for k in NEW_MODEL} == NEW_MODEL
    assert {k: getattr(t, k) for k in NEW_TRAIN} == NEW_TRAIN
    assert t.whiten_eps == 1e-2 and t.precision == "auto"
    # the defaults are what the code did before: a test holds each default to its old behaviour
    assert {f.name: f.default for f in fields(TrainConfig) if f.name in NEW_TRAIN} == NEW_TRAIN
    assert {f.name: f.default for f in fields(ViTConfig) if f.name in NEW_MODEL} == NEW_MODEL


def test_an_epoch_of_three_full_passes_repeats_each_image_in_a_row():
    x = torch.zeros(10, 3, 4, 4, dtype=torch.uint8)
    y = torch.arange(10)
    full = DeviceLoader(x, y, 4, True, repeats=3, full_repeats=True)
    old = DeviceLoader(x, y, 4, True, repeats=3)
    assert len(full) == 7 and len(old) == 2
    order = full.order(full.generator())
    assert len(order) == 30 and sorted(order.view(10, 3)[:, 0].tolist()) == list(range(10))
    assert (order.view(10, 3) == order.view(10, 3)[:, :1]).all()
    torch.testing.assert_close(old.order(old.generator()),
                               order.view(10, 3)[:4].flatten()[:10])   # same draws as before


def test_the_study_mixed_loss_equals_cross_entropy_on_mixed_targets():
    g = torch.Generator().manual_seed(0)
    out = torch.randn(16, 10, generator=g)
    ya, yb, lam = torch.randint(0, 10, (16,), generator=g), torch.randint(0, 10, (16,),
                                                                         generator=g), 0.37
    crit = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    theirs = lam * crit(out, ya) + (1 - lam) * crit(out, yb)
    soft = lam * F.one_hot(ya, 10).float() + (1 - lam) * F.one_hot(yb, 10).float()
    torch.testing.assert_close(crit(out, soft), theirs)


def test_accuracy_and_runtime_tables_are_complete():
    assert study.ACCURACY["sincos"] == 93.43
    assert set(study.RUNTIME_S) == set(study.ACCURACY) and study.RUNTIME_S["lion_bs1024"] == 1545
    assert study.RUNTIME_LABEL == "runtime (s, the study's GPU, unknown model)"
    from poorvit.sweep import row_configs
    lion, whitening = row_configs("lion_bs1024", "paper")[1], row_configs("whitening", "paper")[1]
    assert lion.optimizer == "lion" and lion.lion_betas == "lion-pytorch"
    assert (whitening.whiten, whitening.whiten_eps, whitening.whiten_source,
            whitening.whiten_images) == ("trainable", 5e-4, "loader", 5000)


def test_older_records_get_the_new_defaults_when_read():
    records = find_runs(ROOT / "results" / "cpu")
    assert records and all(set(NEW_TRAIN) <= set(r["train"]) for r in records)
    assert sum(identify(r)[0] == "baseline" for r in records) == 3
    bare = {"complete": True, "config": {}, "train": {"lr": 1.0}}
    assert with_defaults(bare)["train"] == {"lr": 1.0, **NEW_TRAIN}


def test_sweep_list_prints_steps_and_flops(capsys):
    from poorvit.cli import main
    main(["sweep", "--list", "--scale", "paper", "--rows", "baseline,adamw_bs1024"])
    out = capsys.readouterr().out
    assert "58,500" in out and "14,600" in out and "train PFLOP" in out
    assert "16.8" in out


def test_two_steps_of_the_paper_recipe_run_every_switch(tmp_path):
    from poorvit.data import load_cifar10
    from poorvit.train import train
    cifar = load_cifar10()
    t = get_train_config("paper", epochs=0.16, warmup_epochs=0.08, batch_size=16,
                         train_subset=64, test_subset=32, whiten="trainable", whiten_images=40,
                         mix_prob=1.0, precision="fp32")
    m = scale_model("paper", n_layer=1)
    run = train(m, t, cifar, out=tmp_path, progress=None)
    assert run.record["steps"] == 2 and run.record["compared"] == "final_acc"
    assert run.record["train"]["augment_impl"] == "study"

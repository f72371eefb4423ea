"""poorvit.timing: the timer, the step breakdown adds up, each lever builds and steps, a profiled
step is training's step (it clips gradients the same way), the operators, the matmul ceiling, and
the benchmark's timm twin, and the drop-path speed fix. Speed itself is never asserted: it is
measured by `python -m poorvit bench` and in chapter 9."""
import math
import re
import time

import pytest
import torch
from conftest import assert_close

from poorvit.config import get_config, get_train_config, with_overrides
from poorvit.cost import count_params
from poorvit.device import PRECISIONS
from poorvit.model import ViT
from poorvit.optim import adamw_kind
from poorvit.study import study_breakdown
from poorvit.timing import (PHASES, BenchStep, Timer, matmul_peak, time_step, time_steps,
                            top_operators)
from poorvit.train import TrainStep

CFG = get_config("micro")                                    # patch 8: 17 tokens, 32 wide
TRAIN = get_train_config("smoke", batch_size=8, train_subset=0)


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    return (torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=g),
            torch.randint(0, 10, (64,), generator=g))


def test_timer_times_its_block_in_ms():
    t = Timer("cpu")
    assert math.isnan(t.ms)
    with t:
        time.sleep(0.01)
    assert 10 <= t.ms < 1e3


def test_parts_add_up_to_the_step_and_every_step_is_recorded(images):
    step = BenchStep(CFG, TRAIN, *images)
    t = time_step(step, steps=3, warmup=1, label="micro")
    assert set(t.parts_ms) == set(PHASES) and all(v >= 0 for v in t.parts_ms.values())
    assert math.isclose(sum(t.parts_ms.values()), t.step_ms, rel_tol=1e-12)
    assert len(t.per_step) == 3 and t.first_step_ms > 0
    for phase in PHASES:                           # each part is the median over the timed steps
        vals = sorted(r[phase] for r in t.per_step)
        assert t.parts_ms[phase] == vals[1]
    assert math.isclose(t.images_per_s, 8 * 1e3 / t.step_ms)
    row = t.row()
    assert row["setting"] == "micro" and row["batch"] == 8
    assert math.isclose(row["step ms"], t.step_ms)


def test_settings_timed_side_by_side_each_get_their_own_times(images):
    settings = {"a": BenchStep(CFG, TRAIN, *images),
                "b": BenchStep(CFG, with_overrides(TRAIN, batch_size=4), *images)}
    out = time_steps(settings, steps=2, warmup=1)
    assert list(out) == ["a", "b"] and [t.batch_size for t in out.values()] == [8, 4]
    assert all(len(t.per_step) == 2 and t.label == k for k, t in out.items())


class _Sleepy:
    """A stand-in step whose phases take known (minimum) times."""
    device, batch_size = torch.device("cpu"), 4
    naps = {"data": 0.004, "forward": 0.012, "backward": 0.02, "optimizer": 0.008}

    def data(self):
        time.sleep(self.naps["data"])
        return None, None

    def forward(self, x, y):
        time.sleep(self.naps["forward"])

    def backward(self, loss):
        time.sleep(self.naps["backward"])

    def optimizer(self):
        time.sleep(self.naps["optimizer"])


def test_each_phase_is_charged_to_its_own_clock():
    t = time_step(_Sleepy(), steps=2, warmup=0)
    for phase, nap in _Sleepy.naps.items():         # a sleep lasts at least this long: lower bounds
        assert t.parts_ms[phase] >= 1e3 * nap, (phase, t.parts_ms)


def test_a_step_trains_the_model(images):
    step = BenchStep(CFG, TRAIN, *images)
    assert isinstance(step.step, TrainStep) and step.opt is step.step.optimizer
    assert step.net is step.model and step.dtype is None and step.batch_size == 8
    before = [p.detach().clone() for p in step.model.parameters()]
    loss = step()
    assert torch.isfinite(loss)
    assert all(not torch.equal(a, b) for a, b in zip(before, step.model.parameters()))
    assert all(p.grad is None for p in step.model.parameters())     # zero_grad(set_to_none=True)


def test_a_profiled_step_clips_gradients_as_training_does(images):
    """The issue's drift: the profiler's copy of the step had no clipping. Now it is training's
    step: the same batch through a `BenchStep` and a `TrainStep` gives the same weights, and
    clipping changes them (at a norm of 1e-6 AdamW's first update shrinks well below lr)."""
    clipped = with_overrides(TRAIN, grad_clip=1e-6)
    bench = BenchStep(CFG, clipped, *images)
    x, y = bench.data()
    bench.backward(bench.forward(x, y))
    bench.optimizer()
    weights = {}
    for clip in (1e-6, 0.0):
        torch.manual_seed(TRAIN.seed)
        train = TrainStep(ViT(CFG), with_overrides(TRAIN, grad_clip=clip), "cpu")
        train(x, y)
        weights[clip] = list(train.model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(bench.model.parameters(), weights[1e-6]))
    assert not all(torch.equal(a, b) for a, b in zip(bench.model.parameters(), weights[0.0]))


@pytest.mark.parametrize("kw", [dict(attention="explicit"), dict(channels_last=True)])
def test_levers_compute_the_same_loss_and_gradients(images, kw):
    """Explicit attention and channels_last change the speed, not the arithmetic."""
    ref, alt = BenchStep(CFG, TRAIN, *images), BenchStep(CFG, TRAIN, *images, **kw)
    x, y = ref.data()
    losses = [s.forward(x, y) for s in (ref, alt)]
    assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6, what="loss")
    for s, loss in zip((ref, alt), losses):
        s.backward(loss)
    for a, b in zip(alt.model.parameters(), ref.model.parameters()):
        assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, what="gradient")
    assert not any(getattr(m, "explicit", False) for m in alt.model.modules())   # restored


@pytest.mark.parametrize("kw", [dict(fused=True), dict(foreach=True)])
def test_fused_and_foreach_adamw_take_the_same_step(images, kw):
    ref, alt = BenchStep(CFG, TRAIN, *images, fused=False), BenchStep(CFG, TRAIN, *images, **kw)
    assert adamw_kind(ref.opt) == "for-loop"
    assert adamw_kind(alt.opt) == ("fused" if "fused" in kw else "foreach")
    for a, b in zip(alt.model.parameters(), ref.model.parameters()):
        a.grad = b.grad = torch.randn_like(a)
    ref.optimizer(), alt.optimizer()
    for a, b in zip(alt.model.parameters(), ref.model.parameters()):
        torch.testing.assert_close(a, b)


def test_dataloader_and_bf16_and_fp16_steps_run(images):
    x, y = BenchStep(CFG, TRAIN, *images, loader="dataloader").data()
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (8,)
    assert abs(x.mean().item()) < 2 and x.std().item() > 0.2        # normalized, not raw bytes
    for precision in ("bf16", "fp16"):
        step = BenchStep(CFG, with_overrides(TRAIN, precision=precision), *images)
        assert step.dtype == PRECISIONS[precision] and torch.isfinite(step())


def test_bad_lever_names_say_what_is_allowed(images):
    with pytest.raises(ValueError, match="sdpa"):
        BenchStep(CFG, TRAIN, *images, attention="flash")
    with pytest.raises(ValueError, match="dataloader"):
        BenchStep(CFG, TRAIN, *images, loader="pil")
    with pytest.raises(ValueError, match="steps"):
        time_step(BenchStep(CFG, TRAIN, *images), steps=0)


def test_top_operators_are_sorted_shares_without_phase_labels(images):
    ops = top_operators(BenchStep(CFG, TRAIN, *images), steps=1, n=6)
    assert len(ops) == 6
    assert [o["ms per step"] for o in ops] == sorted((o["ms per step"] for o in ops), reverse=True)
    assert all(0 <= o["share"] <= 1 for o in ops) and sum(o["share"] for o in ops) <= 1 + 1e-9
    assert not any(o["operator"].startswith("phase: ") for o in ops)
    assert any(o["operator"].startswith("aten::") for o in ops)


def test_matmul_peak_and_the_study_step_in_these_phases():
    """FLOP counts and `mfu` are tested with `poorvit.cost`, the study's numbers with
    `poorvit.study`; here the ceiling they are measured against, and the study's step split into
    this module's phases."""
    assert matmul_peak("cpu", n=64, repeats=2) > 0
    from poorvit.timing import matmul_size
    assert matmul_size("cpu") == 2048                       # the side the matmul bench prints
    assert matmul_peak("cpu", PRECISIONS["fp32"], n=64, repeats=2) > 0     # None: float32
    assert list(study_breakdown()) == list(PHASES)


def test_timm_twin_of_the_paper_preset_has_the_same_parameters():
    pytest.importorskip("timm")
    from poorvit.cli.bench import timm_vit
    cfg = get_config("paper")
    theirs = timm_vit(cfg)
    assert sum(p.numel() for p in theirs.parameters()) == count_params(cfg) == 2_697_610
    assert theirs(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="plain"):
        timm_vit(get_config("paper", n_kv_head=4))


def test_drop_path_scales_the_mask_and_keeps_its_arithmetic():
    """The speed fix in `model.drop_path` (scale the (B, 1, 1) mask, not the tensor) draws the same
    samples and gives the same values as the textbook x * keep / (1 - p)."""
    from poorvit.model import drop_path
    x, p = torch.randn(64, 5, 8), 0.3
    torch.manual_seed(1)
    got = drop_path(x, p, training=True)
    torch.manual_seed(1)
    keep = x.new_empty(64, 1, 1).bernoulli_(1 - p)
    torch.testing.assert_close(got, x * keep / (1 - p))
    assert torch.equal(drop_path(x, p, training=False), x)
    assert torch.equal(drop_path(x, 0.0, training=True), x)


def test_bench_step_and_loader_run_tiny_on_the_cpu(capsys):
    """`bench step --tiny` and `bench loader --tiny` (CI): every row printed with its spread, MFU
    and the augmentation's share of a step; the numbers are consistent with each other."""
    from poorvit.cli import main
    assert main(["bench", "step", "--tiny", "--repeats", "1", "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "poorvit eager" in out and "poorvit compiled (default, aot_eager)" in out
    assert "(min-max)" in out and "MFU" in out
    assert "timm ViT" in out            # its row, or the line saying why it is skipped
    assert main(["bench", "loader", "--tiny", "--repeats", "1", "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "AutoAugment" in out and "Mixup" in out and "repeats 3" in out
    line = next(x for x in out.splitlines() if x.startswith("share of a step"))
    aug, step, share = (float(v) for v in re.findall(r"([\d.]+) (?:ms|%)", line)[:3])
    assert math.isclose(share / 100, aug / (aug + step), abs_tol=2e-3)

"""Chapter 9 (`poorvit.course.ch09_profiling`): a plan for every scale a notebook runs at, each
lever changes one thing, the levers are timed side by side into the chapter's table, and the
`profiling/*` exercise checks accept the answer and explain a wrong one."""
import math

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.colors import to_hex

from poorvit.config import NOTEBOOK_SCALES, SCALES, get_config, get_train_config
from poorvit.cost import flops_per_image
from poorvit.course import ch09_profiling as ch
from poorvit.course.exercises import ExerciseError, check
from poorvit.device import fast_precisions
from poorvit.model import ViT
from poorvit.timing import BenchStep, StepTimes

CFG = get_config("micro")                                    # patch 8: 17 tokens, 32 wide
TRAIN = get_train_config("smoke", batch_size=8, train_subset=0)


@pytest.fixture(scope="module")
def images():
    """64 random uint8 images (64, 3, 32, 32) and their labels (64,), every class present."""
    pixels = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    return pixels, torch.arange(64) % 10


def test_every_notebook_scale_has_a_plan():
    """The plan lives in `config.SCALES` (one table of scales): every scale a notebook runs at has
    one, the others none, and `plan` refuses them in words."""
    plans = {name: s["profile"] for name, s in SCALES.items() if "profile" in s}
    assert set(plans) == set(NOTEBOOK_SCALES)
    assert all({"batch_size", "steps", "warmup", "compile"} <= set(p) for p in plans.values())
    assert all(ch.plan(name) == p for name, p in plans.items())
    with pytest.raises(ValueError, match="chapter 9 runs at smoke"):
        ch.plan("cpu")


def test_each_lever_changes_one_thing_and_compile_only_when_asked():
    rows = ch.levers(32, "cpu")
    assert rows[0][0] == "baseline" and rows[0][2] == {}
    assert all(len(over) == 1 for _, _, over in rows[1:])                # one change each
    assert [r[2] for r in rows if r[0] == "batch size"] == [dict(batch_size=16),
                                                           dict(batch_size=64)]
    assert not any(r[0] == "compile" for r in rows)
    compiled = [over for lever, _, over in ch.levers(32, "cpu", compile=True) if lever == "compile"]
    assert compiled[0] == dict(compile=True) and all(o["compile"] for o in compiled)
    assert "fp32" in fast_precisions("cpu")


def test_measure_levers_returns_one_timing_per_setting(images):
    lines = []
    out = ch.measure_levers(CFG, TRAIN, *images, "cpu", batch_size=8, steps=1, warmup=0,
                            progress=lines.append)
    assert [t.label for t in out] == [label for _, label, _ in ch.levers(8, "cpu")]
    assert [t.batch_size for t in out][:3] == [8, 4, 16] and len(lines) == len(out)
    assert out[0].lever == "baseline" and out[0].precision == "fp32"
    assert [t.precision for t in out if t.lever == "precision"] == [
        p for p in fast_precisions("cpu") if p != "fp32"]
    rows = ch.lever_table(out, CFG, {"fp32": 1e12})
    assert rows[0]["x baseline"] == 1.0 and len(rows) == len(out)
    per_image = flops_per_image(ViT(CFG), backward=True)["total"]
    assert math.isclose(rows[1]["GFLOP/s"], per_image * 4 / (out[1].step_ms / 1e3) / 1e9)
    assert math.isclose(rows[0]["MFU %"], 100 * rows[0]["GFLOP/s"] * 1e9 / 1e12)
    assert all(r["MFU %"] is None for r, t in zip(rows, out) if t.precision != "fp32")


def test_exercise_checks_accept_the_answer_and_explain_a_wrong_one():
    check("profiling/block-flops",
          lambda T, C, h: 2 * T * C * 4 * C + 4 * T * T * C + 4 * T * C * h)
    with pytest.raises(ExerciseError, match="flop_counter counts"):
        check("profiling/block-flops", lambda T, C, h: 2 * T * C * 4 * C + 4 * T * C * h)
    check("profiling/mfu", lambda f, b, ms, peak: f * b / (ms / 1e3) / peak)
    with pytest.raises(ExerciseError, match="factor of 1000"):
        check("profiling/mfu", lambda f, b, ms, peak: f * b / ms / peak)
    check("profiling/amdahl", lambda parts, ph, k:
          sum(parts.values()) / (sum(parts.values()) - parts[ph] + parts[ph] / k))
    with pytest.raises(ExerciseError, match="expected a speed-up"):
        check("profiling/amdahl", lambda parts, ph, k: k)


def _times(label, rates, batch=8):
    """A StepTimes whose timed steps ran at `rates` images/s (all of a step's time in forward)."""
    per_step = [{"data": 0.0, "forward": 1e3 * batch / r, "backward": 0.0, "optimizer": 0.0}
                for r in rates]
    parts = {p: sorted(s[p] for s in per_step)[len(per_step) // 2] for p in per_step[0]}
    return StepTimes(label, "cpu", batch, parts, 1.0, per_step)


def test_lever_verdicts_call_a_difference_inside_the_repeat_spread_noise():
    base = _times("baseline", [100, 104, 96, 102, 98])
    same = _times("same", [101, 95, 105, 99, 100])
    fast = _times("fast", [150, 152, 149, 151, 148])
    slow = _times("slow", [70, 72, 69, 71, 70])
    verdicts = ch.lever_verdicts([base, same, fast, slow])
    assert verdicts[0] is None
    assert [v.word for v in verdicts[1:]] == ["within noise", "faster", "slower"]
    rows = ch.lever_table([base, same, fast, slow], CFG, {})
    assert [r["verdict"] for r in rows] == ["–", "within noise", "faster", "slower"]
    assert rows[1]["noise ±x"] > abs(rows[1]["x baseline"] - 1)
    # one timed step: no spread, so no verdict rather than a ranking of noise
    assert ch.lever_verdicts([_times("a", [100]), _times("b", [200])]) == [None, None]
    ax = ch.speedup_bars(rows)
    bars = [p for p in ax.patches if p.get_height() == 0.5]
    grey, blue, red = (ch.VERDICT_COLORS[w] for w in ("within noise", "faster", "slower"))
    assert [to_hex(b.get_facecolor()) for b in bars] == [grey, grey, blue, red]
    plt.close("all")


def test_remeasure_outliers_times_a_slow_step_again(images):
    step = BenchStep(CFG, TRAIN, *images, "cpu")
    step()                                                         # warm
    t = _times("baseline", [1e5, 1e5, 1e5, 1e5, 1.0])              # one step of 8 s
    n = ch.remeasure_outliers([t], {"baseline": step}, factor=1.5, tries=1)
    assert n == 1 and t.remeasured == 1
    assert max(sum(s.values()) for s in t.per_step) < 8000       # the 8 s step was replaced
    assert t.step_ms == sum(t.parts_ms.values()) < 8000

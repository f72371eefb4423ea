"""Chapter 9 (`poorvit.course.ch09_profiling`): a plan for every scale a notebook runs at, each
lever changes one thing, the levers are timed side by side into the chapter's table, and the
`profiling/*` exercise checks accept the answer and explain a wrong one."""
import math

import pytest
import torch

from poorvit.config import NOTEBOOK_SCALES, SCALES, get_config, get_train_config
from poorvit.cost import flops_per_image
from poorvit.course import ch09_profiling as ch
from poorvit.course.exercises import ExerciseError, check
from poorvit.device import fast_precisions
from poorvit.model import ViT

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

"""poorvit.profile: the step breakdown adds up, each lever builds and steps, the FLOP arithmetic, the
records reader, the chapter's exercise checks and the benchmark's timm twin. Speed itself is never
asserted: it is measured by `python -m poorvit bench` and in the chapter."""
import json
import math
import time

import pytest
import torch

from poorvit import ViT, count_params, flops_per_image, get_config
from poorvit import profile as P
from poorvit.config import get_train_config, with_overrides
from poorvit.exercises import ExerciseError, check
from poorvit.study import STEP_TIME_MS

CFG = get_config("micro")                                    # patch 8: 17 tokens, 32 wide
TRAIN = get_train_config("smoke", batch_size=8, train_subset=0)


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=g), torch.randint(0, 10, (64,), generator=g)


def test_parts_add_up_to_the_step_and_every_step_is_recorded(images):
    step = P.TrainingStep(CFG, TRAIN, *images)
    t = P.time_step(step, steps=3, warmup=1, label="micro")
    assert set(t.parts_ms) == set(P.PHASES) and all(v >= 0 for v in t.parts_ms.values())
    assert math.isclose(sum(t.parts_ms.values()), t.step_ms, rel_tol=1e-12)
    assert len(t.per_step) == 3 and t.first_step_ms > 0
    for phase in P.PHASES:                                   # each part is the median over the timed steps
        vals = sorted(r[phase] for r in t.per_step)
        assert t.parts_ms[phase] == vals[1]
    assert math.isclose(t.images_per_s, 8 * 1e3 / t.step_ms)
    row = t.row()
    assert row["setting"] == "micro" and row["batch"] == 8 and math.isclose(row["step ms"], t.step_ms)


def test_settings_timed_side_by_side_each_get_their_own_times(images):
    settings = {"a": P.TrainingStep(CFG, TRAIN, *images),
                "b": P.TrainingStep(CFG, with_overrides(TRAIN, batch_size=4), *images)}
    out = P.time_steps(settings, steps=2, warmup=1)
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
    t = P.time_step(_Sleepy(), steps=2, warmup=0)
    for phase, nap in _Sleepy.naps.items():               # a sleep lasts at least this long: lower bounds only
        assert t.parts_ms[phase] >= 1e3 * nap, (phase, t.parts_ms)


def test_a_step_trains_the_model(images):
    step = P.TrainingStep(CFG, TRAIN, *images)
    before = [p.detach().clone() for p in step.model.parameters()]
    loss = step()
    assert torch.isfinite(loss)
    assert all(not torch.equal(a, b) for a, b in zip(before, step.model.parameters()))
    assert all(p.grad is None for p in step.model.parameters())        # zero_grad(set_to_none=True)


@pytest.mark.parametrize("kw", [dict(attention="explicit"), dict(channels_last=True)])
def test_levers_compute_the_same_loss_and_gradients(images, kw):
    """Explicit attention and channels_last change the speed, not the arithmetic."""
    ref, alt = P.TrainingStep(CFG, TRAIN, *images), P.TrainingStep(CFG, TRAIN, *images, **kw)
    x, y = ref.data()
    losses = [s.forward(x, y) for s in (ref, alt)]
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    for s, loss in zip((ref, alt), losses):
        s.backward(loss)
    for a, b in zip(alt.model.parameters(), ref.model.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kw", [dict(fused=True), dict(foreach=True)])
def test_fused_and_foreach_adamw_take_the_same_step(images, kw):
    ref, alt = P.TrainingStep(CFG, TRAIN, *images, fused=False), P.TrainingStep(CFG, TRAIN, *images, **kw)
    assert P.adamw_kind(ref.opt) == "for-loop" and P.adamw_kind(alt.opt) == ("fused" if "fused" in kw else "foreach")
    for a, b in zip(alt.model.parameters(), ref.model.parameters()):
        a.grad = b.grad = torch.randn_like(a)
    ref.optimizer(), alt.optimizer()
    for a, b in zip(alt.model.parameters(), ref.model.parameters()):
        torch.testing.assert_close(a, b)


def test_dataloader_and_bf16_and_fp16_steps_run(images):
    x, y = P.TrainingStep(CFG, TRAIN, *images, loader="dataloader").data()
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (8,)
    assert abs(x.mean().item()) < 2 and x.std().item() > 0.2            # normalized, not raw bytes
    for precision in ("bf16", "fp16"):
        step = P.TrainingStep(CFG, with_overrides(TRAIN, precision=precision), *images)
        assert torch.isfinite(step())


def test_bad_lever_names_say_what_is_allowed(images):
    with pytest.raises(ValueError, match="sdpa"):
        P.TrainingStep(CFG, TRAIN, *images, attention="flash")
    with pytest.raises(ValueError, match="dataloader"):
        P.TrainingStep(CFG, TRAIN, *images, loader="pil")
    with pytest.raises(ValueError, match="steps"):
        P.time_step(P.TrainingStep(CFG, TRAIN, *images), steps=0)


def test_top_operators_are_sorted_shares_without_phase_labels(images):
    ops = P.top_operators(P.TrainingStep(CFG, TRAIN, *images), steps=1, n=6)
    assert len(ops) == 6
    assert [o["ms per step"] for o in ops] == sorted((o["ms per step"] for o in ops), reverse=True)
    assert all(0 <= o["share"] <= 1 for o in ops) and sum(o["share"] for o in ops) <= 1 + 1e-9
    assert not any(o["operator"].startswith("phase: ") for o in ops)
    assert any(o["operator"].startswith("aten::") for o in ops)


def test_flop_arithmetic():
    assert P.mfu(2e9, 2.0, 1e9) == 1.0 and P.mfu(1e9, 0.5, 4e9) == 0.5
    assert P.train_flops(CFG, 4) == 4 * flops_per_image(ViT(CFG), backward=True)["total"]
    # backward = twice the forward, less the patch conv's gradient for its input (the images need none)
    f = flops_per_image(ViT(get_config("paper")))
    conv = f["by_module"]["ViT.tokens.patch.proj"]
    assert P.train_flops(get_config("paper"), 1) == 3 * f["total"] - conv
    assert P.matmul_peak("cpu", n=64, repeats=2) > 0


def test_study_breakdown_adds_up_to_the_study_step():
    parts = P.study_breakdown()
    assert list(parts) == list(P.PHASES)
    assert math.isclose(sum(parts.values()), STEP_TIME_MS["total"]) and parts["data"] >= 0


def test_each_lever_changes_one_thing_and_compile_only_when_asked():
    rows = P.levers(32, "cpu")
    assert rows[0][0] == "baseline" and rows[0][2] == {}
    assert all(len(over) == 1 for _, _, over in rows[1:])                # one change each
    assert [r[2] for r in rows if r[0] == "batch size"] == [dict(batch_size=16), dict(batch_size=64)]
    assert not any(r[0] == "compile" for r in rows)
    compiled = [over for lever, _, over in P.levers(32, "cpu", compile=True) if lever == "compile"]
    assert compiled[0] == dict(compile=True) and all(o["compile"] for o in compiled)
    assert "fp32" in P.fast_precisions("cpu")
    assert set(P.PLANS) == {"smoke", "demo", "paper"}


def test_measure_levers_returns_one_timing_per_setting(images):
    lines = []
    out = P.measure_levers(CFG, TRAIN, *images, "cpu", batch_size=8, steps=1, warmup=0, progress=lines.append)
    assert [t.label for t in out] == [label for _, label, _ in P.levers(8, "cpu")]
    assert [t.batch_size for t in out][:3] == [8, 4, 16] and len(lines) == len(out)
    assert out[0].lever == "baseline" and out[0].precision == "fp32"
    assert [t.precision for t in out if t.lever == "precision"] == [p for p in P.fast_precisions("cpu") if p != "fp32"]
    rows = P.lever_table(out, CFG, {"fp32": 1e12})
    assert rows[0]["x baseline"] == 1.0 and len(rows) == len(out)
    per_image = flops_per_image(ViT(CFG), backward=True)["total"]
    assert math.isclose(rows[1]["GFLOP/s"], per_image * 4 / (out[1].step_ms / 1e3) / 1e9)
    assert math.isclose(rows[0]["MFU %"], 100 * rows[0]["GFLOP/s"] * 1e9 / 1e12)
    assert all(r["MFU %"] is None for r, t in zip(rows, out) if t.precision != "fp32")


def test_load_records_reads_lists_dicts_and_rows_and_skips_broken_files(tmp_path):
    assert P.load_records(tmp_path / "missing") == ([], "")
    (tmp_path / "a.json").write_text(json.dumps({"lever": "threads", "images_per_s": 900.0, "load": [1.5, 1.2, 1.0],
                                                 "history": list(range(20)), "config": {"n_embd": 128}}))
    (tmp_path / "b.json").write_text(json.dumps([{"lever": "bf16"}, {"lever": "compile"}]))
    (tmp_path / "c.json").write_text(json.dumps({"device_name": "CPU", "rows": [{"lever": "batch"}]}))
    (tmp_path / "d.json").write_text("{not json")
    (tmp_path / "e.json").write_text(json.dumps({"complete": True, "final_acc": 0.5, "seed": 1, "steps": 100,
                                                 "seconds": 600.4, "params": 9, "config": {"n_embd": 96, "n_layer": 4},
                                                 "device_name": "CPU (x86_64, 2 threads)",
                                                 "train": {"minutes": 10, "batch_size": 500, "lr": 1e-3}}))
    (tmp_path / "README.md").write_text("How these were measured.")
    rows, readme = P.load_records(tmp_path)
    assert [r["lever"] for r in rows] == ["threads", "bf16", "compile", "batch",
                                            "a run: n_embd=96, batch_size=500; 10 minutes, seed 1, 2 threads"]
    assert (rows[-1]["test acc %"], rows[-1]["epochs"], rows[-1]["wall s"]) == (50.0, 1.0, 600.4)
    assert "history" not in rows[0] and "config" not in rows[0] and rows[0]["file"] == "a.json"
    assert rows[0]["load"] == "1.5 1.2 1.0"
    assert readme == "How these were measured."


def test_exercise_checks_accept_the_answer_and_explain_a_wrong_one():
    check("profiling/block-flops", lambda T, C, h: 2 * T * C * 4 * C + 4 * T * T * C + 4 * T * C * h)
    with pytest.raises(ExerciseError, match="flop_counter counts"):
        check("profiling/block-flops", lambda T, C, h: 2 * T * C * 4 * C + 4 * T * C * h)
    check("profiling/mfu", lambda f, b, ms, peak: f * b / (ms / 1e3) / peak)
    with pytest.raises(ExerciseError, match="factor of 1000"):
        check("profiling/mfu", lambda f, b, ms, peak: f * b / ms / peak)
    check("profiling/amdahl", lambda parts, ph, k: sum(parts.values()) / (sum(parts.values()) - parts[ph] + parts[ph] / k))
    with pytest.raises(ExerciseError, match="expected a speed-up"):
        check("profiling/amdahl", lambda parts, ph, k: k)


def test_timm_twin_of_the_paper_preset_has_the_same_parameters():
    pytest.importorskip("timm")
    from poorvit.bench import timm_vit
    cfg = get_config("paper")
    theirs = timm_vit(cfg)
    assert sum(p.numel() for p in theirs.parameters()) == count_params(cfg) == 2_697_610
    assert theirs(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="plain"):
        timm_vit(get_config("paper", n_kv_head=4))


def test_bench_command_lists_the_profiling_benches():
    from poorvit.__main__ import build_parser
    for what in ("step", "matmul", "compile", "all"):
        args = build_parser().parse_args(["bench", what, "--batch", "16"])
        assert args.what == what and args.batch == 16


def test_drop_path_scales_the_mask_and_keeps_its_arithmetic():
    """The speed fix in `model.drop_path` (scale the (B, 1, 1) mask, not the tensor) draws the same samples
    and gives the same values as the textbook x * keep / (1 - p)."""
    from poorvit.model import drop_path
    x, p = torch.randn(64, 5, 8), 0.3
    torch.manual_seed(1)
    got = drop_path(x, p, training=True)
    torch.manual_seed(1)
    keep = x.new_empty(64, 1, 1).bernoulli_(1 - p)
    torch.testing.assert_close(got, x * keep / (1 - p))
    assert torch.equal(drop_path(x, p, training=False), x) and torch.equal(drop_path(x, 0.0, training=True), x)

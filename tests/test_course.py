"""`poorvit.course`: `import poorvit` leaves the course alone, and `setup()` takes exactly the
scales a chapter can run at, refusing the others with a message that names them."""
import subprocess
import sys

import pytest

from poorvit.config import NOTEBOOK_SCALES, SCALES
from poorvit.course import check_scale, setup


def test_import_poorvit_does_not_import_the_course():
    code = "import sys, poorvit; assert 'poorvit.course' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_importing_the_course_imports_no_chapter():
    code = ("import sys, poorvit.course; "
            "assert not [m for m in sys.modules if m.startswith('poorvit.course.ch')]")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("scale", [s for s in SCALES if s not in NOTEBOOK_SCALES])
def test_setup_refuses_a_scale_chapters_cannot_run_at(scale, monkeypatch):
    with pytest.raises(ValueError) as err:
        setup(scale)
    message = str(err.value)
    assert all(s in message for s in NOTEBOOK_SCALES)
    assert "python -m poorvit train --preset cpu" in message
    monkeypatch.setenv("POORVIT_SCALE", scale)
    with pytest.raises(ValueError, match="Chapters take"):
        setup()


def test_every_notebook_scale_passes():
    for scale in NOTEBOOK_SCALES:
        check_scale(scale)
    assert "cpu" in SCALES and "cpu" not in NOTEBOOK_SCALES



# --- the ledger: how long each chapter takes at each scale (poorvit.ledger) ---------------------

import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

from poorvit import ledger  # noqa: E402
from poorvit.config import get_config, get_train_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def committed_summary() -> dict:
    return json.loads((ROOT / "results" / "chapters.json").read_text())


def test_the_setup_page_shows_the_times_the_committed_summary_gives():
    """book/setup.md's table is what `python -m poorvit chapters --summary results/chapters.json
    --page book/setup.md` writes with today's scales and rates: a change of `config.SCALES` (or a
    T4 record in results/gpu/) without regenerating the page fails here."""
    changed = ledger.update_page(ROOT / "book" / "setup.md", committed_summary(),
                                 ROOT / "results" / "gpu", write=False)
    assert not changed, ("book/setup.md is out of date: python -m poorvit chapters --summary "
                         "results/chapters.json --page book/setup.md")


def test_every_chapter_trains_at_demo_within_the_budget_on_a_t4():
    times = ledger.chapter_times(committed_summary(), ROOT / "results" / "gpu")
    assert times["chapters"] and ledger.over_budget(times) == {}, times
    assert max(v["demo_s"] for v in times["chapters"].values()) > 0.25 * ledger.DEMO_BUDGET_S


def test_a_training_keeps_its_proportions_at_another_scale():
    changes = {"epochs": [3, 1.5], "warmup_epochs": [0.3, 0.15], "seed": [0, 1],
               "q_rank": [0, 21], "kv_rank": [0, 21], "train_subset": [5000, 1000],
               "whiten": ["off", "frozen"]}
    model, train = ledger.derive(changes, "demo", {"n_embd": 64, "n_head": 4})
    demo = get_train_config("demo")
    assert train.epochs == demo.epochs / 2 and train.warmup_epochs == demo.warmup_epochs / 2
    assert train.seed == 1 and train.whiten == "frozen" and train.train_subset == 10_000
    assert model.q_rank == model.kv_rank == 63                    # a third of 192 (21 of 64)
    mqa, _ = ledger.derive({"n_kv_head": [None, 1]}, "demo", {"n_embd": 64, "n_head": 4})
    gqa, _ = ledger.derive({"n_kv_head": [None, 2]}, "demo", {"n_embd": 64, "n_head": 4})
    assert (mqa.kv_heads, gqa.kv_heads) == (1, 6)                 # MQA stays MQA, GQA GQA
    base = ledger.run_flops(get_config("paper"), demo)
    half = ledger.run_flops(*ledger.derive({"epochs": [3, 1.5], "warmup_epochs": [0.3, 0.15]},
                                           "demo"))
    assert 0.45 < half / base < 0.6          # half the training images; evaluations on top


def test_a_measured_t4_rate_replaces_the_estimate(tmp_path):
    assert ledger.rates(tmp_path)[0] == ledger.T4_RATE
    record = {"device_name": "Tesla T4", "checks": [
        {"check": ledger.RATE_CHECK, "status": "PASS", "train_flops_per_s": 7e12}]}
    (tmp_path / "Tesla-T4.json").write_text(json.dumps(record))
    rate, source = ledger.rates(tmp_path)
    assert rate["fp16"] == 7e12 and rate["fp32"] == ledger.T4_RATE["fp32"]
    assert "measured" in source and "Tesla T4" in source


def test_course_train_notes_each_training_of_a_chapter(tmp_path, monkeypatch):
    """Outside a chapter nothing is written; inside one (POORVIT_CHAPTER), a line per training
    (here both loaded from the cache: `cached`); the summary keeps the distinct trainings."""
    monkeypatch.setenv("POORVIT_RUNS", str(tmp_path))
    monkeypatch.delenv(ledger.CHAPTER_ENV, raising=False)
    course = setup("smoke", quiet=True)
    cfgs = (get_config("micro"), get_train_config("smoke", epochs=1, warmup_epochs=0.0,
                                                  batch_size=64, train_subset=128, test_subset=100))
    course.train(*cfgs, progress=None)
    assert not ledger.ledger_path(tmp_path).exists()
    monkeypatch.setenv(ledger.CHAPTER_ENV, "04_augmentation")
    monkeypatch.setenv(ledger.EXECUTION_ENV, "2026-01-01T00:00:00+00:00")
    for _ in range(2):
        course.train(*cfgs, progress=None)
    lines = ledger.read(ledger.ledger_path(tmp_path))
    assert [(e["chapter"], e["cached"]) for e in lines] == [("04_augmentation", True)] * 2
    summary = ledger.summarize(lines)
    (training,) = summary["chapters"]["04_augmentation"]["trainings"]
    assert training["changes"]["n_embd"] == [64, 32] and training["changes"]["epochs"] == [3, 1]
    assert ledger.chapter_times(summary)["chapters"]["04_augmentation"]["demo_s"] > 0


def test_the_notebooks_conftest_names_the_chapter_for_its_kernel(tmp_path, monkeypatch):
    """The root conftest.py: while a notebook runs, POORVIT_CHAPTER names it (the kernel inherits
    the environment), then a line with its wall time goes into the ledger and the variable is
    restored."""
    monkeypatch.setenv("POORVIT_RUNS", str(tmp_path))
    monkeypatch.delenv(ledger.CHAPTER_ENV, raising=False)
    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)

    class Item:
        filename = "notebooks/04_augmentation.ipynb"

    class Outcome:
        excinfo = None

    call = hooks.pytest_runtest_call(Item())
    next(call)
    assert os.environ[ledger.CHAPTER_ENV] == "04_augmentation"
    with pytest.raises(StopIteration):
        call.send(Outcome())
    assert ledger.CHAPTER_ENV not in os.environ
    (line,) = ledger.read(ledger.ledger_path(tmp_path))
    assert line["kind"] == "chapter" and line["chapter"] == "04_augmentation" and line["passed"]


def test_chapter_3s_small_data_regime_is_the_one_the_estimates_map():
    """A chapter that picks its numbers per scale (chapter 3's small-data regime) is estimated at
    another scale with that scale's numbers: the regime in `config.SCALES` is the chapter's."""
    from poorvit.config import SCALES, scale_model
    from poorvit.course.ch03_first_vit import SMALL_DATA, small_data_config
    from poorvit.sweep import baseline_configs, config_diff
    for scale, (n, epochs, every) in SMALL_DATA.items():
        assert SCALES[scale]["regimes"]["small data"] == dict(train_subset=n, epochs=epochs,
                                                              eval_every=every), scale
    smoke = (scale_model("smoke"), small_data_config("smoke", seed=1, crop_pad=4))
    changes = {k: list(v) for k, v in config_diff(baseline_configs("smoke"), smoke).items()}
    model, demo = ledger.derive(changes, "demo", {"n_embd": 64, "n_head": 4}, "smoke")
    want = small_data_config("demo", seed=1, crop_pad=4)
    fields_ = ("train_subset", "epochs", "eval_every", "seed", "crop_pad")
    assert [getattr(demo, f) for f in fields_] == [getattr(want, f) for f in fields_]
    # what the smoke run left at its baseline's values (augmentation off) is not a change there,
    # but costs no FLOPs: the estimate is the chapter's run at demo
    assert ledger.run_flops(model, demo) == ledger.run_flops(scale_model("demo"), want)

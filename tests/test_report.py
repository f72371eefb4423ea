"""poorvit.report: the report renders run records it did not write (found by their configs or by
a sweep's tag), keeps runs against different baselines apart, and the results page stays in step
with the records in results/."""
import json
import math
import statistics
from dataclasses import asdict
from pathlib import Path

import pytest

from poorvit.cli import main
from poorvit.config import TrainConfig, ViTConfig, get_config, get_train_config
from poorvit.report import identify, markdown, mean_std, summarize, update_page
from poorvit.runs import run_key
from poorvit.study import ACCURACY
from poorvit.sweep import baseline_configs, row_configs

ROOT = Path(__file__).resolve().parents[1]


def fake_record(model_cfg: ViTConfig, train_cfg: TrainConfig, acc: float, **extra) -> dict:
    """A record as `train()` writes it (the fields the report reads), without training."""
    return {"key": f"k{abs(hash((str(model_cfg), str(train_cfg)))) % 10**8}", "complete": True,
            "config": asdict(model_cfg), "train": asdict(train_cfg), "seed": train_cfg.seed,
            "scale": train_cfg.scale, "dataset": "CIFAR-10", "device": "cuda",
            "device_name": "NVIDIA A100-SXM4-40GB", "commit": "abc123", "params": 2697610,
            "final_acc": acc, "best_acc": acc, "seconds": 1800.0, "history": [], **extra}


def test_report_renders_records_it_did_not_write(tmp_path, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    recs = {
        "base0": fake_record(*row_configs("baseline", "paper", 0), 0.9350),
        "base1": fake_record(*row_configs("baseline", "paper", 1), 0.9370),
        # no tag: found by its configs
        "q0": fake_record(*row_configs("lowrank_q", "paper", 0), 0.9320),
        "lion": fake_record(*row_configs("lion_bs1024", "paper", 0), 0.9200,
                            # written by a sweep
                            sweep={"row": "lion_bs1024", "scale": "paper", "seed": 0,
                                   "baseline": run_key(*baseline_configs("paper"), "CIFAR-10")}),
        # no row at all
        "odd": fake_record(get_config("micro"), get_train_config("smoke", epochs=1), 0.25),
    }
    for name, rec in recs.items():
        (folder / f"{name}.json").write_text(json.dumps(rec))
    assert identify(recs["q0"])[0] == "lowrank_q" and identify(recs["odd"])[0] == "unnamed"

    assert main(["report", str(folder), "--out", str(tmp_path / "rep"), "--records"]) == 0
    text = (tmp_path / "rep" / "report.md").read_text()
    assert (tmp_path / "rep" / "report.png").stat().st_size > 10_000
    summary, per_record = text.split("\n\n")[1:3]
    lines = {line.split(" | ")[0].strip("| "): line for line in summary.splitlines()[2:]}
    mean, std = statistics.fmean([93.5, 93.7]), statistics.stdev([93.5, 93.7])
    assert f"{mean:.2f} ± {std:.2f}" in lines["baseline"] and "93.65" in lines["baseline"]
    assert f"{93.2 - mean:+.2f}" in lines["lowrank_q"] and "93.32" in lines["lowrank_q"]
    # its own table
    assert f"{ACCURACY['lion_bs1024'] - ACCURACY['adamw_bs256']:+.2f}" in lines["lion_bs1024"]
    # a sweep's record and found ones, one baseline
    assert f"{92.0 - mean:+.2f}" in lines["lion_bs1024"]
    assert "baseline run" not in summary
    assert "NVIDIA A100-SXM4-40GB" in lines["lowrank_q"] and "unnamed" in lines
    assert "1,800" in lines["baseline"] and "| 2 |" in lines["baseline"]    # seconds per run, seeds
    assert len(per_record.splitlines()) == 2 + len(recs)
    assert per_record.count("`abc123`") == len(recs)


# ---- the results page and the records in results/ -----------------------------------------------

def test_every_record_in_results_names_what_produced_it():
    files = [p for p in (ROOT / "results").rglob("*") if p.is_file() and p.name != "README.md"]
    assert all(p.suffix == ".json" and p.stat().st_size < 200_000 for p in files), files
    for p in files:
        rec = json.loads(p.read_text())
        if "summary" in rec:   # results/chapters.json: the trainings each chapter runs
            for key in ("source", "device_name", "dataset", "scale", "commit", "chapters"):
                assert rec.get(key) is not None, f"{p.name} has no {key}"
            continue
        if "rows" in rec:   # a benchmark's table (results/cpu/levers.json): its command and machine
            for key in ("benchmark", "device_name", "dataset", "seed", "commit"):
                assert rec.get(key) is not None, f"{p.name} has no {key}"
            # each row holds its measurement: an accuracy, or a speed (bench cpu-throughput)
            assert rec["rows"] and all(
                "error" in r or math.isfinite(r.get("test acc %", r.get("images/s", math.nan)))
                for r in rec["rows"])
            continue
        for key in ("device_name", "scale", "dataset", "seed", "commit", "final_acc", "config",
                    "train"):
            assert rec.get(key) is not None, f"{p.name} has no {key}"
        assert math.isfinite(rec["final_acc"])


def test_results_page_is_in_step_with_rows_and_results_folder():
    stale = update_page(ROOT / "book" / "results.md", ROOT / "results", write=False)
    assert stale == [], ("regenerate with: python -m poorvit report results/ "
                         f"--page book/results.md ({stale})")


def test_report_keeps_runs_against_different_baselines_apart():
    def tag(row, family):
        return {"sweep": {"row": row, "scale": "paper", "seed": 0, "baseline": family}}

    recs = [fake_record(*row_configs("baseline", "paper"), 0.93, **tag("baseline", "aaaa1111")),
            fake_record(*row_configs("baseline", "paper"), 0.90, **tag("baseline", "bbbb2222")),
            fake_record(*row_configs("mqa", "paper"), 0.92, **tag("mqa", "bbbb2222"))]
    rows = summarize(recs)
    assert [(r["row"], r["n"]) for r in rows] == [("baseline", 1), ("baseline", 1), ("mqa", 1)]
    assert next(r for r in rows if r["row"] == "mqa")["delta"] == pytest.approx(2.0)
    text = markdown(rows)
    assert "baseline run" in text and "`bbbb2222`" in text


def test_mean_std_is_the_sample_rule():
    accs = [93.5, 93.7]
    assert mean_std(accs) == (statistics.fmean(accs), statistics.stdev(accs))
    assert mean_std([92.0]) == (92.0, None)                   # one seed: no spread to report


def test_verdict_calls_a_gap_inside_the_noise_within_noise():
    from poorvit.report import verdict
    clear = verdict([70.1, 70.4, 70.2], [61.3, 61.0, 61.5])
    assert not clear.within and clear.word == "higher" and round(clear.diff, 2) == 8.97
    close = verdict(30.4, 30.5, noise=0.3)
    assert close.within and close.word == "within noise" and "within noise" in str(close)
    slower = verdict([2.0, 2.1, 2.05], [1.0, 1.01, 0.99], unit=" ms", more="slower")
    assert slower.word == "slower" and 1.9 < slower.ratio < 2.1
    with pytest.raises(ValueError, match="noise="):
        verdict(1.0, 2.0)


def test_sampling_noise_is_two_standard_errors_of_the_difference_in_points():
    from poorvit.report import sampling_noise
    assert sampling_noise(0.5, 100, 0.5, 100) == pytest.approx(200 * math.sqrt(0.005))
    assert sampling_noise(0.9, 1000, 0.3, 10_000, k=1) == pytest.approx(
        100 * math.sqrt(0.09 / 1000 + 0.21 / 10_000))
    assert sampling_noise(1.0, 50, 0.0, 50) == 0


def test_a_whole_record_older_than_a_field_reads_as_that_fields_default():
    """A record written before `tta_flip` existed ran without it: its change column says so; a
    hand-made record of a few fields says nothing of the fields it lacks."""
    from dataclasses import asdict

    from poorvit.config import get_config, get_train_config
    from poorvit.report import _differences
    train = asdict(get_train_config("cpu", optimizer="adamw"))
    del train["tta_flip"], train["patch_drop_until"]
    record = {"scale": "cpu", "config": asdict(get_config("cpu")), "train": train}
    said = _differences(record).split(", ")
    assert {"optimizer=adamw", "tta_flip=False", "patch_drop_until=1"} <= set(said)
    assert not any(s.startswith("muon_") for s in said)       # no Muon: its settings unsaid
    assert _differences({"scale": "cpu", "train": {"batch_size": 64}}) == "batch_size=64"

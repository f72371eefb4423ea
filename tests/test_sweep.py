"""The study's rows as presets, the sweep that trains them (records, skips, resumes, copies), the report
that renders any run records, and the results page kept in step with results/."""
import json
import math
import statistics
from dataclasses import asdict
from pathlib import Path

import pytest

from poorvit import get_config, get_train_config
from poorvit.__main__ import main
from poorvit.config import TrainConfig, ViTConfig
from poorvit.data import load_cifar10
from poorvit.runs import run_key
from poorvit.report import identify, markdown, summarize, update_page
from poorvit.study import ACCURACY
from poorvit.sweep import (ROWS, SWEEPS, kv_heads_like, baseline_configs, config_diff, row_configs, sweep,
                           torchrun_command)
from poorvit.train import train

ROOT = Path(__file__).resolve().parents[1]


def test_every_row_the_study_reports_has_a_preset():
    assert set(ACCURACY) <= set(ROWS) and SWEEPS["table"] == [n for n in ROWS if n in ACCURACY]
    assert SWEEPS["study"] == list(ROWS)
    for name in ("gqa", "mqa", "cls2", "cls4", "cls8", "sincos"):     # described by the study without a number
        assert name in ROWS


@pytest.mark.parametrize("name", list(ROWS))
def test_each_row_differs_from_the_paper_baseline_in_exactly_the_fields_it_names(name):
    base, cfgs = baseline_configs("paper"), row_configs(name, "paper")
    row = ROWS[name]
    named = {**row.model, **row.train}
    diff = config_diff(base, cfgs)
    assert {k: v[1] for k, v in diff.items()} == {k: v for k, v in named.items()
                                                 if getattr(base[0] if k in row.model else base[1], k) != v}
    if name == "adamw_bs256":       # the optimizer table's own reference: AdamW at batch 256 IS the baseline recipe
        assert diff == {}
    elif name != "baseline":
        assert set(diff) == row.fields, name


def test_rows_translate_onto_a_smaller_model_keeping_their_meaning():
    smoke = baseline_configs("smoke")
    paper_m, smoke_m = get_config("paper"), smoke[0]
    for name, row in ROWS.items():
        m, t = row_configs(name, "smoke")          # every row is a valid config at smoke scale
        extra = set(config_diff(smoke, (m, t))) - row.fields
        assert extra <= {"lowrank_dim"}, (name, extra)
        if row.model.get("lowrank"):
            assert m.lowrank_dim == round(paper_m.lowrank_dim * smoke_m.n_embd / paper_m.n_embd) < m.n_embd
    assert row_configs("gqa", "smoke")[0].attention_kind == "GQA"
    assert row_configs("mqa", "smoke")[0].attention_kind == "MQA"
    assert row_configs("lion_bs1024", "smoke")[1].batch_size == 4 * smoke[1].batch_size
    assert row_configs("lion_bs1024", "smoke")[1].optimizer == "lion"
    # the augmentation rows are the baseline where the recipe has no augmentation to remove
    plain = get_train_config("smoke", autoaugment=False, mixup_alpha=0.0, cutmix_alpha=0.0)
    assert row_configs("no_mixup", "smoke", train_cfg=plain) == baseline_configs("smoke", train_cfg=plain)


@pytest.mark.parametrize("n_kv, n_head, want", [(4, 4, 2), (4, 8, 2), (4, 6, 2), (4, 12, 4), (1, 4, 1), (12, 4, 4),
                                                (4, 2, 1), (6, 4, 2)])
def test_kv_heads_keep_the_kind_of_attention(n_kv, n_head, want):
    assert kv_heads_like(n_kv, 12, n_head) == want


def test_torchrun_command_for_several_gpus():
    argv = ["sweep", "study", "--scale", "paper", "--seeds", "3", "--out", "runs/"]
    assert torchrun_command(argv, 1, env={}) is None and torchrun_command(argv, 0, env={}) is None
    cmd = torchrun_command(argv, 4, env={})
    assert cmd[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4", "-m"]
    assert cmd[6:] == ["poorvit", *argv]
    assert torchrun_command(argv, 4, env={"WORLD_SIZE": "4"}) is None          # already under torchrun
    assert torchrun_command(argv + ["--no-torchrun"], 4, env={}) is None


# ---- the sweep on a micro model: seconds per run -------------------------------------------------------

TINY = dict(epochs=2, batch_size=64, lr=2e-3, warmup_epochs=0.2, train_subset=256, test_subset=100)


class Interrupt(Exception):
    pass


def test_sweep_writes_records_copies_skips_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("POORVIT_RUNS", str(tmp_path / "cache"))
    data = load_cifar10()
    model_cfg, train_cfg = get_config("micro"), get_train_config("smoke", **TINY)
    out = tmp_path / "runs"
    rows = ["baseline", "mqa", "adamw_bs256"]         # the last one is the baseline recipe: nothing to train

    # a chapter trained the baseline already (into the run cache): the sweep copies it
    train(*baseline_configs("smoke", 0, model_cfg, train_cfg), data, progress=None)
    epochs_seen = []

    def stop_after_one_epoch(row):
        epochs_seen.append(row["epoch"])
        raise Interrupt

    with pytest.raises(Interrupt):          # interrupted during the first epoch of "mqa"
        sweep(rows, "smoke", 1, out, data, "cpu", model_cfg, train_cfg, callbacks=[stop_after_one_epoch])
    assert epochs_seen == [1]
    folders = sorted(p.name for p in out.iterdir())
    assert len(folders) == 2 and folders[0].startswith("baseline-smoke-s0-") and folders[1].startswith("mqa-smoke-s0-")
    assert (out / folders[1] / "checkpoint.pt").exists() and not (out / folders[1] / "record.json").exists()

    assert "baseline (seed 0): copied from" in capsys.readouterr().out
    results = sweep(rows, "smoke", 1, out, data, "cpu", model_cfg, train_cfg)
    assert [r["status"] for r in results] == ["done", "resumed", "same as baseline"]
    assert "resuming" in capsys.readouterr().out
    rec = json.loads((out / folders[1] / "record.json").read_text())
    assert rec["sweep"]["row"] == "mqa" and rec["epochs_run"] == 2 and rec["config"]["n_kv_head"] == 1
    assert [h["epoch"] for h in rec["history"]] == [1, 2]
    assert json.loads((out / folders[0] / "record.json").read_text())["sweep"]["row"] == "baseline"

    # the same sweep from the command line: nothing left to train
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    assert main(["sweep", "--rows", ",".join(rows), "--scale", "smoke", "--preset", "micro", *sets,
                 "--out", str(out), "--device", "cpu"]) == 0
    said = capsys.readouterr().out
    assert "3 runs (2 done, 1 same as baseline)" in said

    # a second seed of one row: the report averages over seeds
    results = sweep(["mqa"], "smoke", [1], out, data, "cpu", model_cfg, train_cfg, progress=None)
    assert [r["status"] for r in results] == ["trained"] and "-s1-" in results[0]["folder"].name
    summary = {r["row"]: r for r in summarize([json.loads(p.read_text()) for p in out.glob("*/record.json")])}
    assert summary["mqa"]["n"] == 2 and summary["baseline"]["n"] == 1 and summary["mqa"]["delta"] == pytest.approx(
        summary["mqa"]["mean"] - summary["baseline"]["mean"])


# ---- the report, on records it did not write ------------------------------------------------------------

def fake_record(model_cfg: ViTConfig, train_cfg: TrainConfig, acc: float, **extra) -> dict:
    """A record as `train()` writes it (the fields the report reads), without training."""
    return {"key": f"k{abs(hash((str(model_cfg), str(train_cfg)))) % 10**8}", "complete": True,
            "config": asdict(model_cfg), "train": asdict(train_cfg), "seed": train_cfg.seed, "scale": train_cfg.scale,
            "dataset": "CIFAR-10", "device": "cuda", "device_name": "NVIDIA A100-SXM4-40GB", "commit": "abc123",
            "params": 2697610, "final_acc": acc, "best_acc": acc, "seconds": 1800.0, "history": [], **extra}


def test_report_renders_records_it_did_not_write(tmp_path, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    recs = {
        "base0": fake_record(*row_configs("baseline", "paper", 0), 0.9350),
        "base1": fake_record(*row_configs("baseline", "paper", 1), 0.9370),
        "q0": fake_record(*row_configs("lowrank_q", "paper", 0), 0.9320),      # no tag: found by its configs
        "lion": fake_record(*row_configs("lion_bs1024", "paper", 0), 0.9200,
                            sweep={"row": "lion_bs1024", "scale": "paper", "seed": 0,      # written by a sweep
                                   "baseline": run_key(*baseline_configs("paper"), "CIFAR-10")}),
        "odd": fake_record(get_config("micro"), get_train_config("smoke", epochs=1), 0.25),   # no row at all
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
    assert f"{ACCURACY['lion_bs1024'] - ACCURACY['adamw_bs256']:+.2f}" in lines["lion_bs1024"]   # its own table
    assert f"{92.0 - mean:+.2f}" in lines["lion_bs1024"]          # a sweep's record and found ones, one baseline
    assert "baseline run" not in summary
    assert "NVIDIA A100-SXM4-40GB" in lines["lowrank_q"] and "unnamed" in lines
    assert "1,800" in lines["baseline"] and "| 2 |" in lines["baseline"]     # seconds per run, seeds
    assert len(per_record.splitlines()) == 2 + len(recs) and per_record.count("`abc123`") == len(recs)


# ---- the results page and the records in results/ -------------------------------------------------------

def test_every_record_in_results_names_what_produced_it():
    files = [p for p in (ROOT / "results").rglob("*") if p.is_file() and p.name != "README.md"]
    assert all(p.suffix == ".json" and p.stat().st_size < 200_000 for p in files), files
    for p in files:
        rec = json.loads(p.read_text())
        if "rows" in rec:                  # a benchmark's table (results/cpu/levers.json): its command and machine
            for key in ("benchmark", "device_name", "dataset", "seed", "commit"):
                assert rec.get(key) is not None, f"{p.name} has no {key}"
            assert rec["rows"] and all("error" in r or math.isfinite(r["test acc %"]) for r in rec["rows"])
            continue
        for key in ("device_name", "scale", "dataset", "seed", "commit", "final_acc", "config", "train"):
            assert rec.get(key) is not None, f"{p.name} has no {key}"
        assert math.isfinite(rec["final_acc"])


def test_results_page_is_in_step_with_rows_and_results_folder():
    stale = update_page(ROOT / "book" / "results.md", ROOT / "results", write=False)
    assert stale == [], f"regenerate with: python -m poorvit report results/ --page book/results.md ({stale})"


def test_report_keeps_runs_against_different_baselines_apart():
    tag = lambda row, family: {"sweep": {"row": row, "scale": "paper", "seed": 0, "baseline": family}}  # noqa: E731
    recs = [fake_record(*row_configs("baseline", "paper"), 0.93, **tag("baseline", "aaaa1111")),
            fake_record(*row_configs("baseline", "paper"), 0.90, **tag("baseline", "bbbb2222")),
            fake_record(*row_configs("mqa", "paper"), 0.92, **tag("mqa", "bbbb2222"))]
    rows = summarize(recs)
    assert [(r["row"], r["n"]) for r in rows] == [("baseline", 1), ("baseline", 1), ("mqa", 1)]
    assert next(r for r in rows if r["row"] == "mqa")["delta"] == pytest.approx(2.0)
    text = markdown(rows)
    assert "baseline run" in text and "`bbbb2222`" in text

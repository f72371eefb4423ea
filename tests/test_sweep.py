"""poorvit.sweep: every row of the study differs from the baseline in exactly the fields it names,
rows translate onto a smaller model keeping their meaning (THE GQA rule, `kv_heads_like`), several
GPUs rerun the command under torchrun, and the sweep records, copies, skips and resumes runs."""
import json

import pytest

from poorvit.cli import main
from poorvit.config import get_config, get_train_config
from poorvit.data import load_cifar10
from poorvit.report import summarize
from poorvit.study import ROWS
from poorvit.sweep import (baseline_configs, config_diff, kv_heads_like, row_configs, sweep,
                           torchrun_command)
from poorvit.train import train


@pytest.mark.parametrize("name", list(ROWS))
def test_each_row_differs_from_the_paper_baseline_in_exactly_the_fields_it_names(name):
    base, cfgs = baseline_configs("paper"), row_configs(name, "paper")
    row = ROWS[name]
    named = {**row.model, **row.train}
    diff = config_diff(base, cfgs)
    changed = {k: v for k, v in named.items()
               if getattr(base[0] if k in row.model else base[1], k) != v}
    assert {k: v[1] for k, v in diff.items()} == changed
    # the optimizer table's own reference: AdamW at batch 256 IS the baseline recipe
    if name == "adamw_bs256":
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
            share = paper_m.lowrank_dim * smoke_m.n_embd / paper_m.n_embd
            assert m.lowrank_dim == round(share) < m.n_embd
    assert row_configs("gqa", "smoke")[0].attention_kind == "GQA"
    assert row_configs("mqa", "smoke")[0].attention_kind == "MQA"
    assert row_configs("lion_bs1024", "smoke")[1].batch_size == 4 * smoke[1].batch_size
    assert row_configs("lion_bs1024", "smoke")[1].optimizer == "lion"
    # the augmentation rows are the baseline where the recipe has no augmentation to remove
    plain = get_train_config("smoke", autoaugment=False, mixup_alpha=0.0, cutmix_alpha=0.0)
    assert (row_configs("no_mixup", "smoke", train_cfg=plain)
            == baseline_configs("smoke", train_cfg=plain))


@pytest.mark.parametrize("n_kv, n_head, want", [(4, 4, 2), (4, 8, 2), (4, 6, 2), (4, 12, 4),
                                                (1, 4, 1), (12, 4, 4), (4, 2, 1), (6, 4, 2)])
def test_kv_heads_keep_the_kind_of_attention(n_kv, n_head, want):
    assert kv_heads_like(n_kv, 12, n_head) == want


def test_torchrun_command_for_several_gpus():
    argv = ["sweep", "study", "--scale", "paper", "--seeds", "3", "--out", "runs/"]
    assert torchrun_command(argv, 1, env={}) is None and torchrun_command(argv, 0, env={}) is None
    cmd = torchrun_command(argv, 4, env={})
    assert cmd[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4", "-m"]
    assert cmd[6:] == ["poorvit", *argv]
    assert torchrun_command(argv, 4, env={"WORLD_SIZE": "4"}) is None       # already under torchrun
    assert torchrun_command(argv + ["--no-torchrun"], 4, env={}) is None


# ---- the sweep on a micro model: seconds per run ------------------------------------------------

TINY = dict(epochs=2, batch_size=64, lr=2e-3, warmup_epochs=0.2, train_subset=256, test_subset=100)


class Interrupt(Exception):
    pass


def test_sweep_writes_records_copies_skips_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("POORVIT_RUNS", str(tmp_path / "cache"))
    data = load_cifar10()
    model_cfg, train_cfg = get_config("micro"), get_train_config("smoke", **TINY)
    out = tmp_path / "runs"
    # the last one is the baseline recipe: nothing to train
    rows = ["baseline", "mqa", "adamw_bs256"]

    # a chapter trained the baseline already (into the run cache): the sweep copies it
    train(*baseline_configs("smoke", 0, model_cfg, train_cfg), data, progress=None)
    epochs_seen = []

    def stop_after_one_epoch(row):
        epochs_seen.append(row["epoch"])
        raise Interrupt

    with pytest.raises(Interrupt):          # interrupted during the first epoch of "mqa"
        sweep(rows, "smoke", 1, out, data, "cpu", model_cfg, train_cfg,
              callbacks=[stop_after_one_epoch])
    assert epochs_seen == [1]
    folders = sorted(p.name for p in out.iterdir())
    assert len(folders) == 2 and folders[0].startswith("baseline-smoke-s0-")
    assert folders[1].startswith("mqa-smoke-s0-")
    assert (out / folders[1] / "checkpoint.pt").exists()
    assert not (out / folders[1] / "record.json").exists()

    assert "baseline (seed 0): copied from" in capsys.readouterr().out
    results = sweep(rows, "smoke", 1, out, data, "cpu", model_cfg, train_cfg)
    assert [r["status"] for r in results] == ["done", "resumed", "same as baseline"]
    assert "resuming" in capsys.readouterr().out
    rec = json.loads((out / folders[1] / "record.json").read_text())
    assert rec["sweep"]["row"] == "mqa" and rec["epochs_run"] == 2
    assert rec["config"]["n_kv_head"] == 1
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
    records = [json.loads(p.read_text()) for p in out.glob("*/record.json")]
    summary = {r["row"]: r for r in summarize(records)}
    assert summary["mqa"]["n"] == 2 and summary["baseline"]["n"] == 1
    assert summary["mqa"]["delta"] == pytest.approx(
        summary["mqa"]["mean"] - summary["baseline"]["mean"])



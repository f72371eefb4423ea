"""poorvit.runs: one record reader. `find_runs` and `load_records` read the same files the same
way (broken files skipped), and `load_records` flattens a results folder into rows."""
import json

from poorvit.runs import find_runs, is_record, load_record, load_records, with_defaults

RECORD = {"complete": True, "final_acc": 0.5, "seed": 1, "steps": 100, "seconds": 600.4,
          "params": 9, "config": {"n_embd": 96, "n_layer": 4},
          "device_name": "CPU (x86_64, 2 threads)",
          "train": {"minutes": 10, "batch_size": 500, "lr": 1e-3}}


def test_load_records_reads_lists_dicts_and_rows_and_skips_broken_files(tmp_path):
    assert load_records(tmp_path / "missing") == ([], "")
    (tmp_path / "a.json").write_text(json.dumps({
        "lever": "threads", "images_per_s": 900.0, "load": [1.5, 1.2, 1.0],
        "history": list(range(20)), "config": {"n_embd": 128}}))
    (tmp_path / "b.json").write_text(json.dumps([{"lever": "bf16"}, {"lever": "compile"}]))
    (tmp_path / "c.json").write_text(json.dumps({"device_name": "CPU",
                                                 "rows": [{"lever": "batch"}]}))
    (tmp_path / "d.json").write_text("{not json")
    (tmp_path / "e.json").write_text(json.dumps(RECORD))
    (tmp_path / "README.md").write_text("How these were measured.")
    rows, readme = load_records(tmp_path)
    assert [r["lever"] for r in rows] == [
        "threads", "bf16", "compile", "batch",
        "a run: n_embd=96, batch_size=500, lr=0.001; 10 minutes, seed 1, 2 threads"]
    assert (rows[-1]["test acc %"], rows[-1]["epochs"], rows[-1]["wall s"]) == (50.0, 1.0, 600.4)
    assert "history" not in rows[0] and "config" not in rows[0] and rows[0]["file"] == "a.json"
    assert rows[0]["load"] == "1.5 1.2 1.0"
    assert readme == "How these were measured."


def test_find_runs_and_load_record_agree_on_what_a_record_is(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "record.json").write_text(json.dumps(RECORD))
    (tmp_path / "loose.json").write_text(json.dumps({**RECORD, "seed": 2}))
    (tmp_path / "half.json").write_text(json.dumps({**RECORD, "complete": False}))
    (tmp_path / "broken.json").write_text("{")
    found = find_runs(tmp_path)
    assert [r["seed"] for r in found] == [2, 1] and all(is_record(r) for r in found)
    assert found[1]["_path"] == str(tmp_path / "run" / "record.json")
    # a record lacking the config fields added since is read with their defaults
    assert load_record(tmp_path / "run") == with_defaults(json.loads(json.dumps(RECORD)))
    assert not is_record(load_record(tmp_path / "half.json")) and not is_record([RECORD])



def test_the_commit_is_dirty_only_when_the_package_changed(tmp_path, monkeypatch):
    """A record's commit says `-dirty` for a changed package file, not for an executed notebook
    (CI executes the notebooks in place, then trains: their records stay at a clean commit)."""
    import subprocess

    import poorvit.runs as runs_mod
    repo = tmp_path / "repo"
    (repo / "poorvit").mkdir(parents=True)
    (repo / "poorvit" / "runs.py").write_text("# the package\n")
    (repo / "notebook.ipynb").write_text("{}")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    monkeypatch.setattr(runs_mod, "__file__", str(repo / "poorvit" / "runs.py"))
    clean = runs_mod.git_commit()
    assert clean and len(clean) == 12 and not clean.endswith("-dirty")
    (repo / "notebook.ipynb").write_text('{"cells": []}')
    assert runs_mod.git_commit() == clean
    (repo / "poorvit" / "runs.py").write_text("# changed\n")
    assert runs_mod.git_commit() == clean + "-dirty"

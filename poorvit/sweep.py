"""The sweep that trains the study's rows at a scale: `python -m poorvit sweep study`.

Every row of Wu's ablations (arXiv 2501.06220) is a `study.Row`: the fields it changes in the
baseline model (`ViTConfig`) and recipe (`TrainConfig`), and nothing else; `study.ROWS` holds them
all, in the study's order. This module puts a row onto a scale's baseline and trains it:

    row_configs("lowrank_q", "paper")     # (ViTConfig with lowrank="q", the paper TrainConfig)
    sweep("study", scale="smoke", seeds=2, out="runs")   # every row twice, skips finished runs

At the `demo` and `paper` scales a row applies to the study's model as written. On a smaller model
(the `smoke` scale, or any baseline passed in) a row is translated so that it means the same thing:
the low-rank bottleneck keeps its share of the width (64 of 192 channels is a third), a GQA row
keeps its kind (`kv_heads_like`: THE rule for "a GQA of this model", chapter 6 uses it too), and a
batch size keeps its ratio to the baseline's batch. A row whose config equals the baseline's at a
scale (the augmentation rows at `smoke`, which trains without them) measures nothing there, and
the sweep says so instead of training it.

Runs go to `OUT/<row>-<scale>-s<seed>-<hash>/` (the hash of the configs and dataset,
`runs.run_key`). A folder with a record is done and skipped; a folder with a checkpoint is resumed;
a finished run with the same configs anywhere in `OUT` or in the run cache (`runs.runs_root()`,
where the chapters train) is copied, not retrained. Each record names its row under
`record["sweep"]`, for `poorvit.report`.

On a machine with several GPUs the command restarts itself under `torch.distributed.run`
(`torchrun_command`: one process per GPU); each run is then data-parallel across them, and the rows
run one after another.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

from .config import (TrainConfig, ViTConfig, get_config, get_train_config, scale_model,
                     with_overrides)
from .ledger import note
from .runs import is_record, load_record, run_key, runs_root, write_json
from .study import ROWS, SWEEPS, Row


# ---- rows at a scale ---------------------------------------------------------------------------

def kv_heads_like(n_kv_head: int, paper_heads: int, n_head: int) -> int:
    """Key/value heads for `n_head` query heads that keep the kind of `n_kv_head` KV heads for
    `paper_heads` query heads: 1 stays MQA, `paper_heads` stays MHA, anything between becomes the
    divisor of `n_head` strictly between 1 and `n_head` whose share of the heads is nearest
    `n_kv_head / paper_heads` (GQA; ties: the fewer heads); with no such divisor, the nearest
    divisor overall. THE GQA rule of the package (the sweep's rows, chapter 6's variants).

    kv_heads_like(4, 12, 12) == 4;  kv_heads_like(4, 12, 4) == 2;  kv_heads_like(1, 12, 6) == 1
    """
    if n_kv_head in (1, paper_heads):
        return 1 if n_kv_head == 1 else n_head
    divisors = [d for d in range(1, n_head + 1) if n_head % d == 0]
    inner = [d for d in divisors if 1 < d < n_head] or divisors
    share = n_kv_head / paper_heads
    return min(inner, key=lambda d: (abs(d / n_head - share), d))


def translate(row: Row, model_cfg: ViTConfig, train_cfg: TrainConfig) -> tuple[dict, dict]:
    """A row's (model, train) overrides for a baseline other than the study's: sizes that depend on
    the width, the heads or the batch keep their proportion to the study's baseline (see the module
    doc)."""
    m, t = dict(row.model), dict(row.train)
    paper_m, paper_t = get_config("paper"), get_train_config("paper")
    if m.get("lowrank") and "lowrank_dim" not in m and model_cfg.n_embd != paper_m.n_embd:
        m["lowrank_dim"] = max(1, round(paper_m.lowrank_dim * model_cfg.n_embd / paper_m.n_embd))
    if m.get("n_kv_head") is not None and model_cfg.n_head != paper_m.n_head:
        m["n_kv_head"] = kv_heads_like(m["n_kv_head"], paper_m.n_head, model_cfg.n_head)
    if "batch_size" in t and train_cfg.batch_size != paper_t.batch_size:
        t["batch_size"] = max(1, round(t["batch_size"] * train_cfg.batch_size / paper_t.batch_size))
    return m, t


def baseline_configs(scale: str, seed: int = 0, model_cfg: ViTConfig | None = None,
                     train_cfg: TrainConfig | None = None) -> tuple[ViTConfig, TrainConfig]:
    """The baseline a sweep starts from: the scale's model and recipe (or the ones given), at
    `seed`."""
    model_cfg = model_cfg or scale_model(scale)
    train_cfg = with_overrides(train_cfg or get_train_config(scale), seed=seed, scale=scale)
    return model_cfg, train_cfg


def row_configs(name: str, scale: str = "paper", seed: int = 0, model_cfg: ViTConfig | None = None,
                train_cfg: TrainConfig | None = None) -> tuple[ViTConfig, TrainConfig]:
    """The configs of row `name` at `scale` (and `seed`), on the scale's baseline or the one
    given."""
    if name not in ROWS:
        raise ValueError(f"no study row {name!r}; rows: {', '.join(ROWS)}")
    base_m, base_t = baseline_configs(scale, seed, model_cfg, train_cfg)
    m, t = translate(ROWS[name], base_m, base_t)
    return with_overrides(base_m, **m), with_overrides(base_t, **t)


def config_diff(a: tuple[ViTConfig, TrainConfig], b: tuple[ViTConfig, TrainConfig]) -> dict:
    """{field: (value in a, value in b)} over both configs, for the fields where they differ."""
    out = {}
    for x, y in zip(a, b):
        dx, dy = asdict(x), asdict(y)
        out.update({k: (dx[k], dy[k]) for k in dx if dx[k] != dy[k]})
    return out


# ---- the sweep ---------------------------------------------------------------------------------

def run_folder(out: Path, name: str, scale: str, seed: int, key: str) -> Path:
    """The folder of one run of a sweep: `out/<row>-<scale>-s<seed>-<key>`."""
    return Path(out) / f"{name}-{scale}-s{seed}-{key}"


def _finished(folder: Path, key: str) -> bool:
    """Whether `folder` holds the finished run `key`: its record and its final weights."""
    try:
        rec = load_record(folder)
    except (OSError, ValueError):
        return False
    return is_record(rec) and rec.get("key") == key and (folder / "model.pt").exists()


def _find_finished(key: str, out: Path) -> Path | None:
    """A finished run with this key elsewhere: another row's folder in `out`, or the run cache."""
    candidates = sorted(Path(out).glob(f"*-{key}")) + [runs_root() / key]
    return next((p for p in candidates if _finished(p, key)), None)


def _tag(folder: Path, info: dict) -> None:
    """Write the sweep's row information into a run's record (idempotent)."""
    rec = json.loads((folder / "record.json").read_text())
    if rec.get("sweep") != info:
        rec["sweep"] = info
        write_json(rec, folder / "record.json")


def _barrier() -> None:
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _row_names(rows: str | list[str]) -> list[str]:
    """A sweep name (`study.SWEEPS`), one row name or a list of them -> row names; raises
    `ValueError` naming the rows and sweeps for an unknown one."""
    if isinstance(rows, str):
        names = SWEEPS[rows] if rows in SWEEPS else [rows]
    else:
        names = list(rows)
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        raise ValueError(f"unknown row(s) {', '.join(unknown)}; rows: {', '.join(ROWS)}; "
                         f"sweeps: {', '.join(SWEEPS)}")
    return names


def _run_row(name: str, seed: int, scale: str, cfgs: tuple, key: str, out: Path, data,
             device, callbacks, progress, rank: int) -> tuple[str, Path | None]:
    """Bring one (row, seed) run to a finished record in its folder: "done" (already there),
    "copied" (from a finished run with the same key), or "resumed"/"trained". Returns (status,
    the folder copied from)."""
    from .train import train

    folder = run_folder(out, name, scale, seed, key)
    if _finished(folder, key):
        return "done", None
    source = _find_finished(key, out)
    if source is not None:
        if rank == 0:
            folder.mkdir(parents=True, exist_ok=True)
            for f in ("model.pt", "record.json"):
                shutil.copy2(source / f, folder / f)
            (folder / "checkpoint.pt").unlink(missing_ok=True)
        return "copied", source
    status = "resumed" if (folder / "checkpoint.pt").exists() else "trained"
    if rank == 0 and progress:
        print(f"---- {name} (seed {seed}, scale {scale}): "
              f"{ROWS[name].change() or 'the baseline'} -> {folder}", flush=True)
    train(*cfgs, data, callbacks, out=folder, resume=True, cache=True, device=device,
          progress=progress)
    return status, None


def sweep(rows: str | list[str] = "study", scale: str | None = None, seeds: int | list[int] = 1,
          out: str | os.PathLike = "runs", data=None, device=None,
          model_cfg: ViTConfig | None = None, train_cfg: TrainConfig | None = None,
          callbacks=(), progress: str | None = "line") -> list[dict]:
    """Train every row of `rows` (a sweep name or a list of row names) at `scale` for each seed.

    seeds: a count (seeds 0 .. n-1) or a list. model_cfg/train_cfg: a baseline other than the
    scale's (rows are translated onto it). Returns one dict per (row, seed): row, seed, folder,
    status ("done" already, "copied" from another run, "resumed", "trained", "same as baseline"),
    final_acc. Raises `ValueError` for an unknown row or sweep.
    """
    from .config import default_scale
    from .data import load_cifar10
    from .device import init_distributed

    names = _row_names(rows)
    scale = scale or default_scale()
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    out = Path(out)
    data = data if data is not None else load_cifar10()
    rank = init_distributed(device)[0]
    # names the baseline, any seed
    family = run_key(*baseline_configs(scale, 0, model_cfg, train_cfg), data.label)
    results = []
    for seed in seed_list:
        base_key = run_key(*baseline_configs(scale, seed, model_cfg, train_cfg), data.label)
        for name in names:
            cfgs = row_configs(name, scale, seed, model_cfg, train_cfg)
            key = run_key(*cfgs, data.label)
            folder = run_folder(out, name, scale, seed, key)
            entry = {"row": name, "seed": seed, "folder": folder, "final_acc": None}
            results.append(entry)
            _barrier()
            if name != "baseline" and key == base_key:
                entry["status"] = "same as baseline"
                if rank == 0 and progress:
                    print(f"{name} (seed {seed}): its config equals the baseline's at scale "
                          f"{scale}; nothing to measure here, skipped")
                continue
            entry["status"], source = _run_row(name, seed, scale, cfgs, key, out, data, device,
                                               callbacks, progress, rank)
            _barrier()
            if rank == 0:
                _tag(folder, {"row": name, "scale": scale, "seed": seed, "baseline": family})
            rec = load_record(folder)
            entry["final_acc"] = rec["final_acc"]
            if rank == 0:       # a chapter's training, for the ledger (POORVIT_CHAPTER set)
                note(rec, cached=entry["status"] in ("done", "copied"))
            if rank == 0 and progress and entry["status"] in ("done", "copied"):
                how = "already done" if entry["status"] == "done" else f"copied from {source}"
                print(f"{name} (seed {seed}): {how}: final test acc {rec['final_acc']:.4f}")
    return results


# ---- several GPUs ------------------------------------------------------------------------------

def torchrun_command(argv: list[str], n_gpus: int, env: dict | None = None) -> list[str] | None:
    """The command that reruns `python -m poorvit <argv>` with one process per GPU, or None where it
    should run as is (one GPU or none, already under torchrun, or `--no-torchrun`)."""
    env = os.environ if env is None else env
    if n_gpus < 2 or "WORLD_SIZE" in env or "--no-torchrun" in argv:
        return None
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={n_gpus}", "-m", "poorvit", *argv]


__all__ = ["kv_heads_like", "translate", "baseline_configs", "row_configs", "config_diff",
           "run_folder", "sweep", "torchrun_command"]

"""The study's table as named presets, and the sweep that trains them: `python -m poorvit sweep study`.

Every row of Wu's ablations (arXiv 2501.06220) is a `Row`: the fields it changes in the baseline model
(`ViTConfig`) and recipe (`TrainConfig`), and nothing else. `ROWS` holds them all, in the study's order:

    row_configs("lowrank_q", "paper")      # (ViTConfig with lowrank="q", TrainConfig of the paper scale)
    sweep("study", scale="smoke", seeds=2, out="runs")    # trains every row twice, skips finished runs

At the `demo` and `paper` scales a row applies to the study's model as written. On a smaller model
(the `smoke` scale, or any baseline passed in) a row is translated so that it means the same thing:
the low-rank bottleneck keeps its share of the width (64 of 192 channels is a third), a GQA row keeps
its kind (a divisor of `n_head` strictly between 1 and `n_head`, nearest to the study's share of
key/value heads), and a batch size keeps its ratio to the baseline's batch. A row whose config equals
the baseline's at a scale (the augmentation rows at `smoke`, which trains without them) measures
nothing there, and the sweep says so instead of training it.

Runs go to `OUT/<row>-<scale>-s<seed>-<hash>/` (the hash of the configs and dataset, `runs.run_key`).
A folder with a record is done and skipped; a folder with a checkpoint is resumed; a finished run with
the same configs anywhere in `OUT` or in the run cache (`runs.runs_root()`, where the chapters train)
is copied, not retrained. Each record names its row under `record["sweep"]`, for `poorvit.report`.

On a machine with several GPUs the command restarts itself under `torch.distributed.run` (one process
per GPU); each run is then data-parallel across them, and the rows run one after another.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .config import (SCALES, TrainConfig, ViTConfig, get_config, get_train_config, parse_overrides, scale_model,
                     with_overrides)
from .runs import run_key, runs_root, write_json
from .study import ACCURACY


@dataclass(frozen=True)
class Row:
    """One row of the study: what it changes in the baseline model and recipe, and where it is taught."""

    title: str                                   # the row as the study names it
    model: dict = field(default_factory=dict)    # ViTConfig overrides
    train: dict = field(default_factory=dict)    # TrainConfig overrides
    reference: str = "baseline"                  # the row the study compares it with
    chapter: str = ""                            # the chapter of the course that explains it

    @property
    def fields(self) -> set[str]:
        """The fields the row names."""
        return set(self.model) | set(self.train)

    def change(self) -> str:
        """The row's overrides as `field=value` text ("" for the baseline)."""
        return ", ".join(f"{k}={v!r}" for k, v in {**self.model, **self.train}.items())


_AUG, _OPT, _ATT, _TOK, _INIT = ("04_augmentation", "05_optimizers", "06_attention_variants", "01_images_to_tokens",
                                 "07_whitening")
ROWS: dict[str, Row] = {
    "baseline": Row("Baseline (the full recipe)", chapter="03_first_vit"),
    "no_autoaugment": Row("minus AutoAugment", train=dict(autoaugment=False), chapter=_AUG),
    "no_mixup": Row("minus Mixup", train=dict(mixup_alpha=0.0), chapter=_AUG),
    "no_cutmix": Row("minus CutMix", train=dict(cutmix_alpha=0.0), chapter=_AUG),
    "sincos": Row("2-D sin-cos positions instead of learned ones", model=dict(pos_embed="sincos"), chapter=_TOK),
    "whitening": Row("patch embedding initialised by whitening", train=dict(whiten="trainable"), chapter=_INIT),
    "lowrank_q": Row("low-rank q (rank 64)", model=dict(lowrank="q"), chapter=_ATT),
    "lowrank_k": Row("low-rank k (rank 64)", model=dict(lowrank="k"), chapter=_ATT),
    "lowrank_kv": Row("low-rank k and v (rank 64)", model=dict(lowrank="kv"), chapter=_ATT),
    "lowrank_qk": Row("low-rank q and k (rank 64)", model=dict(lowrank="qk"), chapter=_ATT),
    "lowrank_qkv": Row("low-rank q, k and v (rank 64)", model=dict(lowrank="qkv"), chapter=_ATT),
    # the optimizer table: its rows are compared with its own AdamW row at batch 256 (= the baseline recipe)
    "adamw_bs256": Row("AdamW, batch 256", train=dict(optimizer="adamw", batch_size=256), chapter=_OPT),
    "adamw_bs1024": Row("AdamW, batch 1024", train=dict(batch_size=1024), reference="adamw_bs256", chapter=_OPT),
    "lion_bs1024": Row("Lion, batch 1024", train=dict(optimizer="lion", batch_size=1024), reference="adamw_bs256",
                       chapter=_OPT),
    # described by the study without numbers: key/value heads shared at the same width, several class tokens
    "gqa": Row("GQA: 4 key/value heads for 12 query heads", model=dict(n_kv_head=4), chapter=_ATT),
    "mqa": Row("MQA: 1 key/value head", model=dict(n_kv_head=1), chapter=_ATT),
    "cls2": Row("2 class tokens", model=dict(n_cls=2), chapter="08_class_tokens"),
    "cls4": Row("4 class tokens", model=dict(n_cls=4), chapter="08_class_tokens"),
    "cls8": Row("8 class tokens", model=dict(n_cls=8), chapter="08_class_tokens"),
}

# named sweeps: `python -m poorvit sweep NAME`
SWEEPS: dict[str, list[str]] = {
    "study": list(ROWS),                                          # every row
    "table": [name for name in ROWS if name in ACCURACY],         # the rows the study gives a number for
}


def study_accuracy(name: str) -> float | None:
    """The study's reported test accuracy (%) for a row, or None where it reports none."""
    return ACCURACY.get(name)


# ---- rows at a scale -------------------------------------------------------------------------------------

def kv_heads_like(n_kv_head: int, paper_heads: int, n_head: int) -> int:
    """Key/value heads for `n_head` query heads that keep a row's kind: 1 stays MQA, `paper_heads` stays
    MHA, anything between becomes the divisor of `n_head` strictly between 1 and `n_head` whose share of
    the heads is nearest the study's (GQA); with no such divisor, the nearest divisor overall."""
    if n_kv_head in (1, paper_heads):
        return 1 if n_kv_head == 1 else n_head
    divisors = [d for d in range(1, n_head + 1) if n_head % d == 0]
    inner = [d for d in divisors if 1 < d < n_head] or divisors
    share = n_kv_head / paper_heads
    return min(inner, key=lambda d: (abs(d / n_head - share), d))


def translate(row: Row, model_cfg: ViTConfig, train_cfg: TrainConfig) -> tuple[dict, dict]:
    """A row's (model, train) overrides for a baseline other than the study's: sizes that depend on the
    width, the heads or the batch keep their proportion to the study's baseline (see the module doc)."""
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
    """The baseline a sweep starts from: the scale's model and recipe (or the ones given), at `seed`."""
    model_cfg = model_cfg or scale_model(scale)
    train_cfg = with_overrides(train_cfg or get_train_config(scale), seed=seed, scale=scale)
    return model_cfg, train_cfg


def row_configs(name: str, scale: str = "paper", seed: int = 0, model_cfg: ViTConfig | None = None,
                train_cfg: TrainConfig | None = None) -> tuple[ViTConfig, TrainConfig]:
    """The configs of row `name` at `scale` (and `seed`), on the scale's baseline or the one given."""
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


# ---- the sweep -------------------------------------------------------------------------------------------

def run_folder(out: Path, name: str, scale: str, seed: int, key: str) -> Path:
    return Path(out) / f"{name}-{scale}-s{seed}-{key}"


def _finished(folder: Path, key: str) -> bool:
    try:
        rec = json.loads((folder / "record.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return rec.get("complete") and rec.get("key") == key and (folder / "model.pt").exists()


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


def sweep(rows: str | list[str] = "study", scale: str | None = None, seeds: int | list[int] = 1,
          out: str | os.PathLike = "runs", data=None, device=None, model_cfg: ViTConfig | None = None,
          train_cfg: TrainConfig | None = None, callbacks=(), progress: str | None = "line") -> list[dict]:
    """Train every row of `rows` (a sweep name or a list of row names) at `scale` for each seed.

    seeds: a count (seeds 0 .. N-1) or a list. model_cfg/train_cfg: a baseline other than the scale's
    (rows are translated onto it). Returns one dict per (row, seed): row, seed, folder, status
    ("done" already, "copied" from another run, "resumed", "trained", "same as baseline"), final_acc.
    """
    from .config import default_scale
    from .data import load_cifar10
    from .train import _distributed, train

    names = SWEEPS[rows] if isinstance(rows, str) and rows in SWEEPS else [rows] if isinstance(rows, str) else rows
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        raise ValueError(f"unknown row(s) {', '.join(unknown)}; rows: {', '.join(ROWS)}; sweeps: {', '.join(SWEEPS)}")
    scale = scale or default_scale()
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    out = Path(out)
    data = data if data is not None else load_cifar10()
    rank = _distributed()[0]
    family = run_key(*baseline_configs(scale, 0, model_cfg, train_cfg), data.label)  # names the baseline, any seed
    results = []
    for seed in seed_list:
        base_key = run_key(*baseline_configs(scale, seed, model_cfg, train_cfg), data.label)
        for name in names:
            cfgs = row_configs(name, scale, seed, model_cfg, train_cfg)
            key = run_key(*cfgs, data.label)
            folder = run_folder(out, name, scale, seed, key)
            info = {"row": name, "scale": scale, "seed": seed, "baseline": family}
            entry = {"row": name, "seed": seed, "folder": folder, "final_acc": None}
            _barrier()
            if name != "baseline" and key == base_key:
                entry["status"] = "same as baseline"
                if rank == 0 and progress:
                    print(f"{name} (seed {seed}): its config equals the baseline's at scale {scale}; nothing to "
                          f"measure here, skipped")
                results.append(entry)
                continue
            source = None if _finished(folder, key) else _find_finished(key, out)
            if _finished(folder, key):
                entry["status"] = "done"
            elif source is not None:
                entry["status"] = "copied"
                if rank == 0:
                    folder.mkdir(parents=True, exist_ok=True)
                    for f in ("model.pt", "record.json"):
                        shutil.copy2(source / f, folder / f)
                    (folder / "checkpoint.pt").unlink(missing_ok=True)
            else:
                entry["status"] = "resumed" if (folder / "checkpoint.pt").exists() else "trained"
                if rank == 0 and progress:
                    print(f"---- {name} (seed {seed}, scale {scale}): {ROWS[name].change() or 'the baseline'}"
                          f" -> {folder}", flush=True)
                train(*cfgs, data, callbacks, out=folder, resume=True, cache=True, device=device, progress=progress)
            _barrier()
            if rank == 0:
                _tag(folder, info)
            rec = json.loads((folder / "record.json").read_text())
            entry["final_acc"] = rec["final_acc"]
            if rank == 0 and progress and entry["status"] in ("done", "copied"):
                how = "already done" if entry["status"] == "done" else f"copied from {source}"
                print(f"{name} (seed {seed}): {how}: final test acc {rec['final_acc']:.4f}")
            results.append(entry)
    return results


# ---- several GPUs ----------------------------------------------------------------------------------------

def torchrun_command(argv: list[str], n_gpus: int, env: dict | None = None) -> list[str] | None:
    """The command that reruns `python -m poorvit <argv>` with one process per GPU, or None where it should
    run as is (one GPU or none, already under torchrun, or `--no-torchrun`)."""
    env = os.environ if env is None else env
    if n_gpus < 2 or "WORLD_SIZE" in env or "--no-torchrun" in argv:
        return None
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n_gpus}",
            "-m", "poorvit", *argv]


# ---- command line ----------------------------------------------------------------------------------------

def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="train the study's rows (presets over the baseline) at a scale, with seeds",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", default="study", choices=list(SWEEPS),
                   help="which rows: study (every row) or table (the rows with a number in the study)")
    p.add_argument("--rows", default=None, help="comma-separated row names instead (e.g. baseline,lowrank_q)")
    p.add_argument("--scale", default=None, choices=list(SCALES),
                   help="smoke, demo or paper (default: POORVIT_SCALE, else demo with CUDA, else smoke)")
    p.add_argument("--seeds", type=int, default=1, help="seeds 0 .. N-1 (default 1)")
    p.add_argument("--out", default="runs", help="folder for the run folders (default: runs)")
    p.add_argument("--preset", default=None, help="a model preset as the baseline instead of the scale's")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a field of the baseline before the rows apply, e.g. epochs=5 (repeatable)")
    p.add_argument("--data", default=None, help="CIFAR-10 folder (default: POORVIT_DATA or ~/.cache/poorvit)")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda if present)")
    p.add_argument("--list", action="store_true", help="print the rows and their configs at the scale, train nothing")
    p.add_argument("--no-torchrun", action="store_true", help="with several GPUs, still run in this one process")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from .config import default_scale
    scale = args.scale or default_scale()
    names = args.rows.split(",") if args.rows else args.name
    model_over, train_over = parse_overrides(args.overrides, ViTConfig, TrainConfig)
    model_cfg = get_config(args.preset, **model_over) if args.preset else scale_model(scale, **model_over)
    train_cfg = get_train_config(scale, **train_over)
    if args.list:
        base = baseline_configs(scale, 0, model_cfg, train_cfg)
        for name in (SWEEPS[names] if isinstance(names, str) else names):
            diff = config_diff(base, row_configs(name, scale, 0, model_cfg, train_cfg))
            print(f"{name:15s} {', '.join(f'{k}={v[1]!r}' for k, v in diff.items()) or '(the baseline)'}")
        return 0
    cmd = torchrun_command(sys.argv[1:], torch.cuda.device_count())
    if cmd:
        print("several GPUs: " + " ".join(cmd), flush=True)
        return subprocess.call(cmd)
    from .data import load_cifar10
    results = sweep(names, scale, args.seeds, args.out, load_cifar10(args.data), args.device, model_cfg, train_cfg)
    counts = {}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    print(f"sweep done: {len(results)} runs ({', '.join(f'{v} {k}' for k, v in counts.items())}) in {args.out}; "
          f"`python -m poorvit report {args.out}` renders them")
    return 0


__all__ = ["Row", "ROWS", "SWEEPS", "study_accuracy", "kv_heads_like", "translate", "baseline_configs", "row_configs", "config_diff",
           "run_folder", "sweep", "torchrun_command"]

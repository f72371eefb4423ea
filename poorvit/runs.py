"""Run records and the run cache: every result says what produced it, and nothing is trained twice.

A run lives in a folder named by a hash of everything that determines it (model config, training
config, dataset), under `$POORVIT_RUNS` (default `~/.cache/poorvit/runs`):

    record.json      config, seed, device, scale, dataset, version, git commit, history, results
    model.pt         the final weights (a plain state dict: load with weights_only=True)
    checkpoint.pt    while training: the last finished epoch, written atomically; removed at the end

Records are read by one reader: `load_record` (one file), `find_runs` (every run record under a
folder) and `load_records` (every measurement in a results folder, a run record as one row) all go
through `_read_json` and `is_record`.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Iterator

import torch
import torch.nn as nn

from .config import TrainConfig, ViTConfig
from .device import get_device

CACHE_VERSION = 1   # bump when a change to training would change the results of an identical config


def runs_root() -> Path:
    """`$POORVIT_RUNS`, else `~/.cache/poorvit/runs` (under `$XDG_CACHE_HOME` when set)."""
    if os.environ.get("POORVIT_RUNS"):
        return Path(os.environ["POORVIT_RUNS"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser()
    return cache / "poorvit" / "runs"


def run_key(model_cfg: ViTConfig, train_cfg: TrainConfig, dataset: str) -> str:
    """A short hash of everything that determines a run's result."""
    return config_hash(asdict(model_cfg), asdict(train_cfg), dataset)


def config_hash(model: dict, train: dict, dataset: str | None) -> str:
    """`run_key` of configs given as dicts (as a run record stores them)."""
    blob = json.dumps({"model": model, "train": train, "dataset": dataset, "v": CACHE_VERSION},
                      sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def git_commit() -> str | None:
    """The commit of the package's checkout, with `-dirty` when the package's own files (the code
    that produced a result) have local changes; executed notebooks, records and data elsewhere in
    the checkout do not count. None outside a git checkout."""
    package = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=5, cwd=package)
        if head.returncode != 0 or not head.stdout.strip():
            return None
        status = subprocess.run(["git", "status", "--porcelain", "--", "."], capture_output=True,
                                text=True, timeout=5, cwd=package)
        dirty = status.returncode == 0 and status.stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves a half-written file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def write_json(obj, path: Path) -> None:
    """`obj` as indented JSON (other values as their str), written atomically like `atomic_save`."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, path)


@dataclass
class Run:
    """A finished (or loaded) training run: its configs, per-epoch history, record and model."""

    model_cfg: ViTConfig
    train_cfg: TrainConfig
    history: list = field(default_factory=list)
    record: dict = field(default_factory=dict)
    model: nn.Module | None = None
    path: Path | None = None
    cached: bool = False

    @property
    def final_acc(self) -> float:
        """Test accuracy on the full test set at the end of training (0..1)."""
        return self.record["final_acc"]

    @property
    def best_acc(self) -> float:
        return self.record["best_acc"]

    def column(self, key: str) -> list:
        """One metric over epochs, e.g. `run.column("test_acc")`."""
        return [row.get(key) for row in self.history]

    def __repr__(self) -> str:
        r = self.record
        return (f"Run({self.model_cfg.attention_kind}, {r.get('params', 0):,} params, "
                f"scale={r.get('scale')}, final_acc={r.get('final_acc', float('nan')):.4f}, "
                f"{r.get('dataset')}, {r.get('device_name')})")


# Config fields added after records were first kept (results/cpu/ predates them): a record that
# lacks one was trained with its default, which keeps the behaviour the code had before the field.
ADDED_FIELDS = {"config": ("norm_eps", "init"),
                "train": ("decay_all", "lion_betas", "augment_impl", "mix_partner", "full_repeats",
                          "whiten_source", "whiten_images")}


def with_defaults(record: dict) -> dict:
    """A run record with the config fields it predates (`ADDED_FIELDS`) filled in with their
    defaults, in place. THE one place where records are brought up to date; other objects pass
    unchanged."""
    if is_record(record):
        for key, cls in (("config", ViTConfig), ("train", TrainConfig)):
            stored = record.get(key)
            if isinstance(stored, dict):
                defaults = {f.name: f.default for f in fields(cls)}
                for name in ADDED_FIELDS[key]:
                    stored.setdefault(name, defaults[name])
    return record


def _read_json(path: Path) -> object | None:
    """The parsed JSON of one file (a run record `with_defaults`), or None if it cannot be read or
    parsed."""
    try:
        return with_defaults(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError):
        return None


def is_record(obj: object) -> bool:
    """Whether a parsed JSON object is a complete run record (as `train()` writes them)."""
    return isinstance(obj, dict) and bool(obj.get("complete")) and "config" in obj


def _json_files(folder: Path, recursive: bool) -> Iterator[tuple[Path, object]]:
    """(path, parsed JSON) of every readable JSON file in `folder` (and below, if `recursive`),
    sorted by path; files that cannot be read or parsed are skipped."""
    for path in sorted(folder.rglob("*.json") if recursive else folder.glob("*.json")):
        obj = _read_json(path)
        if obj is not None:
            yield path, obj


def load_record(path: str | os.PathLike) -> dict:
    """A run record from a run folder or a record JSON file. Raises OSError if it is missing,
    ValueError (a json.JSONDecodeError, one line saying what to do) if it is not JSON."""
    path = Path(path)
    file = path / "record.json" if path.is_dir() else path
    try:
        return with_defaults(json.loads(file.read_text()))
    except json.JSONDecodeError as err:
        raise json.JSONDecodeError(f"{file} is not a run record: delete it, or its run folder, "
                                   f"and run again; not valid JSON: {err.msg}", err.doc,
                                   err.pos) from err


def load_run(path: str | os.PathLike, device: str | torch.device | None = None) -> Run:
    """A finished run from its folder: the record and the model with its final weights (safe
    loading, on `device` (default `device.get_device`), in eval mode)."""
    device = get_device(device)
    from .model import ViT
    path = Path(path)
    record = load_record(path)
    model_cfg, train_cfg = ViTConfig(**record["config"]), TrainConfig(**record["train"])
    model = ViT(model_cfg)
    try:        # weights_only: the file is read as tensors, never as code
        model.load_state_dict(torch.load(path / "model.pt", map_location=device, weights_only=True))
    except (RuntimeError, EOFError, pickle.UnpicklingError) as err:   # corrupt, truncated, foreign
        raise ValueError(f"{path / 'model.pt'} does not hold the weights of this run's model "
                         f"({type(err).__name__}: {(str(err).splitlines() or [''])[0][:120]}); "
                         f"delete the run folder {path} and train again") from err
    return Run(model_cfg, train_cfg, record["history"], record, model.to(device).eval(), path,
               cached=True)


def find_runs(root: str | os.PathLike) -> list[dict]:
    """Every complete run record under `root` (run folders or loose record JSON files), sorted by
    path; each gets `_path` (its file) unless it has one."""
    records = []
    for path, rec in _json_files(Path(root), recursive=True):
        if is_record(rec):
            rec.setdefault("_path", str(path))
            records.append(rec)
    return records


def _record_row(rec: dict) -> dict:
    """A run record as one row of measurements: what it changed against the CPU recipe now (the
    budget aside), its budget, seed and threads; accuracy (%), steps, epochs, params, wall s."""
    from .report import _differences          # report reads runs: imported when needed
    train = rec.get("train", {})
    changes = [c for c in _differences({**rec, "scale": "cpu"}).split(", ")
               if c and not c.startswith("minutes=")]
    threads = [w for w in rec.get("device_name", "").rstrip(")").split(", ")
               if w.endswith("threads")]
    when = [f"{train.get('minutes', 0):g} minutes", f"seed {rec.get('seed')}", *threads]
    return {"lever": f"a run: {', '.join(changes) or 'the recipe as it is now'}; {', '.join(when)}",
            "test acc %": round(100 * rec["final_acc"], 2), "steps": rec.get("steps"),
            "epochs": round(rec.get("steps", 0) * train.get("batch_size", 0) / 50_000, 2),
            "params": rec.get("params"), "wall s": round(rec.get("seconds", 0), 1)}


def load_records(folder: str | os.PathLike | None = None) -> tuple[list[dict], str]:
    """Measured records in a results folder (default: the repository's `results/cpu/`, if this
    package runs from a clone): every JSON file flattened into rows (a run record becomes one row:
    `_record_row`; a list, or a dict's "rows", one row per item; scalars kept, lists of up to 8
    joined by spaces, dicts and longer lists left out), each with its `file`; and the folder's
    README text ("" if none). Returns ([], "") when the folder does not exist, e.g. on Colab."""
    folder = Path(folder) if folder else Path(__file__).resolve().parents[1] / "results" / "cpu"
    if not folder.is_dir():
        return [], ""
    rows = []
    for path, obj in _json_files(folder, recursive=False):
        if is_record(obj) and "final_acc" in obj:
            obj = _record_row(obj)
        items = obj if isinstance(obj, list) else obj.get("rows", [obj]) if isinstance(obj, dict) \
            else []
        for item in items:
            if isinstance(item, dict):
                rows.append({"file": path.name, **{
                    k: " ".join(map(str, v)) if isinstance(v, list) else v for k, v in item.items()
                    if not isinstance(v, dict) and not (isinstance(v, list) and len(v) > 8)}})
    readme = folder / "README.md"
    return rows, readme.read_text() if readme.exists() else ""


# ---- a run folder while training: the cache, the checkpoint, the finished run --------------------

START_OVER = "pass resume=False (CLI: --fresh) to start over, or use another out folder"


def cached_run(path: Path, key: str, device: str | torch.device | None = None) -> Run | None:
    """The finished run in `path` if its record is complete and has this `key`; None if `path`
    holds no finished run. Raises ValueError if it holds the finished run of other configs (training
    there would overwrite it) or an unreadable one."""
    path = Path(path)
    if not ((path / "record.json").exists() and (path / "model.pt").exists()):
        return None
    found = load_record(path).get("key")
    if found != key:
        raise ValueError(f"{path} holds the finished run of another configuration (key {found}, "
                         f"this run's is {key}); use another out folder, or pass cache=False "
                         f"(CLI: --fresh) to overwrite it")
    return load_run(path, device)


def load_checkpoint(ckpt_path: Path, model_cfg: ViTConfig, train_cfg: TrainConfig,
                    device: str | torch.device | None = None) -> dict | None:
    """The checkpoint `train()` left in `ckpt_path` (model, optimizer and scaler states, history,
    epoch, step, elapsed seconds), or None if there is none. Loads with `weights_only=True`: a
    checkpoint never runs code. Raises ValueError (one line, saying what to do) if the file is not a
    checkpoint this code can read safely (corrupt, truncated, foreign, holding other types than
    tensors and plain values) or was written for other configs."""
    ckpt_path = Path(ckpt_path)
    if not ckpt_path.exists():
        return None
    try:
        ckpt = torch.load(ckpt_path, map_location=get_device(device), weights_only=True)
    except Exception as err:    # UnpicklingError, RuntimeError (not a zip), EOFError (empty) ...
        why = (str(err).strip().splitlines() or [""])[0][:120]
        raise ValueError(f"{ckpt_path} is not a checkpoint that can be loaded safely "
                         f"({type(err).__name__}: {why}); delete it or {START_OVER}") from err
    if not isinstance(ckpt, dict) or not {"model_cfg", "train_cfg"} <= set(ckpt):
        raise ValueError(f"{ckpt_path} is not a poorvit training checkpoint (no configs in it); "
                         f"delete it or {START_OVER}")
    if ckpt["model_cfg"] != asdict(model_cfg) or ckpt["train_cfg"] != asdict(train_cfg):
        raise ValueError(f"{ckpt_path} belongs to a different configuration; {START_OVER}")
    return ckpt


def save_run(model: nn.Module, record: dict, path: Path) -> None:
    """A finished run's files in `path`: the final weights and the record, each written
    atomically; the checkpoint goes."""
    atomic_save(model.state_dict(), path / "model.pt")
    write_json(record, path / "record.json")
    (path / "checkpoint.pt").unlink(missing_ok=True)


__all__ = ["Run", "runs_root", "run_key", "config_hash", "git_commit", "atomic_save", "write_json",
           "load_record", "load_run", "find_runs", "is_record", "load_records", "with_defaults",
           "cached_run", "load_checkpoint", "save_run", "START_OVER", "CACHE_VERSION"]

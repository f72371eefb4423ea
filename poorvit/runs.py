"""Run records and the run cache: every result says what produced it, and nothing is trained twice.

A run lives in a folder named by a hash of everything that determines it (model config, training
config, dataset), under `$POORVIT_RUNS` (default `~/.cache/poorvit/runs`):

    record.json      config, seed, device, scale, dataset, package version and git commit, history, results
    model.pt         the final weights (a plain state dict: load with weights_only=True)
    checkpoint.pt    while training: the last completed epoch, written atomically; removed at the end
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from . import __version__
from .config import TrainConfig, ViTConfig

CACHE_VERSION = 1   # bump when a change to training would change the results of an identical config


def runs_root() -> Path:
    """`$POORVIT_RUNS`, else `~/.cache/poorvit/runs` (under `$XDG_CACHE_HOME` when set)."""
    if os.environ.get("POORVIT_RUNS"):
        return Path(os.environ["POORVIT_RUNS"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "poorvit" / "runs"


def run_key(model_cfg: ViTConfig, train_cfg: TrainConfig, dataset: str) -> str:
    """A short hash of everything that determines a run's result."""
    return config_hash(asdict(model_cfg), asdict(train_cfg), dataset)


def config_hash(model: dict, train: dict, dataset: str | None) -> str:
    """`run_key` of configs given as dicts (as a run record stores them)."""
    blob = json.dumps({"model": model, "train": train, "dataset": dataset, "v": CACHE_VERSION}, sort_keys=True,
                      default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def git_commit() -> str | None:
    """The commit of the package's checkout (with `-dirty` if it has local changes), or None."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves a half-written file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def write_json(obj, path: Path) -> None:
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
        return (f"Run({self.model_cfg.attention_kind}, {r.get('params', 0):,} params, scale={r.get('scale')}, "
                f"final_acc={r.get('final_acc', float('nan')):.4f}, {r.get('dataset')}, {r.get('device_name')})")


def load_record(path: str | os.PathLike) -> dict:
    """A run record from a run folder or a record JSON file."""
    path = Path(path)
    return json.loads((path / "record.json" if path.is_dir() else path).read_text())


def load_run(path: str | os.PathLike, device: str | torch.device = "cpu") -> Run:
    """A finished run from its folder: the record and the model with its final weights (safe loading)."""
    from .model import ViT
    path = Path(path)
    record = load_record(path)
    model_cfg, train_cfg = ViTConfig(**record["config"]), TrainConfig(**record["train"])
    model = ViT(model_cfg)
    model.load_state_dict(torch.load(path / "model.pt", map_location=device, weights_only=True))
    return Run(model_cfg, train_cfg, record["history"], record, model.to(device).eval(), path, cached=True)


def find_runs(root: str | os.PathLike) -> list[dict]:
    """Every complete run record under `root` (run folders or loose record JSON files), sorted by path."""
    root = Path(root)
    records = []
    for p in sorted(root.rglob("*.json")):
        try:
            rec = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(rec, dict) and rec.get("complete") and "config" in rec:
            rec.setdefault("_path", str(p))
            records.append(rec)
    return records


__all__ = ["Run", "runs_root", "run_key", "git_commit", "device_name", "atomic_save", "write_json", "load_record",
           "load_run", "find_runs", "CACHE_VERSION"]

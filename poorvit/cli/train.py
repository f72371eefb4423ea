"""`python -m poorvit train`: one run from a model preset, a scale and overrides, with its record.

    python -m poorvit train --preset paper --scale demo --set n_kv_head=4 --set lr=5e-4 --out runs/
    python -m poorvit train --preset cpu --minutes 10      # the CPU recipe, 10 minutes in all
    torchrun --nproc_per_node 4 -m poorvit train --preset paper --scale paper --out runs/

`--set FIELD=VALUE` applies to whichever config has FIELD (model: ViTConfig, recipe: TrainConfig).
The run goes to `OUT/<preset>-<scale>-<hash>/`; running the same command again loads the finished
run, or resumes an interrupted one from its last checkpoint (`--fresh` starts over).
"""
from __future__ import annotations

import argparse
import ast
import time
from dataclasses import fields
from pathlib import Path

from ..config import (PRESET_SCALES, PRESETS, SCALES, TrainConfig, ViTConfig, get_config,
                      get_train_config)


def add_parser(sub) -> None:
    """Register `train`: train one model and write its run record."""
    p = sub.add_parser("train", help="train one model and write its run record",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="paper", choices=list(PRESETS),
                   help="model preset (default: paper)")
    p.add_argument("--scale", default=None, choices=list(SCALES),
                   help="training recipe: " + ", ".join(SCALES) + " (default: the preset's own "
                        "recipe where it has one, as cpu does; else POORVIT_SCALE, else demo with "
                        "CUDA, else smoke)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a model or training field, e.g. n_kv_head=4, lr=5e-4 "
                        "(repeatable)")
    p.add_argument("--minutes", type=float, default=None,
                   help="a wall-clock budget of this many minutes for the whole run, "
                        "final evaluation included")
    p.add_argument("--seed", type=int, default=None, help="seed (default: the recipe's, 0)")
    p.add_argument("--out", default=None,
                   help="folder for run folders (default: POORVIT_RUNS or ~/.cache/poorvit/runs)")
    p.add_argument("--data", default=None,
                   help="CIFAR-10 folder (default: POORVIT_DATA or ~/.cache/poorvit)")
    p.add_argument("--device", default=None,
                   help="cpu, cuda, cuda:1 ... (default: cuda if present)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true",
                       help="continue the interrupted run in the run folder "
                            "(the default when one exists)")
    group.add_argument("--fresh", action="store_true",
                       help="ignore any checkpoint or finished run and train from scratch")
    p.add_argument("--bar", action="store_true",
                   help="show a progress bar over steps instead of a line per epoch")
    p.set_defaults(func=run)


def parse_overrides(pairs: list[str], *classes) -> list[dict]:
    """Parse `["n_kv_head=4", "lr=3e-4"]` into one dict per class in `classes`, by field name.

    Values are read as Python literals where they parse (`4`, `3e-4`, `True`, `None`) and kept as
    strings otherwise (`lowrank=q`). A name that no class has raises `ValueError` listing them all.
    """
    out = [dict() for _ in classes]
    names = [{f.name for f in fields(c)} for c in classes]
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set {pair!r}: write FIELD=VALUE, e.g. n_kv_head=4")
        key, raw = pair.split("=", 1)
        key = key.strip()
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        for d, valid in zip(out, names):
            if key in valid:
                d[key] = value
                break
        else:
            all_names = sorted(set().union(*names))
            raise ValueError(f"--set {key}: no such field; valid fields: {', '.join(all_names)}")
    return out


def configs(args) -> tuple[ViTConfig, TrainConfig]:
    """The (model, training) configs the options name: the preset, its scale, `--set`, `--minutes`,
    `--seed`. Raises ValueError on a field no config has."""
    model_over, train_over = parse_overrides(args.overrides, ViTConfig, TrainConfig)
    if args.minutes is not None:
        train_over["minutes"] = args.minutes
    if args.seed is not None:
        train_over["seed"] = args.seed
    scale = args.scale or PRESET_SCALES.get(args.preset)
    return get_config(args.preset, **model_over), get_train_config(scale, **train_over)


def run(args) -> int:
    """Train (or load, or resume) the run the options name and print where its record is."""
    from ..data import load_cifar10
    from ..runs import run_key, runs_root
    from ..train import train

    start = time.perf_counter()
    model_cfg, train_cfg = configs(args)
    data = load_cifar10(args.data)
    root = Path(args.out) if args.out else runs_root()
    folder = root / f"{args.preset}-{train_cfg.scale}-{run_key(model_cfg, train_cfg, data.label)}"
    if args.resume and not (folder / "checkpoint.pt").exists():
        raise ValueError(f"--resume: no checkpoint in {folder}; run without --resume to start")
    print(f"{args.preset} ({model_cfg.attention_kind}) at scale {train_cfg.scale} -> {folder}")
    try:
        run_ = train(model_cfg, train_cfg, data, out=folder, resume=not args.fresh,
                     cache=not args.fresh, device=args.device,
                     progress="bar" if args.bar else "line")
    except KeyboardInterrupt:
        raise KeyboardInterrupt(_resume_hint(folder / "checkpoint.pt")) from None
    print(f"record: {folder / 'record.json'}  final test acc {run_.final_acc:.4f}  "
          f"wall time {time.perf_counter() - start:.0f}s (data, model, training, evaluation)")
    return 0


def _resume_hint(ckpt: Path) -> str:
    """Where an interrupted run stands: the epoch its checkpoint holds and how to go on."""
    if not ckpt.exists():
        return ("no epoch finished, so there is no checkpoint yet; the same command starts the "
                "run again")
    import torch
    try:
        epoch = torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"]
    except Exception:           # unreadable: say so, the message still says how to go on
        epoch = "?"
    return (f"the run resumes from {ckpt} (after epoch {epoch}) when the same command runs again "
            f"(--fresh starts over)")


__all__ = ["add_parser", "parse_overrides", "configs", "run"]

"""`python -m poorvit sweep`: train the study's rows at a scale, with seeds (`poorvit.sweep.sweep`).

    python -m poorvit sweep study --scale paper --seeds 3 --out runs/   # every row of the study
    python -m poorvit sweep --rows baseline,lowrank_q --list            # the rows' configs only
    python -m poorvit sweep --list --scale paper     # each row's steps and training FLOPs too

On a machine with several GPUs the command restarts itself under `torch.distributed.run` (one
process per GPU) unless `--no-torchrun` is given. Its `--help` shows `poorvit.sweep`'s description.
"""
from __future__ import annotations

import argparse
import subprocess
import sys

from ..config import SCALES, TrainConfig, ViTConfig, get_config, get_train_config, scale_model
from ..study import SWEEPS
from .train import parse_overrides


def add_parser(sub) -> None:
    """Register `sweep`: train the study's rows (presets over the baseline) at a scale."""
    from .. import sweep as sweep_module

    p = sub.add_parser("sweep",
                       help="train the study's rows (presets over the baseline) at a scale, "
                            "with seeds",
                       description=sweep_module.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", default="study", choices=list(SWEEPS),
                   help="which rows: study (every row) or table (the rows with a number in the "
                        "study)")
    p.add_argument("--rows", default=None,
                   help="comma-separated row names instead (e.g. baseline,lowrank_q)")
    p.add_argument("--scale", default=None, choices=list(SCALES),
                   help="smoke, demo or paper (default: POORVIT_SCALE, else demo with CUDA, "
                        "else smoke)")
    p.add_argument("--seeds", type=int, default=1, help="seeds 0 .. n-1 (default 1)")
    p.add_argument("--out", default="runs", help="folder for the run folders (default: runs)")
    p.add_argument("--preset", default=None,
                   help="a model preset as the baseline instead of the scale's")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a field of the baseline before the rows apply, e.g. epochs=5 "
                        "(repeatable)")
    p.add_argument("--data", default=None,
                   help="CIFAR-10 folder (default: POORVIT_DATA or ~/.cache/poorvit)")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda if present)")
    p.add_argument("--list", action="store_true",
                   help="print the rows, their steps, training FLOPs and configs at the scale, "
                        "train nothing")
    p.add_argument("--no-torchrun", action="store_true",
                   help="with several GPUs, still run in this one process")
    p.set_defaults(func=run)


def _list(names, scale: str, model_cfg: ViTConfig, train_cfg: TrainConfig) -> None:
    """Print each row's optimizer steps, training FLOPs (`cost.train_flops` per step times the
    steps: matmuls and convolutions, forward and backward) and changes to the baseline at `scale`
    (`--list`), then the total: what a GPU budget must cover, one seed."""
    from ..config import planned_steps
    from ..cost import train_flops
    from ..sweep import baseline_configs, config_diff, row_configs

    base = baseline_configs(scale, 0, model_cfg, train_cfg)
    timed = " (a cap: the run is timed)" if base[1].minutes else ""
    print(f"{'row':15s} {'steps':>7s} {'train PFLOP':>11s}  change (scale {scale}, one seed"
          f"{timed})")
    total_steps, total_flops, per_step = 0, 0.0, {}
    for name in (SWEEPS[names] if isinstance(names, str) else names):
        cfgs = row_configs(name, scale, 0, model_cfg, train_cfg)
        diff = config_diff(base, cfgs)
        changes = ", ".join(f"{k}={v[1]!r}" for k, v in diff.items())
        steps = planned_steps(cfgs[1])[1]
        if cfgs[0] not in per_step:        # counted once per model: rows share most of them
            per_step[cfgs[0]] = train_flops(cfgs[0], 1)
        flops = per_step[cfgs[0]] * cfgs[1].batch_size * steps
        total_steps, total_flops = total_steps + steps, total_flops + flops
        print(f"{name:15s} {steps:7,d} {flops / 1e15:11,.1f}  {changes or '(the baseline)'}")
    print(f"{'total':15s} {total_steps:7,d} {total_flops / 1e15:11,.1f}")


def run(args) -> int:
    """List the rows (`--list`), rerun under torchrun on several GPUs, or train the sweep here."""
    import torch

    from ..config import default_scale
    from ..sweep import sweep, torchrun_command

    scale = args.scale or default_scale()
    names = args.rows.split(",") if args.rows else args.name
    model_over, train_over = parse_overrides(args.overrides, ViTConfig, TrainConfig)
    model_cfg = (get_config(args.preset, **model_over) if args.preset
                 else scale_model(scale, **model_over))
    train_cfg = get_train_config(scale, **train_over)
    if args.list:
        _list(names, scale, model_cfg, train_cfg)
        return 0
    cmd = torchrun_command(sys.argv[1:], torch.cuda.device_count())
    if cmd:
        print("several GPUs: " + " ".join(cmd), flush=True)
        return subprocess.call(cmd)
    from ..data import load_cifar10
    results = sweep(names, scale, args.seeds, args.out, load_cifar10(args.data), args.device,
                    model_cfg, train_cfg)
    counts = {}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    print(f"sweep done: {len(results)} runs ({', '.join(f'{v} {k}' for k, v in counts.items())}) "
          f"in {args.out}; `python -m poorvit report {args.out}` renders them")
    return 0


__all__ = ["add_parser", "run"]

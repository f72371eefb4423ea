"""The CPU recipe's benchmarks (`python -m poorvit bench cpu-recipe`, `bench cpu-levers`): test
accuracy after a wall-clock budget on this machine's cores.

    python -m poorvit bench cpu-recipe --seeds 0,1,2 --save results/cpu   # the recipe, three seeds
    python -m poorvit bench cpu-levers --minutes 2                        # one change at a time
    python -m poorvit bench cpu-throughput --repeats 5                    # images/s of each step

Both train from scratch into a throwaway folder (never from the run cache) and print each run's
accuracy with the machine's load; results/cpu/README.md holds what they measured. Registered in
`bench.BENCHES` when the `bench` command's parser is built; neither runs under `bench all`.
"""
from __future__ import annotations

from pathlib import Path

from .bench import bench, load_average


def _fresh_run(model_cfg, train_cfg, data, device, **kwargs):
    """`train()` from scratch into a throwaway folder: never from the run cache, nothing left."""
    import tempfile

    from ..train import train
    with tempfile.TemporaryDirectory() as out:
        return train(model_cfg, train_cfg, data, out=out, cache=False, device=device, **kwargs)


def _save_record(run_, train_cfg, seed: int, folder: str) -> None:
    """Write a cpu-recipe run's record (JSON, no weights) into `folder` (`--save`)."""
    from ..runs import write_json
    Path(folder).mkdir(parents=True, exist_ok=True)
    commit = (run_.record.get("commit") or "nogit")[:12]
    path = Path(folder) / f"cpu-{train_cfg.minutes:g}min-s{seed}-{commit}.json"
    write_json(run_.record, path)
    print(f"cpu-recipe: record written to {path}")


@bench("cpu-recipe")
def cpu_recipe_bench(args) -> dict:
    """The CPU recipe (`python -m poorvit train --preset cpu`) from scratch, once per seed in
    `--seeds`, on its wall-clock budget (`--minutes`, default the recipe's 10): the full-test
    accuracy and the wall time of each run (model build, training, evaluation), then their mean
    and standard deviation. Not part of `all`."""
    from ..config import get_config, get_train_config
    from ..data import load_cifar10
    from ..device import device_name, get_device
    from ..report import mean_std
    if args.what == "all":
        print("cpu-recipe: skipped by `all` (minutes per seed); "
              "run `python -m poorvit bench cpu-recipe`")
        return {}
    device = get_device(args.device or "cpu")
    over = {} if args.minutes is None else {"minutes": args.minutes}
    seeds = [int(s) for s in args.seeds.split(",")]
    data = load_cifar10()
    accs, secs = [], []
    for seed in seeds:
        model_cfg, train_cfg = get_config("cpu"), get_train_config("cpu", seed=seed, **over)
        print(f"cpu-recipe: seed {seed}, {train_cfg.minutes:g} minutes on {device_name(device)}; "
              f"{load_average()} before")
        run_ = _fresh_run(model_cfg, train_cfg, data, device)
        if args.save:
            _save_record(run_, train_cfg, seed, args.save)
        accs.append(run_.final_acc)
        secs.append(run_.record["seconds"])
        print(f"cpu-recipe: seed {seed}: test acc {100 * run_.final_acc:.2f} %  wall "
              f"{run_.record['seconds']:.0f} s  ({run_.record['steps']} steps, "
              f"{run_.record['epochs_run']} epochs); {load_average()} after")
    mean, sd = mean_std(accs)
    spread = f" ± {100 * sd:.2f} % (mean ± std)" if sd is not None else " % (one seed: no spread)"
    print(f"cpu-recipe: {len(seeds)} seed(s): test acc {100 * mean:.2f}{spread}, wall "
          f"{max(secs):.0f} s at most, {data.label}")
    return {"acc": accs, "seconds": secs, "mean": mean, "std": sd}


# Each lever changes one thing of the CPU recipe: (name, model overrides, training overrides).
CPU_LEVERS = [
    ("the recipe", {}, {}),
    ("the recipe, another seed (the noise)", {}, dict(seed=1)),
    ("the previous recipe's model: 96 wide, every token, a class token",
     dict(n_embd=96, n_head=3, patch_drop=0.0, n_cls=1, cls_head="concat"), {}),
    ("every token: no patch dropout", dict(patch_drop=0.0), {}),
    ("a class token instead of average pooling", dict(n_cls=1, cls_head="concat"), {}),
    ("random crops (pad 4) as well as flips", {}, dict(crop_pad=4)),
    ("overlapping patches: 8 x 8 windows", dict(patch_kernel=8), {}),
    ("wider: 192 wide, 6 heads", dict(n_embd=192, n_head=6), {}),
    ("deeper: 6 blocks", dict(n_layer=6), {}),
    ("larger batch: 128", {}, dict(batch_size=128)),
    ("higher lr: 2e-3", {}, dict(lr=2e-3)),
    ("Lion (lr 3e-4, wd 0.5)", {}, dict(optimizer="lion", lr=3e-4, weight_decay=0.5)),
    ("no label smoothing", {}, dict(label_smoothing=0.0)),
    ("no whitening init", {}, dict(whiten="off")),
    ("no augmentation (no flip either)", {}, dict(flip=False)),
    ("bfloat16 autocast", {}, dict(precision="bf16")),
    ("fewer tokens: patch 8", dict(patch_size=8), {}),
    ("torch.compile", {}, dict(compile=True)),
    ("one thread instead of all cores", {}, dict(threads=1)),
    # issue 23's levers (19 on)
    ("Muon (lr 0.02) for the blocks' matrices", {}, dict(optimizer="muon")),
    ("Muon, lr 0.05", {}, dict(optimizer="muon", muon_lr=0.05)),
    ("Muon, lr 0.01", {}, dict(optimizer="muon", muon_lr=0.01)),
    ("Muon, lr 0.02, weight decay 0.05", {}, dict(optimizer="muon", muon_weight_decay=0.05)),
    ("moving average of the weights (0.999)", {}, dict(ema=0.999)),
    ("every token for the last 20 %", {}, dict(patch_drop_until=0.8)),
    ("fewer tokens: 75 % dropped", dict(patch_drop=0.75), {}),
    ("75 % dropped, every token for the last 20 %", dict(patch_drop=0.75),
     dict(patch_drop_until=0.8)),
    ("larger batch: 64", {}, dict(batch_size=64)),
    ("Muon, lr 0.005", {}, dict(optimizer="muon", muon_lr=0.005)),
    ("Muon, lr 0.002", {}, dict(optimizer="muon", muon_lr=0.002)),
    # the recipe with Muon at 0.005 (30 on)
    ("AdamW instead of Muon", {}, dict(optimizer="adamw")),
    ("a convolutional stem (so no whitening)", dict(stem="conv"), dict(whiten="off")),
    # the recipe as it is now: Muon 0.005, AdamW 2e-3, every token late, flip TTA (32 on)
    ("Muon, lr 0.003", {}, dict(muon_lr=0.003)),
    ("every token for the last 40 %", {}, dict(patch_drop_until=0.6)),
]


def _flip_accuracy(run_, data, device) -> float:
    """Full-test accuracy of a finished run's model with flip test-time augmentation (the mean
    logits of each image and its mirror image): measured after the run, outside its budget."""
    from ..data import DeviceLoader
    from ..train import evaluate
    full_test = DeviceLoader(data.test_x, data.test_y, 500, False, device)
    _, right, n = evaluate(run_.model, full_test, flip=True)
    return right / n


def _lever_row(lever, data, device, seed: int, minutes: float) -> dict:
    """Train one lever of `CPU_LEVERS` from scratch on the budget: its row of the table, or its
    error (one lever failing, say no compiler for torch.compile, is a result too)."""
    import torch

    from ..config import get_config, get_train_config
    name, model_over, train_over = lever
    changes = ", ".join(f"{k}={v}" for k, v in {**model_over, **train_over}.items()) or "-"
    train_over = dict(train_over)
    threads, all_threads = train_over.pop("threads", None), torch.get_num_threads()  # no field
    model_cfg = get_config("cpu", **model_over)
    train_cfg = get_train_config("cpu", **{"seed": seed, "minutes": minutes, **train_over})
    before = load_average()
    try:
        if threads:
            torch.set_num_threads(threads)
        run_ = _fresh_run(model_cfg, train_cfg, data, device, progress=None)
    except Exception as err:
        error = f"{type(err).__name__}: {str(err)[:200]}"
        print(f"cpu-levers: {name:40s} failed: {error}", flush=True)
        return {"lever": name, "changes": changes, "error": error}
    finally:
        torch.set_num_threads(all_threads)
    rec = run_.record
    flip = _flip_accuracy(run_, data, device) if not train_cfg.tta_flip else run_.final_acc
    row = {"lever": name, "changes": changes,
           "test acc %": round(100 * run_.final_acc, 2),
           "with flip TTA %": round(100 * flip, 2), "steps": rec["steps"],
           "epochs": round(rec["steps"] * train_cfg.batch_size / len(data.train_y), 2),
           "params": rec["params"], "wall s": round(rec["seconds"], 1),
           "load before": before.split()[-3]}
    print(f"cpu-levers: {name:40s} test acc {100 * run_.final_acc:6.2f} %  (flip TTA "
          f"{100 * flip:6.2f} %)  "
          f"{rec['steps']:6d} steps  {row['epochs']:5.2f} epochs  {rec['seconds']:4.0f} s; "
          f"{before}", flush=True)
    return row


@bench("cpu-levers")
def cpu_levers_bench(args) -> dict:
    """Each lever of the CPU recipe (`CPU_LEVERS`: one change each) trained from scratch with the
    same seed on the same wall-clock budget (`--minutes`, default 2), one after the other: the
    full-test accuracy, steps and epochs each reached. `--save FILE.json` keeps the table with its
    machine, load and commit. Not part of `all`."""
    from dataclasses import asdict

    import torch

    from ..config import get_config, get_train_config
    from ..data import load_cifar10
    from ..device import device_name, get_device
    from ..runs import git_commit, write_json
    if args.what == "all":
        print("cpu-levers: skipped by `all` (minutes per lever); "
              "run `python -m poorvit bench cpu-levers`")
        return {}
    device = get_device(args.device or "cpu")
    minutes = args.minutes or 2.0
    seed = int(args.seeds.split(",")[0])
    data = load_cifar10()
    only = set(args.levers.split(",")) if args.levers else None
    rows = [_lever_row(lever, data, device, seed, minutes) for i, lever in enumerate(CPU_LEVERS)
            if only is None or str(i) in only]
    out = {"benchmark": f"python -m poorvit bench cpu-levers --minutes {minutes:g} --seeds {seed}",
           "minutes": minutes, "seed": seed, "model": asdict(get_config("cpu")),
           "train": asdict(get_train_config("cpu", seed=seed, minutes=minutes)),
           "device_name": device_name(device), "threads": torch.get_num_threads(),
           "dataset": data.label, "commit": git_commit(), "torch": torch.__version__, "rows": rows}
    if args.save:
        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        write_json(out, Path(args.save))
        print(f"cpu-levers: table written to {args.save}")
    return out


# The throughput levers of issue 23, each a change of the recipe's step: (name, model overrides,
# training overrides, torch threads or None for all).
CPU_THROUGHPUT = [
    ("the recipe's step (Muon, half the tokens)", {}, {}, None),
    ("AdamW instead of Muon", {}, dict(optimizer="adamw"), None),
    ("every token (the last 20 % of the budget)", dict(patch_drop=0.0), {}, None),
    ("75 % of the tokens dropped", dict(patch_drop=0.75), {}, None),
    ("larger batch: 64", {}, dict(batch_size=64), None),
    ("bfloat16 autocast", {}, dict(precision="bf16"), None),
    ("torch.compile (inductor)", {}, dict(compile=True), None),
    ("one thread", {}, {}, 1),
]


@bench("cpu-throughput")
def cpu_throughput_bench(args) -> dict:
    """Images per second of the CPU recipe's training step and of each throughput lever
    (`CPU_THROUGHPUT`: the optimizer, the tokens kept, the batch, bfloat16, torch.compile, the
    threads) on this machine: one batch of random images held in memory, `--steps` steps per
    timed pass after 3 untimed ones (torch.compile's compilation happens there, and its seconds
    are printed), `--repeats` passes interleaved over the levers, the median pass counted and the
    spread (min-max) printed beside it. Data loading is `bench loader`'s. `--save FILE.json`.
    Not part of `all`."""
    import statistics
    import time

    import torch

    from ..config import get_config, get_train_config
    from ..device import device_name, get_device
    from ..model import ViT
    from ..runs import git_commit, write_json
    from ..train import TrainStep
    if args.what == "all":
        print("cpu-throughput: skipped by `all`; run `python -m poorvit bench cpu-throughput`")
        return {}
    device = get_device(args.device or "cpu")
    all_threads, steps_per_pass = torch.get_num_threads(), max(args.steps, 10)
    built = []
    for name, model_over, train_over, threads in CPU_THROUGHPUT:
        torch.manual_seed(0)
        cfg = get_train_config("cpu", **train_over)
        step = TrainStep(ViT(get_config("cpu", **model_over)).to(device), cfg, device)
        x = torch.randn(cfg.batch_size, 3, 32, 32, device=device)
        y = torch.randint(0, 10, (cfg.batch_size,), device=device)
        torch.set_num_threads(threads or all_threads)
        t0 = time.perf_counter()
        for _ in range(3):
            step(x, y)
        warm = time.perf_counter() - t0
        torch.set_num_threads(all_threads)
        built.append((name, step, x, y, threads, warm, []))
    for _ in range(args.repeats):
        for name, step, x, y, threads, _, passes in built:
            torch.set_num_threads(threads or all_threads)
            t0 = time.perf_counter()
            for _ in range(steps_per_pass):
                step(x, y)
            passes.append(len(x) * steps_per_pass / (time.perf_counter() - t0))
            torch.set_num_threads(all_threads)
    rows, base = [], statistics.median(built[0][6])
    print(f"cpu-throughput: {device_name(device)}, {steps_per_pass} steps a pass, "
          f"{args.repeats} passes; {load_average()} after")
    for name, step, x, _, threads, warm, passes in built:
        med = statistics.median(passes)
        rows.append({"lever": name, "images/s": round(med), "min": round(min(passes)),
                     "max": round(max(passes)), "vs the recipe": round(med / base, 3),
                     "first 3 steps s": round(warm, 1), "batch": len(x)})
        print(f"cpu-throughput: {name:45s} {med:7.0f} images/s ({min(passes):.0f}-"
              f"{max(passes):.0f}), x{med / base:.2f}; first 3 steps {warm:.1f} s")
    out = {"benchmark": f"python -m poorvit bench cpu-throughput --repeats {args.repeats}",
           "device_name": device_name(device), "threads": all_threads,
           "dataset": "none: one batch of random images (torch.randn) held in memory",
           "seed": 0, "commit": git_commit(), "torch": torch.__version__,
           "load after": load_average(), "rows": rows}
    if args.save:
        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        write_json(out, Path(args.save))
        print(f"cpu-throughput: table written to {args.save}")
    return out


__all__ = ["CPU_LEVERS", "CPU_THROUGHPUT"]

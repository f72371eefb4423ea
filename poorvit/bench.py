"""Benchmarks (`python -m poorvit bench WHAT`): measured speed, printed with the machine that measured it.

    python -m poorvit bench loader    # images/s of the study's augmentation: device-resident vs a PIL DataLoader

Speed is a claim measured here, never asserted by a unit test. Each benchmark prints its setting, the
device, and the numbers; run it on an otherwise idle machine.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch

BENCHES = {}


def bench(name):
    def register(fn):
        BENCHES[name] = fn
        return fn
    return register


def _timed_pass(batches, device: torch.device) -> float:
    """Seconds to exhaust an iterable of (x, target) batches (the device finishes its queued work)."""
    t0 = time.perf_counter()
    for _ in batches:
        pass
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def _load() -> str:
    try:
        return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "load average unknown"


@bench("loader")
def loader_bench(args) -> dict:
    """The study's full training augmentation (crop, flip, AutoAugment CIFAR-10, normalize, random erasing,
    Mixup/CutMix), as device-resident batches vs torchvision's PIL pipeline in a DataLoader.

    Both run the same ops on the same images, with the same core budget (DataLoader workers = CPU cores;
    the device path runs in the main process with torch's threads), interleaved `--repeats` times; the
    best pass of each counts, since other work on the machine only ever slows a pass down.
    """
    import torchvision.transforms as T
    from torchvision.transforms import v2

    from .augment import TrainTransform
    from .config import get_train_config
    from .data import MEAN, STD, DeviceLoader, load_cifar10
    from .train import default_device

    data = load_cifar10()
    n, bs = args.images, 256
    cfg = get_train_config(args.scale or "paper")
    device = torch.device(args.device) if args.device else default_device()
    transform = TrainTransform.from_config(cfg)
    ours = DeviceLoader(data.train_x[:n], data.train_y[:n], bs, True, device, transform=transform)

    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    per_image = [T.RandomCrop(32, padding=cfg.crop_pad)] if cfg.crop_pad else []
    per_image += [T.RandomHorizontalFlip()] if cfg.flip else []
    per_image += [T.AutoAugment(T.AutoAugmentPolicy.CIFAR10)] if cfg.autoaugment else []
    per_image += [T.ToTensor(), T.Normalize(MEAN, STD)]
    per_image += [T.RandomErasing(p=cfg.random_erasing)] if cfg.random_erasing else []
    pil_tf = T.Compose(per_image)
    mixers = [cls(alpha=a, num_classes=10) for cls, a in ((v2.MixUp, cfg.mixup_alpha), (v2.CutMix, cfg.cutmix_alpha))
              if a > 0]
    mix = v2.RandomApply([v2.RandomChoice(mixers)], p=cfg.mix_prob) if mixers and cfg.mix_prob > 0 else None
    images = data.train_x[:n].permute(0, 2, 3, 1).numpy()
    labels = data.train_y[:n].tolist()

    class PILSet(torch.utils.data.Dataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            from PIL import Image
            return pil_tf(Image.fromarray(images[i])), labels[i]

    dl = torch.utils.data.DataLoader(PILSet(), batch_size=bs, shuffle=True, num_workers=workers, drop_last=True,
                                     persistent_workers=workers > 0)

    def pil_batches():                       # batch-level mixing runs in the main process, as in timm / the study
        for x, y in dl:
            yield mix(x, y) if mix is not None else (x, y)

    print(f"pipeline: {transform}")
    print(f"{n:,} images of {data.label} per pass, batch {bs}; {_load()} before")
    best = {"device": math.inf, "pil": math.inf}
    for r in range(args.repeats + 1):        # pass 0 warms both up (worker start-up, allocator) and is not counted
        t_ours = _timed_pass(iter(ours), device)
        t_pil = _timed_pass(pil_batches(), torch.device("cpu"))
        if r:
            best["device"], best["pil"] = min(best["device"], t_ours), min(best["pil"], t_pil)
    rate_ours, rate_pil = len(ours) * bs / best["device"], len(dl) * bs / best["pil"]
    print(f"device-resident loader on {device} ({torch.get_num_threads()} threads): {rate_ours:10,.0f} images/s")
    print(f"torchvision PIL pipeline, DataLoader with {workers} workers:  {rate_pil:10,.0f} images/s")
    print(f"ratio: {rate_ours / rate_pil:.1f}x  (best of {args.repeats} interleaved passes each; {_load()} after)")
    return {"device_loader": rate_ours, "pil_dataloader": rate_pil, "ratio": rate_ours / rate_pil}



# ---- chapter 9, profiling: a training step against timm's, the matmul peak, torch.compile -----------------

def timm_vit(cfg):
    """timm's `VisionTransformer` built to a plain `ViTConfig` (one class token, learned positions, MHA)."""
    from timm.models.vision_transformer import VisionTransformer
    if cfg.n_cls != 1 or cfg.kv_heads != cfg.n_head or cfg.q_rank or cfg.kv_rank or cfg.lowrank or cfg.pos_embed != "learned":
        raise ValueError("timm's VisionTransformer has one class token, learned positions and plain multi-head "
                         "attention: compare a plain config")
    return VisionTransformer(img_size=cfg.image_size, patch_size=cfg.patch_size, in_chans=cfg.in_chans,
                             num_classes=cfg.n_classes, embed_dim=cfg.n_embd, depth=cfg.n_layer, num_heads=cfg.n_head,
                             mlp_ratio=cfg.mlp_ratio, qkv_bias=cfg.qkv_bias, class_token=True, global_pool="token",
                             drop_path_rate=cfg.drop_path)


def _step_setup(args, precision: str = "fp32", compile: bool = False):
    from .config import get_config, get_train_config
    from .data import load_cifar10
    from .train import default_device
    device = torch.device(args.device) if args.device else default_device()
    cfg = get_config("paper")
    train_cfg = get_train_config("paper", batch_size=args.batch, precision=precision, compile=compile)
    data = load_cifar10()
    return device, cfg, train_cfg, data


def _fixed_batch_steps(step, n: int) -> float:
    """Seconds per step of `n` forward-backward-optimizer steps on one batch (data left out)."""
    from .profile import synchronize
    x, y = step.data()
    synchronize(step.device)
    t0 = time.perf_counter()
    for _ in range(n):
        step.backward(step.forward(x, y))
        step.optimizer()
    synchronize(step.device)
    return (time.perf_counter() - t0) / n


@bench("step")
def step_bench(args) -> dict:
    """Training-step images/s of poorvit's `paper` model vs timm's VisionTransformer built to the same
    config: same batch, same AdamW, float32, on one batch held on the device (the data is left out).

    The two alternate, `--repeats` passes of `--steps` steps each after one warm-up pass; each model's best
    pass counts (other work on the machine only ever slows a pass down), the median is printed beside it.
    """
    import statistics

    from .profile import TrainingStep, adamw_kind, matmul_peak, train_flops
    from .runs import device_name
    try:
        import timm  # noqa: F401
    except ImportError:
        print("step: timm is not installed, so there is nothing to compare with; install the benchmark extra: "
              "pip install -e .[bench]")
        return {}
    device, cfg, train_cfg, data = _step_setup(args)
    torch.manual_seed(0)
    theirs = timm_vit(cfg)
    steps = {"poorvit": TrainingStep(cfg, train_cfg, data.train_x, data.train_y, device),
             "timm": TrainingStep(cfg, train_cfg, data.train_x, data.train_y, device, model=theirs)}
    params = {k: sum(p.numel() for p in s.model.parameters()) for k, s in steps.items()}
    print(f"step: paper preset (patch {cfg.patch_size}, {cfg.n_embd} wide, {cfg.n_layer} blocks, {cfg.n_head} heads, "
          f"MLP ratio {cfg.mlp_ratio:g}, drop_path {cfg.drop_path}), batch {args.batch}, float32, AdamW "
          f"({adamw_kind(steps['poorvit'].opt)}), on {device_name(device)}")
    print(f"parameters: poorvit {params['poorvit']:,}, timm {params['timm']:,}"
          f" ({'equal' if params['poorvit'] == params['timm'] else 'NOT EQUAL'}); {_load()} before")
    times = {k: [] for k in steps}
    for r in range(args.repeats + 1):
        for name, step in steps.items():
            t = _fixed_batch_steps(step, args.steps)
            if r:
                times[name].append(t)
    best = {k: min(v) for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    for k in steps:
        print(f"{k:8s} {1e3 * best[k]:9.1f} ms/step  {args.batch / best[k]:8.1f} images/s   "
              f"(median {1e3 * med[k]:.1f} ms)")
    ratio, ratio_med = best["timm"] / best["poorvit"], med["timm"] / med["poorvit"]
    print(f"ratio poorvit/timm images/s: {ratio:.3f} (best of {args.repeats} interleaved passes of {args.steps} steps), "
          f"{ratio_med:.3f} (medians)")
    flops = train_flops(cfg, args.batch)
    peak = matmul_peak(device, torch.float32)
    achieved = flops / best["poorvit"]
    print(f"poorvit step: {flops / 1e9:.1f} GFLOP (forward + backward), {achieved / 1e9:.1f} GFLOP/s achieved; "
          f"a 2048^2 float32 matmul: {peak / 1e9:.1f} GFLOP/s; utilisation {100 * achieved / peak:.0f} %; {_load()} after")
    return {"poorvit_images_per_s": args.batch / best["poorvit"], "timm_images_per_s": args.batch / best["timm"],
            "ratio": ratio, "ratio_median": ratio_med, "gflops_per_s": achieved / 1e9, "peak_gflops_per_s": peak / 1e9}


@bench("matmul")
def matmul_bench(args) -> dict:
    """GFLOP/s of one large square matmul in each precision the device computes natively: the ceiling that
    model FLOP utilisation is measured against."""
    from .profile import fast_precisions, matmul_peak
    from .runs import device_name
    from .train import default_device
    device = torch.device(args.device) if args.device else default_device()
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    out = {}
    for p in fast_precisions(device):
        out[p] = matmul_peak(device, dtypes[p]) / 1e9
        n = 8192 if device.type == "cuda" else 2048
        print(f"matmul {n}x{n} @ {n}x{n}, {p}: {out[p]:10,.1f} GFLOP/s on {device_name(device)} (best of 5)")
    print(f"matmul: {_load()}")
    return out


@bench("compile")
def compile_bench(args) -> dict:
    """ms per training step of the `paper` model, eager vs `torch.compile`, at batch `--batch`, in bfloat16
    autocast on a GPU that has it and float32 elsewhere; the first compiled step's time includes compiling."""
    from .profile import TrainingStep, fast_precisions
    from .runs import device_name
    from .train import default_device
    device = torch.device(args.device) if args.device else default_device()
    precision = "bf16" if device.type == "cuda" and "bf16" in fast_precisions(device) else "fp32"
    print(f"compile: paper preset, batch {args.batch}, {precision}, on {device_name(device)}; {_load()} before")
    out = {}
    for compiled in (False, True):
        _, cfg, train_cfg, data = _step_setup(args, precision, compiled)
        step = TrainingStep(cfg, train_cfg, data.train_x, data.train_y, device)
        t0 = time.perf_counter()
        _fixed_batch_steps(step, 1)                  # compiles the forward and the backward graphs
        first = time.perf_counter() - t0
        best = min(_fixed_batch_steps(step, args.steps) for _ in range(args.repeats))
        name = "torch.compile" if compiled else "eager"
        out[name] = 1e3 * best
        print(f"{name:14s} {1e3 * best:9.1f} ms/step  {args.batch / best:8.1f} images/s   (first step {first:.1f} s)")
        del step
    print(f"speed-up from compiling: {out['eager'] / out['torch.compile']:.2f}x; {_load()} after")
    return out

# ---- the CPU recipe: test accuracy after a wall-clock budget on this machine's cores ---------------------

def _fresh_run(model_cfg, train_cfg, data, device, **kwargs):
    """`train()` from scratch into a throwaway folder: never from the run cache, nothing left on disk."""
    import tempfile

    from .train import train
    with tempfile.TemporaryDirectory() as out:
        return train(model_cfg, train_cfg, data, out=out, cache=False, device=device, **kwargs)


@bench("cpu-recipe")
def cpu_recipe_bench(args) -> dict:
    """The CPU recipe (`python -m poorvit train --preset cpu`) from scratch, once per seed in `--seeds`, on its
    wall-clock budget (`--minutes`, default the recipe's 10): the full-test accuracy and the wall time of each
    run (model build, training, evaluation), then their mean and standard deviation. Not part of `all`."""
    import statistics

    from .config import get_config, get_train_config
    from .data import load_cifar10
    from .runs import device_name, write_json
    if args.what == "all":
        print("cpu-recipe: skipped by `all` (minutes per seed); run `python -m poorvit bench cpu-recipe`")
        return {}
    device = torch.device(args.device or "cpu")
    over = {} if args.minutes is None else {"minutes": args.minutes}
    seeds = [int(s) for s in args.seeds.split(",")]
    data = load_cifar10()
    accs, secs = [], []
    for seed in seeds:
        model_cfg, train_cfg = get_config("cpu"), get_train_config("cpu", seed=seed, **over)
        print(f"cpu-recipe: seed {seed}, {train_cfg.minutes:g} minutes on {device_name(device)}; {_load()} before")
        run_ = _fresh_run(model_cfg, train_cfg, data, device)
        if args.save:                                           # the run record (JSON, no weights) for results/
            Path(args.save).mkdir(parents=True, exist_ok=True)
            path = Path(args.save) / f"cpu-{train_cfg.minutes:g}min-s{seed}-{(run_.record.get('commit') or 'nogit')[:12]}.json"
            write_json(run_.record, path)
            print(f"cpu-recipe: record written to {path}")
        accs.append(run_.final_acc)
        secs.append(run_.record["seconds"])
        print(f"cpu-recipe: seed {seed}: test acc {100 * run_.final_acc:.2f} %  wall {run_.record['seconds']:.0f} s  "
              f"({run_.record['steps']} steps, {run_.record['epochs_run']} epochs); {_load()} after")
    sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
    print(f"cpu-recipe: {len(seeds)} seed(s): test acc {100 * statistics.mean(accs):.2f} ± {100 * sd:.2f} % "
          f"(mean ± std), wall {max(secs):.0f} s at most, {data.label}")
    return {"acc": accs, "seconds": secs, "mean": statistics.mean(accs), "std": sd}


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
]


@bench("cpu-levers")
def cpu_levers_bench(args) -> dict:
    """Each lever of the CPU recipe (`CPU_LEVERS`: one change each) trained from scratch with the same seed on
    the same wall-clock budget (`--minutes`, default 2), one after the other: the full-test accuracy, steps and
    epochs each reached. `--save FILE.json` keeps the table with its machine, load and commit. Not part of `all`."""
    from dataclasses import asdict

    from .config import get_config, get_train_config
    from .data import load_cifar10
    from .runs import device_name, git_commit, write_json
    if args.what == "all":
        print("cpu-levers: skipped by `all` (minutes per lever); run `python -m poorvit bench cpu-levers`")
        return {}
    device = torch.device(args.device or "cpu")
    minutes = args.minutes or 2.0
    seed = int(args.seeds.split(",")[0])
    data = load_cifar10()
    only = set(args.levers.split(",")) if args.levers else None
    rows = []
    for i, (name, model_over, train_over) in enumerate(CPU_LEVERS):
        if only is not None and str(i) not in only:
            continue
        changes = ", ".join(f"{k}={v}" for k, v in {**model_over, **train_over}.items()) or "-"
        train_over = dict(train_over)
        threads, all_threads = train_over.pop("threads", None), torch.get_num_threads()   # not a config field
        model_cfg = get_config("cpu", **model_over)
        train_cfg = get_train_config("cpu", **{"seed": seed, "minutes": minutes, **train_over})
        before = _load()
        try:
            if threads:
                torch.set_num_threads(threads)
            run_ = _fresh_run(model_cfg, train_cfg, data, device, progress=None)
        except Exception as err:                  # one lever failing (e.g. no compiler for torch.compile) is a result
            rows.append({"lever": name, "changes": changes, "error": f"{type(err).__name__}: {str(err)[:200]}"})
            print(f"cpu-levers: {name:40s} failed: {rows[-1]['error']}", flush=True)
            continue
        finally:
            torch.set_num_threads(all_threads)
        rec = run_.record
        rows.append({"lever": name, "changes": changes,
                     "test acc %": round(100 * run_.final_acc, 2), "steps": rec["steps"],
                     "epochs": round(rec["steps"] * train_cfg.batch_size / len(data.train_y), 2),
                     "params": rec["params"], "wall s": round(rec["seconds"], 1), "load before": before.split()[-3]})
        print(f"cpu-levers: {name:40s} test acc {100 * run_.final_acc:6.2f} %  {rec['steps']:6d} steps  "
              f"{rows[-1]['epochs']:5.2f} epochs  {rec['seconds']:4.0f} s; {before}", flush=True)
    out = {"benchmark": f"python -m poorvit bench cpu-levers --minutes {minutes:g} --seeds {seed}",
           "minutes": minutes, "seed": seed, "model": asdict(get_config("cpu")),
           "train": asdict(get_train_config("cpu", seed=seed, minutes=minutes)), "device_name": device_name(device), "threads": torch.get_num_threads(),
           "dataset": data.label, "commit": git_commit(), "torch": torch.__version__, "rows": rows}
    if args.save:
        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        write_json(out, Path(args.save))
        print(f"cpu-levers: table written to {args.save}")
    return out


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="measure speed: " + ", ".join(BENCHES))
    p.add_argument("what", choices=list(BENCHES) + ["all"])
    p.add_argument("--scale", default=None, help="take the augmentation recipe of this scale (default: the study's, paper)")
    p.add_argument("--device", default=None)
    p.add_argument("--images", type=int, default=10240, help="images per timed pass")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: CPU cores)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved timed passes of each; the best counts")
    p.add_argument("--threads", type=int, default=None, help="torch threads of the main process (default: torch's)")
    p.add_argument("--batch", type=int, default=256, help="step, compile: images per training step")
    p.add_argument("--steps", type=int, default=3, help="step, compile: training steps per timed pass")
    p.add_argument("--minutes", type=float, default=None, help="cpu-recipe: the wall-clock budget (default: the recipe's)")
    p.add_argument("--save", default=None, help="cpu-recipe: a folder for each run's record (e.g. results/cpu); "
                   "cpu-levers: a JSON file for the table (e.g. results/cpu/levers.json)")
    p.add_argument("--levers", default=None, help="cpu-levers: comma-separated indices of CPU_LEVERS to run (default: all)")
    p.add_argument("--seeds", default="0", help="cpu-recipe: comma-separated seeds, one run each (e.g. 0,1,2)")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cuda: {torch.cuda.is_available()}")
    for name, fn in BENCHES.items():
        if args.what in (name, "all"):
            fn(args)
    return 0

"""Benchmarks (`python -m poorvit bench WHAT`): measured speed, printed with the machine that
measured it.

    python -m poorvit bench loader    # images/s of the study's augmentation: device vs DataLoader

Speed is a claim measured here, never asserted by a unit test. Each benchmark prints its setting,
the device, and the numbers; run it on an otherwise idle machine. Every time is read through
`poorvit.timing.Timer` (synchronized with the device); torch is imported when a benchmark runs.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

BENCHES = {}


def bench(name):
    """Register a benchmark under `name` (a choice of `python -m poorvit bench`)."""
    def register(fn):
        BENCHES[name] = fn
        return fn
    return register


def _timed_pass(batches, device) -> float:
    """Seconds to exhaust an iterable of (x, target) batches (the device finishes its work)."""
    from ..timing import Timer
    with Timer(device) as t:
        for _ in batches:
            pass
    return t.ms / 1e3


def load_average() -> str:
    """The machine's load ("load average 1.02 0.98 0.75"), printed before and after a benchmark."""
    try:
        return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "load average unknown"


@bench("loader")
def loader_bench(args) -> dict:
    """The study's full training augmentation (crop, flip, AutoAugment CIFAR-10, normalize, random
    erasing, Mixup/CutMix, repeated augmentation) alone, as device-resident batches, in images/s on
    the device; its share of a training step (augmenting a batch over augmenting it plus the
    `paper` model's step on it: at most 20 % on a GPU for the pipeline not to be the bottleneck);
    and torchvision's per-image pipeline in a DataLoader (`augment.per_image_loader`) beside it.

    Both pipelines run the same ops on the same images, with the same core budget (DataLoader
    workers = CPU cores; the device path runs in the main process with torch's threads),
    interleaved `--repeats` times; the best pass of each counts, since other work on the machine
    only ever slows a pass down. `--tiny`: 512 random images, batches of 32, the micro model's
    step, no DataLoader workers, on the CPU unless `--device` (CI, seconds).
    """
    import torch

    from ..augment import TrainTransform, per_image_loader
    from ..config import get_train_config
    from ..data import DeviceLoader
    from ..device import get_device

    device = get_device(args.device or ("cpu" if args.tiny else None))
    images, labels, label = _bench_images(args)
    n, bs = min(args.images, len(labels)), 32 if args.tiny else 256
    cfg = get_train_config(args.scale or "paper", batch_size=bs)
    transform = TrainTransform.from_config(cfg)
    ours = DeviceLoader(images[:n], labels[:n], bs, True, device, transform=transform,
                        repeats=cfg.repeats, full_repeats=cfg.full_repeats)
    default_workers = 0 if args.tiny else (os.cpu_count() or 1)
    workers = args.workers if args.workers is not None else default_workers
    # batch-level mixing in the main process, as in timm / the study
    dl = per_image_loader(images[:n], labels[:n], cfg, bs, workers, mix=True)

    print(f"pipeline: {transform}, repeats {cfg.repeats}")
    print(f"{n:,} images of {label} per pass, batch {bs}; {load_average()} before")
    best = {"device": math.inf, "per_image": math.inf}
    for r in range(args.repeats + 1):    # pass 0 warms both up (workers, allocator), not counted
        t_ours = _timed_pass(iter(ours), device)
        t_theirs = _timed_pass(iter(dl), torch.device("cpu"))
        if r:
            best["device"] = min(best["device"], t_ours)
            best["per_image"] = min(best["per_image"], t_theirs)
    rate_ours, rate_theirs = len(ours) * bs / best["device"], len(dl) * bs / best["per_image"]
    print(f"device-resident loader on {device} ({torch.get_num_threads()} threads): "
          f"{rate_ours:10,.0f} images/s")
    print(f"torchvision per-image pipeline, DataLoader with {workers} workers:  "
          f"{rate_theirs:10,.0f} images/s")
    print(f"ratio: {rate_ours / rate_theirs:.1f}x  (best of {args.repeats} interleaved passes "
          f"each)")
    aug_ms = 1e3 * bs / rate_ours
    step_times = _step_times({"step": _bench_step(args, device, bs, images, labels)}, args)
    step_ms = 1e3 * step_times["step"]["median"]
    share = aug_ms / (aug_ms + step_ms)
    verdict = ("" if device.type != "cuda" else
               "  (at most 20 %: not the bottleneck)" if share <= 0.2 else
               "  (ABOVE 20 %: the augmentation is the bottleneck)")
    print(f"share of a step: augmenting a batch {aug_ms:.2f} ms, the {_model_name(args)} model's "
          f"step on it {step_ms:.2f} ms (median, fixed batch): {100 * share:.1f} % of "
          f"{aug_ms + step_ms:.2f} ms{verdict}; {load_average()} after")
    return {"device_loader": rate_ours, "per_image_dataloader": rate_theirs,
            "ratio": rate_ours / rate_theirs, "augment_ms_per_batch": aug_ms,
            "step_ms": step_ms, "augment_share": share}


def _model_name(args) -> str:
    return "micro" if args.tiny else "paper"


def _bench_images(args):
    """(uint8 images, labels, their name) for a benchmark: CIFAR-10's training set, or with `--tiny`
    512 random images (speed does not depend on the pixels; CI needs no data)."""
    import torch
    if args.tiny:
        g = torch.Generator().manual_seed(0)
        return (torch.randint(0, 256, (512, 3, 32, 32), dtype=torch.uint8, generator=g),
                torch.randint(0, 10, (512,), generator=g), "random pixels")
    from ..data import load_cifar10
    data = load_cifar10()
    return data.train_x, data.train_y, data.label


def _bench_step(args, device, batch: int, images, labels, compile=False, model=None):
    """A `timing.BenchStep` of the step bench's model (`paper`; `--tiny`: micro) at `batch`, the
    recipe's precision (`--precision`, default float32 as the study's code), AdamW as `train()`
    builds it (fused on a GPU), compiled with `compile` (a mode or False; on a CPU with `--tiny`
    through the "aot_eager" backend: inductor takes a minute there), `model` instead of poorvit's
    (timm's)."""
    from ..config import get_config, get_train_config
    from ..timing import BenchStep
    cfg = get_config(_model_name(args))
    train_cfg = get_train_config("paper", batch_size=batch, precision=args.precision or "fp32",
                                 compile=compile)
    backend = "aot_eager" if compile and args.tiny and device.type == "cpu" else "inductor"
    return BenchStep(cfg, train_cfg, images, labels, device, model=model, backend=backend)


def _step_times(steps: dict, args) -> dict:
    """Seconds per step of each `BenchStep` in `steps` on one batch held on the device (data left
    out, the same batch all along: a compiled step compiles once, in the 2 untimed steps), in
    `passes` interleaved passes of `--steps` steps, each pass timed whole by one `timing.Timer`
    (one synchronization per pass: a step that never waits lets the host run ahead, as in
    training). {label: {"median", "min", "max", "passes"}}; passes: `--repeats`, at least 5."""
    import statistics

    from ..timing import Timer
    passes = max(args.repeats, 5)
    held = {name: step.data() for name, step in steps.items()}

    def run(name, n):
        step, (x, y) = steps[name], held[name]
        for _ in range(n):
            step.backward(step.forward(x, y))
            step.optimizer()

    for name in steps:
        run(name, 2)
    times = {k: [] for k in steps}
    for _ in range(passes):
        for name, step in steps.items():
            with Timer(step.device) as t:
                run(name, args.steps)
            times[name].append(t.ms / 1e3 / args.steps)
    return {k: {"median": statistics.median(v), "min": min(v), "max": max(v), "passes": v}
            for k, v in times.items()}


# ---- chapter 9, profiling: a training step against timm's, the matmul peak, torch.compile ------

def timm_vit(cfg):
    """timm's `VisionTransformer` built to a plain `ViTConfig` (one class token, learned positions,
    MHA)."""
    from timm.models.vision_transformer import VisionTransformer
    if (cfg.n_cls != 1 or cfg.kv_heads != cfg.n_head or cfg.q_rank or cfg.kv_rank or cfg.lowrank
            or cfg.pos_embed != "learned"):
        raise ValueError("timm's VisionTransformer has one class token, learned positions and "
                         "plain multi-head attention: compare a plain config")
    return VisionTransformer(img_size=cfg.image_size, patch_size=cfg.patch_size,
                             in_chans=cfg.in_chans, num_classes=cfg.n_classes,
                             embed_dim=cfg.n_embd, depth=cfg.n_layer, num_heads=cfg.n_head,
                             mlp_ratio=cfg.mlp_ratio, qkv_bias=cfg.qkv_bias, class_token=True,
                             global_pool="token", drop_path_rate=cfg.drop_path)


def _step_setup(args, precision: str = "fp32", compile: bool = False):
    """(device, the paper model's config, its recipe at `--batch`, CIFAR-10) for a step bench."""
    from ..config import get_config, get_train_config
    from ..data import load_cifar10
    from ..device import get_device
    device = get_device(args.device)
    cfg = get_config("paper")
    train_cfg = get_train_config("paper", batch_size=args.batch, precision=precision,
                                 compile=compile)
    data = load_cifar10()
    return device, cfg, train_cfg, data


def _fixed_batch_steps(step, n: int) -> float:
    """Seconds per step of `n` forward-backward-optimizer steps on one batch (data left out)."""
    from ..timing import Timer
    x, y = step.data()
    with Timer(step.device) as t:
        for _ in range(n):
            step.backward(step.forward(x, y))
            step.optimizer()
    return t.ms / 1e3 / n


@bench("step")
def step_bench(args) -> dict:
    """ms per training step, images/s and model FLOP utilisation of poorvit's `paper` model eager,
    compiled whole (`--compile-mode`, default "default" and, on a GPU, "reduce-overhead": CUDA
    graphs), and timm's VisionTransformer built to the same config (the `bench` extra; its row is
    skipped with a line when timm is missing): same batch, same AdamW, same precision, one batch
    held on the device (`bench loader` measures the data). Each row's median over interleaved
    passes is printed with its spread (min-max); MFU is `cost.train_flops` (poorvit's matmul
    FLOPs, timm's model has the same) over the device's matmul peak in that precision.
    `--tiny`: the micro model at batch 32 on the CPU (compiled through "aot_eager"), in seconds.
    """
    import torch

    from ..cost import mfu, train_flops
    from ..device import PRECISIONS, device_name, get_device
    from ..optim import adamw_kind
    from ..timing import matmul_peak
    device = get_device(args.device or ("cpu" if args.tiny else None))
    batch = min(args.batch, 32) if args.tiny else args.batch
    images, labels, _ = _bench_images(args)
    modes = (args.compile_mode.split(",") if args.compile_mode else
             ["default", "reduce-overhead"] if device.type == "cuda" else ["default"])
    modes = [m for m in modes if m != "none"]
    steps = {"poorvit eager": _bench_step(args, device, batch, images, labels)}
    for mode in modes:
        step = _bench_step(args, device, batch, images, labels, compile=mode)
        backend = "" if step.step.backend == "inductor" else f", {step.step.backend}"
        steps[f"poorvit compiled ({mode}{backend})"] = step
    cfg = steps["poorvit eager"].step.model.cfg
    try:
        import timm  # noqa: F401
        torch.manual_seed(0)
        steps["timm ViT"] = _bench_step(args, device, batch, images, labels, model=timm_vit(cfg))
    except ImportError:
        print("timm ViT: skipped, timm is not installed (pip install -e .[bench])")
    first = steps["poorvit eager"]
    print(f"step: {_model_name(args)} preset (patch {cfg.patch_size}, {cfg.n_embd} wide, "
          f"{cfg.n_layer} blocks, {cfg.n_head} heads, MLP ratio {cfg.mlp_ratio:g}), batch {batch}, "
          f"{args.precision or 'fp32'} (autocast {first.dtype}), AdamW ({adamw_kind(first.opt)}),"
          f" on {device_name(device)}; {load_average()} before")
    times = _step_times(steps, args)
    flops = train_flops(cfg, batch)
    dtype = PRECISIONS[args.precision or "fp32"] or torch.float32
    peak = matmul_peak(device, dtype, 1024 if args.tiny else None)
    print(f"{'':40s} {'ms/step':>9s} {'(min-max)':>17s} {'images/s':>10s} {'MFU':>6s}")
    out = {"device": device_name(device), "batch": batch, "train_flops": flops,
           "peak_flops": peak, "rows": {}}
    for name, t in times.items():
        util = mfu(flops, t["median"], peak)
        print(f"{name:40s} {1e3 * t['median']:9.2f} ({1e3 * t['min']:7.2f}-{1e3 * t['max']:7.2f})"
              f" {batch / t['median']:10,.0f} {100 * util:5.1f}%")
        out["rows"][name] = {"ms": 1e3 * t["median"], "ms_min": 1e3 * t["min"],
                             "ms_max": 1e3 * t["max"], "images_per_s": batch / t["median"],
                             "mfu": util}
    print(f"medians of {len(t['passes'])} interleaved passes of {args.steps} steps each; "
          f"{flops / 1e9:.2f} GFLOP a step, matmul peak {peak / 1e9:,.0f} GFLOP/s "
          f"({str(dtype).removeprefix('torch.')}); {load_average()} after")
    if not args.tiny and batch == 256:
        fastest = min(v["ms"] for k, v in out["rows"].items() if k.startswith("poorvit"))
        out["paper_baseline_s"] = 58_500 * fastest / 1e3
        print(f"the study's baseline (58,500 steps of 256) at the fastest poorvit row: "
              f"{out['paper_baseline_s']:,.0f} s of steps, augmentation, evaluation and "
              f"checkpoints not included (the study: 4,658 s in all)")
    return out


@bench("matmul")
def matmul_bench(args) -> dict:
    """GFLOP/s of one large square matmul in each precision the device computes natively: the
    ceiling that model FLOP utilisation is measured against."""
    import torch

    from ..device import PRECISIONS, device_name, fast_precisions, get_device
    from ..timing import matmul_peak, matmul_size
    device = get_device(args.device)
    out = {}
    n = matmul_size(device)
    for p in fast_precisions(device):
        out[p] = matmul_peak(device, PRECISIONS[p] or torch.float32, n) / 1e9
        print(f"matmul {n}x{n} @ {n}x{n}, {p}: {out[p]:10,.1f} GFLOP/s on {device_name(device)} "
              f"(best of 5)")
    print(f"matmul: {load_average()}")
    return out


@bench("compile")
def compile_bench(args) -> dict:
    """ms per training step of the `paper` model, eager vs `torch.compile`, at batch `--batch`, in
    bfloat16 autocast on a GPU that has it and float32 elsewhere; the first compiled step's time
    includes compiling."""
    from ..device import device_name, fast_precisions, get_device
    from ..timing import BenchStep, Timer
    device = get_device(args.device)
    precision = "bf16" if device.type == "cuda" and "bf16" in fast_precisions(device) else "fp32"
    print(f"compile: paper preset, batch {args.batch}, {precision}, on {device_name(device)}; "
          f"{load_average()} before")
    out = {}
    for compiled in (False, True):
        _, cfg, train_cfg, data = _step_setup(args, precision, compiled)
        step = BenchStep(cfg, train_cfg, data.train_x, data.train_y, device)
        with Timer(device) as first:
            _fixed_batch_steps(step, 1)              # compiles the forward and the backward graphs
        best = min(_fixed_batch_steps(step, args.steps) for _ in range(args.repeats))
        name = "torch.compile" if compiled else "eager"
        out[name] = 1e3 * best
        print(f"{name:14s} {1e3 * best:9.1f} ms/step  {args.batch / best:8.1f} images/s   "
              f"(first step {first.ms / 1e3:.1f} s)")
        del step
    print(f"speed-up from compiling: {out['eager'] / out['torch.compile']:.2f}x; "
          f"{load_average()} after")
    return out


def _gpu_checks(args):
    """(name, function -> detail string or (detail, numbers for the record), reason to skip or
    None) of every path `bench gpu` checks. `--tiny`: the micro model on 2 small batches, on the
    CPU unless --device says otherwise (the compiled step included: inductor on the CPU)."""
    import time

    import torch
    import torch.distributed as dist

    from ..config import get_config, get_train_config
    from ..device import ampere_or_newer, get_device
    from ..model import ViT
    from ..train import TrainStep
    device = get_device(args.device or ("cpu" if args.tiny else None))
    cuda = device.type == "cuda"
    preset, batch = ("micro", 16) if args.tiny else ("paper", 256)
    no_cuda = None if cuda else "needs CUDA (this run is on the CPU)"

    def batch_on(n=batch):
        return (torch.randn(n, 3, 32, 32, device=device), torch.randint(0, 10, (n,), device=device))

    def step_of(**over) -> TrainStep:
        torch.manual_seed(0)
        cfg = get_train_config("smoke", **over)
        return TrainStep(ViT(get_config(preset)).to(device), cfg, device)

    def one_step(precision, compile=False) -> str:
        step = step_of(precision=precision, compile=compile)
        losses = [step(*batch_on())[0].item() for _ in range(2)]
        assert all(math.isfinite(v) for v in losses), losses
        if not compile:
            return f"loss {losses[0]:.3f} -> {losses[1]:.3f}, dtype {step.dtype}"
        eager = step_of(precision=precision)          # the same weights and batches, not compiled
        same = [eager(*batch_on())[0].item() for _ in range(2)]
        tol = 1e-3 if step.dtype is None else 3e-2
        assert all(abs(a - b) <= tol for a, b in zip(losses, same)), (losses, same)
        return (f"loss {losses[0]:.3f} -> {losses[1]:.3f}, dtype {step.dtype}; eager "
                f"{same[0]:.3f} -> {same[1]:.3f}")

    def resume() -> str:
        saved = step_of(precision="fp32")
        saved(*batch_on())
        fp16 = step_of(precision="fp16")
        fp16.load_state_dict(saved.state_dict())         # no scaler state: a fresh scaler
        fp16(*batch_on())
        return "fp32 checkpoint resumed in fp16 and stepped"

    def sdpa(kv) -> str:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        torch.manual_seed(0)
        model = ViT(get_config(preset, n_kv_head=kv)).to(device)
        done = []
        for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION):
            with sdpa_kernel(backend), torch.autocast("cuda", dtype=torch.float16):
                model(batch_on()[0]).float().sum().backward()
            done.append(backend.name)
        return ", ".join(done)

    def ddp() -> str:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29517")
        dist.init_process_group("nccl", rank=0, world_size=1, device_id=device)
        try:
            torch.manual_seed(0)
            step = TrainStep(ViT(get_config(preset)).to(device), get_train_config("smoke"), device,
                             ddp=True)
            return f"loss {step(*batch_on())[0].item():.3f} under NCCL, world 1"
        finally:
            dist.destroy_process_group()

    def demo_epoch() -> tuple[str, dict]:
        import tempfile

        from ..cost import train_flops
        from ..data import load_cifar10
        from ..train import train
        cfg = get_train_config("demo", epochs=1, warmup_epochs=0.1)
        torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            run_ = train(get_config("paper"), cfg, load_cifar10(), out=out, cache=False,
                         device=device, progress=None)
        seconds = time.perf_counter() - t0
        ips = run_.history[-1]["images_per_s"]
        rate = train_flops(get_config("paper"), 1) * ips      # the rate poorvit.ledger reads
        peak = torch.cuda.max_memory_allocated(device) / 2**30
        return (f"{seconds:.0f} s for one demo epoch ({ips:,.0f} img/s, {rate / 1e12:.1f} "
                f"TFLOP/s, {run_.record['autocast_dtype']}), peak memory {peak:.2f} GiB",
                {"images_per_s": ips, "train_flops_per_s": rate,
                 "autocast_dtype": run_.record["autocast_dtype"]})

    bf16_skip = (None if not cuda or ampere_or_newer(device)
                 else "no native bf16 (capability < 8.0)")
    return device, [
        ("precision fp32", lambda: one_step("fp32"), None),
        ("precision bf16", lambda: one_step("bf16"), bf16_skip),
        ("precision fp16 + GradScaler", lambda: one_step("fp16"), None),
        ("precision auto", lambda: one_step("auto"), None),
        ("torch.compile step", lambda: one_step("auto", compile=True),
         "--no-compile" if args.no_compile else None),
        ("resume fp32 -> fp16", resume, None),
        ("SDPA backends, MHA", lambda: sdpa(None), no_cuda),
        ("SDPA backends, GQA", lambda: sdpa(2), no_cuda),
        ("SDPA backends, MQA", lambda: sdpa(1), no_cuda),
        ("DDP with NCCL, one process", ddp, no_cuda),
        ("one demo epoch, timed; peak memory", demo_epoch, no_cuda if not args.tiny else
         "--tiny: no demo epoch"),
    ]


@bench("gpu")
def gpu_bench(args) -> dict:
    """Every CUDA path the course takes, checked on this machine: a step in each precision, a
    compiled step, resuming an fp32 checkpoint in fp16, SDPA's flash and memory-efficient backends
    for MHA, GQA and MQA, DDP with NCCL in one process, one demo epoch timed with its peak memory.
    Prints PASS / FAIL / SKIP (with the reason) per check; writes a JSON record naming the device
    (`--save`, default results/gpu/<device>.json on a GPU). `--tiny`: the same on the CPU, micro
    model (what needs CUDA is SKIP; the compiled step runs, on inductor's CPU backend, unless
    `--no-compile`). The demo epoch's row holds its `train_flops_per_s`: on a T4 it replaces the
    estimated rate of `poorvit.ledger` (each chapter's time at `demo`). Exit status 1 when a check
    fails."""
    import time
    import traceback

    import torch

    from ..device import device_name
    from ..runs import write_json
    device, checks = _gpu_checks(args)
    rows = []
    for name, fn, skip in checks:
        t0, numbers = time.perf_counter(), {}
        if skip:
            status, detail = "SKIP", skip
        else:
            try:
                status, detail = "PASS", fn()
                detail, numbers = detail if isinstance(detail, tuple) else (detail, {})
            except Exception as exc:                       # a failed check is a result: go on
                status, detail = "FAIL", f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
        rows.append({"check": name, "status": status, "detail": detail,
                     "seconds": round(time.perf_counter() - t0, 2), **numbers})
        print(f"{status:4}  {name}: {detail}", flush=True)
    out = {"device": str(device), "device_name": device_name(device), "torch": torch.__version__,
           "capability": (list(torch.cuda.get_device_capability(device))
                          if device.type == "cuda" else None),
           "tiny": bool(args.tiny), "checks": rows,
           "passed": all(r["status"] != "FAIL" for r in rows)}
    save = args.save or (None if device.type != "cuda" else
                         f"results/gpu/{out['device_name'].replace(' ', '-')}.json")
    if save:
        Path(save).parent.mkdir(parents=True, exist_ok=True)
        write_json(out, Path(save))
        print(f"gpu: record written to {save}")
    args.failed = not out["passed"]
    return out


def add_parser(sub) -> None:
    """Register `bench`: measure speed (each benchmark of `BENCHES`, or all; `cpu_recipe` adds the
    CPU recipe's two)."""
    from . import cpu_recipe  # noqa: F401  (registers cpu-recipe and cpu-levers)
    p = sub.add_parser("bench", help="measure speed: " + ", ".join(BENCHES))
    p.add_argument("what", choices=list(BENCHES) + ["all"])
    p.add_argument("--scale", default=None,
                   help="take the augmentation recipe of this scale (default: the study's, paper)")
    p.add_argument("--device", default=None)
    p.add_argument("--images", type=int, default=10240, help="images per timed pass")
    p.add_argument("--workers", type=int, default=None,
                   help="DataLoader workers (default: CPU cores)")
    p.add_argument("--repeats", type=int, default=3,
                   help="interleaved timed passes of each; the best counts")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads of the main process (default: torch's)")
    p.add_argument("--batch", type=int, default=256, help="step, compile: images per training step")
    p.add_argument("--steps", type=int, default=3,
                   help="step, compile: training steps per timed pass")
    p.add_argument("--minutes", type=float, default=None,
                   help="cpu-recipe: the wall-clock budget (default: the recipe's)")
    p.add_argument("--save", default=None,
                   help="cpu-recipe: a folder for each run's record (e.g. results/cpu); "
                        "cpu-levers: a JSON file for the table (e.g. results/cpu/levers.json)")
    p.add_argument("--levers", default=None,
                   help="cpu-levers: comma-separated indices of CPU_LEVERS to run (default: all)")
    p.add_argument("--tiny", action="store_true",
                   help="gpu: the same checks on the CPU with the micro model (CI); step, "
                        "loader: the micro model, small batches, on the CPU, in seconds")
    p.add_argument("--compile-mode", default=None,
                   help="step: comma-separated torch.compile modes to time (default: default, "
                        "and reduce-overhead on a GPU; none: eager only)")
    p.add_argument("--precision", default=None,
                   help="step, loader: the step's precision (default fp32, the study's)")
    p.add_argument("--no-compile", action="store_true",
                   help="gpu: skip the compiled step (inductor takes ~0.5-2 minutes on a CPU)")
    p.add_argument("--seeds", default="0",
                   help="cpu-recipe: comma-separated seeds, one run each (e.g. 0,1,2)")
    p.set_defaults(func=run)


def run(args) -> int:
    """Run the benchmark `what` names (every one for `all`), after a line naming torch's setup."""
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"cuda: {torch.cuda.is_available()}")
    for name, fn in BENCHES.items():
        if args.what in (name, "all"):
            fn(args)
    return 1 if getattr(args, "failed", False) else 0


__all__ = ["BENCHES", "bench", "load_average", "timm_vit", "add_parser", "run"]

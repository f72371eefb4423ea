"""Benchmarks (`python -m poorvit bench WHAT`): measured speed, printed with the machine that measured it.

    python -m poorvit bench loader    # images/s: the device-resident loader vs torchvision's PIL DataLoader

Speed is a claim measured here, never asserted by a unit test. Each benchmark prints its setting, the
device, and the numbers; run it on an otherwise idle machine.
"""
from __future__ import annotations

import os
import time

import torch

BENCHES = {}


def bench(name):
    def register(fn):
        BENCHES[name] = fn
        return fn
    return register


def _rate(make_iter, n_images: int, warmup: int = 1) -> float:
    """Images per second to exhaust `make_iter()` (after `warmup` untimed passes)."""
    for _ in range(warmup):
        for _ in make_iter():
            pass
    t0 = time.perf_counter()
    for _ in make_iter():
        pass
    return n_images / (time.perf_counter() - t0)


@bench("loader")
def loader_bench(args) -> dict:
    """The training augmentation of the chosen scale, as device-resident batches vs a PIL DataLoader."""
    import torchvision
    import torchvision.transforms as T

    from .augment import TrainTransform
    from .config import get_train_config
    from .data import MEAN, STD, DeviceLoader, load_cifar10
    from .train import default_device

    data = load_cifar10()
    n, bs = args.images, 256
    cfg = get_train_config(args.scale)
    device = torch.device(args.device) if args.device else default_device()
    ours = DeviceLoader(data.train_x[:n], data.train_y[:n], bs, True, device, transform=TrainTransform.from_config(cfg))

    def ours_iter():
        for x, y in ours:
            yield x.sum().item() if device.type == "cuda" else x

    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    pil_tf = T.Compose([T.RandomCrop(32, padding=cfg.crop_pad), T.RandomHorizontalFlip(), T.ToTensor(),
                        T.Normalize(MEAN, STD)])
    images = data.train_x[:n].permute(0, 2, 3, 1).numpy()

    class PILSet(torch.utils.data.Dataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            from PIL import Image
            return pil_tf(Image.fromarray(images[i])), int(data.train_y[i])

    dl = torch.utils.data.DataLoader(PILSet(), batch_size=bs, shuffle=True, num_workers=workers, drop_last=True,
                                     persistent_workers=workers > 0)
    ours_rate = _rate(ours_iter, len(ours) * bs)
    pil_rate = _rate(lambda: iter(dl), len(dl) * bs)
    print(f"augmentation: crop(pad {cfg.crop_pad}) + flip + normalize, batch {bs}, {n:,} images of {data.label}")
    print(f"device-resident loader on {device}: {ours_rate:12,.0f} images/s")
    print(f"torchvision DataLoader, PIL, {workers} workers: {pil_rate:12,.0f} images/s")
    print(f"ratio: {ours_rate / pil_rate:.1f}x")
    return {"device_loader": ours_rate, "pil_dataloader": pil_rate}


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="measure speed: " + ", ".join(BENCHES))
    p.add_argument("what", choices=list(BENCHES) + ["all"])
    p.add_argument("--scale", default=None, help="take the augmentation recipe of this scale")
    p.add_argument("--device", default=None)
    p.add_argument("--images", type=int, default=10240, help="images per timed pass")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: CPU cores)")
    p.set_defaults(func=run)


def run(args) -> int:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cuda: {torch.cuda.is_available()}")
    for name, fn in BENCHES.items():
        if args.what in (name, "all"):
            fn(args)
    return 0

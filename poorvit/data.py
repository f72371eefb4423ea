"""CIFAR-10 from the official binary archive, read without pickle, and a loader on the device.

Krizhevsky, "Learning Multiple Layers of Features from Tiny Images" (2009). The official
`cifar-10-binary.tar.gz` holds six files of records, each 1 label byte then 3072 pixel bytes (1024
red, 1024 green, 1024 blue, row-major 32x32). `load_cifar10` downloads it once (checksum verified,
with torchvision's download utilities) into `root` (default `$POORVIT_DATA`, else
`~/.cache/poorvit`) and reads the records with numpy. Files in that layout that did not come from
the verified archive are read as they are; if their record order is not the official one (e.g. the
offline JPEG copy of CIFAR-10), the data is labelled "CIFAR-10 (JPEG copy)", and every result
measured on it says so.

`DeviceLoader` keeps the whole dataset on the training device as uint8 (150 MB for the training set)
and produces shuffled, augmented, normalized batches there: no worker processes, no host-to-device
copy per step.
"""
from __future__ import annotations

import json
import os
import urllib.error
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torchvision.datasets.utils import (check_integrity, download_and_extract_archive,
                                        extract_archive)

from .device import get_device

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
ARCHIVE = "cifar-10-binary.tar.gz"
MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
FOLDER = "cifar-10-batches-bin"
TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]
TEST_FILE = "test_batch.bin"
RECORD = 1 + 3 * 32 * 32
RECORDS_PER_FILE = 10000
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MEAN = (0.4914, 0.4822, 0.4465)   # per-channel mean of the 50,000 official training images
STD = (0.2470, 0.2435, 0.2616)    # and their standard deviation (chapter 1 measures both)
# The first labels of the official files, in their official order: a fingerprint of the release.
_OFFICIAL_FIRST_TRAIN = [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
_OFFICIAL_FIRST_TEST = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]
_MARKER = "poorvit-verified.json"


class DatasetError(RuntimeError):
    """The dataset is missing, truncated or corrupt; the message says what to do."""


@dataclass(frozen=True)
class CIFAR10:
    """CIFAR-10 in memory as uint8 images and int64 labels, with the class names and a `label`
    naming the copy ("CIFAR-10" for the verified official release, "CIFAR-10 (JPEG copy)" ...)."""

    train_x: torch.Tensor   # (50000, 3, 32, 32) uint8
    train_y: torch.Tensor   # (50000,) int64
    test_x: torch.Tensor    # (10000, 3, 32, 32) uint8
    test_y: torch.Tensor    # (10000,) int64
    classes: tuple
    label: str              # "CIFAR-10", or "CIFAR-10 (JPEG copy)" for files in another order
    folder: str


def default_root() -> Path:
    """`$POORVIT_DATA`, else `$XDG_CACHE_HOME/poorvit`, else `~/.cache/poorvit`."""
    if os.environ.get("POORVIT_DATA"):
        return Path(os.environ["POORVIT_DATA"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "poorvit"


def load_cifar10(root: str | os.PathLike | None = None, download: bool = True) -> CIFAR10:
    """Train and test images (uint8, n x 3 x 32 x 32), labels (int64) and class names.

    Looks in `root/cifar-10-batches-bin/`; failing that extracts `root/cifar-10-binary.tar.gz`
    after verifying its MD5; failing that downloads the official archive (if `download`). Never
    substitutes other data: when nothing can be found or fetched, raises `DatasetError` saying how
    to get it. Read once per folder (cached in memory).
    """
    root = Path(root).expanduser() if root is not None else default_root()
    folder = root / FOLDER
    if not _complete(folder):
        _fetch(root, download)
    return _read(str(folder.resolve()))


def _complete(folder: Path) -> bool:
    return all((folder / f).exists() for f in [*TRAIN_FILES, TEST_FILE])


def _fetch(root: Path, download: bool) -> None:
    archive = root / ARCHIVE
    if archive.exists():
        if not check_integrity(str(archive), MD5):
            raise DatasetError(
                f"{archive} is corrupt or incomplete (its MD5 is not {MD5}). Delete it and run "
                f"again to download it, or place a good copy of the official archive there "
                f"({URL}).")
    elif download:
        try:
            download_and_extract_archive(URL, str(root), filename=ARCHIVE, md5=MD5,
                                         remove_finished=False)
            _write_marker(root)
            return
        except (urllib.error.URLError, OSError, RuntimeError) as err:
            if archive.exists() and not check_integrity(str(archive), MD5):
                archive.unlink()        # a partial download is never kept
            raise DatasetError(_missing_message(root, f"the download failed ({err})")) from err
    else:
        raise DatasetError(_missing_message(root, "downloading is off (download=False)"))
    extract_archive(str(archive), str(root))
    _write_marker(root)


def _missing_message(root: Path, why: str) -> str:
    return (f"CIFAR-10 is not in {root} ({FOLDER}/ with {', '.join(TRAIN_FILES)} and "
            f"{TEST_FILE}), and {why}.\n"
            f"Two ways out: connect to the internet once and run again (the official archive, "
            f"162 MB, is downloaded and checked), or place the official archive {ARCHIVE} (from "
            f"{URL}) in {root}. Set POORVIT_DATA to use another folder.")


def _write_marker(root: Path) -> None:
    marker = {"dataset": "CIFAR-10", "archive": ARCHIVE, "md5": MD5}
    (root / FOLDER / _MARKER).write_text(json.dumps(marker))


def _read_records(path: Path) -> tuple[np.ndarray, np.ndarray]:
    expected = RECORDS_PER_FILE * RECORD
    size = path.stat().st_size
    if size != expected:
        raise DatasetError(f"{path} has {size:,} bytes; a CIFAR-10 batch file has {expected:,} "
                           f"({RECORDS_PER_FILE:,} records of {RECORD:,} bytes). The file is "
                           f"truncated or not CIFAR-10: delete the folder {path.parent} and run "
                           f"again to download it afresh.")
    raw = np.fromfile(path, dtype=np.uint8).reshape(RECORDS_PER_FILE, RECORD)
    labels = raw[:, 0]
    if labels.max() >= len(CLASSES):
        raise DatasetError(f"{path} holds label {labels.max()}, but CIFAR-10 has {len(CLASSES)} "
                           f"classes: the file is corrupt. Delete the folder {path.parent} and run "
                           f"again.")
    return raw[:, 1:].reshape(-1, 3, 32, 32), labels


@lru_cache(maxsize=4)
def _read(folder: str) -> CIFAR10:
    folder = Path(folder)
    parts = [_read_records(folder / f) for f in TRAIN_FILES]
    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    test_x, test_y = _read_records(folder / TEST_FILE)
    official = (folder / _MARKER).exists() or (
        train_y[:10].tolist() == _OFFICIAL_FIRST_TRAIN
        and test_y[:20].tolist() == _OFFICIAL_FIRST_TEST)
    return CIFAR10(torch.from_numpy(train_x), torch.from_numpy(train_y.astype(np.int64)),
                   torch.from_numpy(test_x), torch.from_numpy(test_y.astype(np.int64)), CLASSES,
                   "CIFAR-10" if official else "CIFAR-10 (JPEG copy)", str(folder))


def normalize(x: torch.Tensor) -> torch.Tensor:
    """uint8 (or [0, 1] float) images (..., 3, H, W) -> float, per-channel standardized with
    CIFAR-10's MEAN and STD."""
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    # the constants filled on x's device: a tensor made from a Python list would be a copy from
    # the host that waits for a GPU, once per batch
    mean = torch.stack([x.new_full((), m) for m in MEAN]).view(-1, 1, 1)
    std = torch.stack([x.new_full((), s) for s in STD]).view(-1, 1, 1)
    return (x - mean) / std


# The largest value `normalize` gives a CIFAR-10 pixel: (1 - MEAN) / STD of green, 2.127.
_STANDARD_MAX = max((1 - m) / s for m, s in zip(MEAN, STD))


def model_input(images: torch.Tensor) -> torch.Tensor:
    """Images as the model takes them: uint8 (..., 3, H, W) pixels are normalized (`normalize`);
    float images must already be standardized and are returned as float32.

    Raises ValueError for float images that are raw pixels, not standardized: no negative value and
    either every value in [0, 1] (pixels scaled to [0, 1]) or a value above 2.127, the largest a
    standardized CIFAR-10 pixel reaches (pixels in [0, 255] as floats). The rule cannot refuse
    images standardized by `normalize`: they are never above 2.127, and none of CIFAR-10's 60,000
    images lies in [0, 1] once standardized (each has a value above 1 or below 0; measured over the
    training and test sets). Random test inputs (`torch.randn`) have negative values and pass."""
    if images.dtype == torch.uint8:
        return normalize(images)
    if not images.is_floating_point():
        raise ValueError(f"images of dtype {images.dtype}: pass uint8 pixels (0..255) or float "
                         f"images standardized with poorvit.data.normalize")
    x = images.float()
    if x.numel() and x.min() >= 0 and (x.max() <= 1 or x.max() > _STANDARD_MAX + 1e-3):
        scale = "[0, 1]" if x.max() <= 1 else f"[0, {x.max().item():.4g}]"
        raise ValueError(f"float images with values in {scale} look like raw pixels, not "
                         f"standardized ones: call poorvit.data.normalize(images) first (it takes "
                         f"uint8 or [0, 1] images), or pass the uint8 images as they are")
    return x


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """Inverse of `normalize`, clamped to [0, 1] for display."""
    mean = torch.tensor(MEAN, device=x.device).view(-1, 1, 1)
    std = torch.tensor(STD, device=x.device).view(-1, 1, 1)
    return (x * std + mean).clamp(0, 1)


class DeviceLoader:
    """Batches from images held on `device` as uint8, augmented and normalized on the device.

    * `train=True`: each epoch a fresh random order (seeded by `seed` and the epoch), drop-last, and
      `transform(x_uint8, y, generator) -> (x_float, target)` on each batch. With `repeats=r`
      (repeated augmentation, Hoffer et al. arXiv 1901.09335; DeiT's RASampler) an epoch draws n/r
      images and shows each r times, side by side in the same batch, each copy in its own random
      view: an epoch still has n samples but only n/r distinct images. `set_epoch(e)` makes epoch
      `e` reproducible on its own, which is what resuming needs. With `full_repeats` an epoch shows
      every image `repeats` times (n * repeats samples, the study's sampler).
    * `train=False`: the images in order, every one once, normalized only.
    * `rank`/`world`: under DistributedDataParallel each process builds the same global training
      batch (same random draws) and keeps its own slice, so the union over processes is exactly the
      single-process batch; evaluation gives each process every `world`-th image.
    * `device`: None is `device.get_device`'s default (a GPU where there is one).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, train: bool,
                 device: str | torch.device | None = None, seed: int = 0,
                 transform: Callable | None = None, subset: int = 0, repeats: int = 1,
                 rank: int = 0, world: int = 1, full_repeats: bool = False):
        if subset:
            images, labels = images[:subset], labels[:subset]
        if train and batch_size > len(images):
            raise ValueError(f"batch_size={batch_size} is larger than the {len(images)} training "
                             f"images; lower batch_size or raise train_subset")
        if train and batch_size % world:
            raise ValueError(f"batch_size={batch_size} must be divisible by the {world} processes")
        self.device = get_device(device)
        self.x, self.y = images.to(self.device), labels.to(self.device)
        if not train and world > 1:
            self.x, self.y = self.x[rank::world], self.y[rank::world]
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.transform, self.repeats = transform, repeats if train else 1
        self.rank, self.world = rank, world
        self.full_repeats = full_repeats and train
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.x) * (self.repeats if self.full_repeats else 1)
        return n // self.batch_size if self.train else -(-n // self.batch_size)

    def generator(self) -> torch.Generator:
        """The epoch's random stream: the same on every process, different every epoch."""
        return torch.Generator(self.device).manual_seed(self.seed * 100_003 + self.epoch)

    def order(self, g: torch.Generator) -> torch.Tensor:
        """The epoch's sample indices: n/repeats random images, each repeated side by side (length
        n); with `full_repeats`, all n images each repeated (length n * repeats: the study's
        `BatchAugmentation` sampler)."""
        n, r = len(self.x), self.repeats
        picks = torch.randperm(n, device=self.device, generator=g)
        if self.full_repeats:
            return picks.repeat_interleave(r)
        return picks[: -(-n // r)].repeat_interleave(r)[:n]

    def __iter__(self):
        g = self.generator() if self.train else None
        order = self.order(g) if self.train else torch.arange(len(self.x), device=self.device)
        share = self.batch_size // self.world
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            x, y = self.x[idx], self.y[idx]
            if not self.train:
                yield normalize(x), y
                continue
            x, y = self.transform(x, y, g) if self.transform is not None else (normalize(x), y)
            if self.world > 1:      # the same global batch everywhere; keep this process's slice
                mine = slice(self.rank * share, (self.rank + 1) * share)
                x, y = x[mine], y[mine]
            yield x, y


__all__ = ["load_cifar10", "CIFAR10", "DatasetError", "DeviceLoader", "normalize", "model_input",
           "denormalize", "CLASSES", "MEAN", "STD", "default_root"]

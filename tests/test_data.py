"""CIFAR-10 reading through the real reader on archives the tests write in the official layout, and
the device-resident loader's determinism and per-sample randomness."""
import functools
import hashlib
import http.server
import io
import threading
import tarfile

import numpy as np
import pytest
import torch

import poorvit.data as D
from poorvit.augment import TrainTransform, random_crop
from poorvit.data import DatasetError, DeviceLoader, load_cifar10

N = 20  # records per file in the test archives (the official files hold 10,000)


def records(seed: int, n: int = N) -> tuple[bytes, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    pixels = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    return np.concatenate([labels[:, None], pixels], 1).tobytes(), labels, pixels


@pytest.fixture
def archive(tmp_path, monkeypatch):
    """A small cifar-10-binary.tar.gz in the official layout; the reader is told files hold N
    records."""
    monkeypatch.setattr(D, "RECORDS_PER_FILE", N)
    D._read.cache_clear()
    src = tmp_path / "src"
    buf = io.BytesIO()
    expected = {}
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for i, name in enumerate([*D.TRAIN_FILES, D.TEST_FILE]):
            blob, labels, pixels = records(i)
            expected[name] = (labels, pixels)
            info = tarfile.TarInfo(f"{D.FOLDER}/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    src.mkdir()
    path = src / D.ARCHIVE
    path.write_bytes(buf.getvalue())
    monkeypatch.setattr(D, "MD5", hashlib.md5(path.read_bytes()).hexdigest())
    yield path, expected
    D._read.cache_clear()


def test_reads_records_exactly(archive, tmp_path):
    path, expected = archive
    root = tmp_path / "data"
    root.mkdir()
    (root / D.ARCHIVE).write_bytes(path.read_bytes())          # an archive placed by hand
    data = load_cifar10(root, download=False)
    assert data.train_x.shape == (5 * N, 3, 32, 32) and data.train_x.dtype == torch.uint8
    assert data.test_x.shape == (N, 3, 32, 32) and data.test_y.dtype == torch.int64
    labels, pixels = expected["data_batch_2.bin"]
    assert torch.equal(data.train_y[N:2 * N], torch.from_numpy(labels.astype(np.int64)))
    # record layout: 1024 red, then 1024 green, then 1024 blue bytes, row-major
    img = data.train_x[N + 3]
    assert img[0, 0, 0] == pixels[3, 0] and img[1, 0, 0] == pixels[3, 1024]
    assert img[2, 31, 31] == pixels[3, 3071]
    assert img[0, 1, 0] == pixels[3, 32]
    assert data.classes[0] == "airplane" and len(data.classes) == 10
    # extracted from the verified archive
    assert data.label == "CIFAR-10"


@pytest.fixture
def http_server(archive):
    """Serves the test archive's folder over HTTP on localhost, as the official host serves the
    real one."""
    path, _ = archive
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(path.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{D.ARCHIVE}"
    server.shutdown()


def test_download_goes_through_torchvision_and_verifies(http_server, tmp_path, monkeypatch):
    monkeypatch.setattr(D, "URL", http_server)
    data = load_cifar10(tmp_path / "fresh")
    assert len(data.train_y) == 5 * N and data.label == "CIFAR-10"
    assert (tmp_path / "fresh" / D.ARCHIVE).exists()


def test_files_in_another_order_are_labelled_as_the_jpeg_copy(archive, tmp_path):
    path, _ = archive
    root = tmp_path / "copy"
    with tarfile.open(path) as tar:
        # files placed by hand, no verified archive
        tar.extractall(root, filter="data")
    assert load_cifar10(root, download=False).label == "CIFAR-10 (JPEG copy)"


def test_offline_and_nothing_on_disk_says_both_ways_out(tmp_path, monkeypatch):
    # nothing listens there
    monkeypatch.setattr(D, "URL", "http://127.0.0.1:9/cifar-10-binary.tar.gz")
    with pytest.raises(DatasetError) as err:
        load_cifar10(tmp_path / "empty")
    msg = str(err.value)
    assert str(tmp_path / "empty") in msg and "connect to the internet once" in msg
    assert D.ARCHIVE in msg
    assert not (tmp_path / "empty" / D.ARCHIVE).exists()
    with pytest.raises(DatasetError, match="download=False"):
        load_cifar10(tmp_path / "empty", download=False)


def test_truncated_file_names_file_and_expected_size(archive, tmp_path):
    path, _ = archive
    root = tmp_path / "trunc"
    with tarfile.open(path) as tar:
        tar.extractall(root, filter="data")
    f = root / D.FOLDER / "data_batch_3.bin"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(DatasetError) as err:
        load_cifar10(root, download=False)
    assert "data_batch_3.bin" in str(err.value) and f"{N * D.RECORD:,}" in str(err.value)


def test_corrupt_archive_is_refused(archive, tmp_path):
    path, _ = archive
    root = tmp_path / "bad"
    root.mkdir()
    (root / D.ARCHIVE).write_bytes(path.read_bytes()[:-50])
    with pytest.raises(DatasetError, match="corrupt or incomplete"):
        load_cifar10(root, download=False)


# ---- the loader ---------------------------------------------------------------------------------

def fake_images(n=64):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    return images, torch.arange(n) % 10


def batches(loader, epoch):
    loader.set_epoch(epoch)
    return [(x.clone(), y.clone()) for x, y in loader]


def test_loader_is_deterministic_per_seed_and_epoch():
    x, y = fake_images()
    # noqa: E731
    make = lambda seed: DeviceLoader(x, y, 16, True, seed=seed, transform=TrainTransform())
    a, b, c = batches(make(1), 0), batches(make(1), 0), batches(make(2), 0)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    assert not all(torch.equal(p[0], q[0]) for p, q in zip(a, c))
    assert not torch.equal(a[0][1], batches(make(1), 1)[0][1])     # a new order each epoch
    assert len(a) == 4 and all(len(bx) == 16 for bx, _ in a)


def test_training_pass_drops_last_and_eval_pass_covers_all():
    x, y = fake_images(70)
    train = DeviceLoader(x, y, 16, True, transform=TrainTransform())
    assert len(train) == 4 and sum(len(b) for _, b in train) == 64
    test = DeviceLoader(x, y, 16, False)
    ys = torch.cat([b for _, b in test])
    assert torch.equal(ys, y)
    assert len(DeviceLoader(x, y, 16, True, subset=40)) == 2


def test_repeated_augmentation_shows_each_image_r_times_side_by_side():
    x, y = fake_images(60)
    loader = DeviceLoader(x, torch.arange(60), 12, True, transform=TrainTransform(), repeats=3)
    ids = torch.cat([b for _, b in loader])
    assert len(ids) == 60                                           # an epoch keeps n samples
    # copies side by side
    assert torch.equal(ids.view(-1, 3), ids.view(-1, 3)[:, :1].expand(-1, 3))
    assert len(ids.unique()) == 20                                  # n / r distinct images
    xs = torch.cat([b for b, _ in loader]).view(-1, 3, 3, 32, 32)
    assert not all(torch.equal(v[0], v[1]) for v in xs)             # each copy its own view


def test_crop_and_flip_draw_per_sample():
    img = torch.arange(3 * 32 * 32, dtype=torch.float32).view(1, 3, 32, 32).expand(8, -1, -1, -1)
    g = torch.Generator().manual_seed(0)
    out = random_crop(img, 4, g)
    assert out.shape == img.shape and out.dtype == img.dtype
    # different windows per sample
    assert len({tuple(o.flatten()[:40].tolist()) for o in out}) > 1
    # every crop is a shifted copy: some pixel of the original sits at (16, 16)
    assert torch.isin(out[:, 0, 16, 16], img[0, 0]).all()
    flipped = random_crop(img, 0, torch.Generator().manual_seed(0), flip=0.5)   # flip alone
    kinds = {torch.equal(f, img[0]) for f in flipped}
    kinds |= {torch.equal(f, img[0].flip(-1)) for f in flipped}
    assert kinds == {True, False}
    assert all(torch.equal(f, img[0]) or torch.equal(f, img[0].flip(-1)) for f in flipped)
    u8 = random_crop(torch.full((4, 3, 32, 32), 200, dtype=torch.uint8), 4, g)
    # zero padding shows at the edges
    assert u8.dtype == torch.uint8 and u8.max() == 200 and u8.min() == 0


def test_distributed_slices_make_up_the_global_batch():
    x, y = fake_images()
    one = batches(DeviceLoader(x, y, 16, True, seed=3, transform=TrainTransform()), 0)
    two = [batches(DeviceLoader(x, y, 16, True, seed=3, transform=TrainTransform(), rank=r,
                                world=2), 0) for r in range(2)]
    for i, (bx, by) in enumerate(one):
        assert torch.equal(torch.cat([two[0][i][0], two[1][i][0]]), bx)
        assert torch.equal(torch.cat([two[0][i][1], two[1][i][1]]), by)

"""poorvit.augment and poorvit.autoaugment: every op keeps shape, dtype and value range; each
sample draws its own parameters; a seed reproduces a batch; AutoAugment's ops equal torchvision's
image by image and its policy is the CIFAR-10 one; Mixup/CutMix targets sum to 1 and match the mixed
areas; label smoothing on mixed targets is what timm's Mixup does; the per-image pipeline is
torchvision's. Images are made here (no dataset needed)."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from torchvision.transforms import v2

import poorvit.augment as A
import poorvit.autoaugment as AA
from poorvit.augment import (AutoAugment, PerImage, TrainTransform, apply_op, cifar10_policy,
                             cutmix, cutmix_box, mix_batch, mixup, op_magnitude, random_crop,
                             random_erasing)
from poorvit.config import TrainConfig, get_train_config
from poorvit.data import CIFAR10, MEAN, STD, DeviceLoader, load_cifar10, normalize
from poorvit.study import study_augmentation

# AutoAugment's CIFAR-10 policy (Cubuk et al. 2019, table of the appendix), as torchvision ships it.
CIFAR10_POLICY = [
    (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
    (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
    (("Color", 0.9, 9), ("Equalize", 0.6, None)),
    (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, None), ("Invert", 0.1, None)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
]
ALL_OPS = list(v2.AutoAugment._AUGMENTATION_SPACE)


def images(n=16, seed=0, size=32) -> torch.Tensor:
    """uint8 images with structure (smooth ramps, a bright square, noise), so every op has work to
    do."""
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 1, size)
    base = (ramp[None, :, None] * torch.rand(n, 3, 1, 1, generator=g) * 200
            + ramp[None, None, :] * torch.rand(n, 3, 1, 1, generator=g) * 55)
    base[:, :, size // 4:size // 2, size // 4:size // 2] += 90
    noise = torch.randint(0, 20, (n, 3, size, size), generator=g)
    return (base + noise).clamp(0, 255).to(torch.uint8)


def gen(seed=0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---- AutoAugment --------------------------------------------------------------------------------

def test_policy_is_autoaugments_cifar10_policy():
    assert cifar10_policy() == CIFAR10_POLICY
    assert AutoAugment().policy == CIFAR10_POLICY


@pytest.mark.parametrize("op", ALL_OPS)
def test_each_op_equals_torchvision_image_by_image(op):
    """Per-sample magnitudes (every bin, both signs) give exactly what torchvision's AutoAugment
    gives for each image on its own."""
    tv = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)
    x = images(6)
    for b in range(10):
        m, signed = op_magnitude(op, b)
        signs = torch.tensor([1.0, -1.0] * 3 if signed else [1.0] * 6, dtype=torch.float64)
        ours = apply_op(op, x, m * signs)
        ref = torch.stack([tv._apply_image_or_video_transform(img, op, float(m * s),
                                                              interpolation=tv.interpolation,
                                                              fill=tv._fill)
                           for img, s in zip(x, signs)])
        assert ours.dtype == torch.uint8 and ours.shape == x.shape
        torch.testing.assert_close(ours, ref, atol=0, rtol=0, msg=f"{op} at magnitude bin {b}")


def test_mixed_geometric_ops_in_one_call_equal_each_alone():
    x, m = images(5), torch.tensor([6.7, -14.5, 0.27, -0.3, 9.0], dtype=torch.float64)
    kind = torch.arange(5)                                    # each sample a different geometric op
    together = AA._geometric(kind, x, m)
    for i, op in enumerate(AA.GEOMETRIC):
        torch.testing.assert_close(together[i:i + 1], apply_op(op, x[i:i + 1], m[i:i + 1]),
                                   atol=0, rtol=0)


def test_autoaugment_draws_per_sample_and_follows_the_policy():
    aa = AutoAugment()
    sub, ops, mags = aa.draw(4000, 32, 32, gen(1))
    assert len(sub.unique()) == 25                                    # every sub-policy gets drawn
    for s in (0, 3, 21):                                    # the coin of each slot: its probability
        for slot in range(2):
            name, p, b = CIFAR10_POLICY[s][slot]
            hit = ops[sub == s, slot]
            assert abs((hit >= 0).float().mean().item() - p) < 0.12
            assert set(hit[hit >= 0].tolist()) <= {aa.ops.index(name)}
            if b is not None and (hit >= 0).any():
                drawn = set(mags[sub == s, slot][hit >= 0].abs().tolist())
                assert drawn == {op_magnitude(name, b)[0]}
    same = images(1).expand(64, -1, -1, -1)                           # one image, 64 copies
    out = aa(same, gen(0))
    assert len({o.numpy().tobytes() for o in out}) > 10            # the copies come out differently


def test_autoaugment_applies_the_two_slots_in_order():
    """A sample's second op sees the output of its first: posterize to 4 bits, then invert."""
    aa = AutoAugment([(("Posterize", 1.0, 9), ("Invert", 1.0, None))])
    x = images(4)
    want = v2.functional.invert(v2.functional.posterize(x, int(op_magnitude("Posterize", 9)[0])))
    torch.testing.assert_close(aa(x, gen(0)), want, atol=0, rtol=0)


# ---- shape, dtype, range ------------------------------------------------------------------------

def test_every_op_keeps_shape_dtype_and_value_range():
    x = images(32)
    for name, out in [("crop", random_crop(x, 4, gen())),
                      ("crop+flip", random_crop(x, 4, gen(), flip=0.5)),
                      ("flip", random_crop(x, 0, gen(), flip=0.5)),
                      ("autoaugment", AutoAugment()(x, gen()))]:
        assert out.shape == x.shape and out.dtype == torch.uint8, name
    xf = normalize(x)
    lo, hi = xf.amin(), xf.amax()
    erased = random_erasing(xf, 1.0, gen())
    assert erased.shape == xf.shape and erased.dtype == torch.float32
    assert erased.amin() >= min(lo, 0) and erased.amax() <= max(hi, 0)
    soft = nn.functional.one_hot(torch.arange(32) % 10, 10).float()
    for out, target in (mixup(xf, soft, 0.3), cutmix(xf, soft, (2, 20, 5, 30))):
        assert out.shape == xf.shape and out.dtype == torch.float32 and target.shape == (32, 10)
        assert out.amin() >= lo - 1e-6 and out.amax() <= hi + 1e-6    # convex mixes stay in range
    tf = TrainTransform.from_config(TrainConfig())
    out, target = tf(x, torch.arange(32) % 10, gen())
    assert out.shape == x.shape and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_crop_with_fused_flip_is_crop_then_mirror():
    x = images(64)
    a = random_crop(x, 4, gen(3), flip=0.5)
    plain = random_crop(x, 4, gen(3))                              # same windows (same first draws)
    mirrored = (a == plain.flip(-1)).flatten(1).all(1)
    assert torch.equal(mirrored | (a == plain).flatten(1).all(1), torch.ones(64, dtype=torch.bool))
    assert 10 < mirrored.sum() < 54                                   # about half mirrored


# ---- per-sample randomness and seeds ------------------------------------------------------------

def test_random_erasing_draws_a_rectangle_per_sample_like_torchvision():
    x = torch.ones(2000, 3, 32, 32)
    out = random_erasing(x, 1.0, gen())
    erased = out[:, 0] == 0                                           # (B, H, W)
    rows, cols = erased.any(2), erased.any(1)
    h, w = rows.sum(1), cols.sum(1)
    assert torch.equal(erased.sum((1, 2)), h * w)              # each erased region is one rectangle
    assert (erased.sum((1, 2)) > 0).float().mean() > 0.95      # p = 1: (almost) every sample erased
    frac = (h * w).float() / 1024
    # area: 2 % to 33 % of the image (h, w rounded)
    assert 0.01 < frac[h > 0].min() and frac.max() < 0.37
    assert abs(frac[h > 0].mean().item() - 0.175) < 0.02       # uniform in [0.02, 0.33]: mean 0.175
    corners = {(r.nonzero()[0].item(), c.nonzero()[0].item())
               for r, c in zip(rows[:50], cols[:50]) if r.any()}
    assert len(corners) > 40
    some = random_erasing(x, 0.25, gen())
    assert abs((some[:, 0] == 0).any(2).any(1).float().mean().item() - 0.25) < 0.05


def test_pipeline_draws_per_sample_and_a_seed_reproduces_it():
    tf = TrainTransform.from_config(TrainConfig(mix_prob=0.0))
    same = images(1).expand(32, -1, -1, -1)
    out, _ = tf(same, torch.zeros(32, dtype=torch.long), gen(0))
    assert len({o.numpy().tobytes() for o in out}) == 32             # 32 copies, 32 different views
    tf = TrainTransform.from_config(TrainConfig())
    x, y = images(32), torch.arange(32) % 10
    for seed in range(6):
        a, b = tf(x, y, gen(seed)), tf(x, y, gen(seed))
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(tf(x, y, gen(0))[0], tf(x, y, gen(1))[0])


def test_loader_with_the_study_pipeline_is_reproducible_and_mixes_some_batches():
    x, y = images(256), torch.arange(256) % 10
    make = lambda: DeviceLoader(x, y, 32, True, seed=5,  # noqa: E731
                                transform=TrainTransform.from_config(TrainConfig()))
    a, b = list(make()), list(make())
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    kinds = [t.ndim for _, t in a]
    assert 1 in kinds and 2 in kinds                                  # some batches mixed, some not


# ---- Mixup and CutMix ---------------------------------------------------------------------------

def onehot(y, k=10):
    return nn.functional.one_hot(y, k).float()


def test_mixup_blends_images_and_targets_by_lambda():
    x, y = normalize(images(8)), torch.arange(8)
    out, t = mixup(x, onehot(y), 0.3)
    torch.testing.assert_close(out, 0.3 * x + 0.7 * x.flip(0))
    torch.testing.assert_close(t.sum(1), torch.ones(8))
    assert torch.allclose(t[torch.arange(8), y], torch.full((8,), 0.3))
    assert torch.allclose(t[torch.arange(8), y.flip(0)], torch.full((8,), 0.7))


@pytest.mark.parametrize("lam", [0.05, 0.3, 0.5, 0.9, 0.999])
def test_cutmix_targets_match_the_pasted_area(lam):
    rng = np.random.default_rng(0)
    B, H, W = 6, 32, 32
    # sample i is all i
    x = torch.arange(B, dtype=torch.float32).view(B, 1, 1, 1).expand(B, 3, H, W)
    for _ in range(20):                                           # boxes clipped at the borders too
        box = cutmix_box(H, W, lam, rng)
        top, bottom, left, right = box
        assert 0 <= top <= bottom <= H and 0 <= left <= right <= W
        out, t = cutmix(x, onehot(torch.arange(B)), box)
        pasted = (out[:, 0] == torch.arange(B).flip(0).view(B, 1, 1).float()).float().mean((1, 2))
        torch.testing.assert_close(t.sum(1), torch.ones(B))
        # partner's share = area
        torch.testing.assert_close(t[torch.arange(B), torch.arange(B).flip(0)], pasted)
        torch.testing.assert_close(t[torch.arange(B), torch.arange(B)], 1 - pasted)
    big = [cutmix_box(1000, 1000, lam, np.random.default_rng(s)) for s in range(200)]
    unclipped = [(b - t) * (r - l) / 1e6 for t, b, l, r in big]
    assert max(unclipped) <= 1 - lam + 0.01        # about (1 - lam) of the image, less when clipped


def test_mix_batch_mixes_the_right_share_of_batches_one_op_at_a_time():
    x, y = normalize(images(16)), torch.arange(16) % 10
    g = gen(0)
    infos = [mix_batch(x, y, 10, 1.0, 1.0, 0.5, g)[2] for _ in range(400)]
    ops = [i["op"] for i in infos]
    assert abs(ops.count(None) / 400 - 0.5) < 0.08
    assert abs(ops.count("mixup") / 400 - 0.25) < 0.07
    assert abs(ops.count("cutmix") / 400 - 0.25) < 0.07
    lams = np.array([i["lam"] for i in infos if i["op"] == "mixup"])
    # Beta(1, 1) is uniform
    assert 0.4 < lams.mean() < 0.6 and lams.min() < 0.15 and lams.max() > 0.85
    _, t, info = mix_batch(x, y, 10, 1.0, 0.0, 1.0, g)
    assert info["op"] == "mixup" and t.shape == (16, 10)
    out, t, info = mix_batch(x, y, 10, 1.0, 1.0, 0.0, g)
    assert info["op"] is None and t is y and out is x


def test_label_smoothing_on_mixed_targets_is_timms_mixup_target():
    """train() uses nn.CrossEntropyLoss(label_smoothing=eps) on the mixed soft targets; timm's Mixup
    folds smoothing into the targets instead. The two losses are the same."""
    eps, K, lam = 0.1, 10, 0.37
    g = gen(0)
    logits = torch.randn(8, K, generator=g)
    y = torch.randint(0, K, (8,), generator=g)
    _, ours = mixup(torch.zeros(8, 3, 4, 4), onehot(y), lam)
    folded = (lam * ((1 - eps) * onehot(y) + eps / K)
              + (1 - lam) * ((1 - eps) * onehot(y.flip(0)) + eps / K))
    soft_ce = -(folded * logits.log_softmax(-1)).sum(-1).mean()
    torch.testing.assert_close(nn.CrossEntropyLoss(label_smoothing=eps)(logits, ours), soft_ce)
    timm_mixup = pytest.importorskip("timm.data.mixup")
    torch.testing.assert_close(timm_mixup.mixup_target(y, K, lam, eps), folded)


# ---- configs and train() ------------------------------------------------------------------------

def test_from_config_follows_the_recipe():
    paper_cfg = get_train_config("paper")
    assert study_augmentation() == {k: getattr(paper_cfg, k) for k in A.AUGMENT_FIELDS}
    paper = TrainTransform.from_config(get_train_config("paper"))
    assert paper.autoaugment is not None and paper.random_erasing == 0.25
    assert paper.mixup_alpha == paper.cutmix_alpha == 1.0 and paper.mix_prob == 0.5
    plain = TrainTransform.from_config(get_train_config("smoke"))
    x, y = images(8), torch.arange(8)
    out, target = plain(x, y, gen())
    assert target is y and out.dtype == torch.float32
    assert "AutoAugment" in repr(paper) and "AutoAugment" not in repr(plain)


def test_single_ops():
    """Chapter 4's one-op pipelines (`poorvit.course.ch04_augmentation.single_op`)."""
    from poorvit.course.ch04_augmentation import SINGLE_OPS, single_op

    x, y = images(8), torch.arange(8)
    for op in SINGLE_OPS:
        out, target = single_op(op)(x, y, gen())
        assert out.shape == x.shape
        if op != "study":                                      # the study mixes half of the batches
            assert (target.ndim == 2) == (op in ("mixup", "cutmix"))
    flipped, _ = single_op("flip")(x, y, gen())
    for f, xi in zip(flipped, normalize(x)):
        assert torch.equal(f, xi) or torch.equal(f, xi.flip(-1))
    with pytest.raises(ValueError, match="choose one of"):
        single_op("rotate")


def test_per_image_pipeline_is_torchvisions():
    """`PerImage` runs torchvision's v2 ops image by image: with only the deterministic ones on it
    is `normalize`; with the recipe's ops each image keeps its shape, dtype and label."""
    x, y = images(6), torch.arange(6)
    plain = get_train_config("paper", crop_pad=0, flip=False, autoaugment=False, random_erasing=0.0)
    ds = PerImage(x, y, plain)
    assert len(ds) == 6
    for i in range(6):
        xi, yi = ds[i]
        torch.testing.assert_close(xi, normalize(x[i:i + 1])[0])
        assert yi == y[i]
    torch.manual_seed(0)
    full = PerImage(x, y, get_train_config("paper"))
    xi, yi = full[3]
    assert xi.shape == x.shape[1:] and xi.dtype == torch.float32 and yi == 3
    lo, hi = (0 - max(MEAN)) / min(STD), (1 - min(MEAN)) / min(STD)
    assert lo - 1e-5 <= xi.min() and xi.max() <= hi + 1e-5


def test_per_image_loader_mixes_batches_only_when_asked():
    """`per_image_loader`: drop-last batches of `PerImage`; `mix=True` adds the recipe's
    Mixup/CutMix (soft targets on the mixed batches, every batch at mix_prob 1), none without
    it or when the recipe has no mixing."""
    x, y = images(40), torch.arange(40) % 10
    mixing = get_train_config("paper", mix_prob=1.0)
    plain = A.per_image_loader(x, y, mixing, 16)
    assert len(plain) == 2 and all(t.shape == (16,) for _, t in plain)
    mixed = A.per_image_loader(x, y, mixing, 16, n_classes=10, mix=True)
    assert len(mixed) == 2
    for xb, t in mixed:
        assert xb.shape == (16, 3, 32, 32) and t.shape == (16, 10)
        torch.testing.assert_close(t.sum(1), torch.ones(16))
    unmixed = get_train_config("paper", mixup_alpha=0.0, cutmix_alpha=0.0)
    assert all(t.shape == (16,) for _, t in A.per_image_loader(x, y, unmixed, 16, mix=True))


def test_train_runs_the_study_pipeline(tmp_path):
    from poorvit.config import get_config
    from poorvit.train import train

    x = images(512, seed=1)
    y = torch.arange(512) % 10
    data = CIFAR10(x, y, x[:128], y[:128], tuple(str(i) for i in range(10)), "made-up images",
                   "none")
    cfg = get_train_config("paper", epochs=1, batch_size=64, warmup_epochs=0.1, repeats=2,
                           test_subset=128)
    run = train(get_config("micro"), cfg, data, out=tmp_path / "run", progress=None, device="cpu")
    # the paper epoch is `repeats` passes (the study's sampler): 2 x 512 samples
    assert run.record["steps"] == 2 * 512 // 64 and math.isfinite(run.history[-1]["loss"])


# ---- the study's variants (issue 19): its AutoAugment port and its erasing, from scratch -------

def _keys(t: float, a: float = -0.75) -> float:
    t = abs(t)
    if t <= 1:
        return (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1
    return a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a if t < 2 else 0.0


def _sample(img, sx: float, sy: float, bicubic: bool) -> np.ndarray:
    """One pixel of `img` (C, H, W) at the continuous point (sx, sy) (corner coordinates), grey
    128 outside: nearest (the pixel holding the point) or bicubic (Keys, a = -0.75)."""
    C, H, W = img.shape
    if not bicubic:
        xx, yy = math.floor(sx), math.floor(sy)
        return img[:, yy, xx] if 0 <= xx < W and 0 <= yy < H else np.full(C, 128.0)
    ix, iy = sx - 0.5, sy - 0.5
    acc = np.zeros(C)
    for yy in range(math.floor(iy) - 1, math.floor(iy) + 3):
        for xx in range(math.floor(ix) - 1, math.floor(ix) + 3):
            val = img[:, yy, xx] if 0 <= yy < H and 0 <= xx < W else 128.0
            acc += _keys(ix - xx) * _keys(iy - yy) * val
    return acc


def _study_geometric(img: np.ndarray, op: str, m: float) -> np.ndarray:
    """The study's rules written out: PIL's rotate(+m) (counter-clockwise about the centre,
    nearest), shear (1, m, 0, 0, 1, 0) about the top-left corner, bicubic; grey 128 outside."""
    C, H, W = img.shape
    out = np.zeros((C, H, W))
    t = math.radians(m)
    for i in range(H):
        for j in range(W):
            u, v = j + 0.5, i + 0.5
            if op == "Rotate":
                dx, dy = u - W / 2, v - H / 2
                p = (W / 2 + math.cos(t) * dx - math.sin(t) * dy,
                     H / 2 + math.sin(t) * dx + math.cos(t) * dy)
            else:
                p = (u + m * v, v) if op == "ShearX" else (u, v + m * u)
            out[:, i, j] = _sample(img.astype(np.float64), *p, bicubic=op != "Rotate")
    return np.clip(np.round(out), 0, 255)


@pytest.mark.parametrize("op", ["Rotate", "ShearX", "ShearY"])
def test_study_geometric_ops_equal_the_study_rules_from_scratch(op):
    x = load_cifar10().train_x[:4]
    m = torch.tensor([3.3, 20.0, 30.0, 10.0] if op == "Rotate" else [0.3, -0.2, 0.1, 0.25],
                     dtype=torch.float64)
    ours = apply_op(op, x, m, variant="study").numpy().astype(float)
    ref = np.stack([_study_geometric(x[k].numpy(), op, m[k].item()) for k in range(4)])
    diff = np.abs(ours - ref)
    if op == "Rotate":
        assert diff.max() == 0                         # nearest: pixel for pixel
    else:                                              # bicubic: rounding of exact halves
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    # and not torchvision's form: zero fill (and nearest shears) change the pixels
    assert not torch.equal(apply_op(op, x, m), apply_op(op, x, m, variant="study"))


def test_study_autoaugment_rotates_one_way_and_fills_grey():
    study, tv = AutoAugment(variant="study"), AutoAugment()
    op, _, mag, signed = study.table(32, 32, "cpu")
    rot = torch.tensor(study.ops.index("Rotate"))
    assert not signed[op == rot].any() and signed[op != rot].any()
    assert tv.table(32, 32, "cpu")[3][op == rot].all()
    _, ops, mags = study.draw(4000, 32, 32, torch.Generator().manual_seed(0))
    assert (mags[ops == rot] > 0).all()
    black = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    out = apply_op("TranslateX", black, torch.tensor([10.0, -10.0], dtype=torch.float64),
                   variant="study")
    assert (out == 128).sum() == 2 * 3 * 32 * 10 and (out == 0).sum() == 2 * 3 * 32 * 22


def _zhong_erasing(x, u_area, u_ratio, u, p, H, W):
    """Zhong et al.'s RandomErasing(probability=p, sl=0.02, sh=0.4, r1=0.3, mean=MEAN), one image
    at a time, from the given uniform draws."""
    out = x.clone()
    for b in range(len(x)):
        for t in range(u_area.shape[1]):
            area = H * W * (0.02 + (0.4 - 0.02) * u_area[b, t].item())
            r = 0.3 + (1 / 0.3 - 0.3) * u_ratio[b, t].item()
            h, w = round(math.sqrt(area * r)), round(math.sqrt(area / r))
            if w < W and h < H:
                if u[b, 0] < p:
                    top, left = int(u[b, 1] * (H - h + 1)), int(u[b, 2] * (W - w + 1))
                    for c, v in enumerate(MEAN):
                        out[b, c, top:top + h, left:left + w] = v
                break
    return out


def test_study_erasing_equals_zhong_et_al_from_scratch():
    B, H, W = 64, 32, 32
    x = torch.randn(B, 3, H, W, generator=torch.Generator().manual_seed(1))
    ours = random_erasing(x, 0.5, torch.Generator().manual_seed(3), **A.STUDY_ERASING)
    g = torch.Generator().manual_seed(3)                       # the same draws, in the same order
    u_area, u_ratio, u = (torch.rand(B, 100, generator=g), torch.rand(B, 100, generator=g),
                          torch.rand(B, 3, generator=g))
    ref = _zhong_erasing(x, u_area, u_ratio, u, 0.5, H, W)
    assert torch.equal(ours, ref)
    erased = (ours != x).any(1).flatten(1).float().mean(1)
    assert erased.max() > 0.33                                 # beyond torchvision's 1/3
    assert 10 < (erased > 0).sum() < 54

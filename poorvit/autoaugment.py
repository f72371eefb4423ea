"""AutoAugment on a batch, one random sub-policy per sample (Cubuk et al., "AutoAugment: Learning
Augmentation Strategies from Data", arXiv 1805.09501).

torchvision's `v2.AutoAugment` on a batch tensor applies ONE sub-policy, with one set of coin flips,
to the whole batch. Here each sample draws its own sub-policy, coins and signs from the loader's
generator; then every op runs once per slot on the samples that drew it, with per-sample magnitudes
(the geometric ops all in one grid sample). Each op reproduces
`torchvision.transforms.v2.functional` on uint8 images exactly (tests/test_augment.py holds them
equal image by image). The policy table and the magnitudes are torchvision's, read from
`v2.AutoAugment` rather than retyped (a test pins the table).

The draws (sub-policy, coins, signs) come from a host stream (`host_generator`: the generator
itself on a CPU, a CPU generator seeded from it on a GPU), so the grouping of samples by op is
known on the host and nothing waits for the device: two non-blocking copies of the plan a call.

    aa = AutoAugment()                       # the CIFAR-10 policy: 25 sub-policies of two ops
    x = aa(x_uint8, generator)               # (B, 3, H, W) uint8 -> same, a sub-policy per sample
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF


def cifar10_policy() -> list:
    """AutoAugment's 25 CIFAR-10 sub-policies, each two (op, probability, magnitude bin), from
    torchvision."""
    return list(v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)._policies)


def op_magnitude(op: str, bin: int | None, height: int = 32, width: int = 32) -> tuple[float, bool]:
    """(magnitude, signed) of `op` at magnitude `bin` of 10, as torchvision's AutoAugment computes
    it."""
    fn, signed = v2.AutoAugment._AUGMENTATION_SPACE[op]
    values = fn(10, height, width)
    return (0.0 if values is None else float(values[bin])), signed


def _blend(a: torch.Tensor, b: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """uint8 a * ratio + b * (1 - ratio), clamped and truncated as torchvision's `_blend`, ratio per
    sample."""
    r = ratio.view(-1, 1, 1, 1)
    out = torch.addcmul(a.float() * r.float(), b, (1.0 - r).float())
    return out.clamp_(0, 255).to(torch.uint8)


def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(-3)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(-3).floor_()


def _autocontrast(x: torch.Tensor) -> torch.Tensor:
    """torchvision's `autocontrast` on uint8 images, its flat images (max == min) left alone by
    `torch.where` instead of a boolean-mask assignment (which waits for the device to count the
    mask)."""
    f = x.float()
    minimum = f.amin((-2, -1), keepdim=True)
    maximum = f.amax((-2, -1), keepdim=True)
    flat = maximum == minimum
    inv_scale = torch.where(flat, 1.0, (maximum - minimum).mul_(1.0 / 255))
    return (f - torch.where(flat, 0.0, minimum)).div_(inv_scale).clamp_(0, 255).to(torch.uint8)


def _sharpness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision's sharpness: blend with the 3x3 smoothing (weights 1, centre 5, over 13) inside
    the border. The smoothing is summed in integers (exact), so it rounds as torchvision's float
    convolution does."""
    H, W = x.shape[-2:]
    xi = x.to(torch.int32)
    total = 4 * xi[..., 1:-1, 1:-1]
    for dy in range(3):
        for dx in range(3):
            total = total + xi[..., dy:dy + H - 2, dx:dx + W - 2]
    blurred = (total.float() / 13).round_()
    out = x.float()
    inner = out[..., 1:-1, 1:-1]
    inner.addcmul_(blurred - inner, (1.0 - factor.view(-1, 1, 1, 1)).float())
    return out.clamp_(0, 255).to(torch.uint8)


def _affine(x: torch.Tensor, angle, tx, ty, shear_x, shear_y, center, fill: float = 0.0,
            mode: str = "nearest") -> torch.Tensor:
    """Per-sample affine maps (degrees, pixels; `center` -1: the top-left corner, 0: the image
    centre), nearest neighbour, zero fill: torchvision's `F.affine`, with
    `_get_inverse_affine_matrix` for all at once. `fill` (a grey level for uncovered pixels) and
    `mode="bicubic"` (torch's bicubic kernel, clamped to 0..255) serve the study's variant."""
    n, C, H, W = x.shape
    cx, cy = center * W / 2, center * H / 2
    rot, sx, sy = (torch.deg2rad(v) for v in (angle, shear_x, shear_y))
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -(a * torch.tan(sx) + torch.sin(rot))
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = torch.cos(rot) - c * torch.tan(sx)
    theta = torch.stack([d, -b, cx - d * (cx + tx) + b * (cy + ty),
                         -c, a, cy + c * (cx + tx) - a * (cy + ty)], -1).float().view(n, 2, 3, 1, 1)
    xs = torch.arange(W, device=x.device) - (W - 1) / 2          # pixel centres about the middle
    ys = (torch.arange(H, device=x.device) - (H - 1) / 2)[:, None]
    grid = theta[:, :, 0] * xs + theta[:, :, 1] * ys + theta[:, :, 2]               # (n, 2, H, W)
    # to grid_sample's [-1, 1] units (Python scalars: no tensor copied from the host)
    grid = torch.stack((grid[:, 0] / (0.5 * W), grid[:, 1] / (0.5 * H)), -1)       # (n, H, W, 2)
    if not fill and mode == "nearest":     # torchvision's form, untouched
        out = F.grid_sample(x.float(), grid, mode="nearest", padding_mode="zeros",
                            align_corners=False)
        return out.round_().to(torch.uint8)
    out = F.grid_sample(x.float() - fill, grid, mode=mode, padding_mode="zeros",
                        align_corners=False) + fill
    return out.round_().clamp_(0, 255).to(torch.uint8)


GEOMETRIC = ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY")


# What the study's AutoAugment (DeepVoltaire's PIL port, `utils/autoaug.py`) does differently from
# torchvision's: uncovered pixels grey (128), rotations one way only (PIL's `rotate(+m)`,
# counter-clockwise), shears bicubic. Every other op, the policy and the magnitudes are the same.
STUDY_FILL = 128.0
VARIANTS = ("torchvision", "study")


def _geometric(kind: torch.Tensor, x: torch.Tensor, m: torch.Tensor,
               variant: str = "torchvision", shears: torch.Tensor | None = None) -> torch.Tensor:
    """Geometric ops in one grid sample: sample i does GEOMETRIC[kind[i]] with magnitude m[i]
    (`variant="study"`: grey fill, and a second, bicubic grid sample for the shears, the samples
    at positions `shears` (n_shear,), known on the host: no sync; None: found on the device)."""
    is_op = {op: kind == k for k, op in enumerate(GEOMETRIC)}
    zero = torch.zeros_like(m)
    shear = torch.rad2deg(torch.atan(m))
    is_shear = is_op["ShearX"] | is_op["ShearY"]
    args = (torch.where(is_op["Rotate"], -torch.remainder(m, 360), zero),
            torch.where(is_op["TranslateX"], m.trunc(), zero),
            torch.where(is_op["TranslateY"], m.trunc(), zero),
            torch.where(is_op["ShearX"], shear, zero),
            torch.where(is_op["ShearY"], shear, zero),
            torch.where(is_shear, -1.0, 0.0).to(m.dtype))
    if variant == "torchvision":
        return _affine(x, *args)
    out = _affine(x, *args, fill=STUDY_FILL)
    idx = is_shear.nonzero()[:, 0] if shears is None else shears     # nonzero waits for the device
    if len(idx):
        out[idx] = _affine(x[idx], *(a[idx] for a in args), fill=STUDY_FILL, mode="bicubic")
    return out


def apply_op(op: str, x: torch.Tensor, magnitude: torch.Tensor,
             variant: str = "torchvision") -> torch.Tensor:
    """AutoAugment op `op` on uint8 images (n, 3, H, W), each with its own signed magnitude (n,)
    float64 (`variant="study"`: the geometric ops as the study's code runs them)."""
    m = magnitude
    if op in ("Invert", "Equalize"):
        return {"Invert": TF.invert, "Equalize": TF.equalize}[op](x)
    if op == "AutoContrast":
        return _autocontrast(x)
    if op == "Brightness":
        return (x.float() * (1.0 + m).float().view(-1, 1, 1, 1)).clamp_(0, 255).to(torch.uint8)
    if op == "Color":
        return _blend(x, _gray(x), 1.0 + m)
    if op == "Contrast":
        return _blend(x, _gray(x).mean((-3, -2, -1), keepdim=True), 1.0 + m)
    if op == "Sharpness":
        return _sharpness(x, 1.0 + m)
    if op == "Posterize":
        bits = m.long().view(-1, 1, 1, 1)
        return x & (((1 << bits) - 1) << (8 - bits)).to(torch.uint8)
    if op == "Solarize":
        return torch.where(x >= (255.0 * m).float().view(-1, 1, 1, 1), 255 - x, x)
    if op in GEOMETRIC:
        shear = op in ("ShearX", "ShearY")
        return _geometric(torch.full_like(m, GEOMETRIC.index(op), dtype=torch.long), x, m,
                          variant, torch.arange(len(x) if shear else 0, device=x.device))
    ops = ", ".join(v2.AutoAugment._AUGMENTATION_SPACE)
    raise ValueError(f"op={op!r} is not an AutoAugment op; choose one of {ops}")


class AutoAugment:
    """AutoAugment (default: the CIFAR-10 policy) on uint8 batches, one random sub-policy per
    sample; `variant="study"`: the study's port (grey fill, rotations one way, bicubic shears)."""

    def __init__(self, policy: list | None = None, variant: str = "torchvision"):
        if variant not in VARIANTS:
            raise ValueError(f"variant={variant!r} is not valid: choose one of {VARIANTS}")
        self.policy = policy if policy is not None else cifar10_policy()
        self.variant = variant
        self.ops = sorted({op for sub in self.policy for op, _, _ in sub})
        self._tables = {}

    def table(self, height: int, width: int, device) -> tuple[torch.Tensor, ...]:
        """Per (sub-policy, slot): op index, probability, magnitude, signed flag (tensors on
        `device`)."""
        key = (height, width, str(device))
        if key not in self._tables:
            rows = [(self.ops.index(op), p, *op_magnitude(op, b, height, width))
                    for sub in self.policy for op, p, b in sub]
            if self.variant == "study":      # PIL's rotate(+m): one direction, never signed
                rows = [(o, p, mag, sg and self.ops[o] != "Rotate") for o, p, mag, sg in rows]
            op, p, mag, signed = zip(*rows)
            shape = (len(self.policy), 2)
            self._tables[key] = (torch.tensor(op, device=device).view(shape),
                                 torch.tensor(p, device=device, dtype=torch.float64).view(shape),
                                 torch.tensor(mag, device=device, dtype=torch.float64).view(shape),
                                 torch.tensor(signed, device=device).view(shape))
        return self._tables[key]

    def draw(self, n: int, height: int, width: int, g: torch.Generator | None = None, device="cpu"):
        """Each sample's sub-policy, and per slot its op index (-1: skipped by its coin) and signed
        magnitude."""
        op, p, mag, signed = self.table(height, width, device)
        sub = torch.randint(0, len(self.policy), (n,), device=device, generator=g)
        coin = torch.rand(n, 2, device=device, generator=g, dtype=torch.float64)
        flip_sign = torch.rand(n, 2, device=device, generator=g) <= 0.5
        ops = torch.where(coin <= p[sub], op[sub], -1)
        mags = torch.where(signed[sub] & flip_sign, -mag[sub], mag[sub])
        return sub, ops, mags

    def plan(self, n: int, height: int, width: int, host: torch.Generator | None = None):
        """The draws of `draw` on the host (from `host`, a CPU generator or None for torch's
        global one), grouped: a list of (slot, op index k or len(self.ops) for every geometric
        op at once, the group's sample positions, their signed magnitudes, their geometric kinds
        (-1 for the other ops)), slot by slot, groups in increasing k, positions in increasing
        order (the order the samples were processed in before the draws moved to the host).
        Host numpy arrays."""
        _, ops, mags = self.draw(n, height, width, host, "cpu")
        ops, mags = ops.numpy(), mags.numpy()             # host tensors: a read, not a sync
        to_kind = np.array([GEOMETRIC.index(op) if op in GEOMETRIC else -1 for op in self.ops])
        geometric = to_kind >= 0
        plan = []
        for slot in range(2):
            op, m = ops[:, slot], mags[:, slot]
            # one group per op, all geometric ops in one group, -1 for the skipped samples
            group = np.where(op < 0, -1, np.where(geometric[op], len(self.ops), op))
            order = np.argsort(group, kind="stable")
            counts = np.bincount(group + 1, minlength=len(self.ops) + 2)
            start = counts[0]                        # the samples whose coin skipped this slot
            for k, size in enumerate(counts[1:]):
                if size:
                    idx = order[start:start + size]
                    plan.append((slot, k, idx, m[idx], to_kind[op[idx]]))
                    start += size
        return plan

    def __call__(self, x: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        """A sub-policy per sample of uint8 `x` (B, 3, H, W), drawn from `host_generator(g)`."""
        plan = self.plan(len(x), x.shape[-2], x.shape[-1], host_generator(g))
        if not plan:
            return x.clone()
        # the whole plan in two non-blocking copies: positions and kinds, magnitudes
        sizes = [len(idx) for _, _, idx, _, _ in plan]
        shear = [np.nonzero(np.isin(kind, SHEAR_KINDS))[0] for _, _, _, _, kind in plan]
        ints = np.concatenate([a for (_, _, idx, _, kind), sh in zip(plan, shear)
                               for a in (idx, kind, sh)])
        ints = torch.from_numpy(ints).to(x.device, non_blocking=True)
        mags = torch.from_numpy(np.concatenate([m for _, _, _, m, _ in plan]))
        mags = mags.to(x.device, non_blocking=True)
        x = x.clone()
        at = pos = 0
        for (_, k, _, _, _), n, sh in zip(plan, sizes, shear):
            idx, kind = ints[at:at + n], ints[at + n:at + 2 * n]
            shears = ints[at + 2 * n:at + 2 * n + len(sh)]
            m = mags[pos:pos + n]
            at, pos = at + 2 * n + len(sh), pos + n
            x[idx] = (_geometric(kind, x[idx], m, self.variant, shears) if k == len(self.ops)
                      else apply_op(self.ops[k], x[idx], m))
        return x


SHEAR_KINDS = (GEOMETRIC.index("ShearX"), GEOMETRIC.index("ShearY"))


def host_generator(g: torch.Generator | None) -> torch.Generator | None:
    """The host stream that goes with a batch's generator `g`: `g` itself when it is a CPU
    generator (or None: torch's global CPU one), else a CPU generator seeded once from `g`'s seed
    (`g.initial_seed()`, a host value), kept for as long as `g` is used. Per-batch choices whose
    outcome decides Python control flow (which samples get which op, whether a batch is mixed,
    a CutMix box) are drawn from it: on a GPU, reading them never waits for the device."""
    if g is None or g.device.type == "cpu":
        return g
    for held, host in _HOSTS:
        if held is g:
            return host
    host = torch.Generator().manual_seed((g.initial_seed() + _HOST_OFFSET) % 2 ** 63)
    _HOSTS.insert(0, (g, host))
    del _HOSTS[8:]                                   # the streams of the last few generators
    return host


_HOSTS: list = []
_HOST_OFFSET = 0x5DEECE66D        # the host stream of a device generator: its seed + this


__all__ = ["AutoAugment", "apply_op", "op_magnitude", "cifar10_policy", "host_generator",
           "GEOMETRIC", "STUDY_FILL", "VARIANTS"]

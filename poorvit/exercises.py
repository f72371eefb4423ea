"""Checks that grade a reader's own implementation, answering with what was expected, what came back
and a hint: never just "assert failed".

Every chapter's exercises register a check here with `@exercise("chapter-slug/name", hint=...)`. A check
takes the reader's function or value, runs it on fresh inputs, compares with the package's answer, and
either returns a short success message or raises `ExerciseError` with the explanation.

    from poorvit.exercises import check
    check("tokens/patchify", my_patchify)      # prints "✓ tokens/patchify: ..." or explains what is wrong
"""
from __future__ import annotations

from typing import Any, Callable

import torch

CHECKS: dict[str, dict] = {}


class ExerciseError(AssertionError):
    """A reader's answer is not right yet; the message says what was expected and how to get there."""


def exercise(name: str, hint: str = ""):
    """Register `fn(answer) -> str` as the check of exercise `name`."""
    def register(fn: Callable[[Any], str]):
        CHECKS[name] = {"check": fn, "hint": hint, "doc": (fn.__doc__ or "").strip()}
        return fn
    return register


# ---- classroom: placeholders of the student notebooks (see poorvit.classroom) ----------------------------

class Todo:
    """The placeholder a student notebook holds where the reader still has to write a value: using it
    (attribute, call, iteration, arithmetic...) raises NotImplementedError naming the exercise, and `check`
    answers "not attempted yet" instead of grading it."""
    __slots__ = ("exercise",)

    def __init__(self, exercise: str):
        self.exercise = exercise

    def __repr__(self) -> str:
        return f"todo({self.exercise!r})"

    def _missing(self, *args, **kwargs):
        raise NotImplementedError(f"{self.exercise}: not written yet (replace todo({self.exercise!r}) with your answer)")

    def __getattr__(self, attr):
        if attr.startswith("_"):           # Python's and IPython's protocol probes (__len__, _repr_html_) stay quiet
            raise AttributeError(attr)
        self._missing()

    __call__ = __iter__ = __len__ = __bool__ = __getitem__ = __contains__ = _missing
    __int__ = __float__ = __index__ = __neg__ = __abs__ = _missing
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _missing
    __matmul__ = __rmatmul__ = __pow__ = __lt__ = __le__ = __gt__ = __ge__ = _missing


def todo(exercise: str) -> Todo:
    """A value still to be written in exercise `exercise`: `my_row = todo("together/row")`."""
    return Todo(exercise)


def check(name: str, answer: Any) -> str:
    """Grade `answer` for exercise `name`; prints and returns the verdict, raises ExerciseError if wrong."""
    if name not in CHECKS:
        raise KeyError(f"no exercise named {name!r}; known: {', '.join(sorted(CHECKS))}")
    entry = CHECKS[name]
    if isinstance(answer, Todo):       # a student notebook's placeholder value, not replaced yet
        raise ExerciseError(f"✗ {name}: not attempted yet (replace `todo({answer.exercise!r})` with your answer)")
    try:
        msg = entry["check"](answer)
    except ExerciseError as err:
        hint = f"\nHint: {entry['hint']}" if entry["hint"] else ""
        raise ExerciseError(f"✗ {name}: {err}{hint}") from None
    except NotImplementedError:
        raise ExerciseError(f"✗ {name}: not attempted yet (the cell still raises NotImplementedError)") from None
    except Exception as err:  # the reader's code crashed: say where, keep the hint
        hint = f"\nHint: {entry['hint']}" if entry["hint"] else ""
        raise ExerciseError(f"✗ {name}: your code raised {type(err).__name__}: {err}{hint}") from None
    verdict = f"✓ {name}: {msg}"
    print(verdict)
    return verdict


def expect_close(got: torch.Tensor, want: torch.Tensor, what: str, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Raise ExerciseError naming shapes or the largest difference when `got` is not `want`."""
    if not torch.is_tensor(got):
        raise ExerciseError(f"{what}: expected a tensor, got {type(got).__name__}")
    if got.shape != want.shape:
        raise ExerciseError(f"{what}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}")
    if not torch.allclose(got.float(), want.float(), atol=atol, rtol=rtol):
        diff = (got.float() - want.float()).abs()
        raise ExerciseError(f"{what}: values differ (max difference {diff.max().item():.3g} at index "
                            f"{tuple(int(i) for i in torch.nonzero(diff == diff.max())[0])})")


__all__ = ["exercise", "check", "expect_close", "ExerciseError", "CHECKS", "Todo", "todo"]


# ---- chapter 7, whitening the patch embedding --------------------------------------------------------------

def _random_second_moment(D: int = 12, seed: int = 0) -> torch.Tensor:
    """A second-moment matrix of correlated random data whose eigenvalues span orders of magnitude."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(D, D, generator=g, dtype=torch.float64) * torch.logspace(0, -2, D, dtype=torch.float64)
    x = torch.randn(4000, D, generator=g, dtype=torch.float64) @ mix.T
    return x.T @ x / len(x)


@exercise("whitening/filters", hint="torch.linalg.eigh returns eigenvalues in ascending order; flip both, then "
                                    "divide each eigenvector (a column of V) by sqrt(eigenvalue + eps) and stack them as rows.")
def _check_whitening_filters(fn) -> str:
    """fn(sigma, eps) -> (D, D) filters, one per row, v_i / sqrt(lambda_i + eps), largest eigenvalue first."""
    from .init import whitening_filters

    for seed, eps in ((1, 1e-2), (2, 1e-4)):
        sigma = _random_second_moment(seed=seed)
        want, lam = whitening_filters(sigma, eps)
        got = torch.as_tensor(fn(sigma, eps)).double()
        want = want.double()
        if got.shape != want.shape:
            raise ExerciseError(f"expected filters of shape {tuple(want.shape)} (one row per direction), got {tuple(got.shape)}")
        sign = torch.sign((got * want).sum(1, keepdim=True))              # an eigenvector's sign is arbitrary
        sign[sign == 0] = 1
        expect_close(got * sign, want, f"filters for eps={eps} (up to the sign of each row)", atol=1e-4, rtol=1e-3)
    return "the rows whiten: filters @ sigma @ filters.T = diag(lambda / (lambda + eps))"


@exercise("whitening/kept", hint="whitening leaves the variance lambda / (lambda + eps) along a direction with eigenvalue lambda.")
def _check_whitening_kept(fn) -> str:
    """fn(eigvals, eps) -> how many directions keep more than 90 % of their variance after whitening."""
    g = torch.Generator().manual_seed(7)
    for eps in (1e-1, 1e-2, 1e-3):
        lam = torch.logspace(1, -4, 48) * (1 + 0.1 * torch.rand(48, generator=g))
        want = int((lam / (lam + eps) > 0.9).sum())
        got = fn(lam, eps)
        got = int(got.item() if torch.is_tensor(got) else got)
        if got != want:
            raise ExerciseError(f"for eps={eps:g}, {want} of 48 directions keep more than 90 % of their variance; "
                                f"your function says {got}")
    return "directions keep 90 % of their variance exactly where lambda > 9 * eps"


@exercise("whitening/freeze", hint="register a hook on conv.weight (and conv.bias) that multiplies the gradient by a "
                                   "mask with zeros in the first k rows: conv.weight.register_hook(lambda g: g * mask).")
def _check_whitening_freeze(fn) -> str:
    """fn(conv, k) makes the first k output channels of a Conv2d receive no gradient; the rest still learn."""
    import torch.nn as nn

    torch.manual_seed(0)
    conv = nn.Conv2d(3, 16, kernel_size=4, stride=4)
    fn(conv, 5)
    conv(torch.randn(2, 3, 8, 8)).square().sum().backward()
    if conv.weight.grad is None:
        raise ExerciseError("conv.weight got no gradient at all: only the first k channels should be frozen")
    frozen = conv.weight.grad[:5].abs().sum().item()
    if frozen != 0:
        raise ExerciseError(f"the first 5 filters still get a gradient (sum of |grad| = {frozen:.3g}); expected 0")
    if not conv.weight.grad[5:].abs().sum() > 0:
        raise ExerciseError("the filters after the first 5 got a zero gradient: they should keep learning")
    if conv.bias.grad is not None and conv.bias.grad[:5].abs().sum() != 0:
        raise ExerciseError("the weights are frozen but the first 5 biases still get a gradient; mask conv.bias too")
    return "the first k filters get a zero gradient, the others learn"


# ---- chapter 8, many class tokens --------------------------------------------------------------------------

@exercise("cls-tokens/mean-head", hint="take the first n_cls tokens, feats[:, :n_cls], average them over dim 1, "
                                       "and apply the head.")
def _check_cls_mean_head(fn) -> str:
    """fn(feats, n_cls, head) -> logits from the average of the class tokens (the `cls_head="mean"` pooling)."""
    from .config import get_config
    from .model import ViT

    torch.manual_seed(0)
    for k in (1, 3):
        model = ViT(get_config("micro", n_cls=k, cls_head="mean")).eval()
        with torch.no_grad():
            feats = model.forward_features(torch.randn(4, 3, 32, 32))
            expect_close(torch.as_tensor(fn(feats, k, model.head)), model.forward_head(feats),
                         f"logits with n_cls={k}")
    return "mean pooling of the class tokens matches ViT(cls_head='mean')"


@exercise("cls-tokens/extra-params", hint="count what grows with n_cls: the class tokens, their learned positions "
                                          "(pos_embed='learned' only) and, with cls_head='concat', the head's input.")
def _check_cls_extra_params(fn) -> str:
    """fn(cfg) -> how many more parameters cfg has than the same config with n_cls = 1."""
    from .config import get_config, with_overrides
    from .model import count_params

    for over in (dict(n_cls=4), dict(n_cls=8, cls_head="mean"), dict(n_cls=3, pos_embed="sincos"),
                 dict(n_cls=2, pos_embed="none", n_classes=100), dict(n_cls=1)):
        cfg = get_config("smoke", **over)
        want = count_params(cfg) - count_params(with_overrides(cfg, n_cls=1))
        got = int(fn(cfg))
        if got != want:
            raise ExerciseError(f"for {over} expected {want:,} extra parameters, got {got:,}")
    return "the extra parameters match count_params for every head and positional embedding"


@exercise("cls-tokens/collapse", hint="normalize each token to unit length, form the (B, k, k) matrix of dot products, "
                                      "average it over the images, then average its k * (k - 1) off-diagonal entries.")
def _check_cls_collapse(fn) -> str:
    """fn(tokens) -> mean off-diagonal cosine similarity of (B, k, C) tokens, averaged over the B images."""
    from .model import cosine_matrix, off_diagonal_mean

    g = torch.Generator().manual_seed(3)
    for shared in (0.0, 0.8):
        base = torch.randn(5, 1, 16, generator=g)
        tokens = shared * base + (1 - shared) * torch.randn(5, 4, 16, generator=g)
        want = off_diagonal_mean(cosine_matrix(tokens).mean(0))
        got = float(fn(tokens))
        if abs(got - want) > 1e-4:
            raise ExerciseError(f"expected a mean off-diagonal similarity of {want:.4f}, got {got:.4f}")
    return "your collapse measure matches model.off_diagonal_mean(model.cosine_matrix(tokens).mean(0))"


# ---- chapter 1, images to tokens ("tokens/...") --------------------------------------------------------

@exercise("tokens/patchify", hint="view (B, C, H, W) as (B, C, H/p, p, W/p, p), permute to (B, H/p, W/p, C, p, p), "
                                  "then reshape to (B, N, C*p*p): patches in raster order, values in (c, row, col) "
                                  "order.")
def _check_patchify(fn) -> str:
    """fn(images, p) -> (B, N, C*p*p), equal to `poorvit.tokens.patchify`."""
    from .tokens import patchify

    g = torch.Generator().manual_seed(11)
    for shape, p in (((2, 3, 8, 8), 2), ((3, 3, 32, 32), 4), ((1, 3, 32, 32), 8), ((2, 3, 8, 16), 4)):
        x = torch.randn(*shape, generator=g)
        expect_close(fn(x, p), patchify(x, p), f"patchify of a {shape} batch with p={p}")
    return "your patches match poorvit.tokens.patchify (raster order, values in (channel, row, column) order)"


@exercise("tokens/patch-embed-matmul", hint="flatten the conv weight (C, 3, p, p) to a (C, 3*p*p) matrix W; the "
                                            "tokens are patchify(images, p) @ W.T + bias.")
def _check_patch_embed_matmul(fn) -> str:
    """fn(embed: PatchEmbed, images) -> (B, N, n_embd), equal to `embed(images)`, computed with one matmul."""
    from .tokens import PatchEmbed

    torch.manual_seed(12)
    for p, C in ((4, 16), (8, 24), (2, 8)):
        embed = PatchEmbed(p, 3, C)
        x = torch.randn(2, 3, 16, 16)
        with torch.no_grad():
            expect_close(fn(embed, x), embed(x), f"tokens of PatchEmbed(patch_size={p}, n_embd={C})")
    return "one matrix product of flattened patches gives exactly the strided convolution's tokens"


@exercise("tokens/attention-flops", hint="T = (image_size / patch_size)^2 + 1 tokens; q, k, v and the output "
                                         "projection cost 2*T*C*C each; q kᵀ and weights @ v cost 2*T*T*C each.")
def _check_attention_flops(fn) -> str:
    """fn(image_size, patch_size, n_embd) -> FLOPs of one attention layer on one image (one class token)."""
    from .cost import attention_flops, n_tokens

    for size, p, C in ((32, 4, 192), (32, 2, 64), (32, 8, 128), (64, 4, 32), (32, 1, 16)):
        want = attention_flops(n_tokens(size, p), C)["total"]
        got = int(fn(size, p, C))
        if got != want:
            raise ExerciseError(f"image_size={size}, patch_size={p}, n_embd={C}: expected {want:,} FLOPs, got {got:,}")
    return "your formula matches poorvit.cost.attention_flops (which a test holds equal to flop_counter)"


# ---- chapter 2, attention from scratch ("attention/...") -----------------------------------------------

@exercise("attention/gqa", hint="query head h uses key/value head h // (n_head / n_kv_head): repeat each key/value "
                                "head that many times side by side (repeat_interleave on dim 1, not repeat), then "
                                "attend as usual.")
def _check_gqa(fn) -> str:
    """fn(q, k, v) -> grouped-query attention: q (B, H, T, d), k and v (B, H_kv, T, d) with H_kv dividing H."""
    from .attention import explicit_sdpa

    g = torch.Generator().manual_seed(21)
    for B, H, H_kv, T, d in ((2, 4, 2, 9, 8), (1, 6, 1, 17, 4), (2, 4, 4, 5, 8), (1, 8, 2, 65, 16)):
        q = torch.randn(B, H, T, d, generator=g)
        k, v = torch.randn(B, H_kv, T, d, generator=g), torch.randn(B, H_kv, T, d, generator=g)
        expect_close(fn(q, k, v), explicit_sdpa(q, k, v)[0], f"attention with n_head={H}, n_kv_head={H_kv}")
    return "your grouped-query attention matches the package's, from MHA (groups of 1) to MQA (one group)"


@exercise("attention/entropy", hint="take maps[:, :, :, 0] (the class token's row, (L, B, H, T)); entropy "
                                    "-sum(a * log a) over the last dim; then mean over the images (dim 1).")
def _check_entropy(fn) -> str:
    """fn(maps) -> (L, H): the entropy in nats of the class token's attention row (row 0, over all T keys),
    averaged over the B images, for maps (L, B, H, T, T)."""
    g = torch.Generator().manual_seed(22)
    for L, B, H, T in ((2, 3, 4, 9), (1, 1, 1, 5), (3, 2, 2, 17)):
        maps = (3 * torch.randn(L, B, H, T, T, generator=g)).softmax(-1)
        row = maps[:, :, :, 0]                                            # (L, B, H, T)
        want = -(row * row.log()).sum(-1).mean(1)                         # (L, H)
        expect_close(torch.as_tensor(fn(maps)), want, f"entropy of {L} blocks x {H} heads")
    uniform = torch.full((1, 1, 1, 4, 4), 0.25)
    got = torch.as_tensor(fn(uniform)).flatten()[0].item()
    if abs(got - torch.log(torch.tensor(4.0)).item()) > 1e-4:
        raise ExerciseError(f"uniform attention over 4 tokens has entropy log 4 = 1.3863 nats; got {got:.4f}")
    return "your entropies match; uniform attention over T tokens gives log T, attention on one token gives 0"


@exercise("attention/rollout", hint="average the heads; for each block A, use 0.5*I + 0.5*A, divide each row by its "
                                    "sum, and multiply it onto the running product from the left (A_l ... A_1).")
def _check_rollout(fn) -> str:
    """fn(maps) -> attention rollout (B, T, T) of maps (L, B, H, T, T), residual weight 0.5."""
    from .viz import attention_rollout

    g = torch.Generator().manual_seed(23)
    for L, B, H, T in ((3, 2, 4, 5), (1, 1, 2, 9), (6, 2, 3, 17)):
        maps = torch.randn(L, B, H, T, T, generator=g).softmax(-1)
        expect_close(fn(maps), attention_rollout(maps), f"rollout of {L} blocks")
    return "your rollout matches poorvit.viz.attention_rollout"


# ---- chapter 3, a first ViT ("first-vit/...") ----------------------------------------------------------

@exercise("first-vit/param-count", hint="patch conv 3*p*p*C + C; class token C; positions T*C; per block: two "
                                        "LayerNorms 4C, qkv 3C*C + 3C, proj C*C + C, MLP 2*C*hidden + hidden + C; "
                                        "final LayerNorm 2C; head C*n_classes + n_classes.")
def _check_param_count(fn) -> str:
    """fn(cfg) -> the parameter count of a plain ViT (MHA, one class token, learned positions)."""
    from .config import get_config
    from .model import count_params

    for name, over in (("smoke", {}), ("paper", {}), ("micro", {}),
                       ("smoke", dict(n_embd=96, n_layer=2, mlp_ratio=4.0)),
                       ("paper", dict(patch_size=2, n_classes=100))):
        cfg = get_config(name, **over)
        want, got = count_params(cfg), int(fn(cfg))
        if got != want:
            raise ExerciseError(f"the {name} preset with {over or 'no overrides'}: expected {want:,} parameters, "
                                f"got {got:,} (off by {got - want:+,})")
    return "your count matches the built models for every preset"


@exercise("first-vit/per-class-accuracy", hint="for each class c: among the images whose target is c, the fraction "
                                               "whose prediction is c (torch.bincount does all classes at once).")
def _check_per_class_accuracy(fn) -> str:
    """fn(pred, target, n_classes) -> (n_classes,) accuracy of each class."""
    from .predict import per_class_accuracy

    g = torch.Generator().manual_seed(31)
    for n, k in ((200, 10), (57, 3)):
        target = torch.cat([torch.arange(k), torch.randint(0, k, (n - k,), generator=g)])
        pred = torch.where(torch.rand(n, generator=g) < 0.6, target, torch.randint(0, k, (n,), generator=g))
        got = fn(pred, target, k)
        expect_close(torch.as_tensor(got, dtype=torch.float32), per_class_accuracy(pred, target, k),
                     f"per-class accuracy of {n} predictions over {k} classes")
    return "your per-class accuracies match poorvit.predict.per_class_accuracy"


@exercise("first-vit/confident-mistakes", hint="take the probability and the class of each row's maximum; keep the "
                                              "rows where that class is not the target; sort them by probability, "
                                              "largest first.")
def _check_confident_mistakes(fn) -> str:
    """fn(probs, target, k) -> indices of the k wrong predictions made with the highest probability."""
    from .predict import confident_mistakes

    g = torch.Generator().manual_seed(32)
    for n, c, k in ((300, 10, 8), (40, 4, 5)):
        probs = (3 * torch.randn(n, c, generator=g)).softmax(-1)
        target = torch.randint(0, c, (n,), generator=g)
        want, got = confident_mistakes(probs, target, k), torch.as_tensor(fn(probs, target, k))
        if got.tolist() != want.tolist():
            raise ExerciseError(f"expected indices {want.tolist()}, got {got.tolist()}")
    return "your mistakes are the ones poorvit.predict.confident_mistakes finds, in the same order"


# ---- chapter 10, putting it together ("together/...") -----------------------------------------------

@exercise("together/row", hint='a Row names only what the study changes: Row("low-rank v", model=dict(lowrank="v")); '
                                "leave the bottleneck's width to the baseline and to sweep.translate.")
def _check_together_row(row) -> str:
    """row: a `sweep.Row` for "the values alone through the rank-64 bottleneck"."""
    from .sweep import Row, baseline_configs, config_diff, translate
    from .config import with_overrides

    if not isinstance(row, Row):
        raise ExerciseError(f"expected a poorvit.sweep.Row, got {type(row).__name__}")
    if row.train or row.model != {"lowrank": "v"}:
        raise ExerciseError(f"expected model={{'lowrank': 'v'}} and no training change, got model={row.model}, "
                            f"train={row.train}")
    for scale in ("paper", "smoke"):
        base = baseline_configs(scale)
        m, t = translate(row, *base)
        diff = config_diff(base, (with_overrides(base[0], **m), with_overrides(base[1], **t)))
        if "lowrank" not in diff:
            raise ExerciseError(f"at the {scale} scale the row changes {sorted(diff)}, not lowrank")
    return "the row changes exactly `lowrank`, and translates onto the smoke model (its bottleneck scaled with the width)"


@exercise("together/mean-std", hint="mean = sum / n; the sample standard deviation divides the squared deviations "
                                     "by n - 1 (statistics.stdev); with one value there is no spread to estimate: None.")
def _check_together_mean_std(fn) -> str:
    """fn(values) -> (mean, std): std the sample standard deviation, None for a single value."""
    from .report import mean_std

    g = torch.Generator().manual_seed(10)
    for n in (1, 2, 3, 5):
        values = (90 + 4 * torch.rand(n, generator=g, dtype=torch.float64)).tolist()
        (m_want, s_want), (m_got, s_got) = mean_std(values), fn(values)
        if abs(m_got - m_want) > 1e-9:
            raise ExerciseError(f"for {n} values {[round(v, 3) for v in values]} expected mean {m_want:.4f}, got {m_got}")
        if s_want is None:
            if s_got is not None:
                raise ExerciseError(f"for a single value expected std None (no spread to estimate), got {s_got}")
        elif s_got is None or abs(s_got - s_want) > 1e-9:
            raise ExerciseError(f"for {n} values expected std {s_want:.4f} (divide by n - 1), got {s_got}")
    return "mean ± std as poorvit.report computes it over seeds"


@exercise("together/kv-heads", hint="1 stays 1 (MQA); as many as the study's heads stays n_head (MHA); otherwise "
                                     "among the divisors d of n_head with 1 < d < n_head pick the d whose d / n_head is "
                                     "nearest n_kv_head / paper_heads (the smaller d on a tie); no such d: all divisors.")
def _check_together_kv_heads(fn) -> str:
    """fn(n_kv_head, paper_heads, n_head) -> key/value heads for a model with n_head query heads."""
    from .sweep import kv_heads_like

    for paper_heads in (12, 8):
        for n_kv in [d for d in range(1, paper_heads + 1) if paper_heads % d == 0]:
            for n_head in (1, 2, 3, 4, 6, 8, 12, 16):
                want, got = kv_heads_like(n_kv, paper_heads, n_head), fn(n_kv, paper_heads, n_head)
                if got != want:
                    raise ExerciseError(f"for n_kv_head={n_kv} of {paper_heads} heads on a model with n_head={n_head} "
                                        f"expected {want} key/value heads, got {got}")
    return "your translation keeps MHA, GQA and MQA rows what they are on any number of heads"


# ---- chapter 6, attention variants ("variants/...") -------------------------------------------------------

@exercise("variants/repeat_kv", hint="query head h reads key/value head h // n_rep: each KV head appears n_rep "
                                     "times in a row (torch.repeat_interleave along dim 1), not the whole stack "
                                     "n_rep times over (that is .repeat).")
def _check_variants_repeat_kv(fn) -> str:
    """fn(k (B, H_kv, N, d), n_rep) -> (B, H_kv * n_rep, N, d), head h a copy of KV head h // n_rep."""
    g = torch.Generator().manual_seed(6)
    for h_kv, n_rep in ((1, 4), (2, 3), (3, 2), (4, 1)):
        k = torch.randn(2, h_kv, 5, 3, generator=g)
        want = k.repeat_interleave(n_rep, dim=1)
        got = fn(k, n_rep)
        if torch.is_tensor(got) and got.shape == want.shape and h_kv > 1 and n_rep > 1 \
                and torch.equal(got, k.repeat(1, n_rep, 1, 1)):
            raise ExerciseError(f"with {h_kv} KV heads and n_rep={n_rep} your heads come in the order "
                                f"{[h % h_kv for h in range(h_kv * n_rep)]}; each group of query heads must read "
                                f"one KV head: {[h // n_rep for h in range(h_kv * n_rep)]}")
        expect_close(got, want, f"repeat_kv(k with {h_kv} KV heads, n_rep={n_rep})")
    return "every query head reads the key/value head of its group, as F.scaled_dot_product_attention(enable_gqa=True) does"


@exercise("variants/absorb_qk", hint="(W_uq c_q) . (W_uk c_kv) = c_q^T W_uq^T W_uk c_kv: the matrix between the two "
                                     "latents is W_uq.T @ W_uk, of shape (q_rank, kv_rank).")
def _check_variants_absorb_qk(fn) -> str:
    """fn(W_uq (d, q_rank), W_uk (d, kv_rank)) -> M (q_rank, kv_rank) with c_q^T M c_kv = (W_uq c_q) . (W_uk c_kv)."""
    g = torch.Generator().manual_seed(6)
    d, r_q, r_kv = 16, 12, 8
    W_uq, W_uk = torch.randn(d, r_q, generator=g), torch.randn(d, r_kv, generator=g)
    c_q, c_kv = torch.randn(7, r_q, generator=g), torch.randn(9, r_kv, generator=g)
    M = fn(W_uq, W_uk)
    if not torch.is_tensor(M) or M.shape != (r_q, r_kv):
        raise ExerciseError(f"expected a ({r_q}, {r_kv}) tensor for q_rank={r_q}, kv_rank={r_kv}, got "
                            f"{tuple(M.shape) if torch.is_tensor(M) else type(M).__name__}")
    expect_close(c_q @ M @ c_kv.T, (c_q @ W_uq.T) @ (c_kv @ W_uk.T).T, "scores c_q^T M c_kv vs q . k", atol=1e-3)
    return f"scores straight from the latents: {r_q} x {r_kv} numbers per head instead of two up-projections"


@exercise("variants/kv_cache", hint="without MLA a decoder caches a key and a value for every KV head of every "
                                    "block: 2 * n_kv_head * head_dim per block (cfg.kv_heads covers n_kv_head=None); "
                                    "with MLA (kv_rank > 0) only the shared latent: kv_rank per block.")
def _check_variants_kv_cache(fn) -> str:
    """fn(cfg) -> values a decoder would cache per token, over all blocks."""
    from .config import get_config
    from .variants import kv_cache_floats

    for over in ({}, {"n_kv_head": 4}, {"n_kv_head": 1}, {"q_rank": 96, "kv_rank": 64}, {"kv_rank": 32, "n_kv_head": 4}):
        cfg = get_config("paper", **over)
        want, got = kv_cache_floats(cfg), fn(cfg)
        if got != want:
            kind = cfg.attention_kind + (f" with kv_rank={cfg.kv_rank}" if cfg.kv_rank else "")
            raise ExerciseError(f"for the paper preset with {over or 'no overrides'} ({kind}) expected {want:,} "
                                f"values per token, got {got}")
    return "MHA, GQA, MQA and MLA caches per token, from the config alone"


# ---- chapter 9, profiling a training step ("profiling/...") ---------------------------------------------

@exercise("profiling/block-flops", hint="per token: q, k, v and the output projection cost 2*C*C each, the MLP "
                                        "2*C*hidden twice; per pair of tokens, q kᵀ and weights @ v cost 2*C each. "
                                        "Multiply by T (or T*T) tokens.")
def _check_block_flops(fn) -> str:
    """fn(n_tokens, n_embd, mlp_hidden) -> forward FLOPs of one pre-norm transformer block on one image."""
    from torch.utils.flop_counter import FlopCounterMode

    from .attention import explicit_attention
    from .config import get_config
    from .model import Block

    for T, C, H, hidden in ((65, 192, 12, 384), (17, 64, 4, 128), (257, 32, 2, 128), (5, 48, 3, 48)):
        cfg = get_config("micro", n_embd=C, n_head=H, mlp_ratio=hidden / C)
        with explicit_attention(), FlopCounterMode(display=False) as counter:
            Block(cfg)(torch.zeros(1, T, C))
        want, got = counter.get_total_flops(), int(fn(T, C, hidden))
        if got != want:
            raise ExerciseError(f"n_tokens={T}, n_embd={C}, mlp_hidden={hidden}: flop_counter counts {want:,} "
                                f"FLOPs, your formula gives {got:,}")
    return "your formula equals torch's flop_counter on a real Block, for four shapes"


@exercise("profiling/mfu", hint="FLOPs of the step = flops_per_image * batch_size; achieved FLOP/s = that / "
                                "(step_ms / 1000); utilisation = achieved / peak.")
def _check_mfu(fn) -> str:
    """fn(flops_per_image, batch_size, step_ms, peak_flops) -> model FLOP utilisation in 0..1."""
    from .profile import mfu

    for f, b, ms, peak in ((1.1e9, 256, 120.7, 1e15), (3.3e8, 32, 400.0, 2e11), (5e7, 1, 2.0, 1e11)):
        want, got = mfu(f * b, ms / 1e3, peak), float(fn(f, b, ms, peak))
        if abs(got - want) > 1e-9 + 1e-6 * want:
            hint = " (a factor of 1000: step_ms is in milliseconds)" if abs(got / want - 1000) < 1 or \
                abs(want / got - 1000) < 1 else ""
            raise ExerciseError(f"flops_per_image={f:.3g}, batch_size={b}, step_ms={ms}, peak={peak:.3g}: expected "
                                f"{want:.4g}, got {got:.4g}{hint}")
    return "your utilisation matches poorvit.profile.mfu"


@exercise("profiling/amdahl", hint="only the chosen phase shrinks: new step = total - parts[phase] + "
                                   "parts[phase] / factor; the speed-up is total / new step.")
def _check_amdahl(fn) -> str:
    """fn(parts_ms: dict, phase, factor) -> speed-up of the whole step when one phase becomes `factor` times faster."""
    from .profile import study_breakdown

    cases = [(study_breakdown(), "backward", 2.0), (study_breakdown(), "forward", 1e6),
             ({"data": 1.0, "forward": 3.0, "backward": 6.0, "optimizer": 2.0}, "optimizer", 4.0)]
    for parts, phase, factor in cases:
        total = sum(parts.values())
        want = total / (total - parts[phase] + parts[phase] / factor)
        got = float(fn(dict(parts), phase, factor))
        if abs(got - want) > 1e-6 * want:
            raise ExerciseError(f"parts={ {k: round(v, 1) for k, v in parts.items()} }, {phase} {factor:g}x faster: "
                                f"expected a speed-up of {want:.4f}, got {got:.4f}")
    return "right: a phase that takes a fraction f of the step caps the speed-up at 1 / (1 - f)"


# ---- chapter 4, augmentation ("augmentation/...") -------------------------------------------------------

def _soft_targets(B: int = 8, K: int = 10, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, 3, 16, 16, generator=g)
    y = torch.randint(0, K, (B,), generator=g)
    return x, torch.nn.functional.one_hot(y, K).float(), g


@exercise("augmentation/mixup", hint="pair each sample with the reversed batch, x.flip(0): "
                                     "lam * x + (1 - lam) * x.flip(0), and the same for the targets.")
def _check_mixup(fn) -> str:
    """fn(x, target, lam) -> (mixed images, mixed soft targets), partner = the reversed batch."""
    from .augment import mixup

    for seed, lam in ((0, 0.3), (1, 0.81), (2, 0.5)):
        x, t, _ = _soft_targets(seed=seed)
        want_x, want_t = mixup(x, t, lam)
        got = fn(x.clone(), t.clone(), lam)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise ExerciseError("return a pair: (mixed images, mixed targets)")
        expect_close(got[0], want_x, f"mixed images for lam={lam}")
        expect_close(got[1], want_t, f"mixed targets for lam={lam}")
    return "Mixup blends images and labels by the same lambda"


@exercise("augmentation/cutmix-target", hint="the pasted box covers (bottom - top) * (right - left) of the H * W "
                                             "pixels; that share of the label goes to the partner, target.flip(0).")
def _check_cutmix_target(fn) -> str:
    """fn(target, box, height, width) -> soft targets after pasting `box` from the reversed batch."""
    import numpy as np

    from .augment import cutmix, cutmix_box

    rng = np.random.default_rng(0)
    for lam in (0.2, 0.5, 0.9, 0.999):
        x, t, _ = _soft_targets(seed=int(lam * 10))
        box = cutmix_box(16, 16, lam, rng)
        _, want = cutmix(x, t, box)
        got = fn(t.clone(), box, 16, 16)
        expect_close(torch.as_tensor(got), want, f"targets for box (top, bottom, left, right) = {box} on 16 x 16 images")
    return "the labels mix by the area actually pasted (boxes clipped at the border paste less)"


@exercise("augmentation/smoothing", hint="CrossEntropyLoss(label_smoothing=eps) trains towards "
                                         "(1 - eps) * target + eps / n_classes.")
def _check_smoothing(fn) -> str:
    """fn(target, eps) -> the soft targets that label smoothing trains towards, for (B, K) soft targets."""
    from .augment import mixup

    for seed, eps in ((0, 0.1), (1, 0.3)):
        x, t, g = _soft_targets(seed=seed)
        _, t = mixup(x, t, 0.7)
        logits = torch.randn(t.shape, generator=g)
        got = torch.as_tensor(fn(t.clone(), eps))
        expect_close(got, (1 - eps) * t + eps / t.shape[1], f"smoothed targets for eps={eps}")
        loss = -(got * logits.log_softmax(-1)).sum(-1).mean()
        want = torch.nn.CrossEntropyLoss(label_smoothing=eps)(logits, t)
        expect_close(loss, want, "cross-entropy on your targets vs CrossEntropyLoss(label_smoothing)")
    return "smoothing a mixed target is one line, and equals CrossEntropyLoss(label_smoothing=eps)"


# ---- chapter 5, optimizers ("optimizers/...") ------------------------------------------------------------

@exercise("optimizers/adamw-step", hint="m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; "
                                        "p = p (1 - lr wd) - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).")
def _check_adamw_step(fn) -> str:
    """fn(p, grad, m, v, t, lr, beta1, beta2, eps, weight_decay) -> (p, m, v) after AdamW step t (from 1)."""
    g = torch.Generator().manual_seed(0)
    p0 = torch.randn(50, generator=g, dtype=torch.float64)
    hp = dict(lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
    ref = p0.clone().requires_grad_()
    opt = torch.optim.AdamW([ref], **hp)
    p, m, v = p0.clone(), torch.zeros_like(p0), torch.zeros_like(p0)
    for t in range(1, 6):
        grad = torch.randn(50, generator=g, dtype=torch.float64)
        ref.grad = grad.clone()
        opt.step()
        p, m, v = fn(p, grad.clone(), m, v, t, hp["lr"], *hp["betas"], hp["eps"], hp["weight_decay"])
        expect_close(torch.as_tensor(p), ref.detach(), f"parameters after step {t} (vs torch.optim.AdamW)",
                     atol=1e-10, rtol=1e-8)
    return "your AdamW matches torch.optim.AdamW step for step"


@exercise("optimizers/warmup-cosine", hint="below `warmup` the rate is lr * progress / warmup; after it, with "
                                           "t = (progress - warmup) / (1 - warmup): min_lr + (lr - min_lr) (1 + cos(pi t)) / 2.")
def _check_warmup_cosine(fn) -> str:
    """fn(progress, lr, min_lr, warmup) -> the learning rate at `progress` in [0, 1] of training."""
    from .optim import lr_at

    for lr, min_lr, warmup in ((1e-3, 1e-6, 0.1), (2e-3, 0.0, 0.25)):
        for progress in (0.0, 0.05, warmup, 0.3, 0.5, 0.77, 1.0):
            want, got = lr_at(progress, lr, min_lr, warmup), float(fn(progress, lr, min_lr, warmup))
            if abs(got - want) > 1e-9 + 1e-6 * want:
                raise ExerciseError(f"lr={lr:g}, min_lr={min_lr:g}, warmup={warmup:g}: at progress {progress:g} "
                                    f"expected {want:.6g}, got {got:.6g}")
    return "linear warmup, then a half cosine down to min_lr"


@exercise("optimizers/lion-recipe", hint="divide the learning rate by k and multiply the weight decay by k: "
                                         "the decay per step, lr * weight_decay, stays the same.")
def _check_lion_recipe(fn) -> str:
    """fn(adamw_lr, adamw_wd, k) -> (lion_lr, lion_wd) by the Lion paper's rule of thumb."""
    for lr, wd, k in ((1e-3, 0.05, 10), (3e-4, 0.1, 3)):
        got = fn(lr, wd, k)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise ExerciseError("return a pair: (lion_lr, lion_wd)")
        l_lr, l_wd = float(got[0]), float(got[1])
        if abs(l_lr - lr / k) > 1e-12 or abs(l_wd - wd * k) > 1e-9:
            raise ExerciseError(f"AdamW lr={lr:g}, wd={wd:g}, k={k}: expected Lion lr={lr / k:g}, wd={wd * k:g}; "
                                f"got lr={l_lr:g}, wd={l_wd:g}")
    return "k times smaller steps, k times stronger decay: lr * weight_decay unchanged"

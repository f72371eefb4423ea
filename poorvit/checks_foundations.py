"""The checks of chapters 1-3 (tokens, attention from scratch, a first ViT), registered in
`poorvit.exercises.CHECKS` on import."""
from __future__ import annotations

import torch

from .exercises import ExerciseError, exercise, expect_close


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

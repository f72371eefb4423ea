"""What a model costs, counted: parameters, FLOPs, activation memory, KV cache, utilisation.

Every closed-form count of the package is here, each quantity with one formula, and the FLOP counter
that the unit tests hold the formulas against. A multiply-add counts as 2 FLOPs (the convention of
`torch.utils.flop_counter`). Per image, T tokens (class + patch) of width C, one attention layer
costs

    projections   2*T*C*3C (q, k, v)  +  2*T*C*C (output)     grows like T
    scores        2*T*T*C  (q k^T)    +  2*T*T*C (weights v)  grows like T^2

Halving the patch size multiplies T by about 4 and the score FLOPs by about 16 (Dosovitskiy et al.,
arXiv 2010.11929, section 3.1; Vaswani et al., arXiv 1706.03762, table 1). GQA/MQA (Ainslie et al.,
arXiv 2305.13245; Shazeer, arXiv 1911.02150), MLA (DeepSeek-V2, arXiv 2405.04434) and the study's
low-rank bottleneck (Wu, arXiv 2501.06220) change the projections' weights, not the scores.

    attention_flops(65, 64)                  # {"projections": ..., "scores": ..., "total": ...}
    patch_cost(32, 4, n_embd=64)             # tokens and attention FLOPs for patch size 4
    count_params(cfg)                        # the parameters of ViT(cfg), closed form
    count_flops(block, x)                    # FLOPs of block(x), counted by flop_counter
    flops_per_image(model)                   # {"total", "by_module"}, counted by flop_counter
    model_report(cfg)                        # parameters by part and forward FLOPs per image
    attention_breakdown(cfg)                 # one block's attention: parameters and FLOPs by part
    mfu(train_flops(cfg, 64), seconds, peak) # model FLOP utilisation of a step of 64 images
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from .attention import Attention, explicit_attention
from .config import ViTConfig, n_tokens
from .model import ViT, eval_mode

# ---- tokens and attention FLOPs ----------------------------------------------------------------
# `n_tokens(image_size, patch_size, n_cls)`, T, is config's (`ViTConfig.n_tokens` reads it too).


def attention_flops(n_tokens: int, n_embd: int, projection_weights: int | None = None) -> dict:
    """FLOPs of one multi-head attention layer on one image of `n_tokens` tokens, `n_embd` wide.

    `projection_weights`: the weights each token is multiplied by in the projections (default: MHA's
    q, k, v and output, 4 C^2); each costs 2 FLOPs per token. The scores and the weighted sum cost
    2 T^2 C each for any number of heads (H d = C), shared key/value heads included.
    Returns {"projections", "scores", "total"}.
    """
    T, C = n_tokens, n_embd
    weights = 4 * C * C if projection_weights is None else projection_weights
    projections = 2 * T * weights
    scores = 2 * T * T * C + 2 * T * T * C
    return {"projections": projections, "scores": scores, "total": projections + scores}


def patch_cost(image_size: int, patch_size: int, n_embd: int, n_cls: int = 1) -> dict:
    """Patch size -> patches (N), tokens (T), values per patch and one MHA layer's FLOPs, per
    image."""
    T = n_tokens(image_size, patch_size, n_cls)
    return {"patch_size": patch_size, "patches": T - n_cls, "tokens": T,
            "patch_values": 3 * patch_size ** 2,
            **{f"attention_{k}": v for k, v in attention_flops(T, n_embd).items()}}


# ---- parameters --------------------------------------------------------------------------------

def _linear(i: int, o: int, bias: bool = True) -> tuple[int, int]:
    """(parameters, weights) of `nn.Linear(i, o, bias)`."""
    return i * o + (o if bias else 0), i * o


def _latent(dim: int, rank: int, out: int, norm: bool, bias: bool) -> tuple[int, int]:
    """(parameters, weights) of `attention.Latent`: down (no bias), RMSNorm gain, up."""
    params, weights = _linear(rank, out, bias)
    return dim * rank + (rank if norm else 0) + params, dim * rank + weights


def _attention_parts(cfg: ViTConfig) -> dict[str, tuple[int, int]]:
    """One block's `Attention(cfg)`: {part: (parameters, weights)} for the queries, the keys and
    values, and the output projection (MLA latents carry an RMSNorm, the study's bottleneck
    none)."""
    C, kv, bias = cfg.n_embd, cfg.kv_heads * cfg.head_dim, cfg.qkv_bias

    def proj(out: int, which: str) -> tuple[int, int]:
        if which in cfg.lowrank:
            return _latent(C, cfg.lowrank_dim, out, False, bias)
        return _linear(C, out, bias)

    q = _latent(C, cfg.q_rank, C, True, bias) if cfg.q_rank else proj(C, "q")
    if cfg.kv_rank:
        k_v = _latent(C, cfg.kv_rank, 2 * kv, True, bias)
    else:
        k_v = tuple(a + b for a, b in zip(proj(kv, "k"), proj(kv, "v")))
    return {"queries": q, "keys + values": k_v, "output": _linear(C, C)}


def count_params(cfg: ViTConfig) -> int:
    """The parameters of `ViT(cfg)` in closed form (a unit test holds it equal to the model's)."""
    C = cfg.n_embd
    attn = sum(p for p, _ in _attention_parts(cfg).values())
    mlp = _linear(C, cfg.mlp_hidden)[0] + _linear(cfg.mlp_hidden, C)[0]
    block = 2 * 2 * C + attn + mlp                                    # two LayerNorms
    embed = _linear(cfg.in_chans * cfg.kernel ** 2, C)[0] + cfg.n_cls * C
    if cfg.stem == "conv":          # tokens.ConvStem: 3x3 convs (no bias) + BatchNorm, then 1x1
        n = cfg.patch_size.bit_length() - 1
        widths = [cfg.in_chans] + [max(C >> (n - 1 - i), 8) for i in range(n)]
        embed = cfg.n_cls * C + _linear(widths[-1], C)[0] + sum(
            9 * a * b + 2 * b for a, b in zip(widths, widths[1:]))
    embed += cfg.n_tokens * C if cfg.pos_embed == "learned" else 0
    head = _linear(C * cfg.n_cls if cfg.cls_head == "concat" else C, cfg.n_classes)[0]
    return embed + cfg.n_layer * block + 2 * C + head


def attention_breakdown(cfg: ViTConfig) -> dict:
    """One block's attention, per image, in closed form: {"params": {part: int}, "flops": {part:
    int}} for the queries, keys + values and output projections and (FLOPs) the scores and weighted
    sum (a unit test holds the FLOPs equal to `torch.utils.flop_counter` on the explicit path)."""
    T, C = cfg.n_tokens, cfg.n_embd
    parts = _attention_parts(cfg)
    flops = {f"{k} projection": attention_flops(T, C, w)["projections"]
             for k, (_, w) in parts.items()}
    flops["scores + weighted sum"] = attention_flops(T, C, 0)["scores"]
    return {"params": {k: p for k, (p, _) in parts.items()}, "flops": flops}


# ---- FLOPs, counted ----------------------------------------------------------------------------

def _flop_counter(module: nn.Module, inputs: tuple, backward: bool) -> FlopCounterMode:
    """`module(*inputs)` (and, with `backward`, the backward of its output's sum) under
    `torch.utils.flop_counter`, in eval mode and on the explicit attention path (both restored
    after; the gradients it made are cleared). Returns the counter."""
    with eval_mode(module), explicit_attention(module), FlopCounterMode(display=False) as counter:
        out = module(*inputs)
        if backward:
            out.sum().backward()
    if backward:
        module.zero_grad(set_to_none=True)
    return counter


def count_flops(module: nn.Module, *inputs: torch.Tensor, backward: bool = False) -> int:
    """FLOPs of `module(*inputs)` (with `backward`: forward + backward of the output's sum), counted
    by `torch.utils.flop_counter`: matmuls and convolutions only, a multiply-add as 2. The module
    runs in eval mode with every `Attention` inside it (or itself) on its explicit path
    (`attention.explicit_attention`), so that the scores and the weighted sum are matmuls the
    counter sees; both are restored after.

        count_flops(Block(cfg), torch.zeros(1, cfg.n_tokens, cfg.n_embd))   # one block, one image
    """
    return _flop_counter(module, inputs, backward).get_total_flops()


def flops_per_image(model: nn.Module, image_size: int | None = None,
                    backward: bool = False) -> dict:
    """FLOPs of one image's forward (and, with `backward`, forward + backward) through `model` (a
    `ViT`), counted as `count_flops` counts them (eval mode, explicit attention). `image_size`:
    another side than the config's (learned or sin-cos positions are interpolated to its grid:
    `tokens.TokenEmbed`). Returns {"total": int, "by_module": {module name: int}}.

    Raises `ValueError` when `model` has no `cfg` (a `ViTConfig`) and no `image_size` is given."""
    cfg = getattr(model, "cfg", None)
    if image_size is None and cfg is None:
        raise ValueError(f"flops_per_image: a {type(model).__name__} has no `cfg` to take the "
                         "image size from; pass a poorvit ViT, or image_size=...")
    size = image_size or cfg.image_size
    p = next(model.parameters())
    x = torch.zeros(1, cfg.in_chans if cfg else 3, size, size, device=p.device, dtype=p.dtype)
    counter = _flop_counter(model, (x,), backward)
    by_module = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
    return {"total": counter.get_total_flops(), "by_module": by_module}


def model_report(cfg_or_model: ViTConfig | ViT) -> dict:
    """Parameters (total and by part: tokens, blocks, norm + head) and forward FLOPs per image
    (total and attention's) of a config or a built `ViT`, with the config, its attention kind and
    T."""
    model = cfg_or_model if isinstance(cfg_or_model, nn.Module) else ViT(cfg_or_model)
    cfg = model.cfg
    parts = {"tokens": [model.tokens], "blocks": [model.blocks],
             "norm + head": [model.norm, model.head]}
    by_part = {name: sum(p.numel() for m in mods for p in m.parameters())
               for name, mods in parts.items()}
    flops = flops_per_image(model)
    attn = sum(v for k, v in flops["by_module"].items() if k.endswith(".attn"))
    return {"preset": cfg, "attention": cfg.attention_kind, "params": sum(by_part.values()),
            "params_by_part": by_part, "tokens": cfg.n_tokens, "flops": flops["total"],
            "attention_flops": attn}


def train_flops(model_cfg: ViTConfig, batch_size: int) -> int:
    """FLOPs of one training step (forward and backward over `batch_size` images), counted by
    `flops_per_image(..., backward=True)`: matmuls and convolutions only."""
    return flops_per_image(ViT(model_cfg), backward=True)["total"] * batch_size


def mfu(flops: float, seconds: float, peak_flops: float) -> float:
    """Model FLOP utilisation, 0..1: the FLOP/s a step achieves (`flops` in `seconds`) over the
    device's peak FLOP/s (e.g. `timing.matmul_peak`)."""
    return flops / seconds / peak_flops


# ---- memory: what attention keeps ------------------------------------------------------------

def kv_cache_floats(cfg: ViTConfig) -> int:
    """Values per token a decoder would cache over all blocks: keys and values of every KV head, or
    for MLA only the shared latent (DeepSeek-V2 also caches a small RoPE key, which a ViT lacks)."""
    per_block = cfg.kv_rank if cfg.kv_rank else 2 * cfg.kv_heads * cfg.head_dim
    return cfg.n_layer * per_block


def attention_activation_bytes(cfg: ViTConfig, explicit: bool = False,
                               bytes_per_value: int = 4) -> int:
    """Bytes that the attention layers of all blocks save for backward, per image (float32 default).

    What is counted, per block, T tokens of width C, H query heads of width d, kv = n_kv_head * d:
    * fused path (`F.scaled_dot_product_attention`): the input x (T C), q (T C), k and v (2 T kv),
      the output (T C, which is also the input the output projection keeps) and one log-sum-exp per
      head and query (H T): T (3C + 2kv + H). Keys and values shared by a group are kept once.
    * explicit path: x, q, k, v each repeated to all H heads, the attention matrix (H T^2) and the
      output (T C): 5 T C + H T^2. The T x T matrix per head is what fused kernels do not keep.
    * latents: an MLA latent keeps its down-projection, the RMSNorm's normalized copy, the scaled
      copy the up-projection reads, and one inverse norm per token: T (3r + 1); the study's
      bottleneck (no norm) keeps T r per compressed projection.
    Parameters are not activations and are not counted. `attention_saved_bytes` measures the same.
    """
    T, C, H, kv = cfg.n_tokens, cfg.n_embd, cfg.n_head, cfg.kv_heads * cfg.head_dim
    per = 5 * T * C + H * T * T if explicit else T * (3 * C + 2 * kv + H)
    per += sum(T * (3 * r + 1) for r in (cfg.q_rank, cfg.kv_rank) if r)
    per += T * cfg.lowrank_dim * len(cfg.lowrank)
    return cfg.n_layer * per * bytes_per_value


def attention_saved_bytes(model: ViT, images: torch.Tensor, explicit: bool = False) -> int:
    """Bytes autograd saved for backward inside the model's `Attention` modules during one forward
    pass of `images` (B, 3, H, W), per image: every saved tensor's storage counted once, parameters
    excluded (measured on any device, with `torch.autograd.graph.saved_tensors_hooks`)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    inside, storages, keep = [False], {}, []

    def pack(t):
        if inside[0]:
            s = t.untyped_storage()
            if s.data_ptr() not in params:
                storages[s.data_ptr()] = s.nbytes()
                keep.append(t)                  # alive until counted: no storage is reused
        return t

    def enter(*_):
        inside[0] = True

    def leave(*_):
        inside[0] = False

    attns = [m for m in model.modules() if isinstance(m, Attention)]
    handles = [h for m in attns
               for h in (m.register_forward_pre_hook(enter), m.register_forward_hook(leave))]
    try:
        with torch.enable_grad(), explicit_attention(model, explicit), \
                torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(images)
    finally:
        for h in handles:
            h.remove()
    return sum(storages.values()) // len(images)


__all__ = ["n_tokens", "attention_flops", "patch_cost", "count_params", "attention_breakdown",
           "count_flops", "flops_per_image", "model_report", "train_flops", "mfu",
           "kv_cache_floats", "attention_activation_bytes", "attention_saved_bytes"]

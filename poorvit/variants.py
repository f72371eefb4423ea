"""Attention variants side by side: what each costs, what attention keeps for backward, and MLA absorbed.

* `variant_overrides(cfg)`: MHA, every GQA, MQA, MLA and the study's five low-rank rows as overrides of
  a preset (Ainslie et al., arXiv 2305.13245; Shazeer, arXiv 1911.02150; DeepSeek-V2, arXiv 2405.04434;
  Wu, arXiv 2501.06220).
* `variant_table(cfg)`: parameters, FLOPs per image, activation memory of attention (closed form and
  measured), the KV cache a decoder would keep, and a measured training-step time, one row per variant.
* `attention_activation_bytes(cfg)`: the closed form of what attention saves for backward, per image;
  `attention_saved_bytes(model, images)` measures the same with `torch.autograd.graph.saved_tensors_hooks`.
* `absorb_mla(attn)`, `absorbed_attention(attn, x)`: MLA with its up-projections folded into the query
  and output sides, so that attention runs on the shared latent itself (equal to `Attention.forward`).
* `head_similarity(maps, n_kv_head)`: how alike the attention maps of heads that share a KV head are.

    rows = variant_table(get_config("paper"), batch_size=32)
    assert_close(absorbed_attention(attn, x), attn(x))
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import Attention, Latent
from .config import ViTConfig, with_overrides
from .model import ViT, count_params, flops_per_image

STUDY_LOWRANK = ("q", "k", "kv", "qk", "qkv")     # the rows of the study's low-rank ablation


def variant_overrides(cfg: ViTConfig, rank: int | None = None) -> dict[str, dict]:
    """{name: overrides of `cfg`}: MHA, GQA with about a third as many KV heads as query heads, MQA, MLA
    with both latents `rank` wide, and the study's low-rank rows with a bottleneck `rank` wide.
    `rank` defaults to `cfg.lowrank_dim` (the study's 64) when narrower than n_embd, else n_embd // 3."""
    H, C = cfg.n_head, cfg.n_embd
    r = rank or (cfg.lowrank_dim if cfg.lowrank_dim < C else C // 3)
    out = {"MHA": {"n_kv_head": None}}
    groups = [g for g in range(2, H) if H % g == 0]
    if groups:  # a third of the heads, as 4 KV heads serve 12 query heads in the study's model
        g = min(groups, key=lambda g: (abs(g - H / 3), g))
        out[f"GQA ({g} KV heads)"] = {"n_kv_head": g}
    if H > 1:
        out["MQA"] = {"n_kv_head": 1}
    out[f"MLA (q {r}, kv {r})"] = {"q_rank": r, "kv_rank": r}
    for which in STUDY_LOWRANK:
        out[f"low-rank {which}"] = {"lowrank": which, "lowrank_dim": r}
    return out


def kv_cache_floats(cfg: ViTConfig) -> int:
    """Values per token a decoder would cache over all blocks: keys and values of every KV head, or for
    MLA only the shared latent (DeepSeek-V2 also caches a small RoPE key, which a ViT does not have)."""
    per_block = cfg.kv_rank if cfg.kv_rank else 2 * cfg.kv_heads * cfg.head_dim
    return cfg.n_layer * per_block


def attention_activation_bytes(cfg: ViTConfig, explicit: bool = False, bytes_per_value: int = 4) -> int:
    """Bytes that the attention layers of all blocks save for backward, per image (float32 by default).

    What is counted, per block, N tokens of width C, H query heads of width d, kv = n_kv_head * d:
    * fused path (`F.scaled_dot_product_attention`): the input x (N C), q (N C), k and v (2 N kv), the
      output (N C, which is also the input the output projection keeps) and one log-sum-exp per head and
      query (H N): N (3C + 2kv + H). Keys and values shared by a group are kept once.
    * explicit path: x, q, k, v each repeated to all H heads, the attention matrix (H N^2) and the
      output (N C): 5 N C + H N^2. The N x N matrix per head is what fused kernels do not keep.
    * latents: an MLA latent keeps its down-projection, the RMSNorm's normalized copy, the scaled copy
      the up-projection reads, and one inverse norm per token: N (3r + 1); the study's bottleneck
      (no norm) keeps N r per compressed projection.
    Parameters are not activations and are not counted. `attention_saved_bytes` measures the same.
    """
    N, C, H, kv = cfg.n_tokens, cfg.n_embd, cfg.n_head, cfg.kv_heads * cfg.head_dim
    per = 5 * N * C + H * N * N if explicit else N * (3 * C + 2 * kv + H)
    per += sum(N * (3 * r + 1) for r in (cfg.q_rank, cfg.kv_rank) if r)
    per += N * cfg.lowrank_dim * len(cfg.lowrank)
    return cfg.n_layer * per * bytes_per_value


def attention_saved_bytes(model: ViT, images: torch.Tensor, explicit: bool = False) -> int:
    """Bytes autograd saved for backward inside the model's `Attention` modules during one forward pass,
    per image: every saved tensor's storage counted once, parameters excluded (measured on any device)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    inside, storages, keep = [False], {}, []

    def pack(t):
        if inside[0]:
            s = t.untyped_storage()
            if s.data_ptr() not in params:
                storages[s.data_ptr()] = s.nbytes()
                keep.append(t)
        return t

    def enter(*_):
        inside[0] = True

    def leave(*_):
        inside[0] = False

    attns = [m for m in model.modules() if isinstance(m, Attention)]
    handles = [h for m in attns for h in (m.register_forward_pre_hook(enter), m.register_forward_hook(leave))]
    from .attention import explicit_attention
    try:
        with torch.enable_grad(), explicit_attention(explicit), \
                torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(images)
    finally:
        for h in handles:
            h.remove()
    return sum(storages.values()) // len(images)


def step_time_ms(cfg: ViTConfig, batch_size: int = 32, steps: int = 3, warmup: int = 1,
                 device: str | torch.device = "cpu") -> float:
    """Milliseconds of one training step's forward, backward and AdamW update on random images (the data
    phase left out), timed with chapter 9's `profile.TrainingStep` in the precision `train()` would use on
    `device` (float32 on a CPU, bfloat16/float16 autocast on a GPU): medians over `steps` after `warmup`."""
    from .config import get_train_config
    from .profile import TrainingStep, time_step
    images = torch.randint(0, 256, (batch_size, cfg.in_chans, cfg.image_size, cfg.image_size), dtype=torch.uint8)
    labels = torch.randint(0, cfg.n_classes, (batch_size,))
    step = TrainingStep(cfg, get_train_config("smoke", batch_size=batch_size), images, labels, device)
    parts = time_step(step, steps, warmup).parts_ms
    return sum(ms for phase, ms in parts.items() if phase != "data")


def attention_breakdown(cfg: ViTConfig) -> dict:
    """One block's attention, per image, in closed form: parameters and FLOPs by part (a multiply-add
    is 2 FLOPs; a unit test holds the FLOPs equal to `torch.utils.flop_counter`)."""
    C, N, H, d = cfg.n_embd, cfg.n_tokens, cfg.n_head, cfg.head_dim
    attn = Attention(C, H, cfg.kv_heads, cfg.q_rank, cfg.kv_rank, cfg.lowrank, cfg.lowrank_dim, cfg.qkv_bias)

    def count(*mods):  # (parameters, weights of Linear layers) of the modules that exist
        mods = [m for m in mods if m is not None]
        return (sum(p.numel() for m in mods for p in m.parameters()),
                sum(l.weight.numel() for m in mods for l in m.modules() if isinstance(l, nn.Linear)))

    if attn.qkv is not None:  # one fused projection: its first C rows make the queries
        q = (C * C + C * cfg.qkv_bias, C * C)
        kv = tuple(a - b for a, b in zip(count(attn.qkv), q))
    else:
        q, kv = count(attn.q), count(attn.k, attn.v, attn.kv)
    parts = {"queries": q, "keys + values": kv, "output": count(attn.proj)}
    flops = {f"{k} projection": 2 * N * w for k, (_, w) in parts.items()}
    flops["scores + weighted sum"] = 2 * 2 * H * N * N * d
    return {"params": {k: p for k, (p, _) in parts.items()}, "flops": flops}


def variant_table(cfg: ViTConfig, variants: dict[str, dict] | None = None, batch_size: int = 32, steps: int = 2,
                  device: str | torch.device | None = None, time_steps: bool = True) -> list[dict]:
    """One row per variant of `cfg`: parameters (built and closed form), attention parameters per block,
    forward FLOPs per image (total and attention), attention activation bytes per image (closed form and
    measured on the CPU, fused and explicit paths), KV-cache values per token, training-step time."""
    variants = variant_overrides(cfg) if variants is None else variants
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    images = torch.zeros(2, cfg.in_chans, cfg.image_size, cfg.image_size)
    rows = []
    for name, over in variants.items():
        c = with_overrides(cfg, **over)
        torch.manual_seed(0)
        model = ViT(c).eval()
        flops = flops_per_image(model)
        row = {"variant": name, "attention": c.attention_kind, "config": c,
               "params": sum(p.numel() for p in model.parameters()), "params_formula": count_params(c),
               "attn_params": sum(attention_breakdown(c)["params"].values()),
               "flops": flops["total"],
               "attn_flops": sum(v for k, v in flops["by_module"].items() if k.endswith(".attn")),
               "act_bytes": attention_activation_bytes(c), "act_bytes_measured": attention_saved_bytes(model, images),
               "act_bytes_explicit": attention_activation_bytes(c, explicit=True),
               "act_bytes_explicit_measured": attention_saved_bytes(model, images, explicit=True),
               "kv_cache_floats": kv_cache_floats(c)}
        row["step_ms"] = step_time_ms(c, batch_size, steps, device=device) if time_steps else None
        rows.append(row)
    return rows


# ---- MLA, absorbed ---------------------------------------------------------------------------------------

def mla_latents(attn: Attention, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What MLA's up-projections read: the query latent c_q (B, N, q_rank; x itself when queries are
    full rank) and the shared key/value latent c_kv (B, N, kv_rank), after their RMSNorms."""
    if attn.kv is None:
        raise ValueError("absorption needs a shared key/value latent: build the Attention with kv_rank > 0")
    c_q = attn.q.norm(attn.q.down(x)) if isinstance(attn.q, Latent) else x
    return c_q, attn.kv.norm(attn.kv.down(x))


@torch.no_grad()
def absorb_mla(attn: Attention) -> dict[str, torch.Tensor]:
    """Fold MLA's up-projections into the query and output sides, per query head h reading KV head g:

        score = q_h . k_g = (W_uq,h c_q + b_q,h) . (W_uk,g c_kv + b_k,g)
              = c_q^T (W_uq,h^T W_uk,g) c_kv + (W_uk,g^T b_q,h) . c_kv + (terms without c_kv)
    The last terms are equal for every key, so softmax removes them. The value side: attention rows sum
    to 1, so  W_o,h sum_j a_j (W_uv,g c_kv,j + b_v,g) = (W_o,h W_uv,g) sum_j a_j c_kv,j + W_o,h b_v,g.
    Returns W_qk (H, r_q, r_kv), b_qk (H, r_kv), W_ov (H, C, r_kv), b_o (C,), scale (1/sqrt(d)).
    """
    if attn.kv is None:
        raise ValueError("absorption needs a shared key/value latent: build the Attention with kv_rank > 0")
    H, Hkv, d = attn.n_head, attn.n_kv_head, attn.head_dim
    up_q = attn.q.up if isinstance(attn.q, Latent) else attn.q
    zeros = torch.zeros(H * d, device=up_q.weight.device)
    W_uq = up_q.weight.view(H, d, -1)                                           # (H, d, r_q)
    b_q = (up_q.bias if up_q.bias is not None else zeros).view(H, d)
    W_uk, W_uv = (w.view(Hkv, d, -1).repeat_interleave(H // Hkv, 0) for w in attn.kv.up.weight.split(Hkv * d))
    kv_bias = attn.kv.up.bias if attn.kv.up.bias is not None else torch.zeros(2 * Hkv * d, device=zeros.device)
    b_v = kv_bias[Hkv * d:].view(Hkv, d).repeat_interleave(H // Hkv, 0)         # (H, d)
    W_o = attn.proj.weight.view(-1, H, d).transpose(0, 1)                        # (H, C, d)
    return {"W_qk": W_uq.transpose(1, 2) @ W_uk,                                 # (H, r_q, r_kv)
            "b_qk": (b_q.unsqueeze(1) @ W_uk).squeeze(1),                        # (H, r_kv)
            "W_ov": W_o @ W_uv,                                                  # (H, C, r_kv)
            "b_o": attn.proj.bias + (W_o @ b_v.unsqueeze(-1)).squeeze(-1).sum(0),
            "scale": torch.tensor(d ** -0.5)}


def absorbed_attention(attn: Attention, x: torch.Tensor, w: dict | None = None) -> torch.Tensor:
    """MLA computed on the latents: scores between absorbed queries (B, H, N, r_kv) and c_kv, the
    weighted sum of c_kv itself, then the absorbed output projection. Equal to `attn(x)`."""
    w = w or absorb_mla(attn)
    c_q, c_kv = mla_latents(attn, x)                                             # (B, N, r_q), (B, N, r_kv)
    q_lat = torch.einsum("bnr,hrs->bhns", c_q, w["W_qk"]) + w["b_qk"][:, None]   # (B, H, N, r_kv)
    a = (q_lat @ c_kv.unsqueeze(1).transpose(-2, -1) * w["scale"]).softmax(-1)    # (B, H, N, N)
    ctx = a @ c_kv.unsqueeze(1)                                                   # (B, H, N, r_kv)
    return torch.einsum("bhnr,hcr->bnc", ctx, w["W_ov"]) + w["b_o"]


# ---- what shared heads do ------------------------------------------------------------------------------

def head_similarity(maps: torch.Tensor, n_kv_head: int) -> dict:
    """Correlation between the attention maps of every pair of heads, averaged over blocks and images:
    the cosine similarity of the maps after subtracting their mean (1/T, the uniform map), so that two
    heads score 1 when they attend alike, 0 when unrelated. maps (L, B, H, T, T). Returns {"matrix": (H, H),
    "within": mean over pairs of different heads that share a KV head (head h reads KV head
    h // (H / n_kv_head)), "across": mean over pairs that do not (nan when every pair shares one)}."""
    H = maps.shape[2]
    m = maps.float().flatten(-2)                                                # (L, B, H, T*T)
    m = F.normalize(m - m.mean(-1, keepdim=True), dim=-1)
    sim = (m @ m.transpose(-1, -2)).mean((0, 1))                                # (H, H)
    group = torch.arange(H) // (H // n_kv_head)
    same = group[:, None] == group[None]
    other = ~torch.eye(H, dtype=torch.bool)
    within, across = sim[same & other], sim[~same]
    nan = float("nan")
    return {"matrix": sim, "within": within.mean().item() if within.numel() else nan,
            "across": across.mean().item() if across.numel() else nan}


__all__ = ["STUDY_LOWRANK", "variant_overrides", "kv_cache_floats", "attention_activation_bytes",
           "attention_saved_bytes", "step_time_ms", "attention_breakdown", "variant_table", "mla_latents",
           "absorb_mla", "absorbed_attention", "head_similarity"]

"""Chapter 6, attention variants (MHA, GQA, MQA, MLA and the study's low-rank rows): the variants of
a config (`variant_overrides`) and their costs side by side (`variant_table`; step times with their
spread, `step_times`, read against MHA's with `report.verdict` in `time_verdicts`), MLA
with its up-projections absorbed (`mla_latents`, `absorb_mla`, `absorbed_attention`), how alike the
heads that share keys and values attend (`head_similarity`), the chapter's plots and explorer, and
the `variants/*` exercise checks. The closed-form counts (`attention_breakdown`, `kv_cache_floats`,
`attention_activation_bytes`, ...) are the library's, in `poorvit.cost`.

Ainslie et al., arXiv 2305.13245 (GQA); Shazeer, arXiv 1911.02150 (MQA); DeepSeek-V2, arXiv
2405.04434 (MLA); Wu, arXiv 2501.06220 (the study).

    from poorvit.course import ch06_variants as ch
    rows = ch.variant_table(get_config("paper"), batch_size=32)
    assert_close(ch.absorbed_attention(attn, x), attn(x))
"""
from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from ..attention import Attention, Latent
from ..config import ViTConfig, get_config, with_overrides
from ..cost import (attention_activation_bytes, attention_breakdown, attention_saved_bytes,
                    count_params, flops_per_image, kv_cache_floats)
from ..device import get_device
from ..model import ViT
from ..study import ROWS, STUDY_LOWRANK
from ..sweep import kv_heads_like
from .exercises import ExerciseError, as_int, exercise, expect_close
from .plots import similarity_matrix
from .widgets import explorer

# ---- the variants and what they cost -------------------------------------------------------------


def variant_overrides(cfg: ViTConfig, rank: int | None = None) -> dict[str, dict]:
    """{name: overrides of `cfg`}: MHA, GQA with the study's share of key/value heads (4 for its 12
    query heads, `sweep.kv_heads_like`), MQA, MLA with both latents `rank` wide, and the study's
    low-rank rows with a bottleneck `rank` wide. `rank` defaults to `cfg.lowrank_dim` (the study's
    64) when narrower than n_embd, else n_embd // 3."""
    H, C = cfg.n_head, cfg.n_embd
    r = rank or (cfg.lowrank_dim if cfg.lowrank_dim < C else C // 3)
    out = {"MHA": {"n_kv_head": None}}
    # the study's GQA row (4 key/value heads for 12 query heads), carried over to H heads
    g = kv_heads_like(ROWS["gqa"].model["n_kv_head"], get_config("paper").n_head, H)
    if 1 < g < H:
        out[f"GQA ({g} KV heads)"] = {"n_kv_head": g}
    if H > 1:
        out["MQA"] = {"n_kv_head": 1}
    out[f"MLA (q {r}, kv {r})"] = {"q_rank": r, "kv_rank": r}
    for which in STUDY_LOWRANK:
        out[f"low-rank {which}"] = {"lowrank": which, "lowrank_dim": r}
    return out


def step_times(cfgs: dict[str, ViTConfig], batch_size: int = 32, steps: int = 8,
               warmup: int = 1, device: str | torch.device | None = None,
               outlier: float = 1.5) -> dict[str, dict]:
    """Every timed training step of each config, {name: {"ms": [ms per step], "remeasured": n}}:
    forward, backward and AdamW update on random images (the data phase left out), with chapter 9's
    `timing.BenchStep` in the precision `train()` would use on `device` (None: `get_device`).

    The configs are timed round by round (`timing.time_steps`: each round one step of every config,
    so that a change in the machine's load falls on all of them alike), after `warmup` rounds. A
    step slower than `outlier` times its config's median was disturbed (on a shared machine another
    process took the core): it is re-measured once, and `remeasured` counts such steps."""
    import statistics

    from ..config import get_train_config
    from ..timing import BenchStep, time_steps

    def build(cfg: ViTConfig) -> BenchStep:
        shape = (batch_size, cfg.in_chans, cfg.image_size, cfg.image_size)
        torch.manual_seed(0)
        images = torch.randint(0, 256, shape, dtype=torch.uint8)
        labels = torch.randint(0, cfg.n_classes, (batch_size,))
        train_cfg = get_train_config("smoke", batch_size=batch_size)
        return BenchStep(cfg, train_cfg, images, labels, device)

    def compute_ms(parts: dict) -> float:
        return sum(ms for phase, ms in parts.items() if phase != "data")

    settings = {name: build(cfg) for name, cfg in cfgs.items()}
    timed = time_steps(settings, steps, warmup)
    out = {}
    for name, t in timed.items():
        ms = [compute_ms(parts) for parts in t.per_step]
        median = statistics.median(ms)
        slow = [i for i, m in enumerate(ms) if m > outlier * median]
        if slow:
            again = time_steps({name: settings[name]}, len(slow), 0)[name].per_step
            for i, parts in zip(slow, again):
                ms[i] = compute_ms(parts)
        out[name] = {"ms": ms, "remeasured": len(slow)}
    return out


def step_time_ms(cfg: ViTConfig, batch_size: int = 32, steps: int = 3, warmup: int = 1,
                 device: str | torch.device | None = None) -> float:
    """The median milliseconds of one training step of `cfg` (`step_times`, one config)."""
    import statistics

    return statistics.median(step_times({"": cfg}, batch_size, steps, warmup, device)[""]["ms"])


def time_verdicts(rows: list[dict], reference: str = "MHA", k: float = 2.0) -> dict:
    """{variant: `report.verdict`} of each row's step times (`step_ms_all`) against the
    `reference` row's: "slower", "faster" or "within noise", the band being `k` standard errors of
    the difference of the two means (from the spread of the repeats)."""
    from ..report import verdict

    ref = next(r for r in rows if r["variant"] == reference)["step_ms_all"]
    return {r["variant"]: verdict(r["step_ms_all"], ref, unit=" ms", more="slower",
                                  less="faster", k=k)
            for r in rows if r["variant"] != reference and r.get("step_ms_all")}


def _variant_row(name: str, c: ViTConfig, images: torch.Tensor) -> dict:
    torch.manual_seed(0)
    model = ViT(c).eval()
    flops = flops_per_image(model)
    return {"variant": name, "attention": c.attention_kind, "config": c,
            "params": sum(p.numel() for p in model.parameters()), "params_formula": count_params(c),
            "attn_params": sum(attention_breakdown(c)["params"].values()),
            "flops": flops["total"],
            "attn_flops": sum(v for k, v in flops["by_module"].items() if k.endswith(".attn")),
            "act_bytes": attention_activation_bytes(c),
            "act_bytes_measured": attention_saved_bytes(model, images),
            "act_bytes_explicit": attention_activation_bytes(c, explicit=True),
            "act_bytes_explicit_measured": attention_saved_bytes(model, images, explicit=True),
            "kv_cache_floats": kv_cache_floats(c)}


def variant_table(cfg: ViTConfig, variants: dict[str, dict] | None = None, batch_size: int = 32,
                  steps: int = 8, device: str | torch.device | None = None,
                  time_steps: bool = True) -> list[dict]:
    """One row per variant of `cfg`: parameters (built and closed form), attention parameters per
    block, forward FLOPs per image (total and attention), attention activation bytes per image
    (closed form and measured on the CPU, fused and explicit paths), KV-cache values per token,
    training-step time (`step_ms`: the median of `steps` steps timed round by round with the other
    variants, `step_times`; every step in `step_ms_all`, their interquartile range in `step_ms_iqr`,
    re-measured outliers counted in `step_remeasured`)."""
    import statistics

    variants = variant_overrides(cfg) if variants is None else variants
    device = get_device(device)
    images = torch.zeros(2, cfg.in_chans, cfg.image_size, cfg.image_size)
    cfgs = {name: with_overrides(cfg, **over) for name, over in variants.items()}
    times = step_times(cfgs, batch_size, steps, device=device) if time_steps else {}
    rows = []
    for name, c in cfgs.items():
        row = _variant_row(name, c, images)
        t = times.get(name)
        row["step_ms"] = statistics.median(t["ms"]) if t else None
        row["step_ms_all"] = t["ms"] if t else []
        row["step_ms_iqr"] = (tuple(float(q) for q in np.percentile(t["ms"], [25, 75])) if t
                              else None)
        row["step_remeasured"] = t["remeasured"] if t else 0
        rows.append(row)
    return rows


# ---- MLA, absorbed -------------------------------------------------------------------------------

def mla_latents(attn: Attention, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What MLA's up-projections read: the query latent c_q (B, T, q_rank; x itself when queries are
    full rank) and the shared key/value latent c_kv (B, T, kv_rank), after their RMSNorms."""
    if attn.kv is None:
        raise ValueError("absorption needs a shared key/value latent: "
                         "build the Attention with kv_rank > 0")
    c_q = attn.q.norm(attn.q.down(x)) if isinstance(attn.q, Latent) else x
    return c_q, attn.kv.norm(attn.kv.down(x))


@torch.no_grad()
def absorb_mla(attn: Attention) -> dict[str, torch.Tensor]:
    """Fold MLA's up-projections into the query and output sides, per query head h reading KV head
    g:

        score = q_h . k_g = (W_uq,h c_q + b_q,h) . (W_uk,g c_kv + b_k,g)
              = c_q^T (W_uq,h^T W_uk,g) c_kv + (W_uk,g^T b_q,h) . c_kv + (terms without c_kv)
    The last terms are equal for every key, so softmax removes them. The value side: attention rows
    sum to 1, so  W_o,h sum_j a_j (W_uv,g c_kv,j + b_v,g) = (W_o,h W_uv,g) sum_j a_j c_kv,j + W_o,h
    b_v,g. Returns W_qk (H, r_q, r_kv), b_qk (H, r_kv), W_ov (H, C, r_kv), b_o (C,), scale
    (1/sqrt(d)).
    """
    if attn.kv is None:
        raise ValueError("absorption needs a shared key/value latent: "
                         "build the Attention with kv_rank > 0")
    H, Hkv, d = attn.n_head, attn.n_kv_head, attn.head_dim
    up_q = attn.q.up if isinstance(attn.q, Latent) else attn.q
    zeros = torch.zeros(H * d, device=up_q.weight.device)
    W_uq = up_q.weight.view(H, d, -1)                                           # (H, d, r_q)
    b_q = (up_q.bias if up_q.bias is not None else zeros).view(H, d)
    W_uk, W_uv = (w.view(Hkv, d, -1).repeat_interleave(H // Hkv, 0)
                  for w in attn.kv.up.weight.split(Hkv * d))
    kv_bias = attn.kv.up.bias
    if kv_bias is None:
        kv_bias = torch.zeros(2 * Hkv * d, device=zeros.device)
    b_v = kv_bias[Hkv * d:].view(Hkv, d).repeat_interleave(H // Hkv, 0)         # (H, d)
    W_o = attn.proj.weight.view(-1, H, d).transpose(0, 1)                        # (H, C, d)
    return {"W_qk": W_uq.transpose(1, 2) @ W_uk,                                 # (H, r_q, r_kv)
            "b_qk": (b_q.unsqueeze(1) @ W_uk).squeeze(1),                        # (H, r_kv)
            "W_ov": W_o @ W_uv,                                                  # (H, C, r_kv)
            "b_o": attn.proj.bias + (W_o @ b_v.unsqueeze(-1)).squeeze(-1).sum(0),
            "scale": torch.tensor(d ** -0.5)}


def absorbed_attention(attn: Attention, x: torch.Tensor, w: dict | None = None) -> torch.Tensor:
    """MLA computed on the latents: scores between absorbed queries (B, H, T, r_kv) and c_kv, the
    weighted sum of c_kv itself, then the absorbed output projection. Equal to `attn(x)`."""
    w = w or absorb_mla(attn)
    c_q, c_kv = mla_latents(attn, x)  # (B, T, r_q), (B, T, r_kv)
    q_lat = torch.einsum("btr,hrs->bhts", c_q, w["W_qk"]) + w["b_qk"][:, None]  # (B, H, T, r_kv)
    a = (q_lat @ c_kv.unsqueeze(1).transpose(-2, -1) * w["scale"]).softmax(-1)   # (B, H, T, T)
    ctx = a @ c_kv.unsqueeze(1)                                                  # (B, H, T, r_kv)
    return torch.einsum("bhtr,hcr->btc", ctx, w["W_ov"]) + w["b_o"]


# ---- what shared heads do ------------------------------------------------------------------------

def head_similarity(maps: torch.Tensor, n_kv_head: int) -> dict:
    """Correlation between the attention maps of every pair of heads, averaged over blocks and
    images: the cosine similarity of the maps after subtracting their mean (1/T, the uniform map),
    so that two heads score 1 when they attend alike, 0 when unrelated. maps (L, B, H, T, T).
    Returns {"matrix": (H, H), "within": mean over pairs of different heads that share a KV head
    (head h reads KV head h // (H / n_kv_head)), "across": mean over pairs that do not (nan when
    every pair shares one)}."""
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


# ---- plots and the explorer ----------------------------------------------------------------------

def head_sharing(n_head: int, n_kv_head: int, ax=None, title: str | None = None, q_rank: int = 0,
                 kv_rank: int = 0):
    """Query heads (top row) linked to the key/value head each one reads (bottom row), one colour
    per group; with ranks, the latent each side is decompressed from is drawn below as a bar."""
    ax = ax or plt.subplots(figsize=(max(3.0, 0.32 * n_head + 1), 2.4))[1]
    g = n_head // n_kv_head
    cmap = plt.get_cmap("tab10" if n_kv_head <= 10 else "tab20")
    xq = np.linspace(0, 1, n_head) if n_head > 1 else np.array([0.5])
    xk = np.array([xq[i * g:(i + 1) * g].mean() for i in range(n_kv_head)])
    for h in range(n_head):
        ax.plot([xq[h], xk[h // g]], [1, 0], color=cmap(h // g % cmap.N), lw=1, alpha=0.7, zorder=1)
    width_pt = ax.get_window_extent().width * 72 / ax.figure.dpi / 1.85      # points per unit of x
    size = [min(cap, (0.8 * width_pt / max(n - 1, 1)) ** 2)
            for cap, n in ((90, n_head), (150, n_kv_head))]
    ax.scatter(xq, np.ones(n_head), s=size[0], c=[cmap(h // g % cmap.N) for h in range(n_head)],
               zorder=2, edgecolors="k", linewidths=0.5)
    ax.scatter(xk, np.zeros(n_kv_head), s=size[1], marker="s", zorder=2, edgecolors="k",
               linewidths=0.5, c=[cmap(i % cmap.N) for i in range(n_kv_head)])
    ax.text(-0.06, 1, f"{n_head} query heads", ha="right", va="center", fontsize=8)
    ax.text(-0.06, 0, f"{n_kv_head} K/V head" + ("s" if n_kv_head > 1 else ""), ha="right",
            va="center", fontsize=8)
    bottom = -0.25
    for y, rank, side in ((1.35, q_rank, "query latent"), (-0.45, kv_rank, "shared K/V latent")):
        if rank:
            ax.add_patch(plt.Rectangle((0.2, y - 0.08), 0.6, 0.16, color="0.75"))
            ax.text(0.5, y, f"{side}, width {rank}", ha="center", va="center", fontsize=8)
            bottom = min(bottom, y - 0.2)
    ax.set_xlim(-0.75, 1.1)
    ax.set_ylim(bottom, 1.6 if q_rank else 1.3)
    ax.axis("off")
    kind = "MHA" if g == 1 else "MQA" if n_kv_head == 1 else f"GQA, groups of {g}"
    ax.set_title(title or kind, fontsize=9)
    return ax


def attention_budget(cfg, reference=None, axes=None):
    """The view of the chapter's widget, for one config: its head sharing, and one block's attention
    parameters and FLOPs per image by part beside a reference config's (default: MHA at the same
    width)."""
    reference = reference or with_overrides(cfg, n_kv_head=None, q_rank=0, kv_rank=0, lowrank="")
    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(10, 3.2), gridspec_kw={"width_ratios": [1.3, 1, 1]})
    head_sharing(cfg.n_head, cfg.kv_heads, ax=axes[0], q_rank=cfg.q_rank, kv_rank=cfg.kv_rank,
                 title=f"{cfg.attention_kind}: who reads which keys and values")
    ref, this = attention_breakdown(reference), attention_breakdown(cfg)
    for ax, key, unit, scale in ((axes[1], "params", "parameters per block (thousands)", 1e3),
                                 (axes[2], "flops", "FLOPs per block and image (millions)", 1e6)):
        names = ["MHA" if reference.attention_kind == "MHA" else reference.attention_kind,
                 cfg.attention_kind]
        bottom = np.zeros(2)
        for i, part in enumerate(this[key]):
            vals = np.array([ref[key][part], this[key][part]]) / scale
            ax.bar(names, vals, bottom=bottom, label=part, color=f"C{i}", width=0.55)
            bottom += vals
        for x, total in enumerate(bottom):
            ax.annotate(f"{total:,.1f}", (x, total), ha="center", va="bottom", fontsize=8)
        ax.set_ylabel(unit, fontsize=8)
        ax.set_ylim(0, bottom.max() * 1.6)
        ax.legend(fontsize=8, loc="upper right")
    axes[1].set_title("parameters", fontsize=9)
    axes[2].set_title(f"FLOPs ({cfg.n_tokens} tokens)", fontsize=9)
    axes[0].figure.tight_layout()
    return axes


def variant_costs(rows: list[dict], device: str = "", axes=None, reference: str = "MHA"):
    """The chapter's table as four panels of horizontal bars (two by two), one bar per variant:
    parameters, forward FLOPs per image, attention's activation memory per image (fused kernel, and
    explicit as a hollow bar), and the measured training-step time: the median with the repeats'
    interquartile range, the `reference` row's band shaded, and each bar coloured by its
    `time_verdicts` word (grey: within noise of the reference)."""
    if axes is None:
        fig, axes = plt.subplots(2, 2, figsize=(10, 2 * (0.3 * len(rows) + 1.3)))
        axes = axes.ravel()
    names = [r["variant"] for r in rows]
    y = np.arange(len(rows))
    panels = [("params", 1e6, "parameters (millions)"),
              ("flops", 1e6, "forward FLOPs per image (millions)"),
              ("act_bytes", 2 ** 20, "attention activations per image (MiB)")]
    for ax, (key, scale, label) in zip(axes, panels):
        ax.barh(y, [r[key] / scale for r in rows], color="C0")
        if key == "act_bytes":
            explicit = [r["act_bytes_explicit"] / scale for r in rows]
            ax.barh(y, explicit, fill=False, edgecolor="0.4", ls="--",
                    label="explicit path\n(keeps the T x T maps)")
            ax.set_xlim(0, 1.6 * max(explicit))                 # room for the legend
            ax.legend(fontsize=8, loc="lower right")
        ax.set_xlabel(label, fontsize=9)
    ax = axes[3]
    timed = [r for r in rows if r.get("step_ms_all")]
    if timed:
        words = time_verdicts(timed, reference) if any(
            r["variant"] == reference for r in timed) else {}
        colors = {"slower": "C3", "faster": "C2", "within noise": "0.6"}
        for i, r in enumerate(rows):
            if not r.get("step_ms_all"):
                continue
            q1, q3 = r["step_ms_iqr"]
            med = r["step_ms"]
            v = words.get(r["variant"])
            color = "C0" if r["variant"] == reference else colors[v.word] if v else "0.6"
            ax.barh(i, med, color=color, xerr=[[med - q1], [q3 - med]], capsize=3)
            label = "reference" if r["variant"] == reference else v.word if v else ""
            ax.annotate(label, (q3, i), xytext=(4, 0), textcoords="offset points", va="center",
                        fontsize=8)
        ref = next((r for r in timed if r["variant"] == reference), None)
        if ref is not None:
            sem = np.std(ref["step_ms_all"], ddof=1) / np.sqrt(len(ref["step_ms_all"]))
            ax.axvspan(ref["step_ms"] - 2 * sem, ref["step_ms"] + 2 * sem, color="C0", alpha=0.15,
                       lw=0)
        ax.margins(x=0.35)
    ax.set_xlabel("training step (ms): median and interquartile range"
                  + (f"\n{device}" if device else ""), fontsize=9)
    for i, ax in enumerate(axes):
        ax.set_yticks(y, names if i % 2 == 0 else [""] * len(rows), fontsize=8)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.grid(axis="x", alpha=0.3)
    axes[0].figure.tight_layout()
    return axes


def accuracy_vs_params(points: list[dict], ax=None, xkey: str = "params", title: str | None = None,
                       band: tuple[float, float] | None = None, band_label: str = "noise band"):
    """Test accuracy against parameters: {"label", "kind", xkey, "acc"} per run; MHA, GQA and MQA as
    single markers, the MLA runs joined by a line (the rank sweep), every point labelled. `band`
    (low, high) in %: shaded across the plot, e.g. the reference run's accuracy ± the seed-to-seed
    difference, inside which a point is within noise of it."""
    ax = ax or plt.subplots(figsize=(6, 3.8))[1]
    if band is not None:
        ax.axhspan(*band, color="0.85", lw=0, label=band_label, zorder=0)
        ax.legend(fontsize=8, loc="lower right")
    markers = {"MHA": "o", "GQA": "s", "MQA": "D", "MLA": "^"}
    colors = {"MHA": "C0", "GQA": "C1", "MQA": "C2", "MLA": "C3"}
    mla = sorted((p for p in points if p["kind"] == "MLA"), key=lambda p: p[xkey])
    if len(mla) > 1:
        ax.plot([p[xkey] for p in mla], [100 * p["acc"] for p in mla], color="C3", lw=1, alpha=0.6)
    for p in points:
        kind = p["kind"] if p["kind"] in markers else "other"
        ax.scatter(p[xkey], 100 * p["acc"], marker=markers.get(kind, "x"), s=50,
                   color=colors.get(kind, "C4"), zorder=3)
        ax.annotate(p["label"], (p[xkey], 100 * p["acc"]), textcoords="offset points",
                    xytext=(5, 4), fontsize=8)
    ax.xaxis.set_major_formatter(plt.FuncFormatter(
        lambda v, _: f"{v / 1e3:,.0f}k" if abs(v) >= 1e4 else f"{v:,.0f}"))
    ax.margins(x=0.18, y=0.15)
    ax.set_xlabel("parameters" if xkey == "params" else xkey)
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def head_similarity_plot(sim: torch.Tensor, n_kv_head: int, ax=None, title: str | None = None):
    """`plots.similarity_matrix` of the heads' attention maps (e.g. `head_similarity`), with a box
    around each group of query heads that shares a key/value head."""
    ax = similarity_matrix(sim, ax=ax, title=title, label="head")
    for text in ax.texts:                                    # the numbers in the cells
        text.set_fontsize(8)
    H = sim.shape[0]
    g = H // n_kv_head
    for i in range(n_kv_head):
        ax.add_patch(plt.Rectangle((i * g - 0.5, i * g - 0.5), g, g, fill=False, lw=2,
                                   edgecolor="k"))
    return ax


def attention_variant_explorer(cfg) -> W.Widget:
    """Heads, key/value heads and latent ranks of `cfg`'s attention -> `attention_budget`: who reads
    which keys and values, and one block's parameters and FLOPs beside MHA at the same width. A rank
    of 0 turns that latent off; a combination `ViTConfig` rejects is shown with its error
    message."""
    C = cfg.n_embd
    heads = [h for h in range(1, C + 1) if C % h == 0 and C // h >= 4]

    def draw(n_head, n_kv_head, q_rank, kv_rank):
        try:
            c = with_overrides(cfg, n_head=n_head, n_kv_head=n_kv_head, q_rank=q_rank,
                               kv_rank=kv_rank, lowrank="")
        except ValueError as err:
            print(err)
            return
        attention_budget(c)
        plt.show()

    step = max(1, C // 24)
    return explorer(draw, n_head=W.Dropdown(options=heads, value=cfg.n_head, description="n_head"),
                    n_kv_head=W.Dropdown(options=list(range(1, max(heads) + 1)), value=cfg.kv_heads,
                                         description="n_kv_head"),
                    q_rank=W.IntSlider(value=0, min=0, max=C - 1, step=step,
                                       description="q_rank"),
                    kv_rank=W.IntSlider(value=0, min=0, max=C - 1, step=step,
                                        description="kv_rank"))


# ---- exercise checks ("variants/...") ------------------------------------------------------------

@exercise("variants/absorb_ov",
          hint="the value of a latent c is W_uv c, and the output projection maps it to "
               "W_o (W_uv c) = (W_o @ W_uv) c: one (C, kv_rank) matrix, W_o @ W_uv, not the "
               "transposed product.")
def _check_variants_absorb_ov(fn) -> str:
    """fn(W_o (C, d), W_uv (d, kv_rank)) -> M (C, kv_rank) with M c = W_o (W_uv c) for every latent
    c."""
    g = torch.Generator().manual_seed(6)
    C, d, r_kv = 24, 4, 10
    W_o, W_uv = torch.randn(C, d, generator=g), torch.randn(d, r_kv, generator=g)
    c = torch.randn(r_kv, 7, generator=g)                       # seven latents as columns
    M = fn(W_o, W_uv)
    if not torch.is_tensor(M) or M.shape != (C, r_kv):
        got = tuple(M.shape) if torch.is_tensor(M) else type(M).__name__
        extra = " (transposed?)" if got == (r_kv, C) else ""
        raise ExerciseError(f"expected a ({C}, {r_kv}) tensor for C={C}, kv_rank={r_kv}, got "
                            f"{got}{extra}")
    expect_close(M @ c, W_o @ (W_uv @ c), "M c vs W_o (W_uv c)", atol=1e-4)
    return (f"the output straight from the weighted latents: one {C} x {r_kv} matrix per head "
            "instead of the value up-projection and the output projection")


@exercise("variants/absorb_qk",
          hint="(W_uq c_q) . (W_uk c_kv) = c_q^T W_uq^T W_uk c_kv: the matrix between the two "
               "latents is W_uq.T @ W_uk, of shape (q_rank, kv_rank).")
def _check_variants_absorb_qk(fn) -> str:
    """fn(W_uq (d, q_rank), W_uk (d, kv_rank)) -> M (q_rank, kv_rank) with
    c_q^T M c_kv = (W_uq c_q) . (W_uk c_kv)."""
    g = torch.Generator().manual_seed(6)
    d, r_q, r_kv = 16, 12, 8
    W_uq, W_uk = torch.randn(d, r_q, generator=g), torch.randn(d, r_kv, generator=g)
    c_q, c_kv = torch.randn(7, r_q, generator=g), torch.randn(9, r_kv, generator=g)
    M = fn(W_uq, W_uk)
    if not torch.is_tensor(M) or M.shape != (r_q, r_kv):
        got = tuple(M.shape) if torch.is_tensor(M) else type(M).__name__
        raise ExerciseError(f"expected a ({r_q}, {r_kv}) tensor for q_rank={r_q}, kv_rank={r_kv}, "
                            f"got {got}")
    expect_close(c_q @ M @ c_kv.T, (c_q @ W_uq.T) @ (c_kv @ W_uk.T).T,
                 "scores c_q^T M c_kv vs q . k", atol=1e-3)
    return (f"scores straight from the latents: {r_q} x {r_kv} numbers per head "
            "instead of two up-projections")


@exercise("variants/kv_cache",
          hint="without MLA a decoder caches a key and a value for every KV head of every block: "
               "2 * n_kv_head * head_dim per block (cfg.kv_heads covers n_kv_head=None); with MLA "
               "(kv_rank > 0) only the shared latent: kv_rank per block.")
def _check_variants_kv_cache(fn) -> str:
    """fn(cfg) -> values a decoder would cache per token, over all blocks."""
    for over in ({}, {"n_kv_head": 4}, {"n_kv_head": 1}, {"q_rank": 96, "kv_rank": 64},
                 {"kv_rank": 32, "n_kv_head": 4}):
        cfg = get_config("paper", **over)
        want = kv_cache_floats(cfg)
        got = as_int(fn(cfg), f"values cached per token with {over or 'no overrides'}")
        if got != want:
            kind = cfg.attention_kind + (f" with kv_rank={cfg.kv_rank}" if cfg.kv_rank else "")
            raise ExerciseError(f"for the paper preset with {over or 'no overrides'} ({kind}) "
                                f"expected {want:,} values per token, got {got}")
    return "MHA, GQA, MQA and MLA caches per token, from the config alone"


__all__ = ["variant_overrides", "step_times", "step_time_ms", "time_verdicts", "variant_table",
           "mla_latents", "absorb_mla",
           "absorbed_attention", "head_similarity", "head_sharing", "attention_budget",
           "variant_costs", "accuracy_vs_params", "head_similarity_plot",
           "attention_variant_explorer"]

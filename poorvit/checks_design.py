"""The checks of chapters 6, 9 and 10 (attention variants, profiling, the recipe put together),
registered in `poorvit.exercises.CHECKS` on import."""
from __future__ import annotations

import torch

from .exercises import ExerciseError, exercise, expect_close


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

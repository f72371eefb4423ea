"""The attention-variants chapter's package code: MLA absorbed equals MLA plain, the variant table counts
what the model has, the activation-memory closed form equals what autograd saves, the closed-form FLOPs
equal the FLOP counter's, and the chapter's exercise checks accept right answers and reject wrong ones."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from poorvit import ViT, count_params, get_config
from poorvit.attention import Attention
from poorvit.exercises import ExerciseError, check
from poorvit.variants import (absorb_mla, absorbed_attention, attention_activation_bytes, attention_breakdown,
                              attention_saved_bytes, head_similarity, kv_cache_floats, step_time_ms,
                              variant_overrides, variant_table)


def assert_close(a, b, atol=1e-5, rtol=1e-4, what=""):
    diff = (a - b).abs()
    print(f"{what}: max diff {diff.max().item():.2e}, mean diff {diff.mean().item():.2e}")
    torch.testing.assert_close(a, b, atol=atol, rtol=rtol)


def randomized(attn: Attention) -> Attention:
    """Biases and RMSNorm gains away from their init, so that every term of the absorption matters."""
    torch.manual_seed(1)
    with torch.no_grad():
        for m in attn.modules():
            if isinstance(m, nn.RMSNorm):
                m.weight.uniform_(0.5, 1.5)
            if isinstance(m, nn.Linear) and m.bias is not None:
                m.bias.normal_()
    return attn


@pytest.mark.parametrize("kw", [dict(q_rank=16, kv_rank=24), dict(kv_rank=24), dict(q_rank=16, kv_rank=24, n_kv_head=2),
                                dict(q_rank=24, kv_rank=8, n_kv_head=1), dict(q_rank=16, kv_rank=8, bias=False)])
def test_absorbed_mla_equals_plain_mla(kw):
    torch.manual_seed(0)
    attn = randomized(Attention(64, 8, **kw))
    x = torch.randn(2, 17, 64)
    assert_close(absorbed_attention(attn, x), attn(x), what=f"absorbed vs plain MLA {kw}")
    w = absorb_mla(attn)
    H, r_kv = 8, kw["kv_rank"]
    assert w["W_qk"].shape == (H, kw.get("q_rank") or 64, r_kv) and w["W_ov"].shape == (H, 64, r_kv)


def test_absorption_needs_a_shared_latent():
    with pytest.raises(ValueError, match="kv_rank"):
        absorbed_attention(Attention(64, 8, q_rank=16), torch.randn(1, 5, 64))


def test_package_gqa_equals_torch_sdpa_with_enable_gqa():
    torch.manual_seed(0)
    attn = Attention(64, 8, n_kv_head=2)
    x = torch.randn(2, 17, 64)
    q, k, v = attn.project(x)
    ref = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    y = attn.proj(ref.transpose(1, 2).reshape(2, 17, 64))
    assert_close(attn(x), y, what="Attention(GQA) vs F.sdpa(enable_gqa=True)")


def test_variant_overrides_cover_every_kind():
    names = variant_overrides(get_config("paper"))
    assert list(names)[:4] == ["MHA", "GQA (4 KV heads)", "MQA", "MLA (q 64, kv 64)"]
    assert list(variant_overrides(get_config("smoke")))[:3] == ["MHA", "GQA (2 KV heads)", "MQA"]
    assert names["low-rank q"] == {"lowrank": "q", "lowrank_dim": 64}            # the study's bottleneck width
    kinds = {get_config("paper", **o).attention_kind for o in names.values()}
    assert {"MHA", "GQA", "MQA", "MLA", "low-rank qkv"} <= kinds
    smoke = get_config("smoke")
    for over in variant_overrides(smoke).values():  # ranks follow the width: every override is valid
        get_config("smoke", **over)


@pytest.fixture(scope="module")
def smoke_table():
    return variant_table(get_config("micro"), batch_size=2, steps=1, device="cpu")


def test_table_parameter_counts_equal_count_params(smoke_table):
    for row in smoke_table:
        assert row["params"] == row["params_formula"] == count_params(row["config"]), row["variant"]
        model = ViT(row["config"])
        assert row["attn_params"] == sum(p.numel() for p in model.blocks[0].attn.parameters())
        assert row["step_ms"] > 0 and row["flops"] > row["attn_flops"] > 0


def test_paper_table_row_counts():
    rows = variant_table(get_config("paper"), {"MHA": {}, "MQA": {"n_kv_head": 1}}, time_steps=False)
    assert rows[0]["params"] == count_params(get_config("paper")) == 2_697_610
    assert rows[1]["params"] == count_params(get_config("paper", n_kv_head=1))
    assert rows[0]["step_ms"] is None


def test_activation_formula_equals_saved_tensors(smoke_table):
    for row in smoke_table:
        assert row["act_bytes"] == row["act_bytes_measured"], row["variant"]
        assert row["act_bytes_explicit"] == row["act_bytes_explicit_measured"], row["variant"]


@pytest.mark.parametrize("over", [{}, {"n_kv_head": 4}, {"q_rank": 64, "kv_rank": 64}, {"lowrank": "qkv"}])
def test_activation_formula_at_paper_width(over):
    cfg = get_config("paper", n_layer=2, **over)
    model = ViT(cfg).eval()
    x = torch.randn(3, 3, 32, 32)
    for explicit in (False, True):
        assert attention_activation_bytes(cfg, explicit) == attention_saved_bytes(model, x, explicit)


def test_activation_formula_in_closed_form():
    cfg = get_config("paper")
    N, C, H = 65, 192, 12
    assert attention_activation_bytes(cfg) == 9 * 4 * N * (3 * C + 2 * C + H)
    assert attention_activation_bytes(cfg, explicit=True) == 9 * 4 * (5 * N * C + H * N * N)
    mqa = get_config("paper", n_kv_head=1)
    assert attention_activation_bytes(cfg) - attention_activation_bytes(mqa) == 9 * 4 * N * 2 * (C - 16)


@pytest.mark.parametrize("over", [{}, {"n_kv_head": 2}, {"q_rank": 20, "kv_rank": 12}, {"kv_rank": 12},
                                  {"lowrank": "kv", "lowrank_dim": 20}, {"qkv_bias": False}])
def test_breakdown_flops_equal_flop_counter(over):
    cfg = get_config("smoke", **over)
    attn = Attention(cfg.n_embd, cfg.n_head, cfg.kv_heads, cfg.q_rank, cfg.kv_rank, cfg.lowrank, cfg.lowrank_dim,
                     cfg.qkv_bias)
    with FlopCounterMode(display=False) as counter:
        attn(torch.zeros(1, cfg.n_tokens, cfg.n_embd), explicit=True)
    b = attention_breakdown(cfg)
    assert sum(b["flops"].values()) == counter.get_total_flops()
    assert sum(b["params"].values()) == sum(p.numel() for p in attn.parameters())


def test_kv_cache_floats():
    assert kv_cache_floats(get_config("paper")) == 9 * 2 * 192
    assert kv_cache_floats(get_config("paper", n_kv_head=1)) == 9 * 2 * 16
    assert kv_cache_floats(get_config("paper", q_rank=32, kv_rank=64)) == 9 * 64


def test_head_similarity_groups():
    torch.manual_seed(0)
    maps = torch.rand(2, 3, 4, 5, 5).softmax(-1)
    maps[:, :, 1] = maps[:, :, 0]          # heads 0 and 1 share a KV head and attend alike
    sim = head_similarity(maps, n_kv_head=2)
    assert sim["matrix"].shape == (4, 4)
    assert math.isclose(sim["matrix"][0, 1].item(), 1.0, rel_tol=1e-5)
    assert sim["within"] > sim["across"]
    assert math.isnan(head_similarity(maps, n_kv_head=1)["across"])


def test_step_time_is_positive():
    assert step_time_ms(get_config("micro"), batch_size=2, steps=1) > 0


# ---- exercises ---------------------------------------------------------------------------------------

def test_exercise_repeat_kv():
    check("variants/repeat_kv", lambda k, n_rep: k.repeat_interleave(n_rep, dim=1))
    with pytest.raises(ExerciseError, match="interleave|group"):
        check("variants/repeat_kv", lambda k, n_rep: k.repeat(1, n_rep, 1, 1))


def test_exercise_absorb_qk():
    check("variants/absorb_qk", lambda W_uq, W_uk: W_uq.T @ W_uk)
    with pytest.raises(ExerciseError):
        check("variants/absorb_qk", lambda W_uq, W_uk: W_uk.T @ W_uq)


def test_exercise_kv_cache():
    check("variants/kv_cache", kv_cache_floats)
    with pytest.raises(ExerciseError, match="kv_rank|MLA"):
        check("variants/kv_cache", lambda cfg: cfg.n_layer * 2 * cfg.kv_heads * cfg.head_dim)

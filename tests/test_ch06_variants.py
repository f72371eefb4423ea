"""Chapter 6's code (`poorvit.course.ch06_variants`): MLA absorbed equals MLA plain, the variant
list covers every kind with THE GQA rule, the variant table counts what the model has, head
similarity groups heads by their KV head, and the chapter's exercise checks accept right answers and
reject wrong ones."""
import math

import pytest
import torch
import torch.nn as nn
from conftest import assert_close

from poorvit.attention import Attention
from poorvit.config import ViTConfig, get_config
from poorvit.cost import count_params, kv_cache_floats
from poorvit.course.ch06_variants import (absorb_mla, absorbed_attention, head_similarity,
                                          step_time_ms, step_times, time_verdicts,
                                          variant_costs, variant_overrides, variant_table)
from poorvit.course.exercises import ExerciseError, check
from poorvit.model import ViT
from poorvit.sweep import kv_heads_like


def randomized(attn: Attention) -> Attention:
    """Biases and RMSNorm gains away from their init, so that every term of the absorption
    matters."""
    torch.manual_seed(1)
    with torch.no_grad():
        for m in attn.modules():
            if isinstance(m, nn.RMSNorm):
                m.weight.uniform_(0.5, 1.5)
            if isinstance(m, nn.Linear) and m.bias is not None:
                m.bias.normal_()
    return attn


@pytest.mark.parametrize("kw", [dict(q_rank=16, kv_rank=24), dict(kv_rank=24),
                                dict(q_rank=16, kv_rank=24, n_kv_head=2),
                                dict(q_rank=24, kv_rank=8, n_kv_head=1),
                                dict(q_rank=16, kv_rank=8, qkv_bias=False)])
def test_absorbed_mla_equals_plain_mla(kw):
    torch.manual_seed(0)
    attn = randomized(Attention(ViTConfig(n_embd=64, n_head=8, **kw)))
    x = torch.randn(2, 17, 64)
    assert_close(absorbed_attention(attn, x), attn(x), what=f"absorbed vs plain MLA {kw}")
    w = absorb_mla(attn)
    H, r_kv = 8, kw["kv_rank"]
    assert w["W_qk"].shape == (H, kw.get("q_rank") or 64, r_kv)
    assert w["W_ov"].shape == (H, 64, r_kv)


def test_absorption_needs_a_shared_latent():
    with pytest.raises(ValueError, match="kv_rank"):
        absorbed_attention(Attention(ViTConfig(n_embd=64, n_head=8, q_rank=16)),
                           torch.randn(1, 5, 64))


def test_variant_overrides_cover_every_kind():
    names = variant_overrides(get_config("paper"))
    assert list(names)[:4] == ["MHA", "GQA (4 KV heads)", "MQA", "MLA (q 64, kv 64)"]
    assert list(variant_overrides(get_config("smoke")))[:3] == ["MHA", "GQA (2 KV heads)", "MQA"]
    assert names["low-rank q"] == {"lowrank": "q", "lowrank_dim": 64}   # the study's bottleneck
    kinds = {get_config("paper", **o).attention_kind for o in names.values()}
    assert {"MHA", "GQA", "MQA", "MLA", "low-rank qkv"} <= kinds
    smoke = get_config("smoke")
    for over in variant_overrides(smoke).values():  # ranks follow the width: every one is valid
        get_config("smoke", **over)


@pytest.mark.parametrize("preset", ["paper", "smoke", "micro", "cpu"])
def test_the_gqa_variant_follows_the_one_gqa_rule(preset):
    """Chapter 6's GQA row is the sweep's: the study's 4 KV heads of 12, translated by
    `sweep.kv_heads_like` onto the preset's heads."""
    cfg = get_config(preset)
    gqa = [o for name, o in variant_overrides(cfg).items() if name.startswith("GQA")]
    assert [o["n_kv_head"] for o in gqa] == [kv_heads_like(4, 12, cfg.n_head)]


@pytest.fixture(scope="module")
def micro_table():
    return variant_table(get_config("micro"), batch_size=2, steps=3, device="cpu")


def test_table_parameter_counts_equal_count_params(micro_table):
    for row in micro_table:
        assert row["params"] == row["params_formula"] == count_params(row["config"]), row["variant"]
        model = ViT(row["config"])
        assert row["attn_params"] == sum(p.numel() for p in model.blocks[0].attn.parameters())
        assert row["step_ms"] > 0 and row["flops"] > row["attn_flops"] > 0
        assert row["kv_cache_floats"] == kv_cache_floats(row["config"])
        lo, hi = row["step_ms_iqr"]                   # plain floats: the book formats them
        assert type(lo) is float and lo <= row["step_ms"] <= hi


def test_paper_table_row_counts():
    rows = variant_table(get_config("paper"), {"MHA": {}, "MQA": {"n_kv_head": 1}},
                         time_steps=False)
    assert rows[0]["params"] == count_params(get_config("paper")) == 2_697_610
    assert rows[1]["params"] == count_params(get_config("paper", n_kv_head=1))
    assert rows[0]["step_ms"] is None


def test_table_activation_formula_equals_saved_tensors(micro_table):
    for row in micro_table:
        assert row["act_bytes"] == row["act_bytes_measured"], row["variant"]
        assert row["act_bytes_explicit"] == row["act_bytes_explicit_measured"], row["variant"]


def test_variant_costs_fit_the_column_and_mark_the_noise(micro_table):
    axes = variant_costs(micro_table, device="cpu")
    assert len(axes) == 4 and axes[0].figure.get_size_inches()[0] <= 10
    words = {t.get_text() for t in axes[3].texts}
    assert "reference" in words and words <= {"reference", "slower", "faster", "within noise"}
    assert axes[3].patches, "the step panel draws its bars"


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


def test_step_times_time_every_config_every_round():
    cfgs = {"MHA": get_config("micro"), "MQA": get_config("micro", n_kv_head=1)}
    times = step_times(cfgs, batch_size=2, steps=3, warmup=1, device="cpu")
    assert list(times) == ["MHA", "MQA"]
    for t in times.values():
        assert len(t["ms"]) == 3 and min(t["ms"]) > 0 and 0 <= t["remeasured"] <= 3


def test_time_verdicts_say_within_noise_inside_the_band():
    rows = [{"variant": "MHA", "step_ms_all": [100, 102, 98, 101, 99]},
            {"variant": "close", "step_ms_all": [101, 99, 103, 100, 98]},
            {"variant": "slow", "step_ms_all": [200, 204, 196, 202, 198]},
            {"variant": "fast", "step_ms_all": [50, 51, 49, 50, 52]}]
    words = {name: v.word for name, v in time_verdicts(rows).items()}
    assert words == {"close": "within noise", "slow": "slower", "fast": "faster"}
    assert math.isclose(time_verdicts(rows)["slow"].ratio, 2.0)


# ---- exercises ----------------------------------------------------------------------------------

def test_exercise_absorb_ov():
    check("variants/absorb_ov", lambda W_o, W_uv: W_o @ W_uv)
    with pytest.raises(ExerciseError, match="transposed"):
        check("variants/absorb_ov", lambda W_o, W_uv: W_uv.T @ W_o.T)
    with pytest.raises(ExerciseError, match="differ"):
        check("variants/absorb_ov", lambda W_o, W_uv: W_o @ W_uv.flip(0))


def test_exercise_absorb_qk():
    check("variants/absorb_qk", lambda W_uq, W_uk: W_uq.T @ W_uk)
    with pytest.raises(ExerciseError):
        check("variants/absorb_qk", lambda W_uq, W_uk: W_uk.T @ W_uq)


def test_exercise_kv_cache():
    check("variants/kv_cache", kv_cache_floats)
    with pytest.raises(ExerciseError, match="kv_rank|MLA"):
        check("variants/kv_cache", lambda cfg: cfg.n_layer * 2 * cfg.kv_heads * cfg.head_dim)

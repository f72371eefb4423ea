"""poorvit.cost: every closed form equals what it counts. Parameters equal the built model's, the
attention FLOP formulas equal `torch.utils.flop_counter`, the activation-memory formula equals what
autograd saves, and the utilisation arithmetic adds up."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from poorvit.attention import Attention, explicit_attention
from poorvit.config import get_config
from poorvit.cost import (attention_activation_bytes, attention_breakdown, attention_flops,
                          attention_saved_bytes, count_params, flops_per_image, kv_cache_floats,
                          mfu, model_report, n_tokens, patch_cost, train_flops)
from poorvit.model import ViT

# every attention variant at the micro preset's width (32 channels, 4 heads)
MICRO_VARIANTS = [{}, {"n_kv_head": 2}, {"n_kv_head": 1}, {"q_rank": 10, "kv_rank": 10},
                  {"kv_rank": 10, "n_kv_head": 2}, *({"lowrank": w, "lowrank_dim": 10}
                                                     for w in ("q", "k", "kv", "qk", "qkv"))]


# ---- FLOPs --------------------------------------------------------------------------------------

def test_flops_are_counted_for_every_matmul():
    cfg = get_config("micro", drop_path=0.0)
    model = ViT(cfg)
    flops = flops_per_image(model)["total"]
    C, T, N, L = cfg.n_embd, cfg.n_tokens, cfg.n_patches, cfg.n_layer
    per_block = 2 * T * (C * 3 * C + C * C + 2 * C * cfg.mlp_hidden) + 2 * 2 * T * T * C
    expected = L * per_block + 2 * N * (3 * cfg.patch_size ** 2) * C + 2 * C * cfg.n_classes
    assert flops == expected
    assert not any(b.attn.explicit for b in model.blocks)   # the explicit path only while counted


def test_attention_flops_of_every_block_of_a_model_match_the_formula():
    for name in ("smoke", "micro"):
        cfg = get_config(name)
        report = model_report(cfg)
        assert report["attention_flops"] == cfg.n_layer * attention_flops(cfg.n_tokens,
                                                                          cfg.n_embd)["total"]
        assert report["params"] == count_params(cfg) == sum(report["params_by_part"].values())


def test_patch_cost_counts_tokens_and_scores_grow_quadratically():
    assert n_tokens(32, 4) == 65 and n_tokens(32, 4, n_cls=4) == 68 and n_tokens(32, 32) == 2
    c2, c4 = patch_cost(32, 2, 64), patch_cost(32, 4, 64)
    assert (c2["patches"], c2["tokens"], c2["patch_values"]) == (256, 257, 12)
    assert c2["attention_scores"] / c4["attention_scores"] == pytest.approx((257 / 65) ** 2)
    assert c2["attention_projections"] / c4["attention_projections"] == pytest.approx(257 / 65)
    with pytest.raises(ValueError, match="patch_size=5"):
        n_tokens(32, 5)


@pytest.mark.parametrize("over", [{}, {"n_kv_head": 2}, {"q_rank": 20, "kv_rank": 12},
                                  {"kv_rank": 12}, {"lowrank": "kv", "lowrank_dim": 20},
                                  {"qkv_bias": False}])
def test_breakdown_flops_equal_flop_counter(over):
    cfg = get_config("smoke", **over)
    attn = Attention(cfg)
    with explicit_attention(attn), FlopCounterMode(display=False) as counter:
        attn(torch.zeros(1, cfg.n_tokens, cfg.n_embd))
    b = attention_breakdown(cfg)
    assert sum(b["flops"].values()) == counter.get_total_flops()
    assert sum(b["params"].values()) == sum(p.numel() for p in attn.parameters())
    if not over:                                  # MHA: the breakdown is the one-line formula
        assert sum(b["flops"].values()) == attention_flops(cfg.n_tokens, cfg.n_embd)["total"]


def test_flop_arithmetic():
    cfg = get_config("micro")
    assert mfu(2e9, 2.0, 1e9) == 1.0 and mfu(1e9, 0.5, 4e9) == 0.5
    assert train_flops(cfg, 4) == 4 * flops_per_image(ViT(cfg), backward=True)["total"]
    # backward = twice the forward, less the patch conv's gradient for its input (images need none)
    f = flops_per_image(ViT(get_config("paper")))
    conv = f["by_module"]["ViT.tokens.patch.proj"]
    assert train_flops(get_config("paper"), 1) == 3 * f["total"] - conv


def test_count_flops_is_the_counter_on_the_explicit_path_in_eval_mode():
    """`count_flops` of any module: flop_counter's total with every attention explicit (the scores
    counted), the module's train mode and attention path given back; backward adds the gradients'
    matmuls and leaves no gradient behind."""
    from poorvit.cost import count_flops
    from poorvit.model import Block

    cfg = get_config("micro")
    block = Block(cfg).train()
    x = torch.zeros(1, cfg.n_tokens, cfg.n_embd)
    with explicit_attention(block), FlopCounterMode(display=False) as counter:
        block(x)
    fused = count_flops(block, x)
    assert fused == counter.get_total_flops() > 0
    assert block.training and not block.attn.explicit
    both = count_flops(block, x, backward=True)
    assert both > 2 * fused and all(p.grad is None for p in block.parameters())
    model = ViT(cfg)
    assert count_flops(model, torch.zeros(1, 3, 32, 32)) == flops_per_image(model)["total"]


def test_flops_per_image_needs_an_image_size():
    """A module without a `cfg` and no `image_size`: a ValueError that says what to pass (not an
    AttributeError); with `image_size` it counts."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 4, 4), torch.nn.Flatten(),
                              torch.nn.Linear(8 * 8 * 8, 10))
    with pytest.raises(ValueError, match="image_size="):
        flops_per_image(net)
    assert flops_per_image(net, image_size=32)["total"] == 2 * 64 * 48 * 8 + 2 * 512 * 10


# ---- parameters ---------------------------------------------------------------------------------

@pytest.mark.parametrize("over", MICRO_VARIANTS)
def test_count_params_and_breakdown_equal_the_built_model(over):
    cfg = get_config("micro", **over)
    model = ViT(cfg)
    assert count_params(cfg) == sum(p.numel() for p in model.parameters())
    attn_params = sum(attention_breakdown(cfg)["params"].values())
    assert attn_params == sum(p.numel() for p in model.blocks[0].attn.parameters())


def test_paper_counts():
    assert count_params(get_config("paper")) == 2_697_610
    mqa = get_config("paper", n_kv_head=1)
    assert count_params(mqa) == sum(p.numel() for p in ViT(mqa).parameters())


# ---- memory -------------------------------------------------------------------------------------

@pytest.mark.parametrize("over", MICRO_VARIANTS)
def test_activation_formula_equals_saved_tensors(over):
    cfg = get_config("micro", **over)
    torch.manual_seed(0)
    model = ViT(cfg).eval()
    x = torch.zeros(2, 3, 32, 32)
    for explicit in (False, True):
        measured = attention_saved_bytes(model, x, explicit)
        assert attention_activation_bytes(cfg, explicit) == measured, explicit
    assert not any(b.attn.explicit for b in model.blocks)


@pytest.mark.parametrize("over", [{}, {"n_kv_head": 4}, {"q_rank": 64, "kv_rank": 64},
                                  {"lowrank": "qkv"}])
def test_activation_formula_at_paper_width(over):
    cfg = get_config("paper", n_layer=2, **over)
    model = ViT(cfg).eval()
    x = torch.randn(3, 3, 32, 32)
    for explicit in (False, True):
        measured = attention_saved_bytes(model, x, explicit)
        assert attention_activation_bytes(cfg, explicit) == measured, explicit


def test_activation_formula_in_closed_form():
    cfg = get_config("paper")
    T, C, H = 65, 192, 12
    assert attention_activation_bytes(cfg) == 9 * 4 * T * (3 * C + 2 * C + H)
    assert attention_activation_bytes(cfg, explicit=True) == 9 * 4 * (5 * T * C + H * T * T)
    mqa = get_config("paper", n_kv_head=1)
    saved = attention_activation_bytes(cfg) - attention_activation_bytes(mqa)
    assert saved == 9 * 4 * T * 2 * (C - 16)


def test_kv_cache_floats():
    assert kv_cache_floats(get_config("paper")) == 9 * 2 * 192
    assert kv_cache_floats(get_config("paper", n_kv_head=1)) == 9 * 2 * 16
    assert kv_cache_floats(get_config("paper", q_rank=32, kv_rank=64)) == 9 * 64

"""poorvit.model and the configs it is built from: every preset and attention variant builds,
runs, learns and counts right; the heads meet the usual ViT where they should (each equivalence
reports max and mean difference); the attention maps come out one per block; a bad config names its
field, its value and the fix."""
import pytest
import torch
import torch.nn.functional as F
from conftest import assert_close

from poorvit.config import PRESETS, get_config
from poorvit.cost import count_params
from poorvit.model import ViT
from poorvit.tokens import patchify


def variants(cfg):
    """Every attention variant at a preset's width: overrides of the preset."""
    H, C = cfg.n_head, cfg.n_embd
    return {
        "mha": {},
        "gqa": {"n_kv_head": max(H // 2, 1)},
        "mqa": {"n_kv_head": 1},
        "mla": {"q_rank": C // 2, "kv_rank": C // 4},
        "mla-gqa": {"kv_rank": C // 4, "n_kv_head": max(H // 2, 1)},
        "lowrank-q": {"lowrank": "q", "lowrank_dim": C // 3},
        "lowrank-qkv": {"lowrank": "qkv", "lowrank_dim": C // 3},
        "cls4-mean-sincos": {"n_cls": 4, "cls_head": "mean", "pos_embed": "sincos"},
        "cls2-concat-nopos": {"n_cls": 2, "pos_embed": "none"},
        "gap-no-cls": {"n_cls": 0, "cls_head": "gap"},
        "gap-cls2-sincos": {"n_cls": 2, "cls_head": "gap", "pos_embed": "sincos"},
        "overlap": {"patch_kernel": cfg.patch_size + 4, "patch_drop": 0.5},
    }


CASES = [(p, v) for p in PRESETS for v in variants(get_config(p))]


@pytest.mark.parametrize("preset,variant", CASES, ids=[f"{p}-{v}" for p, v in CASES])
def test_every_preset_and_variant(preset, variant):
    torch.manual_seed(0)
    cfg = get_config(preset, drop_path=0.0, **variants(get_config(preset))[variant])
    model = ViT(cfg)
    assert sum(p.numel() for p in model.parameters()) == count_params(cfg)
    x = torch.randn(2, 3, cfg.image_size, cfg.image_size)
    out = model(x)
    assert out.shape == (2, cfg.n_classes)
    assert torch.isfinite(out).all()
    F.cross_entropy(out, torch.tensor([0, 1])).backward()
    no_grad = [n for n, p in model.named_parameters()
               if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad, f"parameters without gradient: {no_grad}"


def test_paper_preset_is_the_study_baseline():
    cfg = get_config("paper")
    assert (cfg.patch_size, cfg.n_embd, cfg.n_layer, cfg.n_head, cfg.mlp_ratio, cfg.n_cls) == (
        4, 192, 9, 12, 2.0, 1)
    assert count_params(cfg) == sum(p.numel() for p in ViT(cfg).parameters()) == 2_697_610


# ---- the heads ---------------------------------------------------------------------------------

def test_one_class_token_concat_is_the_usual_vit():
    torch.manual_seed(0)
    cfg = get_config("micro", n_cls=1, cls_head="concat")
    model = ViT(cfg).eval()
    x = torch.randn(2, 3, 32, 32)
    # the usual ViT written out:
    # patches -> linear -> [cls; patches] + pos -> blocks -> norm -> head(token 0)
    t = model.tokens
    tok = t.patch.as_linear(patchify(x, cfg.patch_size))
    tok = torch.cat([t.cls_token.expand(2, -1, -1), tok], 1) + t.pos_embed
    for blk in model.blocks:
        tok = tok + blk.attn(blk.norm1(tok))
        tok = tok + blk.mlp(blk.norm2(tok))
    ref = model.head(model.norm(tok)[:, 0])
    assert_close(model(x), ref, what="n_cls=1 concat vs usual ViT")
    mean = ViT(get_config("micro", n_cls=1, cls_head="mean")).eval()
    mean.load_state_dict(model.state_dict())
    assert_close(mean(x), model(x), what="n_cls=1 mean vs concat")


def test_gap_head_averages_the_patch_tokens():
    torch.manual_seed(0)
    for n_cls in (0, 2):
        model = ViT(get_config("micro", n_cls=n_cls, cls_head="gap")).eval()
        x = torch.randn(3, 3, 32, 32)
        feats = model.forward_features(x)
        assert feats.shape[1] == n_cls + model.cfg.n_patches
        assert_close(model(x), model.head(feats[:, n_cls:].mean(1)),
                     what=f"gap head, n_cls={n_cls}")
        if n_cls:                                   # the class tokens are left out of the mean
            assert not torch.allclose(model(x), model.head(feats.mean(1)))


def test_attention_maps_have_one_map_per_block():
    cfg = get_config("micro", n_cls=2)
    maps = ViT(cfg).attention_maps(torch.randn(3, 3, 32, 32))
    assert maps.shape == (cfg.n_layer, 3, cfg.n_head, cfg.n_tokens, cfg.n_tokens)


def test_attention_maps_are_the_maps_each_block_sees():
    torch.manual_seed(0)
    model = ViT(get_config("micro", n_cls=2, drop_path=0.1, n_kv_head=2)).train()
    x = torch.randn(3, 3, 32, 32)
    maps = model.attention_maps(x)
    assert model.training and not any(b.attn.explicit for b in model.blocks)   # left as it was
    model.eval()
    with torch.no_grad():
        tokens = model.tokens(x)
        for i, (block, m) in enumerate(zip(model.blocks, maps)):
            assert_close(m, block.attn.maps(block.norm1(tokens)), what=f"maps of block {i}")
            tokens = block(tokens)
        assert_close(model.norm(tokens), model.forward_features(x), what="features")


def test_full_rank_mla_is_a_valid_config():
    """A latent as wide as the model saves nothing, but the equivalence tests build one."""
    cfg = get_config("micro", q_rank=32, kv_rank=32)
    assert cfg.attention_kind == "MLA"
    assert count_params(cfg) == sum(p.numel() for p in ViT(cfg).parameters())


# ---- bad configs -------------------------------------------------------------------------------

BAD = [
    (dict(n_embd=100, n_head=12), "n_head=12", "divide n_embd=100"),
    (dict(n_head=12, n_kv_head=5), "n_kv_head=5", "divide n_head=12"),
    (dict(n_kv_head=0), "n_kv_head=0", "divide n_head"),
    (dict(q_rank=-1), "q_rank=-1", "1 .. n_embd=192 wide"),
    (dict(kv_rank=193), "kv_rank=193", "1 .. n_embd=192"),
    (dict(q_rank=500), "q_rank=500", "a latent is 1 .. n_embd"),
    (dict(patch_size=5), "patch_size=5", "divide image_size=32"),
    (dict(image_size=30, patch_size=4), "patch_size=4", "divide image_size=30"),
    (dict(pos_embed="rope"), "pos_embed='rope'", "'learned', 'sincos', 'none'"),
    (dict(cls_head="max"), "cls_head='max'", "'concat', 'mean', 'gap'"),
    (dict(lowrank="qx"), "lowrank='qx'", 'subset of "qkv"'),
    (dict(lowrank="q", lowrank_dim=0), "lowrank_dim=0", "narrower than n_embd"),
    (dict(q_rank=32, lowrank="q"), "lowrank='q'", "q_rank already"),
    (dict(n_cls=0), "n_cls=0", "only with cls_head='gap'"),
    (dict(patch_kernel=6, patch_size=8), "patch_kernel=6", "patch_size=8 plus an even number"),
    (dict(patch_kernel=7), "patch_kernel=7", "plus an even number"),
    (dict(drop_path=1.0), "drop_path=1.0", "[0, 1)"),
    (dict(n_layers=4), "n_layers", "valid fields"),
]


@pytest.mark.parametrize("overrides,name,hint", BAD, ids=[b[1] for b in BAD])
def test_bad_config_names_field_value_and_fix(overrides, name, hint):
    with pytest.raises(ValueError) as err:
        get_config("paper", **overrides)
    assert name in str(err.value) and hint in str(err.value), str(err.value)


def test_unknown_preset_lists_presets():
    with pytest.raises(ValueError, match="'paper', 'cpu'"):
        get_config("huge")

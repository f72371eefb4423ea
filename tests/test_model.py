"""The model side of poorvit: every preset and attention variant builds, runs, learns and counts right,
and the special cases meet where they should (each equivalence reports max and mean difference)."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import poorvit
from poorvit import PRESETS, ViT, count_params, get_config
from poorvit.attention import Attention, explicit_attention
from poorvit.tokens import PatchEmbed, patchify, sincos_2d, unpatchify


def assert_close(a, b, atol=1e-5, rtol=1e-4, what=""):
    diff = (a - b).abs()
    print(f"{what}: max diff {diff.max().item():.2e}, mean diff {diff.mean().item():.2e}")
    torch.testing.assert_close(a, b, atol=atol, rtol=rtol)


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
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad, f"parameters without gradient: {no_grad}"


def test_paper_preset_is_the_study_baseline():
    cfg = get_config("paper")
    assert (cfg.patch_size, cfg.n_embd, cfg.n_layer, cfg.n_head, cfg.mlp_ratio, cfg.n_cls) == (4, 192, 9, 12, 2.0, 1)
    assert count_params(cfg) == sum(p.numel() for p in ViT(cfg).parameters()) == 2_697_610


# ---- equivalences -------------------------------------------------------------------------------------

def test_gqa_with_all_kv_heads_is_mha():
    torch.manual_seed(0)
    mha, gqa = Attention(64, 8), Attention(64, 8, n_kv_head=8)
    gqa.load_state_dict(mha.state_dict())
    x = torch.randn(3, 17, 64)
    assert_close(gqa(x), mha(x), what="GQA(n_kv_head=n_head) vs MHA")


def test_mha_equals_torch_multihead_attention():
    torch.manual_seed(0)
    ours = Attention(64, 8)
    ref = nn.MultiheadAttention(64, 8, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(ours.qkv.weight)
        ref.in_proj_bias.copy_(ours.qkv.bias)
        ref.out_proj.weight.copy_(ours.proj.weight)
        ref.out_proj.bias.copy_(ours.proj.bias)
    x = torch.randn(3, 17, 64)
    assert_close(ours(x), ref(x, x, x, need_weights=False)[0], what="MHA vs nn.MultiheadAttention")


@pytest.mark.parametrize("n_kv_head", [1, 2, 4])
def test_gqa_equals_mha_with_repeated_kv_weights(n_kv_head):
    torch.manual_seed(0)
    C, H = 64, 8
    d, g = C // H, H // n_kv_head
    gqa, mha = Attention(C, H, n_kv_head=n_kv_head), Attention(C, H)
    W, b = gqa.qkv.weight, gqa.qkv.bias
    q_w, k_w, v_w = W.split([C, n_kv_head * d, n_kv_head * d])
    q_b, k_b, v_b = b.split([C, n_kv_head * d, n_kv_head * d])

    def rep(t):  # repeat each kv head's rows for the g query heads of its group
        return t.view(n_kv_head, d, *t.shape[1:]).repeat_interleave(g, 0).reshape(C, *t.shape[1:])

    with torch.no_grad():
        mha.qkv.weight.copy_(torch.cat([q_w, rep(k_w), rep(v_w)]))
        mha.qkv.bias.copy_(torch.cat([q_b, rep(k_b), rep(v_b)]))
        mha.proj.load_state_dict(gqa.proj.state_dict())
    x = torch.randn(2, 17, C)
    assert_close(gqa(x), mha(x), what=f"GQA({n_kv_head}) vs MHA with repeated K/V")
    if n_kv_head == 1:  # MQA is GQA with one group
        assert gqa.n_kv_head == 1


@pytest.mark.parametrize("kw", [{}, {"n_kv_head": 2}, {"n_kv_head": 1}, {"q_rank": 16, "kv_rank": 8},
                                {"lowrank": "qk", "lowrank_dim": 12}])
def test_explicit_path_equals_sdpa(kw):
    torch.manual_seed(0)
    attn = Attention(64, 8, **kw)
    x = torch.randn(2, 33, 64)
    fast = attn(x)
    slow, maps = attn(x, return_attn=True)
    assert_close(slow, fast, what=f"explicit vs SDPA {kw}")
    assert maps.shape == (2, 8, 33, 33)
    assert_close(maps.sum(-1), torch.ones(2, 8, 33), what="attention rows sum to one")
    with explicit_attention():
        assert_close(attn(x), fast, what="explicit_attention() context")


def test_mla_with_full_ranks_and_identity_latents_is_mha():
    torch.manual_seed(0)
    C, H = 48, 6
    mla = Attention(C, H, q_rank=C, kv_rank=C, latent_norm=False)
    mha = Attention(C, H)
    with torch.no_grad():
        mla.q.down.weight.copy_(torch.eye(C))
        mla.kv.down.weight.copy_(torch.eye(C))
        mha.qkv.weight.copy_(torch.cat([mla.q.up.weight, mla.kv.up.weight]))
        mha.qkv.bias.copy_(torch.cat([mla.q.up.bias, mla.kv.up.bias]))
        mha.proj.load_state_dict(mla.proj.state_dict())
    x = torch.randn(2, 17, C)
    assert_close(mla(x), mha(x), what="MLA (full rank, identity latents) vs MHA")


def test_one_class_token_concat_is_the_usual_vit():
    torch.manual_seed(0)
    cfg = get_config("micro", n_cls=1, cls_head="concat")
    model = ViT(cfg).eval()
    x = torch.randn(2, 3, 32, 32)
    # the usual ViT written out: patches -> linear -> [cls; patches] + pos -> blocks -> norm -> head(token 0)
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
        assert_close(model(x), model.head(feats[:, n_cls:].mean(1)), what=f"gap head, n_cls={n_cls}")
        if n_cls:                                                    # the class tokens are left out of the mean
            assert not torch.allclose(model(x), model.head(feats.mean(1)))


def test_overlapping_patch_kernel_reads_a_centred_window():
    """Token (i, j) of a kernel-k embedding is the linear map of the k x k window centred on patch (i, j)."""
    torch.manual_seed(0)
    p, k = 4, 8
    emb = PatchEmbed(p, 3, 24, kernel=k)
    x = torch.randn(2, 3, 32, 32)
    tokens = emb(x)
    assert tokens.shape == (2, 64, 24)
    padded = F.pad(x, [(k - p) // 2] * 4)
    windows = F.unfold(padded, kernel_size=k, stride=p).transpose(1, 2)          # (B, 64, 3*k*k)
    assert_close(tokens, F.linear(windows, emb.proj.weight.flatten(1), emb.proj.bias), what="kernel 8 vs windows")
    # the patch itself sits in the middle of its window: a kernel-k embedding whose weights are zero outside
    # the central p x p is the plain patch embedding
    plain = PatchEmbed(p, 3, 24)
    with torch.no_grad():
        emb.proj.weight.zero_()
        emb.proj.weight[:, :, 2:6, 2:6] = plain.proj.weight
        emb.proj.bias.copy_(plain.proj.bias)
    assert_close(emb(x), plain(x), what="kernel 8 with a zero border vs patch 4")
    cfg = get_config("micro", patch_size=4, patch_kernel=8)
    assert count_params(cfg) == sum(q.numel() for q in ViT(cfg).parameters())


def test_patch_conv_equals_linear_map_of_flattened_patches():
    torch.manual_seed(0)
    emb = PatchEmbed(4, 3, 24)
    x = torch.randn(2, 3, 32, 32)
    assert_close(emb(x), emb.as_linear(patchify(x, 4)), what="conv vs linear on patches")
    lin = nn.Linear(48, 24)
    with torch.no_grad():
        lin.weight.copy_(emb.proj.weight.flatten(1))
        lin.bias.copy_(emb.proj.bias)
    assert_close(emb(x), lin(patchify(x, 4)), what="conv vs nn.Linear")


@pytest.mark.parametrize("p", [2, 4, 8, 16])
def test_unpatchify_inverts_patchify(p):
    x = torch.randn(2, 3, 32, 32)
    patches = patchify(x, p)
    assert patches.shape == (2, (32 // p) ** 2, 3 * p * p)
    assert torch.equal(unpatchify(patches, p, 32), x)
    # patch 0 is the top-left p x p window, flattened channel-major
    assert torch.equal(patches[0, 0], x[0, :, :p, :p].flatten())


def test_sincos_positions_are_fixed_and_distinct():
    pe = sincos_2d(8, 64)
    assert pe.shape == (64, 64)
    sim = F.normalize(pe, dim=1) @ F.normalize(pe, dim=1).T
    off_diag = sim[~torch.eye(64, dtype=bool)]
    assert off_diag.max() < 0.999  # every position differs from every other
    model = ViT(get_config("micro", pos_embed="sincos"))
    assert "tokens.pos_embed" not in dict(model.named_parameters())


def test_attention_maps_have_one_map_per_block():
    cfg = get_config("micro", n_cls=2)
    maps = ViT(cfg).attention_maps(torch.randn(3, 3, 32, 32))
    assert maps.shape == (cfg.n_layer, 3, cfg.n_head, cfg.n_tokens, cfg.n_tokens)


def test_flops_are_counted_for_every_matmul():
    cfg = get_config("micro", drop_path=0.0)
    model = ViT(cfg)
    flops = poorvit.flops_per_image(model)["total"]
    C, T, N, L = cfg.n_embd, cfg.n_tokens, cfg.n_patches, cfg.n_layer
    per_block = 2 * T * (C * 3 * C + C * C + 2 * C * cfg.mlp_hidden) + 2 * 2 * T * T * C
    expected = L * per_block + 2 * N * (3 * cfg.patch_size ** 2) * C + 2 * C * cfg.n_classes
    assert flops == expected


# ---- bad configs ----------------------------------------------------------------------------------------

BAD = [
    (dict(n_embd=100, n_head=12), "n_head=12", "divide n_embd=100"),
    (dict(n_head=12, n_kv_head=5), "n_kv_head=5", "divide n_head=12"),
    (dict(n_kv_head=0), "n_kv_head=0", "divide n_head"),
    (dict(q_rank=-1), "q_rank=-1", "narrower than n_embd=192"),
    (dict(kv_rank=192), "kv_rank=192", "1 .. 191"),
    (dict(q_rank=500), "q_rank=500", "narrower than n_embd"),
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

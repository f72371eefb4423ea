"""poorvit.attention: every variant is built from a config, the special cases meet where they should
(each equivalence reports max and mean difference), the explicit path equals the fused one and is
chosen per module, and the maps come from a method."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import assert_close

from poorvit.attention import Attention, explicit_attention
from poorvit.config import ViTConfig, get_config
from poorvit.model import ViT


def attention(n_embd: int = 64, n_head: int = 8, **overrides) -> Attention:
    """An `Attention` of a config `n_embd` wide with `n_head` heads and `overrides`."""
    return Attention(ViTConfig(n_embd=n_embd, n_head=n_head, **overrides))


def test_gqa_with_all_kv_heads_is_mha():
    torch.manual_seed(0)
    mha, gqa = attention(), attention(n_kv_head=8)
    gqa.load_state_dict(mha.state_dict())
    x = torch.randn(3, 17, 64)
    assert_close(gqa(x), mha(x), what="GQA(n_kv_head=n_head) vs MHA")


def test_mha_equals_torch_multihead_attention():
    torch.manual_seed(0)
    ours = attention()
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
    gqa, mha = attention(C, H, n_kv_head=n_kv_head), attention(C, H)
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


def test_package_gqa_equals_torch_sdpa_with_enable_gqa():
    torch.manual_seed(0)
    attn = attention(n_kv_head=2)
    x = torch.randn(2, 17, 64)
    q, k, v = attn.project(x)
    ref = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    y = attn.proj(ref.transpose(1, 2).reshape(2, 17, 64))
    assert_close(attn(x), y, what="Attention(GQA) vs F.sdpa(enable_gqa=True)")


@pytest.mark.parametrize("kw", [{}, {"n_kv_head": 2}, {"n_kv_head": 1},
                                {"q_rank": 16, "kv_rank": 8}, {"lowrank": "qk", "lowrank_dim": 12}])
def test_explicit_path_equals_sdpa(kw):
    torch.manual_seed(0)
    attn = attention(**kw)
    x = torch.randn(2, 33, 64)
    assert attn.explicit is False                                   # the fused path by default
    fast = attn(x)
    attn.explicit = True
    slow = attn(x)
    attn.explicit = False
    assert_close(slow, fast, what=f"explicit vs SDPA {kw}")
    maps = attn.maps(x)
    assert maps.shape == (2, 8, 33, 33)
    assert_close(maps.sum(-1), torch.ones(2, 8, 33), what="attention rows sum to one")
    with explicit_attention(attn):
        assert attn.explicit
        assert_close(attn(x), fast, what="explicit_attention() context")
    assert attn.explicit is False


def test_explicit_attention_sets_every_module_and_restores_each():
    model = ViT(get_config("micro"))
    attns = [b.attn for b in model.blocks]
    attns[1].explicit = True                                        # a module's own choice
    with explicit_attention(model):
        assert all(a.explicit for a in attns)
        with explicit_attention(model, enabled=False):
            assert not any(a.explicit for a in attns)
        assert all(a.explicit for a in attns)
    assert [a.explicit for a in attns] == [False, True]
    with pytest.raises(RuntimeError):                               # restored even on an error
        with explicit_attention(model):
            raise RuntimeError
    assert [a.explicit for a in attns] == [False, True]


def test_mla_with_full_ranks_and_identity_latents_is_mha():
    torch.manual_seed(0)
    C, H = 48, 6
    mla = attention(C, H, q_rank=C, kv_rank=C)                   # full rank: ViTConfig allows it
    mla.q.norm, mla.kv.norm = nn.Identity(), nn.Identity()       # latents without their RMSNorm
    mha = attention(C, H)
    with torch.no_grad():
        mla.q.down.weight.copy_(torch.eye(C))
        mla.kv.down.weight.copy_(torch.eye(C))
        mha.qkv.weight.copy_(torch.cat([mla.q.up.weight, mla.kv.up.weight]))
        mha.qkv.bias.copy_(torch.cat([mla.q.up.bias, mla.kv.up.bias]))
        mha.proj.load_state_dict(mla.proj.state_dict())
    x = torch.randn(2, 17, C)
    assert_close(mla(x), mha(x), what="MLA (full rank, identity latents) vs MHA")


@pytest.mark.parametrize("kw,modules", [
    ({}, {"qkv", "proj"}),
    ({"n_kv_head": 2}, {"qkv", "proj"}),
    ({"q_rank": 16, "kv_rank": 8}, {"q", "kv", "proj"}),
    ({"kv_rank": 8}, {"q", "kv", "proj"}),
    ({"lowrank": "kv", "lowrank_dim": 12}, {"q", "k", "v", "proj"}),
])
def test_attention_builds_the_modules_its_config_names(kw, modules):
    attn = attention(**kw)
    assert {n for n, _ in attn.named_children()} == modules
    cfg = ViTConfig(n_embd=64, n_head=8, **kw)
    norms = [m for m in attn.modules() if isinstance(m, nn.RMSNorm)]
    assert len(norms) == bool(cfg.q_rank) + bool(cfg.kv_rank)      # MLA latents only
    assert all(m.bias is not None for n, m in attn.named_modules()
               if isinstance(m, nn.Linear) and not n.endswith("down"))
    no_bias = attention(qkv_bias=False, **kw)
    biased = [n for n, m in no_bias.named_modules()
              if isinstance(m, nn.Linear) and m.bias is not None]
    assert biased == ["proj"]                             # the output projection keeps its bias

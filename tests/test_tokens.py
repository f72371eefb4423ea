"""poorvit.tokens: the patch conv is a linear map of flattened patches, patchify and unpatchify
are inverse, overlapping windows are centred on their patch, sin-cos positions are fixed and
distinct."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import assert_close

from poorvit.config import get_config
from poorvit.cost import count_params
from poorvit.model import ViT
from poorvit.tokens import PatchEmbed, patchify, sincos_2d, unpatchify


def test_overlapping_patch_kernel_reads_a_centred_window():
    """Token (i, j) of a kernel-k embedding is the linear map of the k x k window centred on patch
    (i, j)."""
    torch.manual_seed(0)
    p, k = 4, 8
    emb = PatchEmbed(p, 3, 24, kernel=k)
    x = torch.randn(2, 3, 32, 32)
    tokens = emb(x)
    assert tokens.shape == (2, 64, 24)
    padded = F.pad(x, [(k - p) // 2] * 4)
    windows = F.unfold(padded, kernel_size=k, stride=p).transpose(1, 2)          # (B, 64, 3*k*k)
    assert_close(tokens, F.linear(windows, emb.proj.weight.flatten(1), emb.proj.bias),
                 what="kernel 8 vs windows")
    # the patch itself sits in the middle of its window: a kernel-k embedding whose weights are
    # zero outside the central p x p is the plain patch embedding
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

"""Init: the default init's table holds, and whitening whitens real image patches."""
import matplotlib.cbook as cbook
import numpy as np
import pytest
import torch
from PIL import Image

from poorvit.config import get_config
from poorvit.init import (patch_second_moment, second_moment, stride1_patches, whiten_patch_embed,
                          whitening_filters)
from poorvit.model import ViT


@pytest.fixture(scope="module")
def real_images():
    """32x32 tiles of a real photograph (matplotlib's sample image), normalized per channel."""
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        img = np.asarray(Image.open(f).convert("RGB").resize((256, 320)), dtype=np.float32) / 255
    x = torch.from_numpy(img).permute(2, 0, 1)                       # (3, 320, 256)
    tiles = x.unfold(1, 32, 32).unfold(2, 32, 32).permute(1, 2, 0, 3, 4).reshape(-1, 3, 32, 32)
    mean, std = tiles.mean((0, 2, 3), keepdim=True), tiles.std((0, 2, 3), keepdim=True)
    return (tiles - mean) / std


def test_whitened_patches_have_identity_second_moment(real_images):
    patches = stride1_patches(real_images, 4)
    assert patches.shape == (len(real_images) * 29 * 29, 48)
    filters, eigvals = whitening_filters(second_moment(patches), eps=1e-9)
    white = patches.double() @ filters.double().T
    cov = second_moment(white)
    err = (cov - torch.eye(48, dtype=torch.float64)).abs()
    print(f"whitened second moment vs identity: max diff {err.max():.2e}, "
          f"mean diff {err.mean():.2e}")
    assert err.max() < 1e-3
    # before whitening the patches are far from white: neighbours correlate
    assert (second_moment(patches) - torch.eye(48, dtype=torch.float64)).abs().max() > 0.5
    # filters come out ordered by eigenvalue, largest first; the spectrum spans orders of magnitude
    assert torch.all(eigvals[:-1] >= eigvals[1:])
    assert eigvals[0] / eigvals[-1] > 100


def test_eps_damps_only_the_small_directions(real_images):
    patches = stride1_patches(real_images, 4)
    filters, eigvals = whitening_filters(second_moment(patches), eps=1e-2)
    var = second_moment(patches.double() @ filters.double().T).diagonal()
    expected = eigvals.double() / (eigvals.double() + 1e-2)
    torch.testing.assert_close(var, expected, atol=1e-6, rtol=1e-4)
    assert var[0] > 0.99 and var[-1] < var[0]


@pytest.mark.parametrize("freeze", [False, True])
def test_whiten_patch_embed_writes_first_channels(real_images, freeze):
    torch.manual_seed(0)
    model = ViT(get_config("micro", patch_size=4, n_embd=64))
    before = model.tokens.patch.proj.weight.detach().clone()
    whiten_patch_embed(model, real_images, eps=1e-2, freeze=freeze)
    w = model.tokens.patch.proj.weight
    filters, _ = whitening_filters(second_moment(stride1_patches(real_images, 4)), 1e-2)
    torch.testing.assert_close(w[:48].flatten(1), filters)
    assert torch.equal(w[48:], before[48:])
    model(real_images[:4]).sum().backward()
    frozen_grad = w.grad[:48].abs().sum().item()
    assert (frozen_grad == 0) == freeze
    assert w.grad[48:].abs().sum() > 0
    assert model.tokens.patch.frozen_channels == (48 if freeze else 0)


def test_default_init_follows_its_table():
    torch.manual_seed(0)
    model = ViT(get_config("paper", init="course"))     # the paper preset runs the study's init
    qkv = model.blocks[0].attn.qkv
    assert abs(qkv.weight.std().item() - 0.02) < 0.003 and qkv.weight.abs().max() <= 0.04 + 1e-6
    assert torch.all(qkv.bias == 0) and torch.all(model.blocks[0].norm1.weight == 1)
    assert abs(model.tokens.pos_embed.std().item() - 0.02) < 0.003


def test_second_moment_in_chunks_equals_all_at_once(real_images):
    whole = second_moment(stride1_patches(real_images, 4))
    chunked = patch_second_moment(real_images, 4, chunk=7)
    err = (whole - chunked).abs().max().item()
    print(f"second moment in chunks of 7 images vs all at once: max diff {err:.2e}")
    assert err < 1e-12


def test_whitening_an_overlapping_window_fills_every_channel(real_images):
    """A kernel-8 window has 192 values; a 64-wide token takes the 64 leading whitening filters."""
    model = ViT(get_config("micro", patch_size=4, patch_kernel=8, n_embd=64))
    eigvals = whiten_patch_embed(model, real_images, eps=1e-2)
    assert eigvals.shape == (192,)
    filters, _ = whitening_filters(patch_second_moment(real_images, 8), 1e-2)
    torch.testing.assert_close(model.tokens.patch.proj.weight.flatten(1), filters[:64])

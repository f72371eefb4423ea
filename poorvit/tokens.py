"""From pixels to tokens: patchify, the patch embedding, positional embeddings, class tokens.

A ViT cuts the image into non-overlapping `p x p` patches, maps each flattened patch linearly to a
token of width `n_embd` (Dosovitskiy et al., "An Image is Worth 16x16 Words", arXiv 2010.11929),
adds a position to each token and prepends `n_cls` learned class tokens. The linear map is computed
as a convolution with kernel and stride `p`, which is the same arithmetic (a unit test holds them
equal).

Shapes: images (B, 3, H, W); patches (B, N, 3*p*p) flattened in (channel, row, column) order, the
order of a conv kernel, so `conv.weight.flatten(1)` is the matrix of the linear map.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ViTConfig


def patchify(images: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, C*p*p): non-overlapping patches in raster order, each flattened
    in (channel, row, column) order."""
    B, C, H, W = images.shape
    if H % p or W % p:
        raise ValueError(f"patch size {p} must divide the image size {H}x{W}")
    return F.unfold(images, kernel_size=p, stride=p).transpose(1, 2)


def unpatchify(patches: torch.Tensor, p: int, image_size: int | tuple[int, int],
               channels: int = 3) -> torch.Tensor:
    """Inverse of `patchify`: (B, N, C*p*p) -> (B, C, H, W)."""
    H, W = (image_size, image_size) if isinstance(image_size, int) else image_size
    if patches.shape[-1] != channels * p * p or patches.shape[1] != (H // p) * (W // p):
        raise ValueError(f"patches of shape {tuple(patches.shape)} do not tile a "
                         f"{channels}x{H}x{W} image with p={p}")
    return F.fold(patches.transpose(1, 2), output_size=(H, W), kernel_size=p, stride=p)


def sincos_2d(grid: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Fixed 2-D sin-cos positions, (grid*grid, dim): a quarter of the channels each for sin/cos of
    x and y.

    As in MAE (He et al., arXiv 2111.06377): each axis gets the frequencies
    `1 / temperature^(k / (dim/4))`.
    """
    if dim % 4:
        raise ValueError(f"2-D sin-cos positions need dim divisible by 4, got {dim}")
    axis = torch.arange(grid, dtype=torch.float64)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    omega = 1.0 / temperature ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    ox, oy = x.flatten()[:, None] * omega, y.flatten()[:, None] * omega
    return torch.cat([ox.sin(), ox.cos(), oy.sin(), oy.cos()], dim=1).float()


class PatchEmbed(nn.Module):
    """Patch embedding: a conv with kernel = stride = p, i.e. one linear map applied to every patch.

    With `kernel` > p each token reads a `kernel x kernel` window centred on its patch (overlapping
    its neighbours by (kernel - p) / 2 pixels on each side, zero-padded at the image border): still
    one token per patch and one linear map, on a larger input."""

    def __init__(self, patch_size: int, in_chans: int, n_embd: int, kernel: int | None = None):
        super().__init__()
        self.patch_size = patch_size
        kernel = kernel or patch_size
        self.proj = nn.Conv2d(in_chans, n_embd, kernel_size=kernel, stride=patch_size,
                              padding=(kernel - patch_size) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, N, C)
        return self.proj(x).flatten(2).transpose(1, 2)

    def as_linear(self, patches: torch.Tensor) -> torch.Tensor:
        """The same map on flattened patches: (B, N, 3*p*p) -> (B, N, C) (non-overlapping patches
        only)."""
        return F.linear(patches, self.proj.weight.flatten(1), self.proj.bias)


class ConvStem(nn.Module):
    """A convolutional stem in place of the patch embedding (Xiao et al., "Early Convolutions Help
    Transformers See Better", arXiv 2106.14881): log2(p) 3x3 convolutions of stride 2, each with
    BatchNorm and ReLU, the channels doubling up to `n_embd` (for p = 4 on 3 channels: 3 -> C/2 ->
    C), then a 1x1 convolution to `n_embd`. Still one token per p x p patch, (B, 3, H, W) ->
    (B, N, C), but every token sees a 7 x 7 window (p = 4) through two non-linear layers instead
    of one linear map of its own pixels: the local prior of a CNN, before the attention."""

    def __init__(self, patch_size: int, in_chans: int, n_embd: int):
        super().__init__()
        self.patch_size = patch_size
        n = patch_size.bit_length() - 1                                   # stride-2 convolutions
        widths = [in_chans] + [max(n_embd >> (n - 1 - i), 8) for i in range(n)]
        layers = []
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        self.convs = nn.Sequential(*layers)
        self.proj = nn.Conv2d(widths[-1], n_embd, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, N, C)
        return self.proj(self.convs(x)).flatten(2).transpose(1, 2)


class TokenEmbed(nn.Module):
    """Images to the token sequence: [class tokens; patch tokens] + positions, (B, n_cls + N, C).

    `pos_embed="learned"` holds one learned vector per token, class tokens included (as timm and the
    study's code do); `"sincos"` adds fixed 2-D sin-cos positions to the patch tokens and none to
    the class tokens; `"none"` adds nothing (attention is then blind to where a patch came from).

    Images of another size than `cfg.image_size` (a grid of gh x gw patches instead of grid x grid)
    get positions for their grid: the learned patch positions resized bicubically over the 2-D grid
    (as timm's `resample_abs_pos_embed` and DeiT's fine-tuning at a higher resolution do), the
    class tokens' positions kept as they are; sin-cos positions computed for the new grid.
    """

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        C = cfg.n_embd
        self.n_cls = cfg.n_cls
        self.patch = (ConvStem(cfg.patch_size, cfg.in_chans, C) if cfg.stem == "conv"
                      else PatchEmbed(cfg.patch_size, cfg.in_chans, C, cfg.kernel))
        # no class token with n_cls=0
        self.cls_token = nn.Parameter(torch.zeros(1, cfg.n_cls, C)) if cfg.n_cls else None
        self.pos_kind = cfg.pos_embed
        if cfg.pos_embed == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, cfg.n_tokens, C))
        elif cfg.pos_embed == "sincos":
            pos = torch.cat([torch.zeros(cfg.n_cls, C), sincos_2d(cfg.grid, C)])[None]
            self.register_buffer("pos_embed", pos, persistent=False)
        else:
            self.pos_embed = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) -> tokens (B, T, C): class tokens first, then the N patch tokens,
        positions added."""
        x = self.patch(images)                                          # (B, N, C)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, T, C)
        if self.pos_embed is None:
            return x
        p = self.patch.patch_size
        return x + self.positions(images.shape[-2] // p, images.shape[-1] // p)

    def positions(self, gh: int, gw: int) -> torch.Tensor:
        """Positions (1, n_cls + gh*gw, C) for a grid of gh x gw patches: the stored ones for the
        config's grid, else resized to this grid (class-token positions unchanged)."""
        pos, k = self.pos_embed, self.n_cls
        grid = round((pos.shape[1] - k) ** 0.5)
        if (gh, gw) == (grid, grid):
            return pos
        C = pos.shape[-1]
        if self.pos_kind == "sincos" and gh == gw:
            patches = sincos_2d(gh, C).to(pos)[None]
        else:                                           # bicubic over the 2-D grid of positions
            square = pos[:, k:].reshape(1, grid, grid, C).permute(0, 3, 1, 2)  # (1, C, g, g)
            patches = F.interpolate(square.float(), size=(gh, gw), mode="bicubic",
                                    align_corners=False).to(pos.dtype)
            patches = patches.flatten(2).transpose(1, 2)                       # (1, gh*gw, C)
        return torch.cat([pos[:, :k], patches], dim=1)


__all__ = ["patchify", "unpatchify", "sincos_2d", "PatchEmbed", "ConvStem", "TokenEmbed"]

"""Restormer (Zamir et al., "Restormer: Efficient Transformer for High-Resolution Image
Restoration", CVPR 2022), written from the paper.

The official code is under a non-commercial licence, so nothing here is taken from it; only the
module and parameter names follow its published checkpoints (listed in ../shared/reference), so
those load with `strict=True`.
"""
import torch
import torch.nn.functional as F
from torch import nn

from colora.archs.registry import register_arch
from colora.archs.layers import pad_to_multiple
from colora.errors import OptionsError

LAYER_NORM_TYPES = ("WithBias", "BiasFree")


class WithBiasLayerNorm(nn.Module):
    """(x - mean) / std * weight + bias over the last dimension (plain LayerNorm, eps 1e-5)."""

    def __init__(self, channels, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)


class BiasFreeLayerNorm(nn.Module):
    """x / std * weight: the std is taken about the mean, but the mean is not subtracted.

    F.layer_norm cannot express this, so it is computed by hand in float32 (bf16 variances of
    large activations are too coarse).
    """

    def __init__(self, channels, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.eps = eps

    def forward(self, x):
        x32 = x.float()
        var = x32.var(dim=-1, keepdim=True, unbiased=False)
        return (x32 * torch.rsqrt(var + self.eps) * self.weight.float()).to(x.dtype)


class LayerNorm(nn.Module):
    """Per-pixel LayerNorm over the channels of a (B, C, H, W) map.

    The norm runs on a (B, H, W, C) view, which is contiguous (no copy) for channels_last input.
    """

    def __init__(self, channels, layer_norm_type="WithBias"):
        super().__init__()
        norm = WithBiasLayerNorm if layer_norm_type == "WithBias" else BiasFreeLayerNorm
        self.body = norm(channels)

    def forward(self, x):
        return self.body(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Attention(nn.Module):
    """Multi-Dconv head Transposed Attention, MDTA (Sec. 3.1).

    Attention is taken across channels, not pixels: the map is (C/heads x C/heads), so the cost is
    linear in the image size. q, k, v come from a 1x1 conv plus a 3x3 depthwise conv (local
    context before the global channel mixing); q and k are L2-normalised along the pixels and the
    logits scaled by a learned per-head temperature.
    """

    def __init__(self, dim, num_heads, bias=False):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        q, k, v = (t.reshape(b, self.num_heads, c // self.num_heads, h * w) for t in (q, k, v))
        # Normalise in fp32: under bf16 autocast the sum of squares over h*w pixels is lossy.
        q = F.normalize(q.float(), dim=-1)
        k = F.normalize(k.float(), dim=-1)
        attn = (q @ k.transpose(-2, -1)) * self.temperature
        attn = attn.softmax(dim=-1, dtype=torch.float32).to(v.dtype)
        out = (attn @ v).reshape(b, c, h, w)
        return self.project_out(out)


class FeedForward(nn.Module):
    """Gated-Dconv Feed-forward Network, GDFN (Sec. 3.2).

    Two parallel 1x1 + 3x3 depthwise paths; GELU of one gates the other, so the block controls
    which features flow on, and the depthwise conv adds local structure.
    """

    def __init__(self, dim, ffn_expansion_factor=2.66, bias=False):
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x):
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class TransformerBlock(nn.Module):
    """Pre-norm residual block: x + MDTA(LN(x)), then + GDFN(LN(x)) (Fig. 2)."""

    def __init__(self, dim, num_heads, ffn_expansion_factor, bias, layer_norm_type):
        super().__init__()
        self.norm1 = LayerNorm(dim, layer_norm_type)
        self.attn = Attention(dim, num_heads, bias)
        self.norm2 = LayerNorm(dim, layer_norm_type)
        self.ffn = FeedForward(dim, ffn_expansion_factor, bias)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class OverlapPatchEmbed(nn.Module):
    """3x3 conv embedding of the image: overlapping patches, unlike ViT's strided ones."""

    def __init__(self, in_channels, dim, bias=False):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, 3, padding=1, bias=bias)

    def forward(self, x):
        return self.proj(x)


class Downsample(nn.Module):
    """Halve the resolution, double the channels: 3x3 conv to n/2 channels, pixel-unshuffle."""

    def __init__(self, channels, bias=False):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels // 2, 3, padding=1, bias=bias),
                                  nn.PixelUnshuffle(2))

    def forward(self, x):
        return self.body(x)


class Upsample(nn.Module):
    """Double the resolution, halve the channels: 3x3 conv to 2n channels, pixel-shuffle."""

    def __init__(self, channels, bias=False):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels * 2, 3, padding=1, bias=bias),
                                  nn.PixelShuffle(2))

    def forward(self, x):
        return self.body(x)


@register_arch
class Restormer(nn.Module):
    """Four-level U-Net of Transformer blocks with a refinement stage and a global residual.

    Encoder levels at dim, 2dim, 4dim, latent at 8dim; decoder levels concatenate the skip and
    (below level 1) reduce channels with a 1x1 conv; level 1 and the refinement stay at 2dim.
    `dual_pixel_task` (6-channel dual-pixel input for defocus deblurring) drops the global
    residual and adds a 1x1 skip from the patch embedding instead.
    """

    LIMITS = {"inp_channels": (1, 64), "out_channels": (1, 64), "dim": (1, 1024), "num_blocks": (0, 128),
              "num_refinement_blocks": (0, 128), "heads": (1, 64), "ffn_expansion_factor": (0.01, 16)}

    PARTS = {
        "intro": r"^patch_embed(\.|$)",
        "encoder": r"^(encoder_level[1-3]|down\d_\d)(\.|$)",
        "middle": r"^latent(\.|$)",
        "decoder": r"^(up\d_\d|reduce_chan_level\d|decoder_level[1-3]|refinement|skip_conv)(\.|$)",
        "ending": r"^output(\.|$)",
    }

    def __init__(self, inp_channels=3, out_channels=3, dim=48, num_blocks=(4, 6, 6, 8),
                 num_refinement_blocks=4, heads=(1, 2, 4, 8), ffn_expansion_factor=2.66,
                 bias=False, LayerNorm_type="WithBias", dual_pixel_task=False):
        super().__init__()
        if LayerNorm_type not in LAYER_NORM_TYPES:
            raise OptionsError(f"unknown Restormer LayerNorm_type '{LayerNorm_type}'; "
                               f"use one of: {', '.join(LAYER_NORM_TYPES)}")
        if not dual_pixel_task and inp_channels != out_channels:
            raise OptionsError(f"Restormer adds its input to its output, so inp_channels "
                               f"({inp_channels}) must equal out_channels ({out_channels}) "
                               f"unless dual_pixel_task is set")

        def stage(channels, level_heads, n):
            return nn.Sequential(*[TransformerBlock(channels, level_heads, ffn_expansion_factor,
                                                    bias, LayerNorm_type) for _ in range(n)])

        self.patch_embed = OverlapPatchEmbed(inp_channels, dim, bias)
        self.encoder_level1 = stage(dim, heads[0], num_blocks[0])
        self.down1_2 = Downsample(dim, bias)
        self.encoder_level2 = stage(dim * 2, heads[1], num_blocks[1])
        self.down2_3 = Downsample(dim * 2, bias)
        self.encoder_level3 = stage(dim * 4, heads[2], num_blocks[2])
        self.down3_4 = Downsample(dim * 4, bias)
        self.latent = stage(dim * 8, heads[3], num_blocks[3])

        self.up4_3 = Upsample(dim * 8, bias)
        self.reduce_chan_level3 = nn.Conv2d(dim * 8, dim * 4, 1, bias=bias)
        self.decoder_level3 = stage(dim * 4, heads[2], num_blocks[2])
        self.up3_2 = Upsample(dim * 4, bias)
        self.reduce_chan_level2 = nn.Conv2d(dim * 4, dim * 2, 1, bias=bias)
        self.decoder_level2 = stage(dim * 2, heads[1], num_blocks[1])
        self.up2_1 = Upsample(dim * 2, bias)
        self.decoder_level1 = stage(dim * 2, heads[0], num_blocks[0])  # no reduction at level 1
        self.refinement = stage(dim * 2, heads[0], num_refinement_blocks)

        self.dual_pixel_task = dual_pixel_task
        if dual_pixel_task:
            self.skip_conv = nn.Conv2d(dim, dim * 2, 1, bias=bias)
        self.output = nn.Conv2d(dim * 2, out_channels, 3, padding=1, bias=bias)
        self.pad_multiple = 8  # three 2x downsamplings

    def forward(self, inp_img):
        h, w = inp_img.shape[-2:]
        inp_img = pad_to_multiple(inp_img, self.pad_multiple, mode="reflect")

        emb = self.patch_embed(inp_img)
        enc1 = self.encoder_level1(emb)
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        x = self.latent(self.down3_4(enc3))

        x = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(x), enc3], 1)))
        x = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(x), enc2], 1)))
        x = self.refinement(self.decoder_level1(torch.cat([self.up2_1(x), enc1], 1)))

        if self.dual_pixel_task:
            out = self.output(x + self.skip_conv(emb))
        else:
            out = self.output(x) + inp_img
        return out[..., :h, :w]

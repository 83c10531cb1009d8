"""NAFNet (Chen et al., "Simple Baselines for Image Restoration", ECCV 2022).

Module and parameter names mirror the official code (megvii-research/NAFNet, MIT) so that its
published checkpoints load with `strict=True`; ../shared/reference lists every key.
`NAFNetLocal` adds the test-time local converter (TLC, Chu et al. 2022): the global average pool of
simplified channel attention becomes a local box mean of ~1.5x the training feature map, so a model
trained on 256-pixel patches sees the same statistics on a full-size photo.
"""
import torch
import torch.nn.functional as F
from torch import nn

from colora.archs.registry import register_arch
from colora.archs.layers import LayerNorm2d, pad_to_multiple


class SimpleGate(nn.Module):
    """Split the channels in two halves and multiply them (replaces the activation, Sec. 3.3)."""

    def forward(self, x):
        x1, x2 = x.chunk(2, dim=1)
        return x1 * x2


def _window_sums(x, k, dim):
    """Sums of every run of `k` consecutive entries along `dim` ('valid' positions only).

    The first window is one vectorised reduction; the others follow by adding the entry that enters
    and removing the one that leaves (a cumsum over n - k entries, not n): exact like an integral
    image, but a full-size cumsum -- slow on CPU, and slower still on channels_last -- is avoided."""
    n = x.shape[dim]
    first = x.narrow(dim, 0, k).sum(dim, keepdim=True)
    if k == n:
        return first
    steps = x.narrow(dim, k, n - k) - x.narrow(dim, 0, n - k)
    return torch.cat([first, first + steps.cumsum(dim)], dim)


class LocalAvgPool2d(nn.Module):
    """TLC's local average pool: a box mean of size `kernel_size` with replicate padding.

    If the kernel covers the whole feature map this is exactly the global pool used in training.
    Otherwise it is the exact 'valid' box mean padded back to h x w by replication, the extra
    row/column going to the bottom/right (as the official integral-image version). NAFBlock applies
    its 1x1 conv to the small valid map *before* the padding (a pointwise conv commutes with
    replication), so TLC costs no full-size convolution.
    """

    def __init__(self, kernel_size):
        super().__init__()
        self.kernel_size = tuple(kernel_size)
        self.for_export = False  # True: `traced`, the branch-free form (colora.inference.onnx)

    def valid(self, x):
        """The box means at the positions where the window fits (fp32 sums), in x's dtype."""
        h, w = x.shape[-2:]
        kh, kw = min(h, self.kernel_size[0]), min(w, self.kernel_size[1])
        if kh == h and kw == w:
            return F.adaptive_avg_pool2d(x, 1)
        acc = x if x.dtype in (torch.float32, torch.float64) else x.float()
        # Reduce along the axes as they lie in memory: on a channels_last tensor torch's sum over H
        # of the NCHW view is ~12x slower than over dim 1 of the (contiguous) NHWC view.
        nhwc = acc.dim() == 4 and not acc.is_contiguous() and acc.is_contiguous(memory_format=torch.channels_last)
        view, (dh, dw) = (acc.permute(0, 2, 3, 1), (1, 2)) if nhwc else (acc, (-2, -1))
        sums = _window_sums(_window_sums(view, kh, dh), kw, dw)
        sums = sums.permute(0, 3, 1, 2) if nhwc else sums
        return (sums / (kh * kw)).to(x.dtype)

    @staticmethod
    def expand(out, h, w):
        """Replicate the valid map back to h x w (a 1x1 map is left to broadcast)."""
        _h, _w = out.shape[-2:]
        if _h == 1 and _w == 1:
            return out
        return F.pad(out, ((w - _w) // 2, (w - _w + 1) // 2, (h - _h) // 2, (h - _h + 1) // 2), mode="replicate")

    def forward(self, x):
        return self.traced(x) if self.for_export else self.expand(self.valid(x), *x.shape[-2:])

    def traced(self, x):
        """The same means with no branch on the input size, for graphs exported with dynamic height
        and width (ONNX): every pixel reads the integral image at its clamped window."""
        acc = x if x.dtype in (torch.float32, torch.float64) else x.float()
        for dim, k in ((-2, self.kernel_size[0]), (-1, self.kernel_size[1])):
            acc = _clamped_window_means(acc, k, dim)
        return acc.to(x.dtype)


def _clamped_window_means(x, kernel, dim):
    """Means of min(n, kernel) entries along `dim` at each position's window, the window moved
    inside the axis (= the valid means replicate-padded, as LocalAvgPool2d). The window arithmetic
    is on tensors, not sizes, so an exported graph stays small and holds for every n."""
    pos = torch.arange(x.shape[dim], device=x.device)
    n = pos[-1:] + 1
    k = n.clamp(max=kernel)
    start = torch.minimum((pos - torch.div(k - 1, 2, rounding_mode="floor")).clamp(min=0), n - k)
    s = torch.cat([torch.zeros_like(x.narrow(dim, 0, 1)), x.cumsum(dim)], dim)
    return (s.index_select(dim, start + k) - s.index_select(dim, start)) / k.to(x.dtype)


class NAFBlock(nn.Module):
    """x + beta * SCA-gated conv branch, then + gamma * gated FFN (Fig. 3c); beta, gamma init 0."""

    def __init__(self, c, dw_expand=2, ffn_expand=2, pool=None):
        super().__init__()
        dw = c * dw_expand
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        # Simplified channel attention: pooled statistics -> 1x1 conv -> multiply (no sigmoid).
        self.sca = nn.Sequential(pool or nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, 1))
        self.sg = SimpleGate()
        ffn = c * ffn_expand
        self.conv4 = nn.Conv2d(c, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, c, 1)
        self.norm1 = LayerNorm2d(c)
        self.norm2 = LayerNorm2d(c)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, inp):
        x = self.sg(self.conv2(self.conv1(self.norm1(inp))))
        pool, conv = self.sca[0], self.sca[1]
        if isinstance(pool, LocalAvgPool2d) and not pool.for_export:  # conv on the small valid map, then replicate (exact)
            x = self.conv3(x * pool.expand(conv(pool.valid(x)), *x.shape[-2:]))
        else:
            x = self.conv3(x * conv(pool(x)))
        y = torch.addcmul(inp, x, self.beta)  # inp + x * beta in one pass over memory
        x = self.conv5(self.sg(self.conv4(self.norm2(y))))
        return torch.addcmul(y, x, self.gamma)


@register_arch
class NAFNet(nn.Module):
    """U-Net of NAFBlocks with additive skips and a global residual (Fig. 2 of the paper)."""

    # Domain of each option (lists: of each item), checked before anything is built: a config (or
    # a checkpoint header) asking for 10,000 blocks or a width of 1e6 is refused, not allocated.
    LIMITS = {"img_channel": (1, 64), "width": (1, 1024), "middle_blk_num": (0, 128),
              "enc_blk_nums": (0, 128), "dec_blk_nums": (0, 128)}
    PARTS = {
        "intro": r"^intro(\.|$)",
        "encoder": r"^(encoders|downs)\.",
        "middle": r"^middle_blks\.",
        "decoder": r"^(ups|decoders)\.",
        "ending": r"^ending(\.|$)",
    }

    def __init__(self, img_channel=3, width=16, middle_blk_num=1, enc_blk_nums=(1, 1, 1, 28),
                 dec_blk_nums=(1, 1, 1, 1)):
        super().__init__()
        self.intro = nn.Conv2d(img_channel, width, 3, padding=1)
        self.ending = nn.Conv2d(width, img_channel, 3, padding=1)
        self.encoders, self.decoders = nn.ModuleList(), nn.ModuleList()
        self.downs, self.ups = nn.ModuleList(), nn.ModuleList()
        chan = width
        for level, num in enumerate(enc_blk_nums):
            self.encoders.append(nn.Sequential(*[self._block(chan, level) for _ in range(num)]))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, stride=2))
            chan *= 2
        levels = len(enc_blk_nums)
        self.middle_blks = nn.Sequential(*[self._block(chan, levels) for _ in range(middle_blk_num)])
        for i, num in enumerate(dec_blk_nums):
            self.ups.append(nn.Sequential(nn.Conv2d(chan, chan * 2, 1, bias=False), nn.PixelShuffle(2)))
            chan //= 2
            self.decoders.append(nn.Sequential(*[self._block(chan, levels - 1 - i) for _ in range(num)]))
        self.pad_multiple = 2 ** levels

    def _block(self, chan, level):
        """A NAFBlock at U-Net depth `level` (NAFNetLocal swaps its pool)."""
        return NAFBlock(chan)

    def forward(self, inp):
        h, w = inp.shape[-2:]
        inp = pad_to_multiple(inp, self.pad_multiple)  # zeros, as the official check_image_size
        x = self.intro(inp)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for decoder, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            x = decoder(up(x) + skip)
        x = self.ending(x) + inp
        return x[..., :h, :w]


@register_arch
class NAFNetLocal(NAFNet):
    """NAFNet with TLC for full-size inference; same weights and keys as NAFNet.

    `train_size` is (N, C, H, W) of the training patches. The local window at each depth is fixed
    from the feature map a training-size input produces there, times 1.5 (`base_size` default),
    as in the official Local_Base: k = feat_train * base // train.
    """

    LIMITS = {**NAFNet.LIMITS, "train_size": (1, 1 << 16), "base_size": (1, 1 << 16)}

    def __init__(self, img_channel=3, width=16, middle_blk_num=1, enc_blk_nums=(1, 1, 1, 28),
                 dec_blk_nums=(1, 1, 1, 1), train_size=(1, 3, 256, 256), base_size=None):
        self._levels = len(enc_blk_nums)
        self._train_hw = tuple(train_size[-2:])
        th, tw = self._train_hw
        self._base_hw = tuple(base_size) if base_size else (int(th * 1.5), int(tw * 1.5))
        super().__init__(img_channel, width, middle_blk_num, enc_blk_nums, dec_blk_nums)

    def _block(self, chan, level):
        (th, tw), (bh, bw) = self._train_hw, self._base_hw
        m = 2 ** self._levels  # the feature map a (padded) training patch produces at this depth
        fh, fw = -(-th // m) * m // 2 ** level, -(-tw // m) * m // 2 ** level
        return NAFBlock(chan, pool=LocalAvgPool2d((fh * bh // th, fw * bw // tw)))

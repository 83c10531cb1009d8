"""Layers shared by the architectures."""
import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel (NAFNet's LayerNorm2d, eps 1e-6).

    Implemented as F.layer_norm on a (B, H, W, C) view: for channels_last tensors that view is
    contiguous, so the fused kernel runs without a copy; under bf16 autocast layer_norm runs in
    fp32. Parameter names `weight`/`bias` match the official checkpoints.
    """

    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


def pad_to_multiple(x, multiple, mode="constant"):
    """Pad the bottom/right of a (B, C, H, W) tensor so H and W are multiples of `multiple`."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    if mode == "reflect" and (ph >= h or pw >= w):
        mode = "replicate"  # reflect needs the pad to be smaller than the side
    return F.pad(x, (0, pw, 0, ph), mode=mode)

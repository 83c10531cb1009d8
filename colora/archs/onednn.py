"""float32 convolutions of channels_last tensors through oneDNN (issue 16: a faster fp32 forward).

On CPU, torch 2.13 sends a float32 convolution of a channels_last tensor to its generic
`_slow_conv2d` (im2col + GEMM, with layout copies) for every 1x1 convolution: 63 % of a
NAFNet-SIDD-width32 forward at 256² (torch.profiler, 1 thread, AMD EPYC), 12.2 ms for a 32 -> 64
channel 1x1 conv at 256² where `aten::mkldnn_convolution` (oneDNN, the kernel bf16 already uses)
takes 3.6 ms. `OneDnnConv2d` calls oneDNN directly for those inputs and falls back to nn.Conv2d
for everything else (other layouts or dtypes, autocast, which casts only the ops it knows,
non-CPU tensors); the outputs agree to float rounding (~3e-7) and autograd works through it.
Inside torch.compile inference graphs it calls the same kernel through a custom op (inductor would
lower the standard op to the slow path); compiled training graphs get the standard op. It is an nn.Conv2d (same
parameters, state dict and isinstance), so adapters, EMA copies and export see no difference.
BENCHMARKS.md (vs_official) has the measured effect.
"""
from typing import List, Optional

import torch
from torch import nn


@torch.library.custom_op("colora::onednn_conv2d", mutates_args=())
def onednn_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], padding: List[int],
                  stride: List[int], dilation: List[int], groups: int) -> torch.Tensor:
    """oneDNN's convolution as an op torch.compile can place in a graph (aten's has no fake kernel):
    inductor lowers a plain float32 convolution to the slow path above, 54 % of a compiled fp32 forward."""
    return torch.ops.aten.mkldnn_convolution(x, weight, bias, padding, stride, dilation, groups)


@onednn_conv2d.register_fake
def _(x, weight, bias, padding, stride, dilation, groups):
    out = nn.functional.conv2d(x, weight, bias, stride, padding, dilation, groups)
    return out.contiguous(memory_format=torch.channels_last)


def _layout_ok(conv, x):
    """Tensor metadata only, so dynamo traces it inside a compiled graph."""
    return (x.dtype == torch.float32 and x.device.type == "cpu" and x.dim() == 4
            and x.is_contiguous(memory_format=torch.channels_last)
            and conv.padding_mode == "zeros" and not isinstance(conv.padding, str))


def _onednn_ok(conv, x):
    """Eager: the layout, and no autocast or disabled oneDNN (checks dynamo cannot trace)."""
    return (_layout_ok(conv, x) and not torch.is_autocast_enabled("cpu")
            and torch.backends.mkldnn.is_available() and torch._C._get_mkldnn_enabled())


class OneDnnConv2d(nn.Conv2d):
    """An nn.Conv2d whose float32 channels_last CPU forward runs oneDNN's convolution."""

    def forward(self, x):
        if torch.compiler.is_compiling():  # the custom op has no autograd: inference graphs only
            if _layout_ok(self, x) and not torch.is_grad_enabled():
                return onednn_conv2d(x, self.weight, self.bias, list(self.padding), list(self.stride),
                                     list(self.dilation), self.groups)
            return super().forward(x)
        if _onednn_ok(self, x):
            return torch.ops.aten.mkldnn_convolution(x, self.weight, self.bias, self.padding, self.stride,
                                                     self.dilation, self.groups)
        return super().forward(x)


def use_onednn(model: nn.Module) -> int:
    """Make every plain nn.Conv2d of `model` a OneDnnConv2d in place (its class only: parameters,
    hooks and names are untouched); returns how many."""
    convs = [m for m in model.modules() if type(m) is nn.Conv2d]
    for m in convs:
        m.__class__ = OneDnnConv2d
    return len(convs)


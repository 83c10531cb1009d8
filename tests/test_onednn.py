"""fp32 channels_last convolutions through oneDNN (colora.archs.onednn): same results, same module."""
import copy

import pytest
import torch
from torch import nn

from colora.archs import build_arch, use_onednn
from colora.archs.onednn import OneDnnConv2d

CONVS = [dict(in_channels=8, out_channels=16, kernel_size=1), dict(in_channels=8, out_channels=8, kernel_size=3,
         padding=1, groups=8), dict(in_channels=8, out_channels=4, kernel_size=3, stride=2, padding=1),
         dict(in_channels=8, out_channels=8, kernel_size=3, padding=2, dilation=2, bias=False)]


@pytest.mark.parametrize("kw", CONVS)
def test_onednn_conv_matches_torch_forward_and_backward(kw):
    torch.manual_seed(0)
    plain = nn.Conv2d(**kw)
    fast = copy.deepcopy(plain)
    assert use_onednn(fast) == 1 and isinstance(fast, nn.Conv2d) and type(fast) is OneDnnConv2d
    x = torch.randn(2, 8, 20, 18).contiguous(memory_format=torch.channels_last).requires_grad_()
    outs = []
    for conv in (plain, fast):
        y = conv(x)
        outs.append((y, *torch.autograd.grad(y.square().sum(), [x, *conv.parameters()])))
    for a, b in zip(*outs):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)


def test_other_inputs_take_torchs_own_path_unchanged():
    torch.manual_seed(0)
    plain = nn.Conv2d(8, 16, 1)
    fast = copy.deepcopy(plain)
    use_onednn(fast)
    x = torch.randn(1, 8, 12, 12)  # NCHW: not redirected
    assert torch.equal(plain(x), fast(x))
    xcl = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast: its bf16 conv, not an fp32 one
        assert fast(xcl).dtype == plain(xcl).dtype == torch.bfloat16
        assert torch.equal(fast(xcl), plain(xcl))


def test_a_swapped_network_keeps_its_state_dict_and_outputs():
    torch.manual_seed(0)
    cfg = {"type": "NAFNet", "width": 8, "middle_blk_num": 1, "enc_blk_nums": [1, 1], "dec_blk_nums": [1, 1]}
    plain = build_arch(cfg).eval().to(memory_format=torch.channels_last)
    fast = copy.deepcopy(plain)
    assert use_onednn(fast) == sum(isinstance(m, nn.Conv2d) for m in plain.modules())
    assert use_onednn(fast) == 0  # already swapped
    assert list(fast.state_dict()) == list(plain.state_dict())
    x = torch.rand(1, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.allclose(fast(x), plain(x), atol=1e-5)
    assert type(copy.deepcopy(fast).intro) is OneDnnConv2d  # EMA copies keep it


def test_disabling_onednn_in_torch_disables_the_redirect():
    fast = nn.Conv2d(8, 16, 1)
    use_onednn(fast)
    x = torch.randn(1, 8, 12, 12).contiguous(memory_format=torch.channels_last)
    calls = []
    original = torch.ops.aten.mkldnn_convolution
    try:
        torch.ops.aten.mkldnn_convolution = lambda *a: calls.append(1) or original(*a)
        fast(x)
        assert calls == [1]
        torch.backends.mkldnn.enabled = False
        fast(x)
        assert calls == [1]
    finally:
        torch.ops.aten.mkldnn_convolution = original
        torch.backends.mkldnn.enabled = True

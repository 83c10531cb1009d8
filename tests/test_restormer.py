"""Restormer: official checkpoint layout (keys, shapes, parameter count) and forward behaviour."""
import json

import pytest
import torch

from colora.archs import build_arch
from colora.archs.restormer import Attention, LayerNorm
from colora.errors import OptionsError

from tests.conftest import REFERENCE
TINY = dict(type="Restormer", dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1,
            heads=[1, 1, 2, 2])


def _official(name):
    entry = json.loads((REFERENCE / "official_configs.json").read_text())[name]
    keys = json.loads((REFERENCE / entry["keys_file"]).read_text())
    return entry, keys


@pytest.mark.parametrize("name", ["restormer_default", "restormer_realdenoise_biasfree"])
def test_official_state_dict_layout(name):
    entry, ref = _official(name)
    with torch.device("meta"):
        model = build_arch(entry["network_g"])
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert set(got) == set(ref), (sorted(set(got) - set(ref))[:5], sorted(set(ref) - set(got))[:5])
    assert got == ref
    assert len(got) == entry["n_keys"]
    assert sum(p.numel() for p in model.parameters()) == entry["params"]


def test_mdta_matches_the_paper_formula():
    """Per head: softmax(norm(Q) norm(K)^T * temperature) V over the channels (Sec. 3.1)."""
    torch.manual_seed(0)
    attn = Attention(8, num_heads=2).eval()
    with torch.no_grad():
        attn.temperature.copy_(torch.tensor([0.5, 2.0]).view(2, 1, 1))
        x = torch.randn(2, 8, 5, 7)
        q, k, v = attn.qkv_dwconv(attn.qkv(x)).flatten(2).chunk(3, dim=1)
        heads = []
        for i, (qh, kh, vh) in enumerate(zip(q.chunk(2, 1), k.chunk(2, 1), v.chunk(2, 1))):
            qh, kh = qh / qh.norm(dim=-1, keepdim=True), kh / kh.norm(dim=-1, keepdim=True)
            a = torch.softmax(torch.einsum("bip,bjp->bij", qh, kh) * attn.temperature[i], dim=-1)
            heads.append(torch.einsum("bij,bjp->bip", a, vh))
        ref = attn.project_out(torch.cat(heads, 1).view(2, 8, 5, 7))
        torch.testing.assert_close(attn(x), ref)


@pytest.mark.parametrize("norm", ["WithBias", "BiasFree"])
def test_layer_norm_over_channels(norm):
    torch.manual_seed(0)
    ln = LayerNorm(8, norm)
    x = 3 + torch.randn(2, 8, 5, 7)
    with torch.no_grad():
        ln.body.weight.normal_()
        mu, var = x.mean(1, keepdim=True), x.var(1, keepdim=True, unbiased=False)
        ref = (x - mu if norm == "WithBias" else x) / torch.sqrt(var + 1e-5)
        ref = ref * ln.body.weight.view(1, -1, 1, 1)
        if norm == "WithBias":
            ln.body.bias.normal_()
            ref = ref + ln.body.bias.view(1, -1, 1, 1)
        torch.testing.assert_close(ln(x), ref)


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    model = build_arch(TINY).eval()
    with torch.no_grad():  # perturb so the checks are not trivially satisfied by init values
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def test_odd_size_forward(tiny):
    x = torch.rand(1, 3, 37, 45)
    with torch.no_grad():
        y = tiny(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert tiny.pad_multiple == 8


def test_tiny_input_falls_back_to_replicate_padding(tiny):
    x = torch.rand(1, 3, 5, 3)  # smaller than the pad: reflect is impossible
    with torch.no_grad():
        assert tiny(x).shape == x.shape


def test_bias_free_and_dual_pixel():
    opt = dict(TINY, LayerNorm_type="BiasFree", inp_channels=6, dual_pixel_task=True)
    model = build_arch(opt).eval()
    assert "skip_conv.weight" in model.state_dict()
    with torch.no_grad():
        y = model(torch.rand(2, 6, 20, 17))
    assert y.shape == (2, 3, 20, 17)


def test_channels_last_matches_nchw(tiny):
    x = torch.rand(1, 3, 37, 45)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = tiny(x)
        out = tiny(x_cl)
        out_cl_model = tiny.to(memory_format=torch.channels_last)(x_cl)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_cl_model, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("norm", ["WithBias", "BiasFree"])
def test_bf16_autocast_close_to_fp32(norm):
    torch.manual_seed(0)
    model = build_arch(dict(TINY, LayerNorm_type=norm)).eval()
    x = torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    assert torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 0.1


def test_state_dict_round_trip(tiny):
    other = build_arch(TINY).eval()
    other.load_state_dict(tiny.state_dict(), strict=True)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(other(x), tiny(x), atol=0, rtol=0)


def test_unknown_layer_norm_type():
    with pytest.raises(OptionsError, match="LayerNorm_type"):
        build_arch(dict(TINY, LayerNorm_type="WithoutBias"))


def test_residual_needs_matching_channels():
    with pytest.raises(OptionsError, match="inp_channels"):
        build_arch(dict(TINY, inp_channels=6))

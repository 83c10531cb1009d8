import json

import pytest
import torch

from colora.archs import build_arch, list_archs, official_name
from colora.errors import OptionsError
from tests.conftest import TINY_NAFNET, TINY_RESTORMER, randomize_layer_scales

CONFIGS = ["nafnet_sidd_w32", "nafnet_sidd_w64", "nafnet_gopro_w32", "restormer_default",
           "restormer_realdenoise_biasfree"]


@pytest.mark.parametrize("name", CONFIGS)
def test_official_keys_shapes_and_counts(reference_dir, name):
    cfg = json.loads((reference_dir / "official_configs.json").read_text())[name]
    with torch.device("meta"):
        model = build_arch(cfg["network_g"])
    keys = json.loads((reference_dir / cfg["keys_file"]).read_text())
    mine = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert mine == keys
    assert sum(p.numel() for p in model.parameters()) == cfg["params"]
    assert official_name(cfg["network_g"]) is not None


@pytest.mark.parametrize("cfg", [TINY_NAFNET, TINY_RESTORMER], ids=["nafnet", "restormer"])
def test_any_input_size_returns_input_size(cfg):
    model = randomize_layer_scales(build_arch(cfg)).eval()
    for h, w in [(37, 45), (16, 16), (9, 70)]:
        with torch.no_grad():
            assert model(torch.rand(2, 3, h, w)).shape == (2, 3, h, w)


@pytest.mark.parametrize("cfg", [TINY_NAFNET, TINY_RESTORMER], ids=["nafnet", "restormer"])
def test_channels_last_and_bf16(cfg):
    model = randomize_layer_scales(build_arch(cfg)).eval()
    x = torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        ref = model(x)
        cl = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf = model(x.contiguous(memory_format=torch.channels_last)).float()
    assert torch.allclose(ref, cl, atol=1e-5)
    assert (ref - bf).abs().mean() < 0.02


def test_nafnet_local_equals_global_on_training_size_and_differs_on_large():
    local_cfg = dict(TINY_NAFNET, type="NAFNetLocal", train_size=[1, 3, 32, 32])
    net = randomize_layer_scales(build_arch(TINY_NAFNET)).eval()
    local = build_arch(local_cfg).eval()
    local.load_state_dict(net.state_dict(), strict=True)
    with torch.no_grad():
        small = torch.rand(1, 3, 32, 32)
        assert torch.allclose(net(small), local(small), atol=1e-6)
        big = torch.rand(1, 3, 96, 80)
        out = local(big)
        assert out.shape == big.shape and not torch.allclose(net(big), out, atol=1e-4)


def test_local_pool_is_a_box_mean():
    from colora.archs.nafnet import LocalAvgPool2d

    x = torch.rand(1, 2, 10, 12, dtype=torch.float64)
    out = LocalAvgPool2d((4, 5))(x)
    assert out.shape == x.shape
    # an interior pixel of the valid region equals the mean of its window
    assert torch.allclose(out[0, :, 3, 4], x[0, :, 2:6, 2:7].mean(dim=(-1, -2)))


def test_registry_and_bad_options():
    assert {"NAFNet", "NAFNetLocal", "Restormer"} <= set(list_archs())
    with pytest.raises(OptionsError, match="did you mean 'NAFNet'"):
        build_arch({"type": "NAFNt"})
    with pytest.raises(OptionsError, match="did you mean 'width'"):
        build_arch({"type": "NAFNet", "widht": 8})

"""The architecture contract (colora.archs.contract): every registered network declares its parts,
padding, options from a state dict, inference and export forms, and keeps its promises."""
import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from colora.archs import (OFFICIAL_CONFIGS, PART_NAMES, Architecture, build_arch, full_config,
                          infer_network_g, list_archs, official_name, register_arch)
from colora.archs.layers import pad_to_multiple
from tests.conftest import REFERENCE, TINY_NAFNET, TINY_RESTORMER, randomize_layer_scales

ROOT = Path(__file__).resolve().parents[1]
# A small configuration of every registered architecture (a new one without an entry fails below).
TINY = {"NAFNet": TINY_NAFNET, "NAFNetLocal": dict(TINY_NAFNET, type="NAFNetLocal", train_size=[1, 3, 32, 32]),
        "Restormer": TINY_RESTORMER}
CASES = [*TINY.values(), dict(TINY_RESTORMER, dual_pixel_task=True, inp_channels=6)]
IDS = [*TINY, "Restormer-dual-pixel"]


def tiny(cfg, seed=0):
    """The network with seeded weights that make every block act (NAFNet's layer scales start at 0)."""
    torch.manual_seed(seed)
    model = randomize_layer_scales(build_arch(cfg), seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model.eval()


def photo(w, h):
    import cv2
    from skimage import data

    rgb = cv2.resize(data.chelsea(), (w, h), interpolation=cv2.INTER_AREA).astype("float32") / 255
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].contiguous()


def test_every_registered_architecture_has_a_tiny_config_here():
    assert set(TINY) == set(list_archs())


@pytest.mark.parametrize("cfg", CASES, ids=IDS)
def test_each_parameter_belongs_to_exactly_one_part_and_each_part_is_used(cfg):
    import re

    model = build_arch(cfg)
    used = set()
    for name, _ in model.named_parameters():
        path = name.rsplit(".", 1)[0]
        hits = [part for part, rx in model.PARTS.items() if re.search(rx, path)]
        assert len(hits) == 1, (name, hits)
        assert model.part_of(path) == hits[0]
        used.add(hits[0])
    assert used == set(PART_NAMES)
    assert model.part_of("colora_adapters.rain") == "other"


def test_a_class_breaking_the_contract_is_refused_at_registration():
    class NoMiddle(Architecture):
        PARTS = {p: rf"^{p}\." for p in PART_NAMES if p != "middle"}

    class NoWriters(Architecture):
        PARTS = {p: rf"^{p}\." for p in PART_NAMES}

    class BadPad(NoWriters):
        RESIDUAL_WRITERS = r".*\.proj"
        PAD_MODE = "circular"

    class Plain(nn.Module):
        pass

    for cls, says in ((NoMiddle, "must name exactly the parts"), (NoWriters, "RESIDUAL_WRITERS"),
                      (BadPad, "PAD_MODE"), (Plain, "subclass")):
        with pytest.raises(TypeError, match=says):
            register_arch(cls)
        assert cls.__name__ not in list_archs()


# The same networks without a block (their state dicts: every tensor outside the blocks).
BLOCKLESS = {"NAFNet": dict(TINY_NAFNET, middle_blk_num=0, enc_blk_nums=[0, 0], dec_blk_nums=[0, 0]),
             "Restormer": dict(TINY_RESTORMER, num_blocks=[0, 0, 0, 0], num_refinement_blocks=0)}


@pytest.mark.parametrize("cfg", [TINY_NAFNET, TINY_RESTORMER], ids=["NAFNet", "Restormer"])
def test_the_residual_writers_are_what_each_block_adds(cfg):
    """Zero every declared writer and each block is an identity: the network equals itself with no
    block at all (a writer left out, or a layer that does not write into the stream, breaks this)."""
    import re

    model = tiny(cfg)
    writers = [m for p, m in model.named_modules() if re.fullmatch(model.RESIDUAL_WRITERS, p)]
    assert writers and all(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) for m in writers)
    with torch.no_grad():
        for m in writers:
            m.weight.zero_()
            if m.bias is not None:
                m.bias.zero_()
    blockless = build_arch(BLOCKLESS[cfg["type"]]).eval()
    missing, _ = blockless.load_state_dict(model.state_dict(), strict=False)
    assert not missing
    x = photo(40, 24)
    with torch.no_grad():
        torch.testing.assert_close(model(x), blockless(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("cfg", CASES, ids=IDS)
def test_the_forward_pads_as_declared(cfg):
    """What OnnxRunner relies on: padding outside with (pad_multiple, PAD_MODE) and cropping gives
    the network's own output."""
    model = tiny(cfg)
    x = torch.rand(1, model.in_channels, 21, 19)
    with torch.no_grad():
        outside = model(pad_to_multiple(x, model.pad_multiple, model.PAD_MODE))[..., :21, :19]
        torch.testing.assert_close(model(x), outside, rtol=0, atol=1e-6)
    assert model.pad_multiple > 1 and model.PAD_MODE in ("constant", "reflect")


@pytest.mark.parametrize("name", json.loads((REFERENCE / "official_configs.json").read_text()))
def test_options_inferred_from_each_official_key_list_round_trip(name):
    entry = json.loads((REFERENCE / "official_configs.json").read_text())[name]
    keys = json.loads((REFERENCE / entry["keys_file"]).read_text())
    state = {k: torch.empty(shape, device="meta") for k, shape in keys.items()}
    inferred = infer_network_g(state)
    assert full_config(inferred) == full_config(entry["network_g"])
    with torch.device("meta"):
        rebuilt = build_arch(inferred)
    assert {k: list(v.shape) for k, v in rebuilt.state_dict().items()} == keys


@pytest.mark.parametrize("cfg", CASES, ids=IDS)
def test_options_inferred_from_a_tiny_state_dict_rebuild_its_training_form(cfg):
    model = build_arch(cfg)
    want = type(model).training_form(model.network_g)
    assert full_config(infer_network_g(model.state_dict())) == full_config(want)


def test_a_foreign_or_partial_state_dict_is_recognised_by_none():
    state = build_arch(TINY_RESTORMER).state_dict()
    assert infer_network_g({}) is None
    assert infer_network_g({"conv.weight": torch.zeros(8, 3, 3, 3)}) is None
    partial = {k: v for k, v in state.items() if not k.startswith("encoder_level1.")}
    assert infer_network_g(partial) is None


def test_the_inference_only_variant_is_compared_in_its_training_form():
    local = dict(OFFICIAL_CONFIGS["NAFNet-SIDD-width32"], type="NAFNetLocal", train_size=[1, 3, 128, 128])
    assert official_name(local) == "NAFNet-SIDD-width32"
    assert official_name(dict(local, width=24)) is None


@pytest.mark.parametrize("cfg", CASES, ids=IDS)
def test_prepared_for_inference_keeps_weights_keys_and_network_g(cfg):
    model = tiny(cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    network_g = dict(model.network_g)
    prepared = model.prepare_for_inference(32)
    assert prepared.network_g == network_g and prepared.inference_train_size == 32 and not prepared.training
    after = prepared.state_dict()
    assert list(after) == list(before) and all(torch.equal(after[k], before[k]) for k in before)


@pytest.mark.parametrize("cfg", CASES, ids=IDS)
def test_prepared_equals_plain_where_tlc_is_exact(cfg):
    """Up to 1.5x the training patch TLC's window covers the whole map: the global pool exactly."""
    plain = tiny(cfg)
    prepared = tiny(cfg).prepare_for_inference(32)
    x = torch.rand(1, plain.in_channels, 40, 36)
    with torch.no_grad():
        torch.testing.assert_close(prepared(x), plain(x), rtol=0, atol=1e-6)


def test_prepared_nafnet_is_the_official_nafnetlocal_on_a_large_image():
    sys.path.insert(0, str(ROOT))
    from benchmarks._official.NAFNet_arch import NAFNetLocal as OfficialLocal

    plain = tiny(TINY_NAFNET)
    prepared = tiny(TINY_NAFNET).prepare_for_inference(32)
    options = {k: v for k, v in TINY_NAFNET.items() if k != "type"}
    official = OfficialLocal(**options, train_size=(1, 3, 32, 32)).eval()
    official.load_state_dict(plain.state_dict(), strict=True)
    x = photo(96, 72)  # a photo's local statistics differ from its global ones (uniform noise's hardly)
    with torch.no_grad():
        ours = prepared(x)
        torch.testing.assert_close(ours, official(x), rtol=0, atol=1e-5)
        # TLC is active at this size (the tiny net moves by ~1e-3): ten times the tolerance, not vacuous
        assert (ours - plain(x)).abs().max() > 1e-4


@pytest.mark.parametrize("cfg", CASES, ids=IDS)
def test_the_export_form_computes_the_same_and_is_left_on_exit(cfg):
    model = tiny(cfg).prepare_for_inference(32)
    x = torch.rand(1, model.in_channels, 80, 56)
    with torch.no_grad():
        ref = model(x)
        with model.export_form():
            traced = model(x)
        torch.testing.assert_close(traced, ref, rtol=0, atol=1e-5)
        assert torch.equal(model(x), ref)


def test_an_adapter_made_on_the_plain_network_loads_onto_the_inference_one(tmp_path):
    from colora.adapters import attach_adapter, load_adapter, save_adapter
    from colora.checkpoint import save_checkpoint
    from colora.inference.restorer import load_model

    plain = tiny(TINY_NAFNET)
    save_checkpoint(tmp_path / "base.safetensors", plain.state_dict(), network_g=plain.network_g,
                    extra_metadata={"train_size": 32})
    attach_adapter(plain, {"method": "lora", "rank": 2}, name="rain")
    save_adapter(plain, tmp_path / "rain")
    model = load_model(tmp_path / "base.safetensors")
    assert model.network_g == build_arch(TINY_NAFNET).network_g and model.inference_train_size == 32
    assert load_adapter(model, tmp_path / "rain") == "rain"

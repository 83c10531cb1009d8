import json

import pytest
import torch

from colora.archs import build_arch
from colora.checkpoint import load_checkpoint, load_state_dict, read_metadata, save_checkpoint, state_dict_sha256
from colora.errors import CheckpointError
from tests.conftest import TINY_NAFNET, TINY_RESTORMER, randomize_layer_scales


def _outputs_equal(a, b):
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


def test_safetensors_roundtrip_with_ema(tmp_path):
    net = randomize_layer_scales(build_arch(TINY_NAFNET))
    ema = {k: v + 1 for k, v in net.state_dict().items()}
    path = tmp_path / "net.safetensors"
    save_checkpoint(path, net.state_dict(), params_ema=ema, network_g=TINY_NAFNET)
    assert read_metadata(path)["network_g"]
    assert torch.equal(load_state_dict(path)["intro.weight"], ema["intro.weight"])  # EMA preferred
    plain = load_checkpoint(build_arch(TINY_NAFNET), path, param_key="params")
    assert _outputs_equal(net, plain)
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize("wrap", ["plain", "params", "params_ema", "module"])
def test_basicsr_pth(tmp_path, wrap):
    net = randomize_layer_scales(build_arch(TINY_NAFNET))
    sd = net.state_dict()
    blob = {"plain": sd, "params": {"params": sd}, "params_ema": {"params_ema": sd, "params": {}},
            "module": {"params": {"module." + k: v for k, v in sd.items()}}}[wrap]
    path = tmp_path / "net.pth"
    torch.save(blob, path)
    loaded = load_checkpoint(build_arch(TINY_NAFNET), path, param_key="params_ema" if wrap == "params_ema" else None)
    assert _outputs_equal(net, loaded)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"params": build_arch(TINY_NAFNET)}, path)  # a whole module: needs unpickling code
    with pytest.raises(CheckpointError, match="evil.pth"):
        load_state_dict(path)


def test_mismatch_names_keys_and_the_fitting_options(tmp_path):
    path = tmp_path / "wide.safetensors"
    wide = dict(TINY_NAFNET, width=16)
    save_checkpoint(path, build_arch(wide).state_dict())
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(build_arch(TINY_NAFNET), path)
    msg = str(err.value)
    assert "shape mismatches" in msg and "intro.weight" in msg and '"width": 16' in msg
    restormer = tmp_path / "restormer.safetensors"
    save_checkpoint(restormer, build_arch(TINY_RESTORMER).state_dict())
    with pytest.raises(CheckpointError, match="missing keys"):
        load_checkpoint(build_arch(TINY_NAFNET), restormer)


@pytest.mark.parametrize("content, reason", [(b"", "empty"), (b"\x00" * 100, "cannot read"),
                                             (b"garbage that is not a checkpoint", "cannot read")])
@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_corrupt_files(tmp_path, content, reason, suffix):
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=reason):
        load_state_dict(path)


def test_truncated_safetensors(tmp_path):
    path = tmp_path / "net.safetensors"
    save_checkpoint(path, build_arch(TINY_NAFNET).state_dict())
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="net.safetensors"):
        load_state_dict(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_state_dict(tmp_path / "missing.safetensors")


def test_hash_changes_with_any_weight():
    sd = build_arch(TINY_NAFNET).state_dict()
    h = state_dict_sha256(sd)
    assert h == state_dict_sha256({k: v.clone() for k, v in sd.items()})
    sd["ending.bias"][0] += 1e-6
    assert h != state_dict_sha256(sd)


def test_a_header_is_checked_against_its_tensors_up_to_options_that_build_the_same(tmp_path):
    from colora.checkpoint import checkpoint_network_g

    # int(8 * 2.7) = int(8 * 2.66) = 21 hidden channels: one network, two spellings of its factor
    cfg = dict(TINY_RESTORMER, ffn_expansion_factor=2.7)
    path = tmp_path / "r.safetensors"
    save_checkpoint(path, build_arch(cfg).state_dict(), network_g=cfg)
    state = load_state_dict(path)
    assert checkpoint_network_g(path, state, read_metadata(path))["ffn_expansion_factor"] == 2.7
    assert checkpoint_network_g(path, state, {})["ffn_expansion_factor"] == 2.66
    meta = {"network_g": json.dumps(dict(cfg, ffn_expansion_factor=3.0))}  # 24 channels: another network
    with pytest.raises(CheckpointError, match="it says ffn_expansion_factor=3.0 but the tensors hold"):
        checkpoint_network_g(path, state, meta)

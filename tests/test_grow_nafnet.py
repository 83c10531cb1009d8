"""scripts/grow_nafnet.py: a deeper NAFNet grown from a trained one restores exactly as it did,
and pre-training can go on from it."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from colora.archs import build_arch
from colora.checkpoint import read_metadata, save_checkpoint
from colora.imageio import bundled_photos
from colora.inference.restorer import Restorer, load_model

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"type": "NAFNet", "img_channel": 3, "width": 8, "middle_blk_num": 1, "enc_blk_nums": [1, 1],
         "dec_blk_nums": [1, 1]}


def grow_module():
    spec = importlib.util.spec_from_file_location("grow_nafnet", ROOT / "scripts" / "grow_nafnet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def small_ckpt(tmp_path):
    torch.manual_seed(0)
    model = build_arch(SMALL)
    with torch.no_grad():  # trained-looking residual scales, so every old block counts
        for name, p in model.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.normal_(0, 0.3)
    path = tmp_path / "small.safetensors"
    save_checkpoint(path, model.state_dict(), network_g=SMALL, extra_metadata={"train_size": 64})
    return path


def test_grown_network_restores_exactly_like_the_original(tmp_path, small_ckpt):
    out = tmp_path / "grown.safetensors"
    grow_module().main([str(small_ckpt), str(out), "--enc", "2", "3", "--middle", "3", "--dec", "1", "2"])
    grown_cfg = json.loads(read_metadata(out)["network_g"])
    assert grown_cfg["enc_blk_nums"] == [2, 3] and grown_cfg["middle_blk_num"] == 3 and grown_cfg["dec_blk_nums"] == [1, 2]
    assert read_metadata(out)["train_size"] == "64"
    photo = bundled_photos(["coffee"])["coffee"][:64, :96]
    a = Restorer(load_model(small_ckpt)).restore(photo)
    grown = load_model(out)
    assert sum(p.numel() for p in grown.parameters()) > sum(p.numel() for p in load_model(small_ckpt).parameters())
    b = Restorer(grown).restore(photo)
    assert abs(a.astype(float) - b.astype(float)).max() <= 1e-5


def test_growing_refuses_to_shrink_or_overwrite(tmp_path, small_ckpt):
    grow = grow_module()
    with pytest.raises(SystemExit, match="grow, not shrink"):
        grow.main([str(small_ckpt), str(tmp_path / "a.safetensors"), "--enc", "1"])
    with pytest.raises(SystemExit, match="can only grow"):
        grow.main([str(small_ckpt), str(tmp_path / "a.safetensors"), "--middle", "0"])
    existing = tmp_path / "taken.safetensors"
    existing.write_bytes(b"keep me")
    with pytest.raises(SystemExit, match="exists"):
        grow.main([str(small_ckpt), str(existing), "--middle", "2"])
    assert existing.read_bytes() == b"keep me"

"""Shared fixtures: tiny configurations that run in milliseconds on 2 CPU cores."""
import importlib.util
from pathlib import Path

import pytest
import torch

TINY_NAFNET = {"type": "NAFNet", "width": 8, "middle_blk_num": 1, "enc_blk_nums": [1, 1],
               "dec_blk_nums": [1, 1]}
TINY_RESTORMER = {"type": "Restormer", "dim": 8, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1,
                  "heads": [1, 1, 2, 2], "ffn_expansion_factor": 2.0}
# The official NAFNet/Restormer state_dict key lists (copied from the team's shared/reference/ so that
# no test skips on a clean clone).
REFERENCE = Path(__file__).resolve().parent / "data" / "reference"


HAS_PLOTS = importlib.util.find_spec("matplotlib") is not None  # the optional plots extra


def plotted(path):
    """A figure colora draws when matplotlib (the plots extra) is installed: a PNG there, and
    absent without it (the suite passes with `.[test]` alone)."""
    path = Path(path)
    if not HAS_PLOTS:
        return not path.exists()
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def reference_dir():
    return REFERENCE


def randomize_layer_scales(model, seed=0):
    """NAFNet's beta/gamma start at 0 (blocks are identities); give them values so tests see the
    whole network."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model


@pytest.fixture(autouse=True)
def _auto_precision_is_fp32(monkeypatch):
    """`precision auto` times bf16 against fp32 where bf16 is native; tests must not depend on
    timing, so here the timing always finds fp32 faster (tests of the rule patch it themselves)."""
    from colora import precision

    monkeypatch.setattr(precision, "_MEASURED", {})
    monkeypatch.setattr(precision, "bf16_faster", lambda measure, key: False)

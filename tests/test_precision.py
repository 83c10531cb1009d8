"""Precision that fits the hardware (colora.precision) and the Trainer's autocast / channels_last."""
import logging

import pytest
import torch

from colora import precision
from colora.errors import ColoraError
from colora.options import OptionsError, load_options
from colora.training.trainer import Trainer
from tests.test_train import losses, options, records, single_thread


@pytest.fixture
def flags(monkeypatch):
    """Pretend the CPU has the given /proc/cpuinfo flags."""
    def set_flags(*names):
        monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(names))
    return set_flags


def test_auto_picks_bf16_only_where_native(flags):
    flags("avx2", "avx512_bf16")
    assert precision.resolve_precision("auto") is torch.bfloat16
    flags("avx2", "amx_bf16")
    assert precision.resolve_precision("auto") is torch.bfloat16
    flags("avx2", "fma")
    assert precision.resolve_precision("auto") is None
    assert precision.resolve_precision("fp32") is None


def test_explicit_bf16_without_native_support_warns(flags, caplog):
    flags("avx2")
    with caplog.at_level(logging.WARNING, logger="colora"):
        assert precision.resolve_precision("bf16") is torch.bfloat16
    assert "no native bf16" in caplog.text
    caplog.clear()
    flags("amx_bf16")
    with caplog.at_level(logging.WARNING, logger="colora"):
        precision.resolve_precision("bf16")
    assert caplog.text == ""


def test_fp16_on_cpu_and_unknown_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="CUDA"):
        precision.resolve_precision("fp16", "cpu")
    with pytest.raises(OptionsError, match="precision"):
        load_options(options(tmp_path, train={"precision": "half"}))
    opts = load_options(options(tmp_path, train={"precision": "fp16"}))
    with pytest.raises(ColoraError, match="train.precision.*CUDA"):
        Trainer(opts)


def run(root, **train):
    opts = load_options(options(root, train={**options(root)["train"], "total_iter": 20, **train},
                                val={"val_freq": 20}))
    with single_thread():
        Trainer(opts).fit()
    return root / "tiny"


@pytest.mark.skipif(not precision.native_bf16(), reason="bf16 training is only offered where it is native")
def test_bf16_channels_last_training_learns_like_fp32(tmp_path):
    fp32 = run(tmp_path / "fp32")
    bf16 = run(tmp_path / "bf16", precision="bf16", channels_last=True)
    l32, l16 = losses(fp32), losses(bf16)
    assert l32 != l16  # the options change the computation
    v32, v16 = ({r["iter"]: r["psnr"] for r in records(e, "val")} for e in (fp32, bf16))
    assert v16[20] > v16[0] + 1.0  # it learns ...
    assert abs(v16[20] - v32[20]) < 1.0  # ... about as well as fp32


def test_channels_last_alone_trains_in_fp32(tmp_path):
    a = run(tmp_path / "a")
    b = run(tmp_path / "b", channels_last=True)
    la, lb = losses(a), losses(b)
    assert la.keys() == lb.keys()
    assert max(abs(la[k] - lb[k]) for k in la) < 1e-3  # same maths, another memory layout

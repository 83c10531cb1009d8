"""The paper-scale presets (colora/presets/paper/) and the GPU speed settings of training.

The presets are loaded and checked against the paper's numbers (architecture, 128 pairs, 7 %
budget, the real dataset of each task). The speed settings run where they can: CPU autocast
(bf16, emulated where the CPU has no native bf16: two iterations only) with the grad scaler off,
cudnn_benchmark set during a run and put back after it, torch.compile with the `eager` backend
(the code path without a C++ build, which takes minutes here). fp16 with its grad scaler, bf16
and cuDNN need a GPU: that test runs only where CUDA exists.
"""
from pathlib import Path

import pytest
import torch

from colora.archs import build_arch
from colora.data.real import BENCHMARKS
from colora.options import load_options
from colora.training.trainer import Trainer
from tests.test_train import losses, options, single_thread

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "colora" / "presets" / "paper"
TASK_DATA = {"rain": ("RainDS_real", "rainstreak"), "raindrop": ("RainDS_real", "raindrop"),
             "rain_raindrop": ("RainDS_real", "rainstreak_raindrop"), "noise": ("SIDD", None),
             "blur": ("RealBlur_J", None), "haze": ("NH-HAZE", None)}


def n_params(network_g):
    with torch.device("meta"):
        return sum(p.numel() for p in build_arch(network_g).parameters())


def test_paper_presets_carry_the_papers_settings():
    naf, res = (load_options(PAPER / f"{a}_prod.yml") for a in ("nafnet_w32", "restormer"))
    assert n_params(naf.network_g) == 29_159_715 and n_params(res.network_g) == 26_126_644
    assert (naf.train.total_iter, naf.train.optim_g.lr, naf.train.pixel_opt.type, naf.train.grad_clip) == (
        200_000, 1e-3, "PSNRLoss", 0.01)
    assert (res.train.total_iter, res.train.optim_g.lr, res.train.pixel_opt.type) == (300_000, 3e-4, "L1Loss")
    for arch, base in (("nafnet_w32", naf), ("restormer", res)):
        for task, (kind, subset) in TASK_DATA.items():
            opts = load_options(PAPER / "finetune" / f"{arch}_{task}.yml")
            train, val = opts.datasets["train"], opts.datasets["val"]
            assert opts.network_g == base.network_g and opts.adapter.task == task
            assert (opts.adapter.method, opts.adapter.allocation.budget, train.num_pairs) == ("colora", 0.07, 128)
            assert train.type == val.type == kind and train.subset == val.subset == subset
            assert kind in BENCHMARKS and opts.train.cudnn_benchmark and opts.train.channels_last


def run(root, **train):
    opts = load_options(options(root, train={**options(root)["train"], "total_iter": 2, **train},
                                datasets={"train": {"type": "ProdDataset", "gt_size": 16, "batch_size_per_gpu": 2,
                                                    "photos": ["astronaut"]}},
                                val={"val_freq": 100}))
    with single_thread():
        trainer = Trainer(opts)
        seen = {"scaler": trainer.scaler.is_enabled(), "cudnn_benchmark": torch.backends.cudnn.benchmark,
                "compiled": trainer.net is not trainer.model}
        trainer.fit()
        trainer.close()
    return losses(root / "tiny"), seen


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    """The losses of the plain run the others are compared with."""
    return run(tmp_path_factory.mktemp("fp32"))[0]


def test_cpu_autocast_trains_with_the_scaler_off(tmp_path, fp32):
    bf16, seen = run(tmp_path / "bf16", precision="bf16")
    assert not seen["scaler"] and all(torch.isfinite(torch.tensor(v)) for v in bf16.values())
    assert bf16 != fp32 and abs(bf16[1] - fp32[1]) < 0.5  # autocast changed the arithmetic, not the task


def test_cudnn_benchmark_is_set_for_the_run_and_put_back(tmp_path):
    before = torch.backends.cudnn.benchmark
    _, seen = run(tmp_path, cudnn_benchmark=True)
    assert seen["cudnn_benchmark"] and torch.backends.cudnn.benchmark == before


def test_compiled_training_matches_eager_and_saves_plain_keys(tmp_path, fp32):
    plain = fp32
    compiled, seen = run(tmp_path / "compiled", compile=True, compile_backend="eager")
    assert seen["compiled"]
    assert compiled.keys() == plain.keys() and max(abs(compiled[k] - plain[k]) for k in plain) < 1e-4
    from safetensors.torch import load_file

    keys = load_file(tmp_path / "compiled" / "tiny" / "models" / "net_g_latest.safetensors").keys()
    assert not any("_orig_mod" in k for k in keys)


def test_unknown_compile_backend_is_one_clear_error(tmp_path):
    from colora.errors import ColoraError

    opts = load_options(options(tmp_path, train={"compile": True, "compile_backend": "no_such_backend"}))
    with pytest.raises(ColoraError, match="train.compile_backend 'no_such_backend'"):
        Trainer(opts)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_mixed_precision_channels_last_cudnn(tmp_path):
    fp16, seen = run(tmp_path / "fp16", precision="fp16", channels_last=True, cudnn_benchmark=True)
    assert seen["scaler"] and seen["cudnn_benchmark"]
    assert all(torch.isfinite(torch.tensor(v)) for v in fp16.values())
    if torch.cuda.is_bf16_supported():
        bf16, seen = run(tmp_path / "bf16", precision="bf16", channels_last=True)
        assert not seen["scaler"] and all(torch.isfinite(torch.tensor(v)) for v in bf16.values())

"""Inference precision per machine, export of the merged network, the ONNX Runtime backend and the
sharded folder restore (colora.precision, colora.inference)."""
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data as skimage_data

from colora import precision
from colora.adapters import attach_adapter, save_adapter
from colora.archs import build_arch
from colora.checkpoint import load_state_dict, save_checkpoint
from colora.imageio import read_image, write_image
from colora.inference.shard import shard_files
from colora.inference.restorer import Restorer, load_model
from tests.conftest import TINY_NAFNET, randomize_layer_scales
from tests.test_restore import cli

REAL_BF16_FASTER = precision.bf16_faster  # conftest pins it to False; the rule's own tests use it
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def flags(monkeypatch):
    """Pretend the CPU has the given /proc/cpuinfo flags, and time auto's probe for real."""
    monkeypatch.setattr(precision, "bf16_faster", REAL_BF16_FASTER)

    def set_flags(*names):
        monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(names))
    return set_flags


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A tiny NAFNet (train size 32, so TLC's local mean is active on the test photos) + an adapter."""
    torch.manual_seed(0)
    model = randomize_layer_scales(build_arch(TINY_NAFNET), seed=1)
    folder = tmp_path_factory.mktemp("model")
    save_checkpoint(folder / "tiny.safetensors", model.state_dict(), network_g=TINY_NAFNET,
                    extra_metadata={"train_size": 32})
    tlc = load_model(folder / "tiny.safetensors")
    attach_adapter(tlc, {"method": "lora", "rank": 2}, name="warm")
    with torch.no_grad():
        for name, p in tlc.colora_adapters.named_parameters():
            p.normal_(0, 0.05)
    save_adapter(tlc, folder / "warm", name="warm")
    return folder / "tiny.safetensors"


def photo(w, h):
    import cv2

    return cv2.resize(skimage_data.chelsea(), (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


# ---- precision ------------------------------------------------------------------------------------
def test_auto_on_a_cpu_without_native_bf16_is_fp32_and_never_times(flags):
    flags("avx2", "fma")
    probe = pytest.fail  # must not be called
    assert precision.inference_dtype("auto", measure=probe, key="k") is torch.float32
    assert precision.inference_dtype("fp32", measure=probe) is torch.float32


def test_auto_where_native_times_once_and_keeps_the_faster(flags):
    flags("avx2", "amx_bf16")
    calls = []

    def probe(t32, t16):
        return lambda: calls.append(1) or (t32, t16)
    assert precision.inference_dtype("auto", measure=probe(1.0, 0.5), key="net-a") is torch.bfloat16
    assert precision.inference_dtype("auto", measure=probe(1.0, 0.5), key="net-a") is torch.bfloat16
    assert len(calls) == 1  # cached for the process
    assert precision.inference_dtype("auto", measure=probe(1.0, 0.95), key="net-b") is torch.float32
    assert precision.inference_dtype("bf16", measure=probe(1.0, 2.0), key="net-c") is torch.bfloat16


def test_bf16_without_native_support_says_so_and_runs_fp32(flags, caplog):
    flags("avx2")
    with caplog.at_level(logging.WARNING, logger="colora"):
        assert precision.inference_dtype("bf16") is torch.float32
    lines = [r for r in caplog.records if "no native bf16" in r.getMessage()]
    assert len(lines) == 1 and "--force-bf16" in lines[0].getMessage()
    assert precision.inference_dtype("bf16", force=True) is torch.bfloat16
    with pytest.raises(ValueError, match="CUDA"):
        precision.inference_dtype("fp16")


def test_cli_bf16_on_an_avx2_cpu_warns_once_and_matches_fp32(flags, ckpt, tmp_path):
    flags("avx2")
    write_image(tmp_path / "in" / "cat.png", photo(72, 48))
    code, _, err = cli("restore", "-i", tmp_path / "in", "-o", tmp_path / "bf", "--model", ckpt, "--bf16", "-q")
    assert code == 0, err
    assert sum("no native bf16" in line for line in err.splitlines()) == 1
    code, _, err = cli("restore", "-i", tmp_path / "in", "-o", tmp_path / "fp", "--model", ckpt,
                       "--precision", "fp32", "-q")
    assert code == 0, err
    np.testing.assert_array_equal(read_image(tmp_path / "bf" / "cat.png").pixels,
                                  read_image(tmp_path / "fp" / "cat.png").pixels)


def test_auto_runs_the_probe_on_the_real_network(flags, ckpt):
    flags("avx2", "amx_bf16")
    r = Restorer(load_model(ckpt), precision="auto")
    assert r.run.precision in ("fp32", "bf16") and len(precision._MEASURED) == 1
    assert next(iter(r.model.parameters())).dtype == (torch.bfloat16 if r.bf16 else torch.float32)


@pytest.mark.skipif(not precision.native_bf16(), reason="bf16 inference only where it is native")
def test_bf16_restores_close_to_fp32(ckpt):
    img = photo(96, 64)
    low = Restorer(load_model(ckpt), precision="bf16").restore(img).astype(float)
    full = Restorer(load_model(ckpt), precision="fp32").restore(img).astype(float)
    assert np.abs(low - full).mean() < 1 / 255


# ---- export ---------------------------------------------------------------------------------------
def official_nafnet(cfg):
    sys.path.insert(0, str(ROOT))
    from benchmarks._official.NAFNet_arch import NAFNet

    return NAFNet(img_channel=3, width=cfg["width"], middle_blk_num=cfg["middle_blk_num"],
                  enc_blk_nums=cfg["enc_blk_nums"], dec_blk_nums=cfg["dec_blk_nums"]).eval()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_export_state_dict_loads_strictly_into_the_official_code(ckpt, tmp_path, suffix):
    out = tmp_path / f"merged{suffix}"
    code, stdout, err = cli("export", "-o", out, "--model", ckpt, "--adapter", "warm")
    assert code == 0, err
    if suffix == ".pth":
        raw = torch.load(out, weights_only=True)
        assert set(raw) == {"params"}
    state = load_state_dict(out)
    assert not any(k.startswith("colora") for k in state)
    official = official_nafnet(TINY_NAFNET)
    official.load_state_dict(state, strict=True)
    # the merged network is the adapter's: plain NAFNet on a 32-px input (TLC = global pool there)
    x = torch.rand(1, 3, 32, 32)
    want = Restorer.from_files(ckpt, ["warm"], precision="fp32").run(x)
    with torch.no_grad():
        assert torch.allclose(official(x).clamp(0, 1), want, atol=1e-5)


def test_a_chain_of_adapters_exports_only_to_onnx(ckpt, tmp_path):
    code, _, err = cli("export", "-o", tmp_path / "x.pth", "--model", ckpt, "--adapter", "warm", "--adapter", "warm")
    assert code == 2 and "chain" in err and ".onnx" in err
    code, _, err = cli("export", "-o", tmp_path / "x.onnx.txt", "--model", ckpt)
    assert code == 2 and ".safetensors" in err


def test_onnx_export_matches_torch_at_any_size_and_restores_the_same_files(ckpt, tmp_path):
    pytest.importorskip("onnxruntime")
    from colora.inference.onnx import OnnxRunner

    out = tmp_path / "warm.onnx"
    code, stdout, err = cli("export", "-o", out, "--model", ckpt, "--adapter", "warm")
    assert code == 0, err
    assert "max |diff|" in stdout
    runner, torch_runner = OnnxRunner(out), Restorer.from_files(ckpt, ["warm"], precision="fp32").run
    for h, w in ((32, 32), (45, 70), (100, 37), (5, 9)):  # TLC local and global; sides not multiples of 4
        x = torch.rand(1, 3, h, w)
        assert (runner(x) - torch_runner(x)).abs().max() <= 1e-4, (h, w)
    write_image(tmp_path / "in" / "a.png", photo(90, 60))
    write_image(tmp_path / "in" / "b.png", photo(40, 70))
    for backend, model, extra in (("onnxruntime", out, []), ("torch", ckpt, ["--adapter", "warm"])):
        code, _, err = cli("restore", "-i", tmp_path / "in", "-o", tmp_path / backend, "--model", model,
                           "--backend", backend, "-t", "48", "-q", *extra)
        assert code == 0, err
    for name in ("a.png", "b.png"):
        a, b = (read_image(tmp_path / d / name).pixels.astype(int) for d in ("onnxruntime", "torch"))
        assert np.abs(a - b).max() <= 1
    code, _, err = cli("restore", "-i", tmp_path / "in", "-o", tmp_path / "x", "--model", out,
                       "--backend", "onnxruntime", "--adapter", "warm", "-q")
    assert code == 2 and "merged" in err


# ---- sharding -------------------------------------------------------------------------------------
def test_shards_are_disjoint_complete_and_stable():
    files = [(Path(f"/in/{i:02d}.png"), Path(f"{i:02d}.png")) for i in range(11)]
    key = lambda src, rel: rel  # noqa: E731
    parts = [shard_files(files, key, r, 3) for r in range(3)]
    assert sorted(f for p in parts for f in p) == sorted(files)
    assert [len(p) for p in parts] == [4, 4, 3]
    assert parts == [shard_files(list(reversed(files)), key, r, 3)[::-1] for r in range(3)]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sharded(ckpt, src, dst, *extra):
    """`colora restore` as 2 gloo ranks (what torchrun starts), one thread each."""
    port = _free_port()
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port), OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([sys.executable, "-m", "colora.cli", "restore", "-i", str(src), "-o", str(dst),
                                       "--model", str(ckpt), "--precision", "fp32", "-q", *extra], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT))
    return procs


def test_two_ranks_split_a_folder_and_a_killed_run_resumes(ckpt, tmp_path):
    # enough work that a kill right after the first output lands well before the end, on any machine
    count = 40
    src = tmp_path / "in"
    for i in range(count):
        write_image(src / f"p{i:02d}.png", photo(160 + 8 * (i % 5), 128))
    procs = _sharded(ckpt, src, tmp_path / "out")
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert f"{count} restored, 0 skipped, 0 failed" in outs[0][0] and "(2 ranks)" in outs[0][0]
    assert outs[1][0].strip() == ""  # only rank 0 prints the summary
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in src.iterdir())
    # kill a run once it has written something, then resume it with --skip-existing
    procs = _sharded(ckpt, src, tmp_path / "again")
    finished = lambda: [p for p in (tmp_path / "again").glob("*") if not p.name.startswith(".")]  # noqa: E731
    while not (tmp_path / "again").is_dir() or not finished():  # a whole output, not just a temp file
        assert all(p.poll() is None for p in procs), "finished before it could be killed"
        time.sleep(0.005)
    for p in procs:
        p.kill()
        p.communicate()
    done = lambda: {p.name: p.stat().st_ino for p in (tmp_path / "again").iterdir()  # noqa: E731
                    if not p.name.startswith(".")}  # a write the kill cut short leaves only a hidden temp file
    first = done()
    assert 0 < len(first) < count
    procs = _sharded(ckpt, src, tmp_path / "again", "--skip-existing")
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert f"{count - len(first)} restored, {len(first)} skipped, 0 failed" in outs[0][0]
    after = done()
    assert set(after) == {p.name for p in src.iterdir()}
    assert all(after[n] == ino for n, ino in first.items())  # the first run's files were not rewritten

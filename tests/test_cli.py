"""The command line as a user runs it: a real subprocess, exit codes, no tracebacks."""
import json
import subprocess
import sys

import pytest
import torch

from colora.archs import build_arch
from colora.checkpoint import save_checkpoint
from tests.conftest import TINY_NAFNET


def run(*args):
    proc = subprocess.run([sys.executable, "-m", "colora.cli", *args], capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


def test_help_and_version():
    code, out, _ = run("--help")
    assert code == 0 and "info" in out
    code, out, _ = run("--version")
    assert code == 0 and out.startswith("colora ")


def test_info_on_a_preset():
    code, out, _ = run("info", "colora/presets/pretrain/nafnet_w32_prod.yml")
    assert code == 0
    assert "29,159,715" in out and "NAFNet-SIDD-width32" in out and "16.0" in out


def test_info_on_a_basicsr_checkpoint(tmp_path):
    path = tmp_path / "net.pth"
    torch.save({"params": build_arch(TINY_NAFNET).state_dict()}, path)
    code, out, err = run("info", str(path), "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["network_g"]["width"] == TINY_NAFNET["width"] and info["kind"] == "checkpoint"
    safe = tmp_path / "net.safetensors"
    save_checkpoint(safe, build_arch(TINY_NAFNET).state_dict(), network_g=TINY_NAFNET)
    code, out, err = run("info", str(safe))
    assert code == 0 and "parameters" in out


@pytest.mark.parametrize("content, expected", [
    (None, "not found"),
    ("train:\n  total_iters: 5\n", "did you mean 'total_iter'"),
    ("train: [1,\n", "cannot parse"),
])
def test_user_errors_are_one_line_and_exit_2(tmp_path, content, expected):
    path = tmp_path / "opts.yml"
    if content is not None:
        path.write_text(content)
    code, out, err = run("info", str(path))
    assert code == 2
    assert expected in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "net.safetensors"
    path.write_bytes(b"\x01\x02")
    code, _, err = run("info", str(path))
    assert code == 2 and "net.safetensors" in err and "Traceback" not in err

"""`colora restore` never loses a user's file (issue 15, item 1): an output is never written over an
input of the run, nor over a file this run did not create unless --overwrite, and --suffix cannot
leave -o. Every refusal is a line naming the file and the reason."""
import sys

import pytest
import torch

from colora.archs import build_arch
from colora.checkpoint import save_checkpoint
from tests.conftest import TINY_NAFNET
from tests.test_restore import cli, photo, tree, write_u8


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """An untrained tiny NAFNet: these tests are about which files are written, not their pixels."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_checkpoint(path, build_arch(TINY_NAFNET).state_dict(), network_g=TINY_NAFNET)
    return path


def snapshot(folder):
    return {p: (folder / p).read_bytes() for p in tree(folder)}


def restore(ckpt, *args):
    return cli("restore", "--model", ckpt, "--threads", "1", "-q", *args)


def test_an_output_that_is_another_input_is_never_written(ckpt, tmp_path):
    """-o = -i with --ext png: photo.jpg's output would be photo.png, which is an input."""
    src = tmp_path / "album"
    write_u8(src / "photo.jpg", photo("coffee", 32, 24))
    write_u8(src / "photo.png", photo("astronaut", 32, 24))
    before = snapshot(src)
    for extra in ([], ["--overwrite"]):  # not even --overwrite replaces an input
        code, out, err = restore(ckpt, "-i", src, "-o", src, "--ext", "png", *extra)
        assert code == 1 and "0 restored, 0 skipped, 2 failed" in out
        line = [ln for ln in err.splitlines() if "photo.jpg" in ln]
        assert len(line) == 1 and "another input" in line[0], err
        assert snapshot(src) == before


def test_an_existing_file_is_skipped_unless_overwrite(ckpt, tmp_path):
    src, dst = tmp_path / "in", tmp_path / "out"
    write_u8(src / "photo.png", photo("astronaut", 32, 24))
    write_u8(dst / "photo_r.png", photo("coffee", 32, 24))  # the user's own file
    mine = (dst / "photo_r.png").read_bytes()
    code, out, err = restore(ckpt, "-i", src, "-o", dst, "--suffix", "_r")
    assert code == 0 and "0 restored, 1 skipped, 0 failed" in out
    assert "photo_r.png' exists and this run did not write it" in err and "--overwrite" in err
    assert (dst / "photo_r.png").read_bytes() == mine
    code, out, _ = restore(ckpt, "-i", src, "-o", dst, "--suffix", "_r", "--overwrite")
    assert code == 0 and "1 restored, 0 skipped, 0 failed" in out
    assert (dst / "photo_r.png").read_bytes() != mine


def test_a_file_appearing_during_the_run_is_not_replaced(ckpt, tmp_path, monkeypatch):
    """The check before restoring is repeated by the write itself (a hard link fails on a name that
    exists), so a file created meanwhile by someone else survives."""
    from colora.imageio import read_image

    src, dst = tmp_path / "in", tmp_path / "out"
    write_u8(src / "a.png", photo("astronaut", 32, 24))

    def read_and_race(path, **kw):
        (dst / "a.png").write_bytes(b"someone else's file")
        return read_image(path, **kw)

    monkeypatch.setattr("colora.imageio.read_image", read_and_race)
    code, out, err = restore(ckpt, "-i", src, "-o", dst)
    assert code == 0 and "1 skipped" in out and "appeared while" in err
    assert (dst / "a.png").read_bytes() == b"someone else's file"
    assert tree(dst) == ["a.png"]  # no temporary file left behind


@pytest.mark.parametrize("suffix", ["/../escape", "_r/x", "..", "a\\b"])
def test_a_suffix_that_leaves_the_output_folder_is_a_usage_error(ckpt, tmp_path, suffix):
    src = tmp_path / "in"
    write_u8(src / "a.png", photo("astronaut", 24, 24))
    code, out, err = restore(ckpt, "-i", src, "-o", tmp_path / "out", "--suffix", suffix)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--suffix" in err, err
    assert not (tmp_path / "out").exists() and tree(tmp_path) == ["in/a.png"]


def test_outputs_get_the_mode_of_a_normal_file(ckpt, tmp_path):
    import os

    src, dst = tmp_path / "in", tmp_path / "out"
    write_u8(src / "a.png", photo("astronaut", 24, 24))
    old = os.umask(0o022)
    try:
        assert restore(ckpt, "-i", src, "-o", dst)[0] == 0
    finally:
        os.umask(old)
    assert (dst / "a.png").stat().st_mode & 0o777 == 0o644


def test_out_of_memory_on_one_file_is_that_files_line(ckpt, tmp_path, monkeypatch):
    from colora.inference.restorer import Restorer

    real = Restorer.restore

    def restore_or_oom(self, pixels, progress=None):
        if pixels.shape[1] == 40:
            raise MemoryError
        return real(self, pixels, progress)

    monkeypatch.setattr(Restorer, "restore", restore_or_oom)
    write_u8(tmp_path / "in" / "a.png", photo("astronaut", 32, 24))
    write_u8(tmp_path / "in" / "b.png", photo("coffee", 40, 24))
    code, out, err = restore(ckpt, "-i", tmp_path / "in", "-o", tmp_path / "out")
    assert code == 1 and "1 restored, 0 skipped, 1 failed" in out
    assert [ln for ln in err.splitlines() if "b.png" in ln and "ran out of memory" in ln], err
    assert tree(tmp_path / "out") == ["a.png"]


def test_the_memory_plan_tiles_what_does_not_fit_and_refuses_what_never_fits():
    from colora.errors import ColoraError
    from colora.inference.memory import IMAGE_BYTES_PER_PIXEL, forward_bytes_per_pixel, plan_tile

    bpp = 1000
    whole = 4000 * 3000 * (IMAGE_BYTES_PER_PIXEL + bpp)
    assert plan_tile(3000, 4000, bpp, whole + 1) == 0
    tile = plan_tile(3000, 4000, bpp, whole // 4, pad=32)
    assert 0 < tile < 3000 and tile % 16 == 0
    assert 4000 * 3000 * IMAGE_BYTES_PER_PIXEL + (tile + 64) ** 2 * bpp <= whole // 4
    assert plan_tile(3000, 4000, bpp, whole // 4, tile=128) == 128  # a user's tile that fits is kept
    with pytest.raises(ColoraError, match="over --max-memory"):
        plan_tile(3000, 4000, bpp, 4000 * 3000 * IMAGE_BYTES_PER_PIXEL)
    narrow, wide = (build_arch({**TINY_NAFNET, "width": w}).eval() for w in (8, 16))
    assert forward_bytes_per_pixel(wide) > 1.5 * forward_bytes_per_pixel(narrow) > 0


def test_peak_rss_is_the_programs_own_not_its_forking_parents():
    """Benchmarks and the memory probes report a child's peak with peak_rss (VmHWM): a child of a
    process that once held 600 MB more reports far less (ru_maxrss would report the parent's)."""
    import subprocess
    import sys

    import numpy as np

    from colora.inference.memory import current_rss, peak_rss

    big = np.ones(600 * 2**20, np.uint8)  # touched: resident
    parent = peak_rss()
    assert parent >= current_rss() > big.nbytes
    child = subprocess.run([sys.executable, "-c", "from colora.inference.memory import peak_rss; print(peak_rss())"],
                           capture_output=True, text=True, check=True)
    assert 0 < int(child.stdout) < parent - 400 * 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_applies_once_asked_and_respects_the_users_allocator_settings():
    """`colora restore` reuses freed activations (glibc mallopt); COLORA_MALLOC=default or glibc's own
    MALLOC_*_THRESHOLD_ variables leave the allocator as the user set it. In fresh interpreters:
    the setting is process-wide."""
    import os
    import platform
    import subprocess

    code = "from colora.inference.memory import keep_freed_memory as k; print(k())"

    def applied(**env):
        out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, text=True,
                             stdout=subprocess.PIPE, check=True).stdout
        return out.strip()

    base = {"COLORA_MALLOC": "", "MALLOC_MMAP_THRESHOLD_": "", "MALLOC_TRIM_THRESHOLD_": ""}
    assert applied(**base) == ("True" if platform.libc_ver()[0] == "glibc" else "False")
    assert applied(**{**base, "COLORA_MALLOC": "default"}) == "False"
    assert applied(**{**base, "MALLOC_TRIM_THRESHOLD_": "100000"}) == "False"

"""Hostile inputs (issue 15), generated at test time: fuzzed image bytes, bombs of compressed zero
rows, tampered checkpoint headers and adapter folders, bad options and flags, broken links. For each:
a one-line error (exit 2) or a per-file line (exit 0/1), no traceback, no file outside the run's
outputs changed, and -- measured on a subprocess -- a bomb refused within 1 GB of peak RSS.

Everything calls the CLI's main(argv) in this process except the RSS measurement.
"""
import os
import time
from pathlib import Path

import pytest
import torch

from colora.inference.memory import current_rss

from tests import hostile_inputs as H
from tests.test_restore import _one_thread  # noqa: F401  (autouse: one thread for tiny nets)

ROOT = Path(__file__).resolve().parents[1]
GB = 1 << 30


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny base, its adapter and a good photo, in a folder whose every byte is checked after."""
    root = tmp_path_factory.mktemp("hostile")
    ckpt = H.tiny_checkpoint(root / "tiny.safetensors")
    adapter = H.tiny_adapter(ckpt, root / "adapters" / "tiny")
    (root / "good").mkdir()
    (root / "good" / "photo.png").write_bytes(H.encoded(".png"))
    return {"root": root, "ckpt": ckpt, "adapter": adapter}


def restore(world, *args):
    return H.run(["restore", "--model", world["ckpt"], "--threads", "1", "-q", *args])


def one_line_error(result, *needles):
    code, out, err, escaped = result
    assert escaped is None, repr(escaped)
    lines = H.error_lines(err)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("colora: error: "), err
    assert all(n in lines[0] for n in needles), (needles, lines[0])


def test_fuzzed_images_each_get_one_line_and_change_nothing(world, tmp_path):
    src = tmp_path / "fuzz"
    paths = H.fuzzed_images(src, 60, seed=1)
    (src / "photo.png").write_bytes(H.encoded(".png"))
    before = H.snapshot(tmp_path)
    # in this process: --max-memory counts what the test process already holds, so allow 1 GB above it
    budget = f"{(current_rss() + 1e9) / 1e9:.3f}"
    code, out, err, escaped = restore(world, "-i", src, "-o", tmp_path / "out", "--max-memory", budget)
    assert escaped is None and code in (0, 1) and "Traceback" not in err
    restored, skipped, failed = (int(w) for w in out.split()[0:6:2])
    assert restored + skipped + failed == len(paths) + 1 and restored >= 1
    lines = H.error_lines(err)
    assert sum(ln.startswith("failed: ") for ln in lines) == failed and code == (1 if failed else 0)
    for p in paths:  # a file is named in one line at most
        assert sum(f"{p.name}:" in ln for ln in lines) <= 1, p
    assert H.snapshot(tmp_path, skip=[tmp_path / "out"]) == before
    assert all((tmp_path / "fuzz" / Path(f).name).is_file() for f in os.listdir(tmp_path / "out"))


def test_a_damaged_file_that_decodes_says_so_in_its_line(world, tmp_path):
    jpg = H.encoded(".jpg")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "damaged.jpg").write_bytes(jpg[:-2] + b"\x00" * 10 + b"\xff\xd9")
    code, out, err, escaped = restore(world, "-i", tmp_path / "in", "-o", tmp_path / "out")
    assert escaped is None and code == 0 and "1 restored" in out
    lines = H.error_lines(err)
    assert len(lines) == 1 and lines[0].startswith("restored with a warning: ") and "Corrupt JPEG" in lines[0], err


def test_tampered_checkpoint_headers_are_one_line(world, tmp_path):
    cases = H.tampered_checkpoints(world["ckpt"], tmp_path / "ckpts")
    for name, path in cases.items():
        for argv in (["restore", "--model", path, "-i", world["root"] / "good", "-o", tmp_path / "out", "-q"],
                     ["info", path]):
            one_line_error(H.run(argv), str(path))
        assert not (tmp_path / "out").exists(), name


def test_tampered_adapters_are_one_line(world, tmp_path):
    for name, folder in H.tampered_adapters(world["adapter"], tmp_path / "adapters").items():
        one_line_error(restore(world, "--adapter", folder, "-i", world["root"] / "good", "-o", tmp_path / "out"))
        assert not (tmp_path / "out").exists(), name
    one_line_error(restore(world, "--adapter", H.tampered_adapters(world["adapter"], tmp_path / "x")["another base"],
                           "-i", world["root"] / "good", "-o", tmp_path / "out"), "--force")


@pytest.mark.parametrize("setting, key", H.BAD_SETS, ids=[s for s, _ in H.BAD_SETS])
def test_bad_options_name_the_key(tmp_path, setting, key):
    opt = tmp_path / "o.yml"
    opt.write_text(f"name: h\npath: {{experiments_root: {tmp_path / 'exp'}}}\n")
    one_line_error(H.run(["pretrain", "-opt", opt, "--set", setting]), key)
    assert sorted(os.listdir(tmp_path)) == ["o.yml"]


@pytest.mark.parametrize("flags, name", H.BAD_FLAGS, ids=[" ".join(f) for f, _ in H.BAD_FLAGS])
def test_bad_flags_are_one_line(world, tmp_path, flags, name):
    one_line_error(restore(world, "-i", world["root"] / "good", "-o", tmp_path / "out", *flags), name)
    assert not (tmp_path / "out").exists()


def test_links_loops_and_newlines_are_reported_one_line_each(world, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "new\nline.png").write_bytes(H.encoded(".png"))
    (src / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    (src / "loop.png").symlink_to(src / "loop.png")
    code, out, err, escaped = restore(world, "-i", src, "-o", tmp_path / "out")
    assert escaped is None and code == 1 and "1 restored, 0 skipped, 2 failed" in out
    lines = H.error_lines(err)
    assert len(lines) == 2, err
    assert any("dangling.png" in ln and "dangling symbolic link" in ln for ln in lines)
    assert any("loop.png" in ln and "symbolic link loop" in ln for ln in lines)
    assert (tmp_path / "out" / "new\nline.png").is_file()
    (tmp_path / "out" / "new\nline.png").unlink()
    (src / "new\nline.png").write_bytes(b"not an image")
    code, out, err, _ = restore(world, "-i", src, "-o", tmp_path / "out")
    lines = H.error_lines(err)
    assert len(lines) == 3 and any("new\\nline.png" in ln for ln in lines), err  # escaped, still one line


def test_stale_temporary_files_of_ours_are_cleaned(world, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    stale, fresh, theirs = out / ".photo.abcd1234.tmp.png", out / ".photo.efgh5678.tmp.png", out / ".mine.tmp"
    for p in (stale, fresh, theirs):
        p.write_bytes(b"x")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    os.utime(theirs, (old, old))
    assert restore(world, "-i", world["root"] / "good", "-o", out)[0] == 0
    assert not stale.exists() and fresh.exists() and theirs.exists()


def test_info_reports_basicsr_ema_and_adapter_folders(world, tmp_path):
    from colora.checkpoint import load_state_dict

    state = load_state_dict(world["ckpt"])
    torch.save({"params": state, "params_ema": state}, tmp_path / "basicsr.pth")
    code, out, err, escaped = H.run(["info", tmp_path / "basicsr.pth"])
    assert code == 0 and "EMA weights: yes" in out, err
    code, out, err, escaped = H.run(["info", world["adapter"]])
    assert code == 0 and "method:         lora" in out and "base:           NAFNet" in out, err


def test_bf16_without_native_support_warns_once(world, tmp_path, monkeypatch):
    monkeypatch.setattr("colora.precision.native_bf16", lambda device="cpu": False)
    code, out, err, _ = restore(world, "--bf16", "-i", world["root"] / "good", "-o", tmp_path / "out")
    assert code == 0 and sum("no native bf16" in ln for ln in err.splitlines()) == 1, err


# ---- memory: measured on a subprocess ----------------------------------------------------------------
def test_bombs_are_refused_within_1_gb(world, tmp_path):
    src = tmp_path / "bombs"
    H.bombs(src)
    (src / "photo.png").write_bytes(H.encoded(".png"))
    ckpts = H.tampered_checkpoints(world["ckpt"], tmp_path / "ckpts")
    adapters = H.tampered_adapters(world["adapter"], tmp_path / "adapters")
    base = ["restore", "--model", world["ckpt"], "-q", "--threads", "1"]
    codes, peak, err = H.peak_rss([
        base + ["-i", src / "bomb_15000.png", "-o", tmp_path / "out"],  # defaults: over --max-pixels
        base + ["-i", src, "-o", tmp_path / "out2", "--max-memory", "1"],
        ["info", ckpts["middle_blk_num 10000"]], ["info", ckpts["width 512"]],
        base + ["--adapter", adapters["rank 20000000"], "-i", src, "-o", tmp_path / "out3"],
    ], cwd=ROOT)
    assert codes == [1, 1, 2, 2, 2], err[-2000:]
    assert peak < GB, f"peak RSS {peak / GB:.2f} GB"
    assert "Traceback" not in err
    refused = [ln for ln in err.splitlines() if ln.startswith("failed: ") and "bomb_" in ln]
    assert len(refused) == 3 and all("megapixels" in ln or "--max-memory" in ln for ln in refused), err
    assert sorted(os.listdir(tmp_path / "out2")) == ["photo.png"]  # the batch went on

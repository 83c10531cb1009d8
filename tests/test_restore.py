"""Restore as users run it (issue 6): real photos from scikit-image, a tiny NAFNet trained for a few
steps to denoise, two LoRA adapters, and the `colora restore` / `colora eval` command lines.

Most CLI checks call `colora.cli.main` in this process (a fresh interpreter costs ~3 s of torch
import on a busy 2-core box). A batch with bad files (exit 1) and a missing input (exit 2) also run
as real subprocesses, to check what a user sees: one line per problem, never a traceback.
"""
import contextlib
import csv
import io
import logging
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from skimage import data as skimage_data

from colora.adapters import attach_adapter, save_adapter, trainable_parameters
from colora.archs import build_arch
from colora.checkpoint import save_checkpoint
from colora.cli import main
from colora.errors import AdapterError, ColoraError
from colora.imageio import read_image, write_image
from colora.metrics import calculate_psnr
from colora.inference.evaluate import match_pairs
from colora.inference.restorer import FileResult, Restorer, find_adapter, list_inputs, load_model, output_path
from colora.inference.tiling import run_tiled
from tests.conftest import TINY_NAFNET

NOISE = 0.08  # sigma of the Gaussian noise the tiny model learns to remove


# ---- helpers -------------------------------------------------------------------------------------
def photo(name, w, h):
    """A real photo (scikit-image) resized to w x h, uint8 RGB."""
    return cv2.resize(getattr(skimage_data, name)(), (w, h), interpolation=cv2.INTER_AREA)


def noisy(img_u8, seed=0):
    x = img_u8.astype(np.float32) / 255
    return np.clip(x + np.random.default_rng(seed).normal(0, NOISE, x.shape), 0, 1).astype(np.float32)


def write_u8(path, rgb_u8):
    """Write a uint8 RGB array as a file (format by extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, rgb_u8.astype(np.float32) / 255)


def run(*args):
    """`colora ...` in a fresh interpreter: (exit code, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "colora.cli", *map(str, args)], capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


def cli(*args):
    """`colora ...` in this process (main() as the console script calls it)."""
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
    finally:
        root.handlers[:] = handlers  # main() points a handler at the redirected stderr
        root.setLevel(level)
    return code, out.getvalue(), err.getvalue()


def tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def psnr(a, b):
    return calculate_psnr(a, b)


# ---- fixtures: one tiny base and two adapters, made once -----------------------------------------
@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny nets: a second OpenMP thread only adds sync overhead on a shared 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _train(params, model, target_fn, steps, lr, seed):
    """Adam on 32x32 noisy crops of real photos, L1 to target_fn(clean)."""
    photos = [skimage_data.astronaut(), skimage_data.coffee(), skimage_data.rocket()]
    photos = [torch.from_numpy(p.astype(np.float32) / 255).permute(2, 0, 1) for p in photos]
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(params, lr=lr)
    model.train()
    for _ in range(steps):
        crops = []
        for _ in range(6):
            p = photos[int(torch.randint(len(photos), (1,), generator=gen))]
            y = int(torch.randint(p.shape[1] - 32, (1,), generator=gen))
            x = int(torch.randint(p.shape[2] - 32, (1,), generator=gen))
            crops.append(p[:, y:y + 32, x:x + 32])
        clean = torch.stack(crops)
        lq = (clean + NOISE * torch.randn(clean.shape, generator=gen)).clamp(0, 1)
        loss = (model(lq) - target_fn(clean)).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A tiny NAFNet denoiser: starts as the identity (ending conv zeroed, so the global residual
    passes the input through) and learns to denoise in 40 Adam steps."""
    torch.manual_seed(0)
    model = build_arch(TINY_NAFNET)
    with torch.no_grad():
        model.ending.weight.zero_()
        model.ending.bias.zero_()
    _train(model.parameters(), model, lambda c: c, steps=40, lr=3e-3, seed=0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_checkpoint(path, model.state_dict(), network_g=TINY_NAFNET)
    return path


@pytest.fixture(scope="module")
def adapters(ckpt, tmp_path_factory):
    """Folder with two LoRA (rank 2) adapters trained on the base: 'warm' tints, 'bright' lifts."""
    folder = tmp_path_factory.mktemp("adapters")
    targets = {"warm": lambda c: c * torch.tensor([1.0, 0.85, 0.7]).view(1, 3, 1, 1),
               "bright": lambda c: (c * 0.7 + 0.3)}
    for i, (name, target) in enumerate(targets.items()):
        model = load_model(ckpt)
        attach_adapter(model, {"method": "lora", "rank": 2}, name=name)
        _train(trainable_parameters(model), model, target, steps=8, lr=2e-2, seed=10 + i)
        save_adapter(model, folder / name)
    return folder


@pytest.fixture(scope="module")
def base(ckpt):
    return Restorer(load_model(ckpt))


# ---- 1. the Python API ---------------------------------------------------------------------------
def test_restorer_keeps_shape_and_dtype(base):
    img = photo("chelsea", 40, 36)
    for arr in (img, img[..., 0], img[..., :1], (img.astype(np.uint16) * 257), img.astype(np.float32) / 255):
        out = base.restore(arr)
        assert out.shape == arr.shape and out.dtype == arr.dtype
    rgba = np.dstack([img, np.arange(40 * 36, dtype=np.uint32).reshape(36, 40) % 256]).astype(np.uint8)
    out = base.restore(rgba)
    assert out.shape == rgba.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])


def test_the_tiny_model_denoises_a_real_photo(base):
    clean = photo("chelsea", 128, 96)
    lq = noisy(clean, seed=3)
    out = base.restore(lq)
    gt = clean.astype(np.float32) / 255
    assert psnr(out, gt) > psnr(lq, gt) + 0.5


def test_tile_0_is_a_plain_forward(ckpt, base):
    x = noisy(photo("astronaut", 72, 56))
    model = load_model(ckpt)  # a separate copy: `base` was moved to channels_last
    with torch.no_grad():
        ref = model(torch.from_numpy(x).permute(2, 0, 1)[None]).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(base.restore(x), ref, atol=1e-5)


def test_tta_is_the_self_ensemble_and_restores_as_well(ckpt, base):
    """--tta averages the eight flips/rotations, so a flipped or transposed photo gets the flipped or
    transposed result exactly (the plain network does not), and the denoiser still denoises."""
    img = photo("astronaut", 72, 56)
    x = noisy(img)
    tta = Restorer(load_model(ckpt), tta=True)
    out = tta.restore(x)
    for transform in (lambda a: a[:, ::-1], lambda a: a[::-1], lambda a: a.transpose(1, 0, 2)):
        again = transform(tta.restore(np.ascontiguousarray(transform(x))))
        np.testing.assert_allclose(again, out, atol=1e-5)
    plain = base.restore(x)
    assert np.abs(plain[:, ::-1] - base.restore(np.ascontiguousarray(x[:, ::-1]))).max() > 1e-3
    clean = img.astype(np.float32) / 255
    assert psnr(out, clean) > psnr(x, clean) + 1 and psnr(out, clean) > psnr(plain, clean) - 0.5


def test_cli_tta_restores_a_folder(ckpt, tmp_path):
    write_u8(tmp_path / "in" / "a.png", photo("chelsea", 40, 36))
    code, _, err = cli("restore", "-i", tmp_path / "in", "-o", tmp_path / "out", "--model", ckpt, "--tta")
    assert code == 0, err
    assert read_image(tmp_path / "out" / "a.png").pixels.shape == (36, 40, 3)


@pytest.mark.parametrize("w, h", [(256, 256), (250, 190)])
def test_tiled_matches_untiled(ckpt, base, w, h):
    x = noisy(photo("astronaut", w, h))
    tiled = Restorer(load_model(ckpt), tile=96, tile_pad=32)
    whole, parts = base.restore(x), tiled.restore(x)
    assert psnr(whole, parts) >= 50
    # no seam: along the tile borders the difference is no larger than elsewhere
    diff = np.abs(whole - parts)
    for axis, size in ((1, h), (0, w)):
        profile = diff.mean(axis=(axis, 2))
        border = [i for i in (95, 96, 191, 192) if i < size]
        assert profile[border].max() <= 3 * profile.mean() + 1e-4, (axis, profile[border], profile.mean())
    # a tile larger than the image is the whole-image path
    big = Restorer(load_model(ckpt), tile=512, tile_pad=32)
    np.testing.assert_array_equal(big.restore(x), whole)


def test_tiling_blends_to_the_identity():
    """With an identity network, overlapping tiles blended by their weights give back the image."""
    img = photo("coffee", 203, 131).astype(np.float32) / 255
    calls = []

    def forward(t):
        calls.append(tuple(t.shape[-2:]))
        return t.clone()

    out = run_tiled(forward, img, 64, 16)
    np.testing.assert_allclose(out, img, atol=1e-6)
    assert len(calls) == 4 * 3 and all(h <= 64 + 32 and w <= 64 + 32 for h, w in calls)


def test_restore_paths_yields_a_result_per_file(base, tmp_path):
    src = tmp_path / "in"
    write_u8(src / "a.png", photo("astronaut", 32, 32))
    write_u8(src / "b.jpg", photo("coffee", 32, 24))
    (src / "c.png").write_text("not an image")
    (src / "notes.txt").write_text("ignored: not an image extension")
    results = list(base.restore_paths(src, tmp_path / "out", progress=False))
    assert all(isinstance(r, FileResult) for r in results)
    assert [(r.input.name, r.status) for r in results] == [("a.png", "restored"), ("b.jpg", "restored"),
                                                           ("c.png", "failed")]
    assert results[0].output == tmp_path / "out" / "a.png" and results[2].output is None
    assert "c.png" in results[2].reason
    assert tree(tmp_path / "out") == ["a.png", "b.jpg"]  # nothing half-written left behind


def test_io_threads_restore_the_same_files_in_the_same_order_as_sequential_io(base, tmp_path):
    """The reader/writer threads change when files are decoded and encoded, never what comes out:
    same pixels, same per-file results in input order, failures and refusals in their place."""
    src = tmp_path / "in"
    for i, name in enumerate(("astronaut", "coffee", "chelsea", "rocket")):
        write_u8(src / f"{i}_{name}.png", photo(name, 40 + 8 * i, 32))
    (src / "1b_broken.png").write_text("not an image")
    write_u8(src / "2b_twin.jpg", photo("coffee", 24, 24))
    write_u8(src / "2b_twin.jpeg", photo("coffee", 24, 24))  # same output name: the second is refused
    runs = {}
    for threads in (False, True):
        out = tmp_path / f"out_{threads}"
        runs[threads] = [(r.input.name, r.status, r.output and r.output.name)
                         for r in base.restore_paths(src, out, progress=False, io_threads=threads)]
    assert runs[True] == runs[False]
    assert [s for _, s, _ in runs[True]] == ["restored", "restored", "failed", "restored", "restored",
                                             "failed", "restored"], runs[True]
    for name in tree(tmp_path / "out_False"):
        assert np.array_equal(cv2.imread(str(tmp_path / "out_False" / name), cv2.IMREAD_UNCHANGED),
                              cv2.imread(str(tmp_path / "out_True" / name), cv2.IMREAD_UNCHANGED)), name


def test_find_adapter_and_output_path(adapters, tmp_path):
    assert find_adapter("warm", [None, adapters]) == adapters / "warm"
    assert find_adapter(str(adapters / "bright"), []) == adapters / "bright"
    with pytest.raises(AdapterError, match="not found"):
        find_adapter("nope", [adapters])
    src, out = tmp_path / "x" / "IMG_1.JPEG", tmp_path / "o"
    assert output_path(out, src.relative_to(tmp_path), "_r", "auto", src) == out / "x" / "IMG_1_r.jpg"
    assert output_path(out, src.relative_to(tmp_path), "", "png", src) == out / "x" / "IMG_1.png"


# ---- 2. images as users have them ----------------------------------------------------------------
@pytest.fixture(scope="module")
def formats(base, tmp_path_factory):
    """One batch through restore_paths: 16-bit PNG, grey PNG, RGBA PNG, JPEG with EXIF orientation 6."""
    src, dst = tmp_path_factory.mktemp("formats"), tmp_path_factory.mktemp("formats_out")
    rgb = photo("astronaut", 48, 40)
    write_image(src / "deep.png", noisy(rgb), bit_depth=16)
    write_image(src / "grey.png", noisy(rgb)[..., 1])
    yy, xx = np.mgrid[:40, :48]
    alpha = ((xx * 5 + yy * 3) % 256).astype(np.uint8)
    alpha[10:30, 12:36] = np.where((yy[10:30, 12:36] + xx[10:30, 12:36]) % 2, 0, 255)
    rgba = np.dstack([rgb, alpha])
    cv2.imwrite(str(src / "rgba.png"), rgba[..., [2, 1, 0, 3]])
    stored = photo("coffee", 64, 40)  # pixels stored landscape; orientation 6 = display rotated 90° CW
    exif = PILImage.Exif()
    exif[0x0112] = 6
    PILImage.fromarray(stored).save(src / "rotated.jpg", quality=95, exif=exif.tobytes())
    results = {r.input.name: r for r in base.restore_paths(src, dst, progress=False)}
    assert all(r.status == "restored" for r in results.values()), results
    return src, dst, {"rgba": rgba, "stored": stored}


def test_16_bit_in_16_bit_out(formats, base):
    src, dst, _ = formats
    out = read_image(dst / "deep.png")
    assert out.bit_depth == 16
    raw = cv2.imread(str(dst / "deep.png"), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and (raw % 257 != 0).mean() > 0.5  # real 16-bit values, not 8-bit * 257
    expected = base.restore(read_image(src / "deep.png").pixels)  # the float result, kept at 16 bits
    assert np.abs(out.pixels - expected).max() <= 0.51 / 65535


def test_grey_stays_grey(formats):
    _, dst, _ = formats
    assert read_image(dst / "grey.png").pixels.shape == (40, 48, 1)
    assert cv2.imread(str(dst / "grey.png"), cv2.IMREAD_UNCHANGED).ndim == 2


def test_rgba_keeps_its_alpha_bit_exactly(formats):
    _, dst, ref = formats
    raw = cv2.imread(str(dst / "rgba.png"), cv2.IMREAD_UNCHANGED)
    assert raw.shape == (40, 48, 4) and raw.dtype == np.uint8
    np.testing.assert_array_equal(raw[..., 3], ref["rgba"][..., 3])
    assert psnr(raw[..., 2::-1], ref["rgba"][..., :3]) > 25  # the colour was restored, not replaced


def test_exif_orientation_is_honoured_and_not_written(formats):
    src, dst, ref = formats
    out = read_image(dst / "rotated.jpg").pixels
    assert out.shape == (64, 40, 3)
    upright = np.rot90(ref["stored"], -1).astype(np.float32) / 255
    wrong_way = np.rot90(ref["stored"], 1).astype(np.float32) / 255
    assert psnr(out, upright) > 25 and psnr(out, upright) > psnr(out, wrong_way) + 5
    with PILImage.open(dst / "rotated.jpg") as im:
        assert dict(im.getexif()) == {}
    assert b"Exif" not in (dst / "rotated.jpg").read_bytes()


# ---- 3. folders: tree, names, skip, no overwrite --------------------------------------------------
@pytest.fixture
def album(tmp_path):
    src = tmp_path / "album"
    write_u8(src / "a.png", photo("astronaut", 32, 32))
    write_u8(src / "b.jpg", photo("coffee", 40, 32))
    write_u8(src / "trip" / "c.png", photo("chelsea", 32, 24))
    write_u8(src / "trip" / "day2" / "d.jpeg", photo("rocket", 24, 32))
    return src


def test_recursive_keeps_the_tree_and_flat_does_not_descend(ckpt, album, tmp_path):
    code, out, err = cli("restore", "-i", album, "-o", tmp_path / "deep", "--model", ckpt, "--recursive", "-q")
    assert code == 0, err
    assert tree(tmp_path / "deep") == ["a.png", "b.jpg", "trip/c.png", "trip/day2/d.jpg"]
    assert "4 restored, 0 skipped, 0 failed" in out
    code, out, err = cli("restore", "-i", album, "-o", tmp_path / "flat", "--model", ckpt, "-q")
    assert code == 0, err
    assert tree(tmp_path / "flat") == ["a.png", "b.jpg"]


def test_suffix_and_ext(ckpt, album, tmp_path):
    for ext in ("png", "jpg"):
        code, _, err = cli("restore", "-i", album, "-o", tmp_path / ext, "--model", ckpt, "--suffix", "_r",
                           "--ext", ext, "-q")
        assert code == 0, err
        assert tree(tmp_path / ext) == [f"a_r.{ext}", f"b_r.{ext}"]
        magic = (tmp_path / ext / f"b_r.{ext}").read_bytes()[:4]  # b.jpg became a PNG and back
        assert magic.startswith(b"\x89PNG" if ext == "png" else b"\xff\xd8\xff")
        assert read_image(tmp_path / ext / f"a_r.{ext}").pixels.shape == (32, 32, 3)


def test_skip_existing(ckpt, album, tmp_path):
    out_dir = tmp_path / "out"
    assert cli("restore", "-i", album, "-o", out_dir, "--model", ckpt, "-q")[0] == 0
    before = {p: (out_dir / p).stat().st_mtime_ns for p in tree(out_dir)}
    (out_dir / "b.jpg").unlink()
    code, out, _ = cli("restore", "-i", album, "-o", out_dir, "--model", ckpt, "--skip-existing", "-q")
    assert code == 0
    assert "1 restored, 1 skipped, 0 failed" in out
    assert (out_dir / "a.png").stat().st_mtime_ns == before["a.png"] and (out_dir / "b.jpg").is_file()


def test_output_equal_to_input_is_refused(ckpt, album):
    originals = {p: (album / p).read_bytes() for p in tree(album)}
    code, out, err = cli("restore", "-i", album, "-o", album, "--model", ckpt, "-q")
    assert code == 1
    assert "0 restored, 0 skipped, 2 failed" in out
    assert sum("overwrite the input" in line for line in err.splitlines()) == 2
    assert {p: (album / p).read_bytes() for p in tree(album)} == originals


def test_two_inputs_never_write_the_same_output(ckpt, tmp_path):
    """IMG.jpg and IMG.jpeg both map to IMG.jpg (and IMG.png joins them under --ext jpg): the first
    is restored, the others are refused instead of silently overwriting its output."""
    src = tmp_path / "in"
    write_u8(src / "IMG.jpeg", photo("astronaut", 32, 32))
    write_u8(src / "IMG.jpg", photo("coffee", 32, 32))
    write_u8(src / "IMG.png", photo("chelsea", 32, 32))
    code, out, err = cli("restore", "-i", src, "-o", tmp_path / "out", "--model", ckpt, "--ext", "jpg", "-q")
    assert code == 1 and "1 restored, 0 skipped, 2 failed" in out
    assert tree(tmp_path / "out") == ["IMG.jpg"]
    restored = read_image(tmp_path / "out" / "IMG.jpg").pixels
    assert psnr(restored, read_image(src / "IMG.jpeg").pixels) > 25  # the first input (sorted) won
    assert sum("IMG.jpeg" in line for line in err.splitlines()) == 2  # named as the owner of the output
    # a glob over several folders flattens names: two x.png cannot both be written as out/x.png
    write_u8(tmp_path / "g1" / "x.png", photo("rocket", 24, 24))
    write_u8(tmp_path / "g2" / "x.png", photo("coffee", 24, 24))
    base = Restorer(load_model(ckpt))
    results = list(base.restore_paths(str(tmp_path / "g*" / "x.png"), tmp_path / "glob", progress=False))
    assert [r.status for r in results] == ["restored", "failed"] and "g1" in results[1].reason


def test_list_inputs_file_folder_glob(album):
    assert list_inputs(album / "a.png") == [(album / "a.png", Path("a.png"))]
    assert len(list_inputs(album, recursive=True)) == 4
    assert [f.name for f, _ in list_inputs(str(album / "*.png"))] == ["a.png"]
    (album / ".a.abcd1234.tmp.png").write_bytes((album / "a.png").read_bytes())  # a write cut short
    assert [f.name for f, _ in list_inputs(album)] == ["a.png", "b.jpg"]  # hidden files are no inputs


# ---- 4. bad files never stop a batch; exit codes ---------------------------------------------------
def _bad_batch(folder):
    write_u8(folder / "good1.png", photo("astronaut", 40, 32))
    write_u8(folder / "good2.jpg", photo("coffee", 40, 32))
    ok, jpg = cv2.imencode(".jpg", photo("chelsea", 64, 48))
    jpg = jpg.tobytes()
    sos = jpg.find(b"\xff\xda")
    garbage = np.random.default_rng(0).integers(0, 256, len(jpg) - sos, dtype=np.uint8).tobytes()
    (folder / "corrupt.jpg").write_bytes(jpg[:sos + 16] + garbage.replace(b"\xff\xd9", b"\x00\x00"))
    ok, png = cv2.imencode(".png", photo("rocket", 64, 48))
    (folder / "truncated.png").write_bytes(png.tobytes()[: len(png) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "readme.png").write_text("this is a text file, not a PNG\n")
    return {"corrupt.jpg": "truncated", "truncated.png": "truncated", "empty.jpg": "empty",
            "readme.png": "not a"}


def test_bad_files_are_reported_and_the_batch_goes_on(ckpt, tmp_path):
    src = tmp_path / "mixed"
    src.mkdir()
    bad = _bad_batch(src)
    code, out, err = run("restore", "-i", src, "-o", tmp_path / "out", "--model", ckpt, "--threads", "1")
    assert code == 1, err
    assert tree(tmp_path / "out") == ["good1.png", "good2.jpg"]
    assert "Traceback" not in err
    for name, reason in bad.items():
        lines = [line for line in err.splitlines() if name in line]
        assert len(lines) == 1 and reason in lines[0], (name, err)
    assert "2 restored, 0 skipped, 4 failed" in out


@pytest.mark.parametrize("case", ["missing input", "unknown adapter", "unwritable output"])
def test_usage_errors_exit_2_in_one_line(ckpt, adapters, tmp_path, case):
    write_u8(tmp_path / "in" / "a.png", photo("astronaut", 24, 24))
    (tmp_path / "file.txt").write_text("a regular file")
    args = {"missing input": (["-i", tmp_path / "nope", "-o", tmp_path / "out"], "not found"),
            "unknown adapter": (["-i", tmp_path / "in", "-o", tmp_path / "out", "--adapter", "no-such-adapter",
                                 "--adapter-dir", adapters], "adapter 'no-such-adapter' not found"),
            "unwritable output": (["-i", tmp_path / "in", "-o", tmp_path / "file.txt" / "out"],
                                  "cannot create the output folder")}
    argv, expected = args[case]
    # one case in a fresh interpreter (what a user sees); the others in-process, which is 4 s faster
    # each and as strict: an uncaught exception would fail the test instead of returning 2
    code, out, err = (run if case == "missing input" else cli)("restore", *argv, "--model", ckpt, "-q")
    assert code == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "out").exists()


def test_pixel_limit_fails_that_file_only(ckpt, tmp_path):
    src = tmp_path / "in"
    write_u8(src / "big.png", photo("astronaut", 160, 120))  # 19,200 pixels
    write_u8(src / "small.png", photo("coffee", 64, 48))  # 3,072 pixels
    code, out, err = cli("restore", "-i", src, "-o", tmp_path / "out", "--model", ckpt, "--max-pixels", "0.01", "-q")
    assert code == 1
    lines = [line for line in err.splitlines() if "big.png" in line]
    assert len(lines) == 1 and "limit" in lines[0] and "--max-pixels" in lines[0]
    assert tree(tmp_path / "out") == ["small.png"] and "1 restored, 0 skipped, 1 failed" in out


# ---- 5. adapters, strength, bf16 -------------------------------------------------------------------
def test_adapter_by_name_or_path(ckpt, adapters, base, tmp_path):
    src = tmp_path / "in"
    img = photo("chelsea", 48, 40)
    write_u8(src / "cat.png", img)
    expected = Restorer.from_files(ckpt, ["warm"], adapter_dir=adapters).restore(img)
    assert np.abs(expected.astype(int) - base.restore(img)).mean() > 2  # the adapter does something
    for i, how in enumerate((["--adapter", "warm", "--adapter-dir", adapters], ["--adapter", adapters / "warm"])):
        code, _, err = cli("restore", "-i", src, "-o", tmp_path / f"out{i}", "--model", ckpt, *how, "-q")
        assert code == 0, err
        got = cv2.imread(str(tmp_path / f"out{i}" / "cat.png"))[..., ::-1]
        assert np.abs(got.astype(int) - expected).max() <= 1


def test_two_adapters_apply_in_sequence(ckpt, adapters):
    x = noisy(photo("astronaut", 48, 48))
    chain = Restorer.from_files(ckpt, ["warm", "bright"], adapter_dir=adapters)
    warm = Restorer.from_files(ckpt, ["warm"], adapter_dir=adapters)
    bright = Restorer.from_files(ckpt, ["bright"], adapter_dir=adapters)
    by_hand = bright.restore(warm.restore(x))
    first = chain.restore(x)
    np.testing.assert_allclose(first, by_hand, atol=1e-5)
    np.testing.assert_allclose(chain.restore(x), first, atol=1e-6)  # the chain swaps back to 'warm'
    assert np.abs(by_hand - warm.restore(bright.restore(x))).mean() > 1e-3  # order matters


def test_strength_0_is_the_base(ckpt, adapters, base, tmp_path):
    src = tmp_path / "in"
    img = photo("coffee", 48, 40)
    write_u8(src / "cup.png", img)
    code, _, err = cli("restore", "-i", src, "-o", tmp_path / "out", "--model", ckpt, "--adapter", "bright",
                       "--adapter-dir", adapters, "--strength", "0", "-q")
    assert code == 0, err
    got = cv2.imread(str(tmp_path / "out" / "cup.png"))[..., ::-1]
    assert np.abs(got.astype(int) - base.restore(img)).max() <= 1
    half = Restorer.from_files(ckpt, ["bright"], adapter_dir=adapters, strength=0.5).restore(img).astype(int)
    full = Restorer.from_files(ckpt, ["bright"], adapter_dir=adapters).restore(img).astype(int)
    assert np.abs(half - full).mean() > 1 and np.abs(half - base.restore(img)).mean() > 1


def test_bf16_is_close_to_fp32(ckpt, base, tmp_path):
    src = tmp_path / "in"
    img = photo("astronaut", 128, 96)
    write_image(src / "a.png", noisy(img))
    code, _, err = cli("restore", "-i", src, "-o", tmp_path / "out", "--model", ckpt, "--bf16", "-q")
    assert code == 0, err
    low = read_image(tmp_path / "out" / "a.png").pixels
    full = base.restore(read_image(src / "a.png").pixels)
    assert psnr(low, full) > 35


# ---- 6. eval ---------------------------------------------------------------------------------------
def test_eval_csv_matches_metrics_computed_directly(ckpt, tmp_path):
    code, _, err = cli("degrade", "-o", tmp_path / "pairs", "--preset", "noise", "-n", "3", "--size", "64")
    assert code == 0, err
    lq, gt = tmp_path / "pairs" / "lq", tmp_path / "pairs" / "gt"
    code, out, err = cli("eval", "--lq", lq, "--gt", gt, "--model", ckpt, "--csv", tmp_path / "m.csv",
                         "--grid", tmp_path / "grid.png", "--save", tmp_path / "restored")
    assert code == 0, err
    rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    assert [r["name"] for r in rows] == sorted(p.stem for p in gt.iterdir()) + ["mean"]
    for r in rows[:-1]:
        restored = read_image(tmp_path / "restored" / f"{r['name']}.png").pixels
        truth = read_image(gt / f"{r['name']}.png").pixels
        assert abs(float(r["psnr_out"]) - calculate_psnr(restored, truth)) < 1e-3
        assert abs(float(r["psnr_in"]) - calculate_psnr(read_image(lq / f"{r['name']}.png").pixels, truth)) < 1e-3
    mean = np.mean([float(r["psnr_out"]) for r in rows[:-1]])
    assert abs(float(rows[-1]["psnr_out"]) - mean) < 1e-3
    assert "mean" in out
    grid = read_image(tmp_path / "grid.png")
    assert grid.pixels.shape[0] == 3 * 192 and grid.pixels.shape[1] == 3 * 192

    (lq / "extra_one.png").write_bytes((lq / f"{rows[0]['name']}.png").read_bytes())
    code, _, err = cli("eval", "--lq", lq, "--gt", gt, "--model", ckpt)
    assert code == 2 and "extra_one" in err and "no GT image for LQ" in err


def test_eval_pairs_folders_as_paired_datasets_do(tmp_path):
    """Sub-folders are paired too, and every problem is in the one error, before any restoring."""
    for side in ("lq", "gt"):
        write_u8(tmp_path / side / "a.png", photo("astronaut", 24, 24))
        write_u8(tmp_path / side / "trip" / "b.png", photo("coffee", 24, 24))
    assert [k for k, _, _ in match_pairs(tmp_path / "lq", tmp_path / "gt")] == ["a", "trip_b"]
    write_u8(tmp_path / "lq" / "a.jpg", photo("astronaut", 24, 24))
    write_u8(tmp_path / "lq" / "stray.png", photo("rocket", 24, 24))
    write_u8(tmp_path / "gt" / "trip" / "lonely.png", photo("rocket", 24, 24))
    with pytest.raises(ColoraError) as err:
        match_pairs(tmp_path / "lq", tmp_path / "gt")
    msg = str(err.value)
    assert "3 problems" in msg and "two LQ files named 'a'" in msg and len(msg.splitlines()) == 1
    assert "no GT image for LQ 'lq/stray.png'" in msg and "no LQ image for GT 'gt/trip/lonely.png'" in msg
    with pytest.raises(ColoraError, match=r"LQ \(--lq\) folder '.*nowhere' does not exist"):
        match_pairs(tmp_path / "nowhere", tmp_path / "gt")

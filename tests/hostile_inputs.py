"""Hostile inputs, made at run time, and the checks a run on them must pass (issue 15).

Shared by tests/test_hostile.py and benchmarks/hostile.py: fuzzed and mutated image bytes, bombs
built from compressed zero rows, tampered checkpoint headers and adapter folders, bad options and
flags. `run` calls the CLI's main(argv) in this process and reports what a user would see: the
exit code, the output, and whether an exception escaped (a traceback).
"""
import contextlib
import io
import json
import logging
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
from skimage import data as skimage_data

TINY = {"type": "NAFNet", "width": 8, "middle_blk_num": 1, "enc_blk_nums": [1, 1], "dec_blk_nums": [1, 1]}


# ---- running the CLI -------------------------------------------------------------------------------
def run(argv):
    """main(argv) in this process: (exit code, stdout, stderr, escaped exception or None)."""
    from colora.cli import main

    out, err, root = io.StringIO(), io.StringIO(), logging.getLogger()
    handlers, level, escaped = root.handlers[:], root.level, None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in argv])
            except SystemExit as exc:  # argparse's usage errors
                code = exc.code
            except Exception as exc:  # what a user would see as a traceback
                code, escaped = None, exc
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return code, out.getvalue(), err.getvalue(), escaped


# Peak RSS of the new program alone (colora.inference.memory.peak_rss: VmHWM, not the inherited ru_maxrss).
PROBE = """
import json, sys
from colora.cli import main
from colora.inference.memory import peak_rss
codes = [main(argv) for argv in json.loads(sys.argv[1])]
print(json.dumps({"codes": codes, "peak": peak_rss()}))
"""


def peak_rss(runs, cwd=None):
    """Several CLI invocations in one fresh interpreter: (exit codes, peak RSS in bytes, stderr);
    codes None if the interpreter itself failed."""
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps([[str(a) for a in r] for r in runs])],
                          cwd=cwd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        return None, None, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["codes"], result["peak"], proc.stderr


def error_lines(err):
    """The lines of stderr that are not the progress bar."""
    return [ln for ln in err.splitlines() if ln.strip() and "%|" not in ln and "it/s" not in ln]


def snapshot(folder, skip=()):
    """{relative path: bytes} of every file under `folder` except those under `skip` folders."""
    folder = Path(folder)
    skip = [Path(s).resolve() for s in skip]
    out = {}
    for p in folder.rglob("*"):
        if p.is_file() and not p.is_symlink() and not any(p.resolve().is_relative_to(s) for s in skip):
            out[str(p.relative_to(folder))] = p.read_bytes()
    return out


# ---- a tiny model and adapter -------------------------------------------------------------------------
def tiny_checkpoint(path):
    import torch

    from colora.archs import build_arch
    from colora.checkpoint import save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(path, build_arch(TINY).state_dict(), network_g=TINY, extra_metadata={"train_size": 64})
    return Path(path)


def tiny_adapter(ckpt, folder):
    from colora.adapters import attach_adapter, save_adapter
    from colora.inference.restorer import load_model

    model = load_model(ckpt)
    attach_adapter(model, {"method": "lora", "rank": 2}, name="tiny")
    return save_adapter(model, folder)


# ---- images -------------------------------------------------------------------------------------------
def photo(w=64, h=48):
    return cv2.resize(skimage_data.astronaut(), (w, h), interpolation=cv2.INTER_AREA)[..., ::-1]


def encoded(ext, img=None):
    img = photo() if img is None else img
    ok, buf = cv2.imencode(ext, img)
    return buf.tobytes()


def fuzzed_images(folder, n, seed=0):
    """`n` files made from valid PNG/JPEG/WebP/TIFF/BMP bytes by flipping bytes, cutting, splicing
    or replacing them with noise; returns their paths."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    exts = [".png", ".jpg", ".webp", ".tif", ".bmp"]
    bases = {ext: encoded(ext) for ext in exts}
    paths = []
    for i in range(n):
        ext = exts[i % len(exts)]
        b = bytearray(bases[ext])
        how = rng.integers(5)
        if how == 0:  # a few random bytes anywhere (headers included)
            for pos in rng.integers(0, len(b), rng.integers(1, 8)):
                b[pos] = rng.integers(256)
        elif how == 1:  # cut short
            b = b[: rng.integers(1, len(b))]
        elif how == 2:  # a run of noise in the body
            start = rng.integers(len(b) // 4, len(b) - 8)
            b[start:start + 64] = rng.integers(0, 256, len(b[start:start + 64]), dtype=np.uint8).tobytes()
        elif how == 3:  # the magic of one format, the body of another
            other = bases[exts[(i + 1) % len(exts)]]
            b = b[:16] + bytearray(other[16:])
        else:  # pure noise with a plausible name
            b = bytearray(rng.integers(0, 256, rng.integers(0, 4096), dtype=np.uint8).tobytes())
        path = folder / f"fuzz_{i:03d}{ext}"
        path.write_bytes(bytes(b))
        paths.append(path)
    return paths


def png_bomb(path, width, height, rows_per_block=50):
    """A valid RGB PNG of width x height black pixels, a few hundred KB: one deflate block of zero
    rows, compressed once and repeated (a full flush makes each copy self-contained)."""
    row = 1 + 3 * width  # filter byte + samples
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(row * rows_per_block)) + c.flush(zlib.Z_FULL_FLUSH)
    n, rest = divmod(height, rows_per_block)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15)
    end = tail.compress(bytes(row * rest)) + tail.flush()
    adler = (((row * height) % 65521) << 16) | 1  # adler32 of all-zero data
    idat = b"\x78\xda" + block * n + end + struct.pack(">I", adler)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return Path(path)


def bombs(folder):
    """15000^2 (over the default --max-pixels) and 12000^2 (under it, over any 1 GB budget)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [png_bomb(folder / "bomb_15000.png", 15000, 15000), png_bomb(folder / "bomb_12000.png", 12000, 12000)]


# ---- checkpoints ---------------------------------------------------------------------------------------
def _with_header(src, dest, meta):
    """A copy of safetensors file `src` whose __metadata__ is `meta` (any JSON value, or raw bytes)."""
    raw = Path(src).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    if isinstance(meta, bytes):
        text = raw[8:8 + n].replace(b'"__metadata__"', meta, 1)
    else:
        header["__metadata__"] = meta
        text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    Path(dest).write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n:])
    return Path(dest)


def tampered_checkpoints(ckpt, folder):
    """{case: file}: headers that lie, are not JSON, or have wrongly typed values; cut files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    net = dict(TINY)
    cases = {
        "middle_blk_num 10000": {"network_g": json.dumps({**net, "middle_blk_num": 10000})},
        "width 512": {"network_g": json.dumps({**net, "width": 512})},
        "width 1e6": {"network_g": json.dumps({**net, "width": 1e6})},
        "network_g not JSON": {"network_g": "{type: NAFNet"},
        "network_g a list": {"network_g": "[1, 2]"},
        "width a string": {"network_g": json.dumps({**net, "width": "wide"})},
        "enc_blk_nums a number": {"network_g": json.dumps({**net, "enc_blk_nums": 3})},
        "unknown type": {"network_g": json.dumps({**net, "type": "ResNet"})},
        "train_size a word": {"network_g": json.dumps(net), "train_size": "big"},
        "metadata a list": ["a", "b"],
        "metadata values not strings": {"network_g": {"type": "NAFNet"}},
    }
    out = {name: _with_header(ckpt, folder / f"{i:02d}.safetensors", meta) for i, (name, meta) in enumerate(cases.items())}
    raw = Path(ckpt).read_bytes()
    for name, body in {"cut in half": raw[: len(raw) // 2], "empty": b"", "noise": bytes(range(256)) * 8,
                       "header length huge": (1 << 60).to_bytes(8, "little") + raw[8:]}.items():
        path = folder / f"{len(out):02d}.safetensors"
        path.write_bytes(body)
        out[name] = path
    return out


# ---- adapters -------------------------------------------------------------------------------------------
def tampered_adapters(adapter, folder):
    """{case: adapter folder}: config fields of the wrong type or size, corrupt files."""
    folder = Path(folder)
    config = json.loads((Path(adapter) / "adapter_config.json").read_text())
    weights = (Path(adapter) / "adapter_model.safetensors").read_bytes()
    first = next(iter(config["layers"]))

    def layers_with(**spec):
        return {**config["layers"], first: [{**config["layers"][first][0], **spec}]}

    cases = {
        "rank 2e7": {"layers": layers_with(rank=2e7)},
        "rank 20000000": {"layers": layers_with(rank=20_000_000)},
        "rank -3": {"layers": layers_with(rank=-3)},
        "unknown tuner kind": {"layers": layers_with(kind="magic")},
        "unknown layer": {"layers": {"no.such.layer": config["layers"][first]}},
        "base_arch a string": {"base_arch": "NAFNet"},
        "base_sha256 an int": {"base_sha256": 12345},
        "layers a list": {"layers": [1, 2]},
        "method a list": {"method": ["lora"]},
        "unknown method": {"method": "magic"},
        "strength a word": {"strength": "strong"},
        "strength nan": {"strength": float("nan")},
        "another base": {"base_sha256": "0" * 64},
    }
    out = {}
    for i, (name, change) in enumerate(cases.items()):
        d = folder / f"a{i:02d}"
        d.mkdir(parents=True)
        (d / "adapter_config.json").write_text(json.dumps({**config, **change}))
        (d / "adapter_model.safetensors").write_bytes(weights)
        out[name] = d
    for name, (cfg_text, w) in {"config not JSON": ("{method: lora", weights),
                                "config a list": ("[1]", weights),
                                "weights cut": (json.dumps(config), weights[: len(weights) // 2]),
                                "weights missing": (json.dumps(config), None)}.items():
        d = folder / f"a{len(out):02d}"
        d.mkdir(parents=True)
        (d / "adapter_config.json").write_text(cfg_text)
        if w is not None:
            (d / "adapter_model.safetensors").write_bytes(w)
        out[name] = d
    return out


# ---- options and flags -----------------------------------------------------------------------------------
BAD_SETS = [
    ("logger.print_freq=0", "print_freq"), ("val.val_freq=0", "val_freq"),
    ("logger.save_checkpoint_freq=0", "save_checkpoint_freq"),
    ("datasets.train.batch_size_per_gpu=0", "batch_size_per_gpu"),
    ("datasets.train.batch_size_per_gpu=-4", "batch_size_per_gpu"), ("train.optim_g.lr=-1e-3", "lr"),
    ("train.optim_g.lr=.nan", "lr"), ("train.total_iter=.inf", "total_iter"), ("train.total_iter=nan", "total_iter"),
    ("train.optim_g.betas=[0.9]", "betas"), ("network_g.width=0", "width"), ("network_g.width=-8", "width"),
    ("network_g.width=1e6", "width"), ("network_g.middle_blk_num=10000", "middle_blk_num"),
    ("network_g.enc_blk_nums=[1,1,1,1,1,1,1,1,1]", "enc_blk_nums"), ("adapter.rank=2e7", "rank"),
    ("adapter.budget=nan", "budget"), ("train.ema_decay=1.5", "ema_decay"), ("manual_seed=-1", "manual_seed"),
    ("name=../outside", "name"), ("name=/tmp/abs", "name"), ("train.warmup_iter=-5", "warmup_iter"),
    ("datasets.train.gt_size=0", "gt_size"), ("train.grad_clip=-1", "grad_clip"),
    ("train.optim_g.betas=[0.9, 2]", "betas"), ("val.metrics.psnr.crop_border=-1", "crop_border"),
]

BAD_FLAGS = [
    (["--threads", "-1"], "--threads"), (["--max-pixels", "nan"], "--max-pixels"),
    (["--strength", "nan"], "--strength"), (["--strength", "2"], "--strength"),
    (["--max-memory", "0"], "--max-memory"), (["--max-memory", "nan"], "--max-memory"),
    (["-t", "-5"], "--tile"), (["--tile-pad", "-1"], "--tile-pad"),
    (["--suffix", "../up"], "--suffix"), (["--suffix", "a/b"], "--suffix"),
]

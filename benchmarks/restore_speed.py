"""Restore speed and memory on CPU: NAFNet-w32 through `Restorer` vs a plain eager run (issue 6).

    python benchmarks/restore_speed.py [--size 1024] [--repeat 3] [--threads N] [--no-big] [--big-bf16]
                                       [--reference] [--profile [--profile-size 512]]

1. Megapixels/s on a SIZE x SIZE real photo (astronaut, resized, sigma-25 noise) for the model the
   CLI builds (`load_model`: NAFNet-SIDD-width32 prepared for inference, TLC at train size 256):
   - plain: `with torch.no_grad(): model(x)`, fp32, NCHW (the baseline of the ratios);
   - `Restorer(model)`: the default mode (channels_last + inference_mode, fp32), array in, array out;
   - `Restorer(model, bf16=True)`: the same under bf16 autocast;
   - with --reference, a plain run of NAFNet with its global pool (the training network, no TLC).
   Then PSNR to the clean photo of the fp32 and bf16 outputs, their difference, and the PSNR
   between the two outputs.
2. (`--big`, on by default) `colora restore -t 512` on a 6000x4000 JPEG in a fresh interpreter, so
   that its peak RSS (VmHWM, colora.inference.memory.peak_rss) is that run's: wall time (model load, decode, 96 tiles, encode) and peak RSS.
3. (`--profile`) torch.profiler top-10 operators of one forward in each mode, at --profile-size.

The weights are random (no published checkpoint can be downloaded here) with NAFNet's layer scales
beta/gamma drawn from N(0, 0.1) so that every block contributes; speed does not depend on the values.
Targets (issue 6): >= 1.5x the plain run in fp32, >= 2.5x in bf16 with <= 0.05 dB PSNR difference,
peak RSS <= 3 GB for the 24-megapixel photo.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import machine, table, timeit  # noqa: E402
from colora.archs import OFFICIAL_CONFIGS, build_arch  # noqa: E402
from colora.checkpoint import save_checkpoint  # noqa: E402
from colora.metrics import calculate_psnr  # noqa: E402
from colora.inference.restorer import Restorer, load_model  # noqa: E402

CONFIG = "NAFNet-SIDD-width32"
TARGETS = {"fp32": 1.5, "bf16": 2.5, "dpsnr": 0.05, "rss_gb": 3.0}


def make_checkpoint(path):
    torch.manual_seed(0)
    model = build_arch(OFFICIAL_CONFIGS[CONFIG])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.normal_(0, 0.1)
    save_checkpoint(path, model.state_dict(), network_g=OFFICIAL_CONFIGS[CONFIG])
    return model.eval()


def photo(w, h, seed=0):
    """The astronaut photo resized to w x h (float32 RGB in [0, 1]) and a sigma-25 noisy copy."""
    from skimage import data

    src = data.astronaut()
    interp = cv2.INTER_AREA if w < src.shape[1] else cv2.INTER_CUBIC
    clean = cv2.resize(src, (w, h), interpolation=interp).astype(np.float32) / 255
    noise = np.random.default_rng(seed).normal(0, 25 / 255, clean.shape).astype(np.float32)
    return clean, np.clip(clean + noise, 0, 1)


def met(ok):
    return "met" if ok else "NOT met"


def speed(args, ckpt, plain_nafnet):
    size = args.size
    clean, lq = photo(size, size)
    mpx = size * size / 1e6
    x = torch.from_numpy(lq).permute(2, 0, 1)[None].contiguous()
    plain = load_model(ckpt)  # TLC, NCHW: the same network the Restorer runs
    r32 = Restorer(load_model(ckpt))
    rbf = Restorer(load_model(ckpt), bf16=True)

    def run_plain(model=plain):
        with torch.no_grad():
            return model(x)

    print(f"timing {size}x{size}: median of {args.repeat} after 1 warm-up per mode ...", file=sys.stderr, flush=True)
    modes = [("plain: eager fp32 NCHW, no_grad (baseline)", run_plain),
             ("Restorer fp32 (channels_last + inference_mode)", lambda: r32.restore(lq)),
             ("Restorer bf16 (--bf16)", lambda: rbf.restore(lq))]
    if args.reference:
        modes.append(("reference: plain NAFNet, global pool (no TLC)", lambda: run_plain(plain_nafnet)))
    times = {}
    for label, fn in modes:
        times[label] = timeit(fn, repeat=args.repeat, warmup=1)
        print(f"  {label}: {times[label]:.2f} s", file=sys.stderr, flush=True)
    base = times[modes[0][0]]
    rows = [[label, f"{t:.2f}", f"{mpx / t:.3f}", f"{base / t:.2f}x"] for label, t in times.items()]

    out32, outbf = r32.restore(lq), rbf.restore(lq)
    ref = run_plain()[0].clamp(0, 1).permute(1, 2, 0).numpy()
    p_in, p32, pbf = calculate_psnr(lq, clean), calculate_psnr(out32, clean), calculate_psnr(outbf, clean)
    between = calculate_psnr(outbf, out32)
    r_fp32, r_bf16 = base / times[modes[1][0]], base / times[modes[2][0]]
    print(f"\n### {CONFIG} on a {size}x{size} photo ({mpx:.2f} Mpx), median of {args.repeat}\n")
    print(table(["mode", "s / image", "Mpx/s", "vs plain"], rows))
    print(f"\nPSNR to the clean photo: input {p_in:.3f} dB, fp32 {p32:.3f} dB, bf16 {pbf:.3f} dB "
          f"(difference {pbf - p32:+.4f} dB); bf16 output vs fp32 output {between:.2f} dB; "
          f"Restorer fp32 vs plain run: max |diff| {np.abs(out32 - ref).max():.2e}")
    print("(random weights: the PSNR to clean says how far bf16 moves the output, not how well it restores)")
    return [("fp32 >= 1.5x the plain run", f"{r_fp32:.2f}x", met(r_fp32 >= TARGETS["fp32"])),
            ("bf16 >= 2.5x the plain run", f"{r_bf16:.2f}x", met(r_bf16 >= TARGETS["bf16"])),
            ("bf16 PSNR difference <= 0.05 dB", f"{abs(pbf - p32):.4f} dB", met(abs(pbf - p32) <= TARGETS["dpsnr"]))]


def big(args, ckpt, workdir):
    w, h = (int(v) for v in args.big_size.lower().split("x"))
    src = workdir / "big" / "photo.jpg"
    src.parent.mkdir()
    print(f"writing a {w}x{h} JPEG ...", file=sys.stderr, flush=True)
    _, lq = photo(w, h)
    cv2.imwrite(str(src), cv2.cvtColor((lq * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 95])
    del lq
    results = []
    for bf16 in [False] + ([True] if args.big_bf16 else []):
        argv = ["restore", "-i", str(src), "-o", str(workdir / f"out_bf16_{bf16}"), "--model", str(ckpt),
                "-t", str(args.tile)] + (["--bf16"] if bf16 else [])
        argv += ["--threads", str(args.threads)] if args.threads else []
        print(f"colora {' '.join(argv)} (fresh interpreter; tile progress below) ...", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(argv)], stdout=subprocess.PIPE,
                              text=True)  # stderr (tqdm's tile bar) goes straight to the terminal
        if proc.returncode != 0:
            raise SystemExit(f"the big run failed (exit {proc.returncode}): {proc.stdout}")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(("bf16" if bf16 else "fp32", res))
    tiles = -(-w // args.tile) * -(-h // args.tile)
    print(f"\n### `colora restore -t {args.tile}` on a {w}x{h} JPEG ({w * h / 1e6:.0f} Mpx, {tiles} tiles), "
          "fresh interpreter\n")
    print(table(["mode", "wall s (whole command)", "restore s", "Mpx/s", "peak RSS GB"],
                [[m, f"{r['wall']:.0f}", f"{r['restore']:.0f}", f"{w * h / 1e6 / r['restore']:.3f}",
                  f"{r['maxrss_gb']:.2f}"] for m, r in results]))
    rss = results[0][1]["maxrss_gb"]
    return [(f"peak RSS <= 3 GB on {w * h / 1e6:.0f} Mpx (fp32, tile {args.tile})", f"{rss:.2f} GB",
             met(rss <= TARGETS["rss_gb"]))]


def child(argv):
    """Run one `colora restore` in this (fresh) process and print wall time and peak RSS as JSON."""
    from colora import cli
    from colora.inference import restorer as restore_mod
    from colora.inference.memory import peak_rss

    t0 = time.perf_counter()
    spent = {"restore": 0.0}
    original = restore_mod.Restorer.restore

    def timed(self, *a, **kw):  # time the network part alone (the rest is decode/encode/IO)
        t = time.perf_counter()
        try:
            return original(self, *a, **kw)
        finally:
            spent["restore"] += time.perf_counter() - t

    restore_mod.Restorer.restore = timed
    code = cli.main(argv)
    wall = time.perf_counter() - t0
    print(json.dumps({"code": code, "wall": wall, "restore": spent["restore"], "maxrss_gb": peak_rss() / 1e9}))
    return code


def profile(args, ckpt):
    from torch.profiler import ProfilerActivity, profile as torch_profile

    size = args.profile_size
    _, lq = photo(size, size)
    x = torch.from_numpy(lq).permute(2, 0, 1)[None].contiguous()
    plain = load_model(ckpt)
    r32, rbf = Restorer(load_model(ckpt)), Restorer(load_model(ckpt), bf16=True)

    def run_plain():
        with torch.no_grad():
            plain(x)

    for label, fn in (("plain eager fp32 NCHW", run_plain), ("Restorer fp32", lambda: r32.restore(lq)),
                      ("Restorer bf16", lambda: rbf.restore(lq))):
        fn()  # warm-up (oneDNN primitive creation)
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        print(f"\n### profile: {label}, one forward at {size}x{size}, top 10 by self CPU time\n")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024, help="side of the square photo for the speed part (1024)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per mode (median; default 3)")
    ap.add_argument("--big", action=argparse.BooleanOptionalAction, default=True,
                    help="also run the 24-megapixel tiled restore (default on; --no-big to skip)")
    ap.add_argument("--big-size", default="6000x4000", help="WxH of the big photo (6000x4000)")
    ap.add_argument("--tile", type=int, default=512, help="tile size for the big photo (512)")
    ap.add_argument("--big-bf16", action="store_true", help="also run the big photo with --bf16")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's default)")
    ap.add_argument("--reference", action="store_true", help="also time NAFNet with its global pool (no TLC)")
    ap.add_argument("--profile", action="store_true", help="print a torch.profiler top-10 per mode")
    ap.add_argument("--profile-size", type=int, default=512)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(json.loads(args.child))
    if args.threads:
        torch.set_num_threads(args.threads)

    load = os.getloadavg()[0]
    print(f"machine: {machine()}")
    print(f"load average at start: {load:.2f} on {os.cpu_count()} cores"
          + (" (the machine is shared: other jobs were running, timings are pessimistic)" if load > 0.5 else ""))
    with tempfile.TemporaryDirectory(prefix="restore_speed_") as tmp:
        workdir = Path(tmp)
        ckpt = workdir / "nafnet_w32.safetensors"
        plain_nafnet = make_checkpoint(ckpt)
        verdicts = speed(args, ckpt, plain_nafnet)
        del plain_nafnet
        if args.big:
            verdicts += big(args, ckpt, workdir)
        print("\n### targets (issue 6)\n")
        print(table(["target", "measured", "verdict"], verdicts))
        print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
        if args.profile:
            profile(args, ckpt)
    return 0


if __name__ == "__main__":
    sys.exit(main())

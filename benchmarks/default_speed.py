"""Seconds per megapixel of the shipped default, at 1 and 2 threads (issue 13).

    python benchmarks/default_speed.py [--size 1024] [--repeat 3] [--threads 1,2]

What a user pays to restore with `colora restore` as installed: the shipped base alone and the base
with one adapter merged (`Restorer.from_files(None, ["noise"])`), on a real photo (astronaut,
resized to SIZE x SIZE, sigma-25 noise), fp32 and `--precision auto` (bf16 where the CPU has it
natively and a one-tile timing finds it faster), with the CLI's allocator setting
(colora.inference.memory.keep_freed_memory). The modes alternate within each repeat, so a
change of load hits all of them alike; the load average is printed. Also the MACs per pixel of the
default network against the tiny NAFNet shipped before it (the issue allows up to 8x).
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine, table  # noqa: E402

OLD_DEFAULT = {"type": "NAFNet", "width": 16, "middle_blk_num": 1, "enc_blk_nums": [1, 1, 1, 1],
               "dec_blk_nums": [1, 1, 1, 1]}  # the tiny base shipped before issue 13


def photo(size):
    from skimage import data

    clean = cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    noisy = clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape).astype(np.float32)
    return np.clip(noisy, 0, 1)


def macs_per_pixel(network_g):
    """(MACs per pixel of `network_g`, of the tiny base shipped before), counted at 256²."""
    from colora.summary import count_macs

    return count_macs(network_g, 256) / 256 ** 2, count_macs(OLD_DEFAULT, 256) / 256 ** 2


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024, help="side of the square photo (default 1024: 1.05 Mpx)")
    ap.add_argument("--repeat", type=int, default=3, help="alternating rounds (median; default 3)")
    ap.add_argument("--threads", default="1,2", help="comma-separated torch thread counts (default 1,2)")
    a = ap.parse_args(argv)
    from colora.inference.memory import keep_freed_memory
    from colora.inference.restorer import Restorer

    keep_freed_memory()  # as `colora restore` runs (COLORA_MALLOC=default measures glibc's defaults)
    img = photo(a.size)
    mpx = a.size * a.size / 1e6
    net = dict(Restorer.from_files(None).model.network_g)
    new, old = macs_per_pixel(net)
    print(f"machine: {machine()}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"default network: {net}; {new / 1e3:.1f} kMAC per pixel, {new / old:.1f}x the tiny base shipped "
          f"before ({old / 1e3:.1f} kMAC; the issue allows 8x)\n")
    rows = []
    for threads in [int(t) for t in a.threads.split(",")]:
        torch.set_num_threads(threads)
        modes = {f"{what}, {prec}": Restorer.from_files(None, adapters, precision=prec)
                 for what, adapters in (("base alone", ()), ("base + noise adapter (merged)", ["noise"]))
                 for prec in ("fp32", "auto")}
        for r in modes.values():
            r.restore(img[:256, :256])  # warm-up (and auto's one-tile timing)
        times = {k: [] for k in modes}
        for _ in range(a.repeat):
            for k, r in modes.items():
                t = time.perf_counter()
                r.restore(img)
                times[k].append(time.perf_counter() - t)
        for k, r in modes.items():
            s = statistics.median(times[k])
            rows.append([threads, k, r.run.precision, f"{s / mpx:.2f}", f"{mpx / s:.3f}"])
    print(table(["threads", "mode", "ran as", "s / Mpx", "Mpx / s"], rows))
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{a.size}x{a.size} photo, median of {a.repeat} alternating rounds")


if __name__ == "__main__":
    main()

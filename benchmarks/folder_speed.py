"""Folder throughput with and without the reader/writer threads of `colora restore` (issue 16).

    python benchmarks/folder_speed.py [--files 24] [--size 320x240] [--repeat 3] [--threads 1,2]

A folder of JPEG photos (the photos bundled with scikit-image, resized, cycled) restored by the
shipped base into a fresh folder, in one process: sequential I/O (`--no-io-threads`: decode, restore,
encode one after the other) and the default (the next photo decoded and the last one encoded while
the network runs), alternating, median of `--repeat` runs per torch thread count. Small photos are
where I/O is a large share of the time, so that is where the threads can pay.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import machine, table  # noqa: E402
from colora.imageio import bundled_photos  # noqa: E402
from colora.inference.restorer import Restorer  # noqa: E402


def make_folder(folder, n, w, h):
    photos = list(bundled_photos().values())
    for i in range(n):
        img = cv2.resize(photos[i % len(photos)], (w, h), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), cv2.cvtColor((img * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 92])


def run(restorer, src, out, io_threads):
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    results = list(restorer.restore_paths(src, out, progress=False, io_threads=io_threads))
    seconds = time.perf_counter() - t
    assert all(r.status == "restored" for r in results), [r for r in results if r.status != "restored"]
    return seconds


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=24)
    ap.add_argument("--size", default="320x240", help="WxH of each photo")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", default="1,2", help="torch thread counts to measure")
    a = ap.parse_args(argv)
    w, h = (int(v) for v in a.size.split("x"))
    restorer = Restorer.from_files(None)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp, "in"), Path(tmp, "out")
        src.mkdir()
        make_folder(src, a.files, w, h)
        for threads in (int(t) for t in a.threads.split(",")):
            torch.set_num_threads(threads)
            print(f"machine: {machine()}")
            load = os.getloadavg()
            run(restorer, src, out, True)  # warm-up (allocator, caches)
            times = {False: [], True: []}
            for _ in range(a.repeat):
                for io in (False, True):
                    times[io].append(run(restorer, src, out, io))
            seq, par = statistics.median(times[False]), statistics.median(times[True])
            rows.append([threads, f"{a.files / seq:.2f}", f"{a.files / par:.2f}", f"{seq / par:.2f}x",
                         f"{load[0]:.1f}"])
    print(f"\n{a.files} JPEG photos of {w}x{h}, shipped base, median of {a.repeat} alternating runs\n")
    print(table(["torch threads", "files/s sequential I/O", "files/s I/O threads", "speed-up", "load avg"], rows))


if __name__ == "__main__":
    main()

"""`colora restore` with glibc's default allocator vs `keep_freed_memory` (issue 16: a faster forward).

    python benchmarks/allocator_speed.py [--sizes 640x424,1280x848] [--photos 3] [--repeat 3] [--threads 1]

A folder of `--photos` noisy copies of the astronaut photo per size, restored whole (no tiles) by
`colora restore` with NAFNet-SIDD-width32 (random weights, TLC) in a fresh interpreter per run:
`COLORA_MALLOC=default` (glibc as it comes) and the CLI's default (colora.inference.memory.
keep_freed_memory), alternating, at fp32 and, where bf16 is native, bf16. Prints the median wall
time of the whole command, its system (kernel) CPU time, which page faults of fresh mmaps inflate,
and the peak RSS (VmHWM), which the setting should leave unchanged.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import machine, table  # noqa: E402
from benchmarks import restore_speed  # noqa: E402
from benchmarks.restore_speed import make_checkpoint, photo  # noqa: E402


def run(argv, allocator):
    """(wall s, system CPU s, peak RSS GB) of one `colora restore` in a fresh interpreter
    (restore_speed's child) with COLORA_MALLOC=`allocator`."""
    env = dict(os.environ, COLORA_MALLOC=allocator)
    before = os.times()
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, restore_speed.__file__, "--child", json.dumps(argv)], env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = os.times()
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    if res["code"] != 0:
        raise SystemExit(f"colora {' '.join(argv)} failed with exit code {res['code']}")
    return wall, after.children_system - before.children_system, res["maxrss_gb"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="640x424,1280x848")
    p.add_argument("--photos", type=int, default=3)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    from colora.precision import native_bf16

    print(f"machine: {machine().rsplit(',', 1)[0]}, {a.threads} threads")
    print(f"load average before: {' '.join(f'{v:.1f}' for v in os.getloadavg())}\n")
    rows = []
    with tempfile.TemporaryDirectory(prefix="allocator_speed_") as tmp:
        tmp = Path(tmp)
        ckpt = tmp / "nafnet_w32.safetensors"
        make_checkpoint(ckpt)
        for size in a.sizes.split(","):
            w, h = (int(v) for v in size.lower().split("x"))
            folder = tmp / size
            folder.mkdir()
            _, lq = photo(w, h)
            for i in range(a.photos):
                cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(np.roll((lq * 255 + 0.5).astype(np.uint8), i * 7, 1),
                                                                  cv2.COLOR_RGB2BGR))
            for precision in ["fp32"] + (["bf16"] if native_bf16() else []):
                times = {"default": [], "keep": []}
                for r in range(a.repeat):
                    for allocator in times:
                        out = tmp / f"out_{size}_{precision}_{allocator}_{r}"
                        times[allocator].append(run(["restore", "-i", str(folder), "-o", str(out), "--model",
                                                     str(ckpt), "--precision", precision, "--threads",
                                                     str(a.threads), "-q"], allocator))
                med = {k: [statistics.median(x[i] for x in v) for i in range(3)] for k, v in times.items()}
                rows.append([f"{size} x {a.photos}", precision,
                             f"{med['default'][0]:.1f} / {med['keep'][0]:.1f}", f"{med['default'][0] / med['keep'][0]:.2f}x",
                             f"{med['default'][1]:.1f} / {med['keep'][1]:.1f}",
                             f"{med['default'][2]:.2f} / {med['keep'][2]:.2f}"])
    print(table(["photos", "precision", "wall s: glibc default / keep_freed_memory", "speed-up",
                 "system CPU s", "peak RSS GB"], rows))
    print(f"\nload average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
